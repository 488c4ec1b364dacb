//! Hookline's configuration: one TOML file plus environment overrides, validated at
//! start-up into ready-to-use sources (preset applied, key templates, lifecycle).
//!
//! `HOOKLINE_CONFIG` names the file (default `config/hookline.toml`); any key can be
//! overridden as `HOOKLINE__SECTION__KEY`; a secret written `env:NAME` is read from the
//! environment, `file:/path` from a file. Each binary resolves and checks only what it
//! uses: the verifiers (and so the source secrets) are ingest's alone, built by it
//! from the validated config; this crate knows nothing of them. Every error names the key it is about, so a bad deploy fails at start-up
//! with a message an operator can act on.

mod broker;
mod compiled;
mod destinations;
mod redact;
mod secret;
mod settings;

pub use broker::BrokerUrls;
pub use compiled::{CompiledSource, Sources};
pub use destinations::{Destination, DestinationConfig};
pub use secret::resolve_secret;
pub use settings::{
    AdminConfig, AmqpConfig, Config, ConfigError, DatabaseConfig, HttpConfig, IngestConfig,
    RetentionConfig, TelemetryConfig, WorkerConfig,
};
