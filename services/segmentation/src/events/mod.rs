//! Events this service consumes (and, later, publishes through the outbox).

pub mod consume;
