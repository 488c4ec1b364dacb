//! TLS for tests: a throw-away certificate authority, server certificates it signs, and
//! a TLS-terminating proxy, so a test can stand up "a TLS endpoint" in front of the shared
//! plain-TCP broker without reconfiguring it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

use crate::urls::{amqp_url, host_port, with_addr};

/// A certificate authority made for one test, with its certificate written to a PEM file
/// (removed on drop) for config keys that take a path.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    path: PathBuf,
}

impl TestCa {
    /// A fresh CA named `name`.
    ///
    /// # Panics
    /// If key generation or the temporary file fails (a broken test machine).
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let cert_pem = cert.pem();
        let path =
            std::env::temp_dir().join(format!("hl_test_ca_{}.pem", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, &cert_pem).expect("write CA file");
        Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            path,
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The PEM file holding the CA certificate.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A server config presenting a certificate this CA signed for `localhost` and
    /// `127.0.0.1`, offering `alpn` protocols (e.g. `h2` for gRPC; empty for none).
    ///
    /// # Panics
    /// If signing fails.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("valid names");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        let chain = vec![CertificateDer::from(cert.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server certificate and key");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Accepts TLS on `127.0.0.1:<random>` and forwards the decrypted bytes to a plain TCP
/// server: a local TLS endpoint in front of the shared broker.
pub struct TlsProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// A TLS endpoint for the test broker (`HOOKLINE_TEST_AMQP_URL`) with a certificate
    /// signed by `ca`; reach it through [`TlsProxy::amqps_url`].
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn broker(ca: &TestCa) -> Self {
        Self::start(&host_port(&amqp_url()), ca.server_config(&[])).await
    }

    /// The test broker's URL (credentials, virtual host) as `amqps://` to this proxy.
    pub fn amqps_url(&self) -> String {
        let plain = with_addr(&amqp_url(), self.addr);
        plain.replacen("amqp://", "amqps://", 1)
    }

    /// Terminates TLS with `config` and forwards to `target` (`host:port`).
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start(target: &str, config: Arc<ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let target = target.to_string();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    // A failed handshake (a client that does not trust the CA) just
                    // closes the connection, as a real TLS server would.
                    let Ok(mut inbound) = acceptor.accept(inbound).await else {
                        return;
                    };
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Self { addr, accept }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
