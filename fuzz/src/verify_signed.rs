//! `verify_signed`: every verifier accepts a request that the independent signer
//! ([`crate::sign`]) signed as its provider documents, at any clock inside the window, and
//! rejects it once one thing is changed: one character of the signature, one byte of a
//! signed body, the secret, the header itself, the clock one millisecond past either edge.
//! Header-name case, repeated headers and the order of rotated secrets change nothing;
//! GitHub cannot be downgraded to SHA-1, Twilio's unsigned settings header chooses
//! nothing, a Standard Webhooks list passes on any one valid `v1` entry.
//!
//! Input lines: scheme, secret, wrong secret, now (unix ms), skew (signing time minus
//! now, ms), tamper (a number: `n % 12` picks the change, `n / 12` where it applies),
//! id (the webhook id header), query value; the rest is the body.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookline_domain::{
    Algorithm, Encoding, Headers, RequestParts, Secret, SourceConfig, resolve_preset,
};
use hookline_providers::{Verifier, VerifyError};

use crate::input::{Lines, pick};
use crate::sign;

/// Every scheme, and each verifier's variants that sign differently.
pub const SCHEMES: &[&str] = &[
    "token",
    "token-query",
    "token-bearer",
    "apify",
    "hmac",
    "hmac-sha1-base64-prefixed",
    "hmac-sha512-timestamped",
    "hmac-parts",
    "refersion",
    "standard-webhooks",
    "svix",
    "stripe",
    "github",
    "github-legacy-sha1",
    "shopify",
    "slack",
    "retell",
    "paystack",
    "twilio",
    "twilio-json",
    "twilio-sha256",
    "flutterwave",
    "flutterwave-v3",
];

const PUBLIC_URL: &str = "https://hooks.example.com/webhooks/twilio";
const PUBLIC_URL_WITH_PORT: &str = "https://hooks.example.com:443/webhooks/twilio";

/// Latest clock the input may set: 2100-01-01.
const MAX_NOW_MS: u64 = 4_102_444_800_000;
/// Largest skew between signing and now the input may set: twice the widest window.
const MAX_SKEW_MS: i64 = 600_000;

/// A request as the verifier sees it.
#[derive(Debug, Clone)]
struct Request {
    headers: Vec<(String, Vec<u8>)>,
    query: String,
    body: Vec<u8>,
}

impl Request {
    fn verify(&self, verifier: &Verifier, now_ms: i128) -> Result<(), VerifyError> {
        let headers = Headers::new(self.headers.clone());
        let parts = RequestParts {
            source: "fuzz",
            headers: &headers,
            query: &self.query,
            body: &self.body,
        };
        let now = u64::try_from(now_ms)
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let verified = verifier.verify(parts, now)?;
        assert_eq!(verified.parts().body, self.body.as_slice());
        assert_eq!(verified.parts().query, self.query);
        Ok(())
    }
}

/// Where the signature (or token) travels.
#[derive(Debug, Clone)]
enum Carrier {
    /// In this header (lower-case name).
    Header(&'static str),
    /// In the query string, from this byte on (the `token=` parameter's value).
    Query(usize),
}

/// The signed timestamp and the window the scheme accepts around it.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// The signing time as the verifier reads it (whole seconds for most schemes).
    signed_ms: i128,
    tolerance_secs: u64,
    /// Stripe accepts any signing time in the future.
    future_ok: bool,
}

impl Window {
    fn contains(self, now_ms: i128) -> bool {
        let age = now_ms - self.signed_ms;
        let limit = i128::from(self.tolerance_secs) * 1000;
        age <= limit && (self.future_ok || -age <= limit)
    }
}

/// A request signed for one scheme, and what the scheme promises about it.
struct Signed {
    request: Request,
    carrier: Carrier,
    window: Option<Window>,
    /// Whether changing a body byte must break the signature; `None` where a change can
    /// keep the signed content (Twilio signs form parameters without separators).
    covers_body: Option<bool>,
    /// Flutterwave: without the v4 signature, the v3 `verif-hash` still authenticates.
    fallback_without_carrier: bool,
}

/// One secret: as written in the config, and the HMAC key it stands for.
struct Key {
    configured: String,
    bytes: Vec<u8>,
}

