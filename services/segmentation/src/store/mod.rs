//! Tables and queries of the `segmentation` schema.

pub mod customer_profiles;
pub mod customer_records;
pub mod engagement;
pub mod events;
pub mod members;
pub mod orders;
pub mod saved;
pub mod schema;
pub mod scores;
pub mod segments;
pub mod snapshot;
