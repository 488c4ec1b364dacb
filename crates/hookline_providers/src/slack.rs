//! `verifier = "slack"`: `X-Slack-Signature: v0=<hex>` is the HMAC-SHA256 of
//! `v0:{X-Slack-Request-Timestamp}:{raw body}` under the signing secret; the timestamp must
//! be within `tolerance_secs` (default 300) of now in either direction, as Slack's SDKs check.

use hookline_domain::{Algorithm, Encoding, SourceConfig};

use crate::ConfigError;
use crate::generic::HmacVerifier;
use crate::input::{self, DEFAULT_TOLERANCE_SECS};

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-slack-signature";
/// The signed timestamp header (unix seconds).
pub(crate) const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

/// Slack's scheme; `signature_header`, `timestamp_header` and `tolerance_secs` may be set.
pub(crate) fn from_source(config: &SourceConfig) -> Result<HmacVerifier, ConfigError> {
    Ok(HmacVerifier::fixed(
        config,
        SIGNATURE_HEADER,
        Some("v0="),
        Algorithm::Sha256,
        Encoding::Hex,
    )?
    .timestamped(
        &input::header_name(config.timestamp_header.as_deref(), TIMESTAMP_HEADER),
        config.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS),
        "v0:",
        ":",
    ))
}
