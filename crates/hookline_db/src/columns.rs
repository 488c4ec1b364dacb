//! The one mapping between the domain's typed states and their text columns.
//!
//! `events.state` holds an [`EventState`] and `transitions.outcome` an [`Outcome`]; their
//! spelling is the domain's (`as_str`), and only this module turns a column into a type or
//! back. "Published" is not stored by ingest: an event is `received` while its batch's
//! outbox row lists it and `published` once the broker confirmed the batch (the row is gone).
//! [`reported_state`] is the single place that derives it.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::dsl::sql;
use diesel::expression::AsExpression;
use diesel::expression::SqlLiteral;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use hookline_domain::{EventState, Outcome};

/// `events.state` as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct StateColumn(pub EventState);

impl From<StateColumn> for EventState {
    fn from(column: StateColumn) -> Self {
        column.0
    }
}

impl FromSql<Text, Pg> for StateColumn {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(value)?;
        Ok(StateColumn(text.parse::<EventState>()?))
    }
}

impl ToSql<Text, Pg> for StateColumn {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.0.as_str(), &mut out.reborrow())
    }
}

/// `transitions.outcome` as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = Text)]
pub struct OutcomeColumn(pub Outcome);

impl From<OutcomeColumn> for Outcome {
    fn from(column: OutcomeColumn) -> Self {
        column.0
    }
}

impl FromSql<Text, Pg> for OutcomeColumn {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(value)?;
        Outcome::parse(&text)
            .map(OutcomeColumn)
            .ok_or_else(|| format!("unknown transition outcome {text:?}").into())
    }
}

impl ToSql<Text, Pg> for OutcomeColumn {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <str as ToSql<Text, Pg>>::to_sql(self.0.as_str(), &mut out.reborrow())
    }
}

/// The SQL type of [`reported_state`].
pub type ReportedState = SqlLiteral<Text>;

/// An event's state as reported to people and filters: the stored state, except that a
/// `received` event no outbox row lists is `published` (a batch's row has its events'
/// `received_at`, so the check is one probe of `outbox_received_at`). Usable in `SELECT` and
/// `WHERE` on any query over `events`.
pub(crate) fn reported_state() -> ReportedState {
    sql::<Text>(&format!(
        "(CASE WHEN events.state = '{received}' AND NOT EXISTS \
           (SELECT 1 FROM outbox WHERE outbox.received_at = events.received_at \
                                    AND events.id = ANY(outbox.event_ids)) \
         THEN '{published}' ELSE events.state END)",
        received = EventState::Received.as_str(),
        published = EventState::Published.as_str(),
    ))
}

/// The SQL types of [`payload`] and [`payload_pruned`].
pub type PayloadColumn<ST> = SqlLiteral<ST>;

/// One column of an event's payload (`headers`, `query` or `body` of `event_payloads`),
/// or `empty` once the payload is pruned. Usable in `SELECT` on any query over `events`.
pub(crate) fn payload<ST: diesel::sql_types::SingleValue>(
    column: &str,
    empty: &str,
) -> PayloadColumn<ST> {
    sql::<ST>(&format!(
        "coalesce((SELECT p.{column} FROM event_payloads p WHERE p.id = events.id), {empty})"
    ))
}

/// Whether an event's payload (body, headers, query) was pruned by retention: its row in
/// `event_payloads` is gone while the event row stays. Usable on any query over `events`.
pub(crate) fn payload_pruned() -> PayloadColumn<diesel::sql_types::Bool> {
    sql("NOT EXISTS (SELECT 1 FROM event_payloads p WHERE p.id = events.id)")
}

/// Whether the reported state `state` differs from the stored one for some rows (only the
/// outbox-derived ones do): filters on the others can use the plain column and its index.
pub(crate) fn is_derived(state: EventState) -> bool {
    matches!(state, EventState::Received | EventState::Published)
}