/// The fields the input supplies.
struct Fields<'a> {
    signed_ms: i128,
    id: String,
    query_value: &'a [u8],
    body: &'a [u8],
    url: &'static str,
}

impl Fields<'_> {
    fn secs(&self) -> String {
        (self.signed_ms / 1000).to_string()
    }

    /// A window over the whole-second signing time.
    fn window_secs(&self, tolerance_secs: u64, future_ok: bool) -> Option<Window> {
        Some(Window {
            signed_ms: self.signed_ms / 1000 * 1000,
            tolerance_secs,
            future_ok,
        })
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut lines = Lines::new(data);
    let scheme = SCHEMES[pick(SCHEMES, lines.line())];
    let secret_line = lines.line();
    let wrong_line = lines.line();
    let now_ms = i128::from(lines.number(1_735_689_600_000).unsigned_abs() % MAX_NOW_MS);
    let skew_ms = i128::from(lines.number(0) % (MAX_SKEW_MS + 1));
    let tamper = lines.number(0).unsigned_abs();
    let id = visible(lines.line(), "msg_fuzz");
    let query_value = lines.line();
    let body = lines.rest();

    let secret = key(scheme, secret_line);
    let mut wrong = key(scheme, wrong_line);
    if wrong.bytes == secret.bytes {
        wrong = key(scheme, &[wrong_line, b"x"].concat());
    }
    let (kind, position) = (tamper % 12, usize::try_from(tamper / 12).unwrap_or(0));
    let fields = Fields {
        signed_ms: (now_ms + skew_ms).max(0),
        id,
        query_value,
        body,
        url: if position % 2 == 0 {
            PUBLIC_URL
        } else {
            PUBLIC_URL_WITH_PORT
        },
    };
    let signed = sign_for(scheme, &secret, &fields);
    let with = |keys: &[&Key]| {
        let config = SourceConfig {
            secrets: keys.iter().map(|k| Secret::new(&k.configured)).collect(),
            ..source(scheme)
        };
        Verifier::from_source(&config).expect("every fuzzed scheme's config is valid")
    };
    let single = with(&[&secret]);
    let request = &signed.request;

    // Inside the window the signed request verifies, with one secret or with two in
    // rotation; outside it, the answer is the timestamp (the signature itself is good).
    let expected = |now_ms: i128| match signed.window {
        Some(window) if !window.contains(now_ms) => Err(VerifyError::Timestamp {
            tolerance_secs: window.tolerance_secs,
        }),
        _ => Ok(()),
    };
    assert_eq!(
        request.verify(&single, now_ms),
        expected(now_ms),
        "{scheme}: {request:?}"
    );
    assert_eq!(
        request.verify(&with(&[&wrong, &secret]), now_ms),
        expected(now_ms)
    );
    scheme_rules(scheme, request, &single, now_ms, expected(now_ms));

    match kind {
        // One character of the signature (or token) becomes another: never accepted.
        1 => {
            let Some(tampered) = change_signature_char(request, &signed.carrier, position) else {
                return;
            };
            let result = tampered.verify(&single, now_ms);
            assert!(
                matches!(
                    result,
                    Err(VerifyError::Mismatch
                        | VerifyError::Malformed(_)
                        | VerifyError::Missing(_))
                ),
                "{scheme}: tampered signature gave {result:?}: {tampered:?}"
            );
        }
        // One body byte changes: a signature over the body no longer matches.
        2 => {
            let mut tampered = request.clone();
            match tampered.body.len() {
                0 => tampered.body.push(b'x'),
                len => {
                    let at = position % len;
                    tampered.body[at] ^= u8::try_from(position / len % 255 + 1).unwrap_or(1);
                }
            }
            let result = tampered.verify(&single, now_ms);
            match signed.covers_body {
                Some(true) => assert_eq!(result, Err(VerifyError::Mismatch), "{scheme}"),
                Some(false) => assert_eq!(result, expected(now_ms), "{scheme}"),
                None => {}
            }
        }
        // A verifier holding only another secret rejects it.
        3 => assert_eq!(
            request.verify(&with(&[&wrong]), now_ms),
            Err(VerifyError::Mismatch),
            "{scheme}"
        ),
        // Without the signature it is missing (Flutterwave falls back to verif-hash).
        4 => {
            let result = drop_carrier(request, &signed.carrier).verify(&single, now_ms);
            if signed.fallback_without_carrier {
                assert_eq!(result, expected(now_ms), "{scheme}");
            } else {
                assert!(
                    matches!(result, Err(VerifyError::Missing(_))),
                    "{scheme}: {result:?}"
                );
            }
        }
        // The clock at each edge of the window, and one millisecond past it.
        5..=8 => {
            let Some(window) = signed.window else {
                assert_eq!(request.verify(&single, 0), Ok(()), "{scheme}");
                return;
            };
            let limit = i128::from(window.tolerance_secs) * 1000;
            let now = match kind {
                5 => window.signed_ms + limit + 1,
                6 => window.signed_ms - limit - 1,
                7 => window.signed_ms + limit,
                _ => window.signed_ms - limit,
            };
            if now >= 0 {
                assert_eq!(request.verify(&single, now), expected(now), "{scheme}");
                assert_eq!(
                    expected(now).is_ok(),
                    kind >= 7 || (kind == 6 && window.future_ok)
                );
            }
        }
        // Header names in another case: still the same headers.
        9 => {
            let mut tampered = request.clone();
            for (name, _) in &mut tampered.headers {
                *name = name.to_ascii_uppercase();
            }
            assert_eq!(
                tampered.verify(&single, now_ms),
                expected(now_ms),
                "{scheme}"
            );
        }
        // Each header repeated with junk after it: the first value counts.
        10 => {
            let mut tampered = request.clone();
            let junk: Vec<_> = tampered
                .headers
                .iter()
                .map(|(name, _)| (name.clone(), b"junk".to_vec()))
                .collect();
            tampered.headers.extend(junk);
            assert_eq!(
                tampered.verify(&single, now_ms),
                expected(now_ms),
                "{scheme}"
            );
        }
        // Rotation in the other order.
        11 => assert_eq!(
            request.verify(&with(&[&secret, &wrong]), now_ms),
            expected(now_ms),
            "{scheme}"
        ),
        _ => {}
    }
}

