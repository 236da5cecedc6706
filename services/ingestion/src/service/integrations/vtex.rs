//! The VTEX REST client: app key and token in `X-VTEX-API-AppKey` /
//! `X-VTEX-API-AppToken` (marked sensitive, never logged), the documented paths, paging
//! and rate-limit answers. The base URL is a template (`{account}`, `{environment}`)
//! so tests can point it at a local server that speaks the same API.
//!
//! Endpoints used:
//! - `GET /api/oms/pvt/orders` (OMS "List orders": `page`, `per_page` up to 100, at most
//!   30 pages, `orderBy=creationDate,asc`, `f_creationDate=creationDate:[a TO b]`);
//! - `GET /api/oms/pvt/orders/{orderId}` (OMS "Get order");
//! - `GET /api/dataentities/CL/search` with `REST-Range: resources=0-0` (a permission
//!   probe) and `GET /api/dataentities/CL/scroll` (`_size`, `_fields`, then `_token`
//!   from the `X-VTEX-MD-TOKEN` response header until an empty page).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use crate::domain::integrations::{AccountName, Environment, VtexCredentials};
use crate::domain::vtex::{
    CUSTOMER_FIELDS, CUSTOMERS_PER_SCROLL, Customer, ORDERS_PER_PAGE, Order, OrderList,
    creation_date_filter,
};

/// Attempts per request when VTEX rate-limits (429) or fails (5xx, network).
const ATTEMPTS: u32 = 4;
/// Longest wait a `Retry-After` may impose before we give up on this attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What went wrong talking to VTEX. Messages name paths and statuses, never headers.
#[derive(Debug, thiserror::Error)]
pub enum VtexError {
    /// 401: the app key or token is wrong.
    #[error("VTEX refused the app key and token (401)")]
    Unauthorized,
    /// 403: the credentials are valid but lack a License Manager resource.
    #[error("VTEX denied access to {0} (403): the app key lacks that permission")]
    Forbidden(&'static str),
    /// 404 for the account or a document.
    #[error("VTEX has no {0} (404)")]
    NotFound(&'static str),
    /// Any other status, after retries where they make sense.
    #[error("VTEX answered {status} for {what}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Which call.
        what: &'static str,
    },
    /// Network failure or timeout, after retries.
    #[error("VTEX is unreachable ({what}): {reason}")]
    Transport {
        /// Which call.
        what: &'static str,
        /// The transport error, without the URL.
        reason: String,
    },
    /// The answer does not have the documented shape.
    #[error("VTEX sent an unreadable {what}: {reason}")]
    Decode {
        /// Which call.
        what: &'static str,
        /// Parser message.
        reason: String,
    },
}

impl VtexError {
    /// Whether retrying later cannot help (credentials, permissions, a missing account).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            VtexError::Unauthorized | VtexError::Forbidden(_) | VtexError::NotFound(_)
        )
    }
}

/// One store account and its credentials, as the client needs them.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    /// Account name.
    pub name: &'a AccountName,
    /// Environment.
    pub environment: &'a Environment,
    /// App key and token.
    pub credentials: &'a VtexCredentials,
}

/// A VTEX REST client (cheap to clone).
#[derive(Clone)]
pub struct VtexClient {
    http: reqwest::Client,
    base_url: String,
}

