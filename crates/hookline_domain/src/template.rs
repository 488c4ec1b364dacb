use std::cell::OnceCell;

use serde_json::Value;

use crate::RequestParts;
use crate::form::{form_value, percent_decode};

/// Longest rendered key accepted. Keys are indexed; a pointer at a huge JSON value must
/// be a client error, not an index failure.
pub const MAX_RENDERED_BYTES: usize = 1024;

/// A key template: literal text plus `{...}` parts that read the request.
///
/// Parts: `{json:/pointer}` (RFC 6901 into the JSON body), `{header:name}`, `{query:name}`,
/// `{form:name}` (an `application/x-www-form-urlencoded` body), `{source}`. A part may list
/// alternatives, `{header:webhook-id|header:svix-id}`, the first present one wins; a
/// trailing `?` makes a part optional (renders empty when absent). `{{` and `}}` are
/// literal braces. A part that is absent, null or empty makes rendering fail with its
/// name, which the HTTP edge turns into a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Part {
        alternatives: Vec<Lookup>,
        optional: bool,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    Json(String),
    Header(String),
    Query(String),
    Form(String),
    Source,
}

/// Why a template could not be parsed (a config error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateParseError {
    /// A `{` without its `}`.
    #[error("unclosed '{{' in template {0:?}")]
    Unclosed(String),
    /// A `}` with no `{` before it.
    #[error("unmatched '}}' in template {0:?} (write '}}}}' for a literal brace)")]
    Unmatched(String),
    /// A part whose kind is not json, header, query, form or source.
    #[error(
        "unknown template part {{{0}}}: expected json:/pointer, header:name, query:name, form:name or source"
    )]
    UnknownPart(String),
    /// A JSON pointer that does not start with `/`.
    #[error("JSON pointer in {{{0}}} must start with '/'")]
    BadPointer(String),
    /// A NUL character, which no key may contain (PostgreSQL text cannot): a literal one
    /// would fail every request at the database instead of the config at start-up.
    #[error("template {0:?} contains a NUL character")]
    Nul(String),
}

/// Why a template could not be rendered for one request (a client error).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    /// A part the template needs is absent, null or empty.
    #[error("missing {0}")]
    Missing(String),
    /// The template reads JSON but the body is not a JSON document.
    #[error("body is not valid JSON, needed for {0}")]
    NotJson(String),
    /// The rendered key is longer than [`MAX_RENDERED_BYTES`].
    #[error("rendered key is longer than {MAX_RENDERED_BYTES} bytes")]
    TooLong,
    /// A part holds a NUL character, which no key may contain (PostgreSQL text cannot).
    #[error("{0} contains a NUL character")]
    Nul(String),
}

/// One piece of a `{…}` template's text, as [`placeholders`] splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text, never empty, with `{{` and `}}` already turned into single braces.
    Literal(String),
    /// What stands between a `{` and the next `}`, as written (not trimmed).
    Placeholder(&'a str),
}

/// Splits `text` into literal runs and `{inner}` placeholders: the scanning that key
/// templates and the generic verifier's `signed_content` share; each interprets the
/// placeholders itself. `{{` and `}}` are literal braces; a placeholder ends at the first
/// `}` after its `{`.
///
/// # Errors
/// [`TemplateParseError::Unclosed`] for a `{` without its `}`,
/// [`TemplateParseError::Unmatched`] for a `}` with no `{` before it.
pub fn placeholders(text: &str) -> Result<Vec<Piece<'_>>, TemplateParseError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("{{").or_else(|| rest.strip_prefix("}}")) {
            literal.push(c);
            rest = after;
        } else if c == '}' {
            return Err(TemplateParseError::Unmatched(text.to_string()));
        } else if c == '{' {
            let (inner, after) = rest[1..]
                .split_once('}')
                .ok_or_else(|| TemplateParseError::Unclosed(text.to_string()))?;
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Placeholder(inner));
            rest = after;
        } else {
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

impl std::str::FromStr for Template {
    type Err = TemplateParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.contains('\0') {
            return Err(TemplateParseError::Nul(text.to_string()));
        }
        let segments = placeholders(text)?
            .into_iter()
            .map(|piece| match piece {
                Piece::Literal(literal) => Ok(Segment::Literal(literal)),
                Piece::Placeholder(inner) => parse_part(inner),
            })
            .collect::<Result<_, _>>()?;
        Ok(Template {
            text: text.to_string(),
            segments,
        })
    }
}

