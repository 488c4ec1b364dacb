//! The CLI with a list of broker nodes: it publishes through the first that answers, and
//! when none does it says so in one line that names each node and no password.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Stack, stderr};
use hookline_domain::EventState;
use hookline_testkit::amqp_url;
use hookline_testkit::urls::refused;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_publishes_through_the_next_node_when_the_first_is_dead() {
    let stack = Stack::new().await;
    let received = stack.seed("plain", "d-1", None).await;
    // The list as an environment override: a TOML array in the variable.
    let nodes = format!("[\"{}\", \"{}\"]", refused(&amqp_url()), amqp_url());
    let output = stack
        .run_with_env(
            &["replay", "--source", "plain", "--json"],
            &[("HOOKLINE__AMQP__URL", &nodes)],
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["published"], 1);
    let envelopes = stack.drain(&stack.work_queue()).await;
    assert_eq!(envelopes.len(), 1);
    assert_eq!(envelopes[0].event_id, received);
    assert_eq!(stack.state(received).await.0, EventState::Published);
    stack.delete_broker_state().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_node_dead_replay_fails_naming_the_nodes_and_no_password() {
    let stack = Stack::new().await;
    let received = stack.seed("plain", "d-1", None).await;
    let nodes = "[\"amqp://hookline:mq-pa55word@127.0.0.1:1/%2f\", \
                 \"amqp://hookline:mq-pa55word@127.0.0.1:2/%2f\"]";
    let output = stack
        .run_with_env(
            &["replay", "--source", "plain"],
            &[("HOOKLINE__AMQP__URL", nodes)],
        )
        .await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("no broker node answered"), "{err}");
    assert!(err.contains("hookline:***@127.0.0.1:1/"), "{err}");
    assert!(err.contains("hookline:***@127.0.0.1:2/"), "{err}");
    assert!(!err.contains("mq-pa55word"), "the password leaked: {err}");
    // Nothing was published, so nothing changed.
    assert_eq!(stack.state(received).await.0, EventState::Received);
}
