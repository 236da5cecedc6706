//! Tables and queries of the `ingestion` schema. Functions take a connection so they
//! can join the caller's transaction.

pub mod customers;
pub mod events;
pub mod idempotency;
pub mod imports;
pub mod integrations;
pub mod orders;
pub mod schema;