fn parse_part(inner: &str) -> Result<Segment, TemplateParseError> {
    let (body, optional) = match inner.strip_suffix('?') {
        Some(body) => (body, true),
        None => (inner, false),
    };
    let alternatives = body
        .split('|')
        .map(|alt| {
            let alt = alt.trim();
            if alt == "source" {
                return Ok(Lookup::Source);
            }
            let (kind, arg) = alt
                .split_once(':')
                .ok_or_else(|| TemplateParseError::UnknownPart(inner.to_string()))?;
            if arg.is_empty() {
                return Err(TemplateParseError::UnknownPart(inner.to_string()));
            }
            match kind {
                "json" if arg.starts_with('/') => Ok(Lookup::Json(arg.to_string())),
                "json" => Err(TemplateParseError::BadPointer(inner.to_string())),
                "header" => Ok(Lookup::Header(arg.to_ascii_lowercase())),
                "query" => Ok(Lookup::Query(arg.to_string())),
                "form" => Ok(Lookup::Form(arg.to_string())),
                _ => Err(TemplateParseError::UnknownPart(inner.to_string())),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Segment::Part {
        alternatives,
        optional,
        text: inner.to_string(),
    })
}

/// One request as the templates see it; the JSON body is parsed at most once, and only
/// when a template asks for it.
pub struct TemplateInput<'a> {
    parts: RequestParts<'a>,
    json: OnceCell<Option<Value>>,
}

impl<'a> TemplateInput<'a> {
    /// Wraps the request parts.
    pub fn new(parts: RequestParts<'a>) -> Self {
        Self {
            parts,
            json: OnceCell::new(),
        }
    }

    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_slice(self.parts.body).ok())
            .as_ref()
    }

    /// The parsed JSON body, if the body is JSON (parsed at most once).
    pub fn json_body(&self) -> Option<&Value> {
        self.json()
    }
}

impl Template {
    /// The template as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Renders the template for one request.
    ///
    /// # Errors
    /// [`TemplateError`] naming the first part that is absent, or the body not being JSON
    /// where a `{json:..}` part needs it, or the result being too long.
    pub fn render(&self, input: &TemplateInput<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Part {
                    alternatives,
                    optional,
                    text,
                } => {
                    let mut found = None;
                    let mut not_json = false;
                    for lookup in alternatives {
                        match lookup.read(input) {
                            Ok(Some(v)) if !v.is_empty() => {
                                found = Some(v);
                                break;
                            }
                            Ok(_) => {}
                            Err(NotJson) => not_json = true,
                        }
                    }
                    match found {
                        Some(v) if v.contains('\0') => {
                            return Err(TemplateError::Nul(text.clone()));
                        }
                        Some(v) => out.push_str(&v),
                        None if *optional => {}
                        None if not_json => return Err(TemplateError::NotJson(text.clone())),
                        None => return Err(TemplateError::Missing(text.clone())),
                    }
                }
            }
            if out.len() > MAX_RENDERED_BYTES {
                return Err(TemplateError::TooLong);
            }
        }
        Ok(out)
    }
}

struct NotJson;

impl Lookup {
    fn read(&self, input: &TemplateInput<'_>) -> Result<Option<String>, NotJson> {
        let parts = &input.parts;
        Ok(match self {
            Lookup::Source => Some(parts.source.to_string()),
            Lookup::Header(name) => parts.headers.get_str(name).map(str::to_string),
            Lookup::Query(name) => form_value(parts.query, name).map(lossy),
            Lookup::Form(name) => std::str::from_utf8(parts.body)
                .ok()
                .and_then(|body| form_value(body, name))
                .map(lossy),
            Lookup::Json(pointer) => {
                let json = input.json().ok_or(NotJson)?;
                json.pointer(&decode_pointer(pointer)).and_then(scalar)
            }
        })
    }
}

