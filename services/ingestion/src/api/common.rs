//! Helpers every handler of this service uses.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::service::Reply;

/// Parses an already-read JSON body into a typed input (unknown fields and wrong types
/// are a 400 `invalid_json`).
pub fn parse<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::InvalidBody(e.to_string()))
}

/// Sends a use case's reply; a replayed one says so in `Idempotent-Replayed`.
pub fn respond(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut builder = HttpResponse::build(status);
    if reply.replayed {
        builder.insert_header(("Idempotent-Replayed", "true"));
    }
    if status == StatusCode::NO_CONTENT {
        builder.finish()
    } else {
        builder.json(reply.body)
    }
}

/// Highest 1-based `page` a list accepts: `(page - 1) * limit` must not overflow (a
/// huge page used to panic the worker); listed in docs/errors.md.
pub const MAX_PAGE: i64 = 100_000;
/// Most items per page.
pub const MAX_LIMIT: i64 = 200;

/// `?page=&limit=` (1-based page up to [`MAX_PAGE`], 1..=200 items, default 50).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (at most 100000).
    pub page: Option<i64>,
    /// Items per page (1-200, default 50).
    pub limit: Option<i64>,
}

impl PageQuery {
    /// Validated (page, limit).
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(50);
        let page_ok = (1..=MAX_PAGE).contains(&page);
        let limit_ok = (1..=MAX_LIMIT).contains(&limit);
        if !page_ok || !limit_ok {
            let mut errors = crate::domain::FieldErrors::new();
            if !page_ok {
                crate::domain::push(
                    &mut errors,
                    "page",
                    format!("must be between 1 and {MAX_PAGE}"),
                );
            }
            if !limit_ok {
                crate::domain::push(
                    &mut errors,
                    "limit",
                    format!("must be between 1 and {MAX_LIMIT}"),
                );
            }
            return Err(ApiError::InvalidQuery(errors));
        }
        Ok((page, limit))
    }
}

/// The list envelope with pagination.
pub fn page_body(
    data: impl serde::Serialize,
    page: i64,
    limit: i64,
    total: i64,
) -> serde_json::Value {
    serde_json::json!({
        "success": true,
        "data": data,
        "pagination": {"page": page, "limit": limit, "total": total, "total_pages": (total + limit - 1) / limit},
    })
}

/// Parses the items of a batch body, keeping per-item failures in place.
pub fn batch_items<T: DeserializeOwned, V>(
    items: Vec<serde_json::Value>,
    validate: impl Fn(T) -> Result<V, ApiError>,
) -> Result<Vec<Result<V, ApiError>>, ApiError> {
    if items.len() > crate::service::MAX_BATCH {
        return Err(ApiError::BatchTooLarge(crate::service::MAX_BATCH));
    }
    Ok(items
        .into_iter()
        .map(|item| parse::<T>(item).and_then(&validate))
        .collect())
}
