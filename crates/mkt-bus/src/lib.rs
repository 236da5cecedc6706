//! The event bus: RabbitMQ topology, the transactional outbox and its relay, and the
//! idempotent consumer.
//!
//! Owns the delivery guarantees, so that no service re-implements them:
//! - Publishing goes through [`outbox::enqueue`] inside the caller's write transaction.
//!   The [`relay`] publishes pending rows in commit order with publisher confirms and
//!   `mandatory`, and marks a row published only once the broker confirmed it routed.
//!   One relay per service schema is active at a time (a Postgres advisory lock), so
//!   replicas never reorder events. A crash anywhere delays events; it never loses them.
//! - Consuming ([`consumer`]): durable quorum queues with an explicit `x-delivery-limit`
//!   and dead-letter exchange; each message's effects and its inbox row commit in one
//!   transaction, and the ack follows the commit; retries are bounded with backoff, then
//!   the message is dead-lettered to `<queue>.dlq`.
//!
//! Must never: name a service or an event type (those are the services' and
//! `mkt-contracts`' business), or ack a message before its effects are durable.

pub mod consumer;
pub mod outbox;
pub mod relay;
pub mod schema;
pub mod topology;

use secrecy::SecretString;
use serde::Deserialize;

/// The bus tables (`outbox_messages`, `inbox_messages`), migrated into every service's
/// schema before the service's own migrations.
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// Bus settings (`MKT_BUS__*`).
#[derive(Debug, Clone, Deserialize)]
pub struct BusConfig {
    /// AMQP URL (`amqp://user:pass@host:5672/%2f`).
    pub url: SecretString,
    /// The topic exchange every event is published to.
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// The exchange rejected and exhausted messages are dead-lettered to.
    #[serde(default = "default_dead_letter_exchange")]
    pub dead_letter_exchange: String,
    /// Unacked deliveries per consumer.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Attempts per message (in-process retries with backoff, and the broker's
    /// `x-delivery-limit` for crash loops) before it is dead-lettered.
    #[serde(default = "default_delivery_limit")]
    pub delivery_limit: u32,
    /// Rows the relay publishes per round.
    #[serde(default = "default_relay_batch")]
    pub relay_batch: i64,
    /// How often an idle relay looks for rows written by other processes, in ms.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How long published outbox rows and inbox rows are kept, in hours.
    #[serde(default = "default_retention_hours")]
    pub retention_hours: u32,
}

fn default_exchange() -> String {
    "mkt.events".into()
}
fn default_dead_letter_exchange() -> String {
    "mkt.dlx".into()
}
fn default_prefetch() -> u16 {
    64
}
fn default_delivery_limit() -> u32 {
    5
}
fn default_relay_batch() -> i64 {
    256
}
fn default_poll_interval_ms() -> u64 {
    250
}
fn default_retention_hours() -> u32 {
    72
}

impl BusConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            exchange: default_exchange(),
            dead_letter_exchange: default_dead_letter_exchange(),
            prefetch: default_prefetch(),
            delivery_limit: default_delivery_limit(),
            relay_batch: default_relay_batch(),
            poll_interval_ms: default_poll_interval_ms(),
            retention_hours: default_retention_hours(),
        }
    }
}

/// Bus failures.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Broker connection or protocol failure.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] diesel::result::Error),
    /// No database connection could be taken from the pool (the pool's error text).
    #[error("pool: {0}")]
    Pool(String),
    /// The broker did not route or store a message.
    #[error("not confirmed: {0}")]
    NotConfirmed(String),
}

/// Connects to the broker with a connection name that shows up in the management UI.
pub async fn connect(config: &BusConfig, name: &str) -> Result<lapin::Connection, BusError> {
    use secrecy::ExposeSecret;
    let properties =
        lapin::ConnectionProperties::default().with_connection_name(name.to_owned().into());
    Ok(lapin::Connection::connect(config.url.expose_secret(), properties).await?)
}

/// Exponential backoff with a cap: `base * 2^attempt`, at most `cap`.
pub fn backoff(attempt: u32, base_ms: u64, cap_ms: u64) -> std::time::Duration {
    let factor = 1u64 << attempt.min(16);
    std::time::Duration::from_millis(base_ms.saturating_mul(factor).min(cap_ms))
}
