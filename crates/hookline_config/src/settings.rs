use std::collections::BTreeMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use hookline_domain::{
    HumanDuration, LifecycleConfig, Retention, RetentionPolicy, Secret, SourceConfig,
};
use serde::Deserialize;

use crate::destinations::DestinationConfig;
use crate::secret::resolve_with;
use crate::{BrokerUrls, Sources};

/// Every default ([`Config::load`] merges the file and the environment over it).
const DEFAULTS: &str = include_str!("defaults.toml");

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or has the wrong shape.
    #[error("{0}")]
    Load(String),
    /// A key has an invalid value.
    #[error("invalid config key {key}: {message}")]
    Invalid {
        /// Dotted path, e.g. `sources.stripe.secrets`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// An invalid value at `key` (a dotted path such as `sources.stripe.secrets[0]`).
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration, as every binary reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Public listener.
    pub http: HttpConfig,
    /// Admin listener (metrics, admin API).
    pub admin: AdminConfig,
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// RabbitMQ.
    pub amqp: AmqpConfig,
    /// Ingest tuning (group commit, outbox relay).
    pub ingest: IngestConfig,
    /// Worker tuning.
    pub worker: WorkerConfig,
    /// Logs and traces.
    pub telemetry: TelemetryConfig,
    /// How long stored work is kept, and how often maintenance prunes it.
    pub retention: RetentionConfig,
    /// Webhook sources by path name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Lifecycles by name (add to or override the built-in ones).
    #[serde(default)]
    pub lifecycles: BTreeMap<String, LifecycleConfig>,
    /// HTTP destinations by name (the worker delivers to them; see
    /// [`Config::destinations`]).
    #[serde(default)]
    pub destinations: BTreeMap<String, DestinationConfig>,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address; port 0 picks a free port (tests).
    pub addr: String,
    /// Largest accepted body; larger is a 413 without buffering more than this.
    pub max_body_bytes: usize,
    /// actix worker threads (default: half the cores, at least one: the database and
    /// broker usually share the machine, and fewer threads mean fewer hand-offs).
    pub workers: Option<usize>,
    /// A webhook whose body is in but which is not committed this long after gets 503 +
    /// `Retry-After` (it may still commit: the retry is then a duplicate).
    pub request_timeout: HumanDuration,
    /// Webhooks handled at once; one more gets 503 + `Retry-After` at once (shed), so a
    /// stalled database costs bounded memory.
    pub max_in_flight: usize,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address of `/metrics` and `/v1/*`.
    pub addr: String,
    /// Bearer token for `/v1/*` as written (literal, `env:` or `file:`); unset disables
    /// the admin API (metrics stay up). Only ingest resolves it ([`Config::admin_token`]).
    pub token: Option<Secret>,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL URL, resolved (it may be written `env:NAME` or `file:/path`). A secret:
    /// it carries the password, so `Debug` never prints it.
    pub url: Secret,
    /// Connections per process.
    pub pool_size: usize,
    /// Apply pending migrations at start-up (under an advisory lock).
    pub migrate: bool,
}

/// `[amqp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// One AMQP URL or a list of a cluster's node URLs (failover, in order), each
    /// resolved (it may be written `env:NAME` or `file:/path`). Secrets: they carry the
    /// password, so `Debug` never prints them.
    pub url: BrokerUrls,
    /// PEM file of CA certificates trusted for `amqps://`, besides the system store.
    pub ca_file: Option<String>,
    /// `ca_file`'s certificates, read at load.
    #[serde(skip)]
    pub ca_pem: Option<String>,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
}

/// `[ingest]` (an extension of the documented contract: group commit and relay tuning).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Most requests committed by one INSERT.
    pub batch_max: usize,
    /// Group-commit statements in flight at most. While one is in flight the next batch
    /// keeps filling, and goes out beside it only once it holds a quarter of `batch_max`
    /// or has waited 20 ms: larger batches are what a CPU-bound database wants, and a slow
    /// statement still has others going past it.
    pub batchers: usize,
    /// Republish events still unconfirmed this long after commit.
    pub relay_after_ms: u64,
    /// How often the outbox relay looks.
    pub relay_interval_ms: u64,
    /// Memory for recently committed keys, so duplicates are answered without a database
    /// round trip (0 turns the cache off).
    pub dedup_cache_bytes: usize,
}

