//! Config errors that never quote a value: a wrong value may be a secret.
//!
//! figment's messages quote what they found (`found string "…"`), and a TOML syntax
//! error shows the offending line. Either can hold a token or a URL password, and a
//! start-up error ends up in logs. So every message keeps the key, the line and column
//! and what was expected, and says only what *kind* of value was found.

use figment::error::{Actual, Kind};
use hookline_domain::Secret;

use crate::ConfigError;

/// Every error of a failed extraction, joined, with no value in it.
pub(crate) fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|mut error| {
            error.kind = redact(error.kind);
            error.to_string()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn redact(kind: Kind) -> Kind {
    match kind {
        Kind::InvalidType(actual, expected) => Kind::InvalidType(shape(actual), expected),
        Kind::InvalidValue(actual, expected) => Kind::InvalidValue(shape(actual), expected),
        Kind::Unsupported(actual) => Kind::Unsupported(shape(actual)),
        Kind::UnsupportedKey(actual, needed) => Kind::UnsupportedKey(shape(actual), needed),
        Kind::Message(text) => Kind::Message(without_source_lines(&text)),
        other => other,
    }
}

/// What kind of value was found, without the value.
fn shape(actual: Actual) -> Actual {
    let kind = match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Other(_) => "a value",
        // The rest name a shape and carry no content.
        other => return other,
    };
    Actual::Other(kind.into())
}

/// A TOML syntax error as `line …, column …: what is wrong`, without the quoted source
/// line (`2 | token = "…`) or its caret.
fn without_source_lines(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .trim_start()
                    .starts_with('|')
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// Checks that a broker URL (as resolved) is an `amqp://` or `amqps://` URL with a host.
/// Caught here, at start-up and naming the key, because the broker client's own parse
/// error quotes the whole URL, password included, and the services would log it on
/// every reconnect.
pub(crate) fn check_amqp_url(key: &str, url: &Secret) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url.expose())
        .map_err(|e| ConfigError::invalid(key, format!("not a URL ({e})")))?;
    if !["amqp", "amqps"].contains(&parsed.scheme()) {
        return Err(ConfigError::invalid(
            key,
            "expected amqp://user:password@host:port/vhost (or amqps://)",
        ));
    }
    if parsed.cannot_be_a_base() || parsed.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            key,
            "no host: expected amqp://user:password@host:port/vhost",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_say_what_kind_of_value_was_found_but_not_the_value() {
        let kind = redact(Kind::InvalidType(
            Actual::Str("TOPSECRET".into()),
            "a sequence".into(),
        ));
        let text = kind.to_string();
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert!(
            text.contains("a string") && text.contains("a sequence"),
            "{text}"
        );
        let text = redact(Kind::InvalidValue(Actual::Signed(-31337), "usize".into())).to_string();
        assert!(
            !text.contains("31337") && text.contains("an integer"),
            "{text}"
        );
    }

    #[test]
    fn toml_syntax_errors_keep_line_column_and_reason_but_not_the_line() {
        let toml = "TOML parse error at line 2, column 19\n  |\n2 | token = \"TOPSECRET\n  |                   ^\ninvalid basic string\n";
        assert_eq!(
            without_source_lines(toml),
            "TOML parse error at line 2, column 19: invalid basic string"
        );
    }

    #[test]
    fn a_broker_url_without_a_host_is_refused_without_quoting_it() {
        for bad in [
            "amqp:guest:TOPSECRET@localhost",
            "guest:TOPSECRET@localhost",
            "http://guest:TOPSECRET@localhost",
            "amqp://guest:TOPSECRET@",
            "TOPSECRET",
        ] {
            let err = check_amqp_url("amqp.url", &Secret::new(bad))
                .unwrap_err()
                .to_string();
            assert!(err.contains("amqp.url"), "{bad}: {err}");
            assert!(!err.contains("TOPSECRET"), "{bad}: {err}");
        }
        for good in [
            "amqp://guest:guest@127.0.0.1:5672/%2f",
            "amqps://hookline@mq-0.internal:5671/%2f",
            "amqp://localhost",
        ] {
            check_amqp_url("amqp.url", &Secret::new(good)).unwrap();
        }
    }
}
