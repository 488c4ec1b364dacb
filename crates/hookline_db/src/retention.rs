//! Data lifecycle: the maintenance pass and the status figures behind
//! `hookline retention run|status` and the retention metrics.
//!
//! Storage is divided by time (migrations/2026-12-01-000010_retention):
//! `events` and `event_payloads` in daily ranges of their UUIDv7 ids, `transitions` in
//! daily ranges of `at`, `dedup_keys` in generations. A pass, run by one runner at a time
//! (a session advisory lock):
//! 1. finishes any detach a crash interrupted;
//! 2. creates the daily partitions of the next [`AHEAD_DAYS`] days;
//! 3. makes a new dedup key generation current once the current one is as old as the
//!    longest dedup horizon (a brief ACCESS EXCLUSIVE lock on `dedup_generations`, waited
//!    for at most [`SWITCH_LOCK_TIMEOUT`]);
//! 4. drops whole partitions, and key generations, once every row in them is past the
//!    longest retention of any source (`DETACH … CONCURRENTLY`, then `DROP`: no lock that
//!    stops inserts);
//! 5. deletes, in small batches, the payloads and events of sources whose retention is
//!    under a day (finer than a partition) or shorter than the longest (which partitions
//!    follow), and the rows of the unpartitioned [`EVENT_TABLES`] (`deliveries`) whose
//!    events went. Every batch walks an index from a keyset watermark, so it costs
//!    O(batch) however many rows went before it.
//!
//! So with the defaults a payload goes between 7 and 8 days after receipt, an event (its
//! transitions and deliveries with it) between 30 and 31; values under a day are applied
//! exactly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, Text, Timestamptz};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use hookline_domain::{Retention, RetentionPolicy};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::DbError;

/// The width of one time partition.
pub const DAY: Duration = Duration::from_secs(86_400);

/// Days of partitions kept ready past today, so inserts never find none even when
/// maintenance stops for a while (and an ingest clock a little ahead is fine).
pub const AHEAD_DAYS: i64 = 3;

/// Longest wait for the lock that makes a new key generation current. Inserts queue
/// behind the waiting switch, so this bounds the stall it can cause; a switch that does
/// not get the lock is tried again later.
pub const SWITCH_LOCK_TIMEOUT: &str = "500ms";

/// Longest wait for any other lock a pass takes (partition DDL takes none that stops
/// inserts, but may wait on another DDL or a long transaction).
const LOCK_TIMEOUT: &str = "5s";

/// The session advisory lock a maintenance pass holds (arbitrary but fixed, not the
/// migration lock): one runner at a time. `pg_locks` shows its holder (`locktype =
/// 'advisory'`, `objid` its low 32 bits).
pub const MAINTENANCE_LOCK_KEY: i64 = 0x486f_6f6b_5265_746e; // "HookRetn"

/// A table partitioned in daily ranges.
struct DailyTable {
    name: &'static str,
    /// Partitioned by its UUIDv7 `id` (else by the timestamp `at`).
    by_id: bool,
    /// How long its rows are kept, of a [`Retention`].
    keep: fn(&Retention) -> Duration,
}

const DAILY: [DailyTable; 3] = [
    DailyTable {
        name: "events",
        by_id: true,
        keep: |r| r.events,
    },
    DailyTable {
        name: "event_payloads",
        by_id: true,
        keep: |r| r.payload,
    },
    DailyTable {
        name: "transitions",
        by_id: false,
        keep: |r| r.events,
    },
];

/// A table that is not partitioned and holds rows per event, kept as long as `events`.
/// Its rows go in small batches:
/// - together with their events, whatever their state, when a source's `events` retention
///   is shorter than the longest (or under a day) and its events are deleted in batches;
/// - otherwise by their timestamp, in the pass that drops the partitions of their events:
///   older than the start of the UTC day the longest `events` retention reaches back to
///   (its exact value when that is under a day, as events' own). A row that [`Self::open`]
///   says is still work to do goes only once its event is gone too (see [`EVENT_TABLES`]).
///
/// Its timestamp column must be indexed: the batches walk that index from a keyset
/// watermark.
pub struct EventTable {
    /// Table name.
    pub table: &'static str,
    /// The column holding the event's id.
    pub event_id: &'static str,
    /// The row's timestamp column (never before its event's receipt).
    pub at: &'static str,
    /// An SQL condition on the table's columns true for rows that are still work to do
    /// while their event is stored; `None`: every row goes by its timestamp.
    pub open: Option<&'static str>,
}

/// Every [`EventTable`]; a new one is one line here.
///
/// `deliveries` (one row per event and HTTP destination): a pending delivery is still work
/// to do (a retry, or a destination paused by a 410 until an operator redrives it), so the
/// by-time prune leaves it until its event is gone. With its event stored the row could
/// still be delivered, and deleting it would lose that intent silently; once the event is
/// gone the worker could only fail it ("the event's payload is no longer stored"), so the
/// row goes. Settled ones (`delivered`, `failed`, `dead`) are history and go by their
/// `created_at` with the partitions of their events.
pub const EVENT_TABLES: &[EventTable] = &[EventTable {
    table: "deliveries",
    event_id: "event_id",
    at: "created_at",
    open: Some("state = 'pending'"),
}];

