//! Provider presets: what `preset = "<name>"` fills in a source.
//!
//! A dedup key must name the *event*, never the delivery attempt: Standard Webhooks, Svix
//! and Stripe re-sign every retry with a new timestamp, so timestamps and signatures never
//! appear in a key. Providers without a published lifecycle leave `resource_key`, `status`
//! and `lifecycle` unset.

use hookline_domain::{Algorithm, Encoding, SourceConfig};

use crate::{
    ConfigError, flutterwave, github, paystack, retell, shopify, slack, stripe, token, twilio,
};

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
    let base = |verifier: &str, signature_header: Option<&str>, dedup_key: &str| SourceConfig {
        verifier: Some(verifier.into()),
        signature_header: signature_header.map(Into::into),
        dedup_key: Some(dedup_key.into()),
        ..SourceConfig::default()
    };
    Some(match name {
        // The message id is stable across retries; the header has two spellings.
        "standard-webhooks" | "svix" => base(
            "standard-webhooks",
            None,
            "{header:webhook-id|header:svix-id}",
        ),
        // `evt_...` is stable across retries and redeliveries.
        "stripe" => base("stripe", Some(stripe::SIGNATURE_HEADER), "{json:/id}"),
        // A GUID per delivery, reused on redelivery.
        "github" => base(
            "github",
            Some(github::SIGNATURE_HEADER),
            "{header:x-github-delivery}",
        ),
        // Stable across Shopify's retries of one delivery.
        "shopify" => base(
            "shopify",
            Some(shopify::SIGNATURE_HEADER),
            "{header:x-shopify-webhook-id}",
        ),
        // Events API; retries repeat `event_id` (slash commands need their own key).
        "slack" => SourceConfig {
            timestamp_header: Some(slack::TIMESTAMP_HEADER.into()),
            ..base("slack", Some(slack::SIGNATURE_HEADER), "{json:/event_id}")
        },
        // No event id: one event kind per call is the event.
        "retell" => lifecycle(
            base(
                "retell",
                Some(retell::SIGNATURE_HEADER),
                "{json:/event}:{json:/call/call_id}",
            ),
            "{json:/call/call_id}",
            "{json:/event}",
            "retell-call",
        ),
        // No event id: the event kind plus the transaction id. The `payment` lifecycle
        // matches `data.status` case-insensitively, so `pending`, `processing`, `success` and
        // `failed` fit; other statuses (`abandoned`, `reversed`) need `[lifecycles.payment]`.
        "paystack" => lifecycle(
            base(
                "paystack",
                Some(paystack::SIGNATURE_HEADER),
                "{json:/event}:{json:/data/id}",
            ),
            "{json:/data/reference|json:/data/id}",
            "{json:/data/status}",
            "payment",
        ),
        // The idempotency token is per event and kept across retries; without it, the
        // message or call SID plus its status (each status callback is a distinct event).
        "twilio" => base(
            "twilio",
            Some(twilio::SIGNATURE_HEADER),
            "{header:i-twilio-idempotency-token|form:MessageSid|form:CallSid}:{form:MessageStatus|form:SmsStatus|form:CallStatus?}",
        ),
        // `data.id` is the transaction; the event kind separates e.g. a charge from its refund.
        "flutterwave" => base(
            "flutterwave",
            Some(flutterwave::SIGNATURE_HEADER),
            "{json:/event}:{json:/data/id}",
        ),
        // Apify does not sign: a shared token. The dispatch id changes per dispatch, the
        // run id + event type names the business event.
        "apify" => lifecycle(
            SourceConfig {
                token_header: Some(token::DEFAULT_HEADER.into()),
                ..base(
                    "token",
                    None,
                    "{json:/eventData/actorRunId}:{json:/eventType}",
                )
            },
            "{json:/eventData/actorRunId}",
            "{json:/resource/status}",
            "apify-run",
        ),
        // Generic HMAC: HMAC-SHA256, base64, raw body, in `Refersion-Signature`. No event
        // id: the topic plus the object id.
        "refersion" => SourceConfig {
            algorithm: Some(Algorithm::Sha256),
            encoding: Some(Encoding::Base64),
            ..base(
                "hmac",
                Some("refersion-signature"),
                "{header:refersion-topic}:{json:/id}",
            )
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
/// [`ConfigError`] on `preset` when the name is unknown.
pub fn resolve(config: SourceConfig) -> Result<SourceConfig, ConfigError> {
    match config.preset.clone() {
        None => Ok(config),
        Some(name) => match preset(&name) {
            Some(defaults) => Ok(config.or(defaults)),
            None => Err(ConfigError::new(
                "preset",
                format!("unknown preset {name:?}; known: {}", PRESETS.join(", ")),
            )),
        },
    }
}
