//! Queries on `customer_scores`: the latest run's scores per customer, and the reads of
//! the analytics endpoints.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{customer_scores, customers};

/// One customer's scores from one run.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = customer_scores)]
pub struct ScoreRow {
    /// Tenant.
    pub tenant_id: String,
    /// Customer.
    pub customer_id: Uuid,
    /// The run.
    pub run_id: Uuid,
    /// The instant the run treated as now.
    pub as_of: DateTime<Utc>,
    /// Days since the last counted order.
    pub recency_days: Option<i32>,
    /// Counted orders.
    pub frequency: Option<i32>,
    /// Net spend, minor units.
    pub monetary: Option<i64>,
    /// 1-5.
    pub recency_score: Option<i32>,
    /// 1-5.
    pub frequency_score: Option<i32>,
    /// 1-5.
    pub monetary_score: Option<i32>,
    /// "555".
    pub rfm_score: Option<String>,
    /// Segment name.
    pub rfm_segment: Option<String>,
    /// Net spend to date, minor units.
    pub historical_value: Option<i64>,
    /// Predicted value over the horizon, minor units.
    pub predicted_value: Option<i64>,
    /// Expected purchases over the horizon.
    pub expected_purchases: Option<f64>,
    /// high | medium | low.
    pub clv_tier: Option<String>,
    /// 1 - P(alive).
    pub churn_probability: Option<f64>,
    /// active | at_risk | churning | churned.
    pub churn_risk: Option<String>,
    /// Last counted order.
    pub last_order_at: Option<DateTime<Utc>>,
    /// ISO 4217 of the money fields.
    pub currency: Option<String>,
}

/// Rows per insert statement in [`replace`]: about half a second of Postgres work each on
/// a small machine, well within the pool's statement timeout.
const REPLACE_CHUNK: usize = 20_000;

