//! One end-to-end test per provider preset, through the running ingest and real PostgreSQL
//! and RabbitMQ: a webhook signed as the provider documents it is accepted (202); the
//! provider's retry is a duplicate of the same event (200); the stored dedup key is the
//! provider's own event identifier; a tampered copy sent with the original signature, and a
//! copy signed with another secret, are refused (401 `invalid_signature`).
//!
//! Standard Webhooks, Svix, Stripe, Slack and Retell re-sign every retry with a new
//! timestamp, so their retry is signed 7 s later; the other schemes carry no timestamp and
//! their retry is the same delivery sent again. Every signature here is computed from the
//! providers' documentation, not by `hookline_providers`, so a verifier bug fails a test.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use hookline_testkit::{TestDb, TestIngest, amqp_prefix, config_toml, count, now_secs};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// What a provider sends besides the body.
struct Delivery {
    headers: Vec<(String, String)>,
    /// The raw query string, without `?`.
    query: String,
    /// The signature (or token) as sent: it must never end up in a dedup key.
    credential: String,
}

impl Delivery {
    /// `headers` plus the credential in header `name`.
    fn signed(name: &str, credential: String, headers: &[(&str, &str)]) -> Self {
        let mut delivery = Self::unsigned(credential, headers);
        delivery
            .headers
            .push((name.to_string(), delivery.credential.clone()));
        delivery
    }

    /// `headers` only: the credential travels elsewhere (the query string).
    fn unsigned(credential: String, headers: &[(&str, &str)]) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            query: String::new(),
            credential,
        }
    }

    fn with_query(mut self, query: String) -> Self {
        self.query = query;
        self
    }
}

/// One provider preset as a source, a realistic webhook from it, and how it signs.
struct Provider {
    /// The preset, also the source's name and path segment.
    preset: &'static str,
    /// Settings the source needs besides `preset` and `secrets`.
    extra: &'static str,
    secret: &'static str,
    /// A secret of the same kind that the source does not know.
    other_secret: &'static str,
    body: &'static str,
    /// Signs `body` with `secret` at unix time `now` (seconds).
    sign: fn(secret: &str, body: &str, now: i64) -> Delivery,
    /// Whether the provider re-signs a retry with a new timestamp.
    re_signs_retries: bool,
    /// An edit to `body` that the signature must catch; `None` where the scheme does not
    /// cover the body (a shared token).
    tamper: Option<(&'static str, &'static str)>,
    dedup_key: &'static str,
    /// `(resource_key, status)` for presets with a lifecycle.
    resource: Option<(&'static str, &'static str)>,
}

impl Provider {
    fn source_toml(&self) -> String {
        format!(
            "\n[sources.{name}]\npreset = \"{name}\"\nsecrets = [\"{secret}\"]\n{extra}\n",
            name = self.preset,
            secret = self.secret,
            extra = self.extra,
        )
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], content: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(content);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], content: &[u8]) -> Vec<u8> {
    mac::<Hmac<Sha256>>(key, content)
}

fn hex_hmac_sha256(secret: &str, content: &str) -> String {
    hex::encode(hmac_sha256(secret.as_bytes(), content.as_bytes()))
}

fn base64_hmac_sha256(secret: &str, content: &str) -> String {
    BASE64.encode(hmac_sha256(secret.as_bytes(), content.as_bytes()))
}

