//! Forwarding a request to its owning service: streamed bodies both ways, hop-by-hop
//! headers dropped, `X-Request-Id` and `traceparent` added.

use std::time::Duration;

use actix_web::http::header::{HeaderMap as ActixHeaders, HeaderName};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use mkt_auth::Verifier;
use mkt_telemetry::RequestId;

use crate::config::Upstreams;
use crate::error::GatewayError;
use crate::routes::{self, Service};

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Shared proxy state.
pub struct Proxy {
    /// Outbound client (connection pooling across requests).
    pub client: reqwest::Client,
    /// Where services live.
    pub upstreams: Upstreams,
    /// Response-header deadline.
    pub timeout: Duration,
    /// Response-header deadline of long uploads.
    pub upload_timeout: Duration,
}

impl Proxy {
    /// Builds the client from the settings.
    pub fn new(upstreams: Upstreams) -> anyhow::Result<Self> {
        let client = mkt_http_client::builder()
            .connect_timeout(Duration::from_millis(upstreams.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let timeout = Duration::from_millis(upstreams.timeout_ms);
        let upload_timeout = Duration::from_millis(upstreams.upload_timeout_ms);
        Ok(Self {
            client,
            upstreams,
            timeout,
            upload_timeout,
        })
    }

    fn base(&self, service: Service) -> (&'static str, &str) {
        match service {
            Service::Ingestion => ("ingestion", &self.upstreams.ingestion),
            Service::Segmentation => ("segmentation", &self.upstreams.segmentation),
            Service::Campaign => ("campaign", &self.upstreams.campaign),
            Service::Webhook => ("webhook", &self.upstreams.webhook),
            Service::CdpAnalytics => ("cdp-analytics", &self.upstreams.cdp_analytics),
        }
    }
}

fn copy_headers(from: &ActixHeaders) -> reqwest::header::HeaderMap {
    let mut out = reqwest::header::HeaderMap::new();
    for (name, value) in from {
        if HOP_BY_HOP.contains(&name.as_str())
            || name.as_str() == "traceparent"
            || name.as_str() == "tracestate"
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    out
}

/// Refuses a path with a `.` or `..` segment, also percent-encoded (`%2e`, `%2E%2e`), or
/// with an encoded slash or any backslash in a segment (`%2f`, `%5c`, `\\`): URL parsers
/// turn those into other paths (RFC 3986 section 5.2.4; WHATWG treats `\\` as `/`).
pub fn check_path(path: &str) -> Result<(), GatewayError> {
    for segment in path.split('/') {
        let lower = segment.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        if dots == "." || dots == ".." {
            return Err(GatewayError::BadPath("dot segments are not allowed"));
        }
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
            return Err(GatewayError::BadPath(
                "encoded slashes and backslashes are not allowed",
            ));
        }
    }
    Ok(())
}

/// The catch-all handler for `/api/...`: authenticate, authorise by the routing table,
/// forward.
pub async fn forward(
    req: HttpRequest,
    payload: web::Payload,
    proxy: web::Data<Proxy>,
    verifier: web::Data<Verifier>,
) -> Result<HttpResponse, GatewayError> {
    // The path is checked before it is authorised, and forwarded byte for byte: the
    // upstream URL parser would resolve dot segments, so a path that has any is refused
    // rather than authorised as one path and forwarded as another.
    check_path(req.path())?;
    let rule = routes::resolve(req.path()).ok_or(GatewayError::NoRoute)?;
    let principal = verifier.verify_request(&req).await?;
    principal.require_any(rule.allowed(req.method()))?;

    let (name, base) = proxy.base(rule.service);
    let mut url = format!("{}{}", base.trim_end_matches('/'), req.path());
    if !req.query_string().is_empty() {
        url.push('?');
        url.push_str(req.query_string());
    }
    let mut headers = copy_headers(req.headers());
    if let Some(RequestId(id)) = req.extensions().get::<RequestId>().cloned()
        && let Ok(value) = reqwest::header::HeaderValue::from_str(&id)
    {
        headers.insert(mkt_telemetry::REQUEST_ID_HEADER, value);
    }
    for (key, value) in mkt_telemetry::current_context_headers() {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::from_bytes(key.as_bytes()),
            reqwest::header::HeaderValue::from_str(&value),
        ) {
            headers.insert(name, value);
        }
    }
    if let Some(peer) = req.peer_addr()
        && let Ok(value) = reqwest::header::HeaderValue::from_str(&peer.ip().to_string())
    {
        headers.insert("x-forwarded-for", value);
    }

    // actix's payload is not Send; pump it through a channel into reqwest's body while
    // the request is in flight, so uploads stream instead of buffering.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|e| GatewayError::Unavailable(name, e.to_string()))?;
    let send = proxy
        .client
        .request(method, &url)
        .headers(headers)
        .body(body)
        .send();
    let pump = async move {
        let mut payload = payload;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    };
    let deadline = if rule.long {
        proxy.upload_timeout
    } else {
        proxy.timeout
    };
    let (response, ()) = futures_util::join!(tokio::time::timeout(deadline, send), pump);
    let response = match response {
        Err(_) => return Err(GatewayError::Timeout(name)),
        Ok(Err(e)) if e.is_timeout() => return Err(GatewayError::Timeout(name)),
        Ok(Err(e)) => return Err(GatewayError::Unavailable(name, e.to_string())),
        Ok(Ok(response)) => response,
    };

    let status = actix_web::http::StatusCode::from_u16(response.status().as_u16())
        .map_err(|e| GatewayError::Unavailable(name, e.to_string()))?;
    let mut builder = HttpResponse::build(status);
    for (key, value) in response.headers() {
        if HOP_BY_HOP.contains(&key.as_str()) || key.as_str() == mkt_telemetry::REQUEST_ID_HEADER {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(key.as_str().as_bytes()) {
            builder.append_header((name, value.as_bytes()));
        }
    }
    let stream = response
        .bytes_stream()
        .map(|chunk| chunk.map_err(|e| actix_web::error::ErrorBadGateway(e.to_string())));
    Ok(builder.streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::check_path;

    #[test]
    fn dot_segments_and_encoded_separators_are_refused() {
        for path in [
            "/api/v2/cdp/customers/x/profile/../../../tenant-integrations",
            "/api/v2/cdp/customers/x/profile/./x",
            "/api/v2/cdp/customers/x/profile/%2e%2e/%2E%2e/x",
            "/api/v2/cdp/customers/x/profile/.%2E",
            "/api/v2/cdp/customers/x/profile/%2e",
            "/api/v2/cdp/customers/x%2f..%2f..%2ftenant-integrations",
            "/api/v2/cdp/customers/x%2F/profile",
            "/api/v2/cdp/customers/x%5c../profile",
            "/api/v2/cdp/customers/x\\..\\profile",
        ] {
            assert!(check_path(path).is_err(), "{path}");
        }
        for path in [
            "/api/v2/cdp/customers/x/profile",
            "/api/v1/marketing/segments/a.b/customers",
            "/api/v1/marketing/segments/...",
            "/api/v1/marketing/segments/%2e%2e%2e",
        ] {
            assert!(check_path(path).is_ok(), "{path}");
        }
    }
}