/// How a maintenance pass runs.
#[derive(Debug, Clone, Copy)]
pub struct MaintenanceOptions {
    /// Only report what the pass would do.
    pub dry_run: bool,
    /// Rows per batched delete, at most (see [`Self::wal_per_batch`]).
    pub batch_size: i64,
    /// The time to prune as of (tests, what-if dry runs); `None`: the database's clock.
    pub now: Option<OffsetDateTime>,
    /// The WAL one batched delete should write, in bytes: a batch that wrote more halves
    /// the next one (down to [`MIN_BATCH`] rows), one that wrote under a quarter of it
    /// doubles the next (up to `batch_size`). Every commit waits for the WAL written
    /// before it, so a batch's WAL is a stall for the inserts that commit right after it:
    /// deleting rows scattered over old pages writes a full page image per row.
    pub wal_per_batch: u64,
    /// After each batch, a pause this many times as long as the batch took (1: the
    /// pass's deletes use half of one connection's time at most; 0: no pause), as
    /// PostgreSQL's cost-based vacuum delay does for VACUUM.
    pub pause_ratio: f64,
}

/// The smallest batch [`MaintenanceOptions::wal_per_batch`] shrinks a batch to.
pub const MIN_BATCH: i64 = 20;

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            batch_size: 1_000,
            now: None,
            wal_per_batch: 1 << 20,
            pause_ratio: 1.0,
        }
    }
}

/// Sizes and paces the batches of one batched prune ([`MaintenanceOptions::wal_per_batch`],
/// [`MaintenanceOptions::pause_ratio`]).
struct Pacer {
    options: MaintenanceOptions,
    size: i64,
    started: Instant,
    wal_from: i64,
}

impl Pacer {
    fn new(options: MaintenanceOptions) -> Self {
        Self {
            options,
            size: options.batch_size.max(1),
            started: Instant::now(),
            wal_from: 0,
        }
    }

    /// The next batch's size, as its clock and WAL position start.
    async fn start(&mut self, conn: &mut AsyncPgConnection) -> Result<i64, DbError> {
        self.started = Instant::now();
        self.wal_from = wal_position(conn).await?;
        Ok(self.size)
    }

    /// After a batch: the next one's size from the WAL this one wrote (the position is
    /// the server's, so other sessions' WAL counts too, which errs on the small side),
    /// then the pause.
    async fn done(&mut self, conn: &mut AsyncPgConnection) -> Result<(), DbError> {
        let wal = u64::try_from(wal_position(conn).await? - self.wal_from).unwrap_or(0);
        let target = self.options.wal_per_batch.max(1);
        let floor = MIN_BATCH.min(self.options.batch_size.max(1));
        if wal > target {
            self.size = (self.size / 2).max(floor);
        } else if wal < target / 4 {
            self.size = (self.size * 2).min(self.options.batch_size.max(1));
        }
        let ratio = self.options.pause_ratio;
        let ratio = if ratio.is_finite() {
            ratio.clamp(0.0, 100.0)
        } else {
            0.0
        };
        let pause = self.started.elapsed().mul_f64(ratio);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }
}

/// The server's current WAL insert position, in bytes.
async fn wal_position(conn: &mut AsyncPgConnection) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct Lsn {
        #[diesel(sql_type = BigInt)]
        lsn: i64,
    }
    let row: Lsn =
        sql_query("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint AS lsn")
            .get_result(conn)
            .await?;
    Ok(row.lsn)
}

/// What a maintenance pass did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MaintenanceReport {
    /// False when another runner held the maintenance lock: nothing was done.
    pub ran: bool,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Partitions created.
    pub created: Vec<String>,
    /// Partitions dropped (a key generation's included).
    pub dropped: Vec<String>,
    /// The dedup key generation made current, if one was.
    pub generation: Option<i32>,
    /// Rows deleted in batches, by table.
    pub pruned: BTreeMap<String, u64>,
    /// How long the pass took.
    pub duration_ms: u64,
}

/// Runs one maintenance pass on `conn` under the maintenance advisory lock; returns at
/// once with `ran == false` if another runner (another replica, `hookline retention
/// run`) holds it. Every step is idempotent and commits on its own, so a pass that fails
/// or is killed halfway is simply continued by the next. Run it on a connection of its
/// own, outside any transaction: the lock is the session's, and `DETACH … CONCURRENTLY`
/// cannot run in a transaction block.
///
/// # Errors
/// [`DbError`] from the step that failed (the lock is released either way).
pub async fn run_maintenance(
    conn: &mut AsyncPgConnection,
    policy: &RetentionPolicy,
    options: MaintenanceOptions,
) -> Result<MaintenanceReport, DbError> {
    let started = Instant::now();
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    let lock: Locked = sql_query("SELECT pg_try_advisory_lock($1) AS locked")
        .bind::<BigInt, _>(MAINTENANCE_LOCK_KEY)
        .get_result(conn)
        .await?;
    if !lock.locked {
        return Ok(MaintenanceReport {
            dry_run: options.dry_run,
            ..MaintenanceReport::default()
        });
    }
    conn.batch_execute(&format!("SET lock_timeout = '{LOCK_TIMEOUT}'"))
        .await?;
    // The batched deletes write a full page image for nearly every row (old pages, one
    // row each); compressed, that WAL is a third to half the size. Only a superuser may
    // set it: without, the pass runs the same, with more WAL.
    let compressed = conn
        .batch_execute("SET wal_compression = lz4")
        .await
        .is_ok()
        || conn
            .batch_execute("SET wal_compression = pglz")
            .await
            .is_ok();
    let result = pass(conn, policy, options).await;
    let reset = conn.batch_execute("RESET lock_timeout").await;
    let reset = match (reset, compressed) {
        (Ok(()), true) => conn.batch_execute("RESET wal_compression").await,
        (other, _) => other,
    };
    let unlocked = sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MAINTENANCE_LOCK_KEY)
        .execute(conn)
        .await;
    let mut report = result?;
    reset?;
    unlocked?;
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

