//! Use cases: processing runs and their schedule.

pub mod ingestion_api;
pub mod integrations;
pub mod processing;
pub mod vtex;
