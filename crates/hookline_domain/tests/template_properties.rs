//! Property tests of key templates: the renderer never panics, and either renders or
//! names the part that is missing.
//!
//! Two angles. Any text at all (heavy in template syntax): parsing never panics, and a
//! template that parses renders deterministically to a key or to an error naming one of
//! its own parts. Templates built from parts over requests built alongside them: the
//! rendered key is exactly what the documented rules give (first present alternative,
//! `?` renders empty, absent/null/empty is missing, a body that is not JSON is named as
//! such, NUL and overlong keys are refused), computed here from the generated values.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hookline_domain::{
    Headers, MAX_RENDERED_BYTES, RequestParts, Template, TemplateError, TemplateInput,
};
use proptest::prelude::*;
use serde_json::Value;

/// JSON pointers as a template may write them, and what each means after percent-decoding.
const POINTERS: &[(&str, &str)] = &[
    ("/a", "/a"),
    ("/a/b", "/a/b"),
    ("/list/1", "/list/1"),
    ("/n", "/n"),
    ("/nil", "/nil"),
    ("/obj", "/obj"),
    ("/a~1b", "/a~1b"),
    ("/t~0", "/t~0"),
    ("/%61", "/a"),
];
const JSON_KEYS: &[&str] = &["a", "b", "list", "n", "nil", "obj", "a/b", "t~", "1"];
const HEADERS: &[&str] = &["x-id", "X-Id", "webhook-id", "svix-id"];
const QUERY: &[&str] = &["run", "token", "a b"];
const FORM: &[&str] = &["CallSid", "MessageStatus", "a b"];

