//! TLS to PostgreSQL with rustls, with libpq's `sslmode` and `sslrootcert` read from
//! `database.url`.
//!
//! tokio-postgres (diesel-async's driver) understands `sslmode=disable|prefer|require`
//! and nothing about certificates, so the URL is parsed here: `sslmode` and `sslrootcert`
//! are taken out, the rest goes to tokio-postgres, and the certificate checks libpq makes
//! for each mode are made by the rustls verifier:
//!
//! | `sslmode` | encrypted | certificate chain | host name |
//! |---|---|---|---|
//! | `disable` | no | | |
//! | `prefer` (the default, as in libpq) | if the server offers it | not checked | not checked |
//! | `require` | yes | not checked (checked like `verify-ca` when `sslrootcert` is set, as libpq does) | not checked |
//! | `verify-ca` | yes | against `sslrootcert` | not checked |
//! | `verify-full` | yes | against `sslrootcert` | must match the URL's host |
//!
//! `sslrootcert` is a PEM file of trusted certificates, or `system` for the system trust
//! store; without it, `verify-ca`/`verify-full` use the system trust store. Every error
//! names the URL with its password redacted.

use std::io;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use hookline_domain::redact_url;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::DbError;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A parsed `database.url`: the driver's settings plus how the server's certificate is
/// checked. Parsed once (the CA file is read once), then used for every connection.
pub(crate) struct PgTarget {
    config: tokio_postgres::Config,
    tls: MakeRustls,
    redacted: String,
}

impl PgTarget {
    /// Parses `url` and loads its `sslrootcert`.
    ///
    /// # Errors
    /// [`DbError::Config`] naming what is wrong (an unknown `sslmode`, an unreadable or
    /// empty CA file, a URL tokio-postgres rejects), with the password redacted.
    pub(crate) fn parse(url: &str) -> Result<Self, DbError> {
        let redacted = redact_url(url);
        let bad = |message: String| DbError::Config(format!("database.url {redacted}: {message}"));
        let (rest, mode, rootcert) = split_tls_params(url).map_err(bad)?;
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| bad(format!("not a PostgreSQL URL: {e}")))?;
        // JIT off for every session (after the URL's own `options`, which may turn it
        // back on). Hookline's statements are short; on tables autovacuum has not yet
        // analysed, PostgreSQL's row estimates can cross jit_above_cost and each
        // statement then spends ~90 ms compiling (measured on the delivery claim: 87 ms
        // of 88 ms), which held one HTTP destination to ~110 deliveries/s.
        let options = match config.get_options() {
            Some(own) => format!("-c jit=off {own}"),
            None => "-c jit=off".to_string(),
        };
        config.options(&options);
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        // libpq: with a CA file, `require` checks the chain as `verify-ca` does.
        let check = match (mode, &rootcert) {
            (SslMode::Require, Some(_)) | (SslMode::VerifyCa, _) => Check::Chain,
            (SslMode::VerifyFull, _) => Check::Full,
            _ => Check::Nothing,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            Check::Nothing => Arc::new(Unverified {
                provider: provider.clone(),
            }),
            Check::Chain | Check::Full => {
                let roots = Arc::new(root_store(rootcert.as_deref()).map_err(bad)?);
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                        .build()
                        .map_err(|e| bad(format!("sslrootcert: {e}")))?;
                if check == Check::Full {
                    webpki
                } else {
                    Arc::new(ChainOnly {
                        roots,
                        provider: provider.clone(),
                        webpki,
                    })
                }
            }
        };
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            config,
            tls: MakeRustls {
                config: Arc::new(client),
                mode,
                checks_host: check == Check::Full,
            },
            redacted,
        })
    }

    /// Opens one connection.
    ///
    /// # Errors
    /// [`DbError::Unavailable`] naming the (redacted) URL and the cause: refused, a TLS
    /// handshake or certificate verification that failed, authentication.
    pub(crate) async fn connect(&self) -> Result<AsyncPgConnection, DbError> {
        let unavailable = |e: String| DbError::Unavailable(format!("{}: {e}", self.redacted));
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| unavailable(with_causes(&e)))?;
        AsyncPgConnection::try_from_client_and_connection(client, connection)
            .await
            .map_err(|e| unavailable(e.to_string()))
    }
}

/// `error` and its chain of causes (tokio-postgres's own message for a failed handshake
/// is only "error performing TLS handshake"; the cause says why).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.ends_with(&next_text) {
            text.push_str(": ");
            text.push_str(&next_text);
        }
        cause = next.source();
    }
    text
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    Full,
}

