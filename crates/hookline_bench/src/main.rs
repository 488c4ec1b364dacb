//! `hookline-bench`: the load generator and the ceiling probes behind `make bench`.
//!
//! * `load`: signed webhooks at a set concurrency (or rate), with a duplicate ratio,
//!   resource fan-out and shuffled statuses; reports req/s, latency percentiles
//!   (HdrHistogram) and status counts; with `--database-url` it then waits until every
//!   accepted event is processed and reports processed events/s and received->processed
//!   latency (end-to-end mode).
//! * `hello-server`: the actix-web ceiling (parse JSON, answer 202, no database).
//! * `ceiling-server`: the bare durable-ingest ceiling (the same request, group-commit
//!   insert into one table with a unique key, answered after the commit).
//! * `drain-wait`: after workers start on a queue filled while none ran, how fast they
//!   drain it.
//! * `amqp-publish`: the RabbitMQ ceiling (persistent messages, quorum queue, confirms).
//! * `audit`: `make cluster-test`'s verdict: acknowledged events lost, decided twice,
//!   left unprocessed (from `load --acked-out`).
//! * `overload`: ingest with its database stalled under 10 000 connections, then the
//!   recovery (`make overload`).
//! * `chaos-send`, `chaos-check`: the webhooks of `make chaos` and the integrity check
//!   after its drain.
//!
//! Every command prints one JSON object on stdout; `scripts/bench.sh` assembles them.

mod amqp;
mod audit;
mod ceiling;
mod chaos;
mod e2e;
mod hello;
mod http;
mod load;
mod overload;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hookline-bench",
    about = "Hookline load generator and ceiling probes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send webhooks and measure.
    Load(Box<load::LoadArgs>),
    /// Serve the hello-world ceiling endpoint until killed.
    HelloServer {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:18080")]
        addr: String,
        /// actix worker threads.
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// Serve a webhook destination that answers 204 at once, until killed.
    SinkServer {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:18081")]
        addr: String,
        /// actix worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Append each request's `webhook-id` to this file, one per line.
        #[arg(long)]
        record: Option<std::path::PathBuf>,
    },
    /// Serve the bare durable-ingest ceiling until killed: the same request as ingest,
    /// stored by group commit into one table with a unique key, answered after commit.
    CeilingServer(Box<ceiling::CeilingArgs>),
    /// Wait until the workers decided every event of a run queued while none ran, and
    /// report the drain rate.
    DrainWait(Box<e2e::DrainArgs>),
    /// Publish persistent messages with confirms to a fresh quorum queue.
    AmqpPublish(amqp::AmqpArgs),
    /// Check a run's acknowledged events in PostgreSQL: none lost, none decided twice.
    Audit(audit::AuditArgs),
    /// Stall ingest's database under a wave of connections; measure answers, memory and
    /// the recovery.
    Overload(Box<overload::OverloadArgs>),
    /// Send the planned webhooks of a chaos run until every one is acknowledged.
    ChaosSend(Box<chaos::SendArgs>),
    /// After a chaos run: wait for the drain, then check PostgreSQL against the
    /// acknowledgements.
    ChaosCheck(Box<chaos::CheckArgs>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::HelloServer { addr, workers } => hello::serve(&addr, workers),
        Command::SinkServer {
            addr,
            workers,
            record,
        } => hello::serve_sink(&addr, workers, record.as_deref()),
        Command::CeilingServer(args) => ceiling::serve(*args),
        Command::DrainWait(args) => runtime()?.block_on(e2e::wait_drained(*args)),
        Command::Load(args) => runtime()?.block_on(load::run(*args)),
        Command::AmqpPublish(args) => runtime()?.block_on(amqp::run(args)),
        Command::Audit(args) => runtime()?.block_on(audit::run(args)),
        Command::Overload(args) => runtime()?.block_on(overload::run(*args)),
        Command::ChaosSend(args) => runtime()?.block_on(chaos::send(*args)),
        Command::ChaosCheck(args) => runtime()?.block_on(chaos::check(*args)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
