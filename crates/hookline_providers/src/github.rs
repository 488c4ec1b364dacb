//! `verifier = "github"`: `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the raw
//! body under the webhook secret. The legacy `X-Hub-Signature: sha1=<hex>` is accepted only
//! with `allow_legacy_sha1 = true`, and only when the SHA-256 header is absent, so a
//! request cannot downgrade itself. No timestamp: deduplication on `X-GitHub-Delivery` is
//! the replay defence.

use std::time::SystemTime;

use hookline_domain::{Algorithm, Encoding, RequestParts, SourceConfig};

use crate::crypto::Keys;
use crate::generic::HmacVerifier;
use crate::verifier::Scheme;
use crate::{ConfigError, VerifyError};

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// The legacy SHA-1 signature header.
const LEGACY_HEADER: &str = "x-hub-signature";

/// GitHub's SHA-256 check, plus the SHA-1 one when allowed.
#[derive(Debug, Clone)]
pub struct GitHubVerifier {
    sha256: HmacVerifier,
    legacy_sha1: Option<HmacVerifier>,
}

impl GitHubVerifier {
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        let sha256 = HmacVerifier::fixed(
            config,
            SIGNATURE_HEADER,
            Some("sha256="),
            Algorithm::Sha256,
            Encoding::Hex,
        )?;
        let legacy_sha1 = match config.allow_legacy_sha1 {
            Some(true) => Some(HmacVerifier::raw_body(
                Keys::utf8(&config.secrets)?,
                LEGACY_HEADER,
                Some("sha1="),
                Algorithm::Sha1,
                Encoding::Hex,
            )),
            _ => None,
        };
        Ok(Self {
            sha256,
            legacy_sha1,
        })
    }
}

impl Scheme for GitHubVerifier {
    fn verify(&self, parts: &RequestParts<'_>, now: SystemTime) -> Result<(), VerifyError> {
        match &self.legacy_sha1 {
            Some(legacy)
                if parts.headers.get(self.sha256.header()).is_none()
                    && parts.headers.get(legacy.header()).is_some() =>
            {
                legacy.verify(parts, now)
            }
            _ => self.sha256.verify(parts, now),
        }
    }
}
