//! Every vector in `tests/vectors/providers.json` (reproduced with each provider's own
//! library) verifies with the clock frozen at its signing time, and stops verifying
//! once its body is altered.

use hookline_domain::{Algorithm, SourceConfig};
use serde_json::Value;

use super::support::{Request, T0_MS, at_ms, build, form_encode, source};
use crate::VerifyError;

const VECTORS: &str = include_str!("../../tests/vectors/providers.json");

fn vectors(provider: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    let list = all[provider].as_array().cloned().unwrap_or_default();
    assert!(!list.is_empty(), "no {provider} vectors");
    list
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("vector has no {field}: {vector}"))
}

/// The request passes at `now_ms` for every listed secret on its own; with `covers_body`,
/// a one-byte change to the body then fails.
fn assert_vector(
    config: &SourceConfig,
    secrets: &[&str],
    request: &Request,
    now_ms: i128,
    covers_body: bool,
) {
    for secret in secrets {
        let verifier = build(&SourceConfig {
            secrets: vec![hookline_domain::Secret::new(*secret)],
            ..config.clone()
        });
        assert_eq!(
            request.verify(&verifier, at_ms(now_ms)),
            Ok(()),
            "{request:?}"
        );
        if covers_body {
            let mut body = request.body.clone();
            body.push(b' ');
            assert_eq!(
                request.clone().body(&body).verify(&verifier, at_ms(now_ms)),
                Err(VerifyError::Mismatch)
            );
        }
    }
}

fn secrets<'a>(vector: &'a Value, fields: &[&str]) -> Vec<&'a str> {
    fields.iter().filter_map(|f| vector[*f].as_str()).collect()
}

fn seconds(vector: &Value, field: &str) -> i128 {
    text(vector, field).parse::<i128>().unwrap() * 1000
}

#[test]
fn standard_webhooks_and_svix_vectors_verify() {
    for (provider, prefix, verifier) in [
        ("standard_webhooks", "webhook", "standard-webhooks"),
        ("svix", "svix", "svix"),
    ] {
        for v in vectors(provider) {
            let field = |name: &str| text(&v, &format!("{prefix}_{name}")).to_string();
            let request = Request::new(text(&v, "body").as_bytes())
                .header(&format!("{prefix}-id"), field("id"))
                .header(&format!("{prefix}-timestamp"), field("timestamp"))
                .header(&format!("{prefix}-signature"), field("signature"));
            let keys = secrets(&v, &["secret", "secret_new", "secret_old"]);
            let now = field("timestamp").parse::<i128>().unwrap() * 1000;
            assert_vector(&source(verifier, &[]), &keys, &request, now, true);
        }
    }
}

#[test]
fn stripe_vectors_verify_with_the_secret_used_verbatim() {
    for v in vectors("stripe") {
        let request = Request::new(text(&v, "body").as_bytes())
            .header("Stripe-Signature", text(&v, "stripe_signature"));
        let keys = secrets(&v, &["secret", "secret_previous"]);
        assert_vector(&source("stripe", &[]), &keys, &request, T0_MS, true);
    }
}

#[test]
fn github_vectors_verify() {
    for v in vectors("github") {
        let request = Request::new(text(&v, "body").as_bytes())
            .header("X-Hub-Signature-256", text(&v, "x_hub_signature_256"));
        assert_vector(
            &source("github", &[]),
            &[text(&v, "secret")],
            &request,
            T0_MS,
            true,
        );
    }
}

#[test]
fn shopify_vectors_verify() {
    for v in vectors("shopify") {
        let mut request = Request::new(text(&v, "body").as_bytes());
        for (name, value) in v["headers"].as_object().unwrap() {
            request = request.header(name, value.as_str().unwrap());
        }
        assert_vector(
            &source("shopify", &[]),
            &[text(&v, "secret")],
            &request,
            T0_MS,
            true,
        );
    }
}

