//! Hookline's domain: the pure vocabulary every other crate speaks.
//!
//! Source configuration, key templates (how a dedup key, resource key and status are
//! read out of a request), lifecycles (the forward-only status machine), the event
//! states, and the one percent/form decoder ([`form`]) that key templates and signature
//! verifiers share. Nothing here does IO: no clock, no network, no environment, no
//! files. That keeps the rules that decide "is this a duplicate?" and "may this status
//! move?" testable as plain functions.

mod config;
mod delivery;
mod duration;
pub mod form;
mod lifecycle;
mod presets;
mod request;
mod retention;
mod secret;
mod state;
mod template;

pub use config::{Algorithm, Encoding, SourceConfig};
pub use delivery::{DeliveryState, UnknownDeliveryState};
pub use duration::{BadDuration, HumanDuration, parse_duration};
pub use lifecycle::{Lifecycle, LifecycleConfig, LifecycleError, Outcome};
pub use presets::{PRESETS, UnknownPreset, preset, resolve_preset};
pub use request::{Headers, RequestParts};
pub use retention::{Retention, RetentionError, RetentionField, RetentionPolicy};
pub use secret::{Secret, redact_url};
pub use state::{EventState, UnknownState};
pub use template::{
    MAX_RENDERED_BYTES, Piece, Template, TemplateError, TemplateInput, TemplateParseError,
    placeholders,
};

// A dev-dependency of the property tests (tests/*_properties.rs), which the unit tests
// see too.
#[cfg(test)]
use proptest as _;
