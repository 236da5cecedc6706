//! The error envelope every HTTP answer of ours uses, and its actix-web plumbing.
//!
//! Owns: the wire shape of errors (`{"success": false, "error", "code", "details",
//! "status", "path", "timestamp"}`, a superset of the seeds' error bodies), the
//! middleware that stamps `path`/`timestamp` on it, and extractor configs that turn
//! malformed JSON, query strings and paths into 4xx envelopes instead of actix's
//! plain-text bodies.
//!
//! Error policy (applies to every service):
//! - Each service has one `ApiError` enum implementing `ResponseError` by calling
//!   [`render`]; `code` values are stable snake_case strings listed in `docs/errors.md`.
//! - Client mistakes are 4xx with a human message and, for validation, `details` keyed
//!   by field path (`{"address.zipCode": ["is required"]}`).
//! - Unknown errors are logged with their cause (the request id is on the span) and
//!   answered with [`internal`]'s generic body: a cause never leaks to a client.
//!
//! - [`toolkit`] is what every `ApiError` shares: [`FieldErrors`], [`DescribeError`] and
//!   [`api_error!`] (status and code declared once per variant; database and pool
//!   failures mapped once).
//!
//! Must never: know a service's error variants.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, error};
use serde::{Deserialize, Serialize};

pub mod toolkit;

pub use toolkit::{
    DescribeError, Described, FieldErrors, PoolError, field_details, field_error, push_field_error,
    respond, status_of, unique_violation,
};

/// What [`api_error!`] expands to needs, so services need not depend on it themselves.
#[doc(hidden)]
pub mod __private {
    pub use actix_web;
    pub use anyhow;
    pub use diesel;
}

/// Largest non-envelope error body (in bytes) we read to reuse as the message.
const MAX_FOREIGN_BODY: usize = 4 * 1024;

/// The parts of an error a handler decides; `path` and `timestamp` are added by
/// [`envelope_errors`] because only the middleware sees the request.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (snake_case), see `docs/errors.md`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Optional structured details (validation errors keyed by field path).
    pub details: Option<serde_json::Value>,
}

impl ErrorInfo {
    /// Builds an error without details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// The error body on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    /// Human-readable message.
    pub error: String,
    /// Stable machine-readable code.
    pub code: String,
    /// Structured details; validation errors are keyed by field path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    /// HTTP status, repeated for clients that lose it.
    pub status: u16,
    /// Request path.
    pub path: String,
    /// When the error was produced (UTC, RFC 3339).
    pub timestamp: String,
}

impl ErrorEnvelope {
    fn from_info(info: &ErrorInfo, path: &str) -> Self {
        Self {
            success: false,
            error: info.message.clone(),
            code: info.code.to_owned(),
            details: info.details.clone(),
            status: info.status.as_u16(),
            path: path.to_owned(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

/// Renders an error response. The body is complete except for `path`, which
/// [`envelope_errors`] fills in; the [`ErrorInfo`] rides along in the extensions.
pub fn render(info: ErrorInfo) -> HttpResponse {
    let body = ErrorEnvelope::from_info(&info, "");
    let mut response = HttpResponse::build(info.status).json(body);
    response.extensions_mut().insert(info);
    response
}

/// The generic 500: logs nothing itself (the caller logs the cause) and says nothing
/// about the cause.
pub fn internal() -> HttpResponse {
    render(ErrorInfo::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal server error",
    ))
}

/// Code used when a response carries no [`ErrorInfo`] (actix's own 404, 405...).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        429 => "rate_limited",
        502 => "bad_gateway",
        503 => "service_unavailable",
        504 => "gateway_timeout",
        s if s >= 500 => "internal_error",
        _ => "client_error",
    }
}

/// Middleware (use with `actix_web::middleware::from_fn`) that makes every error
/// response an [`ErrorEnvelope`] carrying the request path.
///
/// Responses rendered by [`render`] get their `path` stamped; bodies that are
/// already JSON from elsewhere (a proxied upstream envelope) pass untouched; anything
/// else (actix's plain-text 404/405/413) is wrapped, its text reused as the message.
pub async fn envelope_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let path = req.path().to_owned();
    let response = next.call(req).await?.map_into_boxed_body();
    if response.status().as_u16() < 400 {
        return Ok(response);
    }
    let status = response.status();
    let known = response.response().extensions().get::<ErrorInfo>().cloned();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let info = match known {
        Some(info) => info,
        None if is_json => return Ok(response),
        None => {
            let (request, http_response) = response.into_parts();
            let text = match actix_web::body::to_bytes_limited(
                http_response.into_body(),
                MAX_FOREIGN_BODY,
            )
            .await
            {
                Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_owned(),
                _ => String::new(),
            };
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("Error").to_owned()
            } else {
                text
            };
            let info = ErrorInfo::new(status, code_for_status(status), message);
            return Ok(ServiceResponse::new(request, rebuild(&info, &path, None)));
        }
    };
    let (request, old) = response.into_parts();
    Ok(ServiceResponse::new(
        request,
        rebuild(&info, &path, Some(&old)),
    ))
}

