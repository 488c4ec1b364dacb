//! Human durations in configuration: `<n>s`, `<n>m`, `<n>h` or `<n>d`.
//!
//! Every duration key (`http.request_timeout`, `[retention]`, a destination's
//! `timeout` and `retry` list) is written this way, so one parser reads them all and one
//! message explains a bad value.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration read from configuration. Serde reads it from a string such as `"7d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The duration itself.
    #[must_use]
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
            if secs > 0 && secs.is_multiple_of(size) && self.0.subsec_nanos() == 0 {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        if self.0.subsec_nanos() == 0 {
            write!(f, "{secs}s")
        } else {
            write!(f, "{}ms", self.0.as_millis())
        }
    }
}

/// Why a duration did not parse. The message names the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a duration: write a whole number followed by s, m, h or d (e.g. \"30s\", \"7d\")"
)]
pub struct BadDuration(pub String);

/// Parses `<n>s|m|h|d` (also `<n>ms`, for tests that need sub-second values).
pub fn parse_duration(text: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(text.to_owned());
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(bad)?;
    let (digits, unit) = trimmed.split_at(digits_end);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

impl std::str::FromStr for HumanDuration {
    type Err = BadDuration;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(HumanDuration)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_values_name_the_forms() {
        for bad in [
            "",
            "7",
            "d",
            "7 days",
            "1.5h",
            "-1s",
            "7D",
            "99999999999999999999d",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.to_string().contains("s, m, h or d"), "{bad}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["7d", "1h", "30m", "45s", "250ms"] {
            let d: HumanDuration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
    }

    #[test]
    fn serde_reads_strings_and_reports_the_value() {
        let d: HumanDuration = serde_json::from_str("\"10s\"").unwrap();
        assert_eq!(d.get(), Duration::from_secs(10));
        let err = serde_json::from_str::<HumanDuration>("\"10x\"").unwrap_err();
        assert!(err.to_string().contains("10x"), "{err}");
    }
}
