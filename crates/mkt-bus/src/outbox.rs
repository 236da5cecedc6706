//! Writing events into the outbox, inside the caller's transaction.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub use crate::schema::{inbox_messages, outbox_messages};

/// An event to publish.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    /// `<aggregate>.<event>.v<N>`, a constant from `mkt-contracts`.
    pub routing_key: &'static str,
    /// The tenant the event belongs to (also sent as an AMQP header).
    pub tenant_id: String,
    /// The aggregate (a customer id, an order id...): ordering is kept per aggregate.
    pub aggregate_id: String,
    /// The encoded protobuf message.
    pub payload: Vec<u8>,
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
pub async fn enqueue(conn: &mut AsyncPgConnection, event: &OutgoingEvent) -> QueryResult<Uuid> {
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

/// Adds several events in one statement (bulk paths: imports, batches), in order.
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
