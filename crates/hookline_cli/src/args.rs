//! The command line: every subcommand, its flags and how their values parse.

use clap::{Args, Parser, Subcommand};
use hookline_domain::{DeliveryState, EventState};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Operate a Hookline deployment: inspect events and resources, watch the pipeline, replay
/// and redrive events, force a resource's status. Reads `HOOKLINE_CONFIG` like the services.
#[derive(Debug, Parser)]
#[command(name = "hookline", version, about)]
pub struct Cli {
    /// Print JSON on stdout instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations (under an advisory lock; safe to run anywhere).
    Migrate,
    /// Load and validate the configuration, then print the configured sources.
    CheckConfig,
    /// Find stored events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Look at a resource's status and history, or force its status.
    #[command(subcommand)]
    Resources(ResourcesCommand),
    /// Per-source figures over a window: received, processed, failed, dead-lettered,
    /// received -> processed p50/p99.
    Stats(StatsArgs),
    /// Republish events to the work queue (idempotent: workers skip final events).
    Replay(ReplayArgs),
    /// Events whose retries ran out: list them, or redrive them to the workers.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// HTTP deliveries of decided events to `[destinations.*]`.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Data lifecycle: run a maintenance pass now, or see what is stored.
    #[command(subcommand)]
    Retention(RetentionCommand),
}

/// `hookline deliveries …`
#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Deliveries, newest first, and the destinations that are paused.
    List(DeliveryListArgs),
    /// Sends settled deliveries of a destination again (dead and failed by default) and
    /// resumes it if a 410 paused it. Idempotent.
    Redrive(DeliveryRedriveArgs),
}

/// `deliveries list` filters.
#[derive(Debug, Args)]
pub struct DeliveryListArgs {
    /// Only this destination.
    #[arg(long)]
    pub destination: Option<String>,
    /// Only this state: pending, delivered, failed or dead.
    #[arg(long, value_parser = parse_delivery_state)]
    pub state: Option<DeliveryState>,
    /// Only deliveries created since (30m, 2h, 1d, or RFC 3339).
    #[arg(long, value_parser = parse_when)]
    pub since: Option<When>,
    /// At most this many rows.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
}

/// `deliveries redrive` selection.
#[derive(Debug, Args)]
pub struct DeliveryRedriveArgs {
    /// The destination (its name in `[destinations.NAME]`).
    #[arg(long)]
    pub destination: String,
    /// Only this state: dead or failed (default: both).
    #[arg(long, value_parser = parse_redrivable_state)]
    pub state: Option<DeliveryState>,
    /// Only deliveries created since (30m, 2h, 1d, or RFC 3339).
    #[arg(long, value_parser = parse_when)]
    pub since: Option<When>,
    /// Count what would be redriven; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per statement.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub batch_size: i64,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// One maintenance pass now, as hookline-ingest runs every retention.interval: create
    /// partitions ahead, switch the dedup key generation when due, drop expired partitions
    /// whole, prune shorter per-source retention in small batches. One runner at a time:
    /// if another holds the lock, says so and exits 1.
    Run(RetentionRunArgs),
    /// Per table: partitions, rows, bytes on disk and the oldest row; the current dedup
    /// key generation.
    Status(RetentionStatusArgs),
}

#[derive(Debug, Args)]
pub struct RetentionRunArgs {
    /// Report what the pass would do without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per batched delete, at most (each batch is its own short transaction; a batch
    /// that writes over 1 MiB of WAL halves the next).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
    /// After each batch, pause this many times as long as the batch took, so the pass
    /// leaves inserts their share of the server (0: full speed, for a catch-up while
    /// nothing else runs).
    #[arg(long, default_value_t = 1.0)]
    pub pause_ratio: f64,
}

#[derive(Debug, Args)]
pub struct RetentionStatusArgs {
    /// Count rows exactly (a full scan of every table: slow when they are large)
    /// instead of PostgreSQL's estimate.
    #[arg(long)]
    pub exact: bool,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Events matching the filters, newest first.
    List(EventListArgs),
    /// One event, everything included (headers, body): by id, or by source and dedup key.
    Show(EventShowArgs),
}

/// A point in time: `30s`, `15m`, `1h`, `2d`, `1w` ago, or an RFC 3339 timestamp.
pub type When = OffsetDateTime;

