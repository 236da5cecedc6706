//! Queries on `behaviour_events`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::behaviour_events;
use crate::domain::event::ValidEvent;

/// A stored behaviour event.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = behaviour_events)]
pub struct EventRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Our id.
    pub id: Uuid,
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// Type name.
    pub event_type: String,
    /// The event's properties: always a JSON object (`{}` when none were sent).
    pub properties: serde_json::Value,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When we received it.
    pub received_at: DateTime<Utc>,
}

/// Stores one event of `customer_id`.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer_id: Uuid,
    event: &ValidEvent,
) -> QueryResult<EventRow> {
    diesel::insert_into(behaviour_events::table)
        .values((
            behaviour_events::tenant_id.eq(tenant),
            behaviour_events::id.eq(Uuid::now_v7()),
            behaviour_events::customer_id.eq(customer_id),
            behaviour_events::event_type.eq(&event.event_type),
            behaviour_events::properties.eq(&event.properties),
            behaviour_events::occurred_at.eq(event.occurred_at),
        ))
        .returning(EventRow::as_returning())
        .get_result(conn)
        .await
}
