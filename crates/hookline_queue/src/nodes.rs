//! Where the broker is: one URL or a cluster's node URLs with failover, and the CA
//! certificates trusted for `amqps://`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookline_domain::redact_url;
use lapin::tcp::OwnedTLSConfig;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::QueueError;

/// Each node gets this long to accept the connection and finish the AMQP handshake
/// before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The broker's nodes, tried in order: a connection goes to the first that answers,
/// starting from the preferred one (the last that answered). A node whose connection is
/// lost stops being preferred, so the reconnect starts from the next one: after a node
/// dies, clients move to the survivors without first waiting on the dead one.
///
/// Cheap to clone; clones share the preference, so every connection of a process
/// (publisher, consumer) learns from the others which node is up. `amqps://` URLs use TLS
/// (rustls) and trust the system store plus the configured CA certificates.
#[derive(Clone)]
pub struct Nodes {
    urls: Arc<[String]>,
    tls: OwnedTLSConfig,
    preferred: Arc<AtomicUsize>,
}

impl Nodes {
    /// `urls` in failover order, with `ca_pem` (PEM certificates, e.g. `amqp.ca_file`)
    /// trusted for `amqps://` besides the system store.
    ///
    /// # Errors
    /// [`QueueError::Config`] if there is no URL or one is not an AMQP URL (the message
    /// names its position, never its password).
    pub fn new<S: Into<String>>(
        urls: impl IntoIterator<Item = S>,
        ca_pem: Option<String>,
    ) -> Result<Self, QueueError> {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        if urls.is_empty() {
            return Err(QueueError::Config("no broker URL".into()));
        }
        for (i, url) in urls.iter().enumerate() {
            url.parse::<AMQPUri>().map_err(|e| {
                QueueError::Config(format!("broker URL {i} ({}): {e}", redact_url(url)))
            })?;
        }
        Ok(Self {
            urls: urls.into(),
            tls: OwnedTLSConfig {
                identity: None,
                cert_chain: ca_pem,
            },
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Always false: [`Nodes::new`] refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// Node `index`'s URL with the password redacted: for logs and errors.
    pub fn describe(&self, index: usize) -> String {
        self.urls
            .get(index)
            .map_or_else(String::new, |url| redact_url(url))
    }

    /// Connects as `name` to the first node that answers, starting from the preferred
    /// one; returns the connection and the node's index.
    ///
    /// # Errors
    /// With one node, its error; with several, [`QueueError::Unavailable`] listing each
    /// node (password redacted) and why it did not answer.
    pub(crate) async fn connect(&self, name: &str) -> Result<(Connection, usize), QueueError> {
        let count = self.urls.len();
        let start = self.preferred.load(Ordering::SeqCst) % count;
        let mut failures = Vec::new();
        for offset in 0..count {
            let index = (start + offset) % count;
            match self.connect_to(index, name).await {
                Ok(connection) => {
                    self.preferred.store(index, Ordering::SeqCst);
                    if count > 1 {
                        tracing::info!(
                            broker.node = %self.describe(index),
                            connection = name,
                            "connected to broker node"
                        );
                    }
                    return Ok((connection, index));
                }
                Err(e) if count == 1 => return Err(e),
                Err(e) => {
                    tracing::warn!(
                        broker.node = %self.describe(index),
                        connection = name,
                        error = %e,
                        "broker node did not answer; trying the next"
                    );
                    failures.push(format!("{}: {e}", self.describe(index)));
                }
            }
        }
        Err(QueueError::Unavailable(format!(
            "no broker node answered: {}",
            failures.join("; ")
        )))
    }

    async fn connect_to(&self, index: usize, name: &str) -> Result<Connection, QueueError> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let runtime = lapin::runtime::default_runtime()?;
        let connect = Connection::connect_with_config(
            &self.urls[index],
            properties,
            self.tls.clone(),
            runtime,
        );
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| QueueError::Timeout(CONNECT_TIMEOUT))?
            .map_err(QueueError::from)
    }

    /// A connection to node `index` was lost: unless another connection has moved on
    /// already, the next connect starts from the node after it.
    pub(crate) fn lost(&self, index: usize) {
        let next = (index + 1) % self.urls.len();
        let _ = self
            .preferred
            .compare_exchange(index, next, Ordering::SeqCst, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Nodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = (0..self.urls.len()).map(|i| self.describe(i)).collect();
        f.debug_struct("Nodes").field("urls", &urls).finish()
    }
}

/// One URL, no extra CA. A URL that does not parse fails at connect, with lapin's error.
impl From<&str> for Nodes {
    fn from(url: &str) -> Self {
        Self {
            urls: vec![url.to_string()].into(),
            tls: OwnedTLSConfig::default(),
            preferred: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl From<&String> for Nodes {
    fn from(url: &String) -> Self {
        Self::from(url.as_str())
    }
}

impl From<&Nodes> for Nodes {
    fn from(nodes: &Nodes) -> Self {
        nodes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_node_hands_preference_to_the_next_once() {
        let nodes = Nodes::new(["amqp://a/%2f", "amqp://b/%2f", "amqp://c/%2f"], None).unwrap();
        nodes.lost(0);
        assert_eq!(nodes.preferred.load(Ordering::SeqCst), 1);
        // A second report about node 0 (another connection to it) changes nothing.
        nodes.lost(0);
        assert_eq!(nodes.preferred.load(Ordering::SeqCst), 1);
        nodes.lost(1);
        nodes.lost(2);
        assert_eq!(nodes.preferred.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_bad_url_is_named_by_position_without_its_password() {
        let err = Nodes::new(["amqp://a/%2f", "amqp://u:pa55@b:notaport/%2f"], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("broker URL 1"), "{err}");
        assert!(!err.contains("pa55"), "{err}");
        assert!(Nodes::new(Vec::<String>::new(), None).is_err());
    }

    #[test]
    fn debug_output_redacts_passwords() {
        let nodes = Nodes::new(["amqp://u:pa55@a/%2f"], None).unwrap();
        let debug = format!("{nodes:?}");
        assert!(
            !debug.contains("pa55") && debug.contains("u:***@a"),
            "{debug}"
        );
    }
}
