//! OTLP to an `https://` endpoint: spans reach a tiny gRPC receiver over TLS when its CA
//! is trusted (`OTEL_EXPORTER_OTLP_CERTIFICATE`'s file), and nothing is sent to it when
//! the CA is not (the certificate is verified).

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry::trace::{Tracer, TracerProvider as _};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A CA (its PEM written to a file) and a server config with a certificate it signed
/// for `localhost`, speaking h2 as gRPC does.
fn ca_and_server(name: &str) -> (PathBuf, Arc<rustls::ServerConfig>) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let path = std::env::temp_dir().join(format!("hl_otlp_ca_{name}_{}.pem", std::process::id()));
    std::fs::write(&path, ca_cert.pem()).unwrap();

    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    (path, Arc::new(config))
}

/// A gRPC receiver that records each request's path and answers every call with an
/// empty message and status 0 (an empty `ExportTraceServiceResponse` is a valid one).
/// Returns its port and the recorded paths.
async fn receiver(config: Arc<rustls::ServerConfig>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let recorded = paths.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return; // an untrusting client aborts the handshake
                };
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let recorded = recorded.clone();
                    async move {
                        recorded
                            .lock()
                            .unwrap()
                            .push(request.uri().path().to_string());
                        let _ = request.into_body().collect().await;
                        let mut trailers = hyper::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let frames = vec![
                            Ok::<_, Infallible>(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                            Ok(Frame::trailers(trailers)),
                        ];
                        let body = StreamBody::new(futures_util::stream::iter(frames));
                        Ok::<_, Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(body)
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, paths)
}

/// Exports one span through an exporter for `endpoint` trusting `ca_file`, and waits for
/// the export to finish (successfully or not).
async fn export_one_span(endpoint: &str, ca_file: &std::path::Path) {
    let exporter = hookline_telemetry::otlp_exporter(endpoint, Some(ca_file)).unwrap();
    let provider =
        hookline_telemetry::provider_with("hookline-test", |b| b.with_batch_exporter(exporter));
    provider.tracer("test").in_span("one span", |_| {});
    // The batch processor blocks its caller until the export is done: not on a runtime
    // thread, which the export itself needs.
    tokio::task::spawn_blocking(move || {
        let _ = provider.force_flush();
        let _ = provider.shutdown();
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_https_collector_whose_ca_is_trusted() {
    let (ca_file, server) = ca_and_server("trusted");
    let (port, paths) = receiver(server).await;
    export_one_span(&format!("https://localhost:{port}"), &ca_file).await;
    assert_eq!(*paths.lock().unwrap(), vec![EXPORT_PATH.to_string()]);
    std::fs::remove_file(ca_file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_to_an_https_collector_whose_certificate_is_not_trusted() {
    let (_, server) = ca_and_server("server");
    let (other_ca, _) = ca_and_server("other");
    let (port, paths) = receiver(server).await;
    export_one_span(&format!("https://localhost:{port}"), &other_ca).await;
    assert!(paths.lock().unwrap().is_empty(), "the handshake must fail");
    std::fs::remove_file(other_ca).unwrap();
}

#[test]
fn an_unreadable_ca_file_is_an_error_naming_the_variable() {
    let err = hookline_telemetry::otlp_exporter(
        "https://localhost:4317",
        Some(std::path::Path::new("/nonexistent/ca.pem")),
    )
    .err()
    .unwrap();
    assert!(err.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"), "{err}");
}
