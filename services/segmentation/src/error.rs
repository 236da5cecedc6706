//! The segmentation service's one error type. Codes are listed in `docs/errors.md`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use mkt_error::{ErrorInfo, render};

use crate::domain::rules::RuleError;

/// Everything a request to this service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A rule is invalid; details are keyed by the path of the bad node.
    #[error("invalid segment criteria")]
    InvalidCriteria(Vec<RuleError>),
    /// The body does not have the expected shape.
    #[error("invalid body: {0}")]
    InvalidBody(String),
    /// Field problems outside the rules (name, type, customer ids).
    #[error("invalid segment")]
    InvalidSegment(serde_json::Value),
    /// A query parameter is invalid.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// An upload over its byte cap (the cap).
    #[error("upload too large")]
    UploadTooLarge(u64),
    /// No segment with that id in the caller's tenant.
    #[error("segment {0} not found")]
    SegmentNotFound(String),
    /// Authentication or authorisation failed.
    #[error(transparent)]
    Auth(#[from] mkt_auth::AuthError),
    /// Anything unexpected: logged, answered with a generic 500.
    #[error("internal: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<diesel::result::Error> for ApiError {
    fn from(error: diesel::result::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl From<mkt_db::diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(error: mkt_db::diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        ApiError::Internal(anyhow::anyhow!("database pool: {error}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidCriteria(_)
            | ApiError::InvalidBody(_)
            | ApiError::InvalidSegment(_)
            | ApiError::InvalidQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::UploadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::SegmentNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Auth(e) => e.status_code(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::InvalidCriteria(errors) => {
                let mut details = serde_json::Map::new();
                for e in errors {
                    let entry = details
                        .entry(e.path.clone())
                        .or_insert_with(|| serde_json::json!([]));
                    if let Some(list) = entry.as_array_mut() {
                        list.push(serde_json::Value::String(e.message.clone()));
                    }
                }
                render(
                    ErrorInfo::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_segment_criteria",
                        "The segment rules are invalid.",
                    )
                    .with_details(serde_json::Value::Object(details)),
                )
            }
            ApiError::InvalidSegment(details) => render(
                ErrorInfo::new(
                    StatusCode::BAD_REQUEST,
                    "validation_failed",
                    "Invalid segment data provided.",
                )
                .with_details(details.clone()),
            ),
            ApiError::SegmentNotFound(id) => render(ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "segment_not_found",
                format!("Segment with ID {id} not found."),
            )),
            ApiError::InvalidBody(reason) => render(ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("Invalid JSON body: {reason}"),
            )),
            ApiError::UploadTooLarge(max) => render(ErrorInfo::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("An upload may be at most {max} bytes."),
            )),
            ApiError::InvalidQuery(reason) => render(ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                reason.clone(),
            )),
            ApiError::Auth(e) => e.error_response(),
            ApiError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed");
                mkt_error::internal()
            }
        }
    }
}
