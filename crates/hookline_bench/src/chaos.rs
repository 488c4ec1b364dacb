//! The two halves of `make chaos` (scripts/chaos.sh runs them around its schedule of
//! kills and restarts).
//!
//! * `chaos-send`: a planned set of webhooks (fresh resources, each with several
//!   statuses in shuffled order, some sent twice), Standard Webhooks-signed, at a steady
//!   rate over many connections. Like a provider, it retries every delivery that was not
//!   answered 2xx (503, a reset connection, no answer) until it is, and keeps the event id
//!   of every 200/202 answer in an acknowledgement file.
//! * `chaos-check`: waits until every stored event is final (the drain), then reads the
//!   integrity figures from PostgreSQL (`hookline_db::integrity_figures`) and compares
//!   them with the acknowledgements. Any loss or double decision fails it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::json;

use crate::http::{Conn, post};

/// The statuses of the `apify-run` lifecycle the plan draws from.
const STATUSES: [&str; 8] = [
    "READY",
    "RUNNING",
    "TIMING-OUT",
    "ABORTING",
    "SUCCEEDED",
    "FAILED",
    "TIMED-OUT",
    "ABORTED",
];

/// `hookline-bench chaos-send` options.
#[derive(clap::Args, Clone)]
pub struct SendArgs {
    /// Ingest's public `host:port`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Source name (a `standard-webhooks` source on the `apify-run` lifecycle, resource
    /// `{json:/data/run}`, status `{json:/data/status}`).
    #[arg(long, default_value = "chaos")]
    pub source: String,
    /// The source's `whsec_…` secret.
    #[arg(long)]
    pub secret: String,
    /// Resources (runs); each gets `--statuses` distinct events.
    #[arg(long, default_value_t = 12_500)]
    pub resources: usize,
    /// Events per resource: that many distinct statuses, in shuffled order.
    #[arg(long, default_value_t = 4)]
    pub statuses: usize,
    /// Fraction of events delivered a second time (re-signed, same webhook-id).
    #[arg(long, default_value_t = 0.3)]
    pub dup_ratio: f64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Deliveries per second over all connections (retries included).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// A delivery without an answer after this many seconds is retried.
    #[arg(long, default_value_t = 15.0)]
    pub request_timeout_secs: f64,
    /// Give up (and fail) after this many seconds.
    #[arg(long, default_value_t = 900.0)]
    pub give_up_secs: f64,
    /// Where the acknowledgements go: one `webhook-id event-id status` line per 2xx.
    #[arg(long)]
    pub acks: PathBuf,
    /// Prefix of this run's webhook ids and resources (default: random).
    #[arg(long)]
    pub run: Option<String>,
}

/// One delivery the sender still owes.
#[derive(Clone)]
struct Delivery {
    webhook_id: String,
    resource: String,
    status: &'static str,
    /// Not before this instant (a retry's backoff).
    due: Instant,
    attempt: u32,
}

#[derive(Default)]
struct Tally {
    answers: BTreeMap<String, u64>,
    retries: u64,
    acks: Vec<(String, String, u16)>,
}

