//! `customer_scores`: the latest live run's scores per customer, one partition per
//! tenant, replaced whole by each run ([`load`], then [`swap_in`]); and the reads of the
//! analytics endpoints.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use mkt_db::tokio_postgres;
use uuid::Uuid;

use super::schema::{customer_scores, customers};
use crate::domain::rfm::RfmCode;
use crate::domain::scoring::Scored;

/// One customer's scores from one run.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = customer_scores)]
pub struct ScoreRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Ingestion's id for the customer, the same in every service.
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

/// A live run's scores as they are written: the run's constants once, each customer's
/// scores borrowed from the run's results (a million rows allocate nothing extra).
#[derive(Debug, Clone, Copy)]
pub struct RunScores<'a> {
    /// Tenant the scores belong to; every row written carries it.
    pub tenant: &'a str,
    /// The processing run that computed these scores (its id, stored on every row).
    pub run: Uuid,
    /// The instant the run treated as now.
    pub as_of: DateTime<Utc>,
    /// ISO 4217 of the money fields (the tenant's main currency).
    pub currency: &'a str,
    /// Per customer, in customer id order.
    pub customers: &'a [Scored],
}

/// The table a run's scores are loaded into, and that becomes the tenant's partition of
/// `customer_scores` once swapped in: named after the run only, so always a plain
/// identifier.
pub fn run_table(run: Uuid) -> String {
    format!("customer_scores_r{}", run.simple())
}

/// `tenant` as an SQL string literal (tenant ids are slugs; quoted all the same).
fn literal(tenant: &str) -> String {
    format!("'{}'", tenant.replace('\'', "''"))
}

/// Where a load's time went.
#[derive(Debug, Clone, Copy)]
pub struct Loaded {
    /// Creating the table and copying the rows in.
    pub copy: Duration,
    /// Building its primary key.
    pub key: Duration,
}

