//! `/api/v2/cdp/customers` handlers: extract, authorise, call the use case, map.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use mkt_auth::policy;
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;
use utoipa::IntoParams;

use super::common::{PageQuery, batch_items, page_body, parse, respond};
use crate::domain::CustomerRef;
use crate::domain::customer::{CustomerInput, CustomerPatch, Email};
use crate::error::ApiError;
use crate::service::{self, Idempotency};
use crate::store::customers::ListFilter;
use crate::views::{CustomerData, CustomerEnvelope, envelope};

/// Create or update a customer (upsert by tenant and email).
#[utoipa::path(
    post,
    path = "/api/v2/cdp/customers",
    tag = "customers",
    request_body = CustomerInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses(
        (status = 201, description = "Created", body = CustomerEnvelope),
        (status = 200, description = "Updated", body = CustomerEnvelope),
        (status = 400, description = "Invalid customer data", body = mkt_error::ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = mkt_error::ErrorEnvelope),
        (status = 403, description = "Role may not ingest", body = mkt_error::ErrorEnvelope),
        (status = 409, description = "external_id belongs to another customer", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn upsert(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::CUSTOMERS_UPSERT)?;
    let idempotency = Idempotency::from_request(&req, &body)?;
    let valid = parse::<CustomerInput>(body.into_inner())?
        .validate()
        .map_err(ApiError::InvalidCustomer)?;
    let reply =
        service::customers::upsert(&infra, &principal.tenant, idempotency.as_ref(), valid).await?;
    Ok(respond(reply))
}

/// A batch of customers: `{"customers": [...]}`, up to 1,000.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomersBatch {
    /// The customers (each as for a single POST).
    #[schema(value_type = Vec<CustomerInput>)]
    pub customers: Vec<serde_json::Value>,
}

/// Upsert up to 1,000 customers; valid ones commit even when others fail.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/customers/batch",
    tag = "customers",
    request_body = CustomersBatch,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses(
        (status = 200, description = "Per-item results in request order"),
        (status = 413, description = "More than 1,000 items", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn upsert_batch(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::CUSTOMERS_UPSERT_BATCH)?;
    let idempotency = Idempotency::from_request(&req, &body)?;
    let batch: CustomersBatch = parse(body.into_inner())?;
    let items = batch_items::<CustomerInput, _>(batch.customers, |input| {
        input.validate().map_err(ApiError::InvalidCustomer)
    })?;
    let reply =
        service::customers::upsert_batch(&infra, &principal.tenant, idempotency.as_ref(), items)
            .await?;
    Ok(respond(reply))
}

/// Filters of `GET /customers`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Exact email (case-insensitive).
    pub email: Option<String>,
    /// The store's loyalty tier label: free text (at most 64 characters), no fixed list.
    pub loyalty_tier: Option<String>,
    /// Signed up at or after (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Signed up before (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// Substring of name or email.
    pub q: Option<String>,
}

/// List customers, newest sign-ups first.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/customers",
    operation_id = "list_customers",
    tag = "customers",
    params(ListQuery, PageQuery),
    responses((status = 200, description = "A page of customers")),
    security(("bearer" = []))
)]
pub async fn list(
    principal: Principal,
    infra: web::Data<Infra>,
    filter: web::Query<ListQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::CUSTOMERS_LIST)?;
    let (page, limit) = page.resolve()?;
    let filter = filter.into_inner();
    let filter = ListFilter {
        email: filter
            .email
            .map(|e| Email::parse(&e).map(|e| e.as_str().to_owned()).unwrap_or(e)),
        loyalty_tier: filter.loyalty_tier,
        created_after: filter.created_after,
        created_before: filter.created_before,
        search: filter.q.filter(|q| !q.trim().is_empty()),
    };
    let (rows, total) =
        service::customers::list(&infra, &principal.tenant, &filter, page, limit).await?;
    let data: Vec<CustomerData> = rows.into_iter().map(CustomerData::from).collect();
    Ok(HttpResponse::Ok().json(page_body(data, page, limit, total)))
}

/// Read one customer by our id or the store's external id.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/customers/{id}",
    operation_id = "get_customer",
    tag = "customers",
    params(("id" = String, Path, description = "Our customer id (UUID) or the store's external_id")),
    responses(
        (status = 200, description = "The customer", body = CustomerEnvelope),
        (status = 404, description = "No such customer in this tenant", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::CUSTOMERS_GET)?;
    let row = service::customers::find(
        &infra,
        &principal.tenant,
        &CustomerRef::from_id_or_external(&id),
    )
    .await?;
    Ok(HttpResponse::Ok().json(envelope("Customer retrieved.", CustomerData::from(row))))
}

/// Change single fields of a customer.
#[utoipa::path(
    patch,
    path = "/api/v2/cdp/customers/{id}",
    tag = "customers",
    request_body = CustomerPatch,
    params(("id" = String, Path, description = "Our customer id (UUID) or the store's external_id"), ("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for a retried request")),
    responses(
        (status = 200, description = "The updated customer", body = CustomerEnvelope),
        (status = 404, description = "No such customer", body = mkt_error::ErrorEnvelope),
        (status = 409, description = "Email or external_id taken", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    req: HttpRequest,
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::CUSTOMERS_PATCH)?;
    let idempotency = Idempotency::from_request(&req, &body)?;
    let patch = parse::<CustomerPatch>(body.into_inner())?
        .validate()
        .map_err(ApiError::InvalidCustomer)?;
    let reference = CustomerRef::from_id_or_external(&id);
    let reply = service::customers::patch(
        &infra,
        &principal.tenant,
        idempotency.as_ref(),
        reference,
        patch,
    )
    .await?;
    Ok(respond(reply))
}

/// GDPR erasure: personal data is removed here and in every service.
#[utoipa::path(
    delete,
    path = "/api/v2/cdp/customers/{id}",
    tag = "customers",
    params(("id" = String, Path, description = "Our customer id (UUID) or the store's external_id")),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "No such customer", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn erase(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::CUSTOMERS_ERASE)?;
    service::customers::erase(
        &infra,
        &principal.tenant,
        CustomerRef::from_id_or_external(&id),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
