//! `TestDb` cleans up after itself: its database is gone once the value is dropped.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use hookline_testkit::{TestDb, database_exists};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_database_is_dropped_when_it_goes_out_of_scope_even_with_connections_open() {
    let db = TestDb::new().await;
    let name = db.name.clone();
    assert!(database_exists(&name).await.unwrap());
    let open = db.connect().await; // FORCE: an open connection must not keep it alive
    drop(db);
    assert!(
        !database_exists(&name).await.unwrap(),
        "{name} still exists after TestDb was dropped"
    );
    drop(open);
}

#[test]
fn a_test_database_outliving_its_runtime_is_still_dropped() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(TestDb::new());
    let name = db.name.clone();
    drop(runtime);
    drop(db);
    let check = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(!check.block_on(database_exists(&name)).unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn a_test_database_is_dropped_from_a_current_thread_runtime() {
    let db = TestDb::empty().await;
    let name = db.name.clone();
    drop(db);
    assert!(!database_exists(&name).await.unwrap());
}
