/// Why a request's signature or token was not accepted. The text goes into the 401's
/// `detail`, so it names what was wrong and never a secret or an expected signature.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// A header (or query parameter) the scheme needs is absent.
    #[error("missing {0}")]
    Missing(String),
    /// A header is present but not in the scheme's format.
    #[error("malformed {0}")]
    Malformed(String),
    /// No configured secret produces a matching signature or token.
    #[error("signature does not match")]
    Mismatch,
    /// The signed timestamp is outside the accepted window.
    #[error("timestamp outside the {tolerance_secs} s tolerance")]
    Timestamp {
        /// The window, in seconds.
        tolerance_secs: u64,
    },
}

/// A source whose verifier settings are unusable: `key` names the setting (relative to
/// the source table), `message` says why. Raised at start-up, never per request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The offending key inside `[sources.<name>]`, e.g. `secrets`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }
}
