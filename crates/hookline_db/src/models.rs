use diesel::prelude::*;
use hookline_domain::EventState;
use time::OffsetDateTime;
use uuid::Uuid;

use diesel::sql_types::{Bool, Bytea, Jsonb, Text};

use crate::columns::{
    PayloadColumn, ReportedState, StateColumn, payload, payload_pruned, reported_state,
};
use crate::schema::events;

/// A stored event, everything included (admin API, CLI, replay).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct Event {
    /// Hookline's id for the event (UUIDv7, so ids sort by arrival).
    pub id: Uuid,
    /// The source name.
    pub source: String,
    /// The rendered deduplication key.
    pub dedup_key: String,
    /// The rendered resource key, if the source has one.
    pub resource_key: Option<String>,
    /// The status the event reports, if the source has a status template.
    pub status: Option<String>,
    /// Where it is in the pipeline, as reported: `received` while it waits in the outbox,
    /// `published` once the broker confirmed it.
    #[diesel(select_expression = reported_state(), select_expression_type = ReportedState)]
    #[diesel(deserialize_as = StateColumn)]
    pub state: EventState,
    /// Request headers as stored (see the migration for the shape); `[]` once pruned.
    #[diesel(select_expression = payload("headers", "'[]'::jsonb"), select_expression_type = PayloadColumn<Jsonb>)]
    pub headers: serde_json::Value,
    /// The raw query string; empty once pruned.
    #[diesel(select_expression = payload("query", "''"), select_expression_type = PayloadColumn<Text>)]
    pub query: String,
    /// The raw body bytes; empty once pruned.
    #[diesel(select_expression = payload("body", "''::bytea"), select_expression_type = PayloadColumn<Bytea>)]
    pub body: Vec<u8>,
    /// True once retention pruned the payload (`retention.payload`): body, headers and
    /// query are gone, keys, state and result stay.
    #[diesel(select_expression = payload_pruned(), select_expression_type = PayloadColumn<Bool>)]
    pub payload_pruned: bool,
    /// W3C trace context of the ingest request.
    pub traceparent: Option<String>,
    /// Processing attempts that failed transiently.
    pub attempts: i32,
    /// The last processing error, if any.
    pub last_error: Option<String>,
    /// When ingest committed it.
    pub received_at: OffsetDateTime,
    /// When a worker finished with it.
    pub processed_at: Option<OffsetDateTime>,
}

/// The columns a worker needs to process an event (no body, no headers).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
#[diesel(check_for_backend(diesel::pg::Pg))]
pub struct EventHead {
    /// Event id.
    pub id: Uuid,
    /// Source name.
    pub source: String,
    /// Resource key, if any.
    pub resource_key: Option<String>,
    /// Reported status, if any.
    pub status: Option<String>,
    /// Current state as stored (`received` covers `published`: a worker only asks
    /// whether the event is final).
    #[diesel(deserialize_as = StateColumn)]
    pub state: EventState,
    /// Failed attempts so far.
    pub attempts: i32,
    /// When ingest committed it.
    pub received_at: OffsetDateTime,
}