/// What single schemes promise beyond the common contract.
fn scheme_rules(
    scheme: &str,
    request: &Request,
    verifier: &Verifier,
    now_ms: i128,
    expected: Result<(), VerifyError>,
) {
    let with_header = |name: &str, value: &[u8]| {
        let mut changed = request.clone();
        changed.headers.push((name.to_string(), value.to_vec()));
        changed
    };
    match scheme {
        // With a SHA-256 header present it decides: a request cannot pick the weaker SHA-1.
        "github-legacy-sha1" => {
            let downgraded = with_header("X-Hub-Signature-256", b"sha256=00");
            assert!(
                downgraded.verify(verifier, now_ms).is_err(),
                "SHA-1 downgrade"
            );
        }
        // The settings header is unsigned, so it cannot choose the algorithm.
        "twilio" | "twilio-sha256" | "twilio-json" => {
            let claimed = with_header(
                "X-Twilio-Webhooks-Signature-Settings",
                b"key=x,algorithm=HMAC_SHA1",
            );
            assert_eq!(claimed.verify(verifier, now_ms), expected);
        }
        // Any one valid v1 entry passes, whatever else the list holds.
        "standard-webhooks" | "svix" => {
            let mut listed = request.clone();
            for (name, value) in &mut listed.headers {
                if name.ends_with("-signature") {
                    *value = [&b"v1,AAAA v2,x "[..], value].concat();
                }
            }
            assert_eq!(listed.verify(verifier, now_ms), expected);
        }
        _ => {}
    }
}

/// The secret a scheme is configured with for the input's key line. Token-like schemes
/// compare header text, which has no spaces or control characters around it.
fn key(scheme: &str, line: &[u8]) -> Key {
    match scheme {
        "standard-webhooks" | "svix" => {
            let bytes = if line.is_empty() {
                b"k".to_vec()
            } else {
                line.to_vec()
            };
            Key {
                configured: format!("whsec_{}", sign::b64(&bytes)),
                bytes,
            }
        }
        "token" | "token-query" | "token-bearer" | "apify" | "flutterwave" | "flutterwave-v3" => {
            let text = visible(line, "t0ken");
            Key {
                bytes: text.clone().into_bytes(),
                configured: text,
            }
        }
        _ => {
            let text = String::from_utf8_lossy(line).into_owned();
            let text = if text.is_empty() {
                "k".to_string()
            } else {
                text
            };
            Key {
                bytes: text.clone().into_bytes(),
                configured: text,
            }
        }
    }
}

