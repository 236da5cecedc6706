//! Events this service emits (always through the outbox) and consumes.

pub mod publish;