fn sign(key: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

fn request(args: &SendArgs, key: &[u8], d: &Delivery) -> Vec<u8> {
    let body = json!({
        "type": "run.updated",
        "data": {"run": d.resource, "status": d.status, "attempt": d.attempt},
    })
    .to_string();
    // Signed anew on every attempt, as providers do: a fresh timestamp.
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_secs());
    post(
        &format!("/webhooks/{}", args.source),
        &[
            ("webhook-id", d.webhook_id.clone()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", sign(key, &d.webhook_id, ts, &body)),
        ],
        body.as_bytes(),
    )
}

/// The planned deliveries, shuffled: every resource's statuses arrive in random order,
/// interleaved with every other resource's, duplicates anywhere (even first).
fn plan(args: &SendArgs, run: &str) -> (VecDeque<Delivery>, usize) {
    let now = Instant::now();
    let mut deliveries = Vec::new();
    let mut events = 0;
    for r in 0..args.resources {
        let mut statuses = STATUSES.to_vec();
        fastrand::shuffle(&mut statuses);
        for (k, status) in statuses.into_iter().take(args.statuses).enumerate() {
            let delivery = Delivery {
                webhook_id: format!("{run}-{r}-{k}"),
                resource: format!("{run}-r{r}"),
                status,
                due: now,
                attempt: 0,
            };
            events += 1;
            if fastrand::f64() < args.dup_ratio {
                deliveries.push(delivery.clone());
            }
            deliveries.push(delivery);
        }
    }
    fastrand::shuffle(&mut deliveries);
    (deliveries.into(), events)
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let run = args
        .run
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
    let key = base64::engine::general_purpose::STANDARD
        .decode(args.secret.trim_start_matches("whsec_"))?;
    let (queue, events) = plan(&args, &run);
    let planned = queue.len();
    eprintln!(
        "chaos-send: run {run}: {events} events over {} resources, {planned} deliveries",
        args.resources
    );
    let queue = Arc::new(Mutex::new(queue));
    let outstanding = Arc::new(std::sync::atomic::AtomicUsize::new(planned));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let interval = Duration::from_secs_f64(args.connections as f64 / args.rate.max(0.001));
    let args = Arc::new(args);
    let key = Arc::new(key);
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let (args, key, queue, outstanding, tally) = (
                args.clone(),
                key.clone(),
                queue.clone(),
                outstanding.clone(),
                tally.clone(),
            );
            tokio::spawn(async move {
                let mut conn = Conn::with_buffer(&args.addr, 4096);
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let timeout = Duration::from_secs_f64(args.request_timeout_secs);
                while outstanding.load(std::sync::atomic::Ordering::Relaxed) > 0 {
                    tick.tick().await;
                    let next = {
                        let mut queue = queue.lock().expect("not poisoned");
                        match queue.front() {
                            Some(d) if d.due <= Instant::now() => queue.pop_front(),
                            _ => None,
                        }
                    };
                    let Some(mut delivery) = next else { continue };
                    let sent = request(&args, &key, &delivery);
                    let answer = tokio::time::timeout(timeout, conn.send_once(&sent)).await;
                    let label = match &answer {
                        Ok(Ok(status)) => status.to_string(),
                        Ok(Err(e)) => format!("error: {}", e.kind()),
                        Err(_) => "no answer".to_string(),
                    };
                    let acked = match answer {
                        Ok(Ok(status @ (200 | 202))) => {
                            serde_json::from_slice::<serde_json::Value>(conn.body())
                                .ok()
                                .and_then(|b| {
                                    b["event_id"].as_str().map(|id| (status, id.to_string()))
                                })
                        }
                        Ok(Ok(_)) => None,
                        // No answer: the connection's state is unknown, start afresh.
                        _ => {
                            conn = Conn::with_buffer(&args.addr, 4096);
                            None
                        }
                    };
                    let mut tally = tally.lock().expect("not poisoned");
                    *tally.answers.entry(label).or_default() += 1;
                    match acked {
                        Some((status, event_id)) => {
                            tally.acks.push((delivery.webhook_id, event_id, status));
                            outstanding.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        None => {
                            tally.retries += 1;
                            delivery.attempt += 1;
                            // Backoff as a provider would: soon, then less soon (≤ 2 s).
                            let backoff = 100 * 2u64.pow(delivery.attempt.min(5));
                            delivery.due =
                                Instant::now() + Duration::from_millis(backoff.min(2_000));
                            queue.lock().expect("not poisoned").push_back(delivery);
                        }
                    }
                }
            })
        })
        .collect();
    let progress = {
        let (outstanding, tally) = (outstanding.clone(), tally.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let left = outstanding.load(std::sync::atomic::Ordering::Relaxed);
                let answers = tally.lock().expect("not poisoned").answers.clone();
                eprintln!(
                    "chaos-send: {:.0} s, {left} deliveries outstanding, answers so far {answers:?}",
                    started.elapsed().as_secs_f64()
                );
                if left == 0 {
                    return;
                }
            }
        })
    };
    let all = async {
        for task in tasks {
            task.await?;
        }
        anyhow::Ok(())
    };
    let finished = tokio::time::timeout(Duration::from_secs_f64(args.give_up_secs), all).await;
    progress.abort();
    let tally = tally.lock().expect("not poisoned");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&args.acks)?);
    for (webhook_id, event_id, status) in &tally.acks {
        writeln!(file, "{webhook_id} {event_id} {status}")?;
    }
    file.flush()?;
    let report = json!({
        "run": run,
        "events": events,
        "deliveries": planned,
        "acknowledged": tally.acks.len(),
        "retries": tally.retries,
        "answers": tally.answers,
        "duration_s": started.elapsed().as_secs_f64(),
    });
    println!("{report}");
    eprintln!(
        "chaos-send: {events} events, {planned} deliveries, {} acknowledged, {} retried, in {:.0} s; answers {:?}",
        tally.acks.len(),
        tally.retries,
        started.elapsed().as_secs_f64(),
        tally.answers
    );
    match finished {
        Ok(result) => result,
        Err(_) => anyhow::bail!(
            "gave up after {} s with deliveries still unacknowledged",
            args.give_up_secs
        ),
    }
}

