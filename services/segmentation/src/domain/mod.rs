//! Segmentation's rules: the segment rule language (one canonical tree, three accepted
//! dialects), its validation, and a reference evaluator. No I/O here.
//!
//! The rule language and the fast engine are library crates of their own inside this
//! service (`services/segmentation/rules`, `services/segmentation/engine`), free of
//! diesel and actix; they are re-exported here under their old paths so the service
//! reads `domain::rules::...` and `domain::engine::...` as before.

pub use mkt_segment_engine as engine;
pub use mkt_segment_rules as rules;
pub mod segment;
