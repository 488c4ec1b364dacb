//! Test-only helpers: a fresh PostgreSQL database per test (dropped when the test is done),
//! a random AMQP prefix per test, Hookline services spawned in-process on port 0, broker
//! helpers, webhook signers and polling.
//!
//! Tests run against the real PostgreSQL and RabbitMQ (`HOOKLINE_TEST_DATABASE_URL`,
//! default `postgres://root@127.0.0.1:5432`; `HOOKLINE_TEST_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`); every URL and proxy a test uses derives from
//! those two. Isolation comes from names, not mocks.

mod bin;
mod broker;
mod config;
mod db;
mod ingest;
mod proxy;
mod receiver;
mod sign;
mod tls;
pub mod urls;
mod wait;

pub use bin::binary;
pub use broker::{
    amqp_prefix, broker, dead_letter, delete_broker_state, drain, publisher, ready_messages,
    test_publisher,
};
pub use config::{
    ADMIN_TOKEN, APIFY_SOURCE, MAX_ATTEMPTS, PLAIN_SOURCE, RETRY_BASE_MS, RETRY_CAP_MS, config,
    config_toml, test_retry_delays, with_broker_nodes,
};
pub use db::{
    DEFAULT_DEDUP_HORIZON, TestDb, count, database_exists, event_state, insert_event, new_event,
    store_event,
};
pub use ingest::TestIngest;
pub use proxy::Proxy;
pub use receiver::{Received, Receiver, Reply};
pub use sign::{apify_body, hmac_sha256_base64, hmac_sha256_hex, now_secs, sign_standard_webhooks};
pub use tls::{TestCa, TlsProxy};
pub use urls::{amqp_url, database_server_url, database_url};
pub use wait::{WAIT, eventually};
