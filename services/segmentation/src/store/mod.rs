//! Tables and queries of the `segmentation` schema.

pub mod customer_profiles;
pub mod events;
pub mod orders;
pub mod saved;
pub mod schema;
pub mod segments;
