//! `/api/v2/cdp/tenant-integrations` handlers (seed 004): CRUD, VTEX credential
//! validation, and syncs. Admin only (the gateway and these handlers both check).
//!
//! Seed 004 names tenants in paths and bodies: `GET .../tenant-integrations/{tenantId}`
//! lists like `GET .../tenant-integrations` when the id is the token's tenant, and a
//! body's `tenant_id` must be the token's; any other tenant is a 404
//! `tenant_not_found`. Responses never carry credentials: at most the app key's last
//! four characters.

use actix_web::{HttpResponse, web};
use mkt_auth::policy;
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::integrations::{IntegrationPatch, NewIntegration, SyncRequest, ValidateRequest};
use crate::service::integrations::{self as service, Context, IntegrationError};
use crate::store::integrations::{IntegrationRow, SyncRunRow};

fn parse_id(raw: &str) -> Result<Uuid, IntegrationError> {
    Uuid::parse_str(raw).map_err(|_| IntegrationError::NotFound(raw.to_owned()))
}

/// Seed 004's create body. Credentials are write-only.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntegrationInput {
    /// Ignored when it is the token's tenant; any other is a 404.
    #[schema(value_type = Option<String>, example = "56")]
    pub tenant_id: Option<Value>,
    /// `vtex` (the default).
    #[schema(example = "vtex")]
    pub integration_type: Option<String>,
    /// VTEX account name.
    #[schema(example = "chelseaio")]
    pub account_name: String,
    /// vtexcommercestable (default) or vtexcommercebeta.
    #[schema(example = "vtexcommercestable")]
    pub environment: Option<String>,
    /// VTEX app key (stored encrypted, never returned).
    #[schema(example = "vtexappkey-chelseaio-XXXXX")]
    pub app_key: String,
    /// VTEX app token (stored encrypted, never returned).
    #[schema(example = "TOKEN_HERE")]
    pub app_token: String,
    /// Whether syncs may run (default true).
    pub is_active: Option<bool>,
}

/// Seed 004's update body; every field optional.
#[derive(Debug, Deserialize, ToSchema)]
pub struct IntegrationUpdate {
    /// Enable or disable syncs.
    pub is_active: Option<bool>,
    /// New app key (requires `app_token`).
    pub app_key: Option<String>,
    /// New app token (alone: keeps the stored key).
    pub app_token: Option<String>,
    /// Another account (requires both credentials).
    pub account_name: Option<String>,
    /// Another environment.
    pub environment: Option<String>,
}

/// Seed 004's validate body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ValidateInput {
    /// VTEX account name.
    pub account_name: String,
    /// App key to try.
    pub app_key: String,
    /// App token to try.
    pub app_token: String,
    /// vtexcommercestable (default) or vtexcommercebeta.
    pub environment: Option<String>,
}

/// Optional body of `POST .../{id}/sync`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SyncInput {
    /// Import orders created since (RFC 3339); default: as far back as VTEX lists (two years).
    pub since: Option<String>,
}

