//! `/api/v2/cdp/analytics/{rfm,clv,churn}` handlers (seed 004), over the latest run's
//! scores. Money is in minor units of `currency`.

use actix_web::{HttpResponse, web};
use mkt_auth::policy::{self, Operation};
use mkt_runtime::{Infra, Principal};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use crate::domain::rfm::SEGMENTS;
use crate::error::ApiError;
use crate::store::runs;
use crate::store::scores::{self, GroupColumn, GroupStats, ListOrder};

/// Registers these routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v2/cdp/analytics/rfm", web::get().to(rfm))
        .route("/api/v2/cdp/analytics/rfm/mapping", web::get().to(mapping))
        .route(
            "/api/v2/cdp/analytics/rfm/mapping",
            web::put().to(set_mapping),
        )
        .route("/api/v2/cdp/analytics/schedule", web::get().to(schedule))
        .route(
            "/api/v2/cdp/analytics/schedule",
            web::put().to(set_schedule),
        )
        .route("/api/v2/cdp/analytics/clv", web::get().to(clv))
        .route("/api/v2/cdp/analytics/churn", web::get().to(churn));
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(paths(rfm, clv, churn, mapping, set_mapping, schedule, set_schedule))]
pub struct Doc;

/// Filters of the analytics routes (seed 004).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// Seed 004 passes it; the token's tenant is used, and another one is a 404.
    pub tenant_id: Option<String>,
    /// RFM: one segment's members only.
    pub segment: Option<String>,
    /// CLV: one tier only (high, medium, low).
    pub tier: Option<String>,
    /// Churn: one risk level only (active, at_risk, churning, churned).
    pub risk_level: Option<String>,
    /// Customers per list (default 100, at most 1000).
    pub limit: Option<i64>,
}

fn check(
    principal: &Principal,
    operation: &Operation,
    query: &AnalyticsQuery,
) -> Result<i64, ApiError> {
    principal.require(operation)?;
    if let Some(tenant) = &query.tenant_id {
        crate::api::process::own_tenant(principal, tenant)?;
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be 1..1000"));
    }
    Ok(limit)
}

fn one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::invalid(
            field,
            format!("must be one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

fn round2(v: Option<f64>) -> f64 {
    (v.unwrap_or(0.0) * 100.0).round() / 100.0
}

fn percentage(part: i64, whole: i64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 10_000.0 / whole as f64).round() / 100.0
    }
}

fn split(stats: Vec<GroupStats>) -> (Option<GroupStats>, Vec<GroupStats>) {
    let (all, groups): (Vec<_>, Vec<_>) = stats.into_iter().partition(|s| s.key.is_none());
    (all.into_iter().next(), groups)
}

async fn last_calculation(
    infra: &Infra,
    tenant: &str,
) -> Result<(Option<chrono::DateTime<chrono::Utc>>, Option<Value>), ApiError> {
    let mut conn = infra.pool.get().await?;
    let (_, processed) = runs::latest(&mut conn, tenant).await?;
    Ok((
        processed.as_ref().and_then(|r| r.finished_at),
        processed.and_then(|r| r.model),
    ))
}

/// RFM analysis (seed 004): overview, distribution with averages, members per segment.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/analytics/rfm",
    tag = "analytics",
    params(AnalyticsQuery),
    responses((status = 200, description = "overview, distribution, segments"), (status = 400, body = mkt_error::ErrorEnvelope), (status = 404, description = "tenant_id names another tenant", body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn rfm(
    principal: Principal,
    infra: web::Data<Infra>,
    query: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = check(&principal, &policy::ANALYTICS_RFM, &query)?;
    one_of("segment", query.segment.as_deref(), &SEGMENTS)?;
    let tenant = principal.tenant.as_str();
    let mut conn = infra.pool.get().await?;
    let (all, groups) = split(scores::stats_by(&mut conn, tenant, GroupColumn::Segment).await?);
    let total = all.as_ref().map_or(0, |a| a.customers);
    let (calculated, _) = last_calculation(&infra, tenant).await?;
    let distribution: Vec<Value> = SEGMENTS
        .iter()
        .filter_map(|name| groups.iter().find(|g| g.key.as_deref() == Some(*name)))
        .map(|g| {
            json!({
                "segment": g.key, "customer_count": g.customers,
                "percentage": percentage(g.customers, total),
                "avg_recency": round2(g.avg_recency), "avg_frequency": round2(g.avg_frequency),
                "avg_monetary": round2(g.avg_monetary),
            })
        })
        .collect();
    let mut members = Map::new();
    let wanted: Vec<&str> = match query.segment.as_deref() {
        Some(one) => vec![one],
        None => SEGMENTS.to_vec(),
    };
    for segment in wanted {
        let rows = scores::listed(
            &mut conn,
            tenant,
            Some((GroupColumn::Segment, segment)),
            ListOrder::Monetary,
            limit,
        )
        .await?;
        if !rows.is_empty() || query.segment.is_some() {
            members.insert(
                segment.to_owned(),
                json!(rows.iter().map(|(r, _)| r.customer_id).collect::<Vec<_>>()),
            );
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "success": true, "message": "RFM analysis retrieved successfully",
        "data": {
            "overview": {
                "total_customers": total,
                "avg_recency": round2(all.as_ref().and_then(|a| a.avg_recency)),
                "avg_frequency": round2(all.as_ref().and_then(|a| a.avg_frequency)),
                "avg_monetary": round2(all.as_ref().and_then(|a| a.avg_monetary)),
                "total_revenue": all.as_ref().and_then(|a| a.total_monetary).unwrap_or(0),
                "last_calculation": calculated,
            },
            "distribution": distribution,
            "segments": members,
        },
    })))
}

