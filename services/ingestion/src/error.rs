//! The ingestion service's one error type. Codes are listed in `docs/errors.md`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use mkt_error::{ErrorInfo, render};

use crate::domain::customer::FieldErrors;

/// Everything a request to this service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The customer payload is invalid (seed 000's message and per-field details).
    #[error("invalid customer data")]
    InvalidCustomer(FieldErrors),
    /// No customer with that id in the caller's tenant.
    #[error("customer {0} not found")]
    CustomerNotFound(String),
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
            ApiError::InvalidCustomer(_) => StatusCode::BAD_REQUEST,
            ApiError::CustomerNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Auth(e) => e.status_code(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::InvalidCustomer(details) => render(
                ErrorInfo::new(StatusCode::BAD_REQUEST, "validation_failed", "Invalid user data provided.")
                    .with_details(serde_json::to_value(details).unwrap_or_default()),
            ),
            ApiError::CustomerNotFound(id) => render(ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "customer_not_found",
                format!("Customer with ID {id} not found."),
            )),
            ApiError::Auth(e) => e.error_response(),
            ApiError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed");
                mkt_error::internal()
            }
        }
    }
}
