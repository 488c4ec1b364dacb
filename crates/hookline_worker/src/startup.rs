use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use hookline_config::{Config, Sources};
use hookline_db::{create_pool, run_migrations};
use hookline_domain::Outcome;
use hookline_queue::{Nodes, Publisher, Topology};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::consume::{self, ConsumerSettings, Shared};
use crate::deliver::{self, Routes};
use crate::effects::{Handler, Handlers};
use crate::processor::Processor;
use crate::{Deps, RetryPolicy};

/// Most events decided in one transaction.
const BATCH_MAX: usize = 64;
/// Batches in flight at once: one commits while the next fills.
const BATCH_EXECUTORS: usize = 2;

/// How long a stopping worker waits for in-flight messages to commit and be acknowledged
/// before abandoning them to redelivery.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A built worker: pool created, admin listener bound and serving, nothing consumed yet.
/// Port 0 in `worker.admin_addr` picks a free port, which [`Worker::admin_port`] reports.
pub struct Worker {
    admin_port: u16,
    admin_task: JoinHandle<()>,
    shared: Arc<Shared>,
    settings: ConsumerSettings,
    connected: Arc<AtomicBool>,
    routes: Arc<Routes>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
}

/// Start-up mirrors ingest: migrate (if configured), pool, listener. A broker that is down
/// at start-up is not fatal: the consumer keeps reconnecting and `/readyz` says so.
impl Worker {
    /// Migrates (if configured), creates the pool and the retry publisher, and binds the
    /// admin listener.
    ///
    /// # Errors
    /// If migrations fail, the pool settings are invalid or the admin address cannot be
    /// bound.
    pub async fn build(config: Config, sources: Sources) -> anyhow::Result<Self> {
        Self::builder(config, sources).build().await
    }

    /// A worker with effect handlers: register them, then [`WorkerBuilder::build`].
    ///
    /// ```ignore
    /// Worker::builder(config, sources)
    ///     .on_source("refersion", Conversions)
    ///     .build()
    ///     .await?
    ///     .run_until_stopped()
    ///     .await
    /// ```
    pub fn builder(config: Config, sources: Sources) -> WorkerBuilder {
        WorkerBuilder {
            config,
            sources,
            handlers: Handlers::new(),
        }
    }

    async fn build_with(
        config: Config,
        sources: Sources,
        handlers: Handlers,
    ) -> anyhow::Result<Self> {
        for source in handlers.sources() {
            anyhow::ensure!(
                sources.get(source).is_some(),
                "a handler is registered for source {source:?}, which is not configured"
            );
        }
        // The worker's own section; source secrets and `[http]`/`[admin]`/`[ingest]` are
        // ingest's and are not read here.
        config.validate_worker()?;
        // Destinations are the worker's: it resolves their secrets, and a bad one stops it
        // here, naming the key.
        let routes = Arc::new(Routes::new(config.destinations(&sources)?));
        if config.database.migrate {
            run_migrations(config.database.url.expose()).await.context(
                "applying database migrations (is PostgreSQL up and database.url right?)",
            )?;
        }
        let concurrency = config.worker.concurrency.max(1);
        // `database.pool_size` stays the operator's cap on connections per process. A
        // concurrency above it queues on the pool; a wait past the pool's timeout is a
        // transient failure, retried like any other.
        let pool = create_pool(config.database.url.expose(), config.database.pool_size)
            .context("creating the database pool")?;
        let policy = RetryPolicy::from_config(&config.worker);
        let topology = Topology::new(config.amqp.prefix.clone());
        // One Nodes for the retry publisher and the consumer: whichever finds a node dead
        // first spares the other the wait on it.
        let nodes =
            Nodes::new(config.amqp.url.expose(), config.amqp.ca_pem.clone()).context("amqp.url")?;
        let publisher = Arc::new(Publisher::new(
            nodes.clone(),
            topology.clone(),
            policy.delays().to_vec(),
            "hookline-worker-retry",
        ));
        if let Err(e) = publisher.ensure_connected().await {
            tracing::warn!(error = %e, "broker unreachable at start-up; will keep trying");
        }

        // Install the recorder before the first message is counted; until then metrics
        // would go nowhere.
        hookline_telemetry::metrics_handle();
        let connected = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind(&config.worker.admin_addr)
            .await
            .with_context(|| format!("binding worker.admin_addr {}", config.worker.admin_addr))?;
        let admin_port = listener.local_addr()?.port();
        let admin_task = tokio::spawn(admin::serve(
            listener,
            Arc::new(AdminState {
                pool: pool.clone(),
                consumer_connected: connected.clone(),
            }),
        ));

        let (stop_tx, stop_rx) = watch::channel(false);
        let deps = Arc::new(
            Deps::new(pool, sources)
                .with_handlers(handlers)
                .with_routes(routes.clone()),
        );
        Ok(Self {
            admin_port,
            admin_task,
            shared: Arc::new(Shared {
                processor: Processor::start(deps.clone(), BATCH_MAX, BATCH_EXECUTORS),
                deps,
                publisher,
                policy,
            }),
            settings: ConsumerSettings {
                nodes,
                topology,
                concurrency,
                tag: format!("hookline-worker-{}", uuid::Uuid::new_v4().simple()),
                drain_timeout: DRAIN_TIMEOUT,
            },
            connected,
            routes,
            stop_tx,
            stop_rx,
        })
    }

