//! Events cdp-analytics consumes (ingestion's, delivery) and publishes (scores, churn
//! alerts).

pub mod consume;
pub mod publish;
