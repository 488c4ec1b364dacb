//! What every scheme must do, checked against one table of signed fixtures.

use hookline_domain::{Algorithm, Encoding, SourceConfig};

use super::support::{
    OTHER, RIGHT, Request, T0_MS, WRONG, at_ms, b64, b64_mac, build, flip_signature_char, hex_mac,
    mac, source, standard_key, with_secrets,
};
use crate::VerifyError;

/// One scheme as the contract sees it.
struct Case {
    name: &'static str,
    /// The source without secrets.
    config: fn() -> SourceConfig,
    /// A request signed at `signed_at_ms` with each of `secrets` (schemes that carry one
    /// signature use the first).
    sign: fn(secrets: &[&str], signed_at_ms: i128, body: &[u8]) -> Request,
    /// The header holding the signature (or token).
    signature_header: &'static str,
    /// Headers without which the request cannot be verified.
    required_headers: &'static [&'static str],
    /// The replay window in seconds, for timestamped schemes.
    window_secs: Option<i128>,
    /// Whether the body is covered (tokens and Flutterwave v3 hashes are not).
    covers_body: bool,
    /// Whether one header may carry several signatures.
    several_signatures: bool,
    /// Whether a timestamp ahead of the clock passes whatever its distance (Stripe's
    /// libraries check only the past).
    future_ok: bool,
}

const TWILIO_URL: &str = "https://hooks.example.com/webhooks/twilio";

