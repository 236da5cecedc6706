//! Reads about a few customers for the API: resolving imported keys to customer ids,
//! and the contact, order and analytics columns of members pages and exports. (What
//! rules see about a customer is read by `store::snapshot`.)

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{customer_profiles, customer_scores};

/// The live customers whose `key` is one of `values` (emails already lower-case).
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    key: crate::domain::segment::ImportKey,
    values: &[String],
) -> QueryResult<Vec<Uuid>> {
    use crate::domain::segment::ImportKey;
    use customer_profiles::dsl as p;
    let live = p::customer_profiles
        .filter(p::tenant_id.eq(tenant))
        .filter(p::erased_at.is_null())
        .select(p::customer_id)
        .into_boxed();
    let query = match key {
        ImportKey::Email => live.filter(p::email.eq_any(values)),
        ImportKey::ExternalId => live.filter(p::external_id.eq_any(values)),
        ImportKey::CustomerId => {
            let ids: Vec<Uuid> = values
                .iter()
                .filter_map(|v| Uuid::parse_str(v).ok())
                .collect();
            live.filter(p::customer_id.eq_any(ids))
        }
    };
    query.load(conn).await
}

/// What a members page and an export show of one customer.
#[derive(Debug, Clone, Queryable)]
pub struct MemberRow {
    /// Id.
    pub customer_id: Uuid,
    /// The store's own id.
    pub external_id: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Lower-cased, trimmed address (ingestion's upsert key), as ingestion stored it.
    pub email: Option<String>,
    /// Phone number as given: digits, spaces and `+ - ( ) .` only, at most 32 characters (not
    /// normalised to E.164).
    pub phone: Option<String>,
    /// City as given, not normalised.
    pub city: Option<String>,
    /// State or region as given (free text, not a code list).
    pub state: Option<String>,
    /// Country as given: free text up to 100 characters, not checked against ISO 3166.
    pub country: Option<String>,
    /// Orders (refunds and cancellations excluded).
    pub orders_count: i64,
    /// Net spend, minor units.
    pub total_spent: i64,
    /// Instant of the latest counted order (cancelled and refunded excluded); `None`: never
    /// ordered.
    pub last_order_at: Option<DateTime<Utc>>,
    /// RFM segment name from cdp-analytics' latest run (the rules' `segment` field).
    pub rfm_segment: Option<String>,
    /// 1-5.
    pub recency_score: Option<i32>,
    /// 1-5.
    pub frequency_score: Option<i32>,
    /// 1-5.
    pub monetary_score: Option<i32>,
    /// Predicted CLV, minor units.
    pub clv: Option<i64>,
    /// high | medium | low.
    pub clv_tier: Option<String>,
    /// `active`, `at_risk`, `churning` or `churned`, from cdp-analytics' latest run.
    pub churn_risk: Option<String>,
}

/// Display rows of `ids` (in id order); erased customers are left out.
pub async fn member_rows(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    ids: &[Uuid],
) -> QueryResult<Vec<MemberRow>> {
    use customer_profiles::dsl as p;
    use customer_scores::dsl as s;
    p::customer_profiles
        .left_join(
            s::customer_scores.on(s::tenant_id
                .eq(p::tenant_id)
                .and(s::customer_id.eq(p::customer_id))),
        )
        .filter(p::tenant_id.eq(tenant))
        .filter(p::customer_id.eq_any(ids))
        .filter(p::erased_at.is_null())
        .order(p::customer_id)
        .select((
            p::customer_id,
            p::external_id,
            p::name,
            p::email,
            p::phone,
            p::city,
            p::state,
            p::country,
            p::orders_count,
            p::total_spent,
            p::last_order_at,
            s::rfm_segment.nullable(),
            s::recency_score.nullable(),
            s::frequency_score.nullable(),
            s::monetary_score.nullable(),
            s::clv.nullable(),
            s::clv_tier.nullable(),
            s::churn_risk.nullable(),
        ))
        .load(conn)
        .await
}
