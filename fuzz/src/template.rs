//! `template`: key templates over arbitrary JSON bodies, headers and query strings.
//!
//! Properties: parsing never panics, refuses a NUL anywhere and agrees with
//! [`placeholders`] on malformed text;
//! rendering is deterministic, stays within [`MAX_RENDERED_BYTES`] and never yields a
//! NUL; an error names a part the template really has (`{part}` as written); a body that
//! is JSON is never reported as not JSON; a template without parts renders to its text.
//!
//! Input lines: template, query string, header lines up to an empty line; the rest is the
//! body.

use hookline_domain::{
    MAX_RENDERED_BYTES, Piece, RequestParts, Template, TemplateError, TemplateInput,
    TemplateParseError, placeholders,
};

use crate::input::Lines;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut lines = Lines::new(data);
    let text = lines.text();
    let query = lines.text();
    let headers = lines.headers();
    let body = lines.rest();

    let pieces = placeholders(&text);
    let template = match text.parse::<Template>() {
        Ok(template) => template,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            if text.contains('\0') {
                assert_eq!(error, TemplateParseError::Nul(text.clone()));
            } else if let Err(scan) = pieces {
                assert_eq!(error, scan, "parse and placeholders disagree on {text:?}");
            } else {
                assert!(
                    matches!(
                        error,
                        TemplateParseError::UnknownPart(_) | TemplateParseError::BadPointer(_)
                    ),
                    "{text:?}: {error:?}"
                );
            }
            return;
        }
    };
    assert_eq!(template.as_str(), text);
    let pieces = pieces.expect("a template that parses scans");

    let parts = RequestParts {
        source: "apify",
        headers: &headers,
        query: &query,
        body,
    };
    let input = TemplateInput::new(parts);
    let rendered = template.render(&input);
    assert_eq!(
        rendered,
        template.render(&input),
        "render is not deterministic"
    );
    assert_eq!(
        rendered,
        template.render(&TemplateInput::new(parts)),
        "render depends on the input's cache"
    );

    match &rendered {
        Ok(key) => {
            assert!(key.len() <= MAX_RENDERED_BYTES, "{} bytes", key.len());
            assert!(!key.contains('\0'));
        }
        Err(
            TemplateError::Missing(part) | TemplateError::NotJson(part) | TemplateError::Nul(part),
        ) => {
            assert!(
                text.contains(&format!("{{{part}}}")),
                "error names {part:?}, which is not a part of {text:?}"
            );
        }
        Err(TemplateError::TooLong) => {}
    }
    if matches!(rendered, Err(TemplateError::NotJson(_))) {
        assert!(
            serde_json::from_slice::<serde_json::Value>(body).is_err(),
            "a JSON body was reported as not JSON"
        );
    }
    if pieces
        .iter()
        .all(|piece| matches!(piece, Piece::Literal(_)))
    {
        let literal: String = pieces
            .into_iter()
            .map(|piece| match piece {
                Piece::Literal(text) => text,
                Piece::Placeholder(_) => String::new(),
            })
            .collect();
        if literal.len() <= MAX_RENDERED_BYTES {
            assert_eq!(rendered, Ok(literal));
        } else {
            assert_eq!(rendered, Err(TemplateError::TooLong));
        }
    }
}
