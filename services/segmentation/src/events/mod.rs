//! Events segmentation consumes (ingestion's, analytics', delivery) and publishes
//! (membership changes).

pub mod consume;
pub mod publish;
