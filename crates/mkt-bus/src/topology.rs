//! Names and declarations of exchanges and queues.
//!
//! One topic exchange for events, one direct exchange for dead letters. A consumer's
//! queue is `<service>.<routing-key>`, a quorum queue dead-lettering to
//! `<queue>.dlq`. Declarations are idempotent, so every process declares what it uses.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::{BusConfig, BusError};

/// The queue a service consumes `routing_key` from.
pub fn queue_name(service: &str, routing_key: &str) -> String {
    format!("{service}.{routing_key}")
}

/// The dead-letter queue of `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dlq")
}

/// Declares the event exchange and the dead-letter exchange.
pub async fn declare_exchanges(channel: &Channel, config: &BusConfig) -> Result<(), BusError> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            config.dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

/// Declares a consumer queue bound to `routing_key`, with its dead-letter queue.
///
/// RabbitMQ 3.10 quorum queues have no default delivery limit, so it is set explicitly;
/// messages over the limit (or rejected) go to the dead-letter exchange with the
/// queue's own name as routing key, which binds them to `<queue>.dlq`.
pub async fn declare_consumer_queue(
    channel: &Channel,
    config: &BusConfig,
    queue: &str,
    routing_key: &str,
) -> Result<(), BusError> {
    declare_exchanges(channel, config).await?;
    let dlq = dead_letter_queue(queue);
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(dlq.as_str().into(), durable, quorum_args())
        .await?;
    channel
        .queue_bind(
            dlq.as_str().into(),
            config.dead_letter_exchange.as_str().into(),
            queue.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut args = quorum_args();
    args.insert(
        ShortString::from("x-delivery-limit"),
        AMQPValue::LongInt(config.delivery_limit as i32),
    );
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(config.dead_letter_exchange.as_str())),
    );
    args.insert(
        ShortString::from("x-dead-letter-routing-key"),
        AMQPValue::LongString(LongString::from(queue)),
    );
    channel.queue_declare(queue.into(), durable, args).await?;
    channel
        .queue_bind(
            queue.into(),
            config.exchange.as_str().into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}
