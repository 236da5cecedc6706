//! The ingestion service's settings: the shared ones (`MKT_HTTP__*`, `MKT_DATABASE__*`,
//! `MKT_BUS__*`, `MKT_AUTH__*`, `MKT_TELEMETRY__*`; see `docs/operations.md`) plus
//! `MKT_INTEGRATIONS__*` for tenant integrations (see `docs/integrations.md`).
//!
//! The integration keys kept the names they had in cdp-analytics, where integrations
//! lived before, so a deployment moves the same variables (and the same encryption key)
//! from one service to the other and every sealed credential still opens.

use secrecy::SecretString;
use serde::Deserialize;

/// Settings of this service.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// What every service has.
    #[serde(flatten)]
    pub service: mkt_runtime::ServiceConfig,
    /// Tenant integrations (`MKT_INTEGRATIONS__*`).
    #[serde(default)]
    pub integrations: IntegrationsConfig,
}

impl From<mkt_runtime::ServiceConfig> for Config {
    fn from(service: mkt_runtime::ServiceConfig) -> Self {
        Self {
            service,
            integrations: IntegrationsConfig::default(),
        }
    }
}

/// Tenant integration settings. Without an encryption key, integrations can be listed
/// and deleted but not created, changed or synced (503 `integrations_not_configured`).
///
/// There is deliberately no ingestion URL or token secret any more: a sync writes
/// through this service's own use cases, in-process.
#[derive(Debug, Clone, Deserialize)]
pub struct IntegrationsConfig {
    /// `MKT_INTEGRATIONS__ENCRYPTION_KEY`: base64 of 32 random bytes (AES-256-GCM) that
    /// seals stored credentials, e.g. `openssl rand -base64 32`. The same value
    /// cdp-analytics used, so moved credentials open.
    #[serde(default)]
    pub encryption_key: Option<SecretString>,
    /// `MKT_INTEGRATIONS__ENCRYPTION_KEY_ID`: the current key's name, stored beside each
    /// sealed value (1-32 of `[A-Za-z0-9_-]`; default `k1`). Change it with the key.
    #[serde(default = "default_key_id")]
    pub encryption_key_id: String,
    /// `MKT_INTEGRATIONS__PREVIOUS_ENCRYPTION_KEYS`: `id:base64` pairs, comma separated,
    /// of retired keys that still open older values while they are re-sealed.
    #[serde(default)]
    pub previous_encryption_keys: Option<SecretString>,
    /// `MKT_INTEGRATIONS__VTEX_BASE_URL`: where VTEX is, with `{account}` and
    /// `{environment}` placeholders (default `https://{account}.{environment}.com.br`;
    /// tests point it at a local server).
    #[serde(default = "default_vtex_base_url")]
    pub vtex_base_url: String,
    /// `MKT_INTEGRATIONS__VTEX_TIMEOUT_MS`: per request to VTEX (default 30000).
    #[serde(default = "default_vtex_timeout_ms")]
    pub vtex_timeout_ms: u64,
    /// `MKT_INTEGRATIONS__SYNC_POLL_MS`: how often an idle sync worker looks for queued
    /// runs of other processes (its own are picked up at once; default 2000).
    #[serde(default = "default_sync_poll_ms")]
    pub sync_poll_ms: u64,
}

fn default_key_id() -> String {
    "k1".into()
}
fn default_vtex_base_url() -> String {
    "https://{account}.{environment}.com.br".into()
}
fn default_vtex_timeout_ms() -> u64 {
    30_000
}
fn default_sync_poll_ms() -> u64 {
    2_000
}

impl Default for IntegrationsConfig {
    fn default() -> Self {
        Self {
            encryption_key: None,
            encryption_key_id: default_key_id(),
            previous_encryption_keys: None,
            vtex_base_url: default_vtex_base_url(),
            vtex_timeout_ms: default_vtex_timeout_ms(),
            sync_poll_ms: default_sync_poll_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_shared_and_integration_settings_from_the_environment() {
        let vars = [
            ("MKT_DATABASE__URL", "postgres://u:hunter2@h/db"),
            ("MKT_DATABASE__POOL_SIZE", "4"),
            ("MKT_BUS__URL", "amqp://h"),
            ("MKT_AUTH__ISSUER", "iss"),
            ("MKT_AUTH__AUDIENCE", "aud"),
            ("MKT_RUN_MIGRATIONS", "false"),
            ("MKT_INTEGRATIONS__ENCRYPTION_KEY", "c2VjcmV0LWtleQ=="),
            ("MKT_INTEGRATIONS__VTEX_BASE_URL", "http://127.0.0.1:9"),
            ("MKT_INTEGRATIONS__SYNC_POLL_MS", "50"),
            // What cdp-analytics needed: ignored, so an old manifest still starts.
            ("MKT_INTEGRATIONS__INGESTION_URL", "http://ingestion:8081"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config: Config = mkt_config::load_from(vars).expect("loads");
        assert_eq!(config.service.database.pool_size, 4);
        assert!(!config.service.run_migrations);
        assert_eq!(config.integrations.vtex_base_url, "http://127.0.0.1:9");
        assert_eq!(config.integrations.sync_poll_ms, 50);
        assert_eq!(config.integrations.encryption_key_id, "k1");
        let printed = format!("{config:?}");
        assert!(!printed.contains("c2VjcmV0LWtleQ") && !printed.contains("hunter2"));

        let minimal = [
            ("MKT_DATABASE__URL", "x"),
            ("MKT_BUS__URL", "amqp://h"),
            ("MKT_AUTH__ISSUER", "iss"),
            ("MKT_AUTH__AUDIENCE", "aud"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config: Config = mkt_config::load_from(minimal).expect("defaults");
        assert!(config.integrations.encryption_key.is_none());
        assert_eq!(
            config.integrations.vtex_base_url,
            "https://{account}.{environment}.com.br"
        );
    }
}
