//! The idempotent consumer: inbox + handler in one transaction, ack after commit,
//! bounded retries with backoff, dead-lettering of poison messages.
//!
//! Each subscription consumes its queue sequentially on its own channel, which keeps
//! the per-aggregate order the relay published in. Transient failures are retried in
//! place (so a retried message is not overtaken by the ones behind it); a permanent
//! failure, or running out of attempts, rejects the message without requeue, and the
//! queue dead-letters it to `<queue>.dlq`.

use std::collections::HashMap;
use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};
use mkt_db::Pool;
use tracing::Instrument;
use uuid::Uuid;

use crate::outbox::inbox_messages;
use crate::relay::{AGGREGATE_HEADER, TENANT_HEADER};
use crate::{BusConfig, BusError, backoff, topology};

/// A message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Unique per published event; the inbox key.
    pub message_id: Uuid,
    /// The routing key (`customer.upserted.v1`).
    pub routing_key: String,
    /// The tenant, from the message header (the payload carries it too).
    pub tenant_id: String,
    /// The aggregate id header.
    pub aggregate_id: String,
    /// The encoded protobuf payload.
    pub payload: Vec<u8>,
    /// String headers (trace context among them).
    pub headers: HashMap<String, String>,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The message can never succeed (undecodable, violates the contract): dead-letter now.
    #[error("permanent: {0}")]
    Permanent(String),
    /// Might succeed later (database hiccup): retry with backoff.
    #[error("transient: {0}")]
    Transient(String),
}

impl From<diesel::result::Error> for HandlerError {
    fn from(error: diesel::result::Error) -> Self {
        HandlerError::Transient(error.to_string())
    }
}

impl From<mkt_contracts::ContractError> for HandlerError {
    fn from(error: mkt_contracts::ContractError) -> Self {
        HandlerError::Permanent(error.to_string())
    }
}

impl From<mkt_db::PoolError> for HandlerError {
    fn from(error: mkt_db::PoolError) -> Self {
        HandlerError::Transient(format!("database pool: {error}"))
    }
}

impl From<prost::DecodeError> for HandlerError {
    fn from(error: prost::DecodeError) -> Self {
        HandlerError::Permanent(format!("undecodable payload: {error}"))
    }
}

/// A handler: applies one message's effects on `conn`, which is inside the transaction
/// that also records the message in the inbox.
pub type Handler = Arc<
    dyn for<'c> Fn(
            &'c mut AsyncPgConnection,
            &'c Incoming,
        ) -> BoxFuture<'c, Result<(), HandlerError>>
        + Send
        + Sync,
>;

/// One queue this service consumes.
#[derive(Clone)]
pub struct Subscription {
    /// The consuming service (the queue's prefix).
    pub service: String,
    /// The routing key bound to the queue.
    pub routing_key: String,
    /// What to do with each message.
    pub handler: Handler,
}

/// A typed handler: applies one decoded, tenant-checked event on `conn` (inside the
/// transaction that records the message in the inbox).
pub type TypedHandler<E> = dyn for<'c> Fn(&'c mut AsyncPgConnection, E) -> BoxFuture<'c, Result<(), HandlerError>>
    + Send
    + Sync;

impl Subscription {
    /// Subscribes `handler` to every `E` published: the queue is bound to
    /// `E::ROUTING_KEY`, and the handler gets the payload decoded and checked against
    /// the transport's tenant header. An undecodable payload or one naming another
    /// tenant than its header is dead-lettered without reaching the handler.
    ///
    /// ```ignore
    /// Subscription::on(SERVICE, |conn, event: v1::CustomerErased| Box::pin(erase(conn, event)))
    /// ```
    pub fn on<E, F>(service: &str, handler: F) -> Self
    where
        E: mkt_contracts::Event,
        F: for<'c> Fn(&'c mut AsyncPgConnection, E) -> BoxFuture<'c, Result<(), HandlerError>>
            + Send
            + Sync
            + 'static,
    {
        let handler: Arc<TypedHandler<E>> = Arc::new(handler);
        Subscription {
            service: service.to_owned(),
            routing_key: E::ROUTING_KEY.to_owned(),
            handler: Arc::new(move |conn, incoming| {
                let handler = handler.clone();
                Box::pin(async move {
                    let event = decode_checked::<E>(incoming)?;
                    handler(conn, event).await
                })
            }),
        }
    }

    /// The queue name, `<service>.<routing-key>`.
    pub fn queue(&self) -> String {
        topology::queue_name(&self.service, &self.routing_key)
    }
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Effects committed, acked.
    Applied,
    /// Seen before (inbox hit), acked without effects.
    Duplicate,
    /// Rejected to the dead-letter queue.
    DeadLettered,
}

/// Declares the subscription's queues and consumes forever, reconnecting with backoff.
pub async fn run(pool: Pool, config: BusConfig, subscription: Subscription) {
    let mut failures = 0u32;
    loop {
        match consume(&pool, &config, &subscription).await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(%error, queue = %subscription.queue(), "consumer interrupted; reconnecting");
            }
        }
        tokio::time::sleep(backoff(failures, 100, 10_000)).await;
    }
}