async fn pass(
    conn: &mut AsyncPgConnection,
    policy: &RetentionPolicy,
    options: MaintenanceOptions,
) -> Result<MaintenanceReport, DbError> {
    let dry = options.dry_run;
    let now = match options.now {
        Some(now) => now,
        None => db_now(conn).await?,
    };
    let longest = policy.longest();
    let mut report = MaintenanceReport {
        ran: true,
        dry_run: dry,
        ..MaintenanceReport::default()
    };

    for (parent, name) in pending_detaches(conn).await? {
        if !dry {
            finalize_detach(conn, &parent, &name).await?;
        }
        report.dropped.push(name);
    }

    let partitions = daily_partitions(conn).await?;
    let today = midnight(now);
    for table in &DAILY {
        let mine: Vec<&Partition> = partitions
            .iter()
            .filter(|p| p.parent == table.name)
            .collect();
        for ahead in 0..=AHEAD_DAYS {
            let day = today + time::Duration::days(ahead);
            if mine.iter().any(|p| p.covers(day)) {
                continue;
            }
            let name = format!("{}_p{}", table.name, day_suffix(day));
            if !dry {
                create_daily_partition(conn, table, &name, day).await?;
            }
            report.created.push(name);
        }
    }

    let mut generations = generations(conn).await?;
    if let (Some(&(current, _)), false) = (generations.last(), dry) {
        ensure_next_generation_partition(conn, current).await?;
    }
    if let Some(&(current, started_at)) = generations.last()
        && now - started_at >= policy.generation_length()
    {
        // The old current generation ends with the switch: it may already be droppable
        // below.
        if dry {
            generations.push((current + 1, now));
            report.generation = Some(current + 1);
        } else {
            report.generation = Some(switch_dedup_generation(conn).await?);
            generations = self::generations(conn).await?;
        }
    }

    for table in &DAILY {
        let keep = (table.keep)(&longest);
        for p in partitions.iter().filter(|p| p.parent == table.name) {
            if p.upper.is_some_and(|upper| upper + keep <= now) {
                if !dry {
                    drop_partition(conn, table.name, &p.name).await?;
                }
                report.dropped.push(p.name.clone());
            }
        }
    }
    // Generation g ended when g + 1 started; every key in it was received by then.
    for pair in generations.windows(2) {
        let ((generation, _), (_, ended_at)) = (pair[0], pair[1]);
        if ended_at + longest.events <= now {
            let name = format!("dedup_keys_g{generation}");
            if !dry {
                drop_generation(conn, generation, &name).await?;
            }
            report.dropped.push(name);
        }
    }

    for (source, retention) in batched_sources(conn, policy, |r| r.events).await? {
        let cutoff = now - retention.events;
        let n = if dry {
            count_events_before(conn, &source, cutoff).await?
        } else {
            prune_events(conn, &source, cutoff, options).await?
        };
        *report.pruned.entry("events".into()).or_default() += n;
    }
    for (source, retention) in batched_sources(conn, policy, |r| r.payload).await? {
        let cutoff = now - retention.payload;
        let n = prune_payloads(conn, &source, cutoff, options).await?;
        *report.pruned.entry("event_payloads".into()).or_default() += n;
    }
    // What the partition drops above reached: every event received before the start of
    // the day `events` reaches back to is gone (or exactly `events` ago, when that is
    // under a day and every source's events go in batches).
    let event_cutoff = if longest.events < DAY {
        now - longest.events
    } else {
        midnight(now - longest.events)
    };
    for table in EVENT_TABLES {
        let n = prune_event_table(conn, table, event_cutoff, options).await?;
        *report.pruned.entry(table.table.into()).or_default() += n;
    }
    report.pruned.retain(|_, n| *n > 0);
    Ok(report)
}

/// The database's clock.
async fn db_now(conn: &mut AsyncPgConnection) -> Result<OffsetDateTime, DbError> {
    #[derive(QueryableByName)]
    struct Now {
        #[diesel(sql_type = Timestamptz)]
        now: OffsetDateTime,
    }
    let row: Now = sql_query("SELECT now() AS now").get_result(conn).await?;
    Ok(row.now)
}

/// UTC midnight at or before `at`.
fn midnight(at: OffsetDateTime) -> OffsetDateTime {
    at.to_offset(time::UtcOffset::UTC)
        .replace_time(time::Time::MIDNIGHT)
}