/// `line` without anything but visible ASCII (what an HTTP header value can carry
/// untrimmed), or `default` when nothing is left.
fn visible(line: &[u8], default: &str) -> String {
    let kept: String = line
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .map(|b| char::from(*b))
        .collect();
    if kept.is_empty() {
        default.to_string()
    } else {
        kept
    }
}

/// The source config of `scheme`, without secrets.
fn source(scheme: &str) -> SourceConfig {
    let base = |verifier: &str| SourceConfig {
        verifier: Some(verifier.into()),
        ..SourceConfig::default()
    };
    let preset = |name: &str| {
        resolve_preset(SourceConfig {
            preset: Some(name.into()),
            ..SourceConfig::default()
        })
        .expect("a shipped preset")
    };
    let hmac = |algorithm, encoding, prefix: Option<&str>| SourceConfig {
        signature_header: Some("X-Signature".into()),
        algorithm: Some(algorithm),
        encoding: Some(encoding),
        signature_prefix: prefix.map(str::to_string),
        ..base("hmac")
    };
    match scheme {
        "token-bearer" => SourceConfig {
            token_header: Some("Authorization".into()),
            ..base("token")
        },
        "token-query" => base("token"),
        "apify" | "refersion" => preset(scheme),
        "hmac" => hmac(Algorithm::Sha256, Encoding::Hex, None),
        "hmac-sha1-base64-prefixed" => hmac(Algorithm::Sha1, Encoding::Base64, Some("sha1=")),
        "hmac-sha512-timestamped" => SourceConfig {
            signed_content: Some("{timestamp}.{body}".into()),
            timestamp_header: Some("X-Timestamp".into()),
            tolerance_secs: Some(60),
            ..hmac(Algorithm::Sha512, Encoding::Hex, None)
        },
        "hmac-parts" => SourceConfig {
            signed_content: Some("{header:X-Id}:{query:a}:{body}".into()),
            ..hmac(Algorithm::Sha256, Encoding::Base64, Some("v1="))
        },
        "github-legacy-sha1" => SourceConfig {
            allow_legacy_sha1: Some(true),
            ..base("github")
        },
        "twilio" | "twilio-json" => SourceConfig {
            public_url: Some(PUBLIC_URL.into()),
            ..base("twilio")
        },
        "twilio-sha256" => SourceConfig {
            public_url: Some(PUBLIC_URL.into()),
            algorithm: Some(Algorithm::Sha256),
            ..base("twilio")
        },
        "flutterwave-v3" => base("flutterwave"),
        other => base(other),
    }
}