/// An integration as responses show it.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct IntegrationData {
    /// Id.
    pub id: Uuid,
    /// The token's tenant.
    pub tenant_id: String,
    /// `vtex`.
    pub integration_type: String,
    /// VTEX account name.
    pub account_name: String,
    /// VTEX environment.
    pub environment: String,
    /// Whether syncs may run.
    pub is_active: bool,
    /// When the last successful sync finished.
    pub last_sync: Option<chrono::DateTime<chrono::Utc>>,
    /// The last four characters of the app key (empty for short keys); nothing else
    /// of the credentials is ever returned.
    pub app_key_last4: String,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<&IntegrationRow> for IntegrationData {
    fn from(row: &IntegrationRow) -> Self {
        Self {
            id: row.id,
            tenant_id: row.tenant_id.clone(),
            integration_type: row.integration_type.clone(),
            account_name: row.account_name.clone(),
            environment: row.environment.clone(),
            is_active: row.is_active,
            last_sync: row.last_sync_at,
            app_key_last4: row.app_key_last4.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A sync run as responses show it.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SyncRunData {
    /// Run id.
    pub run_id: Uuid,
    /// The integration.
    pub integration_id: Uuid,
    /// queued | running | succeeded | failed.
    pub status: String,
    /// customers | orders | done.
    pub phase: String,
    /// Orders created from.
    pub orders_since: chrono::DateTime<chrono::Utc>,
    /// Orders created until.
    pub orders_until: chrono::DateTime<chrono::Utc>,
    /// Orders created before this are done.
    pub orders_cursor: Option<chrono::DateTime<chrono::Utc>>,
    /// `{"customers": {...}, "orders": {...}}` with created, updated, unchanged,
    /// skipped, failed.
    #[schema(value_type = Object)]
    pub counts: Value,
    /// The first failed items: kind, reference (the VTEX id), code, message.
    #[schema(value_type = Vec<Object>)]
    pub item_errors: Value,
    /// Why the run (or its last attempt) failed.
    pub error: Option<String>,
    /// Starts so far.
    pub attempts: i32,
    /// Requested.
    pub requested_at: chrono::DateTime<chrono::Utc>,
    /// First started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Finished.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<&SyncRunRow> for SyncRunData {
    fn from(row: &SyncRunRow) -> Self {
        Self {
            run_id: row.id,
            integration_id: row.integration_id,
            status: row.status.clone(),
            phase: row.phase.clone(),
            orders_since: row.orders_since,
            orders_until: row.orders_until,
            orders_cursor: row.orders_cursor,
            counts: row.counts.clone(),
            item_errors: row.item_errors.clone(),
            error: row.error.clone(),
            attempts: row.attempts,
            requested_at: row.requested_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

fn listing(rows: &[IntegrationRow]) -> HttpResponse {
    let data: Vec<IntegrationData> = rows.iter().map(IntegrationData::from).collect();
    HttpResponse::Ok().json(json!({"success": true, "data": data}))
}

/// List the tenant's integrations (seed 004).
#[utoipa::path(
    get,
    path = "/api/v2/cdp/tenant-integrations",
    tag = "integrations",
    responses(
        (status = 200, description = "`{success, data: [integration]}`"),
        (status = 403, description = "Not an admin", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    principal: Principal,
    infra: web::Data<Infra>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_LIST)?;
    Ok(listing(&service::list(&infra, &principal.tenant).await?))
}

/// One integration by id; or, with the token's tenant id in place of an integration
/// id, seed 004's list.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/tenant-integrations/{id}",
    tag = "integrations",
    params(("id" = String, Path, description = "Integration id, or the token's tenant id (seed 004's list)")),
    responses(
        (status = 200, description = "`{success, data: integration}` (or the list)"),
        (status = 404, description = "No such integration in this tenant, or another tenant", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_GET)?;
    if id.as_str() == principal.tenant.as_str() {
        return Ok(listing(&service::list(&infra, &principal.tenant).await?));
    }
    let Ok(uuid) = Uuid::parse_str(&id) else {
        return Err(IntegrationError::TenantNotFound(id.into_inner()));
    };
    let row = service::find(&infra, &principal.tenant, uuid).await?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "data": IntegrationData::from(&row)})))
}

/// Create an integration (seed 004); credentials are encrypted at rest.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/tenant-integrations",
    tag = "integrations",
    request_body = IntegrationInput,
    responses(
        (status = 201, description = "`{success, message, data: integration}`"),
        (status = 400, description = "Invalid data", body = mkt_error::ErrorEnvelope),
        (status = 404, description = "Body names another tenant", body = mkt_error::ErrorEnvelope),
        (status = 409, description = "This account is already integrated", body = mkt_error::ErrorEnvelope),
        (status = 503, description = "No encryption key configured", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    context: web::Data<Context>,
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<Value>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_CREATE)?;
    let input = NewIntegration::parse(body.into_inner()).map_err(IntegrationError::Invalid)?;
    let row = service::create(&infra, &context, &principal.tenant, input).await?;
    Ok(HttpResponse::Created().json(json!({
        "success": true,
        "message": "Integration created successfully",
        "data": IntegrationData::from(&row),
    })))
}

/// Update an integration (seed 004): activity, account, environment, credentials.
#[utoipa::path(
    put,
    path = "/api/v2/cdp/tenant-integrations/{id}",
    tag = "integrations",
    request_body = IntegrationUpdate,
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 200, description = "`{success, message, data: integration}`"),
        (status = 400, description = "Invalid data", body = mkt_error::ErrorEnvelope),
        (status = 404, description = "No such integration in this tenant", body = mkt_error::ErrorEnvelope),
        (status = 409, description = "Account already integrated, or stored credentials unreadable", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn update(
    context: web::Data<Context>,
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_UPDATE)?;
    let id = parse_id(&id)?;
    let patch = IntegrationPatch::parse(body.into_inner()).map_err(IntegrationError::Invalid)?;
    let row = service::update(&infra, &context, &principal.tenant, id, patch).await?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": "Integration updated successfully",
        "data": IntegrationData::from(&row),
    })))
}