fn secs(ms: i128) -> String {
    (ms / 1000).to_string()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "token",
            config: || source("token", &[]),
            sign: |keys, _, body| Request::new(body).header("X-Hookline-Token", keys[0]),
            signature_header: "x-hookline-token",
            required_headers: &["x-hookline-token"],
            window_secs: None,
            covers_body: false,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "hmac (Refersion shape)",
            config: || SourceConfig {
                signature_header: Some("Refersion-Signature".into()),
                encoding: Some(Encoding::Base64),
                ..source("hmac", &[])
            },
            sign: |keys, _, body| {
                Request::new(body).header(
                    "refersion-signature",
                    b64_mac(Algorithm::Sha256, keys[0], &[body]),
                )
            },
            signature_header: "refersion-signature",
            required_headers: &["refersion-signature"],
            window_secs: None,
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "hmac (timestamped template)",
            config: || SourceConfig {
                signature_header: Some("X-Signature".into()),
                signature_prefix: Some("sha512=".into()),
                algorithm: Some(Algorithm::Sha512),
                signed_content: Some("{timestamp}.{header:X-Request-Id}.{body}".into()),
                timestamp_header: Some("X-Timestamp".into()),
                tolerance_secs: Some(60),
                ..source("hmac", &[])
            },
            sign: |keys, at, body| {
                let ts = secs(at);
                let content: [&[u8]; 5] = [ts.as_bytes(), b".", b"req-1", b".", body];
                Request::new(body)
                    .header("x-request-id", "req-1")
                    .header("x-timestamp", &ts)
                    .header(
                        "x-signature",
                        format!("sha512={}", hex_mac(Algorithm::Sha512, keys[0], &content)),
                    )
            },
            signature_header: "x-signature",
            required_headers: &["x-signature", "x-timestamp", "x-request-id"],
            window_secs: Some(60),
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "standard-webhooks",
            config: || source("standard-webhooks", &[]),
            sign: |keys, at, body| standard_webhooks_request("webhook", keys, at, body),
            signature_header: "webhook-signature",
            required_headers: &["webhook-id", "webhook-timestamp", "webhook-signature"],
            window_secs: Some(300),
            covers_body: true,
            several_signatures: true,
            future_ok: false,
        },
        Case {
            name: "svix",
            config: || source("svix", &[]),
            sign: |keys, at, body| standard_webhooks_request("svix", keys, at, body),
            signature_header: "svix-signature",
            required_headers: &["svix-id", "svix-timestamp", "svix-signature"],
            window_secs: Some(300),
            covers_body: true,
            several_signatures: true,
            future_ok: false,
        },
        Case {
            name: "stripe",
            config: || source("stripe", &[]),
            sign: |keys, at, body| {
                let t = secs(at);
                let v1: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        let sig = hex_mac(Algorithm::Sha256, k, &[t.as_bytes(), b".", body]);
                        format!("v1={sig}")
                    })
                    .collect();
                Request::new(body).header("Stripe-Signature", format!("t={t},{}", v1.join(",")))
            },
            signature_header: "stripe-signature",
            required_headers: &["stripe-signature"],
            window_secs: Some(300),
            covers_body: true,
            several_signatures: true,
            future_ok: true,
        },
        Case {
            name: "github",
            config: || source("github", &[]),
            sign: |keys, _, body| {
                let sig = hex_mac(Algorithm::Sha256, keys[0], &[body]);
                Request::new(body).header("X-Hub-Signature-256", format!("sha256={sig}"))
            },
            signature_header: "x-hub-signature-256",
            required_headers: &["x-hub-signature-256"],
            window_secs: None,
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "shopify",
            config: || source("shopify", &[]),
            sign: |keys, _, body| {
                let sig = b64_mac(Algorithm::Sha256, keys[0], &[body]);
                Request::new(body).header("X-Shopify-Hmac-Sha256", sig)
            },
            signature_header: "x-shopify-hmac-sha256",
            required_headers: &["x-shopify-hmac-sha256"],
            window_secs: None,
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "slack",
            config: || source("slack", &[]),
            sign: |keys, at, body| {
                let ts = secs(at);
                let sig = hex_mac(
                    Algorithm::Sha256,
                    keys[0],
                    &[b"v0:", ts.as_bytes(), b":", body],
                );
                Request::new(body)
                    .header("X-Slack-Request-Timestamp", &ts)
                    .header("X-Slack-Signature", format!("v0={sig}"))
            },
            signature_header: "x-slack-signature",
            required_headers: &["x-slack-signature", "x-slack-request-timestamp"],
            window_secs: Some(300),
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "retell",
            config: || source("retell", &[]),
            sign: |keys, at, body| {
                let v = at.to_string();
                let sig = hex_mac(Algorithm::Sha256, keys[0], &[body, v.as_bytes()]);
                Request::new(body).header("X-Retell-Signature", format!("v={v},d={sig}"))
            },
            signature_header: "x-retell-signature",
            required_headers: &["x-retell-signature"],
            window_secs: Some(300),
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "paystack",
            config: || source("paystack", &[]),
            sign: |keys, _, body| {
                let sig = hex_mac(Algorithm::Sha512, keys[0], &[body]);
                Request::new(body).header("X-Paystack-Signature", sig)
            },
            signature_header: "x-paystack-signature",
            required_headers: &["x-paystack-signature"],
            window_secs: None,
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "twilio (JSON body)",
            config: || SourceConfig {
                public_url: Some(TWILIO_URL.into()),
                ..source("twilio", &[])
            },
            sign: |keys, _, body| {
                let query = format!("bodySHA256={}", hex::encode(crate::crypto::sha256(body)));
                let url = format!("{TWILIO_URL}?{query}");
                let sig = b64_mac(Algorithm::Sha1, keys[0], &[url.as_bytes()]);
                Request::new(body)
                    .query(&query)
                    .header("X-Twilio-Signature", sig)
            },
            signature_header: "x-twilio-signature",
            required_headers: &["x-twilio-signature"],
            window_secs: None,
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "flutterwave v4",
            config: || source("flutterwave", &[]),
            sign: |keys, _, body| {
                let sig = b64_mac(Algorithm::Sha256, keys[0], &[body]);
                Request::new(body).header("Flutterwave-Signature", sig)
            },
            signature_header: "flutterwave-signature",
            required_headers: &["flutterwave-signature"],
            window_secs: None,
            covers_body: true,
            several_signatures: false,
            future_ok: false,
        },
        Case {
            name: "flutterwave v3",
            config: || source("flutterwave", &[]),
            sign: |keys, _, body| Request::new(body).header("Verif-Hash", keys[0]),
            signature_header: "verif-hash",
            required_headers: &["verif-hash"],
            window_secs: None,
            covers_body: false,
            several_signatures: false,
            future_ok: false,
        },
    ]
}