#[derive(Debug, Args)]
pub struct EventListArgs {
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only this dedup key.
    #[arg(long)]
    pub dedup_key: Option<String>,
    /// Only this state (received, published, processed, failed, dead).
    #[arg(long, value_parser = parse_state)]
    pub state: Option<EventState>,
    /// Received at or after: `1h`, `30m`, `2d` ago or RFC 3339.
    #[arg(long, value_parser = parse_when)]
    pub since: Option<When>,
    /// Received before: `1h`, `30m`, `2d` ago or RFC 3339.
    #[arg(long, value_parser = parse_when)]
    pub until: Option<When>,
    /// Show at most this many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct EventShowArgs {
    /// The event id.
    #[arg(required_unless_present = "dedup_key", conflicts_with = "dedup_key")]
    pub id: Option<Uuid>,
    /// The event's source (with --dedup-key).
    #[arg(long, requires = "dedup_key")]
    pub source: Option<String>,
    /// The event's dedup key (with --source).
    #[arg(long, requires = "source")]
    pub dedup_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ResourcesCommand {
    /// A resource's status, whether it is terminal, and its transition log.
    Show(ResourceArgs),
    /// Set a resource's status by hand, bypassing the lifecycle; logged as `forced`
    /// with the reason and the actor.
    ForceStatus(ForceStatusArgs),
}

#[derive(Debug, Args)]
pub struct ResourceArgs {
    /// The source the resource belongs to.
    pub source: String,
    /// The resource key (e.g. an Apify run id).
    pub key: String,
}

#[derive(Debug, Args)]
pub struct ForceStatusArgs {
    /// The source the resource belongs to.
    pub source: String,
    /// The resource key.
    pub key: String,
    /// The status to set (spelled as in the source's lifecycle; case-insensitive).
    pub status: String,
    /// Why: kept in the transition log next to the change. Required.
    #[arg(long)]
    pub reason: String,
    /// Who, for the transition log (default: $USER).
    #[arg(long, env = "USER")]
    pub actor: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Start of the window (events received at or after): `1h`, `30m`, `2d` ago or RFC 3339.
    #[arg(long, value_parser = parse_when, default_value = "24h")]
    pub since: When,
    /// End of the window (events received before); default now.
    #[arg(long, value_parser = parse_when)]
    pub until: Option<When>,
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
}

/// Which events to act on. At least one filter, or `--all`.
#[derive(Debug, Args)]
pub struct Selection {
    /// This event (repeatable).
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<Uuid>,
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Received at or after: `1h`, `30m`, `2d` ago or RFC 3339.
    #[arg(long, value_parser = parse_when)]
    pub since: Option<When>,
    /// Received before: `1h`, `30m`, `2d` ago or RFC 3339.
    #[arg(long, value_parser = parse_when)]
    pub until: Option<When>,
    /// Act on every event the other flags allow (required when there is no filter).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct Batching {
    /// Show what would happen without publishing or changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Events per transaction and per confirmed publish.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub batch_size: i64,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Only events in this state (received, published, processed, failed, dead).
    #[arg(long, value_parser = parse_state)]
    pub state: Option<EventState>,
    /// Also re-run failed and dead events: reset them to `published` (attempts 0, error
    /// cleared) in the transaction that republishes them. Processed events are never re-run.
    #[arg(long)]
    pub reset: bool,
    #[command(flatten)]
    pub batching: Batching,
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Dead events (from PostgreSQL, the source of truth), newest first, with their last
    /// error and attempt count.
    List(DeadListArgs),
    /// Reset dead events to `published` and republish them to the work queue.
    Redrive(RedriveArgs),
}

#[derive(Debug, Args)]
pub struct DeadListArgs {
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Received at or after: `1h`, `30m`, `2d` ago or RFC 3339.
    #[arg(long, value_parser = parse_when)]
    pub since: Option<When>,
    /// Received before: `1h`, `30m`, `2d` ago or RFC 3339.
    #[arg(long, value_parser = parse_when)]
    pub until: Option<When>,
    /// Show at most this many.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// Afterwards, empty the `{prefix}.dead` queue (only with --all). Its messages are
    /// only pointers; PostgreSQL keeps every dead event.
    #[arg(long, requires = "all")]
    pub purge_queue: bool,
    #[command(flatten)]
    pub batching: Batching,
}

fn parse_state(s: &str) -> Result<EventState, String> {
    s.parse()
        .map_err(|e: hookline_domain::UnknownState| e.to_string())
}

fn parse_delivery_state(s: &str) -> Result<DeliveryState, String> {
    s.parse()
        .map_err(|e: hookline_domain::UnknownDeliveryState| e.to_string())
}

fn parse_redrivable_state(s: &str) -> Result<DeliveryState, String> {
    match parse_delivery_state(s)? {
        state @ (DeliveryState::Dead | DeliveryState::Failed) => Ok(state),
        other => Err(format!(
            "{other} deliveries are not redriven: use dead or failed"
        )),
    }
}

fn parse_when(s: &str) -> Result<When, String> {
    when_at(s, OffsetDateTime::now_utc())
}

/// `s` as an instant, relative ones counted back from `now`.
pub fn when_at(s: &str, now: OffsetDateTime) -> Result<When, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if !number.is_empty() {
        let seconds: Option<i64> = match unit {
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3_600),
            "d" => Some(86_400),
            "w" => Some(604_800),
            _ => None,
        };
        if let (Some(seconds), Ok(n)) = (seconds, number.parse::<i64>()) {
            return n
                .checked_mul(seconds)
                .and_then(|total| now.checked_sub(time::Duration::seconds(total)))
                .ok_or_else(|| format!("{s:?} reaches too far back"));
        }
    }
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        format!("{s:?} is neither a duration ago (30s, 15m, 1h, 2d, 1w) nor an RFC 3339 time")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use time::macros::datetime;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn relative_times_count_back_from_now_and_rfc3339_is_taken_as_is() {
        let now = datetime!(2026-11-22 12:00 UTC);
        assert_eq!(when_at("90s", now), Ok(datetime!(2026-11-22 11:58:30 UTC)));
        assert_eq!(when_at("30m", now), Ok(datetime!(2026-11-22 11:30 UTC)));
        assert_eq!(when_at("1h", now), Ok(datetime!(2026-11-22 11:00 UTC)));
        assert_eq!(when_at("2d", now), Ok(datetime!(2026-11-20 12:00 UTC)));
        assert_eq!(when_at("1w", now), Ok(datetime!(2026-11-15 12:00 UTC)));
        assert_eq!(
            when_at("2026-11-01T08:00:00+01:00", now),
            Ok(datetime!(2026-11-01 07:00 UTC))
        );
    }

    #[test]
    fn unreadable_times_say_what_is_accepted() {
        let now = datetime!(2026-11-22 12:00 UTC);
        for bad in ["", "h", "1y", "yesterday", "2026-11-01"] {
            let err = when_at(bad, now).unwrap_err();
            assert!(err.contains("RFC 3339"), "{bad:?}: {err}");
        }
    }
}