/// `YYYYMMDD` of a UTC day.
fn day_suffix(day: OffsetDateTime) -> String {
    let d = day.to_offset(time::UtcOffset::UTC);
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The smallest UUIDv7 of the millisecond `at`: ids at or after `at` sort at or above it.
pub fn uuid_floor(at: OffsetDateTime) -> Uuid {
    let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Uuid::from_u128(u128::from(ms & 0xffff_ffff_ffff) << 80)
}

/// A partition bound as SQL: the UUID floor of `at` for id ranges, the instant otherwise.
fn bound_literal(by_id: bool, at: OffsetDateTime) -> String {
    if by_id {
        format!("'{}'", uuid_floor(at))
    } else {
        let text = at
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        format!("'{text}'")
    }
}

/// A daily (or legacy) partition and the time range it holds (`None`: unbounded).
#[derive(Debug)]
struct Partition {
    parent: String,
    name: String,
    lower: Option<OffsetDateTime>,
    upper: Option<OffsetDateTime>,
}

impl Partition {
    fn covers(&self, day: OffsetDateTime) -> bool {
        self.lower.is_none_or(|l| l <= day) && self.upper.is_none_or(|u| u > day)
    }
}

/// Every attached partition of the daily tables with its time range: id bounds decoded
/// from their UUIDv7 timestamp, `at` bounds cast back in this session (so DateStyle and
/// TimeZone cannot garble them). Read-only, catalog only.
async fn daily_partitions(conn: &mut AsyncPgConnection) -> Result<Vec<Partition>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        parent: String,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        lower_at: Option<OffsetDateTime>,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        upper_at: Option<OffsetDateTime>,
    }
    let as_time = |column: &str| {
        format!(
            "CASE WHEN b.{column} IS NULL THEN NULL \
                  WHEN p.relname = ANY($2) THEN to_timestamp(('x' || substr(replace(b.{column}, '-', ''), 1, 12))::bit(48)::bigint / 1000.0) \
                  ELSE b.{column}::timestamptz END"
        )
    };
    let rows: Vec<Row> = sql_query(format!(
        "SELECT p.relname::text AS parent, c.relname::text AS name, {lower} AS lower_at, {upper} AS upper_at \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent, \
         LATERAL (SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']*)''\\)'))[1] AS lo, \
                         (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']*)''\\)'))[1] AS hi) b \
         WHERE p.relname = ANY($1) AND p.relnamespace = current_schema()::regnamespace \
           AND NOT i.inhdetachpending \
         ORDER BY p.relname, c.relname",
        lower = as_time("lo"),
        upper = as_time("hi"),
    ))
    .bind::<Array<Text>, _>(DAILY.iter().map(|t| t.name).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        DAILY
            .iter()
            .filter(|t| t.by_id)
            .map(|t| t.name)
            .collect::<Vec<_>>(),
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Partition {
            parent: r.parent,
            name: r.name,
            lower: r.lower_at,
            upper: r.upper_at,
        })
        .collect())
}

/// Partitions whose `DETACH … CONCURRENTLY` was interrupted, as `(parent, partition)`.
/// Read-only, catalog only.
async fn pending_detaches(conn: &mut AsyncPgConnection) -> Result<Vec<(String, String)>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        parent: String,
        #[diesel(sql_type = Text)]
        name: String,
    }
    let rows: Vec<Row> = sql_query(
        "SELECT p.relname::text AS parent, c.relname::text AS name \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
         WHERE i.inhdetachpending AND p.relnamespace = current_schema()::regnamespace",
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.parent, r.name)).collect())
}

/// Creates partition `name` of `table` for the UTC day starting at `day`: a plain table
/// first, then `ATTACH`, which takes only SHARE UPDATE EXCLUSIVE on the parent (inserts
/// go on) and builds the indexes on the empty table. Idempotent (`IF NOT EXISTS` for a
/// table a failed attempt left behind).
async fn create_daily_partition(
    conn: &mut AsyncPgConnection,
    table: &DailyTable,
    name: &str,
    day: OffsetDateTime,
) -> Result<(), DbError> {
    let from = bound_literal(table.by_id, day);
    let to = bound_literal(table.by_id, day + time::Duration::days(1));
    let parent = table.name;
    conn.transaction::<_, DbError, _>(async |conn| {
        conn.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to});"
        ))
        .await?;
        Ok(())
    })
    .await
}

/// Detaches partition `name` of `parent` without blocking inserts or reads (`DETACH …
/// CONCURRENTLY` waits for the queries that may see it instead), then drops it.
async fn drop_partition(
    conn: &mut AsyncPgConnection,
    parent: &str,
    name: &str,
) -> Result<(), DbError> {
    conn.batch_execute(&format!(
        "ALTER TABLE {parent} DETACH PARTITION {name} CONCURRENTLY"
    ))
    .await?;
    conn.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
        .await?;
    Ok(())
}

/// Completes an interrupted `DETACH … CONCURRENTLY` and drops the partition: it was
/// being detached because it had expired.
async fn finalize_detach(
    conn: &mut AsyncPgConnection,
    parent: &str,
    name: &str,
) -> Result<(), DbError> {
    conn.batch_execute(&format!(
        "ALTER TABLE {parent} DETACH PARTITION {name} FINALIZE"
    ))
    .await?;
    conn.batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
        .await?;
    Ok(())
}

/// Every dedup key generation and when it became current, oldest first. Read-only.
async fn generations(conn: &mut AsyncPgConnection) -> Result<Vec<(i32, OffsetDateTime)>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Integer)]
        generation: i32,
        #[diesel(sql_type = Timestamptz)]
        started_at: OffsetDateTime,
    }
    let rows: Vec<Row> =
        sql_query("SELECT generation, started_at FROM dedup_generations ORDER BY generation")
            .load(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.generation, r.started_at))
        .collect())
}

