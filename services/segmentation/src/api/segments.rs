//! `/api/v1/marketing/segments` handlers (the preview and the field list so far).

use actix_web::{HttpResponse, web};
use mkt_runtime::{Infra, Principal, Role};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::rules::{dialects, fields, sql};
use crate::error::ApiError;
use crate::store::segments;

const READERS: &[Role] = &[Role::Reader, Role::Marketer, Role::Analyst];

/// Rules in any dialect: seed 003's tree or seed 000's groups as `rules`, or seed 001's
/// `criteria`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PreviewInput {
    /// Seed 003's `{id, logic, negate, conditions, groups}` or seed 000's `{groups: [{conditions}]}`.
    #[schema(value_type = Option<Object>)]
    pub rules: Option<serde_json::Value>,
    /// Seed 001's `{"total_spent": {"gte": 500}, "loyalty_tier": {"in": [...]}}`.
    #[schema(value_type = Option<Object>)]
    pub criteria: Option<serde_json::Value>,
    /// How many sample ids to return (default 10, at most 100).
    pub sample_size: Option<i64>,
}

/// Count the audience of rules without saving a segment.
#[utoipa::path(
    post,
    path = "/api/v1/marketing/segments/preview",
    tag = "segments",
    request_body = PreviewInput,
    responses(
        (status = 200, description = "`{count, sample_ids}` (seed 003) plus seed 000's `audienceSize`, `sampleUserIds`"),
        (status = 400, description = "invalid_segment_criteria with the path of the bad node", body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn preview(principal: Principal, infra: web::Data<Infra>, body: web::Json<PreviewInput>) -> Result<HttpResponse, ApiError> {
    principal.require_any(READERS)?;
    let input = body.into_inner();
    let (tree, _) = dialects::normalise(input.rules.as_ref(), input.criteria.as_ref()).map_err(ApiError::InvalidCriteria)?;
    let predicate = sql::compile(&tree, chrono::Utc::now(), 2);
    let mut conn = infra.pool.get().await?;
    let count = segments::count(&mut conn, principal.tenant.as_str(), &predicate).await?;
    let sample = segments::members(&mut conn, principal.tenant.as_str(), &predicate, input.sample_size.unwrap_or(10).clamp(0, 100), 0).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "success": true,
        "data": {"count": count, "sample_ids": sample, "audienceSize": count, "sampleUserIds": sample, "rules": tree},
    })))
}

/// The fields rules may test, with their types and operators.
#[utoipa::path(
    get,
    path = "/api/v1/marketing/segments/fields",
    tag = "segments",
    responses((status = 200, description = "Fields with type, source and operators")),
    security(("bearer" = []))
)]
pub async fn fields(principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require_any(READERS)?;
    let list: Vec<serde_json::Value> = fields::FIELDS
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": f.name, "type": f.field_type, "source": f.source, "description": f.description,
                "operators": crate::domain::rules::operators_for(f.field_type),
            })
        })
        .chain(std::iter::once(serde_json::json!({
            "name": "attributes.<key>", "type": "any", "source": "profile", "description": "A custom trait",
            "operators": crate::domain::rules::operators_for(fields::FieldType::Any),
        })))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({"success": true, "data": list})))
}
