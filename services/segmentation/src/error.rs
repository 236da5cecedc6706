//! The segmentation service's one error type. Codes are listed in `docs/errors.md`.

use actix_web::http::StatusCode;
use mkt_error::{
    DescribeError, Described, ErrorInfo, FieldErrors, field_details, push_field_error,
};

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

mkt_error::api_error!(ApiError, internal: ApiError::Internal);

impl DescribeError for ApiError {
    fn describe(&self) -> Described<'_> {
        let info = match self {
            ApiError::InvalidCriteria(errors) => {
                let mut details = FieldErrors::new();
                for e in errors {
                    push_field_error(&mut details, e.path.clone(), e.message.clone());
                }
                ErrorInfo::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_segment_criteria",
                    "The segment rules are invalid.",
                )
                .with_details(field_details(&details))
            }
            ApiError::InvalidSegment(details) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Invalid segment data provided.",
            )
            .with_details(details.clone()),
            ApiError::SegmentNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "segment_not_found",
                format!("Segment with ID {id} not found."),
            ),
            ApiError::InvalidBody(reason) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("Invalid JSON body: {reason}"),
            ),
            ApiError::InvalidQuery(reason) => {
                ErrorInfo::new(StatusCode::BAD_REQUEST, "invalid_query", reason.clone())
            }
            ApiError::UploadTooLarge(max) => ErrorInfo::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("An upload may be at most {max} bytes."),
            ),
            ApiError::Auth(e) => return Described::Delegated(e),
            ApiError::Internal(cause) => return Described::Internal(cause),
        };
        Described::Client(info)
    }
}