/// SQL that creates and attaches partition `dedup_keys_g<generation>` unless it is
/// attached already (idempotent: a retried or interrupted switch finds it in place).
fn ensure_generation_partition_sql(generation: i32) -> String {
    let name = format!("dedup_keys_g{generation}");
    format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                          WHERE i.inhparent = 'dedup_keys'::regclass AND c.relname = '{name}') THEN \
             CREATE TABLE IF NOT EXISTS {name} (LIKE dedup_keys INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             ALTER TABLE dedup_keys ATTACH PARTITION {name} FOR VALUES FROM ({generation}) TO ({next}); \
           END IF; \
         END $$",
        next = generation + 1
    )
}

/// Makes a new dedup key generation current and returns its number. In one transaction
/// holding `dedup_generations` in ACCESS EXCLUSIVE mode: the new generation's partition
/// is made sure of (it was created a generation ahead, so normally nothing happens), and
/// its row is added. Every insert holds that table in ACCESS SHARE mode from before its
/// snapshot to its commit ([`crate::insert_events`]), so the lock waits for the inserts
/// under way, and the ones after it all see the new generation, its partition, and every
/// key of the old one. The wait is at most [`SWITCH_LOCK_TIMEOUT`] (inserts queue behind
/// it meanwhile), tried three times. Afterwards the partition of the generation after
/// it is created, ready for the next switch.
///
/// # Errors
/// [`DbError`], retryable when the lock could not be had.
pub async fn switch_dedup_generation(conn: &mut AsyncPgConnection) -> Result<i32, DbError> {
    let current = generations(conn)
        .await?
        .last()
        .map_or(0, |(generation, _)| *generation);
    let next = current + 1;
    let mut attempt = 0;
    loop {
        let switched = conn
            .transaction::<_, DbError, _>(async |conn| {
                conn.batch_execute(&format!(
                    "SET LOCAL lock_timeout = '{SWITCH_LOCK_TIMEOUT}'; \
                     LOCK TABLE dedup_generations IN ACCESS EXCLUSIVE MODE; {}",
                    ensure_generation_partition_sql(next)
                ))
                .await?;
                // The time the switch holds from: after the lock, every key of the old
                // generation was received before it.
                sql_query(
                    "INSERT INTO dedup_generations (generation, started_at) \
                     VALUES ($1, clock_timestamp()) ON CONFLICT (generation) DO NOTHING",
                )
                .bind::<Integer, _>(next)
                .execute(conn)
                .await?;
                Ok(())
            })
            .await;
        match switched {
            Err(e) if attempt < 2 && e.is_retryable() => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
            Ok(()) => break,
        }
    }
    ensure_next_generation_partition(conn, next).await?;
    Ok(next)
}

/// Creates the partition of the generation after `current` if it is missing, so a
/// switch finds it attached long before (no lock that stops inserts: `ATTACH` takes
/// SHARE UPDATE EXCLUSIVE on `dedup_keys`).
async fn ensure_next_generation_partition(
    conn: &mut AsyncPgConnection,
    current: i32,
) -> Result<(), DbError> {
    conn.batch_execute(&ensure_generation_partition_sql(current + 1))
        .await?;
    Ok(())
}

/// Drops key generation `generation` (partition `name`), then forgets it. Called only for
/// generations whose every key is past the longest `events` retention.
async fn drop_generation(
    conn: &mut AsyncPgConnection,
    generation: i32,
    name: &str,
) -> Result<(), DbError> {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = Bool)]
        attached: bool,
    }
    let exists: Exists = sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace) AS attached",
    )
    .bind::<Text, _>(name)
    .get_result(conn)
    .await?;
    if exists.attached {
        drop_partition(conn, "dedup_keys", name).await?;
    }
    sql_query("DELETE FROM dedup_generations WHERE generation = $1")
        .bind::<Integer, _>(generation)
        .execute(conn)
        .await?;
    Ok(())
}

