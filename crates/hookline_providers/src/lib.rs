//! Webhook signature verification, one module per provider scheme.
//!
//! Ingest calls [`Verifier::verify`] on the raw request bytes before anything parses the
//! body. Every scheme is a pure function of (headers, query, body, now): no clock, no IO,
//! so each is tested with the providers' own published vectors and a frozen clock.
//! Secrets are compared in constant time. [`preset`] holds each provider's documented
//! defaults (headers, dedup key, resource key, lifecycle) that a `preset = "..."` source fills.

mod error;
mod presets;
mod token;
mod verifier;

pub use error::{ConfigError, VerifyError};
pub use presets::{PRESETS, preset, resolve};
pub use verifier::{Verified, Verifier};