/// Signs a request for `scheme` as its provider documents.
fn sign_for(scheme: &str, key: &Key, f: &Fields<'_>) -> Signed {
    let k = key.bytes.as_slice();
    let body = f.body;
    let header = |name: &str, value: &str| (name.to_string(), value.as_bytes().to_vec());
    let raw_body = |name: &'static str, value: String| Signed {
        request: Request {
            headers: vec![header(name, &value)],
            query: String::new(),
            body: body.to_vec(),
        },
        carrier: Carrier::Header(name),
        window: None,
        covers_body: Some(true),
        fallback_without_carrier: false,
    };
    match scheme {
        "token" => Signed {
            covers_body: Some(false),
            ..raw_body("x-hookline-token", key.configured.clone())
        },
        "token-bearer" => Signed {
            covers_body: Some(false),
            ..raw_body("authorization", format!("Bearer {}", key.configured))
        },
        "token-query" | "apify" => {
            let prefix = format!("a={}&token=", sign::percent_encode_all(f.query_value));
            Signed {
                request: Request {
                    headers: Vec::new(),
                    query: format!("{prefix}{}", sign::percent_encode_all(&key.bytes)),
                    body: body.to_vec(),
                },
                carrier: Carrier::Query(prefix.len()),
                window: None,
                covers_body: Some(false),
                fallback_without_carrier: false,
            }
        }
        "hmac" => raw_body(
            "x-signature",
            sign::hex(&sign::mac(Algorithm::Sha256, k, &[body])),
        ),
        "hmac-sha1-base64-prefixed" => raw_body(
            "x-signature",
            format!(
                "sha1={}",
                sign::b64(&sign::mac(Algorithm::Sha1, k, &[body]))
            ),
        ),
        "hmac-sha512-timestamped" => {
            let ts = f.secs();
            let mac = sign::mac(Algorithm::Sha512, k, &[ts.as_bytes(), b".", body]);
            let mut signed = raw_body("x-signature", sign::hex(&mac));
            signed.request.headers.push(header("X-Timestamp", &ts));
            signed.window = f.window_secs(60, false);
            signed
        }
        "hmac-parts" => {
            let pieces: [&[u8]; 5] = [f.id.as_bytes(), b":", f.query_value, b":", body];
            let mac = sign::mac(Algorithm::Sha256, k, &pieces);
            let mut signed = raw_body("x-signature", format!("v1={}", sign::b64(&mac)));
            signed.request.headers.push(header("X-Id", &f.id));
            signed.request.query = format!("a={}", sign::percent_encode_all(f.query_value));
            signed
        }
        "refersion" => raw_body(
            "refersion-signature",
            sign::b64(&sign::mac(Algorithm::Sha256, k, &[body])),
        ),
        "standard-webhooks" | "svix" => {
            let (id_name, ts_name, sig_name) = if scheme == "svix" {
                ("svix-id", "svix-timestamp", "svix-signature")
            } else {
                ("webhook-id", "webhook-timestamp", "webhook-signature")
            };
            let ts = f.secs();
            let pieces: [&[u8]; 5] = [f.id.as_bytes(), b".", ts.as_bytes(), b".", body];
            let mac = sign::mac(Algorithm::Sha256, k, &pieces);
            let mut signed = raw_body(sig_name, format!("v1,{}", sign::b64(&mac)));
            signed.request.headers.push(header(id_name, &f.id));
            signed.request.headers.push(header(ts_name, &ts));
            signed.window = f.window_secs(300, false);
            signed
        }
        "stripe" => {
            let ts = f.secs();
            let mac = sign::mac(Algorithm::Sha256, k, &[ts.as_bytes(), b".", body]);
            let mut signed = raw_body("stripe-signature", format!("t={ts},v1={}", sign::hex(&mac)));
            signed.window = f.window_secs(300, true);
            signed
        }
        "github" => raw_body(
            "x-hub-signature-256",
            format!(
                "sha256={}",
                sign::hex(&sign::mac(Algorithm::Sha256, k, &[body]))
            ),
        ),
        "github-legacy-sha1" => raw_body(
            "x-hub-signature",
            format!(
                "sha1={}",
                sign::hex(&sign::mac(Algorithm::Sha1, k, &[body]))
            ),
        ),
        "shopify" => raw_body(
            "x-shopify-hmac-sha256",
            sign::b64(&sign::mac(Algorithm::Sha256, k, &[body])),
        ),
        "slack" => {
            let ts = f.secs();
            let mac = sign::mac(Algorithm::Sha256, k, &[b"v0:", ts.as_bytes(), b":", body]);
            let mut signed = raw_body("x-slack-signature", format!("v0={}", sign::hex(&mac)));
            signed
                .request
                .headers
                .push(header("X-Slack-Request-Timestamp", &ts));
            signed.window = f.window_secs(300, false);
            signed
        }
        "retell" => {
            let v = f.signed_ms.to_string();
            let mac = sign::mac(Algorithm::Sha256, k, &[body, v.as_bytes()]);
            let mut signed = raw_body("x-retell-signature", format!("v={v},d={}", sign::hex(&mac)));
            signed.window = Some(Window {
                signed_ms: f.signed_ms,
                tolerance_secs: 300,
                future_ok: false,
            });
            signed
        }
        "paystack" => raw_body(
            "x-paystack-signature",
            sign::hex(&sign::mac(Algorithm::Sha512, k, &[body])),
        ),
        "twilio" | "twilio-sha256" => {
            // The input's body, split into parameters at `&` and the first `=`, sent fully
            // percent-encoded; Twilio signs URL + query + each name and value, sorted.
            let mut params: Vec<(&[u8], &[u8])> = body
                .split(|b| *b == b'&')
                .filter(|segment| !segment.is_empty())
                .map(|segment| match segment.iter().position(|b| *b == b'=') {
                    Some(eq) => (&segment[..eq], &segment[eq + 1..]),
                    None => (segment, &[][..]),
                })
                .collect();
            let encoded = params
                .iter()
                .map(|(n, v)| {
                    format!(
                        "{}={}",
                        sign::percent_encode_all(n),
                        sign::percent_encode_all(v)
                    )
                })
                .collect::<Vec<_>>()
                .join("&");
            params.sort();
            let query = match f.query_value {
                [] => String::new(),
                value => format!("a={}", sign::percent_encode_all(value)),
            };
            let signed_url = match query.as_str() {
                "" => f.url.to_string(),
                q => format!("{}?{q}", f.url),
            };
            let mut pieces: Vec<&[u8]> = vec![signed_url.as_bytes()];
            for (n, v) in &params {
                pieces.extend([*n, *v]);
            }
            let algorithm = if scheme == "twilio" {
                Algorithm::Sha1
            } else {
                Algorithm::Sha256
            };
            let mut signed = raw_body(
                "x-twilio-signature",
                sign::b64(&sign::mac(algorithm, k, &pieces)),
            );
            signed.request.body = encoded.into_bytes();
            signed.request.query = query;
            signed.covers_body = None;
            signed
        }
        "twilio-json" => {
            let mut query = format!("bodySHA256={}", sign::hex(&sign::sha256(body)));
            if !f.query_value.is_empty() {
                query = format!("{query}&a={}", sign::percent_encode_all(f.query_value));
            }
            let signed_url = format!("{}?{query}", f.url);
            let mac = sign::mac(Algorithm::Sha1, k, &[signed_url.as_bytes()]);
            let mut signed = raw_body("x-twilio-signature", sign::b64(&mac));
            signed.request.query = query;
            signed
        }
        "flutterwave" => {
            let mac = sign::mac(Algorithm::Sha256, k, &[body]);
            let mut signed = raw_body("flutterwave-signature", sign::b64(&mac));
            signed
                .request
                .headers
                .push(header("verif-hash", &key.configured));
            signed.fallback_without_carrier = true;
            signed
        }
        "flutterwave-v3" => Signed {
            covers_body: Some(false),
            ..raw_body("verif-hash", key.configured.clone())
        },
        other => unreachable!("scheme {other} is in SCHEMES but not signed"),
    }
}

