use std::collections::BTreeMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use hookline_domain::{LifecycleConfig, Secret, SourceConfig};
use serde::{Deserialize, Serialize};

use crate::Sources;

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
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
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
    /// Webhook sources by path name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Lifecycles by name (add to or override the built-in ones).
    #[serde(default)]
    pub lifecycles: BTreeMap<String, LifecycleConfig>,
}

/// `[http]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address; port 0 picks a free port (tests).
    pub addr: String,
    /// Largest accepted body; larger is a 413 without buffering more than this.
    pub max_body_bytes: usize,
    /// actix worker threads (default: half the cores, at least one: the database and
    /// broker usually share the machine, and fewer threads mean fewer hand-offs).
    pub workers: Option<usize>,
}

/// `[admin]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Listen address of `/metrics` and `/v1/*`.
    pub addr: String,
    /// Bearer token for `/v1/*`; unset disables the admin API (metrics stay up).
    #[serde(skip_serializing)]
    pub token: Option<Secret>,
}

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// PostgreSQL URL (may be `env:NAME`).
    pub url: String,
    /// Connections per process.
    pub pool_size: usize,
    /// Apply pending migrations at start-up (under an advisory lock).
    pub migrate: bool,
}

/// `[amqp]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// AMQP URL (may be `env:NAME`).
    pub url: String,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
}

/// `[ingest]` (an extension of the documented contract: group commit and relay tuning).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Most requests committed by one INSERT.
    pub batch_max: usize,
    /// Group-commit statements in flight at once. Fewer means larger batches, which is
    /// what a CPU-bound database wants; more hides a slow statement behind another.
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `auto` (JSON unless stdout is a terminal), `json` or `pretty`.
    pub log_format: String,
    /// Default log filter (`RUST_LOG` wins).
    pub log_level: String,
    /// OTLP endpoint; unset (and no `OTEL_EXPORTER_OTLP_ENDPOINT`) means no tracing export.
    pub otlp_endpoint: Option<String>,
}

#[derive(Serialize)]
struct Defaults {
    http: HttpConfig,
    admin: AdminConfig,
    database: DatabaseConfig,
    amqp: AmqpConfig,
    ingest: IngestConfig,
    worker: WorkerConfig,
    telemetry: TelemetryConfig,
}

fn defaults() -> Defaults {
    Defaults {
        http: HttpConfig {
            addr: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            workers: None,
        },
        admin: AdminConfig {
            addr: "127.0.0.1:8081".into(),
            token: None,
        },
        database: DatabaseConfig {
            url: "postgres://root@127.0.0.1:5432/hookline".into(),
            pool_size: 16,
            migrate: true,
        },
        amqp: AmqpConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefix: "hookline".into(),
        },
        ingest: IngestConfig {
            batch_max: 256,
            batchers: 2,
            relay_after_ms: 5_000,
            relay_interval_ms: 1_000,
            dedup_cache_bytes: 8 * 1024 * 1024,
        },
        worker: WorkerConfig {
            concurrency: 64,
            max_attempts: 8,
            admin_addr: "127.0.0.1:8082".into(),
            retry_base_ms: 1_000,
            retry_cap_ms: 300_000,
        },
        telemetry: TelemetryConfig {
            log_format: "auto".into(),
            log_level: "info".into(),
            otlp_endpoint: None,
        },
    }
}

