//! `/api/v1/marketing/segments` handlers (the preview and the field list so far).

use actix_web::{HttpResponse, web};
use mkt_auth::policy;
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::rules::{dialects, fields, sql};
use crate::domain::segment::{Draft, DraftError, Kind, RawDraft};
use crate::error::ApiError;
use crate::service;
use crate::service::engine::Engines;
use crate::store::{self, segments};

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
pub async fn preview(
    principal: Principal,
    infra: web::Data<Infra>,
    engines: web::Data<Engines>,
    body: web::Json<PreviewInput>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_PREVIEW)?;
    let input = body.into_inner();
    let (tree, _) = dialects::normalise(input.rules.as_ref(), input.criteria.as_ref())
        .map_err(ApiError::InvalidCriteria)?;
    let now = chrono::Utc::now();
    let sample_size = input.sample_size.unwrap_or(10).clamp(0, 100);
    let tenant = principal.tenant.as_str();
    let (count, sample, evaluated_by) = match engines
        .audience(&infra, tenant, &tree, now, sample_size as usize)
        .await
    {
        Some(audience) => (audience.count as i64, audience.sample, "memory"),
        None => {
            // No index in this replica yet (it is loading): the same answer from SQL.
            let predicate = sql::compile(&tree, now, 2);
            let mut conn = infra.pool.get().await?;
            let count = segments::count(&mut conn, tenant, &predicate).await?;
            let sample = segments::members(&mut conn, tenant, &predicate, sample_size, 0).await?;
            (count, sample, "sql")
        }
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "success": true,
        "data": {"count": count, "sample_ids": sample, "audienceSize": count, "sampleUserIds": sample,
                 "rules": tree, "evaluated_by": evaluated_by},
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
    principal.require(&policy::SEGMENTS_FIELDS)?;
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

/// A segment to create or replace (seed 003 / seed 001 fields).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentInput {
    /// Name (1-200 characters).
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// dynamic (default, rules) | static (customer_ids).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Rules in seed 003's or seed 000's dialect (dynamic).
    #[schema(value_type = Option<Object>)]
    pub rules: Option<serde_json::Value>,
    /// Seed 001's criteria (dynamic).
    #[schema(value_type = Option<Object>)]
    pub criteria: Option<serde_json::Value>,
    /// Explicit members (static).
    pub customer_ids: Option<Vec<uuid::Uuid>>,
    /// Whether campaigns may use it (default true).
    pub is_active: Option<bool>,
}

/// Query of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Page size 1-200 (default 50).
    pub limit: Option<i64>,
    /// dynamic | static | imported.
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// A segment as the v1 API shows it.
pub fn view(row: &store::saved::SegmentRow) -> serde_json::Value {
    serde_json::json!({
        "id": row.id, "name": row.name, "description": row.description, "type": row.kind.as_str(),
        "rules": row.rules, "customer_ids": if row.kind == Kind::Static { serde_json::json!(row.member_ids) } else { serde_json::Value::Null },
        "is_active": row.is_active, "cached_count": row.cached_count, "count_cached_at": row.count_cached_at,
        "imported_rows": row.imported_rows, "unmatched_rows": row.unmatched_rows,
        "created_at": row.created_at, "updated_at": row.updated_at,
    })
}

fn raw(input: SegmentInput) -> RawDraft {
    RawDraft {
        name: input.name,
        description: input.description,
        kind: input.kind,
        rules: input.rules,
        criteria: input.criteria,
        customer_ids: input.customer_ids,
        is_active: input.is_active,
    }
}

impl From<DraftError> for ApiError {
    fn from(error: DraftError) -> Self {
        match error {
            DraftError::Rules(errors) => ApiError::InvalidCriteria(errors),
            DraftError::Fields(details) => ApiError::InvalidSegment(details),
        }
    }
}

/// Create a segment (dynamic rules in any dialect, or a static list of customers).
#[utoipa::path(
    post,
    path = "/api/v1/marketing/segments",
    operation_id = "create_segment",
    tag = "segments",
    request_body = SegmentInput,
    responses((status = 201, description = "Created, with cached_count"), (status = 400, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn create(
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<SegmentInput>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_CREATE)?;
    let draft = Draft::parse(raw(body.into_inner()), None)?;
    let row = service::segments::create(&infra, principal.tenant.as_str(), draft).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "success": true, "message": format!("Segment \"{}\" created successfully.", row.name), "data": view(&row),
    })))
}