/// The request with one alphanumeric character of its signature replaced by another
/// that differs even ignoring case (hex is case-insensitive); `None` if there is none.
fn change_signature_char(request: &Request, carrier: &Carrier, position: usize) -> Option<Request> {
    let mut tampered = request.clone();
    let value: &mut Vec<u8> = match carrier {
        Carrier::Header(name) => {
            &mut tampered
                .headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))?
                .1
        }
        Carrier::Query(start) => {
            let mut bytes = tampered.query.clone().into_bytes();
            let candidates: Vec<usize> = (*start..bytes.len())
                .filter(|i| bytes[*i].is_ascii_alphanumeric())
                .collect();
            let at = *candidates.get(position % candidates.len().max(1))?;
            bytes[at] = other_char(bytes[at]);
            tampered.query = String::from_utf8(bytes).ok()?;
            return Some(tampered);
        }
    };
    let candidates: Vec<usize> = (0..value.len())
        .filter(|i| value[*i].is_ascii_alphanumeric())
        .collect();
    let at = *candidates.get(position % candidates.len().max(1))?;
    value[at] = other_char(value[at]);
    Some(tampered)
}

/// The next digit or letter, wrapping, in the same case.
fn other_char(c: u8) -> u8 {
    match c {
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        c => c + 1,
    }
}

/// The request without its signature.
fn drop_carrier(request: &Request, carrier: &Carrier) -> Request {
    let mut dropped = request.clone();
    match carrier {
        Carrier::Header(name) => dropped
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
        Carrier::Query(start) => {
            let keep = dropped.query[..*start].trim_end_matches("token=");
            dropped.query = keep.trim_end_matches('&').to_string();
        }
    }
    dropped
}
