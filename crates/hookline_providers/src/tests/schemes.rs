//! Each scheme's own rules, beyond the shared contract.

use hookline_domain::{Algorithm, SourceConfig};

use super::support::{
    RIGHT, Request, T0_MS, WRONG, at_ms, b64_mac, build, form_encode, hex_mac, source,
};
use crate::VerifyError;

fn check(config: &SourceConfig, request: &Request) -> Result<(), VerifyError> {
    request.verify(&build(config), at_ms(T0_MS))
}

fn is_malformed(result: Result<(), VerifyError>) -> bool {
    matches!(result, Err(VerifyError::Malformed(_)))
}

const PUBLIC_URL: &str = "https://hooks.example.com/webhooks/twilio";

fn twilio(url: &str) -> SourceConfig {
    SourceConfig {
        public_url: Some(url.into()),
        ..source("twilio", &[RIGHT])
    }
}

/// A Twilio request whose signature covers `signed` (URL plus parameters).
fn twilio_request(signed: &str, query: &str, body: &[u8]) -> Request {
    let signature = b64_mac(Algorithm::Sha1, RIGHT, &[signed.as_bytes()]);
    Request::new(body)
        .query(query)
        .header("X-Twilio-Signature", signature)
}

#[test]
fn twilio_signs_the_query_and_sorted_parameters_with_repeated_names_sorted_by_value() {
    let body = form_encode(&[("To", "+1 555"), ("Digits", "2"), ("Digits", "1")]);
    let table = [
        (format!("{PUBLIC_URL}?a=1&b=%2F"), "a=1&b=%2F"),
        (PUBLIC_URL.to_string(), ""),
    ];
    for (url, query) in table {
        let signed = format!("{url}Digits1Digits2To+1 555");
        let request =
            twilio_request(&signed, query, body.as_bytes()).header("Host", "evil.example");
        assert_eq!(check(&twilio(PUBLIC_URL), &request), Ok(()), "{url}");
    }
}

