//! A Refersion-style effect: one `refersion_conversions` row per sale, written in the
//! worker's decision transaction, so it commits exactly once with the event.

use diesel::sql_types::{BigInt, Text, Uuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::future::BoxFuture;
use hookline_worker::{EffectDecision, EffectEvent, Handler, HandlerError};

/// The example's own table (`migration.sql`), applied by [`migrate`].
pub const MIGRATION: &str = include_str!("migration.sql");

/// The `refersion-topic` of a sale; other topics record nothing.
pub const SALE_TOPIC: &str = "NEW_CONVERSION";

/// Creates the example's table if it is missing.
///
/// # Errors
/// The database's.
pub async fn migrate(conn: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
    conn.batch_execute(MIGRATION).await
}

/// A conversion as the webhook body carries it (the fields this handler reads).
#[derive(serde::Deserialize)]
struct Conversion {
    /// `SALE` for a sale; other types record nothing.
    #[serde(rename = "type")]
    kind: String,
    order_id: String,
    /// A decimal string, e.g. `"12.50"`.
    commission_total: String,
    currency: String,
    affiliate: Affiliate,
}

#[derive(serde::Deserialize)]
struct Affiliate {
    id: i64,
}

/// Records one conversion per sale.
pub struct Conversions;

impl Handler for Conversions {
    fn name(&self) -> &str {
        "refersion-conversions"
    }

    fn handle<'a>(
        &'a self,
        event: &'a EffectEvent,
        _decision: &'a EffectDecision,
        conn: &'a mut AsyncPgConnection,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            if event.headers.get_str("refersion-topic") != Some(SALE_TOPIC) {
                return Ok(());
            }
            let sale: Conversion = event.json()?;
            if sale.kind != "SALE" {
                return Ok(());
            }
            // The same order sent twice (a new event id) is still one conversion.
            diesel::sql_query(
                "INSERT INTO refersion_conversions (event_id, order_id, affiliate_id, commission, currency) \
                 VALUES ($1, $2, $3, $4::numeric, $5) ON CONFLICT DO NOTHING",
            )
            .bind::<Uuid, _>(event.id)
            .bind::<Text, _>(&sale.order_id)
            .bind::<BigInt, _>(sale.affiliate.id)
            .bind::<Text, _>(&sale.commission_total)
            .bind::<Text, _>(&sale.currency)
            .execute(conn)
            .await?;
            Ok(())
        })
    }
}