async fn send(app: &TestIngest, source: &str, delivery: &Delivery, body: &str) -> (u16, Value) {
    let path = match delivery.query.as_str() {
        "" => source.to_string(),
        query => format!("{source}?{query}"),
    };
    // Every body here is either a JSON object or a form.
    let content_type = if body.starts_with('{') {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let mut headers: Vec<(&str, &str)> = vec![("content-type", content_type)];
    headers.extend(
        delivery
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    let response = app.post(&path, &headers, body.to_string()).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("every answer is JSON"))
}

/// The whole story for one provider; see the module docs.
async fn assert_accepted_then_duplicate_then_forgeries_refused(p: &Provider) {
    let db = TestDb::new().await;
    let app = TestIngest::spawn(&config_toml(&db.url, &amqp_prefix(), &p.source_toml())).await;
    let name = p.preset;
    let now = now_secs();

    let first = (p.sign)(p.secret, p.body, now);
    let (status, accepted) = send(&app, name, &first, p.body).await;
    assert_eq!(status, 202, "{name}: first delivery: {accepted}");
    assert_eq!(accepted["status"], "accepted", "{name}: {accepted}");
    assert_eq!(accepted["duplicate"], false, "{name}: {accepted}");

    let retry = (p.sign)(p.secret, p.body, now + 7);
    if p.re_signs_retries {
        assert_ne!(
            first.headers, retry.headers,
            "{name}: the retry is re-signed"
        );
    } else {
        assert_eq!(
            first.headers, retry.headers,
            "{name}: the retry is resent as is"
        );
    }
    let (status, duplicate) = send(&app, name, &retry, p.body).await;
    assert_eq!(status, 200, "{name}: retry: {duplicate}");
    assert_eq!(duplicate["status"], "duplicate", "{name}: {duplicate}");
    assert_eq!(duplicate["duplicate"], true, "{name}: {duplicate}");
    assert_eq!(duplicate["event_id"], accepted["event_id"], "{name}");

    let id = accepted["event_id"].as_str().expect("event_id is a string");
    let (status, event) = app.admin_get(&format!("/v1/events/{id}")).await;
    assert_eq!(status, 200, "{name}: {event}");
    assert_eq!(event["source"], name);
    assert_eq!(event["body"], p.body, "{name}: the raw body is stored");
    assert_eq!(event["dedup_key"], p.dedup_key, "{name}: {event}");
    let key = event["dedup_key"].as_str().unwrap_or_default();
    let attempt_specific = [
        now.to_string(),
        (now + 7).to_string(),
        first.credential.clone(),
        retry.credential.clone(),
    ];
    for text in &attempt_specific {
        assert!(!key.contains(text.as_str()), "{name}: {key:?} has {text:?}");
    }
    if let Some((resource_key, status)) = p.resource {
        assert_eq!(event["resource_key"], resource_key, "{name}: {event}");
        assert_eq!(event["status"], status, "{name}: {event}");
    }

    let mut forgeries = vec![(
        "signed with another secret",
        (p.sign)(p.other_secret, p.body, now),
        p.body.to_string(),
    )];
    if let Some((from, to)) = p.tamper {
        let tampered = p.body.replacen(from, to, 1);
        assert_ne!(tampered, p.body, "{name}: the tamper edit applies");
        forgeries.push(("tampered, original signature", first, tampered));
    }
    for (what, delivery, body) in &forgeries {
        let (status, refused) = send(&app, name, delivery, body).await;
        assert_eq!(status, 401, "{name}: {what}: {refused}");
        assert_eq!(refused["error"], "invalid_signature", "{name}: {what}");
        let expected = (p.sign)(p.secret, body, now).credential;
        let detail = refused["detail"].as_str().unwrap_or_default();
        for secret in [p.secret, expected.as_str()] {
            assert!(!detail.contains(secret), "{name}: {what}: detail leaks");
        }
    }

    let stored = count(&db, "SELECT count(*) AS n FROM events").await;
    assert_eq!(
        stored.unwrap(),
        1,
        "{name}: one event, nothing from forgeries"
    );
    app.stop().await;
}

// --- Standard Webhooks and Svix -------------------------------------------------------

const WEBHOOK_ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";

/// `v1,` + base64 HMAC-SHA256 of `{id}.{ts}.{body}`, keyed by the base64 after `whsec_`.
fn sign_standard(prefix: &str, secret: &str, body: &str, now: i64) -> Delivery {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 after whsec_");
    let content = format!("{WEBHOOK_ID}.{now}.{body}");
    let signature = format!(
        "v1,{}",
        BASE64.encode(hmac_sha256(&key, content.as_bytes()))
    );
    let ts = now.to_string();
    Delivery::signed(
        &format!("{prefix}-signature"),
        signature,
        &[
            (&format!("{prefix}-id"), WEBHOOK_ID),
            (&format!("{prefix}-timestamp"), &ts),
        ],
    )
}

fn sign_standard_webhooks(secret: &str, body: &str, now: i64) -> Delivery {
    sign_standard("webhook", secret, body, now)
}

fn sign_svix(secret: &str, body: &str, now: i64) -> Delivery {
    sign_standard("svix", secret, body, now)
}

const STANDARD_WEBHOOKS: Provider = Provider {
    preset: "standard-webhooks",
    extra: "",
    secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    other_secret: "whsec_b2xkLXNlY3JldC0zMi1ieXRlcy1sb25nLTAxMjM0NTY=",
    body: r#"{"type":"contact.created","timestamp":"2026-11-22T07:00:00.000Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485","email":"ada@example.com"}}"#,
    sign: sign_standard_webhooks,
    re_signs_retries: true,
    tamper: Some(("ada@example.com", "eve@example.com")),
    dedup_key: WEBHOOK_ID,
    resource: None,
};

const SVIX: Provider = Provider {
    preset: "svix",
    body: r#"{"type":"invoice.paid","timestamp":"2026-11-22T07:00:00.000Z","data":{"id":"inv_1QeZx2","amount_paid":4200,"currency":"usd"}}"#,
    sign: sign_svix,
    tamper: Some(("\"amount_paid\":4200", "\"amount_paid\":1")),
    ..STANDARD_WEBHOOKS
};

// --- Stripe --------------------------------------------------------------------------

/// `t=<ts>,v1=<hex HMAC-SHA256 of "{t}.{body}">`, the `whsec_` secret used verbatim.
fn sign_stripe(secret: &str, body: &str, now: i64) -> Delivery {
    let content = format!("{now}.{body}");
    let v1 = hex_hmac_sha256(secret, &content);
    Delivery::signed("Stripe-Signature", format!("t={now},v1={v1}"), &[])
}

const STRIPE: Provider = Provider {
    preset: "stripe",
    extra: "",
    // Alphanumeric after `whsec_`, so it is also valid base64: decoding it by mistake
    // would yield another key and fail the test.
    secret: "whsec_9f3Kq2LmX8vB1nR7tY4wZ6pH0sD5gJcA",
    other_secret: "whsec_Zp0Qw8Er4Ty6Ui2Op1As3Df5Gh7Jk9Lx",
    // Stripe sends pretty-printed JSON; the signature covers these exact bytes.
    body: "{\n  \"id\": \"evt_3QeZx2LkdIwHu7ix0aB3cD4e\",\n  \"object\": \"event\",\n  \"api_version\": \"2024-06-20\",\n  \"created\": 1735689600,\n  \"type\": \"payment_intent.succeeded\",\n  \"data\": {\n    \"object\": {\n      \"id\": \"pi_3QeZx2LkdIwHu7ix1\",\n      \"object\": \"payment_intent\",\n      \"amount\": 2000,\n      \"currency\": \"usd\",\n      \"status\": \"succeeded\"\n    }\n  },\n  \"livemode\": false,\n  \"pending_webhooks\": 1\n}",
    sign: sign_stripe,
    re_signs_retries: true,
    tamper: Some(("\"amount\": 2000", "\"amount\": 200000")),
    dedup_key: "evt_3QeZx2LkdIwHu7ix0aB3cD4e",
    resource: None,
};

// --- GitHub --------------------------------------------------------------------------

const GITHUB_DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

/// `sha256=<hex HMAC-SHA256 of the body>`.
fn sign_github(secret: &str, body: &str, _now: i64) -> Delivery {
    let signature = hex_hmac_sha256(secret, body);
    Delivery::signed(
        "X-Hub-Signature-256",
        format!("sha256={signature}"),
        &[
            ("X-GitHub-Event", "pull_request"),
            ("X-GitHub-Delivery", GITHUB_DELIVERY),
            ("X-GitHub-Hook-ID", "292430182"),
            ("User-Agent", "GitHub-Hookshot/044aadd"),
        ],
    )
}

const GITHUB: Provider = Provider {
    preset: "github",
    extra: "",
    secret: "It's a Secret to Everybody",
    other_secret: "It's a Secret to Somebody Else",
    body: r#"{"action":"opened","number":1347,"pull_request":{"id":1,"number":1347,"title":"Amazing new feature","state":"open"},"repository":{"id":1296269,"full_name":"octocat/Hello-World"},"sender":{"login":"octocat"}}"#,
    sign: sign_github,
    re_signs_retries: false,
    tamper: Some(("Amazing new feature", "Backdoor")),
    dedup_key: GITHUB_DELIVERY,
    resource: None,
};

// --- Shopify -------------------------------------------------------------------------

const SHOPIFY_WEBHOOK_ID: &str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043";

/// Base64 HMAC-SHA256 of the body under the app's client secret.
fn sign_shopify(secret: &str, body: &str, _now: i64) -> Delivery {
    let signature = base64_hmac_sha256(secret, body);
    Delivery::signed(
        "X-Shopify-Hmac-Sha256",
        signature,
        &[
            ("X-Shopify-Topic", "orders/create"),
            ("X-Shopify-Shop-Domain", "example.myshopify.com"),
            ("X-Shopify-API-Version", "2025-10"),
            ("X-Shopify-Webhook-Id", SHOPIFY_WEBHOOK_ID),
            ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
            ("X-Shopify-Triggered-At", "2026-11-22T07:00:00.000000000Z"),
        ],
    )
}

const SHOPIFY: Provider = Provider {
    preset: "shopify",
    extra: "",
    secret: "shpss_test_client_secret",
    other_secret: "shpss_rotated_out_secret",
    body: r#"{"id":820982911946154508,"email":"jon@example.com","total_price":"403.00","currency":"USD","financial_status":"paid"}"#,
    sign: sign_shopify,
    re_signs_retries: false,
    tamper: Some(("403.00", "0.01")),
    dedup_key: SHOPIFY_WEBHOOK_ID,
    resource: None,
};

// --- Slack ---------------------------------------------------------------------------

/// `v0=<hex HMAC-SHA256 of "v0:{ts}:{body}">` with the timestamp in its own header.
fn sign_slack(secret: &str, body: &str, now: i64) -> Delivery {
    let content = format!("v0:{now}:{body}");
    let signature = hex_hmac_sha256(secret, &content);
    Delivery::signed(
        "X-Slack-Signature",
        format!("v0={signature}"),
        &[("X-Slack-Request-Timestamp", &now.to_string())],
    )
}

const SLACK: Provider = Provider {
    preset: "slack",
    extra: "",
    secret: "8f742231b10e8888abcd99yyyzzz85a5",
    other_secret: "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    body: r#"{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456","event":{"type":"app_mention","user":"U123ABC456","text":"<@U0LAN0Z89> deploy","ts":"1735689600.000100","channel":"C123ABC456"},"type":"event_callback","event_id":"Ev08MFMKH6","event_time":1735689600}"#,
    sign: sign_slack,
    re_signs_retries: true,
    tamper: Some(("deploy", "rm -rf")),
    dedup_key: "Ev08MFMKH6",
    resource: None,
};

// --- Retell AI -----------------------------------------------------------------------

const RETELL_CALL_ID: &str = "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6";

/// `v=<unix ms>,d=<hex HMAC-SHA256 of "{body}{ms}">`, no separator.
fn sign_retell(secret: &str, body: &str, now: i64) -> Delivery {
    let ms = now * 1000;
    let signature = hex_hmac_sha256(secret, &format!("{body}{ms}"));
    Delivery::signed("x-retell-signature", format!("v={ms},d={signature}"), &[])
}

const RETELL: Provider = Provider {
    preset: "retell",
    extra: "",
    secret: "key_test_retell_webhook_badge",
    other_secret: "key_test_retell_no_badge",
    body: r#"{"event":"call_started","call":{"call_type":"phone_call","call_id":"Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6","agent_id":"oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD","call_status":"ongoing","from_number":"+12137771234","to_number":"+12137771235","start_timestamp":1735689600000}}"#,
    sign: sign_retell,
    re_signs_retries: true,
    tamper: Some(("+12137771235", "+19005550199")),
    dedup_key: "call_started:Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6",
    resource: Some((RETELL_CALL_ID, "call_started")),
};

// --- Paystack ------------------------------------------------------------------------

/// Hex HMAC-SHA512 of the body under the secret key.
fn sign_paystack(secret: &str, body: &str, _now: i64) -> Delivery {
    let signature = hex::encode(mac::<Hmac<Sha512>>(secret.as_bytes(), body.as_bytes()));
    Delivery::signed("x-paystack-signature", signature, &[])
}

const PAYSTACK: Provider = Provider {
    preset: "paystack",
    extra: "",
    secret: "sk_test_0123456789abcdef0123456789abcdef01234567",
    other_secret: "sk_test_fedcba9876543210fedcba9876543210fedcba98",
    body: r#"{"event":"charge.success","data":{"id":302961,"domain":"live","status":"success","reference":"qTPrJoy9Bx","amount":10000,"currency":"NGN","paid_at":"2026-11-22T07:00:00.000Z"}}"#,
    sign: sign_paystack,
    re_signs_retries: false,
    tamper: Some(("\"amount\":10000", "\"amount\":99999999")),
    dedup_key: "charge.success:302961",
    resource: Some(("qTPrJoy9Bx", "success")),
};

// --- Twilio --------------------------------------------------------------------------

/// What the source's `public_url` says and Twilio signs; the ingest's real address differs
/// on purpose, since the verifier must not use the request's Host.
const TWILIO_URL: &str = "https://hooks.example.com/webhooks/twilio";
const TWILIO_EXTRA: &str = "public_url = \"https://hooks.example.com/webhooks/twilio\"";
const TWILIO_IDEMPOTENCY_TOKEN: &str = "ba3d1ab8c8ac1bfa5c2f2a4b7e9d0c11-5f3c";

/// Percent- and `+`-decodes one form component (ASCII bodies only).
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII escape");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8 form value")
}