#[test]
fn twilio_accepts_the_url_with_or_without_the_default_port() {
    let table = [
        (
            "https://hooks.example.com/t",
            "https://hooks.example.com:443/t",
        ),
        (
            "https://hooks.example.com:443/t",
            "https://hooks.example.com/t",
        ),
        (
            "http://hooks.example.com/t",
            "http://hooks.example.com:80/t",
        ),
    ];
    for (configured, signed) in table {
        let request = twilio_request(signed, "", b"");
        assert_eq!(check(&twilio(configured), &request), Ok(()), "{configured}");
    }
    let other_port = twilio_request("https://hooks.example.com:8443/t", "", b"");
    assert_eq!(
        check(&twilio("https://hooks.example.com/t"), &other_port),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn twilio_json_bodies_must_match_the_signed_body_hash() {
    let body = br#"{"CallSid":"CA1"}"#;
    let query = format!(
        "bodySHA256={}",
        hex::encode(crate::crypto::sha256(b"other"))
    );
    let request = twilio_request(&format!("{PUBLIC_URL}?{query}"), &query, body);
    assert_eq!(
        check(&twilio(PUBLIC_URL), &request),
        Err(VerifyError::Mismatch)
    );
    let not_hex = twilio_request(
        &format!("{PUBLIC_URL}?bodySHA256=zz"),
        "bodySHA256=zz",
        body,
    );
    assert!(is_malformed(check(&twilio(PUBLIC_URL), &not_hex)));
}

#[test]
fn twilio_algorithm_comes_from_config_not_from_the_unsigned_settings_header() {
    let signed = PUBLIC_URL.as_bytes();
    let request = Request::new(b"")
        .header(
            "X-Twilio-Signature",
            b64_mac(Algorithm::Sha256, RIGHT, &[signed]),
        )
        .header(
            "X-Twilio-Webhooks-Signature-Settings",
            "key=k,algorithm=HMAC_SHA256",
        );
    assert_eq!(
        check(&twilio(PUBLIC_URL), &request),
        Err(VerifyError::Mismatch)
    );
    let shared_key = SourceConfig {
        algorithm: Some(Algorithm::Sha256),
        ..twilio(PUBLIC_URL)
    };
    assert_eq!(check(&shared_key, &request), Ok(()));
}

fn github(allow_legacy_sha1: Option<bool>) -> SourceConfig {
    SourceConfig {
        allow_legacy_sha1,
        ..source("github", &[RIGHT])
    }
}

fn hub_signature(algorithm: Algorithm, secret: &str, body: &[u8]) -> String {
    let prefix = if algorithm == Algorithm::Sha1 {
        "sha1"
    } else {
        "sha256"
    };
    format!("{prefix}={}", hex_mac(algorithm, secret, &[body]))
}

#[test]
fn github_legacy_sha1_is_accepted_only_when_allowed_and_never_as_a_downgrade() {
    let body = b"{}";
    let sha1_only = Request::new(body).header(
        "X-Hub-Signature",
        hub_signature(Algorithm::Sha1, RIGHT, body),
    );
    let both = sha1_only.clone().header(
        "X-Hub-Signature-256",
        hub_signature(Algorithm::Sha256, WRONG, body),
    );
    let table = [
        (Some(true), &sha1_only, Ok(())),
        (
            None,
            &sha1_only,
            Err(VerifyError::Missing("x-hub-signature-256 header".into())),
        ),
        (
            Some(false),
            &sha1_only,
            Err(VerifyError::Missing("x-hub-signature-256 header".into())),
        ),
        (Some(true), &both, Err(VerifyError::Mismatch)),
    ];
    for (allow, request, expected) in table {
        assert_eq!(check(&github(allow), request), expected, "{allow:?}");
    }
}

#[test]
fn flutterwave_a_valid_v3_hash_cannot_rescue_a_failing_v4_signature() {
    let request = Request::new(b"{}").header("verif-hash", RIGHT).header(
        "flutterwave-signature",
        b64_mac(Algorithm::Sha256, WRONG, &[b"{}"]),
    );
    assert_eq!(
        check(&source("flutterwave", &[RIGHT]), &request),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn tokens_come_from_the_header_first_then_the_decoded_query_and_bearer_only_for_authorization() {
    let config = source("token", &["s/x y"]);
    let bearer = SourceConfig {
        token_header: Some("Authorization".into()),
        ..config.clone()
    };
    let other_header = SourceConfig {
        token_header: Some("X-Token".into()),
        ..config.clone()
    };
    let table = [
        (
            &config,
            Request::new(b"").query("a=1&token=s%2Fx+y"),
            Ok(()),
        ),
        (
            &config,
            Request::new(b"")
                .query("token=s%2Fx+y")
                .header("X-Hookline-Token", "nope"),
            Err(VerifyError::Mismatch),
        ),
        (
            &bearer,
            Request::new(b"").header("Authorization", "Bearer s/x y"),
            Ok(()),
        ),
        (
            &bearer,
            Request::new(b"").header("Authorization", "bearer  s/x y "),
            Ok(()),
        ),
        (
            &other_header,
            Request::new(b"").header("X-Token", "Bearer s/x y"),
            Err(VerifyError::Mismatch),
        ),
        (
            &config,
            Request::new(b"").query("tokens=s%2Fx+y"),
            Err(VerifyError::Missing(
                "x-hookline-token header or token query parameter".into(),
            )),
        ),
    ];
    for (config, request, expected) in table {
        assert_eq!(check(config, &request), expected, "{request:?}");
    }
}

/// A Standard Webhooks request at T0 whose signature header is `list`, where `{good}`
/// stands for a valid base64 signature.
fn standard_webhooks(list: &str) -> Request {
    let key = super::support::standard_key(RIGHT);
    let ts = (T0_MS / 1000).to_string();
    let content: [&[u8]; 5] = [b"msg_1", b".", ts.as_bytes(), b".", b"{}"];
    let good = super::support::b64(&super::support::mac(Algorithm::Sha256, &key, &content));
    Request::new(b"{}")
        .header("webhook-id", "msg_1")
        .header("webhook-timestamp", &ts)
        .header("webhook-signature", list.replace("{good}", &good))
}

#[test]
fn standard_webhooks_ignores_entries_other_than_v1() {
    let config = source("standard-webhooks", &[RIGHT]);
    let table = [
        ("v1a,{good} v2,{good}", false),
        ("v2,{good}  v1,{good}", true),
        ("v1,!!! v1,{good}", true),
        ("{good}", false),
    ];
    for (list, passes) in table {
        let result = check(&config, &standard_webhooks(list));
        if passes {
            assert_eq!(result, Ok(()), "{list}");
        } else {
            assert!(is_malformed(result), "{list}");
        }
    }
}

fn stripe_request(header: &str) -> Request {
    let sig = hex_mac(Algorithm::Sha256, RIGHT, &[b"1735689600.", b"{}"]);
    Request::new(b"{}").header("Stripe-Signature", header.replace("{good}", &sig))
}

#[test]
fn stripe_needs_one_t_and_a_v1_and_ignores_v0() {
    let config = source("stripe", &[RIGHT]);
    let table = [
        ("t=1735689600,v0={good},v1={good},x=1", true),
        ("t=1735689600,v0={good}", false),
        ("t=1735689600,t=1735689600,v1={good}", false),
        ("v1={good}", false),
        ("t=17356896OO,v1={good}", false),
    ];
    for (header, passes) in table {
        let result = check(&config, &stripe_request(header));
        if passes {
            assert_eq!(result, Ok(()), "{header}");
        } else {
            assert!(is_malformed(result), "{header}");
        }
    }
}

#[test]
fn stripe_checks_only_that_a_timestamp_is_not_too_old_like_its_library() {
    let request = stripe_request("t=1735689600,v1={good}");
    let tolerance = |secs: u64| SourceConfig {
        tolerance_secs: Some(secs),
        ..source("stripe", &[RIGHT])
    };
    let ten_minutes_ms = 600_000;
    let table = [
        // `now` before the signing time: a future timestamp, accepted at any distance.
        (300, T0_MS - ten_minutes_ms, true),
        (300, T0_MS + ten_minutes_ms, false),
        (600, T0_MS - ten_minutes_ms, true),
        (600, T0_MS + ten_minutes_ms, true),
    ];
    for (secs, now, passes) in table {
        let result = request.verify(&build(&tolerance(secs)), at_ms(now));
        assert_eq!(result.is_ok(), passes, "{secs} s at {now}: {result:?}");
    }
}

#[test]
fn hmac_signed_content_reads_query_parameters_and_tolerates_whitespace() {
    let config = SourceConfig {
        signature_header: Some("X-Sig".into()),
        signature_prefix: Some("sha256=".into()),
        signed_content: Some("{query:n}|{body}".into()),
        ..source("hmac", &[RIGHT])
    };
    let sig = hex_mac(Algorithm::Sha256, RIGHT, &[b"a b|", b"{}"]);
    let signed = Request::new(b"{}")
        .query("n=a+b")
        .header("X-Sig", format!("  sha256= {}  ", sig.to_uppercase()));
    assert_eq!(check(&config, &signed), Ok(()));
    assert_eq!(
        check(&config, &signed.clone().query("")),
        Err(VerifyError::Missing("n query parameter".into()))
    );
    let unprefixed = signed.map_header("x-sig", |_| sig.clone().into_bytes());
    assert!(is_malformed(check(&config, &unprefixed)));
}

#[test]
fn retell_and_slack_reject_headers_in_the_wrong_shape() {
    let table = [
        ("retell", "X-Retell-Signature", "v=1735689600000"),
        ("retell", "X-Retell-Signature", "d=abcd"),
        ("slack", "X-Slack-Signature", "v1=abcd"),
    ];
    for (verifier, header, value) in table {
        let request = Request::new(b"{}")
            .header("X-Slack-Request-Timestamp", "1735689600")
            .header(header, value);
        assert!(
            is_malformed(check(&source(verifier, &[RIGHT]), &request)),
            "{verifier} {value}"
        );
    }
}
