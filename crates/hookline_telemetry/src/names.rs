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
