//! `verifier = "hmac"`: one HMAC signature in one header over configurable content.
//!
//! Covers providers without a scheme of their own (Refersion: HMAC-SHA256, base64, raw
//! body) and is the engine behind the fixed raw-body schemes (Shopify, Paystack, Slack,
//! GitHub, Flutterwave v4), which only pin its settings.

use std::borrow::Cow;
use std::time::SystemTime;

use hookline_domain::form::form_value;
use hookline_domain::{Algorithm, Encoding, Piece, RequestParts, SourceConfig, placeholders};

use crate::crypto::{self, Keys};
use crate::input::{self, DEFAULT_TOLERANCE_SECS};
use crate::verifier::Scheme;
use crate::{ConfigError, VerifyError};

/// A configurable HMAC check: `signature_header` carries `signature_prefix` + the encoded
/// HMAC of `signed_content`, optionally with a signed timestamp checked against the clock.
#[derive(Debug, Clone)]
pub struct HmacVerifier {
    keys: Keys,
    header: String,
    prefix: Option<String>,
    algorithm: Algorithm,
    encoding: Encoding,
    content: Vec<Part>,
    timestamp: Option<TimestampRule>,
}

/// One piece of the signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    Body,
    Header(String),
    Query(String),
    Timestamp,
}

#[derive(Debug, Clone)]
struct TimestampRule {
    header: String,
    tolerance_secs: u64,
}

impl HmacVerifier {
    /// The generic verifier, fully configured by the source.
    pub(crate) fn from_source(config: &SourceConfig) -> Result<Self, ConfigError> {
        let keys = Keys::utf8(&config.secrets)?;
        let header = config
            .signature_header
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ConfigError::new("signature_header", "required by verifier \"hmac\""))?;
        let content = parse_content(config.signed_content.as_deref().unwrap_or("{body}"))?;
        let timestamp = match (&config.timestamp_header, config.tolerance_secs) {
            (Some(name), tolerance) => Some(TimestampRule {
                header: name.trim().to_ascii_lowercase(),
                tolerance_secs: tolerance.unwrap_or(DEFAULT_TOLERANCE_SECS),
            }),
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "tolerance_secs",
                    "has no effect without timestamp_header",
                ));
            }
            (None, None) => None,
        };
        check_timestamp_is_signed(&content, timestamp.as_ref())?;
        Ok(Self {
            keys,
            header: header.to_ascii_lowercase(),
            prefix: config.signature_prefix.clone().filter(|p| !p.is_empty()),
            algorithm: config.algorithm.unwrap_or(Algorithm::Sha256),
            encoding: config.encoding.unwrap_or(Encoding::Hex),
            content,
            timestamp,
        })
    }

    /// A provider's fixed raw-body scheme: the source supplies `secrets` and may rename the
    /// signature header with `signature_header`; everything else is pinned.
    pub(crate) fn fixed(
        config: &SourceConfig,
        default_header: &str,
        prefix: Option<&str>,
        algorithm: Algorithm,
        encoding: Encoding,
    ) -> Result<Self, ConfigError> {
        Ok(Self::raw_body(
            Keys::utf8(&config.secrets)?,
            &input::header_name(config.signature_header.as_deref(), default_header),
            prefix,
            algorithm,
            encoding,
        ))
    }

    /// A fixed scheme: the HMAC of the raw body in `header`, after `prefix`.
    pub(crate) fn raw_body(
        keys: Keys,
        header: &str,
        prefix: Option<&str>,
        algorithm: Algorithm,
        encoding: Encoding,
    ) -> Self {
        Self {
            keys,
            header: header.to_ascii_lowercase(),
            prefix: prefix.map(str::to_string),
            algorithm,
            encoding,
            content: vec![Part::Body],
            timestamp: None,
        }
    }

    /// Slack's shape: `{literal}{timestamp}{separator}{body}` with a timestamp window.
    pub(crate) fn timestamped(
        mut self,
        timestamp_header: &str,
        tolerance_secs: u64,
        literal: &str,
        separator: &str,
    ) -> Self {
        self.content = vec![
            Part::Literal(literal.as_bytes().to_vec()),
            Part::Timestamp,
            Part::Literal(separator.as_bytes().to_vec()),
            Part::Body,
        ];
        self.timestamp = Some(TimestampRule {
            header: timestamp_header.to_ascii_lowercase(),
            tolerance_secs,
        });
        self
    }

    /// The header carrying the signature (lower-case).
    pub(crate) fn header(&self) -> &str {
        &self.header
    }

    fn render<'a>(
        &'a self,
        parts: &RequestParts<'a>,
        timestamp: Option<&'a str>,
    ) -> Result<Vec<Cow<'a, [u8]>>, VerifyError> {
        self.content
            .iter()
            .map(|part| {
                Ok(match part {
                    Part::Literal(bytes) => Cow::Borrowed(bytes.as_slice()),
                    Part::Body => Cow::Borrowed(parts.body),
                    Part::Timestamp => Cow::Borrowed(timestamp.unwrap_or_default().as_bytes()),
                    Part::Header(name) => Cow::Borrowed(
                        parts
                            .headers
                            .get(name)
                            .ok_or_else(|| VerifyError::Missing(format!("{name} header")))?,
                    ),
                    Part::Query(name) => {
                        Cow::Owned(form_value(parts.query, name).ok_or_else(|| {
                            VerifyError::Missing(format!("{name} query parameter"))
                        })?)
                    }
                })
            })
            .collect()
    }
}

