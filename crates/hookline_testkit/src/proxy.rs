use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use crate::urls::{amqp_url, database_server_url, host_port, with_addr};

/// A TCP proxy a test can cut: "the database is down" (or the broker) for one test only,
/// while every other test keeps using the shared server.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    cut: broadcast::Sender<()>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy in front of the test PostgreSQL server (`HOOKLINE_TEST_DATABASE_URL`);
    /// reach a database through it with [`crate::TestDb::url_via`].
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn postgres() -> Self {
        Self::start(&host_port(&database_server_url())).await
    }

    /// A proxy in front of the test broker (`HOOKLINE_TEST_AMQP_URL`); reach it through
    /// [`Proxy::amqp_url`].
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn broker() -> Self {
        Self::start(&host_port(&amqp_url())).await
    }

    /// The test broker's URL (credentials, virtual host) with this proxy's address.
    pub fn amqp_url(&self) -> String {
        with_addr(&amqp_url(), self.addr)
    }

    /// Starts forwarding `127.0.0.1:<random>` to `target` (`host:port`).
    ///
    /// # Panics
    /// If no local port can be bound.
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let up = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (cut, _) = broadcast::channel(1);
        let target = target.to_string();
        let accept = tokio::spawn({
            let up = up.clone();
            let accepted = accepted.clone();
            let cut = cut.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        drop(inbound); // refused: connection closed at once
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let target = target.clone();
                    let mut cut_rx = cut.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(&target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut_rx.recv() => {}
                        }
                    });
                }
            }
        });
        Self {
            addr,
            up,
            accepted,
            cut,
            accept,
        }
    }

    /// Connections forwarded so far (refused ones not counted): which of several
    /// proxies a client went to.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Cuts every open connection and refuses new ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.cut.send(());
    }

    /// Accepts connections again.
    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.cut.send(());
    }
}
