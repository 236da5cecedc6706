//! cdp-analytics' rules: RFM scoring and segments, the processing run's models. No I/O.

pub mod rfm;
pub mod scoring;
