//! `/api/v2/cdp/customers` handlers: extract, authorise, call the domain, map.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use mkt_runtime::{Infra, Principal, Role};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::customer::CustomerInput;
use crate::error::ApiError;
use crate::service;
use crate::store::customers::CustomerRow;

/// Seed 000's success envelope around a customer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerEnvelope {
    /// Always true.
    pub success: bool,
    /// Human message.
    pub message: String,
    /// The customer.
    pub data: CustomerData,
}

/// A customer as the API returns it: seed 000's camelCase fields plus the CDP's
/// snake_case extensions.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerData {
    /// Our id.
    pub id: Uuid,
    /// Full name.
    pub name: String,
    /// Email (lower-cased).
    pub email: String,
    /// Phone.
    pub phone: Option<String>,
    /// Sign-up time.
    #[serde(rename = "createdAt")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(rename = "updatedAt")]
    pub updated_at: DateTime<Utc>,
    /// Address, when known.
    pub address: Option<AddressData>,
    /// The store's id.
    pub external_id: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Loyalty tier.
    pub loyalty_tier: Option<String>,
    /// Custom traits.
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Consent flags.
    pub consent: crate::domain::customer::ConsentOutput,
}

/// Seed 000's address shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressData {
    /// The customer's id.
    #[serde(rename = "userId")]
    pub user_id: Uuid,
    /// Street.
    pub street: String,
    /// City.
    pub city: String,
    /// State.
    pub state: String,
    /// Postal code.
    #[serde(rename = "zipCode")]
    pub zip_code: String,
    /// Country.
    pub country: String,
}

impl From<CustomerRow> for CustomerData {
    fn from(row: CustomerRow) -> Self {
        let address = match (row.street, row.city, row.state, row.zip_code, row.country) {
            (Some(street), Some(city), Some(state), Some(zip_code), Some(country)) => {
                Some(AddressData { user_id: row.id, street, city, state, zip_code, country })
            }
            _ => None,
        };
        CustomerData {
            id: row.id,
            name: row.name,
            email: row.email,
            phone: row.phone,
            created_at: row.created_at,
            updated_at: row.updated_at,
            address,
            external_id: row.external_id,
            first_name: row.first_name,
            last_name: row.last_name,
            loyalty_tier: row.loyalty_tier,
            attributes: row.attributes,
            consent: crate::domain::customer::ConsentOutput {
                email: row.consent_email,
                sms: row.consent_sms,
                push: row.consent_push,
            },
        }
    }
}

/// Create or update a customer (upsert by tenant and email).
#[utoipa::path(
    post,
    path = "/api/v2/cdp/customers",
    tag = "customers",
    request_body = CustomerInput,
    responses(
        (status = 201, description = "Created", body = CustomerEnvelope),
        (status = 200, description = "Updated", body = CustomerEnvelope),
        (status = 400, description = "Invalid customer data", body = mkt_error::ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = mkt_error::ErrorEnvelope),
        (status = 403, description = "Role may not ingest", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn upsert(
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<CustomerInput>,
) -> Result<HttpResponse, ApiError> {
    principal.require_any(&[Role::Ingest])?;
    let valid = body.into_inner().validate().map_err(ApiError::InvalidCustomer)?;
    let (row, created) = service::upsert_customer(&infra, &principal.tenant, &valid).await?;
    let envelope = CustomerEnvelope {
        success: true,
        message: "User data ingested successfully.".into(),
        data: row.into(),
    };
    Ok(if created { HttpResponse::Created().json(envelope) } else { HttpResponse::Ok().json(envelope) })
}

/// Read one customer of the caller's tenant.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/customers/{id}",
    tag = "customers",
    params(("id" = Uuid, Path, description = "Customer id")),
    responses(
        (status = 200, description = "The customer", body = CustomerEnvelope),
        (status = 404, description = "No such customer in this tenant", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn get(principal: Principal, infra: web::Data<Infra>, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    principal.require_any(&[Role::Reader, Role::Ingest, Role::Marketer, Role::Analyst])?;
    let id = id.into_inner();
    let row = service::find_customer(&infra, &principal.tenant, id)
        .await?
        .ok_or_else(|| ApiError::CustomerNotFound(id.to_string()))?;
    Ok(HttpResponse::Ok().json(CustomerEnvelope { success: true, message: "Customer retrieved.".into(), data: row.into() }))
}
