//! `verifier = "retell"`: `x-retell-signature: v=<unix ms>,d=<hex>` where `d` is the
//! HMAC-SHA256 of `{raw body}{v}` (no separator) under the API key that carries the
//! webhook badge. The raw bytes are verified: Retell's samples re-serialise JSON, which
//! only agrees for compact bodies. `v` must be within `tolerance_secs` (default 300) of
//! now in either direction, compared in milliseconds, as Retell's SDK checks.

use std::time::SystemTime;

use hookline_domain::{Algorithm, Encoding, RequestParts, SourceConfig};

use crate::crypto::{self, Keys};
use crate::input::{self, DEFAULT_TOLERANCE_SECS};
use crate::verifier::Scheme;
use crate::{ConfigError, VerifyError};

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-retell-signature";

/// Retell's `v=..,d=..` signature with a ±`tolerance_secs` window.
#[derive(Debug, Clone)]
pub struct RetellVerifier {
    keys: Keys,
    header: String,
    tolerance_secs: u64,
}

impl RetellVerifier {
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            keys: Keys::utf8(&config.secrets)?,
            header: input::header_name(config.signature_header.as_deref(), SIGNATURE_HEADER),
            tolerance_secs: config.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS),
        })
    }
}

impl Scheme for RetellVerifier {
    fn verify(&self, parts: &RequestParts<'_>, now: SystemTime) -> Result<(), VerifyError> {
        let value = input::header(parts, &self.header)?;
        let field = |name: &str| {
            input::comma_pairs(value)
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
        };
        let (Some(v), Some(d)) = (field("v"), field("d")) else {
            return Err(input::malformed_header(&self.header));
        };
        let signed_at_ms = input::parse_unix(v, &format!("{} header (v=)", self.header))?;
        let signature = crypto::decode(Encoding::Hex, d)
            .ok_or_else(|| input::malformed_header(&self.header))?;
        let message: [&[u8]; 2] = [parts.body, v.as_bytes()];
        if !self
            .keys
            .sign_matches(Algorithm::Sha256, &message, &[signature])
        {
            return Err(VerifyError::Mismatch);
        }
        input::check_window(signed_at_ms, now, self.tolerance_secs)
    }
}
