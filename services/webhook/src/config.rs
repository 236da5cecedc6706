//! The webhook service's settings: only the shared ones so far (see
//! `docs/operations.md`).

/// Settings of this service.
pub type Config = mkt_runtime::ServiceConfig;
