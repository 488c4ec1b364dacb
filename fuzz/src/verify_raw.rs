//! `verify_raw`: arbitrary requests against every verifier, configured with the secrets
//! of the providers' published vectors (`crates/hookline_providers/tests/vectors`), so
//! the seed corpus (those vectors, verbatim) starts from requests that verify and the
//! mutations explore what is near them: other clocks, header spellings, truncated or
//! repeated signatures, odd bytes.
//!
//! Properties: verification never panics and is deterministic; a verified request is the
//! request as given, and still verifies with its header names in another case or each
//! header repeated with junk after it; a request that verifies stops verifying once a byte is appended to
//! its body, wherever the scheme signs the body (and keeps verifying where it does not:
//! tokens); no error message carries a secret.
//!
//! Input lines: verifier (a name from [`VERIFIERS`]), now (unix ms), query string, header
//! lines (`name: value`) up to an empty line; the rest is the body.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use hookline_domain::{
    Algorithm, Encoding, Headers, RequestParts, Secret, SourceConfig, resolve_preset,
};
use hookline_providers::{Verifier, VerifyError};

use crate::input::{Lines, pick};

/// The configured verifiers, by name.
pub const VERIFIERS: &[&str] = &[
    "token",
    "apify",
    "apify-bearer",
    "refersion",
    "hmac-parts",
    "standard-webhooks",
    "svix",
    "stripe",
    "github",
    "shopify",
    "slack",
    "retell",
    "paystack",
    "twilio",
    "twilio-json",
    "twilio-sha256",
    "flutterwave",
];

/// Schemes whose token does not cover the body.
const TOKEN_SCHEMES: &[&str] = &["token", "apify", "apify-bearer"];

/// The vectors' secrets (and the fuzz-only ones, which `fuzz/seeds.py` signs with too).
fn config(name: &str) -> SourceConfig {
    let with = |verifier: &str, secrets: &[&str]| SourceConfig {
        verifier: Some(verifier.into()),
        secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
        ..SourceConfig::default()
    };
    let preset = |preset: &str, secrets: &[&str]| {
        resolve_preset(SourceConfig {
            preset: Some(preset.into()),
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            ..SourceConfig::default()
        })
        .expect("a shipped preset")
    };
    let standard = [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_bmV3LXNlY3JldC0zMi1ieXRlcy1sb25nLTY1NDMyMTA=",
        "whsec_b2xkLXNlY3JldC0zMi1ieXRlcy1sb25nLTAxMjM0NTY=",
    ];
    match name {
        "token" => with("token", &["fuzz-token-0123456789"]),
        "apify" => preset("apify", &["<secret in URL>"]),
        "apify-bearer" => SourceConfig {
            token_header: Some("Authorization".into()),
            ..preset("apify", &["<token you put in headersTemplate>"])
        },
        "refersion" => preset("refersion", &["fuzz-refersion-secret"]),
        "hmac-parts" => SourceConfig {
            signature_header: Some("X-Signature".into()),
            signature_prefix: Some("v1=".into()),
            algorithm: Some(Algorithm::Sha512),
            encoding: Some(Encoding::Hex),
            signed_content: Some("{timestamp}.{header:x-id}.{query:a}.{body}".into()),
            timestamp_header: Some("X-Timestamp".into()),
            ..with("hmac", &["fuzz-hmac-secret"])
        },
        "standard-webhooks" | "svix" => with(name, &standard),
        "stripe" => with("stripe", &["whsec_test_secret", "whsec_previous_secret"]),
        "github" => SourceConfig {
            allow_legacy_sha1: Some(true),
            ..with(
                "github",
                &["It's a Secret to Everybody", "gh-webhook-secret"],
            )
        },
        "shopify" => with("shopify", &["shpss_test_client_secret"]),
        "slack" => with(
            "slack",
            &[
                "8f742231b10e8888abcd99yyyzzz85a5",
                "slack-signing-secret-0123456789ab",
            ],
        ),
        "retell" => with("retell", &["key_test_retell_webhook_badge"]),
        "paystack" => with(
            "paystack",
            &["sk_test_0123456789abcdef0123456789abcdef01234567"],
        ),
        "twilio" => SourceConfig {
            public_url: Some("https://mycompany.com/myapp.php".into()),
            ..with("twilio", &["12345"])
        },
        "twilio-json" => SourceConfig {
            public_url: Some("https://mycompany.com/status".into()),
            ..with("twilio", &["12345"])
        },
        "twilio-sha256" => SourceConfig {
            public_url: Some("https://mycompany.com/myapp.php".into()),
            algorithm: Some(Algorithm::Sha256),
            ..with("twilio", &["webhooks_sharedkey_secret"])
        },
        "flutterwave" => with("flutterwave", &["my-flw-secret-hash"]),
        other => unreachable!("verifier {other} is in VERIFIERS but not configured"),
    }
}

