//! Use cases: each runs in one transaction with the events it produces.

pub mod engine;
pub mod export;
pub mod membership;
pub mod segments;
