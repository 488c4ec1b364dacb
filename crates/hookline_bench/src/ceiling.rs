//! The bare durable-ingest ceiling (`hookline-bench ceiling-server`): the same HTTP
//! request as Hookline's ingest, stored durably in one table with a unique key by group
//! commit, answered only after the commit. No signature check, no templates, no outbox, no
//! publish: what an actix-web server and PostgreSQL can do for a webhook at the least.
//!
//! Built like ingest: a multi-thread Tokio runtime with ingest's thread count runs the
//! batching task and the connection pool; actix-web's workers (ingest's count) hand each
//! request to the batching task and wait for its commit.

use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hookline_db::Pool;
use serde_json::json;
use tokio::sync::{Mutex, mpsc, oneshot};

/// `hookline-bench ceiling-server` options.
#[derive(clap::Args)]
pub struct CeilingArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:18085")]
    pub addr: String,
    /// PostgreSQL URL of the database to store into (the table is created if missing).
    #[arg(long)]
    pub database_url: String,
    /// actix worker threads (default: ingest's, half the cores, at least 1).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Connection pool size (ingest's `database.pool_size` default).
    #[arg(long, default_value_t = 16)]
    pub pool_size: usize,
    /// Most rows committed by one INSERT (ingest's `ingest.batch_max` default).
    #[arg(long, default_value_t = 256)]
    pub batch_max: usize,
    /// Group-commit statements in flight at once.
    #[arg(long, default_value_t = 1)]
    pub batchers: usize,
    /// Header carrying the unique key (the load generator's event id).
    #[arg(long, default_value = "x-bench-id")]
    pub key_header: String,
}

/// One request waiting for its row to commit: `Ok(true)` stored, `Ok(false)` the key
/// was there already.
struct Pending {
    key: String,
    body: Vec<u8>,
    reply: oneshot::Sender<Result<bool, String>>,
}

struct State {
    tx: mpsc::Sender<Pending>,
    key_header: String,
}

/// Half the cores, at least one: ingest's default for its HTTP workers and its runtime.
fn ingest_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Serves `POST /webhooks/{source}` until the process is killed.
///
/// # Errors
/// If the database cannot be reached to create the table, or the address cannot be bound.
pub fn serve(args: CeilingArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(ingest_threads())
        .thread_name("ceiling")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut conn = hookline_db::connect(&args.database_url).await?;
        hookline_db::create_ceiling_table(&mut conn).await?;
        drop(conn);
        let pool = hookline_db::create_pool(&args.database_url, args.pool_size)?;
        let batch_max = args.batch_max.max(1);
        let (tx, rx) = mpsc::channel::<Pending>(batch_max * args.batchers.max(1) * 4);
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for _ in 0..args.batchers.max(1) {
            tokio::spawn(run_batcher(rx.clone(), pool.clone(), batch_max));
        }
        let state = web::Data::new(State {
            tx,
            key_header: args.key_header.clone(),
        });
        HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/webhooks/{source}", web::post().to(receive))
        })
        .workers(args.workers.unwrap_or_else(ingest_threads))
        .bind(&args.addr)?
        .run()
        .await?;
        Ok(())
    })
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    // Ingest parses the body (its templates read it); so does the hello-world ceiling.
    if serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return HttpResponse::BadRequest().json(json!({"error": "bad_payload"}));
    }
    let Some(key) = req
        .headers()
        .get(state.key_header.as_str())
        .and_then(|v| v.to_str().ok())
    else {
        return HttpResponse::BadRequest().json(json!({"error": "no key header"}));
    };
    let (reply, answer) = oneshot::channel();
    let pending = Pending {
        key: key.to_string(),
        body: body.to_vec(),
        reply,
    };
    if state.tx.send(pending).await.is_err() {
        return HttpResponse::ServiceUnavailable().json(json!({"error": "shutting down"}));
    }
    match answer.await {
        Ok(Ok(true)) => HttpResponse::Accepted().json(json!({"status": "accepted"})),
        Ok(Ok(false)) => HttpResponse::Ok().json(json!({"status": "duplicate"})),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().json(json!({"error": e})),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({"error": "batcher stopped"})),
    }
}

/// Group commit: take whatever is queued (at least one, at most `batch_max`), insert it
/// with one statement, then answer each request. A failed batch is answered 503 whole.
async fn run_batcher(rx: std::sync::Arc<Mutex<mpsc::Receiver<Pending>>>, pool: Pool, max: usize) {
    let mut batch = Vec::with_capacity(max);
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.recv_many(&mut batch, max).await == 0 {
                return;
            }
        }
        let (keys, bodies): (Vec<String>, Vec<Vec<u8>>) = batch
            .iter_mut()
            .map(|p| (p.key.clone(), std::mem::take(&mut p.body)))
            .unzip();
        let result = async {
            let mut conn = pool.get().await?;
            hookline_db::insert_ceiling_rows(&mut conn, &keys, &bodies).await
        }
        .await;
        match result {
            Ok(mut inserted) => {
                for pending in batch.drain(..) {
                    // The first copy of a key in the batch is the one that went in.
                    let stored = inserted.remove(&pending.key);
                    let _ = pending.reply.send(Ok(stored));
                }
            }
            Err(e) => {
                let text = e.to_string();
                eprintln!("ceiling-server: batch of {} failed: {text}", batch.len());
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(text.clone()));
                }
                // A database that went away: do not spin on it.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
