use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{ServerHandle, Service};
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use hookline_config::{Config, Sources};
use hookline_db::{Pool, create_pool, ping, run_migrations};
use hookline_queue::{Nodes, Publisher, Topology};
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState};
use crate::batcher::Batcher;
use crate::conn;
use crate::error::json_error;
use crate::limits::{InFlight, Throttle};
use crate::outbox::{run_publisher, run_relay};
use crate::seen::SeenKeys;
use crate::webhook::{Route, WebhookState, receive};

/// A built ingest service: listeners bound, background tasks running. Port 0 in the
/// config picks free ports, which [`Application::port`] reports (tests rely on it).
pub struct Application {
    port: u16,
    admin_port: u16,
    public: actix_web::dev::Server,
    admin: actix_web::dev::Server,
    public_handle: ServerHandle,
    admin_handle: ServerHandle,
    tasks: Vec<JoinHandle<()>>,
    publisher_task: JoinHandle<()>,
    relay_stop: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    stop_tx: watch::Sender<bool>,
}

struct Probe {
    pool: Pool,
    publisher: Arc<Publisher>,
}

/// Start-up order matters: migrate, then pool, then listeners. A broker that is down at
/// start-up is not fatal (the outbox holds events until it returns); a database that is
/// down is, because without the schema nothing can be stored.
impl Application {
    /// Migrates (if configured), connects and binds both listeners.
    ///
    /// # Errors
    /// If migrations fail or a listener cannot bind.
    pub async fn build(config: Config, sources: Sources) -> anyhow::Result<Self> {
        // Ingest's own sections and secrets; `[worker]` is not read here.
        config.validate_ingest()?;
        let admin_token = config.admin_token()?;
        let mut verifiers = hookline_providers::verifiers(&sources)?;
        let routes = sources
            .iter()
            .filter_map(|source| {
                let verifier = verifiers.remove(&source.name)?;
                Some((
                    source.name.clone(),
                    Route {
                        source: source.clone(),
                        verifier,
                    },
                ))
            })
            .collect();

        if config.database.migrate {
            run_migrations(config.database.url.expose()).await.context(
                "applying database migrations (is PostgreSQL up and database.url right?)",
            )?;
        }
        let pool = create_pool(config.database.url.expose(), config.database.pool_size)
            .context("creating the database pool")?;
        let nodes =
            Nodes::new(config.amqp.url.expose(), config.amqp.ca_pem.clone()).context("amqp.url")?;
        // Ingest publishes to the work queue only: the retry queues are the worker's.
        let publisher = Arc::new(Publisher::new(
            nodes,
            Topology::new(config.amqp.prefix.clone()),
            Vec::new(),
            "hookline-ingest",
        ));
        if let Err(e) = publisher.ensure_connected().await {
            tracing::warn!(error = %e, "broker unreachable at start-up; events will wait in the outbox");
        }

        // Group commits waiting to be published (~65 000 events at 16 per batch); beyond that
        // the relay publishes them.
        let (committed_tx, committed_rx) = mpsc::channel(4_096);
        let batch_tasks = config.ingest.batchers;
        let (batcher, mut tasks) = Batcher::start(
            pool.clone(),
            config.ingest.batch_max,
            batch_tasks,
            committed_tx,
            Arc::new(SeenKeys::new(
                config.ingest.dedup_cache_bytes,
                crate::seen::MAX_AGE,
            )),
        );
        let publisher_task =
            tokio::spawn(run_publisher(committed_rx, publisher.clone(), pool.clone()));
        let (relay_stop, relay_rx) = watch::channel(false);
        tasks.push(tokio::spawn(run_relay(
            publisher.clone(),
            pool.clone(),
            Duration::from_millis(config.ingest.relay_after_ms),
            Duration::from_millis(config.ingest.relay_interval_ms),
            relay_rx,
        )));

        // Data lifecycle: partitions ahead, key generations, pruning (one runner at a
        // time across replicas).
        tasks.push(tokio::spawn(crate::retention::run_maintenance_loop(
            config.database.url.clone(),
            config.retention_policy(&sources),
            config.retention.interval.get(),
            relay_stop.subscribe(),
        )));

        let webhook_state = web::Data::new(WebhookState {
            sources: routes,
            batcher,
            max_body_bytes: config.http.max_body_bytes,
            request_timeout: config.http.request_timeout,
            in_flight: InFlight::new(config.http.max_in_flight),
            overload_log: Throttle::new(),
        });
        let probe = web::Data::new(Probe {
            pool: pool.clone(),
            publisher: publisher.clone(),
        });
        let listener = TcpListener::bind(&config.http.addr)
            .with_context(|| format!("binding http.addr {}", config.http.addr))?;
        let port = listener.local_addr()?.port();
        let workers = config.http.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        });
        // Not `HttpServer`: every connection is bounded between requests too (conn.rs).
        let public = conn::serve(listener, workers, {
            let probe = probe.clone();
            move || {
                App::new()
                    .app_data(webhook_state.clone())
                    .app_data(probe.clone())
                    .wrap_fn(|req, app| {
                        let busy = conn::enter(&req);
                        let answer = app.call(req);
                        async move {
                            let answer = answer.await;
                            drop(busy);
                            answer
                        }
                    })
                    .route("/webhooks/{source}", web::post().to(receive))
                    .route("/healthz", web::get().to(healthz))
                    .route("/readyz", web::get().to(readyz))
                    .default_service(web::to(not_found))
            }
        })
        .context("serving http.addr")?;

        let admin_state = web::Data::new(AdminState {
            pool,
            token: admin_token,
            metrics: hookline_telemetry::metrics_handle(),
        });
        let admin_listener = TcpListener::bind(&config.admin.addr)
            .with_context(|| format!("binding admin.addr {}", config.admin.addr))?;
        let admin_port = admin_listener.local_addr()?.port();
        let admin = HttpServer::new(move || {
            App::new()
                .app_data(admin_state.clone())
                .app_data(probe.clone())
                .configure(admin::configure)
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .listen(admin_listener)?
        .run();

        let (stop_tx, stop_rx) = watch::channel(false);
        Ok(Self {
            port,
            admin_port,
            public_handle: public.handle(),
            admin_handle: admin.handle(),
            public,
            admin,
            tasks,
            publisher_task,
            relay_stop,
            stop_rx,
            stop_tx,
        })
    }

    /// The public listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin listener's port.
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// A handle that stops the service gracefully when sent `true`.
    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop_tx.clone()
    }

    /// Serves until SIGTERM/SIGINT (or the stop handle), then drains: stops accepting,
    /// finishes in-flight requests (their batches commit and are answered), publishes
    /// what committed, and returns.
    ///
    /// # Errors
    /// If a listener fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            public,
            admin,
            public_handle,
            admin_handle,
            tasks,
            publisher_task,
            relay_stop,
            mut stop_rx,
            ..
        } = self;
        let public = tokio::spawn(public);
        let admin = tokio::spawn(admin);
        tokio::select! {
            _ = hookline_telemetry::shutdown_signal() => tracing::info!("signal received; draining"),
            _ = stop_rx.wait_for(|stop| *stop) => tracing::info!("stop requested; draining"),
        }
        // Graceful: in-flight requests complete (their rows commit) before workers exit;
        // dropping the app state closes the batcher queue, which lets the tasks finish.
        public_handle.stop(true).await;
        admin_handle.stop(true).await;
        let _ = relay_stop.send(true);
        let _ = public.await;
        let _ = admin.await;
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        // Batchers are gone, so the committed queue is closed: the publisher drains it.
        let _ = tokio::time::timeout(Duration::from_secs(15), publisher_task).await;
        tracing::info!("ingest stopped");
        Ok(())
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// How long `/readyz` waits for the database: under the 1 s a probe may take, so a
/// database that hangs reads as unreachable instead of timing the probe out.
const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// Ready when the database answers and the broker connection is up: a load balancer
/// should not send traffic before both. Answers within 1 s whatever the broker does: the
/// broker state is read without IO or waiting, and a missing connection is only asked
/// for in the background (so readiness comes back after an outage even with no traffic).
async fn readyz(probe: web::Data<Probe>) -> HttpResponse {
    let database = tokio::time::timeout(PING_TIMEOUT, ping(&probe.pool))
        .await
        .is_ok_and(|r| r.is_ok());
    let broker = probe.publisher.is_connected();
    if !broker {
        probe.publisher.connect_in_background();
    }
    let body = json!({
        "status": if database && broker { "ready" } else { "unavailable" },
        "database": if database { "ok" } else { "unreachable" },
        "broker": if broker { "ok" } else { "unreachable" },
    });
    if database && broker {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", crate::error::RETRY_AFTER_SECS.to_string()))
            .json(body)
    }
}

async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    let status = if req.path().starts_with("/webhooks/") {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        StatusCode::NOT_FOUND
    };
    let code = if status == StatusCode::NOT_FOUND {
        "not_found"
    } else {
        "method_not_allowed"
    };
    let mut response = json_error(
        status,
        code,
        Some(format!("{} {}", req.method(), req.path())),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static("POST"),
        );
    }
    response
}