async fn consume(
    pool: &Pool,
    config: &BusConfig,
    subscription: &Subscription,
) -> Result<(), BusError> {
    let queue = subscription.queue();
    let connection = crate::connect(config, &queue).await?;
    let channel = connection.create_channel().await?;
    topology::declare_consumer_queue(&channel, config, &queue, &subscription.routing_key).await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(%queue, "consuming");
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        handle_delivery(pool, config, subscription, delivery).await?;
    }
    Ok(())
}

/// Processes one delivery to completion (ack or reject). Errors only for broker
/// failures, after which the unacked message is redelivered on reconnect.
async fn handle_delivery(
    pool: &Pool,
    config: &BusConfig,
    subscription: &Subscription,
    delivery: Delivery,
) -> Result<Outcome, BusError> {
    let incoming = match decode(&delivery) {
        Ok(incoming) => incoming,
        Err(reason) => {
            tracing::error!(%reason, queue = %subscription.queue(), "malformed message; dead-lettering");
            delivery
                .acker
                .reject(BasicRejectOptions { requeue: false })
                .await?;
            return Ok(Outcome::DeadLettered);
        }
    };
    let span = tracing::info_span!(
        "amqp.consume",
        routing_key = %incoming.routing_key,
        message_id = %incoming.message_id,
        tenant_id = %incoming.tenant_id,
    );
    set_parent(&span, &incoming.headers);
    async {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match apply(pool, subscription, &incoming).await {
                Ok(outcome) => {
                    delivery.acker.ack(BasicAckOptions::default()).await?;
                    return Ok(outcome);
                }
                Err(HandlerError::Transient(reason)) if attempt < config.delivery_limit => {
                    tracing::warn!(%reason, attempt, "handler failed; retrying");
                    tokio::time::sleep(backoff(attempt, 100, 5_000)).await;
                }
                Err(error) => {
                    tracing::error!(%error, attempt, "giving up on message; dead-lettering");
                    delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await?;
                    return Ok(Outcome::DeadLettered);
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Inbox check and handler in one transaction.
pub async fn apply(
    pool: &Pool,
    subscription: &Subscription,
    incoming: &Incoming,
) -> Result<Outcome, HandlerError> {
    let mut conn = pool
        .get()
        .await
        .map_err(|e| HandlerError::Transient(e.to_string()))?;
    let handler = subscription.handler.clone();
    conn.transaction(async |conn| {
        let inserted = diesel::insert_into(inbox_messages::table)
            .values((
                inbox_messages::message_id.eq(incoming.message_id),
                inbox_messages::routing_key.eq(&incoming.routing_key),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 0 {
            return Ok(Outcome::Duplicate);
        }
        handler(conn, incoming).await?;
        Ok(Outcome::Applied)
    })
    .await
}

/// Decodes `incoming` as an `E` whose tenant is the one the transport header names.
pub fn decode_checked<E: mkt_contracts::Event>(incoming: &Incoming) -> Result<E, HandlerError> {
    let event = E::decode(incoming.payload.as_slice())?;
    if event.tenant_id() != incoming.tenant_id {
        return Err(HandlerError::Permanent(format!(
            "tenant header {:?} does not match payload {:?}",
            incoming.tenant_id,
            event.tenant_id()
        )));
    }
    Ok(event)
}

fn header_string(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn decode(delivery: &Delivery) -> Result<Incoming, String> {
    let properties = &delivery.properties;
    let message_id = properties
        .message_id()
        .as_ref()
        .and_then(|id| Uuid::parse_str(id.as_str()).ok())
        .ok_or("missing or invalid message_id")?;
    let headers: HashMap<String, String> = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), header_string(v)?)))
                .collect()
        })
        .unwrap_or_default();
    let tenant_id = headers
        .get(TENANT_HEADER)
        .cloned()
        .ok_or("missing tenant header")?;
    let aggregate_id = headers.get(AGGREGATE_HEADER).cloned().unwrap_or_default();
    Ok(Incoming {
        message_id,
        routing_key: delivery.routing_key.as_str().to_owned(),
        tenant_id,
        aggregate_id,
        payload: delivery.data.clone(),
        headers,
    })
}

/// Parents `span` on the trace context in `headers`.
pub(crate) fn set_parent(span: &tracing::Span, headers: &HashMap<String, String>) {
    mkt_telemetry::set_parent_from(span, headers);
}

/// Declares every subscription's queue (and its dead-letter queue) once, up front.
///
/// The consumers declare their queues themselves when they connect, but events routed
/// before a queue exists are not delivered to it; a service that declares its queues
/// before it starts serving cannot miss events written after it came up (on a first
/// deployment, or in a test that writes right after starting the stack).
pub async fn declare_queues(
    config: &BusConfig,
    subscriptions: &[Subscription],
) -> Result<(), BusError> {
    if subscriptions.is_empty() {
        return Ok(());
    }
    let connection = crate::connect(config, "declare-queues").await?;
    let channel = connection.create_channel().await?;
    for subscription in subscriptions {
        topology::declare_consumer_queue(
            &channel,
            config,
            &subscription.queue(),
            &subscription.routing_key,
        )
        .await?;
    }
    let _ = connection.close(200, "queues declared".into()).await;
    Ok(())
}