#[test]
fn slack_vectors_verify_at_their_timestamp() {
    for v in vectors("slack") {
        let request = Request::new(text(&v, "body").as_bytes())
            .header(
                "X-Slack-Request-Timestamp",
                text(&v, "x_slack_request_timestamp"),
            )
            .header("X-Slack-Signature", text(&v, "x_slack_signature"));
        let now = seconds(&v, "x_slack_request_timestamp");
        assert_vector(
            &source("slack", &[]),
            &[text(&v, "secret")],
            &request,
            now,
            true,
        );
    }
}

#[test]
fn retell_vectors_verify_at_their_millisecond_timestamp() {
    for v in vectors("retell") {
        let header = text(&v, "x_retell_signature");
        let now = header
            .split(',')
            .find_map(|item| item.strip_prefix("v="))
            .unwrap()
            .parse::<i128>()
            .unwrap();
        let request =
            Request::new(text(&v, "body").as_bytes()).header("X-Retell-Signature", header);
        assert_vector(
            &source("retell", &[]),
            &[text(&v, "api_key")],
            &request,
            now,
            true,
        );
    }
}

#[test]
fn paystack_vectors_verify() {
    for v in vectors("paystack") {
        let request = Request::new(text(&v, "body").as_bytes())
            .header("x-paystack-signature", text(&v, "x_paystack_signature"));
        assert_vector(
            &source("paystack", &[]),
            &[text(&v, "secret_key")],
            &request,
            T0_MS,
            true,
        );
    }
}

#[test]
fn twilio_vectors_verify_with_the_query_appended_to_public_url() {
    for v in vectors("twilio") {
        let (public_url, query) = text(&v, "url").split_once('?').unwrap();
        // POST parameters arrive form-encoded, in any order (here: reversed).
        let params: Vec<(&str, &str)> = v["params"]
            .as_object()
            .map(|p| {
                p.iter()
                    .rev()
                    .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        let body = match v["body"].as_str() {
            Some(json) => json.to_string(),
            None => form_encode(&params),
        };
        let mut request = Request::new(body.as_bytes())
            .query(query)
            .header("X-Twilio-Signature", text(&v, "x_twilio_signature"));
        if let Some(settings) = v["x_twilio_webhooks_signature_settings"].as_str() {
            request = request.header("X-Twilio-Webhooks-Signature-Settings", settings);
        }
        let shared_key = v["secret"].is_string();
        let config = SourceConfig {
            public_url: Some(public_url.into()),
            algorithm: shared_key.then_some(Algorithm::Sha256),
            ..source("twilio", &[])
        };
        let keys = secrets(&v, &["auth_token", "secret"]);
        assert_vector(&config, &keys, &request, T0_MS, true);
    }
}

#[test]
fn flutterwave_vectors_verify_by_v4_signature_and_by_v3_hash() {
    for v in vectors("flutterwave") {
        let body = text(&v, "body").as_bytes();
        let both = Request::new(body)
            .header("verif-hash", text(&v, "verif_hash"))
            .header("flutterwave-signature", text(&v, "flutterwave_signature"));
        let config = source("flutterwave", &[]);
        let secret = [text(&v, "secret_hash")];
        assert_vector(&config, &secret, &both, T0_MS, true);
        assert_vector(
            &config,
            &secret,
            &both.clone().without("verif-hash"),
            T0_MS,
            true,
        );
        assert_vector(
            &config,
            &secret,
            &both.without("flutterwave-signature"),
            T0_MS,
            false,
        );
    }
}

#[test]
fn apify_vectors_verify_by_query_token_or_bearer_header() {
    for v in vectors("apify") {
        let (_, query) = text(&v, "request_url").split_once('?').unwrap();
        let body = text(&v, "body").as_bytes();
        let mut with_headers = Request::new(body);
        for (name, value) in v["headers"].as_object().unwrap() {
            with_headers = with_headers.header(name, value.as_str().unwrap());
        }
        let in_url = with_headers.clone().query(query);
        assert_vector(
            &source("apify", &[]),
            &["<secret in URL>"],
            &in_url,
            T0_MS,
            false,
        );
        let header_config = SourceConfig {
            token_header: Some("Authorization".into()),
            ..source("apify", &[])
        };
        let token = ["<token you put in headersTemplate>"];
        assert_vector(&header_config, &token, &with_headers, T0_MS, false);
    }
}
