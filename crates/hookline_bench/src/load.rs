//! The webhook load generator.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hdrhistogram::Histogram;
use hmac::{KeyInit, Mac};
use serde_json::json;

use crate::http::{Conn, post};

/// `hookline-bench load` options.
#[derive(clap::Args, Clone)]
pub struct LoadArgs {
    /// Target `host:port`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Source name (`POST /webhooks/{source}`).
    #[arg(long, default_value = "bench")]
    pub source: String,
    /// How requests are authenticated: `token` (x-hookline-token header),
    /// `standard-webhooks` (webhook-id/-timestamp/-signature), or `none`.
    #[arg(long, default_value = "token")]
    pub scheme: String,
    /// The token, or the `whsec_…` secret.
    #[arg(long, default_value = "bench-token")]
    pub secret: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds of load (ignored when --events is set).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Send exactly this many new (non-duplicate) events, then stop.
    #[arg(long)]
    pub events: Option<u64>,
    /// Target request rate over all connections (default: as fast as answers come).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Fraction of requests that re-send an earlier event (re-signed, same id).
    #[arg(long, default_value_t = 0.0)]
    pub dup_ratio: f64,
    /// Events sent (and not measured) before the run, for duplicates to draw on.
    #[arg(long, default_value_t = 0)]
    pub seed_events: u64,
    /// Distinct resources the events spread over.
    #[arg(long, default_value_t = 100)]
    pub resources: u64,
    /// Statuses drawn at random per event (shuffled order per resource).
    #[arg(long, default_value = "READY,RUNNING,TIMING-OUT,SUCCEEDED")]
    pub statuses: String,
    /// Approximate body size in bytes.
    #[arg(long, default_value_t = 459)]
    pub body_bytes: usize,
    /// Unique prefix of this run's event ids (default: random).
    #[arg(long)]
    pub run: Option<String>,
    /// End-to-end mode: wait until every accepted event is processed in this database.
    #[arg(long)]
    pub database_url: Option<String>,
    /// End-to-end mode: also wait until every delivery to this destination that the
    /// decisions committed is delivered, and report those figures.
    #[arg(long)]
    pub destination: Option<String>,
    /// End-to-end mode: give up waiting after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub wait_secs: f64,
    /// Write the dedup key of every request answered 200 or 202 (acknowledged: durable)
    /// to this file, one per line, for `hookline-bench audit`.
    #[arg(long)]
    pub acked_out: Option<std::path::PathBuf>,
    /// A label copied into the JSON output.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Event ids spread over the whole key space (a bijective mix of the sequence number
    /// first, then the run), as provider ids are, instead of one run's ids side by side.
    #[arg(long)]
    pub scatter_keys: bool,
    /// Also report latency per second of the run (`timeline`: count, p50, p99, max), so a
    /// script can look at the seconds something else was happening.
    #[arg(long)]
    pub timeline: bool,
    /// Record latency, requests and rate only once this file exists (the timeline covers
    /// the whole run), so a script can measure exactly while something else runs.
    #[arg(long)]
    pub measure_from_file: Option<std::path::PathBuf>,
    /// Stop as soon as this file exists (or after --duration, whichever comes first).
    #[arg(long)]
    pub stop_file: Option<std::path::PathBuf>,
}

/// splitmix64's finalizer: a bijection of u64, so distinct sequence numbers give distinct
/// ids whose order tells nothing.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct Generator {
    args: LoadArgs,
    run: String,
    statuses: Vec<String>,
    next: AtomicU64,
    key: Vec<u8>,
    pad: String,
}

impl Generator {
    fn request(&self, seq: u64) -> Vec<u8> {
        let id = if self.args.scatter_keys {
            format!("{:016x}-{}", mix(seq), self.run)
        } else {
            format!("{}-{seq}", self.run)
        };
        let resource = format!("{}-r{}", self.run, seq % self.args.resources.max(1));
        let status = &self.statuses[fastrand::usize(..self.statuses.len())];
        let body = json!({
            "eventType": "ACTOR.RUN.UPDATE",
            "eventData": {"actorRunId": resource},
            "resource": {"status": status},
            "id": id,
            "pad": self.pad,
        })
        .to_string();
        let mut headers: Vec<(&str, String)> = vec![("x-bench-id", id.clone())];
        match self.args.scheme.as_str() {
            "token" => headers.push(("x-hookline-token", self.args.secret.clone())),
            "standard-webhooks" => {
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
                mac.update(format!("{id}.{ts}.").as_bytes());
                mac.update(body.as_bytes());
                let sig =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                headers.push(("webhook-id", id));
                headers.push(("webhook-timestamp", ts.to_string()));
                headers.push(("webhook-signature", format!("v1,{sig}")));
            }
            _ => {}
        }
        post(
            &format!("/webhooks/{}", self.args.source),
            &headers,
            body.as_bytes(),
        )
    }