/// Base64 HMAC-SHA1 (Auth Token) of the URL followed by each POST parameter, sorted by
/// name, as name + value.
fn sign_twilio_form(secret: &str, body: &str, _now: i64) -> Delivery {
    let mut params: Vec<(String, String)> = body
        .split('&')
        .map(|pair| pair.split_once('=').expect("name=value"))
        .map(|(name, value)| (form_decode(name), form_decode(value)))
        .collect();
    params.sort();
    let mut content = TWILIO_URL.to_string();
    for (name, value) in params {
        content.push_str(&name);
        content.push_str(&value);
    }
    let signature = BASE64.encode(mac::<Hmac<Sha1>>(secret.as_bytes(), content.as_bytes()));
    Delivery::signed("X-Twilio-Signature", signature, &[])
}

/// JSON bodies: the URL gets `?bodySHA256=<hex SHA-256 of the body>` and the signature
/// covers the URL alone.
fn sign_twilio_json(secret: &str, body: &str, _now: i64) -> Delivery {
    let query = format!(
        "bodySHA256={}",
        hex::encode(Sha256::digest(body.as_bytes()))
    );
    let url = format!("{TWILIO_URL}?{query}");
    let signature = BASE64.encode(mac::<Hmac<Sha1>>(secret.as_bytes(), url.as_bytes()));
    Delivery::signed(
        "X-Twilio-Signature",
        signature,
        &[("I-Twilio-Idempotency-Token", TWILIO_IDEMPOTENCY_TOKEN)],
    )
    .with_query(query)
}