    /// The admin listener's port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// A handle that stops the worker gracefully when sent `true`.
    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop_tx.clone()
    }

    /// Consumes until SIGTERM/SIGINT (or the stop handle), then drains: cancels the
    /// consumer, lets in-flight messages commit and be acknowledged (at most 30 s; the
    /// rest are redelivered), closes the broker connection and returns.
    ///
    /// # Errors
    /// None today; the signature leaves room for fatal start-up checks.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Worker {
            admin_task,
            shared,
            settings,
            connected,
            routes,
            stop_tx,
            mut stop_rx,
            ..
        } = self;
        let pool = shared.deps.pool.clone();
        let consumer = tokio::spawn(consume::run(shared, settings, connected, stop_rx.clone()));
        let deliveries = deliver::start(pool, &routes, stop_rx.clone())?;
        tokio::select! {
            _ = hookline_telemetry::shutdown_signal() => tracing::info!("signal received; draining"),
            _ = stop_rx.wait_for(|stop| *stop) => tracing::info!("stop requested; draining"),
        }
        let _ = stop_tx.send(true);
        if let Err(e) = consumer.await {
            tracing::error!(error = %e, "the consumer task failed");
        }
        if let Err(e) = deliveries.await {
            tracing::error!(error = %e, "the delivery task failed");
        }
        admin_task.abort();
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// A [`Worker`] being configured: its effect handlers ([`crate::effects`]).
pub struct WorkerBuilder {
    config: Config,
    sources: Sources,
    handlers: Handlers,
}

impl WorkerBuilder {
    /// Calls `handler` for every `applied` decision of `source`, and for every event of a
    /// source without a lifecycle ([`Handlers::on_source`]).
    #[must_use]
    pub fn on_source(mut self, source: impl Into<String>, handler: impl Handler) -> Self {
        self.handlers = self.handlers.on_source(source, handler);
        self
    }

    /// Calls `handler` for the decisions of `source` with one of `outcomes`
    /// ([`Handlers::on`]).
    #[must_use]
    pub fn on(
        mut self,
        source: impl Into<String>,
        outcomes: &[Outcome],
        handler: impl Handler,
    ) -> Self {
        self.handlers = self.handlers.on(source, outcomes, handler);
        self
    }

    /// Replaces the handlers with `handlers`.
    #[must_use]
    pub fn handlers(mut self, handlers: Handlers) -> Self {
        self.handlers = handlers;
        self
    }

    /// Builds the worker ([`Worker::build`]).
    ///
    /// # Errors
    /// As [`Worker::build`], and if a handler names a source that is not configured.
    pub async fn build(self) -> anyhow::Result<Worker> {
        Worker::build_with(self.config, self.sources, self.handlers).await
    }
}