    /// A new event, or (with probability dup_ratio) an earlier one again.
    fn pick(&self) -> Option<u64> {
        // The counter overshoots the limit when connections race past it: only ids that
        // can have been sent as new events are eligible as duplicates.
        let limit = self
            .args
            .events
            .map_or(u64::MAX, |n| n + self.args.seed_events);
        let sent = self.next.load(Ordering::Relaxed).min(limit);
        if sent > 0 && fastrand::f64() < self.args.dup_ratio {
            return Some(fastrand::u64(..sent));
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        (seq < limit).then_some(seq)
    }
}

struct ConnStats {
    latency_us: Histogram<u64>,
    /// Requests answered while measuring (all of them without --measure-from-file).
    measured: u64,
    /// Per second since the start, when `--timeline`.
    per_second: Vec<Histogram<u64>>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    /// Sequence numbers answered 200/202 (kept only with --acked-out).
    acked: Vec<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let run = args
        .run
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    let key = match args.secret.strip_prefix("whsec_") {
        Some(b64) => base64::engine::general_purpose::STANDARD.decode(b64)?,
        None => args.secret.as_bytes().to_vec(),
    };
    let statuses: Vec<String> = args.statuses.split(',').map(str::to_string).collect();
    anyhow::ensure!(!statuses.is_empty(), "--statuses is empty");
    let pad = "x".repeat(args.body_bytes.saturating_sub(170));
    // Before any event of this run is received (seed events included), with a second to
    // spare: what end-to-end polling scans from.
    let since = SystemTime::now() - Duration::from_secs(1);
    let generator = Arc::new(Generator {
        args: args.clone(),
        run: run.clone(),
        statuses,
        next: AtomicU64::new(0),
        key,
        pad,
    });

