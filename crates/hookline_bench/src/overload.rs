//! `hookline-bench overload`: ingest with its database stalled under a wave of
//! connections, then the recovery (`make overload`).
//!
//! 1. Baseline: `steady` connections send unique webhooks as fast as answers come; their
//!    rate of 2xx answers is "normal throughput".
//! 2. Stall: a transaction locks the events table (`hookline_db::lock_events_table`), and
//!    `connections` more connections open and each sends a webhook, then another a second
//!    after each answer, for the whole stall. Every answer's time is recorded, and the
//!    ingest process's RSS is sampled from `/proc/<pid>/status` every 50 ms.
//! 3. Recovery: the lock is released, the wave stops, and the steady connections' rate of
//!    2xx answers is watched until it is back to `normal_fraction` of the baseline.
//!
//! It prints one JSON object and fails when a target is missed: peak RSS over
//! `max_rss_mib`, an answer slower than the request timeout plus 1 s, a request not
//! answered at all, or a recovery slower than `max_recovery_secs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;

use crate::http::{Conn, post};

/// `hookline-bench overload` options.
#[derive(clap::Args, Clone)]
pub struct OverloadArgs {
    /// Ingest's public `host:port`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Source name; its dedup key must be `{header:x-bench-id}`.
    #[arg(long, default_value = "bench")]
    pub source: String,
    /// Its token (`x-hookline-token`).
    #[arg(long, default_value = "bench-token")]
    pub secret: String,
    /// Ingest's database, to stall it.
    #[arg(long)]
    pub database_url: String,
    /// Ingest's process id, for its RSS.
    #[arg(long)]
    pub pid: u32,
    /// Connections opened during the stall.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Connections sending throughout, whose answers measure throughput.
    #[arg(long, default_value_t = 32)]
    pub steady: usize,
    /// Seconds of baseline before the stall (the first second is warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub baseline_secs: f64,
    /// Seconds the database stays stalled.
    #[arg(long, default_value_t = 15.0)]
    pub stall_secs: f64,
    /// Seconds watched after the stall.
    #[arg(long, default_value_t = 8.0)]
    pub after_secs: f64,
    /// Ingest's `http.request_timeout`, in seconds.
    #[arg(long, default_value_t = 8.0)]
    pub request_timeout_secs: f64,
    /// Target: peak RSS of ingest.
    #[arg(long, default_value_t = 128.0)]
    pub max_rss_mib: f64,
    /// Target: seconds from the end of the stall until throughput is normal.
    #[arg(long, default_value_t = 2.0)]
    pub max_recovery_secs: f64,
    /// Throughput counts as normal again at this fraction of the baseline, over a
    /// 500 ms window.
    #[arg(long, default_value_t = 0.8)]
    pub normal_fraction: f64,
    /// Most connections being opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_parallelism: usize,
}

/// A webhook with a fresh key.
fn webhook(args: &OverloadArgs, id: &str) -> Vec<u8> {
    let body = json!({
        "eventType": "ACTOR.RUN.UPDATE",
        "eventData": {"actorRunId": id},
        "resource": {"status": "RUNNING"},
        "id": id,
        "pad": "x".repeat(290),
    })
    .to_string();
    post(
        &format!("/webhooks/{}", args.source),
        &[
            ("x-bench-id", id.to_string()),
            ("x-hookline-token", args.secret.clone()),
        ],
        body.as_bytes(),
    )
}

/// What the wave's connections saw.
#[derive(Default)]
struct Wave {
    requests: u64,
    /// Status (and for 503s, which refusal) -> count.
    answers: BTreeMap<String, u64>,
    errors: u64,
    max_latency: Duration,
}

