//! The cdp-analytics service's settings: only the shared ones (`MKT_HTTP__*`,
//! `MKT_DATABASE__*`, `MKT_BUS__*`, `MKT_AUTH__*`, `MKT_TELEMETRY__*`; see
//! `docs/operations.md`). Tenant integrations (`MKT_INTEGRATIONS__*`) moved to
//! ingestion; see `docs/integrations.md`.

/// Settings of this service.
pub type Config = mkt_runtime::ServiceConfig;
