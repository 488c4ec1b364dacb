//! `verifier = "twilio"`: `X-Twilio-Signature` is the base64 HMAC of the URL Twilio called
//! followed by the request's POST parameters, sorted by name (then value), each written as
//! name + value with no separators. The key is the Auth Token (HMAC-SHA1, the default) or a
//! `SharedKey` secret (`algorithm = "sha256"`; Twilio announces it in the unsigned
//! `X-Twilio-Webhooks-Signature-Settings` header, which is therefore not trusted to choose).
//! JSON bodies are not parameters: Twilio adds `bodySHA256=<hex>` to the URL instead, which
//! must equal the SHA-256 of the raw body, and signs the URL alone.
//!
//! The URL: behind a proxy the request line no longer shows the public scheme, host or
//! port, so the source configures `public_url` (scheme, host, optional port, path; no
//! query) and the request's raw query string, exactly as received, is appended after `?`.
//! Like Twilio's own libraries, the URL is also tried with the scheme's default port
//! added (or removed, when `public_url` names it), since Twilio is inconsistent there.
//! No timestamp: deduplication is the replay defence.

use std::time::SystemTime;

use hookline_domain::form::{form_pairs, form_value};
use hookline_domain::{Algorithm, Encoding, RequestParts, SourceConfig};

use crate::crypto::{self, Keys};
use crate::verifier::Scheme;
use crate::{ConfigError, VerifyError, input};

/// The signature header.
pub(crate) const SIGNATURE_HEADER: &str = "x-twilio-signature";
/// The query parameter carrying the hex SHA-256 of a JSON body.
const BODY_HASH_PARAM: &str = "bodySHA256";

/// Twilio's URL-plus-parameters signature.
#[derive(Debug, Clone)]
pub struct TwilioVerifier {
    keys: Keys,
    header: String,
    algorithm: Algorithm,
    /// `public_url` and, where it applies, its spelling with the default port toggled.
    urls: Vec<String>,
}

impl TwilioVerifier {
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        let keys = Keys::utf8(&config.secrets)?;
        let public_url = config
            .public_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    "public_url",
                    "required by verifier \"twilio\": the URL Twilio calls, e.g. https://hooks.example.com/webhooks/twilio",
                )
            })?;
        let algorithm = match config.algorithm {
            None | Some(Algorithm::Sha1) => Algorithm::Sha1,
            Some(Algorithm::Sha256) => Algorithm::Sha256,
            Some(Algorithm::Sha512) => {
                return Err(ConfigError::new(
                    "algorithm",
                    "Twilio signs with sha1 (Auth Token) or sha256 (SharedKey)",
                ));
            }
        };
        Ok(Self {
            keys,
            header: input::header_name(config.signature_header.as_deref(), SIGNATURE_HEADER),
            algorithm,
            urls: url_variants(public_url)?,
        })
    }
}

impl Scheme for TwilioVerifier {
    fn verify(&self, parts: &RequestParts<'_>, _now: SystemTime) -> Result<(), VerifyError> {
        let signature = crypto::decode(Encoding::Base64, input::header(parts, &self.header)?)
            .ok_or_else(|| input::malformed_header(&self.header))?;
        let (body_matches, mut params) = match form_value(parts.query, BODY_HASH_PARAM) {
            Some(expected) => {
                let expected = hex::decode(expected).map_err(|_| {
                    VerifyError::Malformed(format!("{BODY_HASH_PARAM} query parameter"))
                })?;
                (
                    crypto::ct_equal(&crypto::sha256(parts.body), &expected),
                    Vec::new(),
                )
            }
            None => (true, form_pairs(parts.body).collect::<Vec<_>>()),
        };
        params.sort();
        let mut signed_params: Vec<&[u8]> = Vec::with_capacity(params.len() * 2);
        for (name, value) in &params {
            signed_params.extend([name.as_slice(), value.as_slice()]);
        }
        let query: [&[u8]; 2] = match parts.query {
            "" => [b"", b""],
            query => [b"?", query.as_bytes()],
        };
        // Every URL spelling is checked (no early exit), like every key.
        let signature_matches = self.urls.iter().fold(false, |matched, url| {
            let message: Vec<&[u8]> = [url.as_bytes()]
                .into_iter()
                .chain(query)
                .chain(signed_params.iter().copied())
                .collect();
            matched
                | self
                    .keys
                    .sign_matches(self.algorithm, &message, std::slice::from_ref(&signature))
        });
        if signature_matches && body_matches {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// `public_url` as configured plus, as Twilio's libraries try, the same URL with the
/// scheme's default port added (none given) or removed (the default one given).
fn url_variants(url: &str) -> Result<Vec<String>, ConfigError> {
    let error = |why: &str| ConfigError::new("public_url", why);
    if url.contains(['?', '#']) {
        return Err(error(
            "must not contain a query string or fragment: each request's own query string is appended",
        ));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| error("must be an absolute http:// or https:// URL"))?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return Err(error("must be an absolute http:// or https:// URL")),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err(error("has no host"));
    }
    let mut variants = vec![url.to_string()];
    match port {
        None => variants.push(format!("{scheme}://{host}:{default_port}{path}")),
        Some(port) if port == default_port => variants.push(format!("{scheme}://{host}{path}")),
        Some(_) => {}
    }
    Ok(variants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_port_is_tried_both_with_and_without() {
        assert_eq!(
            url_variants("https://h.example/p").unwrap(),
            ["https://h.example/p", "https://h.example:443/p"]
        );
        assert_eq!(
            url_variants("http://h.example:80/p").unwrap(),
            ["http://h.example:80/p", "http://h.example/p"]
        );
        assert_eq!(
            url_variants("https://[::1]:8443/p").unwrap(),
            ["https://[::1]:8443/p"]
        );
    }

    #[test]
    fn public_urls_with_a_query_or_without_a_host_are_config_errors() {
        for bad in [
            "https://h.example/p?x=1",
            "https://h.example/p#rc=2",
            "h.example/p",
            "ftp://h.example/p",
            "https:///p",
        ] {
            assert_eq!(url_variants(bad).unwrap_err().key, "public_url", "{bad}");
        }
    }
}
