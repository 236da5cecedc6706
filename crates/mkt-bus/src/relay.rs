//! The outbox relay: publishes committed outbox rows in order, with confirms.
//!
//! Ordering: rows are published in `id` order on one channel and marked published once
//! confirmed as routed. A row the broker cannot route (no queue bound for its routing
//! key yet) is parked with backoff rather than stalling the outbox; rows of the same
//! aggregate and routing key queue behind it, so per-aggregate order holds while other
//! aggregates and event types keep flowing. Repeats after a failure are deduplicated by
//! consumers on the message id. One relay per schema
//! holds a session advisory lock on a connection detached from the pool; a crashed
//! relay's connection closes, which frees the lock for a replica.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use mkt_db::Pool;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use crate::outbox::outbox_messages;
use crate::{BusConfig, BusError, backoff, topology};

/// The header carrying the tenant id on every message.
pub const TENANT_HEADER: &str = "x-tenant-id";
/// The header carrying the aggregate id on every message.
pub const AGGREGATE_HEADER: &str = "x-aggregate-id";
/// Content type of every payload.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

#[derive(Queryable)]
struct PendingRow {
    id: i64,
    message_id: Uuid,
    tenant_id: String,
    aggregate_id: String,
    routing_key: String,
    payload: Vec<u8>,
    headers: serde_json::Value,
    created_at: chrono::DateTime<chrono::Utc>,
    attempts: i32,
}

/// Wakes the relay right after a commit that wrote outbox rows, so events go out
/// without waiting for the poll interval.
#[derive(Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Call after committing a transaction that enqueued events.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Everything a relay needs.
pub struct Relay {
    /// The service's pool (its schema's outbox).
    pub pool: Pool,
    /// Broker settings.
    pub config: BusConfig,
    /// The schema, which names the leader lock.
    pub schema: String,
    /// Connection name shown by the broker.
    pub name: String,
    /// Wake-ups from local commits.
    pub waker: RelayWaker,
}