fn standard_webhooks_request(prefix: &str, keys: &[&str], at: i128, body: &[u8]) -> Request {
    let ts = secs(at);
    let signatures: Vec<String> = keys
        .iter()
        .map(|k| {
            let content: [&[u8]; 5] = [b"msg_1", b".", ts.as_bytes(), b".", body];
            format!(
                "v1,{}",
                b64(&mac(Algorithm::Sha256, &standard_key(k), &content))
            )
        })
        .collect();
    Request::new(body)
        .header(&format!("{prefix}-id"), "msg_1")
        .header(&format!("{prefix}-timestamp"), &ts)
        .header(&format!("{prefix}-signature"), signatures.join(" "))
}

const BODY: &[u8] = br#"{"id":"evt_1","type":"thing.happened"}"#;

impl Case {
    /// Verifies `request` at `now_ms` against this case's source holding `secrets`.
    fn check(&self, secrets: &[&str], request: &Request, now_ms: i128) -> Result<(), VerifyError> {
        let verifier = build(&with_secrets(&(self.config)(), secrets));
        request.verify(&verifier, at_ms(now_ms))
    }

    fn signed(&self, body: &[u8]) -> Request {
        (self.sign)(&[RIGHT], T0_MS, body)
    }
}

#[test]
fn a_correctly_signed_request_passes() {
    for case in cases() {
        assert_eq!(
            case.check(&[RIGHT], &case.signed(BODY), T0_MS),
            Ok(()),
            "{}",
            case.name
        );
    }
}

#[test]
fn a_flipped_body_byte_is_a_mismatch() {
    for case in cases().into_iter().filter(|c| c.covers_body) {
        let mut body = BODY.to_vec();
        body[7] ^= 0x01;
        let request = case.signed(BODY).body(&body);
        assert_eq!(
            case.check(&[RIGHT], &request, T0_MS),
            Err(VerifyError::Mismatch),
            "{}",
            case.name
        );
    }
}

#[test]
fn a_flipped_signature_character_is_a_mismatch() {
    for case in cases() {
        let request = case
            .signed(BODY)
            .map_header(case.signature_header, flip_signature_char);
        assert_eq!(
            case.check(&[RIGHT], &request, T0_MS),
            Err(VerifyError::Mismatch),
            "{}",
            case.name
        );
    }
}

#[test]
fn a_signature_made_with_another_secret_is_a_mismatch() {
    for case in cases() {
        let request = (case.sign)(&[WRONG], T0_MS, BODY);
        assert_eq!(
            case.check(&[RIGHT], &request, T0_MS),
            Err(VerifyError::Mismatch),
            "{}",
            case.name
        );
    }
}

#[test]
fn timestamps_just_outside_the_window_fail_in_both_directions_and_just_inside_pass() {
    for case in cases() {
        let Some(window) = case.window_secs else {
            continue;
        };
        let request = case.signed(BODY);
        let edge_ms = window * 1000;
        for now in [T0_MS + edge_ms, T0_MS - edge_ms] {
            assert_eq!(
                case.check(&[RIGHT], &request, now),
                Ok(()),
                "{} at {now}",
                case.name
            );
        }
        // Signed at T0: `now` after the window is a stale signature, before it a future one.
        for now in [T0_MS + edge_ms + 1, T0_MS - edge_ms - 1] {
            if case.future_ok && now < T0_MS {
                assert_eq!(
                    case.check(&[RIGHT], &request, now),
                    Ok(()),
                    "{} at {now}",
                    case.name
                );
                continue;
            }
            assert!(
                matches!(
                    case.check(&[RIGHT], &request, now),
                    Err(VerifyError::Timestamp { tolerance_secs }) if i128::from(tolerance_secs) == window
                ),
                "{} at {now}",
                case.name
            );
        }
    }
}

