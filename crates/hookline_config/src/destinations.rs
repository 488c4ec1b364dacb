//! `[destinations.NAME]`: HTTP endpoints that receive each decided event, signed per
//! Standard Webhooks. Only the worker delivers, so only it (and `hookline check-config`)
//! compiles them ([`Config::destinations`]) and resolves their secrets.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use hookline_domain::{HumanDuration, Outcome, Secret};
use serde::Deserialize;

use crate::{Config, ConfigError, Sources, resolve_secret};

/// One `[destinations.NAME]` table, as written. Every key but `url` and `secret` has a
/// default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// `http://` or `https://` endpoint; each delivery is a `POST` to it.
    pub url: String,
    /// Sources whose events go here; unset means every source.
    pub sources: Option<Vec<String>>,
    /// Outcomes delivered (default `["applied"]`). A source without a lifecycle has no
    /// outcome: every one of its events is delivered.
    #[serde(default = "default_outcomes")]
    pub outcomes: Vec<String>,
    /// `whsec_<base64>` signing secret (literal, `env:` or `file:`).
    pub secret: Secret,
    /// How long one attempt may take, response included.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Attempts before a delivery is `dead`.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the 2nd, 3rd, … attempt; the last value repeats. Jittered.
    #[serde(default = "default_retry")]
    pub retry: Vec<HumanDuration>,
    /// In-flight requests to this destination, per worker process.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Requests per second per worker process; 0 means no limit.
    #[serde(default)]
    pub rate_limit: u32,
    /// Per resource key, one delivery at a time, in decision order.
    #[serde(default)]
    pub ordered: bool,
    /// Extra request headers; values are secrets (literal, `env:` or `file:`).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Consecutive failed attempts that open the circuit (no requests until a probe).
    #[serde(default = "default_circuit_failures")]
    pub circuit_failures: u32,
    /// How long an open circuit waits before one half-open probe; doubles while the
    /// probes fail, up to ten times this.
    #[serde(default = "default_circuit_cooldown")]
    pub circuit_cooldown: HumanDuration,
}

fn default_outcomes() -> Vec<String> {
    vec![Outcome::Applied.as_str().to_string()]
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_max_attempts() -> u32 {
    12
}
fn default_retry() -> Vec<HumanDuration> {
    [5, 30, 120, 600, 1_800, 3_600]
        .into_iter()
        .map(|secs| HumanDuration(Duration::from_secs(secs)))
        .collect()
}
fn default_concurrency() -> usize {
    16
}
fn default_circuit_failures() -> u32 {
    5
}
fn default_circuit_cooldown() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// A destination ready to deliver to: validated, secrets resolved.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The `NAME` in `[destinations.NAME]`.
    pub name: String,
    /// The endpoint (`http` or `https`).
    pub url: url::Url,
    /// Sources delivered; `None` is every source.
    pub sources: Option<BTreeSet<String>>,
    /// Outcomes delivered for sources with a lifecycle.
    pub outcomes: Vec<Outcome>,
    /// The resolved `whsec_…` secret (format checked).
    pub secret: Secret,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts before `dead`.
    pub max_attempts: u32,
    /// Retry delays; the last one repeats.
    pub retry: Vec<Duration>,
    /// In-flight requests per process.
    pub concurrency: usize,
    /// Requests per second per process; 0 = none.
    pub rate_limit: u32,
    /// One delivery at a time per resource key, in order.
    pub ordered: bool,
    /// Extra headers, values resolved.
    pub headers: Vec<(String, Secret)>,
    /// Consecutive failures that open the circuit.
    pub circuit_failures: u32,
    /// First open-circuit wait.
    pub circuit_cooldown: Duration,
}

impl Destination {
    /// Whether an event of `source` decided with `outcome` (`None`: the source has no
    /// lifecycle) goes to this destination.
    pub fn wants(&self, source: &str, outcome: Option<Outcome>) -> bool {
        let source_ok = self.sources.as_ref().is_none_or(|s| s.contains(source));
        source_ok && outcome.is_none_or(|o| self.outcomes.contains(&o))
    }
}