/// The `outcome` a 503's body names: shed (in flight) or deadline (not stored within).
fn answer_label(status: u16, body: &[u8]) -> String {
    if status != 503 {
        return status.to_string();
    }
    let text = String::from_utf8_lossy(body);
    if text.contains("in flight") {
        "503 shed".into()
    } else if text.contains("not stored within") {
        "503 deadline".into()
    } else {
        "503 other".into()
    }
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub async fn run(args: OverloadArgs) -> anyhow::Result<()> {
    let args = Arc::new(args);
    let run = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    // Ingest's RSS, every 50 ms.
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak_rss.clone(), args.pid);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid, "VmRSS:") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Steady load; `accepted` counts its 2xx answers, sampled every 50 ms.
    let accepted = Arc::new(AtomicU64::new(0));
    let steady_errors = Arc::new(AtomicU64::new(0));
    let steady: Vec<_> = (0..args.steady)
        .map(|c| {
            let (args, stop, accepted, errors, run) = (
                args.clone(),
                stop.clone(),
                accepted.clone(),
                steady_errors.clone(),
                run.clone(),
            );
            tokio::spawn(async move {
                let mut conn = Conn::new(&args.addr);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let request = webhook(&args, &format!("{run}-s{c}-{seq}"));
                    match conn.send_once(&request).await {
                        Ok(status) if status < 300 => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        // Refused: a provider would back off; do not spin on 503s.
                        Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            })
        })
        .collect();
    let samples = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
    let counter = {
        let (stop, accepted, samples) = (stop.clone(), accepted.clone(), samples.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let sample = (
                    start.elapsed().as_secs_f64(),
                    accepted.load(Ordering::Relaxed),
                );
                samples.lock().expect("not poisoned").push(sample);
            }
        })
    };
    tokio::time::sleep(Duration::from_secs_f64(args.baseline_secs)).await;

    // The stall and the wave.
    let mut lock = hookline_db::connect(&args.database_url).await?;
    hookline_db::lock_events_table(&mut lock).await?;
    let stall_at = start.elapsed().as_secs_f64();
    eprintln!(
        "overload: events table locked; opening {} connections",
        args.connections
    );
    let wave_stop = Arc::new(AtomicBool::new(false));
    let connecting = Arc::new(Semaphore::new(args.connect_parallelism));
    let open = Arc::new(AtomicUsize::new(0));
    let max_open = Arc::new(AtomicUsize::new(0));
    let wave: Vec<_> = (0..args.connections)
        .map(|c| {
            let (args, wave_stop, connecting, open, max_open, run) = (
                args.clone(),
                wave_stop.clone(),
                connecting.clone(),
                open.clone(),
                max_open.clone(),
                run.clone(),
            );
            tokio::spawn(async move {
                let mut seen = Wave::default();
                let mut conn = Conn::with_buffer(&args.addr, 1024);
                {
                    let _permit = connecting.acquire().await.expect("never closed");
                    if conn.connect().await.is_err() {
                        seen.errors += 1;
                        return seen;
                    }
                }
                let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
                max_open.fetch_max(now_open, Ordering::Relaxed);
                let mut seq = 0u64;
                while !wave_stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let request = webhook(&args, &format!("{run}-w{c}-{seq}"));
                    let sent = Instant::now();
                    let answer = conn.send_once(&request).await;
                    seen.max_latency = seen.max_latency.max(sent.elapsed());
                    seen.requests += 1;
                    match answer {
                        Ok(status) => {
                            *seen
                                .answers
                                .entry(answer_label(status, conn.body()))
                                .or_default() += 1
                        }
                        Err(_) => seen.errors += 1,
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                open.fetch_sub(1, Ordering::Relaxed);
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(args.stall_secs)).await;

    hookline_db::release_events_table(&mut lock).await?;
    let released_at = start.elapsed().as_secs_f64();
    wave_stop.store(true, Ordering::Relaxed);
    eprintln!(
        "overload: lock released after {:.1} s",
        released_at - stall_at
    );
    tokio::time::sleep(Duration::from_secs_f64(args.after_secs)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = Wave::default();
    for task in wave {
        let seen = task.await?;
        total.requests += seen.requests;
        total.errors += seen.errors;
        total.max_latency = total.max_latency.max(seen.max_latency);
        for (label, n) in seen.answers {
            *total.answers.entry(label).or_default() += n;
        }
    }
    for task in steady {
        task.await?;
    }
    let _ = counter.await;
    let _ = sampler.await;
    let peak_hwm = rss_kib(args.pid, "VmHWM:").unwrap_or(0);

    let samples = samples.lock().expect("not poisoned").clone();
    let at = |t: f64| {
        samples
            .iter()
            .find(|(s, _)| *s >= t)
            .or(samples.last())
            .map_or(0, |(_, n)| *n)
    };
    let baseline_rps = (at(args.baseline_secs) - at(1.0)) as f64 / (args.baseline_secs - 1.0);
    let window = 0.5;
    let recovery_s = samples
        .iter()
        .filter(|(t, _)| *t >= released_at && *t + window <= released_at + args.after_secs)
        .find(|(t, n)| (at(t + window) - n) as f64 / window >= args.normal_fraction * baseline_rps)
        .map(|(t, _)| t - released_at);
    let stalled_rps =
        (at(released_at) - at(stall_at + 1.0)) as f64 / (released_at - stall_at - 1.0);
    let peak_rss_mib = peak_rss.load(Ordering::Relaxed) as f64 / 1024.0;
    let latest_answer_s = total.max_latency.as_secs_f64();
    let answered = total.answers.values().sum::<u64>();

    let mut missed = Vec::new();
    if peak_rss_mib > args.max_rss_mib {
        missed.push(format!(
            "peak RSS {peak_rss_mib:.1} MiB > {} MiB",
            args.max_rss_mib
        ));
    }
    if latest_answer_s > args.request_timeout_secs + 1.0 {
        missed.push(format!(
            "an answer took {latest_answer_s:.2} s > request timeout + 1 s"
        ));
    }
    if total.errors > 0 {
        missed.push(format!("{} requests got no answer", total.errors));
    }
    match recovery_s {
        Some(s) if s <= args.max_recovery_secs => {}
        Some(s) => missed.push(format!("throughput back after {s:.2} s")),
        None => missed.push(format!("throughput not back within {} s", args.after_secs)),
    }
    let report = json!({
        "connections": args.connections,
        "max_open_connections": max_open.load(Ordering::Relaxed),
        "stall_s": released_at - stall_at,
        "request_timeout_s": args.request_timeout_secs,
        "wave": {
            "requests": total.requests,
            "answered": answered,
            "no_answer": total.errors,
            "answers": total.answers,
            "latest_answer_s": latest_answer_s,
        },
        "peak_rss_mib": peak_rss_mib,
        "vm_hwm_mib": peak_hwm as f64 / 1024.0,
        "baseline_rps": baseline_rps,
        "stalled_accepted_rps": stalled_rps,
        "recovery_s": recovery_s,
        "steady_errors": steady_errors.load(Ordering::Relaxed),
        "missed": missed,
    });
    println!("{report}");
    eprintln!(
        "overload: {} connections (max {} open), stall {:.1} s: {} wave requests, answers {:?}, \
         no answer {}, latest answer {:.2} s (limit {:.1} s); ingest peak RSS {:.1} MiB (limit {}); \
         throughput {:.0} req/s before, back to {:.0} % after {} (limit {} s)",
        args.connections,
        max_open.load(Ordering::Relaxed),
        released_at - stall_at,
        total.requests,
        total.answers,
        total.errors,
        latest_answer_s,
        args.request_timeout_secs + 1.0,
        peak_rss_mib,
        args.max_rss_mib,
        baseline_rps,
        args.normal_fraction * 100.0,
        recovery_s.map_or("never".to_string(), |s| format!("{s:.2} s")),
        args.max_recovery_secs,
    );
    anyhow::ensure!(missed.is_empty(), "targets missed: {}", missed.join("; "));
    Ok(())
}
