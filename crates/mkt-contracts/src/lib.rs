//! Event contracts, generated at build time from `proto/` (see `docs/events.md`).
//!
//! Owns: the Rust types of every event payload, and what each message knows about
//! itself as a bus message ([`Event`]: routing key, version, tenant, aggregate), plus
//! the few rules that are part of a contract rather than of one service (which order
//! statuses count towards revenue). Must never: hold a service's logic; producers and
//! consumers live in services, delivery in `mkt-bus`.
#![allow(missing_docs)] // generated code carries the .proto comments, not `///` on every field

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// `mkt.events.v1`: the first version of every event.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mkt.events.v1.rs"));

    /// Routing keys of v1 events (`<aggregate>.<event>.v1`), the same strings as each
    /// message's [`crate::Event::ROUTING_KEY`] (for bindings, tests and tools that
    /// handle raw messages).
    pub mod routing {
        use crate::Event;

        /// [`super::CustomerUpserted`].
        pub const CUSTOMER_UPSERTED: &str = super::CustomerUpserted::ROUTING_KEY;
        /// [`super::CustomerErased`].
        pub const CUSTOMER_ERASED: &str = super::CustomerErased::ROUTING_KEY;
        /// [`super::OrderPlaced`].
        pub const ORDER_PLACED: &str = super::OrderPlaced::ROUTING_KEY;
        /// [`super::OrderUpdated`].
        pub const ORDER_UPDATED: &str = super::OrderUpdated::ROUTING_KEY;
        /// [`super::BehaviourTracked`].
        pub const BEHAVIOUR_TRACKED: &str = super::BehaviourTracked::ROUTING_KEY;
        /// [`super::SegmentMembershipChanged`].
        pub const SEGMENT_MEMBERSHIP_CHANGED: &str = super::SegmentMembershipChanged::ROUTING_KEY;
        /// [`super::ScoresUpdated`].
        pub const ANALYTICS_SCORES_UPDATED: &str = super::ScoresUpdated::ROUTING_KEY;
        /// [`super::ChurnAlert`].
        pub const CHURN_ALERT: &str = super::ChurnAlert::ROUTING_KEY;
        /// [`super::DeliveryRecorded`].
        pub const DELIVERY_RECORDED: &str = super::DeliveryRecorded::ROUTING_KEY;
    }
}

pub use prost::Message;
pub use prost_types::Timestamp;

mod order_status;

/// A message that travels on the bus: its payload type knows where it is routed and
/// whose it is, so publishing takes the message itself and consuming subscribes by type.
pub trait Event: Message + Default + Send + Sync + 'static {
    /// `<aggregate>.<event>.v<N>`: the topic routing key and the consumer queue suffix.
    const ROUTING_KEY: &'static str;
    /// The contract version, the `N` of the routing key (a breaking change is a new one).
    const VERSION: u32;
    /// The tenant the event belongs to; consumers refuse a message whose transport
    /// header names another tenant. Empty when the payload lacks it (also refused).
    fn tenant_id(&self) -> &str;
    /// The aggregate the relay keeps ordering for (a customer, a segment, a message...).
    fn aggregate_id(&self) -> String;
}

/// Implements [`Event`]: routing key, version, and how to read tenant and aggregate.
macro_rules! event {
    ($message:ident, $key:literal, $version:literal, |$e:ident| tenant: $tenant:expr, aggregate: $aggregate:expr) => {
        impl Event for v1::$message {
            const ROUTING_KEY: &'static str = $key;
            const VERSION: u32 = $version;
            fn tenant_id(&self) -> &str {
                let $e = self;
                $tenant
            }
            fn aggregate_id(&self) -> String {
                let $e = self;
                $aggregate
            }
        }
    };
}

fn order_tenant(order: Option<&v1::Order>) -> &str {
    order.map_or("", |o| o.tenant_id.as_str())
}

// Orders are aggregated per customer, so one customer's orders and their updates stay in
// order for consumers that aggregate per customer.
fn order_customer(order: Option<&v1::Order>) -> String {
    order.map_or_else(String::new, |o| o.customer_id.clone())
}

event!(CustomerUpserted, "customer.upserted.v1", 1,
    |e| tenant: &e.tenant_id, aggregate: e.customer_id.clone());
