//! The ingestion service's settings: only the shared ones so far
//! (`MKT_HTTP__*`, `MKT_DATABASE__*`, `MKT_BUS__*`, `MKT_AUTH__*`, `MKT_TELEMETRY__*`;
//! see `docs/operations.md`).

/// Settings of this service.
pub type Config = mkt_runtime::ServiceConfig;
