//! Writing events into the outbox, inside the caller's transaction.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use mkt_contracts::Event;
use uuid::Uuid;

pub use crate::schema::{inbox_messages, outbox_messages};

/// An encoded event, ready for the outbox. Services build it from a typed message with
/// [`OutgoingEvent::of`] (or let [`enqueue`] do it); only the bus's own tests and tools
/// that replay stored messages use [`OutgoingEvent::raw`].
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    routing_key: &'static str,
    tenant_id: String,
    aggregate_id: String,
    payload: Vec<u8>,
}

impl OutgoingEvent {
    /// Encodes `event` with the routing key, tenant and aggregate its contract gives it.
    pub fn of<E: Event>(event: &E) -> Self {
        Self {
            routing_key: E::ROUTING_KEY,
            tenant_id: event.tenant_id().to_owned(),
            aggregate_id: event.aggregate_id(),
            payload: event.encode_to_vec(),
        }
    }

    /// An event from its parts, bypassing the contracts (bus tests, replay tools).
    pub fn raw(
        routing_key: &'static str,
        tenant_id: impl Into<String>,
        aggregate_id: impl Into<String>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            routing_key,
            tenant_id: tenant_id.into(),
            aggregate_id: aggregate_id.into(),
            payload,
        }
    }

    /// `<aggregate>.<event>.v<N>`.
    pub fn routing_key(&self) -> &'static str {
        self.routing_key
    }
}

#[derive(Insertable)]
#[diesel(table_name = outbox_messages)]
struct NewOutboxRow<'a> {
    message_id: Uuid,
    tenant_id: &'a str,
    aggregate_id: &'a str,
    routing_key: &'a str,
    payload: &'a [u8],
    headers: serde_json::Value,
}

/// Adds `event` to the outbox on `conn`, which should be inside the transaction that
/// makes the change the event describes. Returns the message id consumers dedupe on.
///
/// The current span's trace context is stored with it, so the publish and every
/// consumer join the trace of the request that caused it.
pub async fn enqueue<E: Event>(conn: &mut AsyncPgConnection, event: &E) -> QueryResult<Uuid> {
    enqueue_encoded(conn, &OutgoingEvent::of(event)).await
}

/// [`enqueue`] for an already encoded event.
pub async fn enqueue_encoded(
    conn: &mut AsyncPgConnection,
    event: &OutgoingEvent,
) -> QueryResult<Uuid> {
    let message_id = Uuid::now_v7();
    let headers: HashMap<String, String> = mkt_telemetry::current_context_headers();
    diesel::insert_into(outbox_messages::table)
        .values(NewOutboxRow {
            message_id,
            tenant_id: &event.tenant_id,
            aggregate_id: &event.aggregate_id,
            routing_key: event.routing_key,
            payload: &event.payload,
            headers: serde_json::to_value(headers).unwrap_or_default(),
        })
        .execute(conn)
        .await?;
    Ok(message_id)
}

/// Adds several encoded events (of any types) in one statement per 10,000, in order (bulk
/// paths: imports, batches, a processing run's scores and alerts).
pub async fn enqueue_many(
    conn: &mut AsyncPgConnection,
    events: &[OutgoingEvent],
) -> QueryResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let headers =
        serde_json::to_value(mkt_telemetry::current_context_headers()).unwrap_or_default();
    let rows: Vec<NewOutboxRow<'_>> = events
        .iter()
        .map(|event| NewOutboxRow {
            message_id: Uuid::now_v7(),
            tenant_id: &event.tenant_id,
            aggregate_id: &event.aggregate_id,
            routing_key: event.routing_key,
            payload: &event.payload,
            headers: headers.clone(),
        })
        .collect();
    // Postgres allows 65535 bind parameters per statement; six per row.
    for chunk in rows.chunks(10_000) {
        diesel::insert_into(outbox_messages::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Number of outbox rows not yet published (for readiness details and tests).
pub async fn pending_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox_messages::table
        .filter(outbox_messages::published_at.is_null())
        .count()
        .get_result(conn)
        .await
}
