//! Presets resolve to working sources whose templates parse and render.

use hookline_domain::{
    Headers, Lifecycle, PRESETS, RequestParts, Secret, SourceConfig, Template, TemplateInput,
    preset, resolve_preset as resolve,
};

use super::support::{RIGHT, form_encode};
use crate::Verifier;

/// A source that names `name` and supplies only what a preset cannot: secrets, and the
/// public URL for Twilio.
fn resolved(name: &str) -> SourceConfig {
    resolve(SourceConfig {
        preset: Some(name.into()),
        secrets: vec![Secret::new(RIGHT)],
        public_url: (name == "twilio").then(|| "https://hooks.example.com/webhooks/twilio".into()),
        ..SourceConfig::default()
    })
    .unwrap()
}

fn templates(config: &SourceConfig) -> Vec<&str> {
    [&config.dedup_key, &config.resource_key, &config.status]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
}

#[test]
fn every_preset_resolves_to_a_source_its_verifier_accepts() {
    for name in PRESETS {
        let config = resolved(name);
        assert!(config.dedup_key.is_some(), "{name} has no dedup key");
        if let Err(err) = Verifier::from_source(&config) {
            panic!("{name}: {err}");
        }
    }
}

#[test]
fn every_preset_template_parses_and_no_dedup_key_reads_a_timestamp_or_signature() {
    for name in PRESETS {
        let config = resolved(name);
        for template in templates(&config) {
            if let Err(err) = template.parse::<Template>() {
                panic!("{name}: {template}: {err}");
            }
        }
        let dedup = config.dedup_key.unwrap_or_default().to_ascii_lowercase();
        for forbidden in ["timestamp", "signature", "hmac", "triggered-at"] {
            assert!(!dedup.contains(forbidden), "{name}: {dedup}");
        }
    }
}

#[test]
fn presets_set_resource_status_and_lifecycle_together_and_only_builtin_lifecycles() {
    for name in PRESETS {
        let config = resolved(name);
        let set = [
            config.resource_key.is_some(),
            config.status.is_some(),
            config.lifecycle.is_some(),
        ];
        assert!(set == [true; 3] || set == [false; 3], "{name}: {set:?}");
        if let Some(lifecycle) = &config.lifecycle {
            assert!(
                Lifecycle::builtin(lifecycle).is_some(),
                "{name}: {lifecycle}"
            );
        }
    }
}

#[test]
fn unknown_presets_are_none_and_an_error_naming_the_known_ones() {
    assert!(preset("stripe-v2").is_none());
    let err = resolve(SourceConfig {
        preset: Some("stripe-v2".into()),
        ..SourceConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("stripe-v2") && err.contains("refersion"),
        "{err}"
    );
}

#[test]
fn explicit_settings_override_every_preset_field() {
    let config = resolve(SourceConfig {
        preset: Some("stripe".into()),
        dedup_key: Some("{header:x-custom}".into()),
        tolerance_secs: Some(60),
        ..SourceConfig::default()
    })
    .unwrap();
    assert_eq!(config.dedup_key.as_deref(), Some("{header:x-custom}"));
    assert_eq!(config.tolerance_secs, Some(60));
    assert_eq!(config.verifier.as_deref(), Some("stripe"));
}

/// A sample delivery and what a preset's templates render from it: dedup key, then
/// resource key and status where the preset has a lifecycle.
struct Sample {
    preset: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: String,
    expected: &'static [&'static str],
}

fn sample(
    preset: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &str,
    expected: &'static [&'static str],
) -> Sample {
    Sample {
        preset,
        headers,
        body: body.to_string(),
        expected,
    }
}

impl Sample {
    fn render(&self) -> Vec<String> {
        let config = resolved(self.preset);
        let headers = Headers::new(
            self.headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
        );
        let input = TemplateInput::new(RequestParts {
            source: self.preset,
            headers: &headers,
            query: "",
            body: self.body.as_bytes(),
        });
        templates(&config)
            .into_iter()
            .map(|t| t.parse::<Template>().unwrap().render(&input).unwrap())
            .collect()
    }
}

#[test]
fn preset_templates_render_for_each_providers_sample_delivery() {
    let twilio_form = form_encode(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
    let table = [
        sample(
            "standard-webhooks",
            &[("webhook-id", "msg_1")],
            "{}",
            &["msg_1"],
        ),
        sample("svix", &[("svix-id", "msg_2")], "{}", &["msg_2"]),
        sample("stripe", &[], r#"{"id":"evt_1"}"#, &["evt_1"]),
        sample("github", &[("X-GitHub-Delivery", "g-1")], "{}", &["g-1"]),
        sample(
            "shopify",
            &[("X-Shopify-Webhook-Id", "s-1")],
            "{}",
            &["s-1"],
        ),
        sample("slack", &[], r#"{"event_id":"Ev1"}"#, &["Ev1"]),
        sample(
            "retell",
            &[],
            r#"{"event":"call_ended","call":{"call_id":"c1"}}"#,
            &["call_ended:c1", "c1", "call_ended"],
        ),
        sample(
            "paystack",
            &[],
            r#"{"event":"charge.success","data":{"id":302961,"status":"success","reference":"r1"}}"#,
            &["charge.success:302961", "r1", "success"],
        ),
        sample("twilio", &[], &twilio_form, &["SM1:delivered"]),
        sample(
            "twilio",
            &[("I-Twilio-Idempotency-Token", "tok-1")],
            r#"{"CallSid":"CA1"}"#,
            &["tok-1:"],
        ),
        sample(
            "flutterwave",
            &[],
            r#"{"event":"charge.completed","data":{"id":285959875}}"#,
            &["charge.completed:285959875"],
        ),
        sample(
            "apify",
            &[],
            r#"{"eventType":"ACTOR.RUN.SUCCEEDED","eventData":{"actorRunId":"r1"},"resource":{"status":"SUCCEEDED"}}"#,
            &["r1:ACTOR.RUN.SUCCEEDED", "r1", "SUCCEEDED"],
        ),
        sample(
            "refersion",
            &[("Refersion-Topic", "NEW_CONVERSION")],
            r#"{"id":987654321}"#,
            &["NEW_CONVERSION:987654321"],
        ),
    ];
    for name in PRESETS {
        assert!(
            table.iter().any(|s| s.preset == *name),
            "{name} has no sample"
        );
    }
    for sample in &table {
        assert_eq!(sample.render(), sample.expected, "{}", sample.preset);
    }
}

#[test]
fn paystack_statuses_fit_the_payment_lifecycle_case_insensitively() {
    let payment = Lifecycle::new("payment", &Lifecycle::builtin("payment").unwrap()).unwrap();
    for status in ["pending", "processing", "success", "failed"] {
        assert!(payment.canonical(status).is_some(), "{status}");
    }
}