/// The sources whose rows, for the period `of` picks, partitions alone cannot prune in
/// time: a period under a day, or shorter than the longest any source has. With the
/// default's period: the stored sources without an override (a skip scan of the
/// `(source, received_at)` index).
async fn batched_sources(
    conn: &mut AsyncPgConnection,
    policy: &RetentionPolicy,
    of: fn(&Retention) -> Duration,
) -> Result<Vec<(String, Retention)>, DbError> {
    let longest = of(&policy.longest());
    let batched = |r: &Retention| of(r) < DAY || of(r) < longest;
    let mut sources: Vec<(String, Retention)> = policy
        .overrides
        .iter()
        .filter(|(_, r)| batched(r))
        .map(|(s, r)| (s.clone(), *r))
        .collect();
    if batched(&policy.default) {
        #[derive(QueryableByName)]
        struct Source {
            #[diesel(sql_type = Text)]
            source: String,
        }
        let stored: Vec<Source> = sql_query(
            "WITH RECURSIVE s(source) AS (\
               (SELECT source FROM events ORDER BY source LIMIT 1) \
               UNION ALL \
               SELECT (SELECT e.source FROM events e WHERE e.source > s.source ORDER BY e.source LIMIT 1) \
               FROM s WHERE s.source IS NOT NULL) \
             SELECT source FROM s WHERE source IS NOT NULL",
        )
        .load(conn)
        .await?;
        sources.extend(
            stored
                .into_iter()
                .filter(|s| !policy.overrides.contains_key(&s.source))
                .map(|s| (s.source, policy.default)),
        );
    }
    Ok(sources)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count_of(row: Count) -> u64 {
    u64::try_from(row.n).unwrap_or(0)
}

/// How many events of `source` were received before `cutoff`. Read-only.
async fn count_events_before(
    conn: &mut AsyncPgConnection,
    source: &str,
    cutoff: OffsetDateTime,
) -> Result<u64, DbError> {
    let row: Count =
        sql_query("SELECT count(*) AS n FROM events WHERE source = $1 AND received_at < $2")
            .bind::<Text, _>(source)
            .bind::<Timestamptz, _>(cutoff)
            .get_result(conn)
            .await?;
    Ok(count_of(row))
}

/// The next up to `limit` events of `source` received before `cutoff`, after `after` in
/// `(received_at, id)` order, as `(id, received_at)`. Read-only.
///
/// A keyset walk: a pass resumes each batch from where the last one stopped, so a batch
/// costs O(`limit`) however many rows earlier batches deleted (their index entries stay,
/// dead, until VACUUM; a scan from the start would walk them all again). One group commit
/// stores many rows with one `received_at`, so the time alone is no position; the
/// `(source, received_at)` index has no id, so the scan starts at the watermark's instant
/// and skips that instant's earlier ids (one group commit's worth at most).
async fn expired_events(
    conn: &mut AsyncPgConnection,
    source: &str,
    cutoff: OffsetDateTime,
    after: (OffsetDateTime, Uuid),
    limit: i64,
) -> Result<Vec<(Uuid, OffsetDateTime)>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = Timestamptz)]
        received_at: OffsetDateTime,
    }
    let rows: Vec<Row> = sql_query(
        "SELECT id, received_at FROM events \
         WHERE source = $1 AND received_at < $2 AND (received_at, id) > ($3, $4) \
         ORDER BY received_at, id LIMIT $5",
    )
    .bind::<Text, _>(source)
    .bind::<Timestamptz, _>(cutoff)
    .bind::<Timestamptz, _>(after.0)
    .bind::<diesel::sql_types::Uuid, _>(after.1)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.received_at)).collect())
}

/// Deletes the events of `source` received before `cutoff`, oldest first, in batches of
/// `limit` ([`expired_events`]), each with its payload, transitions and [`EVENT_TABLES`]
/// rows whatever their state (the event is what they are kept for). Each batch's delete is
/// one statement (one short transaction: row locks on those rows only) naming its ids, so
/// every table is reached through an index and `events` and `event_payloads` through
/// the one or two partitions holding them, and `transitions` through those from the
/// batch's oldest receipt on (a transition is never older than its event). Returns how
/// many events went.
///
/// A pass starts from the oldest event: the first batch walks what the previous pass
/// deleted and VACUUM has not cleaned yet (one pass's worth at most), the others only
/// their own rows.
async fn prune_events(
    conn: &mut AsyncPgConnection,
    source: &str,
    cutoff: OffsetDateTime,
    options: MaintenanceOptions,
) -> Result<u64, DbError> {
    let extra: String = EVENT_TABLES
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                ", extra{i} AS (DELETE FROM {} WHERE {} = ANY($1))",
                t.table, t.event_id
            )
        })
        .collect();
    let statement = format!(
        "WITH gone AS (DELETE FROM events WHERE id = ANY($1) RETURNING 1), \
         payloads AS (DELETE FROM event_payloads WHERE id = ANY($1)), \
         transitions AS (DELETE FROM transitions WHERE event_id = ANY($1) AND at >= $2){extra} \
         SELECT count(*) AS n FROM gone"
    );
    let mut after = (OffsetDateTime::UNIX_EPOCH, Uuid::nil());
    let mut total = 0;
    let mut pacer = Pacer::new(options);
    loop {
        let limit = pacer.start(conn).await?;
        let batch = expired_events(conn, source, cutoff, after, limit).await?;
        let (Some(&(_, oldest)), Some(&last)) = (batch.as_slice().first(), batch.as_slice().last())
        else {
            return Ok(total);
        };
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let row: Count = sql_query(&statement)
            .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
            .bind::<Timestamptz, _>(oldest)
            .get_result(conn)
            .await?;
        total += count_of(row);
        if i64::try_from(batch.len()).unwrap_or(i64::MAX) < limit {
            return Ok(total);
        }
        after = (last.1, last.0);
        pacer.done(conn).await?;
    }
}

