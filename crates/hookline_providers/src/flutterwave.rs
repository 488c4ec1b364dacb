//! `verifier = "flutterwave"`: v4 sends `flutterwave-signature`, the base64 HMAC-SHA256 of
//! the raw body under the dashboard's secret hash; v3 sends `verif-hash`, the secret hash
//! itself. When the v4 signature is present it alone decides (a valid `verif-hash` cannot
//! rescue a body that does not match it); otherwise `verif-hash` is compared in constant
//! time. No timestamp: deduplication is the replay defence.

use std::time::SystemTime;

use hookline_domain::{Algorithm, Encoding, RequestParts, SourceConfig};

use crate::crypto::Keys;
use crate::generic::HmacVerifier;
use crate::verifier::Scheme;
use crate::{ConfigError, VerifyError, input};

/// The v4 signature header.
pub(crate) const SIGNATURE_HEADER: &str = "flutterwave-signature";
/// The v3 header carrying the secret hash verbatim.
const V3_HEADER: &str = "verif-hash";

/// Flutterwave's v4 signature, or its v3 shared hash when no signature is sent.
#[derive(Debug, Clone)]
pub struct FlutterwaveVerifier {
    v4: HmacVerifier,
    v3: Keys,
}

impl FlutterwaveVerifier {
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            v4: HmacVerifier::fixed(
                config,
                SIGNATURE_HEADER,
                None,
                Algorithm::Sha256,
                Encoding::Base64,
            )?,
            v3: Keys::utf8(&config.secrets)?,
        })
    }
}

impl Scheme for FlutterwaveVerifier {
    fn verify(&self, parts: &RequestParts<'_>, now: SystemTime) -> Result<(), VerifyError> {
        if parts.headers.get(self.v4.header()).is_some() {
            return self.v4.verify(parts, now);
        }
        let hash = input::header(parts, V3_HEADER).map_err(|err| match err {
            VerifyError::Missing(_) => {
                VerifyError::Missing(format!("{} or {V3_HEADER} header", self.v4.header()))
            }
            other => other,
        })?;
        if self.v3.equals(hash.as_bytes()) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}