/// List segments, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/marketing/segments",
    operation_id = "list_segments",
    tag = "segments",
    params(ListQuery),
    responses((status = 200, description = "A page of segments")),
    security(("bearer" = []))
)]
pub async fn list(
    principal: Principal,
    infra: web::Data<Infra>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_LIST)?;
    // An unknown type used to reach the SQL filter, where a NUL byte in it was a 500.
    if let Some(kind) = query.kind.as_deref()
        && Kind::parse(kind).is_none()
    {
        return Err(ApiError::InvalidQuery(
            "type must be dynamic, static or imported".into(),
        ));
    }
    let page = query.page.unwrap_or(1).max(1);
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let offset = super::paging::page_offset(page, limit)?;
    let mut conn = infra.pool.get().await?;
    let (rows, total) = store::saved::list(
        &mut conn,
        principal.tenant.as_str(),
        query.kind.as_deref(),
        limit,
        offset,
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "success": true, "data": rows.iter().map(view).collect::<Vec<_>>(),
        "pagination": {"page": page, "limit": limit, "total": total, "total_pages": (total + limit - 1) / limit},
    })))
}

/// One segment.
#[utoipa::path(
    get,
    path = "/api/v1/marketing/segments/{id}",
    operation_id = "get_segment",
    tag = "segments",
    params(("id" = uuid::Uuid, Path, description = "Segment id")),
    responses((status = 200, description = "The segment"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn get(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_GET)?;
    let mut conn = infra.pool.get().await?;
    let row = store::saved::find(&mut conn, principal.tenant.as_str(), *id)
        .await?
        .ok_or_else(|| ApiError::SegmentNotFound(id.to_string()))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"success": true, "data": view(&row)})))
}

/// Replace a segment's name, description, rules or members; the count is recomputed.
#[utoipa::path(
    put,
    path = "/api/v1/marketing/segments/{id}",
    operation_id = "replace_segment",
    tag = "segments",
    request_body = SegmentInput,
    params(("id" = uuid::Uuid, Path, description = "Segment id")),
    responses((status = 200, description = "The updated segment"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn replace(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<uuid::Uuid>,
    body: web::Json<SegmentInput>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_REPLACE)?;
    let input = raw(body.into_inner());
    let row = service::segments::replace(&infra, principal.tenant.as_str(), *id, |existing| {
        let kind = existing.kind;
        Ok(Draft::parse(
            input,
            Some((kind, existing.is_active, &existing.member_ids)),
        )?)
    })
    .await?;
    Ok(HttpResponse::Ok().json(
        serde_json::json!({"success": true, "message": "Segment updated.", "data": view(&row)}),
    ))
}

/// Delete a segment.
#[utoipa::path(
    delete,
    path = "/api/v1/marketing/segments/{id}",
    operation_id = "delete_segment",
    tag = "segments",
    params(("id" = uuid::Uuid, Path, description = "Segment id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn delete(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_DELETE)?;
    service::segments::delete(&infra, principal.tenant.as_str(), *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Query of a CSV import.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The new segment's name.
    pub name: Option<String>,
    /// Its description.
    pub description: Option<String>,
}

/// Create an imported segment from a CSV (`text/csv` body) with an `email`,
/// `external_id` or `customer_id` column; unmatched rows are counted, not refused.
#[utoipa::path(
    post,
    path = "/api/v1/marketing/segments/import",
    tag = "segments",
    params(ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, description = "Created, with cached_count, imported_rows and unmatched_rows"), (status = 400, body = mkt_error::ErrorEnvelope), (status = 413, description = "Over 128 MiB (`payload_too_large`)", body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn import(
    principal: Principal,
    infra: web::Data<Infra>,
    query: web::Query<ImportQuery>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_IMPORT)?;
    let query = query.into_inner();
    let max = service::segments::MAX_IMPORT_BYTES;
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok());
    if mkt_csv::declared_over(declared, max) {
        return Err(ApiError::UploadTooLarge(max));
    }
    // Read as it arrives: the relay hands the (thread-bound) payload to the CSV reader.
    let (pump, body, overflow) = mkt_csv::relay(payload, max);
    let (row, ()) = futures_util::join!(
        service::segments::import(
            &infra,
            principal.tenant.as_str(),
            query.name,
            query.description,
            body,
        ),
        pump
    );
    if overflow.happened() {
        return Err(ApiError::UploadTooLarge(max));
    }
    let row = row?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "success": true, "message": format!("Segment \"{}\" imported.", row.name), "data": view(&row),
    })))
}
