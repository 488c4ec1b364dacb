//! `verifier = "token"` (alias `apify`): a shared secret presented as is, for providers
//! that do not sign (Apify). Weaker than a signature: the body is not covered, so use it
//! only over TLS and rotate the token if a request log may have leaked it.

use std::time::SystemTime;

use hookline_domain::form::form_value;
use hookline_domain::{RequestParts, SourceConfig};

use crate::crypto::Keys;
use crate::verifier::Scheme;
use crate::{VerifyError, input};

/// Header the token is read from unless `token_header` says otherwise.
pub(crate) const DEFAULT_HEADER: &str = "x-hookline-token";

/// The query parameter accepted when the header is absent.
const QUERY_PARAM: &str = "token";

/// Shared-secret token in a header (`token_header`) or in the `?token=` query parameter.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    header: String,
    keys: Keys,
}

impl TokenVerifier {
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, crate::ConfigError> {
        Ok(Self {
            header: input::header_name(config.token_header.as_deref(), DEFAULT_HEADER),
            keys: Keys::utf8(&config.secrets)?,
        })
    }

    /// The token as presented: the header (an `Authorization` header may carry it as a
    /// `Bearer` credential, which Apify's headers template makes easy), else `?token=`.
    fn presented(&self, parts: &RequestParts<'_>) -> Option<Vec<u8>> {
        match parts.headers.get(&self.header) {
            Some(value) => {
                let value = value.trim_ascii();
                let token = match value.split_at_checked(7) {
                    Some((scheme, rest))
                        if self.header == "authorization"
                            && scheme.eq_ignore_ascii_case(b"bearer ") =>
                    {
                        rest.trim_ascii()
                    }
                    _ => value,
                };
                Some(token.to_vec())
            }
            None => form_value(parts.query, QUERY_PARAM),
        }
    }
}

impl Scheme for TokenVerifier {
    fn verify(&self, parts: &RequestParts<'_>, _now: SystemTime) -> Result<(), VerifyError> {
        let presented = self.presented(parts).ok_or_else(|| {
            VerifyError::Missing(format!(
                "{} header or {QUERY_PARAM} query parameter",
                self.header
            ))
        })?;
        if self.keys.equals(&presented) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}