/// Customer lifetime value (seed 004): overview, tiers, top customers and the fitted
/// models.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/analytics/clv",
    tag = "analytics",
    params(AnalyticsQuery),
    responses((status = 200, description = "overview, top_customers, model"), (status = 400, body = mkt_error::ErrorEnvelope), (status = 404, description = "tenant_id names another tenant", body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn clv(
    principal: Principal,
    infra: web::Data<Infra>,
    query: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = check(&principal, &policy::ANALYTICS_CLV, &query)?;
    one_of("tier", query.tier.as_deref(), &["high", "medium", "low"])?;
    let tenant = principal.tenant.as_str();
    let mut conn = infra.pool.get().await?;
    let (all, groups) = split(scores::stats_by(&mut conn, tenant, GroupColumn::Tier).await?);
    let count = |tier: &str| {
        groups
            .iter()
            .find(|g| g.key.as_deref() == Some(tier))
            .map_or(0, |g| g.customers)
    };
    let rows = scores::listed(
        &mut conn,
        tenant,
        query.tier.as_deref().map(|t| (GroupColumn::Tier, t)),
        ListOrder::Predicted,
        limit,
    )
    .await?;
    let (_, model) = last_calculation(&infra, tenant).await?;
    let top: Vec<Value> = rows
        .iter()
        .map(|(r, email)| {
            json!({
                "customer_id": r.customer_id, "email": email,
                "historical_value": r.historical_value, "predicted_value": r.predicted_value,
                "expected_purchases": r.expected_purchases, "total_orders": r.frequency,
                "clv_tier": r.clv_tier, "currency": r.currency,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "data": {
            "overview": {
                "total_customers": all.as_ref().map_or(0, |a| a.customers),
                "avg_clv": round2(all.as_ref().and_then(|a| a.avg_predicted)),
                "total_clv": all.as_ref().and_then(|a| a.total_predicted).unwrap_or(0),
                "distribution": {"high": count("high"), "medium": count("medium"), "low": count("low")},
            },
            "top_customers": top,
            "model": model.unwrap_or(Value::Null),
        },
    })))
}

/// Churn analysis (seed 004): overview, distribution and the customers at risk.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/analytics/churn",
    tag = "analytics",
    params(AnalyticsQuery),
    responses((status = 200, description = "overview, at_risk_customers"), (status = 400, body = mkt_error::ErrorEnvelope), (status = 404, description = "tenant_id names another tenant", body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn churn(
    principal: Principal,
    infra: web::Data<Infra>,
    query: web::Query<AnalyticsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = check(&principal, &policy::ANALYTICS_CHURN, &query)?;
    let levels = ["active", "at_risk", "churning", "churned"];
    one_of("risk_level", query.risk_level.as_deref(), &levels)?;
    let tenant = principal.tenant.as_str();
    let mut conn = infra.pool.get().await?;
    let (all, groups) = split(scores::stats_by(&mut conn, tenant, GroupColumn::Risk).await?);
    let total = all.as_ref().map_or(0, |a| a.customers);
    let count = |level: &str| {
        groups
            .iter()
            .find(|g| g.key.as_deref() == Some(level))
            .map_or(0, |g| g.customers)
    };
    let level = query.risk_level.as_deref().unwrap_or("at_risk");
    let rows = scores::listed(
        &mut conn,
        tenant,
        Some((GroupColumn::Risk, level)),
        ListOrder::ChurnProbability,
        limit,
    )
    .await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|(r, email)| {
            json!({
                "customer_id": r.customer_id, "email": email,
                "last_order_date": r.last_order_at.map(|t| t.date_naive().to_string()),
                "days_since_last_order": r.recency_days,
                "churn_probability": r.churn_probability.map(|p| (p * 10_000.0).round() / 10_000.0),
                "churn_risk": r.churn_risk,
            })
        })
        .collect();
    let distribution: Map<String, Value> = levels
        .iter()
        .map(|l| ((*l).to_owned(), json!(count(l))))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "data": {
            "overview": {
                "total_customers": total,
                // Churned customers over all scored ones.
                "churn_rate": percentage(count("churned"), total) / 100.0,
                "at_risk_count": count("at_risk"),
                "distribution": distribution,
            },
            "at_risk_customers": list,
        },
    })))
}

