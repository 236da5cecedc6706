//! Queries on `customer_scores`: analytics published by cdp-analytics.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::query_dsl::methods::FilterDsl;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::customer_scores;

/// One customer's scores from one analytics run.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = customer_scores)]
pub struct ScoresUpdate {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// RFM segment name from cdp-analytics' latest run (the rules' `segment` field); `None` before
    /// RFM ran.
    pub rfm_segment: Option<String>,
    /// 1-5.
    pub recency_score: Option<i32>,
    /// 1-5.
    pub frequency_score: Option<i32>,
    /// 1-5.
    pub monetary_score: Option<i32>,
    /// Minor units.
    pub clv: Option<i64>,
    /// high | medium | low.
    pub clv_tier: Option<String>,
    /// active | at_risk | churning | churned.
    pub churn_risk: Option<String>,
    /// 0..1.
    pub churn_probability: Option<f64>,
    /// When the run computed them.
    pub scores_computed_at: Option<DateTime<Utc>>,
}

/// Stores one run's scores (computed at `computed_at`) unless a row already holds a
/// newer run's; returns the customers whose scores were written.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    computed_at: DateTime<Utc>,
    updates: &[ScoresUpdate],
) -> QueryResult<Vec<Uuid>> {
    use customer_scores::dsl as s;
    use diesel::upsert::excluded;
    let mut written = Vec::with_capacity(updates.len());
    // 12 parameters a row; Postgres allows 65,535 a statement.
    for chunk in updates.chunks(5_000) {
        let ids: Vec<Uuid> = diesel::insert_into(s::customer_scores)
            .values(chunk)
            .on_conflict((s::tenant_id, s::customer_id))
            .do_update()
            .set((
                s::rfm_segment.eq(excluded(s::rfm_segment)),
                s::recency_score.eq(excluded(s::recency_score)),
                s::frequency_score.eq(excluded(s::frequency_score)),
                s::monetary_score.eq(excluded(s::monetary_score)),
                s::clv.eq(excluded(s::clv)),
                s::clv_tier.eq(excluded(s::clv_tier)),
                s::churn_risk.eq(excluded(s::churn_risk)),
                s::churn_probability.eq(excluded(s::churn_probability)),
                s::scores_computed_at.eq(excluded(s::scores_computed_at)),
                s::updated_at.eq(diesel::dsl::now),
            ))
            .filter(
                s::scores_computed_at
                    .is_null()
                    .or(s::scores_computed_at.le(computed_at)),
            )
            .returning(s::customer_id)
            .get_results(conn)
            .await?;
        written.extend(ids);
    }
    Ok(written)
}
