//! The gateway's one error type. Upstream errors pass through untouched; these are the
//! gateway's own answers.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use mkt_error::{ErrorInfo, render};

/// Why the gateway answered itself.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Token missing/invalid (401) or role not allowed (403).
    #[error(transparent)]
    Auth(#[from] mkt_auth::AuthError),
    /// The path has a dot segment or an encoded separator (see `proxy::check_path`).
    #[error("bad path: {0}")]
    BadPath(&'static str),
    /// No service owns the path.
    #[error("no route")]
    NoRoute,
    /// The upstream could not be reached or broke mid-request.
    #[error("upstream {0} unavailable: {1}")]
    Unavailable(&'static str, String),
    /// The upstream did not answer in time.
    #[error("upstream {0} timed out")]
    Timeout(&'static str),
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        match self {
            GatewayError::Auth(e) => e.status_code(),
            GatewayError::BadPath(_) => StatusCode::BAD_REQUEST,
            GatewayError::NoRoute => StatusCode::NOT_FOUND,
            GatewayError::Unavailable(..) => StatusCode::BAD_GATEWAY,
            GatewayError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            GatewayError::Auth(e) => e.error_response(),
            GatewayError::BadPath(reason) => render(ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!("Invalid path: {reason}"),
            )),
            GatewayError::NoRoute => render(ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "No such route",
            )),
            GatewayError::Unavailable(service, cause) => {
                tracing::warn!(service, %cause, "upstream unavailable");
                render(ErrorInfo::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    format!("The {service} service is unavailable"),
                ))
            }
            GatewayError::Timeout(service) => {
                tracing::warn!(service, "upstream timed out");
                render(ErrorInfo::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!("The {service} service did not answer in time"),
                ))
            }
        }
    }
}
