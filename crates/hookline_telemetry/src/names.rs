//! Metric names shared by producers, tests and dashboards.

/// Counter, labels `source`, `outcome` (accepted, duplicate, invalid_signature,
/// bad_payload, unknown_source, payload_too_large, unsupported_encoding, request_timeout,
/// headers_too_large, unavailable, deadline: not committed within `http.request_timeout`,
/// shed: over `http.max_in_flight`).
pub const INGEST_REQUESTS: &str = "hookline_ingest_requests_total";
/// Histogram of request handling time, label `outcome`.
pub const INGEST_LATENCY: &str = "hookline_ingest_request_duration_seconds";
/// Counter of duplicates answered from the cache of committed keys (no database trip).
pub const INGEST_DEDUP_CACHE_HITS: &str = "hookline_ingest_dedup_cache_hits_total";
/// Histogram of rows per group-commit batch.
pub const INGEST_BATCH_SIZE: &str = "hookline_ingest_batch_rows";
/// Counter of broker confirms, label `result` (ack, error).
pub const PUBLISH_CONFIRMS: &str = "hookline_publish_confirms_total";
/// Gauge of events committed but not yet confirmed, as last seen by the relay.
pub const OUTBOX_BACKLOG: &str = "hookline_outbox_backlog";
/// Counter of events the relay republished.
pub const OUTBOX_REPUBLISHED: &str = "hookline_outbox_republished_total";
/// Counter, labels `source`, `outcome` (processed, redelivered, failed, retried, dead, missing).
pub const WORKER_EVENTS: &str = "hookline_worker_events_total";
/// Counter, labels `source`, `outcome` (applied, unchanged, rejected_downgrade, ...).
pub const WORKER_TRANSITIONS: &str = "hookline_worker_transitions_total";
/// Counter of scheduled retries, label `source`.
pub const WORKER_RETRIES: &str = "hookline_worker_retries_total";
/// Counter of dead-lettered events, label `source`.
pub const WORKER_DEAD: &str = "hookline_worker_dead_lettered_total";
/// Histogram of received -> processed latency, label `source`.
pub const WORKER_LAG: &str = "hookline_worker_processing_lag_seconds";
/// Counter: HTTP delivery attempts, by `destination` and `result`
/// (`delivered|retry|failed|dead`).
pub const DELIVERY_ATTEMPTS: &str = "hookline_deliveries_attempts_total";
/// Histogram: one delivery attempt's duration (request to response), by `destination`.
pub const DELIVERY_LATENCY: &str = "hookline_deliveries_attempt_duration_seconds";
/// Histogram: ingest commit to the destination's 2xx, by `destination`.
pub const DELIVERY_LAG: &str = "hookline_deliveries_lag_seconds";
/// Gauge: a destination's circuit, by `destination`: 0 closed, 1 half-open, 2 open, 3 paused (410).
pub const DELIVERY_CIRCUIT: &str = "hookline_deliveries_circuit_state";
/// Gauge: pending deliveries (due or waiting for a retry), by `destination`.
pub const DELIVERY_PENDING: &str = "hookline_deliveries_pending";
/// Counter: committed deliveries the step could not hand to their destination's loop in
/// this process (it held its maximum), by `destination`; each is sent once its lease
/// runs out instead.
pub const DELIVERY_HANDOFFS_SKIPPED: &str = "hookline_deliveries_handoffs_skipped_total";
/// Gauge, label `table`: live rows of a retention-managed table (PostgreSQL's estimate),
/// as of the last maintenance pass.
pub const RETENTION_TABLE_ROWS: &str = "hookline_retention_table_rows";
/// Gauge, label `table`: bytes on disk of a table, indexes and TOAST included.
pub const RETENTION_TABLE_BYTES: &str = "hookline_retention_table_bytes";
/// Gauge, label `table`: attached partitions of a table.
pub const RETENTION_TABLE_PARTITIONS: &str = "hookline_retention_table_partitions";
/// Gauge: when the last maintenance pass this process ran finished (unix seconds).
pub const RETENTION_LAST_RUN: &str = "hookline_retention_last_run_timestamp_seconds";
/// Gauge: how long the last maintenance pass this process ran took.
pub const RETENTION_LAST_RUN_DURATION: &str = "hookline_retention_last_run_duration_seconds";
/// Counter, label `result` (ran, skipped: another runner held the lock, error).
pub const RETENTION_RUNS: &str = "hookline_retention_runs_total";
/// Counter, label `table`: rows deleted by batched prunes.
pub const RETENTION_PRUNED_ROWS: &str = "hookline_retention_pruned_rows_total";
/// Counter: partitions (and key generations) dropped whole.
pub const RETENTION_DROPPED_PARTITIONS: &str = "hookline_retention_dropped_partitions_total";
