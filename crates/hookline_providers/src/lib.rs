//! Webhook signature verification, one module per provider scheme.
//!
//! Ingest calls [`Verifier::verify`] on the raw request bytes before anything parses the
//! body. Every scheme is a pure function of (headers, query, body, now): no clock, no IO,
//! so each is tested with the providers' own published vectors and a frozen clock.
//! Secrets are compared in constant time, several secrets at once mean rotation (any one
//! matches), and errors never carry a secret or an expected signature. Each provider's
//! documented defaults (dedup key, resource key, lifecycle) that a `preset = "..."`
//! source fills are pure data in `hookline_domain::preset`. `docs/providers.md` documents each provider.

mod crypto;
mod error;
mod flutterwave;
mod generic;
mod github;
mod input;
mod paystack;
mod retell;
mod shopify;
mod slack;
mod standard_webhooks;
mod stripe;
mod token;
mod twilio;
mod verifier;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, VerifyError};
pub use standard_webhooks::Signer;
pub use verifier::{VERIFIERS, Verified, Verifier, verifiers};
