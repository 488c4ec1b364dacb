//! The servers tests use, from `HOOKLINE_TEST_DATABASE_URL` and `HOOKLINE_TEST_AMQP_URL`,
//! and the rewrites tests need (a database name, a proxy's address) that keep everything
//! else of the configured URL: user, password, virtual host, query.

use std::net::SocketAddr;

use url::Url;

/// Default of `HOOKLINE_TEST_DATABASE_URL`: the local server `scripts/ensure_services.sh` starts.
const DEFAULT_DATABASE_SERVER: &str = "postgres://root@127.0.0.1:5432";
/// Default of `HOOKLINE_TEST_AMQP_URL`.
const DEFAULT_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The server URL tests create their databases on (`HOOKLINE_TEST_DATABASE_URL`; no
/// database name).
pub fn database_server_url() -> String {
    std::env::var("HOOKLINE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_SERVER.into())
}

/// The broker tests use (`HOOKLINE_TEST_AMQP_URL`).
pub fn amqp_url() -> String {
    std::env::var("HOOKLINE_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP.into())
}

/// Database `name` on the test server: [`database_server_url`] with its path replaced.
pub fn database_url(name: &str) -> String {
    with_database(&database_server_url(), name)
}

/// `server` (a PostgreSQL URL) naming database `name`; user, password and query are kept.
///
/// # Panics
/// If `server` is not a URL (a broken test environment).
pub fn with_database(server: &str, name: &str) -> String {
    let mut url = parse(server);
    url.set_path(&format!("/{name}"));
    url.into()
}

/// `url` with its host and port replaced by `addr`: the same server reached through a
/// proxy, or a deliberately unreachable one. Everything else is kept.
///
/// # Panics
/// If `url` is not a URL with a host.
pub fn with_addr(url: &str, addr: SocketAddr) -> String {
    let mut parsed = parse(url);
    let host = match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    parsed
        .set_host(Some(&host))
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    parsed
        .set_port(Some(addr.port()))
        .unwrap_or_else(|()| panic!("{url}: cannot have a port"));
    parsed.into()
}

/// `url` pointed at `127.0.0.1:1`, where nothing listens: every connection is refused at
/// once. For tests of "the server is unreachable".
pub fn refused(url: &str) -> String {
    with_addr(url, SocketAddr::from(([127, 0, 0, 1], 1)))
}

/// `host:port` that `url` connects to, with the scheme's default port (PostgreSQL 5432,
/// AMQP 5672) when it names none: what a proxy in front of that server forwards to.
///
/// # Panics
/// If `url` has no host, or no port and an unknown scheme.
pub fn host_port(url: &str) -> String {
    let parsed = parse(url);
    let host = parsed
        .host_str()
        .unwrap_or_else(|| panic!("{url}: no host"));
    let port = parsed.port().unwrap_or_else(|| match parsed.scheme() {
        "postgres" | "postgresql" => 5432,
        "amqp" => 5672,
        "amqps" => 5671,
        other => panic!("{url}: no port and no default for {other}"),
    });
    format!("{host}:{port}")
}

fn parse(url: &str) -> Url {
    Url::parse(url).unwrap_or_else(|e| panic!("{url} is not a URL: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_database_name_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://root@127.0.0.1:5432", "hl_test_x"),
            "postgres://root@127.0.0.1:5432/hl_test_x"
        );
        assert_eq!(
            with_database(
                "postgres://u:p%40ss@db.local:6543/ignored?sslmode=disable",
                "hl"
            ),
            "postgres://u:p%40ss@db.local:6543/hl?sslmode=disable"
        );
    }

    #[test]
    fn a_proxy_address_replaces_only_host_and_port() {
        assert_eq!(
            with_addr(
                "postgres://u:secret@db.local:6543/hl_test_x?sslmode=disable",
                addr("127.0.0.1:40001")
            ),
            "postgres://u:secret@127.0.0.1:40001/hl_test_x?sslmode=disable"
        );
        assert_eq!(
            with_addr(
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                addr("127.0.0.1:40002")
            ),
            "amqp://guest:guest@127.0.0.1:40002/%2f"
        );
        assert_eq!(
            with_addr("amqp://bob:pw@mq/vhost?heartbeat=5", addr("127.0.0.1:1")),
            "amqp://bob:pw@127.0.0.1:1/vhost?heartbeat=5"
        );
    }

    #[test]
    fn a_refused_url_keeps_credentials_and_path() {
        assert_eq!(
            refused("amqp://guest:guest@mq.local:5672/%2f"),
            "amqp://guest:guest@127.0.0.1:1/%2f"
        );
    }

    #[test]
    fn the_upstream_of_a_proxy_comes_from_the_url_with_default_ports() {
        assert_eq!(
            host_port("postgres://root@db.local:6543/x"),
            "db.local:6543"
        );
        assert_eq!(host_port("postgres://root@db.local"), "db.local:5432");
        assert_eq!(
            host_port("postgresql://root@db.local/x?a=b"),
            "db.local:5432"
        );
        assert_eq!(
            host_port("amqp://guest:guest@mq.local/%2f"),
            "mq.local:5672"
        );
        assert_eq!(
            host_port("amqp://guest:guest@127.0.0.1:5673/%2f"),
            "127.0.0.1:5673"
        );
    }
}