impl Config {
    /// Loads `HOOKLINE_CONFIG` (default `config/hookline.toml`) with environment
    /// overrides, resolves `env:` secrets and validates everything.
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
            Figment::from(Serialized::defaults(defaults()))
                .merge(Toml::file(&path))
                .merge(env()),
        )
    }

    /// Parses a TOML document (no environment), resolves `env:` secrets and validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key that is wrong.
    pub fn from_toml(toml: &str) -> Result<(Config, Sources), ConfigError> {
        Self::from_figment(
            Figment::from(Serialized::defaults(defaults())).merge(Toml::string(toml)),
        )
    }

    fn from_figment(figment: Figment) -> Result<(Config, Sources), ConfigError> {
        let mut config: Config = figment.extract().map_err(|e| {
            ConfigError::Load(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.resolve_env_secrets(&|name| std::env::var(name).ok())?;
        config.validate_settings()?;
        let sources = Sources::compile(&config)?;
        Ok((config, sources))
    }

    /// Replaces every `env:NAME` secret by the variable's value.
    fn resolve_env_secrets(
        &mut self,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let resolve = |key: String, value: &str| -> Result<String, ConfigError> {
            match value.strip_prefix("env:") {
                None => Ok(value.to_string()),
                Some(name) => lookup(name).ok_or_else(|| {
                    ConfigError::invalid(key, format!("environment variable {name} is not set"))
                }),
            }
        };
        self.database.url = resolve("database.url".into(), &self.database.url)?;
        self.amqp.url = resolve("amqp.url".into(), &self.amqp.url)?;
        if let Some(token) = &self.admin.token {
            self.admin.token = Some(Secret::new(resolve("admin.token".into(), token.expose())?));
        }
        for (name, source) in &mut self.sources {
            for (i, secret) in source.secrets.iter_mut().enumerate() {
                *secret = Secret::new(resolve(
                    format!("sources.{name}.secrets[{i}]"),
                    secret.expose(),
                )?);
            }
        }
        Ok(())
    }

    fn validate_settings(&self) -> Result<(), ConfigError> {
        for (key, addr) in [
            ("http.addr", &self.http.addr),
            ("admin.addr", &self.admin.addr),
            ("worker.admin_addr", &self.worker.admin_addr),
        ] {
            addr.parse::<std::net::SocketAddr>().map_err(|e| {
                ConfigError::invalid(key, format!("{addr:?} is not host:port ({e})"))
            })?;
        }
        let positive = [
            ("http.max_body_bytes", self.http.max_body_bytes as u64),
            ("database.pool_size", self.database.pool_size as u64),
            ("ingest.batch_max", self.ingest.batch_max as u64),
            ("ingest.batchers", self.ingest.batchers as u64),
            ("worker.concurrency", self.worker.concurrency as u64),
            ("worker.max_attempts", u64::from(self.worker.max_attempts)),
            ("worker.retry_base_ms", self.worker.retry_base_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self
            .admin
            .token
            .as_ref()
            .is_some_and(|t| t.expose().is_empty())
        {
            return Err(ConfigError::invalid("admin.token", "must not be empty"));
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

    #[test]
    fn defaults_fill_everything_a_minimal_file_leaves_out() {
        let (config, sources) = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(config.http.max_body_bytes, 1_048_576);
        assert_eq!(config.worker.max_attempts, 8);
        assert!(sources.get("apify").is_some());
    }

    #[test]
    fn environment_overrides_use_double_underscores() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("hookline.toml", MINIMAL)?;
            jail.set_env("HOOKLINE_CONFIG", "hookline.toml");
            jail.set_env("HOOKLINE__DATABASE__URL", "postgres://elsewhere/db");
            jail.set_env("HOOKLINE__WORKER__MAX_ATTEMPTS", "3");
            let (config, _) = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(config.database.url, "postgres://elsewhere/db");
            assert_eq!(config.worker.max_attempts, 3);
            Ok(())
        });
    }

    #[test]
    fn env_secrets_are_read_and_a_missing_one_names_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TEST_APIFY_TOKEN", "from-env");
            let (_, sources) = Config::from_toml(
                r#"[sources.apify]
                   preset = "apify"
                   secrets = ["env:TEST_APIFY_TOKEN"]"#,
            )
            .map_err(|e| e.to_string())?;
            assert!(sources.get("apify").is_some());
            Ok(())
        });
        let err = Config::from_toml(
            r#"[sources.apify]
               preset = "apify"
               secrets = ["env:HOOKLINE_TEST_SURELY_UNSET"]"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sources.apify.secrets[0]"), "{err}");
        assert!(err.contains("HOOKLINE_TEST_SURELY_UNSET"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (toml, key) in [
            ("[http]\nmax_body_bytes = \"big\"", "max_body_bytes"),
            ("[http]\naddr = \"nope\"", "http.addr"),
            ("[worker]\nmax_attempts = 0", "worker.max_attempts"),
            ("[sources.x]\nverifier = \"token\"", "sources.x.secrets"),
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
        ] {
            let err = Config::from_toml(toml).unwrap_err().to_string();
            assert!(
                err.contains(key),
                "{toml:?} gave {err:?}, expected it to name {key}"
            );
        }
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let (config, sources) = Config::from_toml(MINIMAL).unwrap();
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(!format!("{sources:?}").contains("s3cret"));
    }
}