impl Scheme for HmacVerifier {
    fn verify(&self, parts: &RequestParts<'_>, now: SystemTime) -> Result<(), VerifyError> {
        let value = input::header(parts, &self.header)?;
        let encoded = match &self.prefix {
            Some(prefix) => value
                .strip_prefix(prefix.as_str())
                .ok_or_else(|| input::malformed_header(&self.header))?
                .trim(),
            None => value,
        };
        let signature = crypto::decode(self.encoding, encoded)
            .ok_or_else(|| input::malformed_header(&self.header))?;
        let timestamp = match &self.timestamp {
            Some(rule) => Some((input::header(parts, &rule.header)?, rule)),
            None => None,
        };
        let content = self.render(parts, timestamp.map(|(text, _)| text))?;
        let message: Vec<&[u8]> = content.iter().map(AsRef::as_ref).collect();
        if !self
            .keys
            .sign_matches(self.algorithm, &message, &[signature])
        {
            return Err(VerifyError::Mismatch);
        }
        if let Some((text, rule)) = timestamp {
            let signed_at = input::parse_unix(text, &format!("{} header", rule.header))?;
            input::check_window_secs(signed_at, now, rule.tolerance_secs)?;
        }
        Ok(())
    }
}

/// Parses `signed_content`: literal text plus `{body}`, `{timestamp}`, `{header:name}`,
/// `{query:name}`; `{{` and `}}` are literal braces (the key templates' scanning,
/// [`placeholders`]).
fn parse_content(template: &str) -> Result<Vec<Part>, ConfigError> {
    let error = |why: String| ConfigError::new("signed_content", why);
    placeholders(template)
        .map_err(|e| error(e.to_string()))?
        .into_iter()
        .map(|piece| match piece {
            Piece::Literal(text) => Ok(Part::Literal(text.into_bytes())),
            Piece::Placeholder(inner) => parse_part(inner).ok_or_else(|| {
                error(format!(
                    "unknown part {{{inner}}}: expected {{body}}, {{timestamp}}, {{header:name}} or {{query:name}}"
                ))
            }),
        })
        .collect()
}

fn parse_part(inner: &str) -> Option<Part> {
    match inner.trim() {
        "body" => Some(Part::Body),
        "timestamp" => Some(Part::Timestamp),
        other => match other.split_once(':')? {
            ("header", name) if !name.trim().is_empty() => {
                Some(Part::Header(name.trim().to_ascii_lowercase()))
            }
            ("query", name) if !name.trim().is_empty() => Some(Part::Query(name.trim().into())),
            _ => None,
        },
    }
}

/// A timestamp window only protects against replays if the timestamp is signed; one
/// that is not would give a false sense of safety, so refuse the combination.
fn check_timestamp_is_signed(
    content: &[Part],
    timestamp: Option<&TimestampRule>,
) -> Result<(), ConfigError> {
    match timestamp {
        None if content.contains(&Part::Timestamp) => Err(ConfigError::new(
            "signed_content",
            "uses {timestamp} but timestamp_header is not set",
        )),
        Some(rule)
            if !content.contains(&Part::Timestamp)
                && !content.contains(&Part::Header(rule.header.clone())) =>
        {
            Err(ConfigError::new(
                "timestamp_header",
                "is not part of signed_content, so checking it would not stop replays; add {timestamp} to signed_content",
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_content_templates_parse_into_parts() {
        assert_eq!(
            parse_content("v0:{timestamp}:{body}").unwrap(),
            vec![
                Part::Literal(b"v0:".to_vec()),
                Part::Timestamp,
                Part::Literal(b":".to_vec()),
                Part::Body
            ]
        );
        assert_eq!(
            parse_content("{{x}}{header:X-Id}.{query:a}é").unwrap(),
            vec![
                Part::Literal(b"{x}".to_vec()),
                Part::Header("x-id".into()),
                Part::Literal(b".".to_vec()),
                Part::Query("a".into()),
                Part::Literal("é".as_bytes().to_vec())
            ]
        );
    }

    #[test]
    fn malformed_signed_content_is_a_config_error_on_that_key() {
        for (bad, why) in [
            ("{body", "unclosed '{'"),
            ("body}", "unmatched '}'"),
            ("{json:/id}", "unknown part {json:/id}"),
            ("{header:}", "unknown part {header:}"),
            ("{}", "unknown part {}"),
        ] {
            let err = parse_content(bad).unwrap_err();
            assert_eq!(err.key, "signed_content", "{bad}");
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
    }
}
