use std::time::SystemTime;

use hookline_domain::{RequestParts, SourceConfig};

use crate::token::TokenVerifier;
use crate::{ConfigError, VerifyError};

/// A request whose signature (or token) checked out. Only [`Verifier::verify`] makes one,
/// so code that takes a `Verified` cannot be handed unverified bytes.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    parts: RequestParts<'a>,
}

impl<'a> Verified<'a> {
    /// The verified request.
    pub fn parts(&self) -> RequestParts<'a> {
        self.parts
    }
}

/// One source's verifier, chosen by its `verifier` setting (enum dispatch: no allocation,
/// no vtable on the request path).
#[derive(Debug, Clone)]
pub enum Verifier {
    /// Shared token in a header or `?token=` (Apify, and anyone who cannot sign).
    Token(TokenVerifier),
}

impl Verifier {
    /// Builds the verifier a (preset-resolved) source asks for.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting that is missing or invalid.
    pub fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        match config.verifier.as_deref() {
            Some("token") => Ok(Verifier::Token(TokenVerifier::from_source(config)?)),
            Some(other) => Err(ConfigError::new(
                "verifier",
                format!("unknown verifier {other:?}"),
            )),
            None => Err(ConfigError::new(
                "verifier",
                "missing (set verifier or preset)",
            )),
        }
    }

    /// Checks `parts` against the source's secrets at time `now`.
    ///
    /// # Errors
    /// [`VerifyError`] saying what did not check out; the caller answers 401.
    pub fn verify<'a>(
        &self,
        parts: RequestParts<'a>,
        now: SystemTime,
    ) -> Result<Verified<'a>, VerifyError> {
        match self {
            Verifier::Token(v) => v.verify(&parts, now)?,
        }
        Ok(Verified { parts })
    }
}
