//! Who is in a segment: seed 003's customers page and export, and seed 004's
//! `/api/v2/cdp/segments` list and members. All read the materialised membership.

use actix_web::{HttpResponse, web};
use mkt_auth::policy;
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::service::export;
use crate::store::customer_records::{self, MemberRow};
use crate::store::{members, saved};

async fn segment(infra: &Infra, tenant: &str, id: Uuid) -> Result<saved::SegmentRow, ApiError> {
    let mut conn = infra.pool.get().await?;
    saved::find(&mut conn, tenant, id)
        .await?
        .ok_or_else(|| ApiError::SegmentNotFound(id.to_string()))
}

/// Seed 003's customer entry: names split from the full name, money in minor units.
fn customer(row: &MemberRow) -> Value {
    let name = row.name.clone().unwrap_or_default();
    let (first, last) = name.split_once(' ').unwrap_or((name.as_str(), ""));
    json!({
        "id": row.customer_id, "external_id": row.external_id,
        "first_name": first, "last_name": last, "name": row.name,
        "email": row.email, "mobile": row.phone,
        "orders_count": row.orders_count, "orders_amount": row.total_spent,
        "last_order_at": row.last_order_at,
        "analytics": {
            "segment": row.rfm_segment, "recency_score": row.recency_score,
            "frequency_score": row.frequency_score, "monetary_score": row.monetary_score,
            "cltv": row.clv, "clv_tier": row.clv_tier, "churn_risk": row.churn_risk,
        },
    })
}

/// Paging of the customers page.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Page size 1-200 (default 25).
    pub limit: Option<i64>,
}

/// A page of a segment's customers with their analytics (seed 003).
#[utoipa::path(
    get,
    path = "/api/v1/marketing/segments/{id}/customers",
    tag = "segments",
    params(("id" = Uuid, Path, description = "Segment id"), PageQuery),
    responses((status = 200, description = "`{data: [customer + analytics], meta: {total, page, limit, total_pages}}`"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn customers(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_CUSTOMERS)?;
    let tenant = principal.tenant.as_str();
    segment(&infra, tenant, *id).await?;
    let page = query.page.unwrap_or(1).max(1);
    let limit = query.limit.unwrap_or(25).clamp(1, 200);
    let offset = super::paging::page_offset(page, limit)?;
    let mut conn = infra.pool.get().await?;
    let total = members::count(&mut conn, tenant, *id).await?;
    let ids = members::page(&mut conn, tenant, *id, limit, offset).await?;
    let rows = customer_records::member_rows(&mut conn, tenant, &ids).await?;
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "data": rows.iter().map(customer).collect::<Vec<_>>(),
        "meta": {"total": total, "page": page, "limit": limit, "total_pages": (total + limit - 1) / limit},
    })))
}

/// Export format.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// csv (default) or xlsx.
    pub format: Option<String>,
}

/// Download every member with contact info, order stats and RFM analytics (seed 003).
#[utoipa::path(
    get,
    path = "/api/v1/marketing/segments/{id}/export",
    tag = "segments",
    params(("id" = Uuid, Path, description = "Segment id"), ExportQuery),
    responses(
        (status = 200, description = "A CSV (streamed) or XLSX file", content_type = "text/csv"),
        (status = 400, description = "Unknown format", body = mkt_error::ErrorEnvelope),
        (status = 404, body = mkt_error::ErrorEnvelope),
    ),
    security(("bearer" = []))
)]
pub async fn export(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::SEGMENTS_EXPORT)?;
    let tenant = principal.tenant.as_str();
    let row = segment(&infra, tenant, *id).await?;
    let stem: String = row
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    match query.format.as_deref().unwrap_or("csv") {
        "csv" => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{stem}.csv\""),
            ))
            .streaming(export::csv(infra.get_ref().clone(), tenant.to_owned(), *id))),
        "xlsx" => {
            let file = export::xlsx(&infra, tenant, *id).await?;
            let handle = tokio::fs::File::open(file.path())
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
            // The open handle keeps the data readable after the path is removed.
            drop(file);
            let body = tokio_util::io::ReaderStream::new(handle);
            Ok(HttpResponse::Ok()
                .content_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
                .insert_header((
                    "Content-Disposition",
                    format!("attachment; filename=\"{stem}.xlsx\""),
                ))
                .streaming(body))
        }
        other => Err(ApiError::InvalidQuery(format!(
            "format must be csv or xlsx, not {other:?}"
        ))),
    }
}

/// Filter of the v2 list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CdpListQuery {
    /// dynamic | static | imported.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Ignored: the tenant comes from the token (seed 004 passes it here).
    pub tenant_id: Option<String>,
}

/// Seed 004's segment list: criteria in seed 001's spirit (the canonical tree), member
/// counts and when they were last updated.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/segments",
    tag = "cdp segments",
    params(CdpListQuery),
    responses((status = 200, description = "`{success, data: [{id, name, type, criteria, member_count, last_updated}]}`")),
    security(("bearer" = []))
)]
pub async fn cdp_list(
    principal: Principal,
    infra: web::Data<Infra>,
    query: web::Query<CdpListQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::CDP_SEGMENTS_LIST)?;
    if let Some(kind) = query.kind.as_deref()
        && crate::domain::segment::Kind::parse(kind).is_none()
    {
        return Err(ApiError::InvalidQuery(
            "type must be dynamic, static or imported".into(),
        ));
    }
    let tenant = principal.tenant.as_str();
    let mut conn = infra.pool.get().await?;
    let (rows, _) = saved::list(&mut conn, tenant, query.kind.as_deref(), 10_000, 0).await?;
    let data: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row.id, "name": row.name, "description": row.description, "type": row.kind.as_str(),
                "criteria": row.rules, "member_count": row.cached_count,
                "is_active": row.is_active,
                "last_updated": row.count_cached_at.unwrap_or(row.updated_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"success": true, "data": data})))
}

/// Offset paging of v2 members.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// 1-1000 (default 100).
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
    /// Ignored: the tenant comes from the token.
    pub tenant_id: Option<String>,
}

/// Seed 004's segment members, with limit/offset.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/segments/{id}/members",
    tag = "cdp segments",
    params(("id" = Uuid, Path, description = "Segment id"), MembersQuery),
    responses((status = 200, description = "`{success, data: {segment_id, total, limit, offset, members: [...]}}`"), (status = 404, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn cdp_members(
    principal: Principal,
    infra: web::Data<Infra>,
    id: web::Path<Uuid>,
    query: web::Query<MembersQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::CDP_SEGMENT_MEMBERS)?;
    let tenant = principal.tenant.as_str();
    segment(&infra, tenant, *id).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let offset = super::paging::offset(query.offset.unwrap_or(0))?;
    let mut conn = infra.pool.get().await?;
    let total = members::count(&mut conn, tenant, *id).await?;
    let ids = members::page(&mut conn, tenant, *id, limit, offset).await?;
    let rows = customer_records::member_rows(&mut conn, tenant, &ids).await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "customer_id": row.customer_id, "external_id": row.external_id, "name": row.name,
                "email": row.email, "phone": row.phone, "orders_count": row.orders_count,
                "total_spent": row.total_spent, "last_order_at": row.last_order_at,
                "rfm_segment": row.rfm_segment, "clv": row.clv, "clv_tier": row.clv_tier,
                "churn_risk": row.churn_risk,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "data": {"segment_id": *id, "total": total, "limit": limit, "offset": offset, "members": list},
    })))
}