impl Relay {
    /// Runs until the task is dropped or aborted; never returns an error: every
    /// failure is logged and retried with backoff.
    pub async fn run(self) {
        let mut failures = 0u32;
        loop {
            match self.lead().await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "outbox relay interrupted; retrying");
                    tokio::time::sleep(backoff(failures, 100, 10_000)).await;
                }
            }
        }
    }

    /// Takes leadership, connects, and publishes until something fails.
    async fn lead(&self) -> Result<(), BusError> {
        let pooled = self
            .pool
            .get()
            .await
            .map_err(|e| BusError::Pool(e.to_string()))?;
        // Detached: when this relay dies, the connection (and the lock) die with it
        // instead of returning to the pool still holding the lock.
        let mut lock_conn = mkt_db::diesel_async::pooled_connection::deadpool::Object::take(pooled);
        let lock_key = format!("mkt-outbox-relay:{}", self.schema);
        loop {
            let acquired: bool = diesel::select(pg_try_advisory_lock(hashtext(&lock_key)))
                .get_result(&mut lock_conn)
                .await?;
            if acquired {
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        tracing::info!(schema = %self.schema, "outbox relay is the leader");

        let connection = crate::connect(&self.config, &self.name).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        topology::declare_exchanges(&channel, &self.config).await?;

        let poll = Duration::from_millis(self.config.poll_interval_ms);
        // Routing keys with no queue bound: every message of such a key would bounce, so
        // the key waits as a whole (cheap, and keeps every aggregate's order).
        let mut parked_keys: HashMap<String, ParkedKey> = HashMap::new();
        let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            // Leadership is only as good as the lock's connection.
            diesel::sql_query("SELECT 1")
                .execute(&mut lock_conn)
                .await?;
            let mut conn = self
                .pool
                .get()
                .await
                .map_err(|e| BusError::Pool(e.to_string()))?;
            parked_keys
                .retain(|_, parked| parked.until > std::time::Instant::now() || parked.keep());
            let published = self
                .publish_batch(&mut conn, &channel, &mut parked_keys)
                .await?;
            if last_prune.elapsed() > Duration::from_secs(600) {
                self.prune(&mut conn).await?;
                last_prune = std::time::Instant::now();
            }
            drop(conn);
            match published {
                // Nothing left that is due (parked rows wait for their time): sleep until
                // a local commit wakes us or the poll interval passes.
                BatchOutcome::Drained | BatchOutcome::Stopped => {
                    let _ = tokio::time::timeout(poll, self.waker.0.notified()).await;
                }
                BatchOutcome::More => {}
            }
        }
    }

    async fn publish_batch(
        &self,
        conn: &mut AsyncPgConnection,
        channel: &Channel,
        parked_keys: &mut HashMap<String, ParkedKey>,
    ) -> Result<BatchOutcome, BusError> {
        let now = std::time::Instant::now();
        let waiting: Vec<String> = parked_keys
            .iter()
            .filter(|(_, p)| p.until > now)
            .map(|(k, _)| k.clone())
            .collect();
        // Due rows in commit order, skipping any row queued behind a parked row of the
        // same aggregate and routing key (that row goes first when it is due again).
        // Rows parked by a nack are rare; only then does the query need the (costly)
        // "nothing of my aggregate is parked before me" filter.
        let any_parked: bool = diesel::select(diesel::dsl::exists(
            outbox_messages::table
                .filter(outbox_messages::published_at.is_null())
                .filter(outbox_messages::next_attempt_at.is_not_null()),
        ))
        .get_result(conn)
        .await?;
        let mut query = outbox_messages::table
            .filter(outbox_messages::published_at.is_null())
            .into_boxed();
        if !waiting.is_empty() {
            query = query.filter(outbox_messages::routing_key.ne_all(waiting.clone()));
        }
        if any_parked {
            query = query
                .filter(outbox_messages::next_attempt_at.is_null().or(outbox_messages::next_attempt_at.le(diesel::dsl::now)))
                .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "NOT EXISTS (SELECT 1 FROM outbox_messages parked \
                     WHERE parked.published_at IS NULL AND parked.aggregate_id = outbox_messages.aggregate_id \
                     AND parked.routing_key = outbox_messages.routing_key AND parked.id < outbox_messages.id \
                     AND parked.next_attempt_at > now())",
                ));
        }
        let rows: Vec<PendingRow> = query
            .order(outbox_messages::id.asc())
            .limit(self.config.relay_batch)
            .select((
                outbox_messages::id,
                outbox_messages::message_id,
                outbox_messages::tenant_id,
                outbox_messages::aggregate_id,
                outbox_messages::routing_key,
                outbox_messages::payload,
                outbox_messages::headers,
                outbox_messages::created_at,
                outbox_messages::attempts,
            ))
            .load(conn)
            .await?;
        if rows.is_empty() {
            return Ok(BatchOutcome::Drained);
        }
        let full = rows.len() as i64 == self.config.relay_batch;

        // Publish the whole batch pipelined, then read the confirms in order. A channel
        // error leaves every row unmarked: they are re-sent and consumers dedupe.
        let mut pending = Vec::with_capacity(rows.len());
        for row in &rows {
            let span = tracing::info_span!("amqp.publish", routing_key = %row.routing_key, message_id = %row.message_id);
            let stored: HashMap<String, String> =
                serde_json::from_value(row.headers.clone()).unwrap_or_default();
            crate::consumer::set_parent(&span, &stored);
            let confirm = async {
                let properties = properties_for(row, &mkt_telemetry::current_context_headers());
                channel
                    .basic_publish(
                        self.config.exchange.as_str().into(),
                        row.routing_key.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &row.payload,
                        properties,
                    )
                    .await
            }
            .instrument(span)
            .await?;
            pending.push(confirm);
        }

        let mut published = Vec::with_capacity(rows.len());
        let mut parked: Vec<(&PendingRow, String)> = Vec::new();
        let mut blocked: HashSet<(&str, &str)> = HashSet::new();
        let mut unroutable_keys: Vec<String> = Vec::new();
        for (row, confirm) in rows.iter().zip(pending) {
            let failure = match confirm.await {
                Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => None,
                Ok(Confirmation::Ack(Some(returned))) if returned.reply_code == NO_ROUTE => {
                    let key = row.routing_key.clone();
                    let first = !unroutable_keys.contains(&key);
                    if first {
                        unroutable_keys.push(key.clone());
                        let parked = parked_keys.entry(key).or_insert(ParkedKey {
                            attempts: 0,
                            until: now,
                        });
                        parked.attempts = parked.attempts.saturating_add(1);
                        parked.until =
                            std::time::Instant::now() + backoff(parked.attempts, 500, 60_000);
                        // Recorded on the first row only, for operators to see why.
                        diesel::update(outbox_messages::table.find(row.id))
                            .set((
                                outbox_messages::attempts.eq(outbox_messages::attempts + 1),
                                outbox_messages::last_error
                                    .eq(format!("unroutable: {}", returned.reply_text)),
                            ))
                            .execute(conn)
                            .await?;
                        tracing::warn!(routing_key = %row.routing_key, "no queue bound for this routing key; holding its events");
                    }
                    continue;
                }
                Ok(Confirmation::Ack(Some(returned))) | Ok(Confirmation::Nack(Some(returned))) => {
                    Some(format!("returned: {}", returned.reply_text))
                }
                Ok(Confirmation::Nack(None)) => Some("nacked by the broker".to_owned()),
                Err(error) => return Err(error.into()),
            };
            let key = (row.aggregate_id.as_str(), row.routing_key.as_str());
            if unroutable_keys.contains(&row.routing_key) {
                // Routed after its key bounced (a binding appeared mid-batch): re-sent
                // with the rest of the key, in order.
                continue;
            }
            match failure {
                // Routed, and nothing of its aggregate and key failed before it.
                None if !blocked.contains(&key) => published.push(row.id),
                // Routed but behind a failure: re-sent after it, so order holds.
                None => {}
                // The first failure of its aggregate and key parks; later ones wait behind it.
                Some(reason) if blocked.insert(key) => parked.push((row, reason)),
                Some(_) => {}
            }
        }
        if !published.is_empty() {
            diesel::update(outbox_messages::table.filter(outbox_messages::id.eq_any(&published)))
                .set(outbox_messages::published_at.eq(diesel::dsl::now))
                .execute(conn)
                .await?;
        }
        for (row, reason) in &parked {
            let attempts = row.attempts.saturating_add(1);
            let retry_in = backoff(attempts.unsigned_abs(), 500, 60_000);
            tracing::warn!(outbox_id = row.id, routing_key = %row.routing_key, %reason, attempts, ?retry_in, "outbox row parked");
            diesel::update(outbox_messages::table.find(row.id))
                .set((
                    outbox_messages::attempts.eq(attempts),
                    outbox_messages::last_error.eq(reason),
                    outbox_messages::next_attempt_at.eq(chrono::Utc::now()
                        + chrono::Duration::from_std(retry_in).unwrap_or_default()),
                ))
                .execute(conn)
                .await?;
        }
        if let Some(oldest) = <[PendingRow]>::first(&rows) {
            let lag = chrono::Utc::now() - oldest.created_at;
            tracing::debug!(
                published = published.len(),
                parked = parked.len(),
                lag_ms = lag.num_milliseconds(),
                "outbox batch"
            );
        }
        if published.is_empty() && !unroutable_keys.is_empty() {
            return Ok(BatchOutcome::More);
        }
        Ok(if published.is_empty() {
            BatchOutcome::Stopped
        } else if full {
            BatchOutcome::More
        } else {
            BatchOutcome::Drained
        })
    }

    async fn prune(&self, conn: &mut AsyncPgConnection) -> Result<(), BusError> {
        let cutoff =
            chrono::Utc::now() - chrono::Duration::hours(i64::from(self.config.retention_hours));
        diesel::delete(outbox_messages::table.filter(outbox_messages::published_at.lt(cutoff)))
            .execute(conn)
            .await?;
        use crate::outbox::inbox_messages;
        diesel::delete(inbox_messages::table.filter(inbox_messages::received_at.lt(cutoff)))
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// AMQP reply code of a mandatory message no queue is bound for.
const NO_ROUTE: u16 = 312;

/// A routing key held back because nothing is bound to it.
struct ParkedKey {
    attempts: u32,
    until: std::time::Instant,
}

impl ParkedKey {
    /// Keeps the backoff memory for a while after the wait ends, so a key that keeps
    /// bouncing backs off further instead of starting over.
    fn keep(&self) -> bool {
        self.until.elapsed() < Duration::from_secs(300)
    }
}

enum BatchOutcome {
    /// Everything due was published.
    Drained,
    /// A full batch went out; there may be more.
    More,
    /// Nothing could be published (all parked).
    Stopped,
}

fn properties_for(row: &PendingRow, trace: &HashMap<String, String>) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from(TENANT_HEADER),
        AMQPValue::LongString(LongString::from(row.tenant_id.as_str())),
    );
    headers.insert(
        ShortString::from(AGGREGATE_HEADER),
        AMQPValue::LongString(LongString::from(row.aggregate_id.as_str())),
    );
    for (key, value) in trace {
        headers.insert(
            ShortString::from(key.as_str()),
            AMQPValue::LongString(LongString::from(value.as_str())),
        );
    }
    BasicProperties::default()
        .with_message_id(row.message_id.to_string().into())
        .with_content_type(CONTENT_TYPE.into())
        .with_type(row.routing_key.as_str().into())
        .with_delivery_mode(2)
        .with_timestamp(row.created_at.timestamp().max(0) as u64)
        .with_headers(headers)
}

diesel::define_sql_function! {
    /// Postgres `hashtext`, to turn the lock name into an advisory lock key.
    fn hashtext(value: diesel::sql_types::Text) -> diesel::sql_types::Integer;
}
diesel::define_sql_function! {
    /// Postgres `pg_try_advisory_lock` (session level).
    fn pg_try_advisory_lock(key: diesel::sql_types::Integer) -> diesel::sql_types::Bool;
}