/// Writes a run's scores and drops the rows of customers the run no longer scores
/// (their last counted order was refunded, or they were erased).
///
/// Each chunk of rows travels as one array per column (`INSERT ... SELECT FROM
/// unnest(...) ON CONFLICT ... DO UPDATE`): one statement with 20 parameters, planned
/// once, instead of 20 parameters per row. The table has only its primary key and
/// half-empty pages, so a nightly rewrite of every row is a heap-only update
/// (migration `2026-12-05-000001_scores_write_path`, `docs/benchmarks.md`).
pub async fn replace(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    run: Uuid,
    rows: &[ScoreRow],
) -> QueryResult<()> {
    use customer_scores::dsl as s;
    use diesel::sql_types::{Array, Bpchar, Float8, Int4, Int8, Timestamptz, Uuid as SqlUuid};
    for chunk in rows.chunks(REPLACE_CHUNK) {
        let column = |f: fn(&ScoreRow) -> Option<i32>| chunk.iter().map(f).collect::<Vec<_>>();
        let big = |f: fn(&ScoreRow) -> Option<i64>| chunk.iter().map(f).collect::<Vec<_>>();
        let real = |f: fn(&ScoreRow) -> Option<f64>| chunk.iter().map(f).collect::<Vec<_>>();
        let text = |f: fn(&ScoreRow) -> Option<&str>| chunk.iter().map(f).collect::<Vec<_>>();
        diesel::sql_query(
            "INSERT INTO customer_scores (tenant_id, customer_id, run_id, as_of, recency_days, \
                 frequency, monetary, recency_score, frequency_score, monetary_score, rfm_score, \
                 rfm_segment, historical_value, predicted_value, expected_purchases, clv_tier, \
                 churn_probability, churn_risk, last_order_at, currency) \
             SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                                  $15, $16, $17, $18, $19, $20) \
             ON CONFLICT (tenant_id, customer_id) DO UPDATE SET run_id = excluded.run_id, \
                 as_of = excluded.as_of, recency_days = excluded.recency_days, \
                 frequency = excluded.frequency, monetary = excluded.monetary, \
                 recency_score = excluded.recency_score, frequency_score = excluded.frequency_score, \
                 monetary_score = excluded.monetary_score, rfm_score = excluded.rfm_score, \
                 rfm_segment = excluded.rfm_segment, historical_value = excluded.historical_value, \
                 predicted_value = excluded.predicted_value, \
                 expected_purchases = excluded.expected_purchases, clv_tier = excluded.clv_tier, \
                 churn_probability = excluded.churn_probability, churn_risk = excluded.churn_risk, \
                 last_order_at = excluded.last_order_at, currency = excluded.currency",
        )
        .bind::<Array<Text>, _>(chunk.iter().map(|r| r.tenant_id.as_str()).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(chunk.iter().map(|r| r.customer_id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(chunk.iter().map(|r| r.run_id).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(chunk.iter().map(|r| r.as_of).collect::<Vec<_>>())
        .bind::<Array<Nullable<Int4>>, _>(column(|r| r.recency_days))
        .bind::<Array<Nullable<Int4>>, _>(column(|r| r.frequency))
        .bind::<Array<Nullable<Int8>>, _>(big(|r| r.monetary))
        .bind::<Array<Nullable<Int4>>, _>(column(|r| r.recency_score))
        .bind::<Array<Nullable<Int4>>, _>(column(|r| r.frequency_score))
        .bind::<Array<Nullable<Int4>>, _>(column(|r| r.monetary_score))
        .bind::<Array<Nullable<Text>>, _>(text(|r| r.rfm_score.as_deref()))
        .bind::<Array<Nullable<Text>>, _>(text(|r| r.rfm_segment.as_deref()))
        .bind::<Array<Nullable<Int8>>, _>(big(|r| r.historical_value))
        .bind::<Array<Nullable<Int8>>, _>(big(|r| r.predicted_value))
        .bind::<Array<Nullable<Float8>>, _>(real(|r| r.expected_purchases))
        .bind::<Array<Nullable<Text>>, _>(text(|r| r.clv_tier.as_deref()))
        .bind::<Array<Nullable<Float8>>, _>(real(|r| r.churn_probability))
        .bind::<Array<Nullable<Text>>, _>(text(|r| r.churn_risk.as_deref()))
        .bind::<Array<Nullable<Timestamptz>>, _>(
            chunk.iter().map(|r| r.last_order_at).collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Bpchar>>, _>(text(|r| r.currency.as_deref()))
        .execute(conn)
        .await?;
    }
    diesel::delete(
        s::customer_scores
            .filter(s::tenant_id.eq(tenant))
            .filter(s::run_id.ne(run)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Each scored customer's churn risk before this run (for churn alerts).
pub async fn risks(
    conn: &mut AsyncPgConnection,
    tenant: &str,
) -> QueryResult<HashMap<Uuid, String>> {
    use customer_scores::dsl as s;
    let rows: Vec<(Uuid, Option<String>)> = s::customer_scores
        .filter(s::tenant_id.eq(tenant))
        .select((s::customer_id, s::churn_risk))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, risk)| risk.map(|r| (id, r)))
        .collect())
}

/// One customer's scores.
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
) -> QueryResult<Option<ScoreRow>> {
    customer_scores::table
        .filter(customer_scores::tenant_id.eq(tenant))
        .filter(customer_scores::customer_id.eq(customer))
        .select(ScoreRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Averages over a group of scored customers.
#[derive(Debug, Clone, QueryableByName)]
pub struct GroupStats {
    /// Group key (segment, tier or risk; `NULL` for the whole tenant).
    #[diesel(sql_type = Nullable<Text>)]
    pub key: Option<String>,
    /// Customers.
    #[diesel(sql_type = BigInt)]
    pub customers: i64,
    /// Mean days since the last order.
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_recency: Option<f64>,
    /// Mean orders.
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_frequency: Option<f64>,
    /// Mean spend, minor units.
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_monetary: Option<f64>,
    /// Total spend, minor units.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub total_monetary: Option<i64>,
    /// Mean predicted value, minor units.
    #[diesel(sql_type = Nullable<Double>)]
    pub avg_predicted: Option<f64>,
    /// Total predicted value, minor units.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub total_predicted: Option<i64>,
}

/// Statistics per value of `column` (`rfm_segment`, `clv_tier` or `churn_risk`), plus
/// one row with key `NULL` for the whole tenant.
pub async fn stats_by(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    column: GroupColumn,
) -> QueryResult<Vec<GroupStats>> {
    let column = column.sql();
    diesel::sql_query(format!(
        "SELECT {column} AS key, count(*) AS customers, avg(recency_days)::float8 AS avg_recency, \
         avg(frequency)::float8 AS avg_frequency, avg(monetary)::float8 AS avg_monetary, \
         sum(monetary)::int8 AS total_monetary, avg(predicted_value)::float8 AS avg_predicted, \
         sum(predicted_value)::int8 AS total_predicted \
         FROM customer_scores WHERE tenant_id = $1 GROUP BY GROUPING SETS (({column}), ())"
    ))
    .bind::<Text, _>(tenant)
    .load(conn)
    .await
}

/// The columns statistics can be grouped by (never user text: the SQL names them).
#[derive(Debug, Clone, Copy)]
pub enum GroupColumn {
    /// RFM segment.
    Segment,
    /// CLV tier.
    Tier,
    /// Churn risk.
    Risk,
}

impl GroupColumn {
    fn sql(self) -> &'static str {
        match self {
            GroupColumn::Segment => "rfm_segment",
            GroupColumn::Tier => "clv_tier",
            GroupColumn::Risk => "churn_risk",
        }
    }
}

/// Scored customers with their email, filtered by one group column's value, ordered as
/// each list needs (`order`: the SQL ORDER BY, chosen by the caller from constants).
pub async fn listed(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    filter: Option<(GroupColumn, &str)>,
    order: ListOrder,
    limit: i64,
) -> QueryResult<Vec<(ScoreRow, Option<String>)>> {
    use customer_scores::dsl as s;
    let mut query = s::customer_scores
        .left_join(
            customers::table.on(customers::tenant_id
                .eq(s::tenant_id)
                .and(customers::customer_id.eq(s::customer_id))),
        )
        .filter(s::tenant_id.eq(tenant))
        .select((ScoreRow::as_select(), customers::email.nullable()))
        .into_boxed();
    if let Some((column, value)) = filter {
        let value = value.to_owned();
        query = match column {
            GroupColumn::Segment => query.filter(s::rfm_segment.eq(value)),
            GroupColumn::Tier => query.filter(s::clv_tier.eq(value)),
            GroupColumn::Risk => query.filter(s::churn_risk.eq(value)),
        };
    }
    query = match order {
        ListOrder::Monetary => query.order((s::monetary.desc(), s::customer_id)),
        ListOrder::Predicted => query.order((s::predicted_value.desc(), s::customer_id)),
        ListOrder::ChurnProbability => query.order((s::churn_probability.desc(), s::customer_id)),
    };
    query.limit(limit).load(conn).await
}

/// Orders of the analytics lists.
#[derive(Debug, Clone, Copy)]
pub enum ListOrder {
    /// Highest spend first.
    Monetary,
    /// Highest predicted value first.
    Predicted,
    /// Most likely to churn first.
    ChurnProbability,
}
