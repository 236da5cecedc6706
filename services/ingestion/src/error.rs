//! The ingestion service's one error type. Codes are listed in `docs/errors.md`.

use actix_web::ResponseError;
use actix_web::http::StatusCode;
use mkt_error::{DescribeError, Described, ErrorInfo, field_details};

use crate::domain::FieldErrors;

/// Everything a request to this service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The customer payload is invalid (seed 000's message and per-field details).
    #[error("invalid customer data")]
    InvalidCustomer(FieldErrors),
    /// The order payload is invalid.
    #[error("invalid order data")]
    InvalidOrder(FieldErrors),
    /// The event payload is invalid.
    #[error("invalid event data")]
    InvalidEvent(FieldErrors),
    /// The body does not have the expected shape (types, unknown fields).
    #[error("invalid body: {0}")]
    InvalidBody(String),
    /// Query parameters out of range.
    #[error("invalid query")]
    InvalidQuery(FieldErrors),
    /// A request header is malformed.
    #[error("invalid header {0}: {1}")]
    InvalidHeader(&'static str, &'static str),
    /// The CSV file cannot be read.
    #[error("invalid csv: {0}")]
    InvalidCsv(String),
    /// The CSV header has unknown, duplicate or missing columns.
    #[error("invalid csv header")]
    InvalidCsvHeader(FieldErrors),
    /// No import job with that id in the caller's tenant.
    #[error("import {0} not found")]
    ImportNotFound(String),
    /// An upload over its byte cap (the cap).
    #[error("upload too large")]
    UploadTooLarge(u64),
    /// A batch over the item limit.
    #[error("batch too large")]
    BatchTooLarge(usize),
    /// No customer with that reference in the caller's tenant.
    #[error("customer {0} not found")]
    CustomerNotFound(String),
    /// No order with that id in the caller's tenant.
    #[error("order {0} not found")]
    OrderNotFound(String),
    /// A status change the order's lifecycle does not allow.
    #[error("order cannot go from {from} to {to}")]
    InvalidTransition {
        /// Current status.
        from: String,
        /// Requested status.
        to: String,
    },
    /// A unique value (email, external id) already belongs to another record.
    #[error("conflict: {0}")]
    Conflict(&'static str, &'static str),
    /// The body names another tenant than the token.
    #[error("tenant mismatch")]
    TenantMismatch,
    /// The idempotency key was used with a different request.
    #[error("idempotency key reused with a different body")]
    IdempotencyMismatch,
    /// Authentication or authorisation failed.
    #[error(transparent)]
    Auth(#[from] mkt_auth::AuthError),
    /// Anything unexpected: logged, answered with a generic 500.
    #[error("internal: {0:#}")]
    Internal(#[from] anyhow::Error),
}

mkt_error::api_error!(ApiError, internal: ApiError::Internal, conflicts: {
    "customers_tenant_email_key" => ApiError::Conflict(
        "email_taken",
        "Another customer already has this email.",
    ),
    "customers_tenant_external_id_key" => ApiError::Conflict(
        "external_id_taken",
        "Another customer already has this external_id.",
    ),
    "orders_tenant_external_id_key" => ApiError::Conflict(
        "duplicate_order",
        "An order with this externalId already exists.",
    ),
    "idempotency_keys_pkey" => ApiError::Conflict(
        "idempotency_in_progress",
        "A request with this Idempotency-Key is being processed; retry shortly.",
    ),
});

impl ApiError {
    /// The status, code, message and details of this error.
    pub fn info(&self) -> ErrorInfo {
        match self {
            ApiError::InvalidCustomer(errors) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Invalid user data provided.",
            )
            .with_details(field_details(errors)),
            ApiError::InvalidOrder(errors) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Invalid order data provided.",
            )
            .with_details(field_details(errors)),
            ApiError::InvalidEvent(errors) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Invalid event data provided.",
            )
            .with_details(field_details(errors)),
            ApiError::InvalidBody(reason) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("Invalid JSON body: {reason}"),
            ),
            ApiError::InvalidQuery(errors) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "Invalid query parameters.",
            )
            .with_details(field_details(errors)),
            ApiError::InvalidHeader(name, reason) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_header",
                format!("Invalid {name} header: {reason}"),
            ),
            ApiError::InvalidCsv(reason) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_csv",
                format!("Invalid CSV: {reason}"),
            ),
            ApiError::InvalidCsvHeader(errors) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "invalid_csv_header",
                "The CSV header is not valid for this import.",
            )
            .with_details(field_details(errors)),
            ApiError::ImportNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "import_not_found",
                format!("Import with ID {id} not found."),
            ),
            ApiError::UploadTooLarge(max) => ErrorInfo::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("An upload may be at most {max} bytes."),
            ),
            ApiError::BatchTooLarge(max) => ErrorInfo::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!("A batch may contain at most {max} items."),
            ),
            ApiError::CustomerNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "customer_not_found",
                format!("Customer with ID {id} not found."),
            ),
            ApiError::OrderNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "order_not_found",
                format!("Order with ID {id} not found."),
            ),
            ApiError::InvalidTransition { from, to } => ErrorInfo::new(
                StatusCode::CONFLICT,
                "invalid_status_transition",
                format!("An order cannot go from {from} to {to}."),
            ),
            ApiError::Conflict(code, message) => {
                ErrorInfo::new(StatusCode::CONFLICT, code, *message)
            }
            ApiError::TenantMismatch => ErrorInfo::new(
                StatusCode::FORBIDDEN,
                "tenant_mismatch",
                "tenant_id in the body does not match the token's tenant.",
            ),
            ApiError::IdempotencyMismatch => ErrorInfo::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request.",
            ),
            ApiError::Auth(e) => ErrorInfo::new(e.status_code(), "auth", e.to_string()),
            ApiError::Internal(_) => ErrorInfo::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
            ),
        }
    }
}

impl DescribeError for ApiError {
    fn describe(&self) -> Described<'_> {
        match self {
            ApiError::Auth(e) => Described::Delegated(e),
            ApiError::Internal(cause) => Described::Internal(cause),
            other => Described::Client(other.info()),
        }
    }
}
