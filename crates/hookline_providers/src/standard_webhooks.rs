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
