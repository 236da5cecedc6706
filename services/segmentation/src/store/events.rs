//! Queries on `customer_events`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::customer_events;

/// A behaviour event as received.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = customer_events)]
pub struct TrackedEvent {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Event id (ingestion's).
    pub event_id: Uuid,
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// Type.
    pub event_type: String,
    /// The event's properties: always a JSON object (`{}` when none were sent).
    pub properties: serde_json::Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

/// Stores an event (a replay is a no-op).
pub async fn insert(conn: &mut AsyncPgConnection, event: &TrackedEvent) -> QueryResult<()> {
    diesel::insert_into(customer_events::table)
        .values(event)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a customer's events (erasure).
pub async fn delete_for(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
) -> QueryResult<()> {
    diesel::delete(
        customer_events::table
            .filter(customer_events::tenant_id.eq(tenant))
            .filter(customer_events::customer_id.eq(customer)),
    )
    .execute(conn)
    .await?;
    Ok(())
}
