//! PostgreSQL access for Hookline: the schema, one free async function per query, the
//! connection pool and the embedded migrations.
//!
//! This is the only crate that names tables. Every query function takes
//! `&mut AsyncPgConnection`; the caller owns the transaction. Each function's doc line
//! states its locking or idempotency contract, because those contracts are what make
//! "exactly one stored event" and "exactly one effect" true under concurrency.

// Unit tests see the dev-dependencies too, which only the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod admin;
mod audit;
mod ceiling;
mod checks;
mod columns;
mod deliveries;
mod error;
mod events;
mod models;
mod ops;
mod pool;
mod prepared;
mod processing;
mod retention;
pub mod schema;
mod tls;

pub use admin::{
    EventFilter, ResourceView, TransitionView, find_event, find_events, find_resource, force_status,
};
pub use audit::{KeyAudit, key_audit};
pub use ceiling::{create_ceiling_table, insert_ceiling_rows};
pub use checks::{
    DeliveryFigures, IntegrityFigures, delivery_figures, integrity_figures, lock_events_table,
    processed_event_ids, release_events_table,
};
pub use deliveries::{
    ClaimedDelivery, DeliveryFilter, DeliveryPayload, DeliveryResult, DeliveryView, LeaseSlot,
    LeasedDelivery, NewDelivery, claim_deliveries, count_redrivable, enqueue_deliveries,
    event_deliveries, expand_expired_leases, leased_deliveries, list_deliveries, pause_destination,
    paused_destinations, pending_deliveries, redrive_deliveries, resume_destination,
    settle_deliveries,
};
pub use diesel_async::AsyncPgConnection;
pub use error::{DbError, is_retryable};
pub use events::{
    InsertResult, NewEvent, OutboxClaim, OutboxEntry, claim_outbox, count_outbox, insert_events,
    mark_published, outbox_key,
};
pub use models::{Event, EventHead};
pub use ops::{
    EventSelection, KeyPrefixFigures, ReplayTarget, SourceStats, count_selected,
    key_prefix_delivery_figures, key_prefix_figures, reset_for_replay, select_for_replay,
    source_stats,
};
pub use pool::{
    MAX_CONNECTION_AGE, POOLED_SESSION, Pool, PooledConnection, connect, create_pool, ping,
    run_migrations, run_migrations_until,
};
pub use processing::{
    EventPayload, ResourceUpdate, TransitionRow, event_payloads, finish_events, lock_events,
    lock_resources, record_attempt_failure, record_transitions,
};
pub use retention::{
    AHEAD_DAYS, DAY, EVENT_TABLES, EventTable, MAINTENANCE_LOCK_KEY, MIN_BATCH, MaintenanceOptions,
    MaintenanceReport, RetentionStatus, SWITCH_LOCK_TIMEOUT, TableStatus, retention_status,
    run_maintenance, switch_dedup_generation, uuid_floor,
};
