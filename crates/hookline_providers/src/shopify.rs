//! `verifier = "shopify"`: `X-Shopify-Hmac-Sha256` is the base64 HMAC-SHA256 of the raw
//! body under the app's client secret. No timestamp: deduplication is the replay defence.
//! Shopify may keep signing with the old secret for up to an hour after a rotation, so
//! keep both in `secrets` meanwhile.

use hookline_domain::{Algorithm, Encoding, SourceConfig};

use crate::ConfigError;
use crate::generic::HmacVerifier;

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";

/// Shopify's scheme; `signature_header` may rename the header.
pub(crate) fn from_source(config: &SourceConfig) -> Result<HmacVerifier, ConfigError> {
    HmacVerifier::fixed(
        config,
        SIGNATURE_HEADER,
        None,
        Algorithm::Sha256,
        Encoding::Base64,
    )
}