/// `[worker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Messages processed at once (also the prefetch).
    pub concurrency: usize,
    /// Attempts before an event is dead-lettered.
    pub max_attempts: u32,
    /// Listen address of the worker's `/metrics`, `/healthz`, `/readyz`.
    pub admin_addr: String,
    /// First retry delay; doubles per attempt.
    pub retry_base_ms: u64,
    /// Longest retry delay.
    pub retry_cap_ms: u64,
}

/// `[telemetry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `auto` (JSON unless stdout is a terminal), `json` or `pretty`.
    pub log_format: String,
    /// Default log filter (`RUST_LOG` wins).
    pub log_level: String,
    /// OTLP endpoint; unset (and no `OTEL_EXPORTER_OTLP_ENDPOINT`) means no tracing export.
    pub otlp_endpoint: Option<String>,
}

/// `[retention]`: the defaults of the per-source keys (`[sources.X]` may set each of
/// the first three) and the maintenance interval.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// A key is answered as a duplicate for at least this long after its first receipt.
    pub dedup_horizon: HumanDuration,
    /// Raw body, headers and query string are kept this long, then pruned.
    pub payload: HumanDuration,
    /// Event rows and transitions are kept this long.
    pub events: HumanDuration,
    /// How often the maintenance pass runs (in `hookline-ingest`, one runner at a time).
    pub interval: HumanDuration,
}

impl RetentionConfig {
    /// The default [`Retention`] (sources without overrides).
    pub fn default_retention(&self) -> Retention {
        Retention {
            dedup_horizon: self.dedup_horizon.get(),
            payload: self.payload.get(),
            events: self.events.get(),
        }
    }
}

impl Config {
    /// Loads `HOOKLINE_CONFIG` (default `config/hookline.toml`) over the defaults, with
    /// environment overrides; resolves the database and broker URLs (every binary needs
    /// them) and validates what every binary shares: those sections, telemetry, sources
    /// and lifecycles. Source secrets and the admin token stay as written: only ingest
    /// resolves them. Each binary then checks its own section ([`Config::validate_ingest`],
    /// [`Config::validate_worker`]).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key that is wrong.
    pub fn load() -> Result<(Config, Sources), ConfigError> {
        let path =
            std::env::var("HOOKLINE_CONFIG").unwrap_or_else(|_| "config/hookline.toml".into());
        if !Path::new(&path).exists() {
            return Err(ConfigError::Load(format!(
                "config file {path} not found (set HOOKLINE_CONFIG; see config/hookline.example.toml)"
            )));
        }
        Self::from_figment(
            Figment::from(Toml::string(DEFAULTS))
                .merge(Toml::file(&path))
                .merge(env()),
        )
    }