/// An SMS status callback without the idempotency token, so the key falls back to the
/// message SID plus its status.
const TWILIO_FORM: Provider = Provider {
    preset: "twilio",
    extra: TWILIO_EXTRA,
    secret: "12345678901234567890123456789012",
    other_secret: "abcdefabcdefabcdefabcdefabcdefab",
    body: "AccountSid=AC0123456789abcdef0123456789abcdef&ApiVersion=2010-04-01&From=%2B15005550006&MessageSid=SM9f3c2e1d0b8a7f6e5d4c3b2a1f0e9d8c&MessageStatus=delivered&SmsSid=SM9f3c2e1d0b8a7f6e5d4c3b2a1f0e9d8c&SmsStatus=delivered&To=%2B14155550100",
    sign: sign_twilio_form,
    re_signs_retries: false,
    tamper: Some(("To=%2B14155550100", "To=%2B19005550199")),
    dedup_key: "SM9f3c2e1d0b8a7f6e5d4c3b2a1f0e9d8c:delivered",
    resource: None,
};

/// A JSON callback: no form fields, so the idempotency token is the key (the optional
/// status part renders empty).
const TWILIO_JSON: Provider = Provider {
    body: r#"{"AccountSid":"AC0123456789abcdef0123456789abcdef","CallSid":"CA1234567890ABCDE","CallStatus":"completed","Duration":"42"}"#,
    sign: sign_twilio_json,
    tamper: Some(("\"Duration\":\"42\"", "\"Duration\":\"0\"")),
    dedup_key: "ba3d1ab8c8ac1bfa5c2f2a4b7e9d0c11-5f3c:",
    ..TWILIO_FORM
};