/// Deletes, in batches of `options.batch_size`, the payloads of `source`'s events
/// received before `cutoff`, from where the last pass got to (`retention_progress`), so
/// no event is looked at twice; then records `cutoff` as done. The events come from the
/// keyset walk of [`expired_events`], each batch's delete names its ids (an index probe in
/// the one or two partitions holding them). Returns how many went (in a dry run: how many
/// would).
async fn prune_payloads(
    conn: &mut AsyncPgConnection,
    source: &str,
    cutoff: OffsetDateTime,
    options: MaintenanceOptions,
) -> Result<u64, DbError> {
    #[derive(QueryableByName)]
    struct Progress {
        #[diesel(sql_type = Timestamptz)]
        payload_pruned_before: OffsetDateTime,
    }
    let done: Option<Progress> =
        sql_query("SELECT payload_pruned_before FROM retention_progress WHERE source = $1")
            .bind::<Text, _>(source)
            .get_result(conn)
            .await
            .map(Some)
            .or_else(|e| match e {
                diesel::result::Error::NotFound => Ok(None),
                e => Err(e),
            })?;
    let from = done.map_or(OffsetDateTime::UNIX_EPOCH, |p| p.payload_pruned_before);
    if from >= cutoff {
        return Ok(0);
    }
    if options.dry_run {
        let row: Count = sql_query(
            "SELECT count(*) AS n FROM events e WHERE e.source = $1 AND e.received_at >= $2 \
             AND e.received_at < $3 AND EXISTS (SELECT 1 FROM event_payloads p WHERE p.id = e.id)",
        )
        .bind::<Text, _>(source)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(cutoff)
        .get_result(conn)
        .await?;
        return Ok(count_of(row));
    }
    let mut after = (from, Uuid::nil());
    let mut total = 0;
    let mut pacer = Pacer::new(options);
    loop {
        let limit = pacer.start(conn).await?;
        let batch = expired_events(conn, source, cutoff, after, limit).await?;
        let Some(&last) = batch.iter().next_back() else {
            break;
        };
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let row: Count = sql_query(
            "WITH gone AS (DELETE FROM event_payloads WHERE id = ANY($1) RETURNING 1) \
             SELECT count(*) AS n FROM gone",
        )
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .get_result(conn)
        .await?;
        total += count_of(row);
        if i64::try_from(batch.len()).unwrap_or(i64::MAX) < limit {
            break;
        }
        after = (last.1, last.0);
        pacer.done(conn).await?;
    }
    sql_query(
        "INSERT INTO retention_progress (source, payload_pruned_before) VALUES ($1, $2) \
         ON CONFLICT (source) DO UPDATE SET payload_pruned_before = EXCLUDED.payload_pruned_before",
    )
    .bind::<Text, _>(source)
    .bind::<Timestamptz, _>(cutoff)
    .execute(conn)
    .await?;
    Ok(total)
}

/// The SQL condition (on `x`, a row of `table`) for a row older than the cutoff that may
/// go: any, but for a row still open ([`EventTable::open`]), only once its event is gone.
/// A correlated probe of `events`' primary key, evaluated for open rows only (an `OR`
/// keeps it a subplan; at run time it reaches the one partition the id falls in).
fn event_table_prunable(table: &EventTable) -> String {
    match table.open {
        Some(open) => format!(
            " AND (({open}) IS NOT TRUE OR NOT EXISTS (SELECT 1 FROM events e WHERE e.id = x.{}))",
            table.event_id
        ),
        None => String::new(),
    }
}

/// Deletes, in batches, the rows of an [`EventTable`] older than `cutoff` that may go
/// ([`event_table_prunable`]). A keyset walk along its timestamp index over
/// `(timestamp, ctid)` (the table's only generic tiebreak; a row an update moved is seen
/// again later or by the next pass), so a batch costs O(`batch_size`) however many rows
/// went before it, and rows kept (open ones whose event is stored) are stepped over, not
/// read again by every batch. Each batch's delete names its rows by ctid (a TID scan) and
/// checks the condition again on the row it locks. Returns how many went (in a dry run:
/// how many would).
async fn prune_event_table(
    conn: &mut AsyncPgConnection,
    table: &EventTable,
    cutoff: OffsetDateTime,
    options: MaintenanceOptions,
) -> Result<u64, DbError> {
    let (name, at) = (table.table, table.at);
    let prunable = event_table_prunable(table);
    if options.dry_run {
        let row: Count = sql_query(format!(
            "SELECT count(*) AS n FROM {name} x WHERE x.{at} < $1{prunable}"
        ))
        .bind::<Timestamptz, _>(cutoff)
        .get_result(conn)
        .await?;
        return Ok(count_of(row));
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        tid: String,
        #[diesel(sql_type = Timestamptz)]
        at: OffsetDateTime,
    }
    let select = format!(
        "SELECT ctid::text AS tid, {at} AS at FROM {name} \
         WHERE {at} < $1 AND ({at}, ctid) > ($2, $3::tid) ORDER BY {at}, ctid LIMIT $4"
    );
    let delete = format!(
        "WITH gone AS (DELETE FROM {name} x WHERE x.ctid = ANY($1::text[]::tid[]) \
         AND x.{at} < $2{prunable} RETURNING 1) SELECT count(*) AS n FROM gone"
    );
    let mut after = (OffsetDateTime::UNIX_EPOCH, "(0,0)".to_string());
    let mut total = 0;
    let mut pacer = Pacer::new(options);
    loop {
        let limit = pacer.start(conn).await?;
        let batch: Vec<Row> = sql_query(&select)
            .bind::<Timestamptz, _>(cutoff)
            .bind::<Timestamptz, _>(after.0)
            .bind::<Text, _>(&after.1)
            .bind::<BigInt, _>(limit)
            .load(conn)
            .await?;
        let rows: Vec<&str> = batch.iter().map(|r| r.tid.as_str()).collect();
        if rows.is_empty() {
            return Ok(total);
        }
        let row: Count = sql_query(&delete)
            .bind::<Array<Text>, _>(&rows)
            .bind::<Timestamptz, _>(cutoff)
            .get_result(conn)
            .await?;
        total += count_of(row);
        if i64::try_from(batch.len()).unwrap_or(i64::MAX) < limit {
            return Ok(total);
        }
        if let Some(last) = batch.into_iter().next_back() {
            after = (last.at, last.tid);
        }
        pacer.done(conn).await?;
    }
}