#[derive(Debug, Clone)]
enum Lookup {
    Json(&'static str, &'static str),
    Header(&'static str),
    Query(&'static str),
    Form(&'static str),
    Source,
}

impl Lookup {
    fn written(&self) -> String {
        match self {
            Lookup::Json(written, _) => format!("json:{written}"),
            Lookup::Header(name) => format!("header:{name}"),
            Lookup::Query(name) => format!("query:{name}"),
            Lookup::Form(name) => format!("form:{name}"),
            Lookup::Source => "source".into(),
        }
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Part {
        alternatives: Vec<Lookup>,
        optional: bool,
    },
}

impl Segment {
    /// The part's text between its braces, as errors name it.
    fn inner(alternatives: &[Lookup], optional: bool) -> String {
        let joined: Vec<String> = alternatives.iter().map(Lookup::written).collect();
        format!("{}{}", joined.join("|"), if optional { "?" } else { "" })
    }
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Form(Vec<(&'static str, String)>),
    NotJson(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Request {
    headers: Vec<(&'static str, String)>,
    query: Vec<(&'static str, String)>,
    body: Body,
}

impl Request {
    fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::Json(value) => serde_json::to_vec(value).unwrap(),
            Body::Form(pairs) => encode(pairs).into_bytes(),
            Body::NotJson(bytes) => bytes.clone(),
        }
    }

    /// What one alternative reads: `Err(())` where a JSON part meets a body that is not JSON.
    fn read(&self, lookup: &Lookup) -> Result<Option<String>, ()> {
        let first = |pairs: &[(&str, String)], name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        Ok(match lookup {
            Lookup::Source => Some("apify".into()),
            Lookup::Header(name) => self
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string()),
            Lookup::Query(name) => first(&self.query, name),
            Lookup::Form(name) => match &self.body {
                Body::Form(pairs) => first(pairs, name),
                _ => None,
            },
            Lookup::Json(_, pointer) => match &self.body {
                Body::Json(value) => value.pointer(pointer).and_then(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }),
                _ => return Err(()),
            },
        })
    }
}

/// Every byte but the unreserved ones percent-encoded, so decoding gives the value back.
fn encode(pairs: &[(&str, String)]) -> String {
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The key the documented rules give for `segments` over `request`.
fn expected(segments: &[Segment], request: &Request) -> Result<String, TemplateError> {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Part {
                alternatives,
                optional,
            } => {
                let name = Segment::inner(alternatives, *optional);
                let mut not_json = false;
                let mut found = None;
                for lookup in alternatives {
                    match request.read(lookup) {
                        Ok(Some(value)) if !value.is_empty() => {
                            found = Some(value);
                            break;
                        }
                        Ok(_) => {}
                        Err(()) => not_json = true,
                    }
                }
                match found {
                    Some(value) if value.contains('\0') => return Err(TemplateError::Nul(name)),
                    Some(value) => out.push_str(&value),
                    None if *optional => {}
                    None if not_json => return Err(TemplateError::NotJson(name)),
                    None => return Err(TemplateError::Missing(name)),
                }
            }
        }
        if out.len() > MAX_RENDERED_BYTES {
            return Err(TemplateError::TooLong);
        }
    }
    Ok(out)
}

fn written(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|segment| match segment {
            Segment::Literal(text) => text.replace('{', "{{").replace('}', "}}"),
            Segment::Part {
                alternatives,
                optional,
            } => format!("{{{}}}", Segment::inner(alternatives, *optional)),
        })
        .collect()
}

fn lookups() -> impl Strategy<Value = Lookup> {
    prop_oneof![
        3 => prop::sample::select(POINTERS).prop_map(|(w, d)| Lookup::Json(w, d)),
        2 => prop::sample::select(HEADERS).prop_map(Lookup::Header),
        1 => prop::sample::select(QUERY).prop_map(Lookup::Query),
        1 => prop::sample::select(FORM).prop_map(Lookup::Form),
        1 => Just(Lookup::Source),
    ]
}

fn segments() -> impl Strategy<Value = Vec<Segment>> {
    let segment = prop_oneof![
        "[a-z0-9:._/{} é-]{1,6}".prop_map(Segment::Literal),
        (prop::collection::vec(lookups(), 1..=3), any::<bool>()).prop_map(
            |(alternatives, optional)| Segment::Part {
                alternatives,
                optional,
            }
        ),
    ];
    prop::collection::vec(segment, 0..6)
}

/// Short values, sometimes empty, sometimes padded, rarely with a NUL or very long.
fn values() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[ a-z0-9&=%é]{0,6}",
        1 => Just("a\0b".to_string()),
        1 => Just("x".repeat(MAX_RENDERED_BYTES)),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        values().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(JSON_KEYS), inner, 0..5).prop_map(
                |map| Value::Object(map.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

fn requests() -> impl Strategy<Value = Request> {
    let body = prop_oneof![
        3 => json().prop_map(Body::Json),
        1 => prop::collection::vec((prop::sample::select(FORM), values()), 0..4).prop_map(Body::Form),
        1 => prop_oneof![Just(b"not json".to_vec()), Just(Vec::new()), Just(b"\xff{".to_vec())]
            .prop_map(Body::NotJson),
    ];
    (
        prop::collection::vec((prop::sample::select(HEADERS), values()), 0..4),
        prop::collection::vec((prop::sample::select(QUERY), values()), 0..3),
        body,
    )
        .prop_map(|(headers, query, body)| Request {
            headers,
            query,
            body,
        })
}

fn render(template: &Template, request: &Request) -> Result<String, TemplateError> {
    let headers = Headers::new(
        request
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())),
    );
    let query = encode(&request.query);
    let body = request.body_bytes();
    let parts = RequestParts {
        source: "apify",
        headers: &headers,
        query: &query,
        body: &body,
    };
    let input = TemplateInput::new(parts);
    let key = template.render(&input);
    assert_eq!(key, template.render(&input), "render is not deterministic");
    key
}

proptest! {
    #[test]
    fn a_template_renders_exactly_what_its_parts_read_or_names_the_first_missing_one(
        segments in segments(),
        request in requests(),
    ) {
        let text = written(&segments);
        let template: Template = text.parse().unwrap();
        prop_assert_eq!(template.as_str(), text.as_str());
        prop_assert_eq!(render(&template, &request), expected(&segments, &request));
    }

    #[test]
    fn any_text_either_fails_to_parse_or_renders_or_names_one_of_its_parts(
        text in prop_oneof![
            "[{}|?:a-z/~%0-9 -]{0,30}",
            "(\\{(json:/[a-z/~%0-9]{0,6}|header:[a-z-]{0,6}|query:[a-z]{0,3}|form:[a-z]{0,3}|source|[a-z]{0,3})(\\|)?\\??\\}|[a-z:{}]{0,3}){0,5}",
            "\\PC{0,20}",
        ],
        request in requests(),
    ) {
        let Ok(template) = text.parse::<Template>() else {
            return Ok(());
        };
        match render(&template, &request) {
            Ok(key) => {
                prop_assert!(key.len() <= MAX_RENDERED_BYTES);
                prop_assert!(!key.contains('\0'));
            }
            Err(TemplateError::Missing(part) | TemplateError::NotJson(part) | TemplateError::Nul(part)) => {
                prop_assert!(text.contains(&format!("{{{part}}}")), "{part:?} is not a part of {text:?}");
            }
            Err(TemplateError::TooLong) => {}
        }
    }
}
