//! `verifier = "standard-webhooks"` (alias `svix`): the Standard Webhooks spec, which Svix
//! implements. Headers `webhook-id`, `webhook-timestamp`, `webhook-signature` (or their
//! `svix-` spellings); the signature list is space-separated `v1,<base64>` entries, each an
//! HMAC-SHA256 of `{id}.{timestamp}.{raw body}`. Any one valid `v1` entry passes; other
//! versions are ignored. The secret is `whsec_` + base64: the prefix is stripped and the
//! rest base64-decoded into the key (a secret without the prefix is taken as base64).
//! The timestamp must be within `tolerance_secs` (default 300) of now in either direction,
//! as the reference libraries check.

use std::time::SystemTime;

use hookline_domain::{Algorithm, RequestParts, SourceConfig};

use crate::crypto::{self, Keys};
use crate::input::{self, DEFAULT_TOLERANCE_SECS};
use crate::verifier::Scheme;
use crate::{ConfigError, VerifyError};

const ID_HEADERS: &[&str] = &["webhook-id", "svix-id"];
const TIMESTAMP_HEADERS: &[&str] = &["webhook-timestamp", "svix-timestamp"];
const SIGNATURE_HEADERS: &[&str] = &["webhook-signature", "svix-signature"];

/// The prefix Standard Webhooks secrets carry before their base64 key.
const SECRET_PREFIX: &str = "whsec_";

/// Standard Webhooks / Svix signatures with a ±`tolerance_secs` window.
#[derive(Debug, Clone)]
pub struct StandardWebhooksVerifier {
    keys: Keys,
    tolerance_secs: u64,
}

impl StandardWebhooksVerifier {
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        let keys = Keys::decoded(&config.secrets, |secret| {
            let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
            crypto::base64_decode(encoded)
                .ok_or_else(|| format!("is not {SECRET_PREFIX} followed by base64"))
        })?;
        Ok(Self {
            keys,
            tolerance_secs: config.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS),
        })
    }
}

impl Scheme for StandardWebhooksVerifier {
    fn verify(&self, parts: &RequestParts<'_>, now: SystemTime) -> Result<(), VerifyError> {
        let id = input::first_header(parts, ID_HEADERS)?;
        let timestamp = input::first_header(parts, TIMESTAMP_HEADERS)?;
        let list = input::first_header(parts, SIGNATURE_HEADERS)?;
        let signed_at = input::parse_unix(timestamp, "webhook-timestamp header")?;
        let signatures: Vec<Vec<u8>> = list
            .split_ascii_whitespace()
            .filter_map(|entry| entry.split_once(','))
            .filter(|(version, _)| *version == "v1")
            .filter_map(|(_, encoded)| crypto::base64_decode(encoded))
            .filter(|signature| !signature.is_empty())
            .collect();
        if signatures.is_empty() {
            return Err(VerifyError::Malformed(
                "webhook-signature header (no v1 signature)".into(),
            ));
        }
        let message: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", parts.body];
        if !self
            .keys
            .sign_matches(Algorithm::Sha256, &message, &signatures)
        {
            return Err(VerifyError::Mismatch);
        }
        input::check_window_secs(signed_at, now, self.tolerance_secs)
    }
}

/// Signs outgoing webhooks the Standard Webhooks way: what Hookline's HTTP destinations
/// send, verifiable by any Standard Webhooks library (and by [`StandardWebhooksVerifier`]).
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// A signer for `secret`, written `whsec_<base64>` (the Standard Webhooks form).
    ///
    /// # Errors
    /// A message saying what the secret should look like (never the secret itself).
    pub fn new(secret: &str) -> Result<Self, String> {
        let encoded = secret
            .strip_prefix(SECRET_PREFIX)
            .ok_or_else(|| format!("must be {SECRET_PREFIX} followed by base64"))?;
        match crypto::base64_decode(encoded) {
            Some(key) if !key.is_empty() => Ok(Self { key }),
            _ => Err(format!("must be {SECRET_PREFIX} followed by base64")),
        }
    }

    /// The `webhook-signature` value for message `id` sent at `timestamp` (unix seconds):
    /// `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let mac = crypto::hmac(
            Algorithm::Sha256,
            &self.key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        )
        .unwrap_or_default();
        format!("v1,{}", crypto::base64_encode(&mac))
    }
}

#[cfg(test)]
mod signer_tests {
    use std::time::{Duration, UNIX_EPOCH};

    use hookline_domain::{Headers, RequestParts, Secret};

    use super::*;

    #[test]
    fn what_the_signer_signs_the_verifier_accepts_and_a_tampered_body_fails() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signer = Signer::new(secret).unwrap();
        let signature = signer.sign("msg_1", 1_700_000_000, b"{\"a\":1}");
        assert!(signature.starts_with("v1,"));
        let verifier = StandardWebhooksVerifier::from_source(&SourceConfig {
            secrets: vec![Secret::new(secret)],
            ..SourceConfig::default()
        })
        .unwrap();
        let headers = Headers::new(vec![
            ("webhook-id".into(), b"msg_1".to_vec()),
            ("webhook-timestamp".into(), b"1700000000".to_vec()),
            ("webhook-signature".into(), signature.into_bytes()),
        ]);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_010);
        let parts = |body: &'static [u8]| RequestParts {
            source: "dest",
            headers: &headers,
            query: "",
            body,
        };
        verifier.verify(&parts(b"{\"a\":1}"), now).unwrap();
        assert!(verifier.verify(&parts(b"{\"a\":2}"), now).is_err());
    }

    #[test]
    fn a_secret_without_the_prefix_or_not_base64_is_refused_without_echoing_it() {
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_"] {
            let err = Signer::new(bad).unwrap_err();
            assert!(err.contains("whsec_"), "{err}");
            assert!(!err.contains("!!!") && !err.contains("MfKQ"), "{err}");
        }
    }
}