/// Loads a run's scores into a table of their own ([`run_table`]), committed but not
/// yet visible through `customer_scores`; [`swap_in`] makes it so.
///
/// The table is created, filled with binary `COPY`, given its primary key and analysed in
/// one transaction, so a failure leaves nothing behind. It carries a `CHECK` on the
/// tenant equal to the partition bound, so attaching it needs no scan. The rows go in
/// frozen (`COPY ... FREEZE`, allowed because the table was created in the same
/// transaction; the visibility map is set as they are written) and autovacuum is off for
/// the table: nothing in it is ever updated or deleted, and an autovacuum of yesterday's
/// table would otherwise hold up the detach for a second (`deadlock_timeout`) and take a
/// core from the run. Wraparound protection still applies; the statistics come from
/// the `ANALYZE` here (of every column: limited to the filtered ones, the endpoints'
/// queries planned 25% slower for 0.05 s saved). `maintenance_work_mem`
/// 256 MB keeps the key's sort of a million rows in memory. Tables of earlier runs
/// that ended without being swapped in (a crash between the two steps) are dropped
/// first.
pub async fn load(
    client: &mut tokio_postgres::Client,
    scores: &RunScores<'_>,
) -> Result<Loaded, tokio_postgres::Error> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    let started = Instant::now();
    drop_abandoned(client).await?;
    let table = run_table(scores.run);
    let transaction = client.transaction().await?;
    // The run's constants (tenant, run, instant, currency) are the load table's column
    // defaults while the rows go in, so each row carries only what varies: a third
    // less to encode and parse. The defaults are dropped again before the swap.
    transaction
        .batch_execute(&format!(
            "SET LOCAL statement_timeout = '100s'; SET LOCAL maintenance_work_mem = '256MB'; \
             CREATE TABLE {table} (LIKE customer_scores INCLUDING DEFAULTS, \
                 CHECK (tenant_id = {tenant})) WITH (autovacuum_enabled = false); \
             ALTER TABLE {table} ALTER COLUMN tenant_id SET DEFAULT {tenant}, \
                 ALTER COLUMN run_id SET DEFAULT '{run}', \
                 ALTER COLUMN as_of SET DEFAULT '{as_of}', \
                 ALTER COLUMN currency SET DEFAULT {currency}",
            tenant = literal(scores.tenant),
            run = scores.run,
            as_of = scores
                .as_of
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            currency = literal(scores.currency),
        ))
        .await?;
    let sink = transaction
        .copy_in(&format!(
            "COPY {table} (customer_id, recency_days, frequency, monetary, recency_score, \
                 frequency_score, monetary_score, rfm_score, rfm_segment, historical_value, \
                 predicted_value, expected_purchases, clv_tier, churn_probability, churn_risk, \
                 last_order_at) \
             FROM STDIN (FORMAT binary, FREEZE)"
        ))
        .await?;
    let types = [
        Type::UUID,
        Type::INT4,
        Type::INT4,
        Type::INT8,
        Type::INT4,
        Type::INT4,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::FLOAT8,
        Type::TEXT,
        Type::FLOAT8,
        Type::TEXT,
        Type::TIMESTAMPTZ,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    let clamp = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    for c in scores.customers {
        let rfm = c.rfm.as_ref();
        let code = rfm.map(|r| r.0.code());
        let score = |f: fn(&crate::domain::rfm::RfmScores) -> u8| rfm.map(|r| i32::from(f(&r.0)));
        let values: [&(dyn ToSql + Sync); 16] = [
            &c.customer_id,
            &clamp(c.values.recency_days),
            &clamp(c.values.frequency),
            &c.values.monetary,
            &score(|r| r.recency),
            &score(|r| r.frequency),
            &score(|r| r.monetary),
            &code.as_ref().map(RfmCode::as_str),
            &rfm.map(|r| r.1.as_str()),
            &c.values.monetary,
            &c.clv.map(|v| v.0),
            &c.clv.map(|v| v.1),
            &c.clv_tier,
            &c.churn.map(|v| v.0),
            &c.churn.map(|v| v.1),
            &c.last_order_at,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    let copy = started.elapsed();
    transaction
        .batch_execute(&format!(
            "ALTER TABLE {table} ALTER COLUMN tenant_id DROP DEFAULT, \
                 ALTER COLUMN run_id DROP DEFAULT, ALTER COLUMN as_of DROP DEFAULT, \
                 ALTER COLUMN currency DROP DEFAULT, ADD PRIMARY KEY (tenant_id, customer_id); \
             ANALYZE {table}"
        ))
        .await?;
    transaction.commit().await?;
    Ok(Loaded {
        copy,
        key: started.elapsed() - copy,
    })
}

/// Drops load tables whose run is no longer running: they were never swapped in.
async fn drop_abandoned(client: &tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
    let abandoned = client
        .query(
            "SELECT c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' AND NOT c.relispartition \
               AND c.relname LIKE 'customer\\_scores\\_r%' \
               AND NOT EXISTS (SELECT 1 FROM processing_runs r WHERE r.status = 'running' \
                   AND c.relname = 'customer_scores_r' || replace(r.id::text, '-', ''))",
            &[],
        )
        .await?;
    for row in abandoned {
        let name: String = row.get(0);
        tracing::info!(table = %name, "dropping a run's scores that were never swapped in");
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{name}\""))
            .await?;
    }
    Ok(())
}

/// A customer whose churn risk went from active or at_risk (in the tenant's current
/// scores) to churning (in the run's): the ones a `churn.alert` is for. A customer
/// scored for the first time alerts nothing.
#[derive(Debug, Clone)]
pub struct Crossing {
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// Risk before this run.
    pub previous_risk: String,
    /// Probability now.
    pub churn_probability: f64,
}

#[derive(QueryableByName)]
struct PreviousRisk {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    customer_id: Uuid,
    #[diesel(sql_type = Text)]
    churn_risk: String,
}

