//! The cdp-analytics service's one error type. Codes are listed in `docs/errors.md`.

use actix_web::http::StatusCode;
use mkt_error::{DescribeError, Described, ErrorInfo};

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

mkt_error::api_error!(ApiError, internal: ApiError::Internal);

impl ApiError {
    /// A single-field validation error.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid(serde_json::json!({ field: [message.into()] }))
    }
}

impl DescribeError for ApiError {
    fn describe(&self) -> Described<'_> {
        let info = match self {
            ApiError::Invalid(details) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Invalid request parameters.",
            )
            .with_details(details.clone()),
            ApiError::TenantNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "tenant_not_found",
                format!("Tenant with ID {id} not found."),
            ),
            ApiError::CustomerNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "customer_not_found",
                format!("Customer with ID {id} not found."),
            ),
            ApiError::IntegrationNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "integration_not_found",
                format!("Integration with ID {id} not found."),
            ),
            ApiError::Upstream(reason) => {
                ErrorInfo::new(StatusCode::BAD_GATEWAY, "upstream_failed", reason.clone())
            }
            ApiError::Auth(e) => return Described::Delegated(e),
            ApiError::Internal(cause) => return Described::Internal(cause),
        };
        Described::Client(info)
    }
}