// --- Flutterwave ---------------------------------------------------------------------

/// v3: `verif-hash` is the dashboard's secret hash itself; it does not cover the body.
fn sign_flutterwave_v3(secret: &str, _body: &str, _now: i64) -> Delivery {
    Delivery::signed("verif-hash", secret.to_string(), &[])
}

/// v4: `flutterwave-signature` is the base64 HMAC-SHA256 of the body. The v3 header rides
/// along, so the tampered copy also shows that a correct `verif-hash` cannot rescue it.
fn sign_flutterwave_v4(secret: &str, body: &str, _now: i64) -> Delivery {
    let signature = base64_hmac_sha256(secret, body);
    Delivery::signed(
        "flutterwave-signature",
        signature,
        &[("verif-hash", secret)],
    )
}

const FLUTTERWAVE_V3: Provider = Provider {
    preset: "flutterwave",
    extra: "",
    secret: "my-flw-secret-hash",
    other_secret: "not-my-flw-secret-hash",
    body: r#"{"event":"charge.completed","data":{"id":285959875,"tx_ref":"Links-616626414629","flw_ref":"PeterEkene/FLW270177170","amount":100,"currency":"NGN","status":"successful"}}"#,
    sign: sign_flutterwave_v3,
    re_signs_retries: false,
    tamper: None,
    dedup_key: "charge.completed:285959875",
    resource: None,
};

