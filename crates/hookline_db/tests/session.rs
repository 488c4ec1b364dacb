//! Session settings every Hookline connection gets from the pool and from `connect`:
//! JIT compilation off (short statements on tables not yet analysed otherwise spend
//! ~90 ms compiling each), with the URL's own `options` still applied.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_db::{connect, create_pool};
use hookline_testkit::TestDb;

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

async fn setting(conn: &mut AsyncPgConnection, name: &str) -> String {
    diesel::sql_query("SELECT current_setting($1) AS value")
        .bind::<Text, _>(name)
        .get_result::<Setting>(conn)
        .await
        .unwrap()
        .value
}

#[tokio::test]
async fn pooled_and_direct_sessions_run_without_jit_and_keep_the_urls_own_options() {
    let db = TestDb::new().await;
    let pool = create_pool(&db.url, 2).unwrap();
    let mut pooled = pool.get().await.unwrap();
    assert_eq!(setting(&mut pooled, "jit").await, "off");
    let mut direct = connect(&db.url).await.unwrap();
    assert_eq!(setting(&mut direct, "jit").await, "off");

    let separator = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}options=-c%20statement_timeout%3D1234", db.url);
    let mut own = connect(&url).await.unwrap();
    assert_eq!(setting(&mut own, "jit").await, "off");
    assert_eq!(setting(&mut own, "statement_timeout").await, "1234ms");
}
