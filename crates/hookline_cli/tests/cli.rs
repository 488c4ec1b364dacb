//! The `hookline` binary against a real database.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn hookline(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.env("HOOKLINE_CONFIG", config);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_applies_the_schema_once_and_then_reports_up_to_date() {
    let db = hookline_testkit::TestDb::empty().await;
    let dir = std::env::temp_dir().join(&db.name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hookline.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();

    let first = hookline(&config).arg("migrate").output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("applied"));
    let second = hookline(&config).arg("migrate").output().unwrap();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("up to date"));
}

#[test]
fn a_bad_config_fails_with_a_message_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("hl_cli_bad_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hookline.toml");
    std::fs::write(&config, "[worker]\nmax_attempts = 0\n").unwrap();
    let output = hookline(&config).arg("check-config").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("worker.max_attempts"), "{stderr}");

    let missing = hookline(&dir.join("nope.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

#[test]
fn check_config_lists_the_configured_sources_as_json_for_scripts() {
    let dir = std::env::temp_dir().join(format!("hl_cli_json_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hookline.toml");
    std::fs::write(
        &config,
        "[sources.apify]\npreset = \"apify\"\nsecrets = [\"s3cret\"]\n",
    )
    .unwrap();
    let output = hookline(&config)
        .args(["check-config", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"valid": true, "sources": ["apify"], "destinations": []})
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_needs_no_source_secrets_but_check_config_resolves_them() {
    let db = hookline_testkit::TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("hl_cli_secretless_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hookline.toml");
    let unset = hookline_testkit::APIFY_SOURCE
        .replace("\"apify-token\"", "\"env:HOOKLINE_TEST_SURELY_UNSET\"");
    std::fs::write(
        &config,
        hookline_testkit::config_toml(&db.url, &hookline_testkit::amqp_prefix(), &unset),
    )
    .unwrap();

    let listed = hookline(&config)
        .args(["events", "list", "--source", "apify", "--json"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    let checked = hookline(&config).arg("check-config").output().unwrap();
    assert!(!checked.status.success());
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(stderr.contains("sources.apify.secrets[0]"), "{stderr}");
}
