//! TLS to PostgreSQL: `sslmode` and `sslrootcert` in `database.url`, against the local
//! server (TLS on, with a self-signed certificate for `localhost`). Each mode is checked
//! by asking the server whether the session is encrypted (`pg_stat_ssl`), and each
//! verification failure by its message: it must say what failed, at once, and never
//! contain the URL's password.

// An integration-test crate sees every dev-dependency and all of the library's, and uses
// only some of them.
#![allow(unused_crate_dependencies)]
// Test code throughout, helpers included: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookline_db::{DbError, connect, create_pool, run_migrations};
use hookline_testkit::{TestCa, TestDb};

/// A bound on each connection attempt, so a verification that hangs fails the test
/// instead of stalling it (a failed handshake answers within milliseconds).
const HANG: Duration = Duration::from_secs(30);

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

/// Whether this session is encrypted, as the server sees it.
async fn encrypted(conn: &mut AsyncPgConnection) -> bool {
    diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Ssl>(conn)
        .await
        .unwrap()
        .ssl
}

/// `url` with `params` appended to its query.
fn with_params(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

/// `url` reaching the same server by the name its certificate carries (`localhost`),
/// while still connecting to 127.0.0.1 (`hostaddr`: pg_hba here only admits IPv4).
fn by_name(url: &str) -> String {
    let url = url.replacen("127.0.0.1", "localhost", 1);
    with_params(&url, "hostaddr=127.0.0.1")
}

/// The server's own certificate file (self-signed here), read through a plain session.
async fn server_certificate(db: &TestDb) -> String {
    let mut conn = connect(&with_params(&db.url, "sslmode=disable"))
        .await
        .unwrap();
    let setting: Setting =
        diesel::sql_query("SELECT setting AS value FROM pg_settings WHERE name = 'ssl_cert_file'")
            .get_result(&mut conn)
            .await
            .unwrap();
    setting.value
}

async fn try_connect(url: &str) -> Result<AsyncPgConnection, DbError> {
    tokio::time::timeout(HANG, connect(url))
        .await
        .expect("a TLS connection attempt must not hang")
}

#[tokio::test]
async fn sslmode_require_encrypts_and_sslmode_disable_stays_plain() {
    let db = TestDb::new().await;
    let mut tls = try_connect(&with_params(&db.url, "sslmode=require"))
        .await
        .unwrap();
    assert!(
        encrypted(&mut tls).await,
        "sslmode=require must give an encrypted session (the test server has ssl = on)"
    );
    let mut plain = try_connect(&with_params(&db.url, "sslmode=disable"))
        .await
        .unwrap();
    assert!(!encrypted(&mut plain).await);
    // No sslmode: libpq's default, prefer, encrypts when the server offers it.
    let mut default = try_connect(&db.url).await.unwrap();
    assert!(encrypted(&mut default).await);
}

#[tokio::test]
async fn verify_full_against_a_ca_that_did_not_sign_the_server_fails_clearly_and_at_once() {
    let db = TestDb::new().await;
    let wrong = TestCa::new("not the server's CA");
    let url = with_params(
        &by_name(&db.url).replacen("root@", "root:pg-pa55word@", 1),
        &format!("sslmode=verify-full&sslrootcert={}", wrong.path().display()),
    );
    let err = try_connect(&url).await.err().unwrap().to_string();
    assert!(err.contains("TLS handshake"), "{err}");
    assert!(err.contains("sslmode=verify-full"), "{err}");
    assert!(err.contains("certificate"), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(!err.contains("pg-pa55word"), "the password leaked: {err}");
    assert!(err.contains("root:***@localhost"), "{err}");

    // The pool and the migrations take the same path, with the same verdict.
    let pool = create_pool(&url, 1).unwrap();
    let err = pool.get().await.err().unwrap().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    let err = tokio::time::timeout(HANG, run_migrations(&url))
        .await
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(!err.contains("pg-pa55word"), "{err}");
}

#[tokio::test]
async fn the_servers_self_signed_certificate_as_root_passes_verify_ca_and_verify_full_by_name() {
    let db = TestDb::new().await;
    let root = server_certificate(&db).await;

    // verify-ca checks the chain only: any host name will do, 127.0.0.1 included.
    let url = with_params(&db.url, &format!("sslmode=verify-ca&sslrootcert={root}"));
    let mut conn = try_connect(&url).await.unwrap();
    assert!(encrypted(&mut conn).await);

    // verify-full also checks the name: the certificate is for localhost.
    let url = with_params(
        &by_name(&db.url),
        &format!("sslmode=verify-full&sslrootcert={root}"),
    );
    let mut conn = try_connect(&url).await.unwrap();
    assert!(encrypted(&mut conn).await);
    let pool = create_pool(&url, 1).unwrap();
    assert!(encrypted(&mut pool.get().await.unwrap()).await);

    // ... and 127.0.0.1 is not a name the certificate carries.
    let url = with_params(&db.url, &format!("sslmode=verify-full&sslrootcert={root}"));
    let err = try_connect(&url).await.err().unwrap().to_string();
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn require_with_a_ca_file_verifies_the_chain_as_libpq_does() {
    let db = TestDb::new().await;
    let wrong = TestCa::new("not the server's CA");
    let url = with_params(
        &db.url,
        &format!("sslmode=require&sslrootcert={}", wrong.path().display()),
    );
    let err = try_connect(&url).await.err().unwrap().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn migrations_run_over_a_verified_tls_connection() {
    let db = TestDb::empty().await;
    let root = server_certificate(&db).await;
    let url = with_params(
        &by_name(&db.url),
        &format!("sslmode=verify-full&sslrootcert={root}"),
    );
    let applied = run_migrations(&url).await.unwrap();
    assert!(!applied.is_empty());
}
