//! `/api/v2/cdp/orders` handlers.

use actix_web::{HttpRequest, HttpResponse, web};
use mkt_auth::policy;
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::common::{PageQuery, batch_items, page_body, parse, respond};
use crate::domain::order::{OrderInput, OrderStatus, OrderStatusPatch};
use crate::error::ApiError;
use crate::service::{self, Idempotency};
use crate::views::{OrderEnvelope, envelope};

fn status_error() -> ApiError {
    let mut errors = crate::domain::FieldErrors::new();
    crate::domain::push(
        &mut errors,
        "status",
        "must be one of processing, shipped, delivered, cancelled, refunded",
    );
    ApiError::InvalidOrder(errors)
}

/// Record an order (seed 000); the customer must exist.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/orders",
    tag = "orders",
    request_body = OrderInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses(
        (status = 201, description = "Recorded", body = OrderEnvelope),
        (status = 400, description = "Invalid order data", body = mkt_error::ErrorEnvelope),
        (status = 404, description = "Unknown customer", body = mkt_error::ErrorEnvelope),
        (status = 409, description = "externalId already recorded", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn place(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ORDERS_PLACE)?;
    let idempotency = Idempotency::from_request(&req, &body)?;
    let order = parse::<OrderInput>(body.into_inner())?
        .validate()
        .map_err(ApiError::InvalidOrder)?;
    Ok(respond(
        service::orders::place(&infra, &principal.tenant, idempotency.as_ref(), order).await?,
    ))
}

/// A batch of orders: `{"orders": [...]}`, up to 1,000.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrdersBatch {
    /// The orders (each as for a single POST).
    #[schema(value_type = Vec<OrderInput>)]
    pub orders: Vec<serde_json::Value>,
}

/// Record up to 1,000 orders; valid ones commit even when others fail.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/orders/batch",
    tag = "orders",
    request_body = OrdersBatch,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses(
        (status = 200, description = "Per-item results in request order"),
        (status = 413, description = "More than 1,000 items", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn place_batch(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ORDERS_PLACE_BATCH)?;
    let idempotency = Idempotency::from_request(&req, &body)?;
    let batch: OrdersBatch = parse(body.into_inner())?;
    let items = batch_items::<OrderInput, _>(batch.orders, |input| {
        input.validate().map_err(ApiError::InvalidOrder)
    })?;
    Ok(respond(
        service::orders::place_batch(&infra, &principal.tenant, idempotency.as_ref(), items)
            .await?,
    ))
}

/// Filters of `GET /orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this customer's orders (our id).
    pub customer_id: Option<Uuid>,
    /// Only this status.
    pub status: Option<String>,
}

/// List orders, newest first.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/orders",
    operation_id = "list_orders",
    tag = "orders",
    params(ListQuery, PageQuery),
    responses((status = 200, description = "A page of orders")),
    security(("bearer" = []))
)]
pub async fn list(
    principal: Principal,
    infra: web::Data<Infra>,
    filter: web::Query<ListQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ORDERS_LIST)?;
    let (page, limit) = page.resolve()?;
    let status = match filter.status.as_deref() {
        None => None,
        Some(raw) => Some(OrderStatus::from_name(raw).ok_or_else(status_error)?),
    };
    let (data, total) = service::orders::list(
        &infra,
        &principal.tenant,
        filter.customer_id,
        status,
        page,
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page_body(data, page, limit, total)))
}

/// Read one order with its items.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/orders/{id}",
    operation_id = "get_order",
    tag = "orders",
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderEnvelope),
        (status = 404, description = "No such order in this tenant", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ORDERS_GET)?;
    let data = service::orders::find(&infra, &principal.tenant, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(envelope("Order retrieved.", data)))
}

/// Change an order's status (a refund or cancellation stops it counting as spend).
#[utoipa::path(
    patch,
    path = "/api/v2/cdp/orders/{id}",
    tag = "orders",
    request_body = OrderStatusPatch,
    params(("id" = Uuid, Path, description = "Order id"), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses(
        (status = 200, description = "The updated order", body = OrderEnvelope),
        (status = 404, description = "No such order", body = mkt_error::ErrorEnvelope),
        (status = 409, description = "Transition not allowed", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn set_status(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ORDERS_SET_STATUS)?;
    let idempotency = Idempotency::from_request(&req, &body)?;
    let patch: OrderStatusPatch = parse(body.into_inner())?;
    let status = OrderStatus::from_name(patch.status.trim()).ok_or_else(status_error)?;
    Ok(respond(
        service::orders::set_status(
            &infra,
            &principal.tenant,
            idempotency.as_ref(),
            id.into_inner(),
            status,
        )
        .await?,
    ))
}