/// Delete an integration (seed 004); what it imported stays.
#[utoipa::path(
    delete,
    path = "/api/v2/cdp/tenant-integrations/{id}",
    tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such integration in this tenant", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_DELETE)?;
    service::delete(&infra, &principal.tenant, parse_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Check VTEX credentials before saving them (seed 004): they must list orders and read
/// customers, the two things a sync does.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/tenant-integrations/validate/vtex",
    tag = "integrations",
    request_body = ValidateInput,
    responses(
        (status = 200, description = "`{success, message, account_info}`"),
        (status = 400, description = "Invalid data", body = mkt_error::ErrorEnvelope),
        (status = 422, description = "Credentials invalid, permissions missing, or unknown account", body = mkt_error::ErrorEnvelope),
        (status = 502, description = "VTEX unreachable", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn validate_vtex(
    context: web::Data<Context>,
    principal: Principal,
    body: web::Json<Value>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_VALIDATE_VTEX)?;
    let (tenant, request) =
        ValidateRequest::parse(body.into_inner()).map_err(IntegrationError::Invalid)?;
    service::own_tenant(&principal.tenant, tenant.as_deref())?;
    let account_info = service::validate_vtex(&context, &request).await?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "message": "VTEX credentials are valid",
        "account_info": account_info,
    })))
}

/// Start a sync: VTEX customers and orders into ingestion, in the background.
#[utoipa::path(
    post,
    path = "/api/v2/cdp/tenant-integrations/{id}/sync",
    tag = "integrations",
    request_body(content = Option<SyncInput>, description = "Optional"),
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 202, description = "`{success, message, data: run}`; follow `Location`"),
        (status = 404, description = "No such integration in this tenant", body = mkt_error::ErrorEnvelope),
        (status = 409, description = "Already syncing, or inactive", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn start_sync(
    context: web::Data<Context>,
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_SYNC_START)?;
    let id = parse_id(&id)?;
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice::<Value>(&body).map_err(|_| {
            IntegrationError::Invalid(
                [("body".to_owned(), vec!["must be a JSON object".to_owned()])].into(),
            )
        })?)
    };
    let request =
        SyncRequest::parse(body, chrono::Utc::now()).map_err(IntegrationError::Invalid)?;
    let run = service::start_sync(&infra, &context, &principal.tenant, id, request).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            "Location",
            format!("/api/v2/cdp/tenant-integrations/{id}/sync/{}", run.id),
        ))
        .json(json!({
            "success": true,
            "message": "Sync started",
            "data": SyncRunData::from(&run),
        })))
}

/// `?limit=` of the runs list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// How many runs (1-100, default 20).
    pub limit: Option<i64>,
}

/// The latest sync of an integration.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/tenant-integrations/{id}/sync",
    tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id")),
    responses(
        (status = 200, description = "`{success, data: run}`", body = SyncRunData),
        (status = 404, description = "No such integration, or never synced", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn latest_sync(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_SYNC_LATEST)?;
    let id = parse_id(&id)?;
    let runs = service::runs(&infra, &principal.tenant, id, None, 1).await?;
    let run = runs
        .first()
        .ok_or_else(|| IntegrationError::RunNotFound("latest".into()))?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "data": SyncRunData::from(run)})))
}

/// An integration's syncs, newest first.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/tenant-integrations/{id}/syncs",
    tag = "integrations",
    params(("id" = Uuid, Path, description = "Integration id"), RunsQuery),
    responses(
        (status = 200, description = "`{success, data: [run]}`"),
        (status = 404, description = "No such integration", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn list_syncs(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<String>,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_SYNCS_LIST)?;
    let id = parse_id(&id)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(IntegrationError::Invalid(
            [(
                "limit".to_owned(),
                vec!["must be between 1 and 100".to_owned()],
            )]
            .into(),
        ));
    }
    let runs = service::runs(&infra, &principal.tenant, id, None, limit).await?;
    let data: Vec<SyncRunData> = runs.iter().map(SyncRunData::from).collect();
    Ok(HttpResponse::Ok().json(json!({"success": true, "data": data})))
}

/// One sync run.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/tenant-integrations/{id}/sync/{run_id}",
    tag = "integrations",
    params(
        ("id" = Uuid, Path, description = "Integration id"),
        ("run_id" = Uuid, Path, description = "Run id"),
    ),
    responses(
        (status = 200, description = "`{success, data: run}`", body = SyncRunData),
        (status = 404, description = "No such integration or run", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn get_sync(
    principal: Principal,
    infra: web::Data<Infra>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, IntegrationError> {
    principal.require(&policy::INTEGRATIONS_SYNC_GET)?;
    let (id, run) = path.into_inner();
    let id = parse_id(&id)?;
    let run_id = Uuid::parse_str(&run).map_err(|_| IntegrationError::RunNotFound(run.clone()))?;
    let runs = service::runs(&infra, &principal.tenant, id, Some(run_id), 1).await?;
    let run = runs
        .first()
        .ok_or_else(|| IntegrationError::RunNotFound(run_id.to_string()))?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "data": SyncRunData::from(run)})))
}