const FLUTTERWAVE_V4: Provider = Provider {
    sign: sign_flutterwave_v4,
    tamper: Some(("\"amount\":100", "\"amount\":100000")),
    ..FLUTTERWAVE_V3
};

// --- Apify ---------------------------------------------------------------------------

const APIFY_HEADERS: [(&str, &str); 3] = [
    ("X-Apify-Webhook", "Mkf3Ld2nqy9mT5xWz"),
    ("X-Apify-Webhook-Dispatch-Id", "asdf7Xk2LmNq8RtYb"),
    ("X-Apify-Request-Origin", "ACTOR"),
];

/// Apify does not sign: the token comes from the webhook's headers template.
fn sign_apify_header(secret: &str, _body: &str, _now: i64) -> Delivery {
    Delivery::signed("X-Hookline-Token", secret.to_string(), &APIFY_HEADERS)
}

/// Apify does not sign: the token is part of the webhook URL.
fn sign_apify_query(secret: &str, _body: &str, _now: i64) -> Delivery {
    Delivery::unsigned(secret.to_string(), &APIFY_HEADERS).with_query(format!("token={secret}"))
}

const APIFY_HEADER: Provider = Provider {
    preset: "apify",
    extra: "",
    secret: "apify-token-3f9c1e7a5b2d4f6081",
    other_secret: "apify-token-guessed-by-someone",
    body: r#"{"userId":"abf6vtB2nvQZ4nJzo","createdAt":"2026-11-22T07:00:00.000Z","eventType":"ACTOR.RUN.SUCCEEDED","eventData":{"actorId":"fW4MyDhgwtMLrB987","actorRunId":"uPBN9qaKd2iLs5naZ"},"resource":{"id":"uPBN9qaKd2iLs5naZ","actId":"fW4MyDhgwtMLrB987","status":"SUCCEEDED"}}"#,
    sign: sign_apify_header,
    re_signs_retries: false,
    tamper: None,
    dedup_key: "uPBN9qaKd2iLs5naZ:ACTOR.RUN.SUCCEEDED",
    resource: Some(("uPBN9qaKd2iLs5naZ", "SUCCEEDED")),
};