/// One table's storage, as `hookline retention status` and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableStatus {
    /// Table name.
    pub table: String,
    /// Attached partitions (0: not partitioned).
    pub partitions: i64,
    /// Rows: PostgreSQL's live-row estimate, or counted when asked for exact figures.
    pub rows: i64,
    /// Bytes on disk, indexes and TOAST included.
    pub bytes: i64,
    /// The oldest row's time (for `dedup_keys`: when its oldest generation became
    /// current); `None` when empty.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest: Option<OffsetDateTime>,
}

/// Every retention-managed table's storage, and the current key generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionStatus {
    /// `events`, `event_payloads`, `dedup_keys`, `transitions`, `outbox`, then the
    /// [`EVENT_TABLES`].
    pub tables: Vec<TableStatus>,
    /// The current dedup key generation.
    pub generation: i32,
    /// When it became current.
    #[serde(with = "time::serde::rfc3339")]
    pub generation_started_at: OffsetDateTime,
}

/// Per table: partitions, rows, bytes and the oldest row. Read-only, no locks: catalog
/// and statistics, plus one index probe per table for the oldest row; with `exact`, a
/// `count(*)` per table too (a full scan: slow on large tables).
///
/// # Errors
/// [`DbError`].
pub async fn retention_status(
    conn: &mut AsyncPgConnection,
    exact: bool,
) -> Result<RetentionStatus, DbError> {
    #[derive(QueryableByName)]
    struct Size {
        #[diesel(sql_type = Text)]
        table: String,
        #[diesel(sql_type = BigInt)]
        partitions: i64,
        #[diesel(sql_type = BigInt)]
        rows: i64,
        #[diesel(sql_type = BigInt)]
        bytes: i64,
    }
    let mut names = vec![
        "events",
        "event_payloads",
        "dedup_keys",
        "transitions",
        "outbox",
    ];
    names.extend(EVENT_TABLES.iter().map(|t| t.table));
    let sizes: Vec<Size> = sql_query(
        "SELECT t.name AS table, \
           count(c.oid) FILTER (WHERE c.oid <> p.oid)::bigint AS partitions, \
           coalesce(sum(s.n_live_tup), 0)::bigint AS rows, \
           coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS bytes \
         FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n) \
         JOIN pg_class p ON p.relname = t.name AND p.relnamespace = current_schema()::regnamespace \
         JOIN pg_class c ON c.oid = p.oid AND p.relkind <> 'p' \
              OR c.oid IN (SELECT relid FROM pg_partition_tree(p.oid) WHERE isleaf) \
         LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
         GROUP BY t.name, t.n ORDER BY t.n",
    )
    .bind::<Array<Text>, _>(&names)
    .load(conn)
    .await?;

    #[derive(QueryableByName)]
    struct Oldest {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        at: Option<OffsetDateTime>,
    }
    let mut tables = Vec::with_capacity(sizes.len());
    for size in sizes {
        // Each along an index: ids are UUIDv7 (time order), transition ids a sequence.
        let oldest_sql = match size.table.as_str() {
            "events" => "SELECT (SELECT received_at FROM events ORDER BY id LIMIT 1) AS at".to_string(),
            "event_payloads" => "SELECT (SELECT to_timestamp(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0) \
                                 FROM event_payloads ORDER BY id LIMIT 1) AS at".to_string(),
            "dedup_keys" => "SELECT (SELECT started_at FROM dedup_generations ORDER BY generation LIMIT 1) AS at".to_string(),
            "transitions" => "SELECT (SELECT at FROM transitions ORDER BY id LIMIT 1) AS at".to_string(),
            "outbox" => "SELECT min(received_at) AS at FROM outbox".to_string(),
            other => match EVENT_TABLES.iter().find(|t| t.table == other) {
                Some(t) => format!("SELECT min({}) AS at FROM {}", t.at, t.table),
                None => continue,
            },
        };
        let oldest: Oldest = sql_query(oldest_sql).get_result(conn).await?;
        let rows = if exact {
            let row: Count = sql_query(format!("SELECT count(*) AS n FROM {}", size.table))
                .get_result(conn)
                .await?;
            row.n
        } else {
            size.rows
        };
        tables.push(TableStatus {
            table: size.table,
            partitions: size.partitions,
            rows,
            bytes: size.bytes,
            oldest: if rows == 0 && exact { None } else { oldest.at },
        });
    }
    let generations = generations(conn).await?;
    let (generation, generation_started_at) = generations.last().copied().ok_or_else(|| {
        DbError::Migration("dedup_generations is empty: migrations missing?".into())
    })?;
    Ok(RetentionStatus {
        tables,
        generation,
        generation_started_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn uuid_floors_sort_below_every_id_of_their_millisecond_and_above_earlier_ones() {
        let at = datetime!(2026-12-02 00:00 UTC);
        let floor = uuid_floor(at);
        assert_eq!(floor.to_string(), "01a2340d-0c00-0000-0000-000000000000");
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, 1_796_169_600, 0);
        assert!(Uuid::new_v7(ts) >= floor);
        let earlier = uuid::Timestamp::from_unix(uuid::NoContext, 1_796_169_599, 999_000_000);
        assert!(Uuid::new_v7(earlier) < floor);
    }

    #[test]
    fn days_are_utc_and_named_by_their_date() {
        let at = datetime!(2026-12-01 23:30 -02:00);
        let day = midnight(at);
        assert_eq!(day, datetime!(2026-12-02 00:00 UTC));
        assert_eq!(day_suffix(day), "20261202");
        assert_eq!(bound_literal(false, day), "'2026-12-02T00:00:00Z'");
    }
}
