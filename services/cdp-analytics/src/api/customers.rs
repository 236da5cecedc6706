//! `/api/v2/cdp/customers/{id}/profile` and `/timeline` (seed 004): the customer 360
//! from this service's own read model.

use actix_web::{HttpResponse, web};
use mkt_auth::policy::{self, Operation};
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::error::ApiError;
use crate::store::{customers, scores, timeline};

/// Registers these routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v2/cdp/customers/{id}/profile", web::get().to(profile))
        .route(
            "/api/v2/cdp/customers/{id}/timeline",
            web::get().to(timeline_of),
        );
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(paths(profile, timeline_of))]
pub struct Doc;

/// Seed 004's query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// Seed 004 passes it; the token's tenant is used, another one is a 404.
    pub tenant_id: Option<String>,
    /// Timeline entries (default 50, at most 500).
    pub limit: Option<i64>,
}

async fn live_customer(
    infra: &Infra,
    principal: &Principal,
    operation: &Operation,
    query: &CustomerQuery,
    id: Uuid,
) -> Result<customers::CustomerRow, ApiError> {
    principal.require(operation)?;
    if let Some(tenant) = &query.tenant_id {
        crate::api::process::own_tenant(principal, tenant)?;
    }
    let mut conn = infra.pool.get().await?;
    customers::find(&mut conn, principal.tenant.as_str(), id)
        .await?
        .filter(|c| c.erased_at.is_none())
        .ok_or_else(|| ApiError::CustomerNotFound(id.to_string()))
}

/// The customer 360: profile, RFM, CLV and churn (seed 004).
#[utoipa::path(
    get,
    path = "/api/v2/cdp/customers/{id}/profile",
    tag = "customers",
    params(("id" = Uuid, Path, description = "Customer id"), CustomerQuery),
    responses((status = 200, description = "customer, rfm, clv, churn"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn profile(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
    query: web::Query<CustomerQuery>,
) -> Result<HttpResponse, ApiError> {
    let customer =
        live_customer(&infra, &principal, &policy::CUSTOMER_PROFILE, &query, *id).await?;
    let mut conn = infra.pool.get().await?;
    let score = scores::find(&mut conn, principal.tenant.as_str(), *id).await?;
    let name = customer.name.clone().unwrap_or_default();
    let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
    let s = score.as_ref();
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "data": {
            "customer": {
                "id": customer.customer_id, "external_id": customer.external_id,
                "email": customer.email, "first_name": first, "last_name": last,
                "created_at": customer.signed_up_at,
            },
            "rfm": s.map(|s| json!({
                "segment": s.rfm_segment, "recency_days": s.recency_days, "frequency": s.frequency,
                "monetary": s.monetary, "rfm_score": s.rfm_score,
                "recency_score": s.recency_score, "frequency_score": s.frequency_score,
                "monetary_score": s.monetary_score,
            })),
            "clv": s.map(|s| json!({
                "historical_value": s.historical_value, "predicted_value": s.predicted_value,
                "expected_purchases": s.expected_purchases, "clv_tier": s.clv_tier,
                "currency": s.currency,
            })),
            "churn": s.map(|s| json!({"risk": s.churn_risk, "probability": s.churn_probability})),
            "as_of": s.map(|s| s.as_of),
        },
    })))
}

/// The customer's orders, tracked events and message events, newest first (seed 004).
#[utoipa::path(
    get,
    path = "/api/v2/cdp/customers/{id}/timeline",
    tag = "customers",
    params(("id" = Uuid, Path, description = "Customer id"), CustomerQuery),
    responses((status = 200, description = "`{events: [{type, timestamp, details}]}`"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn timeline_of(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
    query: web::Query<CustomerQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1..500"));
    }
    live_customer(&infra, &principal, &policy::CUSTOMER_TIMELINE, &query, *id).await?;
    let tenant = principal.tenant.as_str();
    let mut conn = infra.pool.get().await?;
    let orders = customers::orders_of(&mut conn, tenant, *id, limit).await?;
    let events = timeline::latest(&mut conn, tenant, *id, limit).await?;
    let mut entries: Vec<(chrono::DateTime<chrono::Utc>, Value)> = orders
        .iter()
        .map(|o| {
            (
                o.ordered_at,
                json!({"type": "order", "timestamp": o.ordered_at, "details": {
                    "order_id": o.order_id, "external_id": o.external_id, "status": o.status,
                    "amount": o.total_amount, "currency": o.currency, "items": o.items_count,
                }}),
            )
        })
        .chain(events.iter().map(|e| {
            (
                e.occurred_at,
                json!({"type": e.kind, "timestamp": e.occurred_at, "details": e.details}),
            )
        }))
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    entries.truncate(limit as usize);
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "data": {"events": entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>()},
    })))
}
