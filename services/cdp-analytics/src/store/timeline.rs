//! Queries on `timeline_events`: tracked behaviour and message delivery events.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::timeline_events;

/// One entry of a customer's timeline.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = timeline_events)]
pub struct TimelineRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Unique per event (the producer's event id): a redelivery is a no-op.
    pub event_id: String,
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// `page_view`, `add_to_cart`... or `email_opened`, `sms_delivered`...
    pub kind: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// What the timeline shows about it.
    pub details: serde_json::Value,
}

/// Records an event once.
pub async fn insert(conn: &mut AsyncPgConnection, row: &TimelineRow) -> QueryResult<()> {
    diesel::insert_into(timeline_events::table)
        .values(row)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// A customer's latest events, newest first.
pub async fn latest(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
    limit: i64,
) -> QueryResult<Vec<TimelineRow>> {
    timeline_events::table
        .filter(timeline_events::tenant_id.eq(tenant))
        .filter(timeline_events::customer_id.eq(customer))
        .order(timeline_events::occurred_at.desc())
        .limit(limit)
        .select(TimelineRow::as_select())
        .load(conn)
        .await
}

/// Forgets an erased customer's events.
pub async fn delete_for(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
) -> QueryResult<()> {
    diesel::delete(
        timeline_events::table
            .filter(timeline_events::tenant_id.eq(tenant))
            .filter(timeline_events::customer_id.eq(customer)),
    )
    .execute(conn)
    .await?;
    Ok(())
}