/// The run's customers that crossed into churning: the tenant's current scores table
/// is asked only about the customers churning now (an index probe each), not read whole.
///
/// It reads that table by name rather than through `customer_scores`, so the caller's
/// transaction holds no lock on the parent until its swap: two tenants' runs that both
/// held one and then both asked for the detach's exclusive lock would deadlock.
pub async fn crossings(
    conn: &mut AsyncPgConnection,
    scores: &RunScores<'_>,
) -> QueryResult<Vec<Crossing>> {
    let churning: HashMap<Uuid, f64> = scores
        .customers
        .iter()
        .filter_map(|c| match c.churn {
            Some((probability, "churning")) => Some((c.customer_id, probability)),
            _ => None,
        })
        .collect();
    if churning.is_empty() {
        return Ok(Vec::new());
    }
    let Some(current) = current_run(conn, scores.tenant, false).await? else {
        return Ok(Vec::new());
    };
    let ids: Vec<Uuid> = churning.keys().copied().collect();
    let before: Vec<PreviousRisk> = diesel::sql_query(format!(
        "SELECT customer_id, churn_risk FROM {} \
         WHERE tenant_id = $1 AND customer_id = ANY($2) AND churn_risk IN ('active', 'at_risk')",
        run_table(current)
    ))
    .bind::<Text, _>(scores.tenant)
    .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
    .load(conn)
    .await?;
    let mut crossings: Vec<Crossing> = before
        .into_iter()
        .filter_map(|b| {
            churning.get(&b.customer_id).map(|&probability| Crossing {
                customer_id: b.customer_id,
                previous_risk: b.churn_risk,
                churn_probability: probability,
            })
        })
        .collect();
    crossings.sort_unstable_by_key(|c| c.customer_id);
    Ok(crossings)
}

#[derive(QueryableByName)]
struct CurrentRun {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    run_id: Uuid,
}

/// The run whose table ([`run_table`]) is the tenant's partition of `customer_scores`,
/// if any; `lock` holds its row (`FOR UPDATE`) until the transaction ends, as the swap
/// does.
async fn current_run(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    lock: bool,
) -> QueryResult<Option<Uuid>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let current: Option<CurrentRun> = diesel::sql_query(format!(
        "SELECT run_id FROM score_partitions WHERE tenant_id = $1{lock}"
    ))
    .bind::<Text, _>(tenant)
    .get_result(conn)
    .await
    .optional()?;
    Ok(current.map(|c| c.run_id))
}

/// Makes a loaded run's table ([`load`]) the tenant's scores, in the caller's
/// transaction: detaches and drops the current one and attaches the run's. Customers
/// the run no longer scores (their orders were refunded, or they were erased) are gone
/// with the old table. `run` `None` (a run that scored nobody, so loaded nothing) drops
/// the tenant's scores without a replacement.
///
/// Detaching takes an exclusive lock on `customer_scores` until commit, so the caller
/// swaps last, just before committing, and `lock_timeout` bounds the wait behind a
/// running read.
pub async fn swap_in(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    run: Option<Uuid>,
) -> QueryResult<()> {
    conn.batch_execute("SET LOCAL lock_timeout = '10s'").await?;
    if let Some(current) = current_run(conn, tenant, true).await? {
        let old = run_table(current);
        conn.batch_execute(&format!(
            "ALTER TABLE customer_scores DETACH PARTITION {old}; DROP TABLE {old}"
        ))
        .await?;
    }
    let Some(run) = run else {
        diesel::sql_query("DELETE FROM score_partitions WHERE tenant_id = $1")
            .bind::<Text, _>(tenant)
            .execute(conn)
            .await?;
        return Ok(());
    };
    conn.batch_execute(&format!(
        "ALTER TABLE customer_scores ATTACH PARTITION {} FOR VALUES IN ({})",
        run_table(run),
        literal(tenant)
    ))
    .await?;
    diesel::sql_query(
        "INSERT INTO score_partitions (tenant_id, run_id) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET run_id = excluded.run_id, attached_at = now()",
    )
    .bind::<Text, _>(tenant)
    .bind::<diesel::sql_types::Uuid, _>(run)
    .execute(conn)
    .await?;
    Ok(())
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
    /// How many scored customers fall in the group.
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