#[test]
fn a_missing_header_is_reported_as_missing() {
    for case in cases() {
        for header in case.required_headers {
            let request = case.signed(BODY).without(header);
            let result = case.check(&[RIGHT], &request, T0_MS);
            assert!(
                matches!(&result, Err(VerifyError::Missing(what)) if what.contains(header)),
                "{} without {header}: {result:?}",
                case.name
            );
        }
    }
}

#[test]
fn empty_and_non_utf8_bodies_verify_when_signed_and_fail_when_not() {
    for case in cases() {
        for body in [&b""[..], b"\xff\xfe\x00\xc3("] {
            let signed = case.signed(body);
            assert_eq!(
                case.check(&[RIGHT], &signed, T0_MS),
                Ok(()),
                "{}",
                case.name
            );
            if case.covers_body {
                let unsigned = case.signed(BODY).body(body);
                assert_eq!(
                    case.check(&[RIGHT], &unsigned, T0_MS),
                    Err(VerifyError::Mismatch),
                    "{}",
                    case.name
                );
            }
        }
    }
}

#[test]
fn header_names_match_in_any_case() {
    for case in cases() {
        for rename in [str::to_ascii_uppercase, str::to_ascii_lowercase] {
            let request = case.signed(BODY).rename_headers(rename);
            assert_eq!(
                case.check(&[RIGHT], &request, T0_MS),
                Ok(()),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn one_valid_signature_among_several_passes() {
    for case in cases().into_iter().filter(|c| c.several_signatures) {
        for keys in [[WRONG, RIGHT], [RIGHT, WRONG]] {
            let request = (case.sign)(&keys, T0_MS, BODY);
            assert_eq!(
                case.check(&[RIGHT], &request, T0_MS),
                Ok(()),
                "{}",
                case.name
            );
        }
        let request = (case.sign)(&[WRONG, OTHER], T0_MS, BODY);
        assert_eq!(
            case.check(&[RIGHT], &request, T0_MS),
            Err(VerifyError::Mismatch),
            "{}",
            case.name
        );
    }
}

#[test]
fn any_one_of_several_secrets_passes_during_rotation() {
    for case in cases() {
        let request = case.signed(BODY);
        for secrets in [[WRONG, RIGHT], [RIGHT, WRONG]] {
            assert_eq!(
                case.check(&secrets, &request, T0_MS),
                Ok(()),
                "{}",
                case.name
            );
        }
        assert_eq!(
            case.check(&[WRONG, OTHER], &request, T0_MS),
            Err(VerifyError::Mismatch),
            "{}",
            case.name
        );
    }
}

#[test]
fn errors_and_debug_output_never_reveal_secrets_or_expected_signatures() {
    for case in cases() {
        let expected = case.signed(BODY);
        let verifier = build(&with_secrets(&(case.config)(), &[RIGHT]));
        assert!(!format!("{verifier:?}").contains(RIGHT), "{}", case.name);
        let forged = (case.sign)(&[WRONG], T0_MS, BODY);
        for request in [forged.clone(), forged.without(case.signature_header)] {
            let err = request.verify(&verifier, at_ms(T0_MS)).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains(RIGHT), "{}: {text}", case.name);
            for (_, value) in &expected.headers {
                let value = String::from_utf8_lossy(value);
                if value.len() > 20 {
                    assert!(!text.contains(value.as_ref()), "{}: {text}", case.name);
                }
            }
        }
    }
}

#[test]
fn a_garbled_or_non_utf8_signature_header_is_an_error_not_a_panic() {
    for case in cases() {
        for garbage in [
            &b"%%% not a signature"[..],
            b"\xff\xfe",
            b"",
            b"v1=,t=,d=,v=",
        ] {
            let request = case
                .signed(BODY)
                .map_header(case.signature_header, |_| garbage.to_vec());
            assert!(
                case.check(&[RIGHT], &request, T0_MS).is_err(),
                "{} with {garbage:?}",
                case.name
            );
        }
    }
}
