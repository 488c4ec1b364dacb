//! `verifier = "stripe"`: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>...]` where each
//! `v1` is the HMAC-SHA256 of `{t}.{raw body}`. The `whsec_...` secret is used verbatim as
//! UTF-8 bytes (unlike Standard Webhooks, it is not decoded). Several `v1` entries appear
//! while Stripe rolls a secret: any one valid entry passes; `v0` and unknown entries are
//! ignored.
//!
//! Timestamp policy: as Stripe's libraries, only timestamps older than the tolerance
//! (default 300 s) are rejected; a timestamp in the future passes. Kept compatible on
//! purpose: a request Stripe's own verification accepts must not be refused here.

use std::time::SystemTime;

use hookline_domain::{Algorithm, Encoding, RequestParts, SourceConfig};

use crate::crypto::{self, Keys};
use crate::input::{self, DEFAULT_TOLERANCE_SECS};
use crate::verifier::Scheme;
use crate::{ConfigError, VerifyError};

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "stripe-signature";

/// Stripe's `t=..,v1=..` signature, at most `tolerance_secs` old.
#[derive(Debug, Clone)]
pub struct StripeVerifier {
    keys: Keys,
    header: String,
    tolerance_secs: u64,
}

impl StripeVerifier {
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: Keys::utf8(&config.secrets)?,
            header: input::header_name(config.signature_header.as_deref(), SIGNATURE_HEADER),
            tolerance_secs: config.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS),
        })
    }
}

impl Scheme for StripeVerifier {
    fn verify(&self, parts: &RequestParts<'_>, now: SystemTime) -> Result<(), VerifyError> {
        let value = input::header(parts, &self.header)?;
        let malformed =
            |why: &str| VerifyError::Malformed(format!("{} header ({why})", self.header));
        let mut timestamps = input::comma_pairs(value).filter(|(k, _)| *k == "t");
        let t = match (timestamps.next(), timestamps.next()) {
            (Some((_, t)), None) => t,
            _ => return Err(malformed("expected exactly one t=")),
        };
        let signed_at = input::parse_unix(t, &format!("{} header (t=)", self.header))?;
        let signatures: Vec<Vec<u8>> = input::comma_pairs(value)
            .filter(|(k, _)| *k == "v1")
            .filter_map(|(_, v)| crypto::decode(Encoding::Hex, v))
            .collect();
        if signatures.is_empty() {
            return Err(malformed("no v1 signature"));
        }
        let message: [&[u8]; 3] = [t.as_bytes(), b".", parts.body];
        if !self
            .keys
            .sign_matches(Algorithm::Sha256, &message, &signatures)
        {
            return Err(VerifyError::Mismatch);
        }
        input::check_not_older_secs(signed_at, now, self.tolerance_secs)
    }
}