/// Pointers in config may be written percent-encoded (URI fragment style); accept both.
fn decode_pointer(pointer: &str) -> String {
    if pointer.contains('%') {
        lossy(percent_decode(pointer.as_bytes(), false))
    } else {
        pointer.to_string()
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Headers;

    fn render(
        template: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        query: &str,
    ) -> Result<String, TemplateError> {
        let headers = Headers::new(
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
        );
        let parts = RequestParts {
            source: "apify",
            headers: &headers,
            query,
            body,
        };
        template
            .parse::<Template>()
            .unwrap()
            .render(&TemplateInput::new(parts))
    }

    #[test]
    fn renders_json_pointers_headers_query_and_literals() {
        let body = br#"{"eventType":"ACTOR.RUN.SUCCEEDED","eventData":{"actorRunId":"r1"},"n":7}"#;
        assert_eq!(
            render(
                "{json:/eventData/actorRunId}:{json:/eventType}",
                body,
                &[],
                ""
            )
            .unwrap(),
            "r1:ACTOR.RUN.SUCCEEDED"
        );
        assert_eq!(
            render("{source}-{json:/n}", body, &[], "").unwrap(),
            "apify-7"
        );
        assert_eq!(
            render(
                "d:{header:X-Apify-Webhook-Dispatch-Id}",
                body,
                &[("x-apify-webhook-dispatch-id", "d1")],
                ""
            )
            .unwrap(),
            "d:d1"
        );
        assert_eq!(
            render("{query:run}", b"", &[], "a=1&run=r%2F2").unwrap(),
            "r/2"
        );
        assert_eq!(render("{{literal}}", b"", &[], "").unwrap(), "{literal}");
    }

    #[test]
    fn a_missing_part_is_named_in_the_error() {
        let err = render(
            "{json:/eventData/actorRunId}",
            br#"{"eventData":{}}"#,
            &[],
            "",
        )
        .unwrap_err();
        assert_eq!(
            err,
            TemplateError::Missing("json:/eventData/actorRunId".into())
        );
        assert_eq!(err.to_string(), "missing json:/eventData/actorRunId");
        assert_eq!(
            render("{header:webhook-id}", b"", &[], "").unwrap_err(),
            TemplateError::Missing("header:webhook-id".into())
        );
        assert_eq!(
            render("{json:/id}", br#"{"id":null}"#, &[], "").unwrap_err(),
            TemplateError::Missing("json:/id".into())
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_reported_as_such() {
        for body in [&b"not json"[..], b"", b"\xff\xfe"] {
            assert_eq!(
                render("{json:/id}", body, &[], "").unwrap_err(),
                TemplateError::NotJson("json:/id".into())
            );
        }
    }

    #[test]
    fn alternatives_take_the_first_present_and_optional_parts_may_be_absent() {
        assert_eq!(
            render(
                "{header:webhook-id|header:svix-id}",
                b"",
                &[("svix-id", "m1")],
                ""
            )
            .unwrap(),
            "m1"
        );
        assert_eq!(render("{header:a?}x", b"", &[], "").unwrap(), "x");
        assert_eq!(
            render("{form:CallSid}", b"CallSid=CA1&CallStatus=ringing", &[], "").unwrap(),
            "CA1"
        );
    }

    #[test]
    fn nul_characters_are_rejected() {
        assert_eq!(
            render("{json:/id}", br#"{"id":"a\u0000b"}"#, &[], "").unwrap_err(),
            TemplateError::Nul("json:/id".into())
        );
    }

    #[test]
    fn overlong_keys_are_rejected() {
        let body = format!(r#"{{"id":"{}"}}"#, "x".repeat(MAX_RENDERED_BYTES + 1));
        assert_eq!(
            render("{json:/id}", body.as_bytes(), &[], "").unwrap_err(),
            TemplateError::TooLong
        );
    }

    #[test]
    fn placeholders_split_literals_and_parts_with_brace_escapes() {
        assert_eq!(
            placeholders("a{{b{x:y}}}c{ z }é").unwrap(),
            vec![
                Piece::Literal("a{b".into()),
                Piece::Placeholder("x:y"),
                Piece::Literal("}c".into()),
                Piece::Placeholder(" z "),
                Piece::Literal("é".into()),
            ]
        );
        assert_eq!(placeholders("").unwrap(), vec![]);
        assert_eq!(placeholders("{}").unwrap(), vec![Piece::Placeholder("")]);
        assert_eq!(
            placeholders("{{{a"),
            Err(TemplateParseError::Unclosed("{{{a".into()))
        );
        assert_eq!(
            placeholders("{a}}"),
            Err(TemplateParseError::Unmatched("{a}}".into()))
        );
    }

    #[test]
    fn malformed_templates_are_config_errors() {
        assert!(matches!(
            "{json:/a".parse::<Template>(),
            Err(TemplateParseError::Unclosed(_))
        ));
        assert!(matches!(
            "a}".parse::<Template>(),
            Err(TemplateParseError::Unmatched(_))
        ));
        assert!(matches!(
            "{cookie:a}".parse::<Template>(),
            Err(TemplateParseError::UnknownPart(_))
        ));
        assert!(matches!(
            "{json:a}".parse::<Template>(),
            Err(TemplateParseError::BadPointer(_))
        ));
    }

    // Found by fuzzing (fuzz/corpus/template/regression-nul-literal): a NUL in the
    // literal text rendered into every key, which PostgreSQL then refused per request.
    #[test]
    fn a_nul_anywhere_in_the_template_is_a_config_error() {
        for text in ["{{lit\0ral}}", "a\0{json:/id}", "{header:x\0}"] {
            let err = text.parse::<Template>().unwrap_err();
            assert_eq!(err, TemplateParseError::Nul(text.into()));
            assert!(err.to_string().contains("NUL"), "{err}");
        }
    }
}