impl Config {
    /// Every `[destinations.*]`, validated against `sources` and with its secret and
    /// header values resolved. The worker calls this at start-up; `hookline check-config`
    /// too.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key: an unknown source, a bad URL, an unknown outcome,
    /// a secret that is unset or not `whsec_<base64>`, a zero where a count is needed.
    pub fn destinations(&self, sources: &Sources) -> Result<Vec<Destination>, ConfigError> {
        self.destinations
            .iter()
            .map(|(name, written)| compile(name, written, sources))
            .collect()
    }
}

fn compile(
    name: &str,
    written: &DestinationConfig,
    sources: &Sources,
) -> Result<Destination, ConfigError> {
    let key = |field: &str| format!("destinations.{name}.{field}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(ConfigError::invalid(
            format!("destinations.{name}"),
            "a destination name uses letters, digits, '.', '_' or '-'",
        ));
    }
    let url = url::Url::parse(&written.url)
        .map_err(|e| ConfigError::invalid(key("url"), format!("{e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(
            key("url"),
            "must be an http:// or https:// URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::invalid(
            key("url"),
            "must not carry credentials; put them in `headers` as secrets",
        ));
    }
    let selected = match &written.sources {
        None => None,
        Some(list) => {
            for (i, source) in list.iter().enumerate() {
                if sources.get(source).is_none() {
                    return Err(ConfigError::invalid(
                        format!("destinations.{name}.sources[{i}]"),
                        format!("source {source:?} is not configured"),
                    ));
                }
            }
            Some(list.iter().cloned().collect())
        }
    };
    let mut outcomes = Vec::new();
    for (i, outcome) in written.outcomes.iter().enumerate() {
        let parsed = Outcome::parse(outcome).ok_or_else(|| {
            ConfigError::invalid(
                format!("destinations.{name}.outcomes[{i}]"),
                format!(
                    "{outcome:?} is not an outcome (applied, unchanged, rejected_downgrade, rejected_terminal, forced)"
                ),
            )
        })?;
        outcomes.push(parsed);
    }
    let secret = resolve_secret(&key("secret"), &written.secret)?;
    let valid_secret = secret
        .expose()
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .is_some_and(|k| !k.is_empty());
    if !valid_secret {
        return Err(ConfigError::invalid(
            key("secret"),
            "must be whsec_ followed by base64 (the Standard Webhooks form)",
        ));
    }
    let mut headers = Vec::with_capacity(written.headers.len());
    for (header, value) in &written.headers {
        let header_key = format!("destinations.{name}.headers.{header}");
        let valid_name = !header.is_empty()
            && header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_name {
            return Err(ConfigError::invalid(
                header_key,
                "is not a valid header name",
            ));
        }
        let lower = header.to_ascii_lowercase();
        if lower.starts_with("webhook-")
            || lower.starts_with("hookline-")
            || ["content-type", "content-length", "host", "traceparent"].contains(&lower.as_str())
        {
            return Err(ConfigError::invalid(
                header_key,
                "is set by Hookline on every delivery and cannot be overridden",
            ));
        }
        let value = resolve_secret(&header_key, value)?;
        if value
            .expose()
            .bytes()
            .any(|b| b < 0x20 && b != b'\t' || b == 0x7f)
        {
            return Err(ConfigError::invalid(
                header_key,
                "contains control characters",
            ));
        }
        headers.push((lower, value));
    }
    if written.retry.is_empty() {
        return Err(ConfigError::invalid(
            key("retry"),
            "needs at least one delay",
        ));
    }
    for (field, value) in [
        ("max_attempts", u64::from(written.max_attempts)),
        ("concurrency", written.concurrency as u64),
        ("circuit_failures", u64::from(written.circuit_failures)),
        ("timeout", written.timeout.get().as_millis() as u64),
        (
            "circuit_cooldown",
            written.circuit_cooldown.get().as_millis() as u64,
        ),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(key(field), "must be greater than 0"));
        }
    }
    Ok(Destination {
        name: name.to_string(),
        url,
        sources: selected,
        outcomes,
        secret,
        timeout: written.timeout.get(),
        max_attempts: written.max_attempts,
        retry: written.retry.iter().map(|d| d.get()).collect(),
        concurrency: written.concurrency,
        rate_limit: written.rate_limit,
        ordered: written.ordered,
        headers,
        circuit_failures: written.circuit_failures,
        circuit_cooldown: written.circuit_cooldown.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &str = r#"
        [sources.refersion]
        preset = "standard-webhooks"
        secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        [sources.other]
        preset = "standard-webhooks"
        secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    "#;

    fn compile_toml(extra: &str) -> Result<Vec<Destination>, ConfigError> {
        let (config, sources) = Config::from_toml(&format!("{SOURCES}\n{extra}"))?;
        config.destinations(&sources)
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let d = compile_toml(
            "[destinations.orders]\nurl = \"https://orders.internal/hooks\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
        )
        .unwrap()
        .remove(0);
        assert_eq!(d.name, "orders");
        assert_eq!(d.outcomes, vec![Outcome::Applied]);
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.max_attempts, 12);
        assert_eq!(d.retry.len(), 6);
        assert_eq!(d.retry[5], Duration::from_secs(3_600));
        assert_eq!((d.concurrency, d.rate_limit, d.ordered), (16, 0, false));
        assert!(d.wants("refersion", Some(Outcome::Applied)));
        assert!(
            d.wants("other", None),
            "a source without a lifecycle: every event"
        );
        assert!(!d.wants("refersion", Some(Outcome::RejectedDowngrade)));
    }

    #[test]
    fn sources_and_outcomes_select_what_is_delivered() {
        let d = compile_toml(
            "[destinations.o]\nurl = \"http://127.0.0.1:9/x\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n\
             sources = [\"refersion\"]\noutcomes = [\"applied\", \"rejected_terminal\"]\n\
             headers = { \"X-Api-Key\" = \"k1\" }",
        )
        .unwrap()
        .remove(0);
        assert!(d.wants("refersion", Some(Outcome::RejectedTerminal)));
        assert!(!d.wants("other", Some(Outcome::Applied)));
        assert_eq!(d.headers[0].0, "x-api-key");
        assert_eq!(d.headers[0].1.expose(), "k1");
    }

    #[test]
    fn every_bad_value_names_its_key_and_never_the_secret() {
        let ok_secret = "secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"";
        for (body, key) in [
            (
                format!("url = \"ftp://x/\"\n{ok_secret}"),
                "destinations.d.url",
            ),
            (
                format!("url = \"not a url\"\n{ok_secret}"),
                "destinations.d.url",
            ),
            (
                format!("url = \"https://u:pw@x/\"\n{ok_secret}"),
                "destinations.d.url",
            ),
            (
                format!("url = \"https://x/\"\n{ok_secret}\nsources = [\"nosuch\"]"),
                "destinations.d.sources[0]",
            ),
            (
                format!("url = \"https://x/\"\n{ok_secret}\noutcomes = [\"done\"]"),
                "destinations.d.outcomes[0]",
            ),
            (
                "url = \"https://x/\"\nsecret = \"hunter2-not-whsec\"".to_string(),
                "destinations.d.secret",
            ),
            (
                "url = \"https://x/\"\nsecret = \"env:HOOKLINE_TEST_SURELY_UNSET\"".to_string(),
                "destinations.d.secret",
            ),
            (
                format!("url = \"https://x/\"\n{ok_secret}\nretry = []"),
                "destinations.d.retry",
            ),
            (
                format!("url = \"https://x/\"\n{ok_secret}\nretry = [\"5 minutes\"]"),
                "5 minutes",
            ),
            (
                format!("url = \"https://x/\"\n{ok_secret}\nmax_attempts = 0"),
                "destinations.d.max_attempts",
            ),
            (
                format!("url = \"https://x/\"\n{ok_secret}\nconcurrency = 0"),
                "destinations.d.concurrency",
            ),
            (
                format!(
                    "url = \"https://x/\"\n{ok_secret}\nheaders = {{ \"webhook-id\" = \"x\" }}"
                ),
                "destinations.d.headers.webhook-id",
            ),
            (
                format!(
                    "url = \"https://x/\"\n{ok_secret}\nheaders = {{ \"bad header\" = \"x\" }}"
                ),
                "destinations.d.headers.bad header",
            ),
            (
                format!("url = \"https://x/\"\n{ok_secret}\nurll = 1"),
                "urll",
            ),
        ] {
            let err = compile_toml(&format!("[destinations.d]\n{body}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{body:?} gave {err:?}, expected {key}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