/// The tenant's RFM segment mapping: score ranges to segment, first match wins.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/analytics/rfm/mapping",
    tag = "analytics",
    responses((status = 200, description = "`{rules: [{segment, r, f, m}], is_default}`")),
    security(("bearer" = []))
)]
pub async fn mapping(
    principal: Principal,
    infra: web::Data<Infra>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ANALYTICS_RFM_MAPPING)?;
    let mut conn = infra.pool.get().await?;
    let stored = crate::store::settings::rfm_rules(&mut conn, principal.tenant.as_str()).await?;
    let is_default = stored.is_none();
    let rules = stored.unwrap_or_else(|| json!(crate::domain::rfm::default_rules()));
    Ok(HttpResponse::Ok()
        .json(json!({"success": true, "data": {"rules": rules, "is_default": is_default}})))
}

/// The body of a mapping change: the rules, or `null` for the default.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingInput {
    /// `[{segment, r: [lo, hi], f: [lo, hi], m: [lo, hi]}]`; null restores the default.
    #[schema(value_type = Option<Vec<Object>>)]
    pub rules: Option<Vec<crate::domain::rfm::SegmentRule>>,
}

/// Set the tenant's RFM segment mapping (used from the next run on).
#[utoipa::path(
    put,
    path = "/api/v2/cdp/analytics/rfm/mapping",
    tag = "analytics",
    request_body = MappingInput,
    responses((status = 200, description = "The stored mapping"), (status = 400, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn set_mapping(
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<MappingInput>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ANALYTICS_RFM_MAPPING_SET)?;
    let input = body.into_inner();
    if let Some(rules) = &input.rules {
        crate::domain::rfm::validate_rules(rules).map_err(|e| ApiError::invalid("rules", e))?;
    }
    let value = input.rules.map(|r| json!(r));
    let mut conn = infra.pool.get().await?;
    crate::store::settings::set_rfm_rules(&mut conn, principal.tenant.as_str(), value.clone())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"success": true, "data": {
        "rules": value.clone().unwrap_or_else(|| json!(crate::domain::rfm::default_rules())),
        "is_default": value.is_none(),
    }})))
}

/// The tenant's nightly processing schedule.
#[utoipa::path(
    get,
    path = "/api/v2/cdp/analytics/schedule",
    tag = "analytics",
    responses((status = 200, description = "`{enabled, hour_utc}`")),
    security(("bearer" = []))
)]
pub async fn schedule(
    principal: Principal,
    infra: web::Data<Infra>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ANALYTICS_SCHEDULE)?;
    let mut conn = infra.pool.get().await?;
    let (enabled, hour) =
        crate::store::settings::schedule(&mut conn, principal.tenant.as_str()).await?;
    Ok(HttpResponse::Ok()
        .json(json!({"success": true, "data": {"enabled": enabled, "hour_utc": hour}})))
}

/// A schedule change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    /// Whether the nightly run happens.
    pub enabled: bool,
    /// The UTC hour it runs at, 0-23 (default 2).
    pub hour_utc: Option<i32>,
}

/// Set the tenant's nightly processing schedule.
#[utoipa::path(
    put,
    path = "/api/v2/cdp/analytics/schedule",
    tag = "analytics",
    request_body = ScheduleInput,
    responses((status = 200, description = "The stored schedule"), (status = 400, body = mkt_error::ErrorEnvelope)),
    security(("bearer" = []))
)]
pub async fn set_schedule(
    principal: Principal,
    infra: web::Data<Infra>,
    body: web::Json<ScheduleInput>,
) -> Result<HttpResponse, ApiError> {
    principal.require(&policy::ANALYTICS_SCHEDULE_SET)?;
    let hour = body
        .hour_utc
        .unwrap_or(crate::store::settings::DEFAULT_HOUR_UTC);
    if !(0..=23).contains(&hour) {
        return Err(ApiError::invalid("hour_utc", "must be 0..23"));
    }
    let mut conn = infra.pool.get().await?;
    crate::store::settings::set_schedule(&mut conn, principal.tenant.as_str(), body.enabled, hour)
        .await?;
    Ok(HttpResponse::Ok()
        .json(json!({"success": true, "data": {"enabled": body.enabled, "hour_utc": hour}})))
}
