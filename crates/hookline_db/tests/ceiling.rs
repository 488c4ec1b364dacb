//! The bare-ingest ceiling's table: a batch stores each new key once and says which went
//! in; keys already stored (or earlier in the batch) are left alone.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use hookline_db::{create_ceiling_table, insert_ceiling_rows};
use hookline_testkit::TestDb;

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_stores_new_keys_once_and_names_them() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    create_ceiling_table(&mut conn).await.unwrap();
    // Idempotent: a restarted ceiling server creates it again.
    create_ceiling_table(&mut conn).await.unwrap();

    let first = keys(&["b", "a", "b"]);
    let bodies = vec![b"{}".to_vec(); first.len()];
    let stored = insert_ceiling_rows(&mut conn, &first, &bodies)
        .await
        .unwrap();
    assert_eq!(stored, HashSet::from(["a".to_string(), "b".to_string()]));

    let second = keys(&["a", "c"]);
    let stored = insert_ceiling_rows(&mut conn, &second, &bodies[..2])
        .await
        .unwrap();
    assert_eq!(stored, HashSet::from(["c".to_string()]));

    assert!(
        insert_ceiling_rows(&mut conn, &[], &[])
            .await
            .unwrap()
            .is_empty()
    );
}
