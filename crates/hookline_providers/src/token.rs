use std::time::SystemTime;

use hookline_domain::{RequestParts, Secret, SourceConfig};
use subtle::ConstantTimeEq;

use crate::{ConfigError, VerifyError};

/// Shared-secret token, for providers that do not sign (Apify): the token arrives in a
/// header (`token_header`) or in the `?token=` query parameter.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    header: String,
    secrets: Vec<Secret>,
}

impl TokenVerifier {
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        if config.secrets.is_empty() || config.secrets.iter().any(|s| s.expose().is_empty()) {
            return Err(ConfigError::new(
                "secrets",
                "at least one non-empty secret is required",
            ));
        }
        Ok(Self {
            header: config
                .token_header
                .clone()
                .unwrap_or_else(|| "x-hookline-token".to_string())
                .to_ascii_lowercase(),
            secrets: config.secrets.clone(),
        })
    }

    pub(crate) fn verify(
        &self,
        parts: &RequestParts<'_>,
        _now: SystemTime,
    ) -> Result<(), VerifyError> {
        let query_token = query_param(parts.query, "token");
        let presented: &[u8] = match (parts.headers.get(&self.header), query_token.as_deref()) {
            (Some(header), _) => header,
            (None, Some(query)) => query.as_bytes(),
            (None, None) => {
                return Err(VerifyError::Missing(format!(
                    "{} header or token query parameter",
                    self.header
                )));
            }
        };
        // Check every secret (no early exit) so timing does not reveal which one matched.
        let matched = self.secrets.iter().fold(subtle::Choice::from(0), |acc, s| {
            acc | s.expose().as_bytes().ct_eq(presented)
        });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            ) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