/// Takes `sslmode` and `sslrootcert` out of `url`'s query (tokio-postgres rejects
/// verify-ca/verify-full and unknown keys); returns the rest of the URL, the mode (default
/// `prefer`, as libpq) and the CA file.
fn split_tls_params(url: &str) -> Result<(String, SslMode, Option<String>), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("expected postgres://user@host:port/database".into());
    }
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), SslMode::Prefer, None));
    };
    let mut mode = SslMode::Prefer;
    let mut rootcert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            String::from_utf8(hookline_domain::form::percent_decode(
                value.as_bytes(),
                false,
            ))
            .map_err(|_| format!("{key} is not UTF-8"))
        };
        match key {
            "sslmode" => {
                let value = decoded()?;
                mode = SslMode::parse(&value).ok_or_else(|| {
                    format!(
                        "sslmode={value} is not one of disable, prefer, require, verify-ca, verify-full"
                    )
                })?;
            }
            "sslrootcert" => rootcert = Some(decoded()?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, rootcert))
}

/// The trust anchors: the certificates of a PEM file, or the system store.
fn root_store(rootcert: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match rootcert {
        None | Some("system") => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(
                    "no certificate in the system trust store (install ca-certificates, or set sslrootcert=<file>)"
                        .into(),
                );
            }
        }
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert={path}: cannot read certificates: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("sslrootcert={path}: no usable certificate in it"));
            }
        }
    }
    Ok(roots)
}

/// Makes the TLS session of each connection. Cheap to clone (one shared rustls config).
#[derive(Clone)]
struct MakeRustls {
    config: Arc<ClientConfig>,
    mode: SslMode,
    checks_host: bool,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, TlsError> {
        let name = match ServerName::try_from(host.to_string()) {
            Ok(name) => name,
            // A host name is only needed when it is checked; otherwise any name will do
            // (an IP address name also keeps SNI off the wire).
            Err(_) if !self.checks_host => {
                ServerName::IpAddress(std::net::Ipv4Addr::UNSPECIFIED.into())
            }
            Err(e) => {
                return Err(TlsError(format!(
                    "sslmode={}: host {host:?} cannot be verified: {e}",
                    self.mode.as_str()
                )));
            }
        };
        Ok(RustlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
            mode: self.mode,
            host: host.to_string(),
        })
    }
}

/// One connection's handshake.
struct RustlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    mode: SslMode,
    host: String,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = TlsError;
    type Future = BoxFuture<'static, Result<RustlsStream<S>, TlsError>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            self.connector
                .connect(self.name, stream)
                .await
                .map(RustlsStream)
                .map_err(|e| {
                    TlsError(format!(
                        "TLS handshake with {} failed (sslmode={}): {e}",
                        self.host,
                        self.mode.as_str()
                    ))
                })
        })
    }
}

/// A TLS failure, worded for an operator (it names the mode and, for a verification
/// failure, rustls's reason, e.g. `invalid peer certificate: UnknownIssuer`).
#[derive(Debug)]
struct TlsError(String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// An established TLS session as tokio-postgres drives it.
struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // No SCRAM channel binding: tls-server-end-point needs the hash named by the
        // certificate's signature algorithm, and a wrong one would fail authentication;
        // without it SCRAM still authenticates (channel_binding=prefer, the default).
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// `prefer`/`require`: encrypted, the certificate unchecked (libpq's behaviour). The
/// handshake signatures are still verified, so the session key belongs to whoever holds
/// the certificate's private key.
#[derive(Debug)]
struct Unverified {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    /// For the handshake signatures, which are checked as in `verify-full`.
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_taken_out_and_the_rest_is_kept() {
        let (rest, mode, root) = split_tls_params(
            "postgres://u:pw@db:5432/h?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:pw@db:5432/h?application_name=x");
        assert_eq!(mode, SslMode::VerifyFull);
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));

        let (rest, mode, root) = split_tls_params("postgres://root@127.0.0.1/hookline").unwrap();
        assert_eq!(
            (rest.as_str(), mode, root),
            ("postgres://root@127.0.0.1/hookline", SslMode::Prefer, None)
        );
    }

    #[test]
    fn a_bad_sslmode_or_ca_file_is_a_config_error_naming_it_without_the_password() {
        for (url, expected) in [
            (
                "postgres://u:pa55@db/h?sslmode=verify-everything",
                "sslmode=verify-everything",
            ),
            (
                "postgres://u:pa55@db/h?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
                "sslrootcert=/nonexistent/ca.pem",
            ),
            ("mysql://u:pa55@db/h", "postgres://"),
        ] {
            let err = PgTarget::parse(url).err().unwrap();
            assert!(matches!(err, DbError::Config(_)), "{err}");
            let text = err.to_string();
            assert!(text.contains(expected), "{text}");
            assert!(text.contains("database.url"), "{text}");
            assert!(!text.contains("pa55"), "{text}");
        }
    }
}
