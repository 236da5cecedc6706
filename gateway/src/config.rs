//! Gateway settings (`MKT_HTTP__*`, `MKT_AUTH__*`, `MKT_UPSTREAMS__*`,
//! `MKT_TELEMETRY__*`).

use mkt_auth::AuthConfig;
use mkt_runtime::HttpConfig;
use mkt_telemetry::TelemetryConfig;
use serde::Deserialize;

/// Everything the gateway reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Listener.
    #[serde(default)]
    pub http: HttpConfig,
    /// Token verification (same settings as the services).
    pub auth: AuthConfig,
    /// Where each service listens.
    pub upstreams: Upstreams,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// Base URLs of the services, e.g. `http://ingestion:8081`.
#[derive(Debug, Clone, Deserialize)]
pub struct Upstreams {
    /// The ingestion service.
    pub ingestion: String,
    /// The segmentation service.
    pub segmentation: String,
    /// The campaign service.
    pub campaign: String,
    /// The webhook service.
    pub webhook: String,
    /// The cdp-analytics service.
    pub cdp_analytics: String,
    /// Longest wait for an upstream's response headers, in ms (then 504).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Response-header deadline for long uploads (CSV imports), in ms.
    #[serde(default = "default_upload_timeout_ms")]
    pub upload_timeout_ms: u64,
    /// Longest wait to connect to an upstream, in ms (then 502).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    30_000
}
fn default_upload_timeout_ms() -> u64 {
    600_000
}
fn default_connect_timeout_ms() -> u64 {
    2_000
}

impl Upstreams {
    /// Each upstream with its name, in a stable order.
    pub fn all(&self) -> [(&'static str, &str); 5] {
        [
            ("ingestion", &self.ingestion),
            ("segmentation", &self.segmentation),
            ("campaign", &self.campaign),
            ("webhook", &self.webhook),
            ("cdp-analytics", &self.cdp_analytics),
        ]
    }
}