    // Seed events for duplicates to draw on; not measured.
    if args.seed_events > 0 {
        let mut conn = Conn::new(&args.addr);
        for _ in 0..args.seed_events {
            let seq = generator.next.fetch_add(1, Ordering::Relaxed);
            conn.send(&generator.request(seq)).await?;
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let cpu_before = crate::e2e::own_cpu_s();
    let measuring = Arc::new(AtomicBool::new(args.measure_from_file.is_none()));
    let started = Instant::now();
    let started_wall = SystemTime::now();
    let per_conn_interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r.max(0.001)));
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let generator = generator.clone();
            let stop = stop.clone();
            let measuring = measuring.clone();
            let addr = args.addr.clone();
            let keep_acked = args.acked_out.is_some();
            tokio::spawn(async move {
                let mut conn = Conn::new(&addr);
                let mut stats = ConnStats {
                    latency_us: histogram(),
                    measured: 0,
                    per_second: Vec::new(),
                    statuses: BTreeMap::new(),
                    errors: 0,
                    acked: Vec::new(),
                };
                let timeline = generator.args.timeline;
                let mut ticker = per_conn_interval.map(|i| {
                    let mut t = tokio::time::interval(i);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                while !stop.load(Ordering::Relaxed) {
                    if let Some(t) = ticker.as_mut() {
                        t.tick().await;
                    }
                    let Some(seq) = generator.pick() else { break };
                    let request = generator.request(seq);
                    let sent = Instant::now();
                    let measured = measuring.load(Ordering::Relaxed);
                    match conn.send(&request).await {
                        Ok(status) => {
                            let us = sent.elapsed().as_micros().max(1) as u64;
                            if measured {
                                let _ = stats.latency_us.record(us);
                                stats.measured += 1;
                            }
                            if timeline {
                                let second = sent.duration_since(started).as_secs() as usize;
                                if stats.per_second.len() <= second {
                                    stats.per_second.resize_with(second + 1, histogram);
                                }
                                let _ = stats.per_second[second].record(us);
                            }
                            *stats.statuses.entry(status).or_default() += 1;
                            if keep_acked && (status == 200 || status == 202) {
                                stats.acked.push(seq);
                            }
                        }
                        Err(_) => stats.errors += 1,
                    }
                }
                stats
            })
        })
        .collect();
    let mut measure_started = started;
    if args.events.is_none() {
        let deadline = started + Duration::from_secs_f64(args.duration);
        let exists = |path: &Option<std::path::PathBuf>| path.as_ref().is_some_and(|p| p.exists());
        loop {
            let now = Instant::now();
            if now >= deadline || exists(&args.stop_file) {
                break;
            }
            if !measuring.load(Ordering::Relaxed) && exists(&args.measure_from_file) {
                measure_started = now;
                measuring.store(true, Ordering::Relaxed);
            }
            tokio::time::sleep((deadline - now).min(Duration::from_millis(20))).await;
        }
        stop.store(true, Ordering::Relaxed);
    }
    let mut latency = histogram();
    let mut per_second: Vec<Histogram<u64>> = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut errors = 0;
    let mut measured = 0;
    let mut acked = std::collections::BTreeSet::new();
    for task in tasks {
        let stats = task.await?;
        measured += stats.measured;
        acked.extend(stats.acked);
        latency.add(&stats.latency_us)?;
        if per_second.len() < stats.per_second.len() {
            per_second.resize_with(stats.per_second.len(), histogram);
        }
        for (total, second) in per_second.iter_mut().zip(&stats.per_second) {
            total.add(second)?;
        }
        for (status, n) in stats.statuses {
            *statuses.entry(status).or_default() += n;
        }
        errors += stats.errors;
    }
    let load_cpu_s = crate::e2e::own_cpu_s() - cpu_before;
    // Without --measure-from-file: the whole run. With it: from the file on (0 if it never
    // appeared).
    let elapsed = if measuring.load(Ordering::Relaxed) {
        measure_started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let total = measured;
    if let Some(path) = &args.acked_out {
        // Seed events were sent before the measured run; their answers are not kept, so
        // they are not claimed as acknowledged.
        let mut lines = String::with_capacity(acked.len() * (run.len() + 8));
        for seq in &acked {
            lines.push_str(&format!("{run}-{seq}\n"));
        }
        std::fs::write(path, lines)?;
    }
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    let mut report = json!({
        "label": args.label,
        "run": run,
        "connections": args.connections,
        "duration_s": elapsed,
        "requests": total,
        "errors": errors,
        "rps": if elapsed > 0.0 { total as f64 / elapsed } else { 0.0 },
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": latency.max() as f64 / 1000.0},
        "load_cpu_s": load_cpu_s,
        "since_unix": since.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
        "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    });
    if args.timeline {
        let started_unix = started_wall
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        report["started_unix"] = json!(started_unix);
        report["timeline"] = per_second
            .iter()
            .enumerate()
            .map(|(second, h)| {
                let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                json!({"second": second, "count": h.len(), "p50": q(0.5), "p99": q(0.99),
                       "max": h.max() as f64 / 1000.0})
            })
            .collect();
    }
    if let Some(url) = &args.database_url {
        let accepted = statuses.get(&202).copied().unwrap_or(0) + args.seed_events;
        let e2e =
            crate::e2e::wait_processed(url, &args.source, &run, accepted, since, args.wait_secs)
                .await?;
        report["e2e"] = e2e;
        if let Some(destination) = &args.destination {
            report["delivery"] = crate::e2e::wait_delivered(
                url,
                &args.source,
                &run,
                destination,
                since,
                args.wait_secs,
            )
            .await?;
        }
    }
    println!("{report}");
    eprintln!(
        "{}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, statuses {:?}, errors {}",
        if args.label.is_empty() {
            "load"
        } else {
            &args.label
        },
        if elapsed > 0.0 {
            total as f64 / elapsed
        } else {
            0.0
        },
        ms(0.5),
        ms(0.99),
        latency.max() as f64 / 1000.0,
        statuses,
        errors
    );
    Ok(())
}
