//! `verifier = "paystack"`: `x-paystack-signature` is the hex HMAC-SHA512 of the raw body
//! under the account's secret key (`sk_live_...` / `sk_test_...`). No timestamp:
//! deduplication is the replay defence.

use hookline_domain::{Algorithm, Encoding, SourceConfig};

use crate::ConfigError;
use crate::generic::HmacVerifier;

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-paystack-signature";

/// Paystack's scheme; `signature_header` may rename the header.
pub(crate) fn from_source(config: &SourceConfig) -> Result<HmacVerifier, ConfigError> {
    HmacVerifier::fixed(
        config,
        SIGNATURE_HEADER,
        None,
        Algorithm::Sha512,
        Encoding::Hex,
    )
}
