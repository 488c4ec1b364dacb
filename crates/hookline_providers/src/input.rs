//! Reading what schemes need out of a request: header text, `k=v` lists, timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

use hookline_domain::RequestParts;

use crate::VerifyError;

/// Replay window most providers document: five minutes.
pub(crate) const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// A header name from config (`signature_header`, ...) or the scheme's default, lower-cased.
pub(crate) fn header_name(configured: Option<&str>, default: &str) -> String {
    configured
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(default)
        .to_ascii_lowercase()
}

/// The value of header `name`, trimmed.
///
/// # Errors
/// [`VerifyError::Missing`] when absent, [`VerifyError::Malformed`] when not UTF-8.
pub(crate) fn header<'a>(parts: &RequestParts<'a>, name: &str) -> Result<&'a str, VerifyError> {
    let headers = parts.headers;
    match headers.get(name) {
        None => Err(VerifyError::Missing(format!("{name} header"))),
        Some(raw) => std::str::from_utf8(raw)
            .map(str::trim)
            .map_err(|_| malformed_header(name)),
    }
}

/// The value of the first of `names` that is present (a header with two spellings).
///
/// # Errors
/// As [`header`]; a missing header is reported under all its names.
pub(crate) fn first_header<'a>(
    parts: &RequestParts<'a>,
    names: &[&str],
) -> Result<&'a str, VerifyError> {
    match names.iter().find(|name| parts.headers.get(name).is_some()) {
        Some(name) => header(parts, name),
        None => Err(VerifyError::Missing(format!(
            "{} header",
            names.join(" or ")
        ))),
    }
}

/// The "malformed header" error for `name`.
pub(crate) fn malformed_header(name: &str) -> VerifyError {
    VerifyError::Malformed(format!("{name} header"))
}

/// The `key=value` items of a comma-separated header such as `t=1,v1=ab,v1=cd`, trimmed;
/// items without `=` are skipped.
pub(crate) fn comma_pairs(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value
        .split(',')
        .filter_map(|item| item.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
}

/// A non-negative decimal integer (unix seconds or milliseconds) as written by a provider.
///
/// # Errors
/// [`VerifyError::Malformed`] naming `what` for anything but 1 to 18 ASCII digits.
pub(crate) fn parse_unix(text: &str, what: &str) -> Result<i128, VerifyError> {
    let digits = (1..=18).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| text.parse::<i128>().ok())
        .flatten()
        .ok_or_else(|| VerifyError::Malformed(what.to_string()))
}

/// Checks that a signing time is at most `tolerance_secs` away from `now`, in either
/// direction: too old is a replay, too far ahead is a clock we should not trust.
///
/// # Errors
/// [`VerifyError::Timestamp`] outside the window.
pub(crate) fn check_window(
    signed_at_ms: i128,
    now: SystemTime,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let tolerance_ms = i128::from(tolerance_secs) * 1000;
    if (unix_ms(now) - signed_at_ms).abs() <= tolerance_ms {
        Ok(())
    } else {
        Err(VerifyError::Timestamp { tolerance_secs })
    }
}

/// [`check_window`] for a signing time in whole seconds.
///
/// # Errors
/// As [`check_window`].
pub(crate) fn check_window_secs(
    signed_at_secs: i128,
    now: SystemTime,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    check_window(signed_at_secs * 1000, now, tolerance_secs)
}

/// Stripe's check: the signing time may be at most `tolerance_secs` in the past; any
/// time in the future passes, exactly as Stripe's own libraries behave.
///
/// # Errors
/// [`VerifyError::Timestamp`] when the signature is too old.
pub(crate) fn check_not_older_secs(
    signed_at_secs: i128,
    now: SystemTime,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    if unix_ms(now) - signed_at_secs * 1000 <= i128::from(tolerance_secs) * 1000 {
        Ok(())
    } else {
        Err(VerifyError::Timestamp { tolerance_secs })
    }
}

fn unix_ms(now: SystemTime) -> i128 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_millis()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_millis()).map_or(i128::MIN, |ms| -ms),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_plain_digits_are_timestamps() {
        assert_eq!(parse_unix("1735689600", "t"), Ok(1_735_689_600));
        for bad in ["", "+1", "-1", "1.5", " 1", "0x10", "1234567890123456789"] {
            assert_eq!(
                parse_unix(bad, "t"),
                Err(VerifyError::Malformed("t".into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_window_includes_its_edges_in_both_directions() {
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert!(check_window(1_000_000 - 300_000, now, 300).is_ok());
        assert!(check_window(1_000_000 + 300_000, now, 300).is_ok());
        for outside in [1_000_000 - 300_001, 1_000_000 + 300_001] {
            assert_eq!(
                check_window(outside, now, 300),
                Err(VerifyError::Timestamp {
                    tolerance_secs: 300
                })
            );
        }
    }

    #[test]
    fn comma_pairs_trim_and_skip_items_without_a_value() {
        let parsed: Vec<_> = comma_pairs(" t=1, v1 = a ,junk,v0=b").collect();
        assert_eq!(parsed, vec![("t", "1"), ("v1", "a"), ("v0", "b")]);
    }
}