struct Configured {
    verifier: Verifier,
    secrets: Vec<String>,
}

fn verifiers() -> &'static BTreeMap<&'static str, Configured> {
    static VERIFIERS_BUILT: OnceLock<BTreeMap<&'static str, Configured>> = OnceLock::new();
    VERIFIERS_BUILT.get_or_init(|| {
        VERIFIERS
            .iter()
            .map(|name| {
                let config = config(name);
                let secrets = config
                    .secrets
                    .iter()
                    .map(|s| s.expose().to_string())
                    .collect();
                let verifier = Verifier::from_source(&config)
                    .unwrap_or_else(|e| panic!("fuzz verifier {name}: {e}"));
                (*name, Configured { verifier, secrets })
            })
            .collect()
    })
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut lines = Lines::new(data);
    let name = VERIFIERS[pick(VERIFIERS, lines.line())];
    let now_ms = lines.number(1_735_689_600_000).unsigned_abs() % 4_102_444_800_000;
    let query = lines.text();
    let headers = lines.headers();
    let body = lines.rest();
    let Some(configured) = verifiers().get(name) else {
        return;
    };
    let now = UNIX_EPOCH + Duration::from_millis(now_ms);
    let verify = |body: &[u8]| {
        let parts = RequestParts {
            source: "fuzz",
            headers: &headers,
            query: &query,
            body,
        };
        configured.verifier.verify(parts, now).map(|verified| {
            let got = verified.parts();
            assert_eq!(got.body, body, "Verified must carry the request's own body");
            assert_eq!(got.query, query);
            assert!(std::ptr::eq(got.headers, &headers));
        })
    };
    let result = verify(body);
    if crate::input::tracing() {
        eprintln!("verify_raw {name}: {result:?}");
    }
    assert_eq!(
        result,
        verify(body),
        "{name}: verification is not deterministic"
    );
    match &result {
        Ok(()) => {
            let appended = [body, b"x"].concat();
            let covers_body = !TOKEN_SCHEMES.contains(&name)
                && (name != "flutterwave" || headers.get("flutterwave-signature").is_some());
            // Header names in another case, and junk repeats after each header: the
            // first value of a name counts, whatever its case.
            let renamed = Headers::new(
                headers
                    .iter()
                    .map(|(n, v)| (n.to_ascii_uppercase(), v.to_vec()))
                    .chain(
                        headers
                            .iter()
                            .map(|(n, _)| (n.to_string(), b"junk".to_vec())),
                    ),
            );
            let parts = RequestParts {
                source: "fuzz",
                headers: &renamed,
                query: &query,
                body,
            };
            assert_eq!(
                configured.verifier.verify(parts, now).map(|_| ()),
                Ok(()),
                "{name}: header case or a repeat changed the result"
            );
            let after = verify(&appended);
            if covers_body {
                assert_eq!(
                    after,
                    Err(VerifyError::Mismatch),
                    "{name}: a byte appended to a verified body still verifies"
                );
            } else {
                assert_eq!(after, Ok(()), "{name}: a token must not depend on the body");
            }
        }
        Err(error) => {
            let text = error.to_string();
            assert!(!text.is_empty());
            for secret in configured.secrets.iter().filter(|s| s.len() >= 8) {
                assert!(
                    !text.contains(secret.as_str()),
                    "{name}: error {text:?} quotes a secret"
                );
            }
        }
    }
}
