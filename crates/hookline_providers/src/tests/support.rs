//! Test fixtures: a request builder, an independent signer and a frozen clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use hookline_domain::{Algorithm, Headers, RequestParts, Secret, SourceConfig};

use crate::{Verifier, VerifyError};

/// 2025-01-01T00:00:00Z, the vectors' signing time, in milliseconds.
pub(crate) const T0_MS: i128 = 1_735_689_600_000;

/// Three Standard-Webhooks-shaped secrets (valid for every scheme).
pub(crate) const RIGHT: &str = "whsec_cmlnaHQtc2VjcmV0LTMyLWJ5dGVzLWxvbmctMDAwMDA=";
pub(crate) const WRONG: &str = "whsec_d3Jvbmctc2VjcmV0LTMyLWJ5dGVzLWxvbmctMDAwMDA=";
pub(crate) const OTHER: &str = "whsec_b3RoZXItc2VjcmV0LTMyLWJ5dGVzLWxvbmctMDAwMDA=";

/// The frozen clock at `ms` milliseconds after the epoch.
pub(crate) fn at_ms(ms: i128) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap())
}

/// A request as a test builds it; headers keep the case they are given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) query: String,
    pub(crate) body: Vec<u8>,
}

impl Request {
    pub(crate) fn new(body: &[u8]) -> Self {
        Self {
            body: body.to_vec(),
            ..Self::default()
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    pub(crate) fn query(mut self, query: &str) -> Self {
        self.query = query.to_string();
        self
    }

    pub(crate) fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    /// The request without header `name`.
    pub(crate) fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// The request with header `name`'s value replaced by `f(value)`.
    pub(crate) fn map_header(mut self, name: &str, f: impl Fn(&[u8]) -> Vec<u8>) -> Self {
        for (n, v) in &mut self.headers {
            if n.eq_ignore_ascii_case(name) {
                *v = f(v);
            }
        }
        self
    }

    /// The request with every header name passed through `f`.
    pub(crate) fn rename_headers(mut self, f: impl Fn(&str) -> String) -> Self {
        for (n, _) in &mut self.headers {
            *n = f(n);
        }
        self
    }

    pub(crate) fn verify(&self, verifier: &Verifier, now: SystemTime) -> Result<(), VerifyError> {
        let headers = Headers::new(self.headers.clone());
        let parts = RequestParts {
            source: "test",
            headers: &headers,
            query: &self.query,
            body: &self.body,
        };
        let verified = verifier.verify(parts, now)?;
        assert_eq!(verified.parts().body, self.body.as_slice());
        Ok(())
    }
}

/// A source using `verifier` with `secrets`.
pub(crate) fn source(verifier: &str, secrets: &[&str]) -> SourceConfig {
    SourceConfig {
        verifier: Some(verifier.into()),
        secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        ..SourceConfig::default()
    }
}

/// `config` with its secrets replaced.
pub(crate) fn with_secrets(config: &SourceConfig, secrets: &[&str]) -> SourceConfig {
    SourceConfig {
        secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        ..config.clone()
    }
}

pub(crate) fn build(config: &SourceConfig) -> Verifier {
    Verifier::from_source(config).unwrap_or_else(|err| panic!("{config:?}: {err}"))
}

/// HMAC computed with the `hmac` crate directly, independent of the code under test.
pub(crate) fn mac(algorithm: Algorithm, key: &[u8], content: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], content: &[&[u8]]) -> Vec<u8> {
        let mut mac = <M as KeyInit>::new_from_slice(key).unwrap();
        for piece in content {
            mac.update(piece);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, content),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, content),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, content),
    }
}

pub(crate) fn hex_mac(algorithm: Algorithm, key: &str, content: &[&[u8]]) -> String {
    hex::encode(mac(algorithm, key.as_bytes(), content))
}

pub(crate) fn b64_mac(algorithm: Algorithm, key: &str, content: &[&[u8]]) -> String {
    STANDARD.encode(mac(algorithm, key.as_bytes(), content))
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A Standard Webhooks secret's key: `whsec_` stripped, base64-decoded.
pub(crate) fn standard_key(secret: &str) -> Vec<u8> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap()
}

/// `application/x-www-form-urlencoded`, every byte but unreserved ones escaped.
pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Changes one character well inside a signature (or token) to another character that is
/// valid in hex and in base64, so the result still decodes but no longer matches.
pub(crate) fn flip_signature_char(value: &[u8]) -> Vec<u8> {
    let mut out = value.to_vec();
    let position = out
        .iter()
        .enumerate()
        .filter(|(_, b)| b.is_ascii_alphanumeric())
        .map(|(i, _)| i)
        .rev()
        .nth(4)
        .unwrap();
    out[position] = if out[position] == b'a' { b'b' } else { b'a' };
    out
}
