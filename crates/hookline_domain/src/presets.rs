//! Provider presets: what `preset = "<name>"` fills in a source.
//!
//! Pure data, so every binary resolves the same source (the worker needs a preset's
//! lifecycle, ingest its templates) without linking the verifiers. Header names are left
//! to each verifier's default (its provider's documented header) unless the scheme is the
//! generic one.
//!
//! A dedup key must name the *event*, never the delivery attempt: Standard Webhooks, Svix
//! and Stripe re-sign every retry with a new timestamp, so timestamps and signatures never
//! appear in a key. Providers without a published lifecycle leave `resource_key`, `status`
//! and `lifecycle` unset.

use crate::{Algorithm, Encoding, SourceConfig};

/// `preset` names a preset that does not exist.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("unknown preset {0:?}; known: {known}", known = PRESETS.join(", "))]
pub struct UnknownPreset(pub String);

/// Names a source may give as `preset`.
pub const PRESETS: &[&str] = &[
    "standard-webhooks",
    "svix",
    "stripe",
    "github",
    "shopify",
    "slack",
    "retell",
    "paystack",
    "twilio",
    "flutterwave",
    "apify",
    "refersion",
];

/// The documented defaults for provider `name`, or `None` if there is no such preset.
///
/// The result carries no secrets (and no `public_url` for Twilio): those are the source's.
pub fn preset(name: &str) -> Option<SourceConfig> {
    let base = |verifier: &str, dedup_key: &str| SourceConfig {
        verifier: Some(verifier.into()),
        dedup_key: Some(dedup_key.into()),
        ..SourceConfig::default()
    };
    Some(match name {
        // The message id is stable across retries; the header has two spellings.
        "standard-webhooks" | "svix" => {
            base("standard-webhooks", "{header:webhook-id|header:svix-id}")
        }
        // `evt_...` is stable across retries and redeliveries.
        "stripe" => base("stripe", "{json:/id}"),
        // A GUID per delivery, reused on redelivery.
        "github" => base("github", "{header:x-github-delivery}"),
        // Stable across Shopify's retries of one delivery.
        "shopify" => base("shopify", "{header:x-shopify-webhook-id}"),
        // Events API; retries repeat `event_id` (slash commands need their own key).
        "slack" => base("slack", "{json:/event_id}"),
        // No event id: one event kind per call is the event.
        "retell" => lifecycle(
            base("retell", "{json:/event}:{json:/call/call_id}"),
            "{json:/call/call_id}",
            "{json:/event}",
            "retell-call",
        ),
        // No event id: the event kind plus the transaction id. The `payment` lifecycle
        // matches `data.status` case-insensitively, so `pending`, `processing`, `success` and
        // `failed` fit; other statuses (`abandoned`, `reversed`) need `[lifecycles.payment]`.
        "paystack" => lifecycle(
            base("paystack", "{json:/event}:{json:/data/id}"),
            "{json:/data/reference|json:/data/id}",
            "{json:/data/status}",
            "payment",
        ),
        // The idempotency token is per event and kept across retries; without it, the
        // message or call SID plus its status (each status callback is a distinct event).
        "twilio" => base(
            "twilio",
            "{header:i-twilio-idempotency-token|form:MessageSid|form:CallSid}:{form:MessageStatus|form:SmsStatus|form:CallStatus?}",
        ),
        // `data.id` is the transaction; the event kind separates e.g. a charge from its refund.
        "flutterwave" => base("flutterwave", "{json:/event}:{json:/data/id}"),
        // Apify does not sign: a shared token. The dispatch id changes per dispatch, the
        // run id + event type names the business event.
        "apify" => lifecycle(
            base("token", "{json:/eventData/actorRunId}:{json:/eventType}"),
            "{json:/eventData/actorRunId}",
            "{json:/resource/status}",
            "apify-run",
        ),
        // Generic HMAC: HMAC-SHA256, base64, raw body, in `Refersion-Signature`. No event
        // id: the topic plus the object id.
        "refersion" => SourceConfig {
            algorithm: Some(Algorithm::Sha256),
            encoding: Some(Encoding::Base64),
            signature_header: Some("refersion-signature".into()),
            ..base("hmac", "{header:refersion-topic}:{json:/id}")
        },
        _ => return None,
    })
}

fn lifecycle(config: SourceConfig, resource_key: &str, status: &str, name: &str) -> SourceConfig {
    SourceConfig {
        resource_key: Some(resource_key.into()),
        status: Some(status.into()),
        lifecycle: Some(name.into()),
        ..config
    }
}

/// Fills a source's unset fields from its preset, if it names one; explicit settings win.
///
/// # Errors
/// [`UnknownPreset`] when the name is not a preset.
pub fn resolve_preset(config: SourceConfig) -> Result<SourceConfig, UnknownPreset> {
    match config.preset.clone() {
        None => Ok(config),
        Some(name) => match preset(&name) {
            Some(defaults) => Ok(config.or(defaults)),
            None => Err(UnknownPreset(name)),
        },
    }
}
