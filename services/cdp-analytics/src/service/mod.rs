//! Use cases: processing runs and their schedule.

pub mod processing;
