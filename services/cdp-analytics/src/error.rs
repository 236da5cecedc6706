//! The cdp-analytics service's one error type. Codes are listed in `docs/errors.md`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use mkt_error::{ErrorInfo, render};

/// Everything a request to this service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or query is invalid; details keyed by field.
    #[error("invalid request")]
    Invalid(serde_json::Value),
    /// The path names another tenant than the token's.
    #[error("tenant {0} not found")]
    TenantNotFound(String),
    /// No customer with that id in the caller's tenant.
    #[error("customer {0} not found")]
    CustomerNotFound(String),
    /// Integrations: no integration with that id in the caller's tenant.
    #[error("integration {0} not found")]
    IntegrationNotFound(String),
    /// A third party (VTEX) refused or failed.
    #[error("upstream: {0}")]
    Upstream(String),
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

impl ApiError {
    /// A single-field validation error.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid(serde_json::json!({ field: [message.into()] }))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::TenantNotFound(_)
            | ApiError::CustomerNotFound(_)
            | ApiError::IntegrationNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Auth(e) => e.status_code(),
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            ApiError::Invalid(details) => render(
                ErrorInfo::new(status, "validation_failed", "Invalid request parameters.")
                    .with_details(details.clone()),
            ),
            ApiError::TenantNotFound(id) => render(ErrorInfo::new(
                status,
                "tenant_not_found",
                format!("Tenant with ID {id} not found."),
            )),
            ApiError::CustomerNotFound(id) => render(ErrorInfo::new(
                status,
                "customer_not_found",
                format!("Customer with ID {id} not found."),
            )),
            ApiError::IntegrationNotFound(id) => render(ErrorInfo::new(
                status,
                "integration_not_found",
                format!("Integration with ID {id} not found."),
            )),
            ApiError::Upstream(reason) => {
                render(ErrorInfo::new(status, "upstream_failed", reason.clone()))
            }
            ApiError::Auth(e) => e.error_response(),
            ApiError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed");
                mkt_error::internal()
            }
        }
    }
}