/// `hookline-bench chaos-check` options.
#[derive(clap::Args, Clone)]
pub struct CheckArgs {
    /// The database ingest and the workers used.
    #[arg(long)]
    pub database_url: String,
    /// Source name.
    #[arg(long, default_value = "chaos")]
    pub source: String,
    /// The source's lifecycle (built-in name).
    #[arg(long, default_value = "apify-run")]
    pub lifecycle: String,
    /// `chaos-send`'s acknowledgement file.
    #[arg(long)]
    pub acks: PathBuf,
    /// Events the run planned (every one must be stored exactly once).
    #[arg(long)]
    pub events: i64,
    /// How long the drain may take.
    #[arg(long, default_value_t = 300.0)]
    pub drain_secs: f64,
    /// An HTTP destination that takes every outcome of the source: every processed event
    /// must end `delivered` to it.
    #[arg(long)]
    pub destination: Option<String>,
    /// The destination's record of the `webhook-id`s it received (`sink-server --record`):
    /// every processed event must be in it.
    #[arg(long, requires = "destination")]
    pub received: Option<PathBuf>,
}

/// What the check found of the destination's deliveries.
#[derive(Debug)]
struct DeliveryCheck {
    figures: hookline_db::DeliveryFigures,
    /// Processed events whose id the receiver's record lacks (0 without a record).
    never_received: i64,
    /// Requests the receiver recorded, repeats included (at least once: a repeat is a
    /// delivery whose result was lost to a kill or an outage, sent again).
    received_requests: usize,
    /// Distinct `webhook-id`s among them.
    received_ids: usize,
    /// How long after the start of the drain the deliveries had drained.
    drained_s: f64,
}

