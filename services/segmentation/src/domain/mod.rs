//! Segmentation's rules: the segment rule language (one canonical tree, three accepted
//! dialects), its validation, and a reference evaluator. No I/O here.

pub mod engine;
pub mod rules;
pub mod segment;
