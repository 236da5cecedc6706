//! A client of ingestion's public HTTP API, so what a sync imports goes through the
//! same validation, idempotency and events as any store backend's writes.
//!
//! It authenticates with a short-lived token for the run's tenant with the `ingest`
//! role, signed with the HS256 secret the dev stack and tests share. Production (JWKS
//! identity providers) will use OAuth2 client credentials instead; that is a later
//! issue, and until then this client is only usable where HS256 tokens are accepted.

use std::time::Duration;

use mkt_auth::{Claims, DevTokenSigner};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// How long a minted token lives; a run mints a new one before it expires.
pub const TOKEN_TTL_SECS: i64 = 600;
/// Attempts per call when ingestion is unreachable or answers 5xx.
const ATTEMPTS: u32 = 3;

/// Why a call did not get an answer about its item.
#[derive(Debug, thiserror::Error)]
pub enum IngestionError {
    /// No secret to sign service tokens with.
    #[error(
        "no way to authenticate to ingestion: set MKT_INTEGRATIONS__INGESTION_TOKEN_SECRET (or MKT_AUTH__HS256_SECRET)"
    )]
    NotConfigured,
    /// 401/403: the service token is not accepted (secret, issuer or audience differ).
    #[error("ingestion refused the sync's service token ({0})")]
    Refused(u16),
    /// Unreachable or 5xx after retries.
    #[error("ingestion is unavailable: {0}")]
    Unavailable(String),
}

/// Ingestion's answer about one item.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 2xx: `status`, whether it replays a stored answer, and the body.
    Done {
        /// HTTP status (201 created, 200 updated).
        status: u16,
        /// `Idempotent-Replayed: true`: nothing changed.
        replayed: bool,
        /// The success envelope.
        body: Value,
    },
    /// 4xx about the item itself: ingestion's code and message.
    Rejected {
        /// HTTP status.
        status: u16,
        /// The error envelope's `code`.
        code: String,
        /// The error envelope's message.
        message: String,
    },
}

/// The client (cheap to clone).
#[derive(Clone)]
pub struct IngestionApi {
    http: reqwest::Client,
    base_url: String,
    signer: Option<std::sync::Arc<DevTokenSigner>>,
    issuer: String,
    audience: String,
}

impl IngestionApi {
    /// A client for ingestion at `base_url`, signing with `secret` (if any) for
    /// `issuer`/`audience`.
    pub fn new(
        base_url: &str,
        secret: Option<&SecretString>,
        issuer: &str,
        audience: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            base_url.starts_with("https://") || base_url.starts_with("http://"),
            "the ingestion URL must be http(s)"
        );
        let http = mkt_http_client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            signer: secret.map(|s| {
                std::sync::Arc::new(DevTokenSigner::new(s.expose_secret(), issuer, audience))
            }),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// A token for `tenant` with only the `ingest` role, valid [`TOKEN_TTL_SECS`].
    pub fn token(&self, tenant: &str) -> Result<SecretString, IngestionError> {
        let signer = self.signer.as_ref().ok_or(IngestionError::NotConfigured)?;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "service:cdp-analytics/integration-sync".into(),
            tenant_id: tenant.to_owned(),
            roles: vec!["ingest".into()],
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + TOKEN_TTL_SECS,
            iat: Some(now),
            jti: Some(uuid::Uuid::new_v4().to_string()),
        };
        Ok(SecretString::from(signer.sign_claims(&claims)))
    }

    /// Sends `body` to `path` with an `Idempotency-Key`, retrying transport errors and
    /// 5xx (the key makes the retry safe).
    pub async fn send(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        idempotency_key: &str,
        body: &Value,
    ) -> Result<Answer, IngestionError> {
        let url = format!("{}{path}", self.base_url);
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
            let response = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.expose_secret())
                .header("Idempotency-Key", idempotency_key)
                .json(body)
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    last = error.without_url().to_string();
                    continue;
                }
            };
            let status = response.status();
            if status.is_server_error() {
                last = format!("{path} answered {status}");
                continue;
            }
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                return Err(IngestionError::Refused(status.as_u16()));
            }
            let replayed = response
                .headers()
                .get("Idempotent-Replayed")
                .is_some_and(|v| v.as_bytes() == b"true");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Ok(if status.is_success() {
                Answer::Done {
                    status: status.as_u16(),
                    replayed,
                    body,
                }
            } else {
                Answer::Rejected {
                    status: status.as_u16(),
                    code: body["code"].as_str().unwrap_or("unknown").to_owned(),
                    message: body["error"].as_str().unwrap_or_default().to_owned(),
                }
            });
        }
        Err(IngestionError::Unavailable(last))
    }
}
