//! Every secret key (source secrets, `admin.token`, `database.url`, `amqp.url`) can be
//! written literally, as `env:NAME` or as `file:/path` (one trailing newline trimmed, as
//! Kubernetes mounts them), and no error about a bad value quotes it.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]
// figment::Jail fixes the closure's error type; it is not ours to shrink.
#![allow(clippy::result_large_err)]

use hookline_config::Config;

const DB_URL: &str = "postgres://hookline:pg-F1LE-pass@db.internal:5432/hookline";
const AMQP_URL: &str = "amqp://hookline:mq-F1LE-pass@mq.internal:5672/%2f";

/// Loads `toml` and resolves every secret, as `hookline check-config` does; returns
/// (database URL, broker URL, admin token, source secrets).
fn resolve_all(toml: &str) -> Result<(String, String, String, Vec<String>), String> {
    let (config, sources) = Config::from_toml(toml).map_err(|e| e.to_string())?;
    let token = config.admin_token().map_err(|e| e.to_string())?.unwrap();
    let mut secrets = Vec::new();
    for source in sources.iter() {
        for secret in source.secrets().map_err(|e| e.to_string())? {
            secrets.push(secret.expose().to_string());
        }
    }
    Ok((
        config.database.url.expose().to_string(),
        config.amqp.url.expose().join(","),
        token.expose().to_string(),
        secrets,
    ))
}

#[test]
fn every_secret_key_reads_file_secrets_with_one_trailing_newline_trimmed() {
    figment::Jail::expect_with(|jail| {
        let dir = jail.directory().to_path_buf();
        // As a Kubernetes Secret volume holds them: one file per key, a newline at the end
        // when the value was written with one (the second newline stays).
        jail.create_file("database-url", &format!("{DB_URL}\n"))?;
        jail.create_file("amqp-url", &format!("{AMQP_URL}\r\n"))?;
        jail.create_file("admin-token", "admin-F1LE-token")?;
        jail.create_file("apify-token", "apify-F1LE-token\n\n")?;
        let path = |name: &str| dir.join(name).display().to_string();
        let toml = format!(
            r#"
            [database]
            url = "file:{db}"
            [amqp]
            url = "file:{mq}"
            [admin]
            token = "file:{admin}"
            [sources.apify]
            preset = "apify"
            secrets = ["file:{apify}", "literal-second"]
            "#,
            db = path("database-url"),
            mq = path("amqp-url"),
            admin = path("admin-token"),
            apify = path("apify-token"),
        );
        let (db, mq, admin, secrets) = resolve_all(&toml)?;
        assert_eq!(db, DB_URL);
        assert_eq!(mq, AMQP_URL);
        assert_eq!(admin, "admin-F1LE-token");
        assert_eq!(secrets, ["apify-F1LE-token\n", "literal-second"]);
        Ok(())
    });
}

#[test]
fn every_secret_key_reads_env_secrets() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("T_DB_URL", DB_URL);
        jail.set_env("T_AMQP_URL", AMQP_URL);
        jail.set_env("T_ADMIN", "admin-ENV-token");
        jail.set_env("T_APIFY", "apify-ENV-token");
        let toml = r#"
            [database]
            url = "env:T_DB_URL"
            [amqp]
            url = "env:T_AMQP_URL"
            [admin]
            token = "env:T_ADMIN"
            [sources.apify]
            preset = "apify"
            secrets = ["env:T_APIFY"]
            "#;
        let (db, mq, admin, secrets) = resolve_all(toml)?;
        assert_eq!(
            (db.as_str(), mq.as_str(), admin.as_str()),
            (DB_URL, AMQP_URL, "admin-ENV-token")
        );
        assert_eq!(secrets, ["apify-ENV-token"]);
        Ok(())
    });
}

#[test]
fn a_missing_secret_file_names_its_key_for_every_secret_key() {
    for (toml, key) in [
        ("[database]\nurl = \"file:/nonexistent/db\"", "database.url"),
        ("[amqp]\nurl = \"file:/nonexistent/mq\"", "amqp.url"),
        ("[admin]\ntoken = \"file:/nonexistent/t\"", "admin.token"),
        (
            "[admin]\ntoken = \"x\"\n[sources.a]\npreset = \"apify\"\nsecrets = [\"file:/nonexistent/a\"]",
            "sources.a.secrets[0]",
        ),
    ] {
        let err = resolve_all(toml).unwrap_err();
        assert!(err.contains(key), "{toml:?} gave {err:?}");
    }
}

#[test]
fn config_errors_about_a_secret_never_quote_it() {
    for (toml, key) in [
        // A wrong type: figment would say `found string "…"`.
        (
            "[sources.a]\npreset = \"apify\"\nsecrets = \"TOPSECRET-1\"",
            "sources.a.secrets",
        ),
        ("[admin]\ntoken = 31337", "admin.token"),
        ("[database]\nurl = 31337", "database.url"),
        // A syntax error on the secret's own line: TOML would quote the line.
        ("[admin]\ntoken = \"TOPSECRET-2", "line 2"),
        ("[admin]\ntoken = TOPSECRET-3", "line 2"),
        // A broker URL the client cannot parse: it would quote the whole URL.
        ("[amqp]\nurl = \"amqp:guest:TOPSECRET-4@mq\"", "amqp.url"),
        ("[amqp]\nurl = \"guest:TOPSECRET-5@mq:5672\"", "amqp.url"),
    ] {
        let err = resolve_all(toml).unwrap_err();
        assert!(
            err.contains(key),
            "{toml:?} gave {err:?}: it must name {key}"
        );
        assert!(
            !err.contains("TOPSECRET") && !err.contains("31337"),
            "{toml:?} leaked its value: {err:?}"
        );
    }
}