    /// As [`Config::load`], from a TOML document and without the environment's
    /// `HOOKLINE__` overrides (`env:` secrets are still read from it).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key that is wrong.
    pub fn from_toml(toml: &str) -> Result<(Config, Sources), ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULTS)).merge(Toml::string(toml)))
    }

    fn from_figment(figment: Figment) -> Result<(Config, Sources), ConfigError> {
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(crate::redact::describe(e)))?;
        let env = |name: &str| std::env::var(name).ok();
        config.database.url = resolve_with("database.url", &config.database.url, &env)?;
        config.amqp.url = config.amqp.url.resolve(&env)?;
        config.amqp.ca_pem = config
            .amqp
            .ca_file
            .as_deref()
            .map(crate::broker::read_ca_file)
            .transpose()?;
        let nodes = config.amqp.url.expose();
        for (i, node) in nodes.iter().enumerate() {
            let key = if nodes.len() == 1 {
                "amqp.url".to_string()
            } else {
                format!("amqp.url[{i}]")
            };
            crate::redact::check_amqp_url(&key, &Secret::new(*node))?;
        }
        config.validate_shared()?;
        let sources = Sources::compile(&config)?;
        Ok((config, sources))
    }

    /// The admin API's bearer token, resolved; `None` when unset (admin API disabled).
    ///
    /// # Errors
    /// [`ConfigError`] on `admin.token` when it cannot be resolved or is empty.
    pub fn admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(written) = &self.admin.token else {
            return Ok(None);
        };
        let token = crate::resolve_secret("admin.token", written)?;
        if token.expose().is_empty() {
            return Err(ConfigError::invalid("admin.token", "must not be empty"));
        }
        Ok(Some(token))
    }

    /// Every source's retention ([`crate::CompiledSource::retention`]) and the default:
    /// what the maintenance pass prunes by.
    pub fn retention_policy(&self, sources: &Sources) -> RetentionPolicy {
        let default = self.retention.default_retention();
        RetentionPolicy {
            default,
            overrides: sources
                .iter()
                .filter(|s| s.retention != default)
                .map(|s| (s.name.clone(), s.retention))
                .collect(),
        }
    }

    fn validate_shared(&self) -> Result<(), ConfigError> {
        positive(&[("database.pool_size", self.database.pool_size as u64)])?;
        self.retention.default_retention().check().map_err(|e| {
            ConfigError::invalid(format!("retention.{}", e.field().key()), e.to_string())
        })?;
        if self.retention.interval.get() < std::time::Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "retention.interval",
                "must be at least 1s",
            ));
        }
        if !self
            .amqp
            .prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || self.amqp.prefix.is_empty()
        {
            return Err(ConfigError::invalid(
                "amqp.prefix",
                "use letters, digits, '.', '_' or '-'",
            ));
        }
        if !["auto", "json", "pretty"].contains(&self.telemetry.log_format.as_str()) {
            return Err(ConfigError::invalid(
                "telemetry.log_format",
                "expected auto, json or pretty",
            ));
        }
        Ok(())
    }

    /// Checks the sections only ingest reads: `[http]`, `[admin]`, `[ingest]`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key that is wrong.
    pub fn validate_ingest(&self) -> Result<(), ConfigError> {
        socket_addr("http.addr", &self.http.addr)?;
        socket_addr("admin.addr", &self.admin.addr)?;
        positive(&[
            ("http.max_body_bytes", self.http.max_body_bytes as u64),
            (
                "http.request_timeout",
                self.http.request_timeout.get().as_millis() as u64,
            ),
            ("http.max_in_flight", self.http.max_in_flight as u64),
            ("ingest.batch_max", self.ingest.batch_max as u64),
            ("ingest.batchers", self.ingest.batchers as u64),
        ])
    }

    /// Checks the section only the worker reads: `[worker]`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key that is wrong.
    pub fn validate_worker(&self) -> Result<(), ConfigError> {
        socket_addr("worker.admin_addr", &self.worker.admin_addr)?;
        positive(&[
            ("worker.concurrency", self.worker.concurrency as u64),
            ("worker.max_attempts", u64::from(self.worker.max_attempts)),
            ("worker.retry_base_ms", self.worker.retry_base_ms),
        ])
    }
}

fn socket_addr(key: &str, addr: &str) -> Result<(), ConfigError> {
    addr.parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|e| ConfigError::invalid(key, format!("{addr:?} is not host:port ({e})")))
}

fn positive(values: &[(&str, u64)]) -> Result<(), ConfigError> {
    match values.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(ConfigError::invalid(*key, "must be greater than 0")),
        None => Ok(()),
    }
}

/// `HOOKLINE__SECTION__KEY` overrides; `HOOKLINE_CONFIG` and other single-underscore
/// variables are not config keys.
fn env() -> Env {
    Env::prefixed("HOOKLINE__").split("__")
}

