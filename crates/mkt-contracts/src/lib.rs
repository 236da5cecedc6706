//! Event contracts, generated at build time from `proto/` (see `docs/events.md`).
//!
//! Owns: the Rust types of every event payload and the routing key of each. Must
//! never: hold logic beyond conversions; producers and consumers live in services.
#![allow(missing_docs)] // generated code carries the .proto comments, not `///` on every field

/// `mkt.events.v1`: the first version of every event.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/mkt.events.v1.rs"));

    /// Routing keys of v1 events (`<aggregate>.<event>.v1`).
    pub mod routing {
        /// [`super::CustomerUpserted`].
        pub const CUSTOMER_UPSERTED: &str = "customer.upserted.v1";
        /// [`super::CustomerErased`].
        pub const CUSTOMER_ERASED: &str = "customer.erased.v1";
        /// [`super::OrderPlaced`].
        pub const ORDER_PLACED: &str = "order.placed.v1";
        /// [`super::OrderUpdated`].
        pub const ORDER_UPDATED: &str = "order.updated.v1";
        /// [`super::BehaviourTracked`].
        pub const BEHAVIOUR_TRACKED: &str = "behaviour.tracked.v1";
        /// [`super::SegmentMembershipChanged`].
        pub const SEGMENT_MEMBERSHIP_CHANGED: &str = "segment.membership.changed.v1";
        /// [`super::ScoresUpdated`].
        pub const ANALYTICS_SCORES_UPDATED: &str = "analytics.scores.updated.v1";
        /// [`super::ChurnAlert`].
        pub const CHURN_ALERT: &str = "churn.alert.v1";
        /// [`super::DeliveryRecorded`].
        pub const DELIVERY_RECORDED: &str = "delivery.recorded.v1";
    }
}

pub use prost::Message;
pub use prost_types::Timestamp;

/// Converts a chrono instant to a protobuf timestamp.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Converts a protobuf timestamp back; out-of-range values become `None`.
pub fn from_timestamp(ts: &Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).ok()?)
}
