//! Tables and queries of the `cdp_analytics` schema.

pub mod customers;
pub mod facts;
pub mod runs;
pub mod schema;
pub mod scores;
pub mod settings;
pub mod timeline;
