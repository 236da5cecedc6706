//! `/api/v2/cdp/process` handlers (seed 004): run RFM, CLV and churn for a tenant.

use actix_web::{HttpResponse, web};
use mkt_auth::policy;
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;
use serde_json::json;
use utoipa::{OpenApi, ToSchema};

use crate::domain::scoring::{Analyses, FittedModel, PurchaseFit, SpendFit};
use crate::error::ApiError;
use crate::service::processing::{self, Request};
use crate::store::runs::{self, RunRow};

/// Registers these routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v2/cdp/process/status/{tenant_id}",
        web::get().to(status),
    )
    .route("/api/v2/cdp/process/{tenant_id}", web::post().to(process));
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    paths(process, status),
    components(schemas(ProcessInput, FittedModel, PurchaseFit, SpendFit))
)]
pub struct Doc;

/// The path's tenant must be the token's: seed 004 names tenants in paths, but the
/// verified token decides; another tenant is a 404, as for every resource.
pub fn own_tenant(principal: &Principal, path_tenant: &str) -> Result<(), ApiError> {
    if principal.tenant.as_str() == path_tenant {
        Ok(())
    } else {
        Err(ApiError::TenantNotFound(path_tenant.to_owned()))
    }
}

/// Seed 004's body, plus `as_of` (backtesting) and `async`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessInput {
    /// rfm, clv, churn (default: all three).
    #[serde(default)]
    pub analyses: Vec<String>,
    /// Run even if nothing changed since the last run today.
    #[serde(default)]
    pub force: bool,
    /// Compute as if now were this instant, with orders up to and including it.
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
    /// Answer 202 at once; follow progress on the status route.
    #[serde(default, rename = "async")]
    pub run_async: bool,
}

/// A run's `FittedModel`, or null when it fitted none (RFM only, nothing to score, not
/// finished).
fn model_of(run: &RunRow) -> serde_json::Value {
    run.model
        .clone()
        .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()))
        .unwrap_or(serde_json::Value::Null)
}

fn run_view(run: &RunRow) -> serde_json::Value {
    json!({
        "run_id": run.id, "status": run.status, "analyses": run.analyses, "force": run.force,
        "as_of": run.as_of, "requested_at": run.requested_at, "started_at": run.started_at,
        "finished_at": run.finished_at, "progress": run.progress,
        "records_processed": run.records_processed, "error": run.error,
        // The fitted models (`FittedModel`): what a backtest is run for.
        "model": model_of(run),
    })
}

/// Process a tenant's data (seed 004).
#[utoipa::path(
    post,
    path = "/api/v2/cdp/process/{tenant_id}",
    tag = "processing",
    params(("tenant_id" = String, Path, description = "Must be the token's tenant")),
    request_body = ProcessInput,
    responses(
        (status = 200, description = "Seed 004's results per analysis, and `model` (a `FittedModel`, null for RFM only)"),
        (status = 202, description = "Accepted (`async: true`); see the status route"),
        (status = 400, body = mkt_error::ErrorEnvelope),
        (status = 404, body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn process(
    principal: Principal,
    infra: web::Data<Infra>,
    tenant: web::Path<String>,
    body: web::Json<ProcessInput>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::PROCESS_RUN)?;
    own_tenant(&principal, &tenant)?;
    let input = body.into_inner();
    let analyses =
        Analyses::parse(&input.analyses).map_err(|e| ApiError::invalid("analyses", e))?;
    if input.as_of.is_some_and(|t| t > chrono::Utc::now()) {
        return Err(ApiError::invalid("as_of", "must not be in the future"));
    }
    if input
        .as_of
        .is_some_and(|t| t < processing::earliest_as_of())
    {
        return Err(ApiError::invalid(
            "as_of",
            format!(
                "must not be before {}",
                processing::earliest_as_of().to_rfc3339()
            ),
        ));
    }
    let request = Request {
        analyses,
        force: input.force,
        as_of: input.as_of,
    };
    if input.run_async {
        let run = processing::enqueue(&infra, &tenant, &request, "api").await?;
        return Ok(HttpResponse::Accepted().json(json!({
            "success": true, "message": "CDP processing queued", "tenant_id": *tenant,
            "data": run_view(&run),
        })));
    }
    let run = processing::run_now(&infra, &tenant, &request).await?;
    let message = match run.status.as_str() {
        "processed" => "CDP processing completed successfully",
        "skipped" => "Nothing changed since the last run today; its results stand",
        _ => "CDP processing failed",
    };
    if run.status == "failed" {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "run {} failed: {}",
            run.id,
            run.error.clone().unwrap_or_default()
        )));
    }
    Ok(HttpResponse::Ok().json(json!({
        "success": true, "message": message, "tenant_id": *tenant, "run_id": run.id,
        "status": run.status, "as_of": run.as_of, "model": model_of(&run),
        "results": run.results.clone().unwrap_or_else(|| json!({})),
    })))
}

/// A tenant's processing status (seed 004), with the current run's progress.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/process/status/{tenant_id}",
    tag = "processing",
    params(("tenant_id" = String, Path, description = "Must be the token's tenant")),
    responses((status = 200, description = "status, last_processed, hours_since_last_sync, is_stale, records_processed, current run (with its `model`, a `FittedModel`)"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn status(
    principal: Principal,
    infra: web::Data<Infra>,
    tenant: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::PROCESS_STATUS)?;
    own_tenant(&principal, &tenant)?;
    let mut conn = infra.pool.get().await?;
    let (newest, processed) = runs::latest(&mut conn, &tenant).await?;
    let last = processed.as_ref().and_then(|r| r.finished_at);
    let hours = last.map(|t| (chrono::Utc::now() - t).num_hours());
    let status = match (&newest, &processed) {
        (Some(run), _) if matches!(run.status.as_str(), "queued" | "running") => run.status.clone(),
        (_, Some(_)) => "processed".to_owned(),
        (Some(run), None) => run.status.clone(),
        (None, None) => "never_processed".to_owned(),
    };
    Ok(HttpResponse::Ok().json(json!({
        "success": true, "tenant_id": *tenant, "status": status,
        "last_processed": last, "hours_since_last_sync": hours,
        // Stale: never processed, or older than the nightly cycle plus slack.
        "is_stale": hours.is_none_or(|h| h >= 26),
        "records_processed": processed.as_ref().map_or(0, |r| r.records_processed),
        "progress": newest.as_ref().map_or(0.0, |r| r.progress),
        "current_run": newest.as_ref().map(run_view),
        "results": newest.as_ref().and_then(|r| r.results.clone()),
    })))
}