impl VtexClient {
    /// A client for `base_url` (a template with `{account}` and `{environment}`).
    pub fn new(base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(
            base_url.starts_with("https://") || base_url.starts_with("http://"),
            "the VTEX base URL must be http(s)"
        );
        let http = mkt_http_client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            // Our credential headers must never follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// `https://{account}.{environment}.com.br` for this account.
    pub fn base_for(&self, account: &Account<'_>) -> String {
        self.base_url
            .replace("{account}", account.name.as_str())
            .replace("{environment}", account.environment.as_str())
    }

    fn headers(account: &Account<'_>) -> Result<HeaderMap, VtexError> {
        let mut headers = HeaderMap::new();
        let mut key = HeaderValue::from_str(account.credentials.app_key.expose_secret())
            .map_err(|_| VtexError::Unauthorized)?;
        key.set_sensitive(true);
        let mut token = HeaderValue::from_str(account.credentials.app_token.expose_secret())
            .map_err(|_| VtexError::Unauthorized)?;
        token.set_sensitive(true);
        headers.insert("X-VTEX-API-AppKey", key);
        headers.insert("X-VTEX-API-AppToken", token);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        Ok(headers)
    }

    /// GETs `path` with `query` and extra headers, retrying 429 (after `Retry-After`),
    /// 5xx and network errors; maps 401/403/404.
    async fn get(
        &self,
        account: &Account<'_>,
        what: &'static str,
        path: &str,
        query: &[(&str, String)],
        extra: &[(&'static str, &'static str)],
    ) -> Result<reqwest::Response, VtexError> {
        let url = format!("{}{path}", self.base_for(account));
        let mut headers = Self::headers(account)?;
        for (name, value) in extra {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        let mut last = VtexError::Status { status: 0, what };
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let wait = match &last {
                    VtexError::Status { status: 429, .. } => Duration::ZERO,
                    _ => Duration::from_millis(200 * 2u64.pow(attempt - 1)),
                };
                tokio::time::sleep(wait).await;
            }
            let response = self
                .http
                .get(&url)
                .headers(headers.clone())
                .query(query)
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(error) => {
                    last = VtexError::Transport {
                        what,
                        reason: error.without_url().to_string(),
                    };
                    continue;
                }
            };
            match response.status() {
                status if status.is_success() => return Ok(response),
                StatusCode::UNAUTHORIZED => return Err(VtexError::Unauthorized),
                StatusCode::FORBIDDEN => return Err(VtexError::Forbidden(what)),
                StatusCode::NOT_FOUND => return Err(VtexError::NotFound(what)),
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(response.headers()).unwrap_or(Duration::from_secs(1));
                    last = VtexError::Status { status: 429, what };
                    if wait > MAX_RETRY_AFTER {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                }
                status if status.is_server_error() => {
                    last = VtexError::Status {
                        status: status.as_u16(),
                        what,
                    };
                }
                status => {
                    return Err(VtexError::Status {
                        status: status.as_u16(),
                        what,
                    });
                }
            }
        }
        Err(last)
    }

    async fn json<T: DeserializeOwned>(
        what: &'static str,
        response: reqwest::Response,
    ) -> Result<T, VtexError> {
        let bytes = response.bytes().await.map_err(|e| VtexError::Transport {
            what,
            reason: e.without_url().to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| VtexError::Decode {
            what,
            reason: e.to_string(),
        })
    }

    /// Can these credentials list orders? (`GET /api/oms/pvt/orders`, one order.)
    pub async fn probe_orders(&self, account: &Account<'_>) -> Result<(), VtexError> {
        let query = [("page", "1".to_owned()), ("per_page", "1".to_owned())];
        let response = self
            .get(account, "orders", "/api/oms/pvt/orders", &query, &[])
            .await?;
        Self::json::<OrderList>("orders", response)
            .await
            .map(|_| ())
    }

    /// Can these credentials read customers? (`GET /api/dataentities/CL/search`, one
    /// document.)
    pub async fn probe_customers(&self, account: &Account<'_>) -> Result<(), VtexError> {
        let query = [("_fields", "id".to_owned())];
        let response = self
            .get(
                account,
                "customers",
                "/api/dataentities/CL/search",
                &query,
                &[("REST-Range", "resources=0-0")],
            )
            .await?;
        Self::json::<Vec<serde_json::Value>>("customers", response)
            .await
            .map(|_| ())
    }

    /// One page of orders created in `[from, to]`, oldest first.
    pub async fn list_orders(
        &self,
        account: &Account<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: u32,
    ) -> Result<OrderList, VtexError> {
        let query = [
            ("orderBy", "creationDate,asc".to_owned()),
            ("page", page.to_string()),
            ("per_page", ORDERS_PER_PAGE.to_string()),
            ("f_creationDate", creation_date_filter(from, to)),
        ];
        let response = self
            .get(account, "orders", "/api/oms/pvt/orders", &query, &[])
            .await?;
        Self::json("orders", response).await
    }

    /// One order's details.
    pub async fn order(&self, account: &Account<'_>, order_id: &str) -> Result<Order, VtexError> {
        // Order ids are `v123abc-01`-like; anything else would change the path.
        if order_id.is_empty()
            || !order_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(VtexError::NotFound("order"));
        }
        let response = self
            .get(
                account,
                "order",
                &format!("/api/oms/pvt/orders/{order_id}"),
                &[],
                &[],
            )
            .await?;
        Self::json("order", response).await
    }

    /// One scroll page of `CL` documents: the first call opens the scroll, the next pass
    /// the token it returned. An empty page means the end.
    pub async fn scroll_customers(
        &self,
        account: &Account<'_>,
        token: Option<&str>,
    ) -> Result<(Vec<Customer>, Option<String>), VtexError> {
        let query = match token {
            None => vec![
                ("_size", CUSTOMERS_PER_SCROLL.to_string()),
                ("_fields", CUSTOMER_FIELDS.to_owned()),
            ],
            Some(token) => vec![("_token", token.to_owned())],
        };
        let response = self
            .get(
                account,
                "customers",
                "/api/dataentities/CL/scroll",
                &query,
                &[],
            )
            .await?;
        let next = response
            .headers()
            .get("X-VTEX-MD-TOKEN")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| token.map(str::to_owned));
        let page = Self::json("customers", response).await?;
        Ok((page, next))
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}
