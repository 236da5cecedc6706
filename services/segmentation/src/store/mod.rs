//! Tables and queries of the `segmentation` schema.

pub mod customer_profiles;
pub mod schema;
