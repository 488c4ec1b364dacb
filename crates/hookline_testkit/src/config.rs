//! Configuration for Hookline services under test: ports 0, the test's database and AMQP
//! prefix, fast retries and relay, and the sources most tests use.

use std::time::Duration;

use hookline_config::{Config, Sources};

use crate::urls::amqp_url;

/// The admin bearer token [`config_toml`] sets.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// `[worker] max_attempts` that [`config_toml`] sets unless `extra` has a `[worker]`.
pub const MAX_ATTEMPTS: u32 = 3;
/// `[worker] retry_base_ms` that [`config_toml`] sets unless `extra` has a `[worker]`.
pub const RETRY_BASE_MS: u64 = 100;
/// `[worker] retry_cap_ms` that [`config_toml`] sets unless `extra` has a `[worker]`.
pub const RETRY_CAP_MS: u64 = 400;

/// An Apify-style token source named `apify`, token `apify-token`, on the `apify-run` lifecycle.
pub const APIFY_SOURCE: &str = r#"
[sources.apify]
preset = "apify"
secrets = ["apify-token"]
"#;

/// A source named `plain` without a lifecycle (no resources; events are just marked
/// processed): token `plain-token` in `x-token`, deduplicated by `x-delivery-id`.
pub const PLAIN_SOURCE: &str = r#"
[sources.plain]
verifier = "token"
token_header = "x-token"
secrets = ["plain-token"]
dedup_key = "{header:x-delivery-id}"
"#;

/// A full config for tests: ports 0, the given database and prefix, fast retries and
/// relay, plus `extra` TOML (sources, lifecycles, overrides of `[ingest]`/`[worker]`).
pub fn config_toml(db_url: &str, prefix: &str, extra: &str) -> String {
    let has = |section: &str| extra.contains(&format!("[{section}]"));
    let mut toml = format!(
        r#"
[http]
addr = "127.0.0.1:0"
workers = 2

[admin]
addr = "127.0.0.1:0"
token = "{ADMIN_TOKEN}"

[database]
url = "{db_url}"
pool_size = 8
migrate = false

[amqp]
url = "{amqp}"
prefix = "{prefix}"
"#,
        amqp = amqp_url()
    );
    if !has("ingest") {
        toml.push_str("\n[ingest]\nrelay_after_ms = 1000\nrelay_interval_ms = 200\n");
    }
    if !has("worker") {
        toml.push_str(&format!(
            "\n[worker]\nadmin_addr = \"127.0.0.1:0\"\nmax_attempts = {MAX_ATTEMPTS}\n\
             retry_base_ms = {RETRY_BASE_MS}\nretry_cap_ms = {RETRY_CAP_MS}\nconcurrency = 16\n"
        ));
    }
    toml.push_str(extra);
    toml
}

/// `toml` (from [`config_toml`]) with `amqp.url` replaced by the node list `urls` (tried
/// in order) and, if given, `amqp.ca_file`.
///
/// # Panics
/// If `toml` does not hold [`config_toml`]'s `amqp.url` line.
pub fn with_broker_nodes(toml: &str, urls: &[String], ca_file: Option<&std::path::Path>) -> String {
    let line = format!("url = \"{}\"\n", amqp_url());
    assert!(toml.contains(&line), "no amqp.url line to replace");
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let mut replacement = format!("url = [{}]\n", list.join(", "));
    if let Some(path) = ca_file {
        replacement.push_str(&format!("ca_file = \"{}\"\n", path.display()));
    }
    toml.replacen(&line, &replacement, 1)
}

/// Parses a config produced by [`config_toml`].
///
/// # Panics
/// If the TOML is invalid (a bug in the test).
pub fn config(toml: &str) -> (Config, Sources) {
    Config::from_toml(toml).unwrap_or_else(|e| panic!("test config is invalid: {e}"))
}

/// The retry delays (one delay queue each) of the `[worker]` that [`config_toml`] writes.
pub fn test_retry_delays() -> Vec<Duration> {
    hookline_queue::retry_delays(
        MAX_ATTEMPTS,
        Duration::from_millis(RETRY_BASE_MS),
        Duration::from_millis(RETRY_CAP_MS),
    )
}