event!(CustomerErased, "customer.erased.v1", 1,
    |e| tenant: &e.tenant_id, aggregate: e.customer_id.clone());
event!(OrderPlaced, "order.placed.v1", 1,
    |e| tenant: order_tenant(e.order.as_ref()), aggregate: order_customer(e.order.as_ref()));
event!(OrderUpdated, "order.updated.v1", 1,
    |e| tenant: order_tenant(e.order.as_ref()), aggregate: order_customer(e.order.as_ref()));
event!(BehaviourTracked, "behaviour.tracked.v1", 1,
    |e| tenant: &e.tenant_id, aggregate: e.customer_id.clone());
event!(SegmentMembershipChanged, "segment.membership.changed.v1", 1,
    |e| tenant: &e.tenant_id, aggregate: e.segment_id.clone());
// One message carries up to a thousand customers of one tenant's run.
event!(ScoresUpdated, "analytics.scores.updated.v1", 1,
    |e| tenant: &e.tenant_id, aggregate: e.tenant_id.clone());
event!(ChurnAlert, "churn.alert.v1", 1,
    |e| tenant: &e.tenant_id, aggregate: e.customer_id.clone());
event!(DeliveryRecorded, "delivery.recorded.v1", 1,
    |e| tenant: &e.tenant_id, aggregate: e.message_id.clone());

/// A payload that decoded but breaks its contract (a malformed id, a missing instant):
/// redelivering it can never help, so consumers dead-letter it.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// A field that must hold a UUID does not.
    #[error("{field} is not a UUID: {value:?}")]
    NotAUuid {
        /// The proto field name.
        field: &'static str,
        /// What it held.
        value: String,
    },
    /// A required field is absent (or its timestamp is out of range).
    #[error("{0} is missing or out of range")]
    Missing(&'static str),
}

/// Parses a UUID field of a payload.
pub fn uuid_field(raw: &str, field: &'static str) -> Result<Uuid, ContractError> {
    Uuid::parse_str(raw).map_err(|_| ContractError::NotAUuid {
        field,
        value: raw.chars().take(64).collect(),
    })
}

/// Reads a timestamp field the contract requires.
pub fn required_instant(
    ts: Option<&Timestamp>,
    field: &'static str,
) -> Result<DateTime<Utc>, ContractError> {
    ts.and_then(from_timestamp)
        .ok_or(ContractError::Missing(field))
}

/// Converts a chrono instant to a protobuf timestamp.
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Converts a protobuf timestamp back; out-of-range values become `None`.
pub fn from_timestamp(ts: &Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_end_in_their_version() {
        fn check<E: Event>() {
            assert!(
                E::ROUTING_KEY.ends_with(&format!(".v{}", E::VERSION)),
                "{}",
                E::ROUTING_KEY
            );
        }
        check::<v1::CustomerUpserted>();
        check::<v1::CustomerErased>();
        check::<v1::OrderPlaced>();
        check::<v1::OrderUpdated>();
        check::<v1::BehaviourTracked>();
        check::<v1::SegmentMembershipChanged>();
        check::<v1::ScoresUpdated>();
        check::<v1::ChurnAlert>();
        check::<v1::DeliveryRecorded>();
    }

    #[test]
    fn order_events_belong_to_the_order_tenant_and_customer() {
        let order = v1::Order {
            tenant_id: "acme".into(),
            customer_id: "c-1".into(),
            ..Default::default()
        };
        let placed = v1::OrderPlaced { order: Some(order) };
        assert_eq!(placed.tenant_id(), "acme");
        assert_eq!(placed.aggregate_id(), "c-1");
        // A payload without its order names no tenant, which every consumer refuses.
        assert_eq!(v1::OrderUpdated::default().tenant_id(), "");
    }

    #[test]
    fn field_helpers_refuse_what_breaks_the_contract() {
        assert!(uuid_field("not-a-uuid", "customer_id").is_err());
        let id = Uuid::now_v7();
        assert_eq!(uuid_field(&id.to_string(), "customer_id").ok(), Some(id));
        assert!(required_instant(None, "occurred_at").is_err());
        let bad = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(required_instant(Some(&bad), "occurred_at").is_err());
    }
}