/// Builds the final envelope response, keeping headers set by the original response
/// (`WWW-Authenticate`, `Retry-After`...).
fn rebuild(info: &ErrorInfo, path: &str, old: Option<&HttpResponse>) -> HttpResponse {
    let mut builder = HttpResponse::build(info.status);
    if let Some(old) = old {
        for (name, value) in old.headers() {
            if name != CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
                builder.append_header((name.clone(), value.clone()));
            }
        }
    }
    builder.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
    let mut response = builder.json(ErrorEnvelope::from_info(info, path));
    response.extensions_mut().insert(info.clone());
    response
}

/// A 400 with per-field details, the shape of every validation failure.
pub fn validation(message: impl Into<String>, details: serde_json::Value) -> ErrorInfo {
    ErrorInfo::new(StatusCode::BAD_REQUEST, "validation_failed", message).with_details(details)
}

/// JSON body extractor settings: a size limit and envelope errors for bad bodies.
pub fn json_config(limit_bytes: usize) -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(limit_bytes)
        .error_handler(|err, _req| {
            let info = match &err {
                error::JsonPayloadError::OverflowKnownLength { .. }
                | error::JsonPayloadError::Overflow { .. } => ErrorInfo::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    err.to_string(),
                ),
                error::JsonPayloadError::ContentType => ErrorInfo::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Content-Type must be application/json",
                ),
                error::JsonPayloadError::Deserialize(inner) => ErrorInfo::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("Invalid JSON body: {inner}"),
                ),
                _ => ErrorInfo::new(StatusCode::BAD_REQUEST, "invalid_json", err.to_string()),
            };
            InfoError(info).into()
        })
}

/// Query-string extractor settings: envelope errors for bad parameters.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        InfoError(ErrorInfo::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("Invalid query parameters: {err}"),
        ))
        .into()
    })
}

/// Path extractor settings: a malformed path parameter (a bad UUID) is a 404-free 400.
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|err, _req| {
        InfoError(ErrorInfo::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("Invalid path parameter: {err}"),
        ))
        .into()
    })
}

/// Adapter so a bare [`ErrorInfo`] can be returned where actix wants an `Error`.
#[derive(Debug)]
pub struct InfoError(pub ErrorInfo);

impl std::fmt::Display for InfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl error::ResponseError for InfoError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }
    fn error_response(&self) -> HttpResponse {
        render(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{App, test, web};

    async fn failing() -> Result<HttpResponse, InfoError> {
        Err(InfoError(validation(
            "Invalid user data provided.",
            serde_json::json!({"email": ["Invalid email format"]}),
        )))
    }

    #[actix_web::test]
    async fn handler_errors_and_unknown_routes_become_envelopes() {
        let app = test::init_service(
            App::new()
                .wrap(actix_web::middleware::from_fn(envelope_errors))
                .app_data(json_config(16))
                .route("/fail", web::get().to(failing))
                .route(
                    "/echo",
                    web::post().to(|body: web::Json<serde_json::Value>| async move {
                        HttpResponse::Ok().json(body.0)
                    }),
                ),
        )
        .await;

        let res =
            test::call_service(&app, test::TestRequest::get().uri("/fail").to_request()).await;
        assert_eq!(res.status(), 400);
        let body: ErrorEnvelope = test::read_body_json(res).await;
        assert_eq!(body.code, "validation_failed");
        assert_eq!(body.path, "/fail");
        assert_eq!(
            body.details.expect("details")["email"][0],
            "Invalid email format"
        );

        let res =
            test::call_service(&app, test::TestRequest::get().uri("/nowhere").to_request()).await;
        assert_eq!(res.status(), 404);
        let body: ErrorEnvelope = test::read_body_json(res).await;
        assert_eq!(
            (body.code.as_str(), body.path.as_str(), body.success),
            ("not_found", "/nowhere", false)
        );

        let res = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/echo")
                .insert_header(("content-type", "application/json"))
                .set_payload("{\"a\": 1234567890123}")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 413);
        let body: ErrorEnvelope = test::read_body_json(res).await;
        assert_eq!(body.code, "payload_too_large");

        let res = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/echo")
                .insert_header(("content-type", "application/json"))
                .set_payload("{oops")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), 400);
        let body: ErrorEnvelope = test::read_body_json(res).await;
        assert_eq!(body.code, "invalid_json");
    }
}
