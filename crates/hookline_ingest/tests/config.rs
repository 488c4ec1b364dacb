//! Ingest resolves what only it needs (source secrets, the admin token) and never lets a
//! secret or a URL's password out through an error.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hookline_ingest::Application;
use hookline_testkit::{APIFY_SOURCE, TestDb, amqp_prefix, config, config_toml};

async fn build_error(toml: &str) -> String {
    let (config, sources) = config(toml);
    match Application::build(config, sources).await {
        Ok(_) => panic!("ingest started with {toml}"),
        Err(e) => format!("{e:#} {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_refuses_to_start_without_a_source_secret_and_names_the_key() {
    let db = TestDb::new().await;
    let unset = APIFY_SOURCE.replace("\"apify-token\"", "\"env:HOOKLINE_TEST_SURELY_UNSET\"");
    let err = build_error(&config_toml(&db.url, &amqp_prefix(), &unset)).await;
    assert!(err.contains("sources.apify.secrets[0]"), "{err}");
    assert!(err.contains("HOOKLINE_TEST_SURELY_UNSET"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_passwords_stay_out_of_start_up_errors() {
    // Nothing listens on port 1: the connection fails, and the error must say so
    // without the password.
    let toml = config_toml(
        "postgres://hookline:pg-pa55word@127.0.0.1:1/hookline",
        &amqp_prefix(),
        APIFY_SOURCE,
    )
    .replace("migrate = false", "migrate = true");
    let err = build_error(&toml).await;
    assert!(!err.contains("pg-pa55word"), "{err}");
    assert!(err.contains("migrations"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_passwords_stay_out_of_connection_errors() {
    let publisher = hookline_queue::Publisher::new(
        "amqp://hookline:mq-pa55word@127.0.0.1:1/%2f",
        hookline_queue::Topology::new(amqp_prefix()),
        Vec::new(),
        "hookline-test",
    );
    let err = publisher.ensure_connected().await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("mq-pa55word"), "{text}");
}