/// Waits (within the drain time) until every processed event is delivered to
/// `destination` and nothing is pending, then compares with the receiver's record.
async fn check_deliveries(
    conn: &mut hookline_db::AsyncPgConnection,
    args: &CheckArgs,
    destination: &str,
    started: Instant,
) -> anyhow::Result<DeliveryCheck> {
    let figures = loop {
        let figures = hookline_db::delivery_figures(conn, &args.source, destination).await?;
        let drained = figures.delivered == figures.processed && figures.pending == 0;
        if drained || started.elapsed().as_secs_f64() > args.drain_secs {
            break figures;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let drained_s = started.elapsed().as_secs_f64();
    let (mut never_received, mut received_requests, mut received_ids) = (0, 0, 0);
    if let Some(path) = &args.received {
        let text = std::fs::read_to_string(path)?;
        let received: std::collections::HashSet<&str> = text.lines().collect();
        received_requests = text.lines().count();
        received_ids = received.len();
        for id in hookline_db::processed_event_ids(conn, &args.source).await? {
            if !received.contains(id.to_string().as_str()) {
                never_received += 1;
            }
        }
    }
    Ok(DeliveryCheck {
        figures,
        never_received,
        received_requests,
        received_ids,
        drained_s,
    })
}

pub async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let lifecycle = hookline_domain::Lifecycle::builtin(&args.lifecycle)
        .ok_or_else(|| anyhow::anyhow!("no built-in lifecycle {}", args.lifecycle))?;
    // Every acknowledgement of one webhook must name one event.
    let mut by_webhook: HashMap<String, String> = HashMap::new();
    let mut conflicting = 0u64;
    let mut acknowledged = Vec::new();
    for line in std::fs::read_to_string(&args.acks)?.lines() {
        let mut parts = line.split(' ');
        let (Some(webhook), Some(event)) = (parts.next(), parts.next()) else {
            anyhow::bail!("bad line in {}: {line:?}", args.acks.display());
        };
        let id: uuid::Uuid = event.parse()?;
        match by_webhook.get(webhook) {
            Some(first) if first != event => conflicting += 1,
            Some(_) => {}
            None => {
                by_webhook.insert(webhook.to_string(), event.to_string());
                acknowledged.push(id);
            }
        }
    }
    let mut conn = hookline_db::connect(&args.database_url).await?;
    let started = Instant::now();
    let figures = loop {
        let figures =
            hookline_db::integrity_figures(&mut conn, &args.source, &lifecycle, &acknowledged)
                .await?;
        if figures.not_final == 0 || started.elapsed().as_secs_f64() > args.drain_secs {
            break figures;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let drained_s = started.elapsed().as_secs_f64();
    let stored_not_once = (figures.events - args.events).abs();
    let deliveries = match &args.destination {
        Some(destination) => Some(check_deliveries(&mut conn, &args, destination, started).await?),
        None => None,
    };
    let mut rows = vec![
        ("acknowledged events lost", figures.acknowledged_lost),
        ("events decided twice", figures.decided_twice),
        ("applied downgrades", figures.applied_downgrades),
        ("events not final after the drain", figures.not_final),
        ("events failed or dead-lettered", figures.failed_or_dead),
        (
            "processed events with no decision",
            figures.processed_undecided,
        ),
        (
            "resources left below their best status",
            figures.resources_behind,
        ),
        (
            "webhooks acknowledged with two event ids",
            conflicting as i64,
        ),
        ("webhooks not stored exactly once", stored_not_once),
    ];
    if let Some(d) = &deliveries {
        rows.extend([
            (
                "processed events not delivered",
                d.figures.processed - d.figures.delivered,
            ),
            ("deliveries still pending", d.figures.pending),
            ("deliveries failed or dead", d.figures.failed_or_dead),
            ("processed events the receiver never got", d.never_received),
        ]);
    }
    let violations: i64 = rows.iter().map(|(_, n)| *n).sum();
    println!(
        "{}",
        json!({
            "figures": figures,
            "acknowledged_webhooks": by_webhook.len(),
            "planned_events": args.events,
            "conflicting_acks": conflicting,
            "drain_s": drained_s,
            "deliveries": deliveries.as_ref().map(|d| json!({
                "figures": d.figures,
                "never_received": d.never_received,
                "received_requests": d.received_requests,
                "received_ids": d.received_ids,
                "drained_s": d.drained_s,
            })),
            "violations": violations,
        })
    );
    eprintln!(
        "chaos-check: {} events stored ({} planned, {} acknowledged), {} resources, drained in {drained_s:.0} s",
        figures.events,
        args.events,
        by_webhook.len(),
        figures.resources
    );
    if let Some(d) = &deliveries {
        eprintln!(
            "chaos-check: {} of {} processed events delivered, drained {:.0} s after the events; \
             the receiver got {} requests for {} distinct events",
            d.figures.delivered,
            d.figures.processed,
            d.drained_s - drained_s,
            d.received_requests,
            d.received_ids
        );
    }
    for (what, n) in rows {
        eprintln!("  {what:<42} {n}");
    }
    anyhow::ensure!(violations == 0, "{violations} violations");
    Ok(())
}