#[cfg(test)]
// figment::Jail fixes the closure's error type; it is not ours to shrink.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [sources.apify]
        preset = "apify"
        secrets = ["s3cret"]
    "#;

    /// Loads `toml` and runs every binary's own checks, as `hookline check-config` does.
    fn check_all(toml: &str) -> Result<(), ConfigError> {
        let (config, sources) = Config::from_toml(toml)?;
        config.validate_ingest()?;
        config.validate_worker()?;
        config.admin_token()?;
        for source in sources.iter() {
            source.secrets()?;
        }
        Ok(())
    }

    #[test]
    fn defaults_fill_everything_a_minimal_file_leaves_out() {
        let (config, sources) = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(config.http.max_body_bytes, 1_048_576);
        assert_eq!(config.http.request_timeout.to_string(), "8s");
        assert_eq!(config.http.max_in_flight, 2048);
        assert_eq!(config.worker.max_attempts, 8);
        assert_eq!(config.ingest.dedup_cache_bytes, 8 * 1024 * 1024);
        assert!(sources.get("apify").is_some());
        check_all(MINIMAL).unwrap();
    }

    #[test]
    fn environment_overrides_use_double_underscores() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("hookline.toml", MINIMAL)?;
            jail.set_env("HOOKLINE_CONFIG", "hookline.toml");
            jail.set_env("HOOKLINE__DATABASE__URL", "postgres://elsewhere/db");
            jail.set_env("HOOKLINE__WORKER__MAX_ATTEMPTS", "3");
            let (config, _) = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(config.database.url.expose(), "postgres://elsewhere/db");
            assert_eq!(config.worker.max_attempts, 3);
            Ok(())
        });
    }

    #[test]
    fn source_secrets_resolve_only_when_asked_and_a_missing_one_names_its_key() {
        // The worker and the CLI load this config without the variable being set.
        let toml = r#"[sources.apify]
               preset = "apify"
               secrets = ["env:HOOKLINE_TEST_SURELY_UNSET"]"#;
        let (config, sources) = Config::from_toml(toml).unwrap();
        config.validate_worker().unwrap();
        let err = sources
            .get("apify")
            .unwrap()
            .secrets()
            .unwrap_err()
            .to_string();
        assert!(err.contains("sources.apify.secrets[0]"), "{err}");
        assert!(err.contains("HOOKLINE_TEST_SURELY_UNSET"), "{err}");

        figment::Jail::expect_with(|jail| {
            jail.set_env("TEST_APIFY_TOKEN", "from-env");
            let (_, sources) = Config::from_toml(
                r#"[sources.apify]
                   preset = "apify"
                   secrets = ["env:TEST_APIFY_TOKEN"]"#,
            )
            .map_err(|e| e.to_string())?;
            let secrets = sources
                .get("apify")
                .unwrap()
                .secrets()
                .map_err(|e| e.to_string())?;
            assert_eq!(secrets[0].expose(), "from-env");
            Ok(())
        });
    }

    #[test]
    fn the_admin_token_resolves_only_when_asked() {
        let toml = "[admin]\ntoken = \"env:HOOKLINE_TEST_SURELY_UNSET\"";
        let (config, _) = Config::from_toml(toml).unwrap();
        let err = config.admin_token().unwrap_err().to_string();
        assert!(err.contains("admin.token"), "{err}");
        let (config, _) = Config::from_toml("[admin]\ntoken = \"\"").unwrap();
        assert!(
            config
                .admin_token()
                .unwrap_err()
                .to_string()
                .contains("admin.token")
        );
    }

    #[test]
    fn each_binary_checks_only_its_own_section() {
        let (config, _) = Config::from_toml("[worker]\nmax_attempts = 0").unwrap();
        config.validate_ingest().unwrap();
        assert!(
            config
                .validate_worker()
                .unwrap_err()
                .to_string()
                .contains("worker.max_attempts")
        );
        let (config, _) = Config::from_toml("[http]\naddr = \"nope\"").unwrap();
        config.validate_worker().unwrap();
        assert!(
            config
                .validate_ingest()
                .unwrap_err()
                .to_string()
                .contains("http.addr")
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("[http]\nmax_body_bytes = \"big\"", "max_body_bytes"),
            ("[http]\naddr = \"nope\"", "http.addr"),
            ("[http]\nrequest_timeout = \"8\"", "http.request_timeout"),
            ("[http]\nrequest_timeout = \"0s\"", "http.request_timeout"),
            ("[http]\nmax_in_flight = 0", "http.max_in_flight"),
            ("[http]\nmax_in_flight = -1", "http.max_in_flight"),
            ("[worker]\nmax_attempts = 0", "worker.max_attempts"),
            ("[database]\npool_size = 0", "database.pool_size"),
            (
                "[database]\nurl = \"env:HOOKLINE_TEST_SURELY_UNSET\"",
                "database.url",
            ),
            (
                "[sources.x]\nverifier = \"token\"\nsecrets=[\"a\"]",
                "sources.x.dedup_key",
            ),
            (
                "[sources.x]\nverifier = \"token\"\nsecrets=[\"a\"]\ndedup_key=\"{json:/a\"",
                "sources.x.dedup_key",
            ),
            ("[sources.x]\npreset = \"nosuch\"", "sources.x.preset"),
            ("[sources.x]\nverifer = \"token\"", "verifer"),
            ("[amqp]\nprefix = \"a b\"", "amqp.prefix"),
            (
                "[sources.x]\nverifier=\"token\"\nsecrets=[\"a\"]\ndedup_key=\"{json:/id}\"\nresource_key=\"{json:/r}\"\nstatus=\"{json:/s}\"\nlifecycle=\"nosuch\"",
                "sources.x.lifecycle",
            ),
            ("[lifecycles.l]\nranks = []", "lifecycles.l"),
            ("[retention]\npayload = \"31d\"", "retention.payload"),
            (
                "[retention]\ndedup_horizon = \"31d\"",
                "retention.dedup_horizon",
            ),
            ("[retention]\nevents = \"1d\"", "retention.payload"),
            ("[retention]\nevents = \"30 days\"", "retention.events"),
            ("[retention]\ninterval = \"0s\"", "retention.interval"),
            (
                "[sources.x]\nverifier=\"token\"\nsecrets=[\"a\"]\ndedup_key=\"{json:/id}\"\npayload=\"31d\"",
                "sources.x.payload",
            ),
            (
                "[sources.x]\nverifier=\"token\"\nsecrets=[\"a\"]\ndedup_key=\"{json:/id}\"\nevents=\"3d\"",
                "sources.x.events",
            ),
            (
                "[sources.x]\nverifier=\"token\"\nsecrets=[\"a\"]\ndedup_key=\"{json:/id}\"\ndedup_horizon=\"0s\"",
                "sources.x.dedup_horizon",
            ),
        ] {
            let err = check_all(toml).unwrap_err().to_string();
            assert!(
                err.contains(key),
                "{toml:?} gave {err:?}, expected it to name {key}"
            );
        }
    }

    #[test]
    fn retention_defaults_apply_to_every_source_and_overrides_to_theirs() {
        let (config, sources) = Config::from_toml(&format!(
            "{MINIMAL}\n[sources.stripe]\npreset = \"stripe\"\nsecrets = [\"whsec_x\"]\n\
             dedup_horizon = \"3d\"\npayload = \"12h\"\n"
        ))
        .unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let default = Retention {
            dedup_horizon: 7 * day,
            payload: 7 * day,
            events: 30 * day,
        };
        assert_eq!(config.retention.interval.get(), day / 24);
        assert_eq!(sources.get("apify").unwrap().retention, default);
        let stripe = Retention {
            dedup_horizon: 3 * day,
            payload: day / 2,
            events: 30 * day,
        };
        assert_eq!(sources.get("stripe").unwrap().retention, stripe);
        let policy = config.retention_policy(&sources);
        assert_eq!(policy.default, default);
        assert_eq!(policy.overrides.len(), 1, "only sources that differ");
        assert_eq!(policy.for_source("stripe"), stripe);
    }

    #[test]
    fn secrets_and_url_passwords_never_appear_in_debug_output() {
        let toml = format!(
            "{MINIMAL}\n[database]\nurl = \"postgres://hookline:pg-pa55word@db:5432/h\"\n\
             [amqp]\nurl = \"amqp://hookline:mq-pa55word@mq:5672/%2f\"\n\
             [admin]\ntoken = \"admin-t0ken\""
        );
        let (config, sources) = Config::from_toml(&toml).unwrap();
        let debug = format!("{config:?} {sources:?}");
        for secret in ["s3cret", "pg-pa55word", "mq-pa55word", "admin-t0ken"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert_eq!(
            config.database.url.expose(),
            "postgres://hookline:pg-pa55word@db:5432/h"
        );
    }
}