const APIFY_QUERY: Provider = Provider {
    sign: sign_apify_query,
    ..APIFY_HEADER
};

// --- Refersion (generic `hmac`) --------------------------------------------------------

/// Base64 HMAC-SHA256 of the body in `Refersion-Signature`.
fn sign_refersion(secret: &str, body: &str, _now: i64) -> Delivery {
    let signature = base64_hmac_sha256(secret, body);
    Delivery::signed(
        "Refersion-Signature",
        signature,
        &[("Refersion-Topic", "NEW_CONVERSION")],
    )
}

const REFERSION: Provider = Provider {
    preset: "refersion",
    extra: "",
    secret: "rfsn_webhook_signing_secret_0123",
    other_secret: "rfsn_webhook_signing_secret_9999",
    body: r#"{"id":987654321,"type":"SALE","status":"PENDING","commission_total":"12.50","currency":"USD","order_id":"1001","affiliate":{"id":4242,"first_name":"Ada"}}"#,
    sign: sign_refersion,
    re_signs_retries: false,
    tamper: Some((
        "\"commission_total\":\"12.50\"",
        "\"commission_total\":\"9999.00\"",
    )),
    dedup_key: "NEW_CONVERSION:987654321",
    resource: None,
};

// --- One test per provider -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_webhooks_message_is_accepted_then_its_re_signed_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&STANDARD_WEBHOOKS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_svix_message_is_accepted_then_its_re_signed_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&SVIX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_event_is_accepted_then_its_re_signed_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&STRIPE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_delivery_is_accepted_then_its_redelivery_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&GITHUB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopify_webhook_is_accepted_then_its_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&SHOPIFY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_event_is_accepted_then_its_re_signed_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&SLACK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retell_call_event_is_accepted_then_its_re_signed_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&RETELL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paystack_charge_is_accepted_then_its_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&PAYSTACK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_form_status_callback_is_accepted_then_its_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&TWILIO_FORM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_json_callback_with_a_body_hash_is_accepted_then_its_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&TWILIO_JSON).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flutterwave_v3_verif_hash_webhook_is_accepted_then_its_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&FLUTTERWAVE_V3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flutterwave_v4_signed_webhook_is_accepted_then_its_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&FLUTTERWAVE_V4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apify_webhook_with_the_token_in_a_header_is_accepted_then_its_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&APIFY_HEADER).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apify_webhook_with_the_token_in_the_url_is_accepted_then_its_retry_is_a_duplicate() {
    assert_accepted_then_duplicate_then_forgeries_refused(&APIFY_QUERY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refersion_webhook_signed_for_the_generic_hmac_preset_is_accepted_then_deduplicated() {
    assert_accepted_then_duplicate_then_forgeries_refused(&REFERSION).await;
}
