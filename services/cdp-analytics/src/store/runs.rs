//! Queries on `processing_runs`: what users see of a run (status, progress, results). When
//! and where it runs is the shared job runner's (mkt-jobs; the job has the run's id).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::processing_runs;

/// A processing run.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = processing_runs)]
pub struct RunRow {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// rfm, clv, churn.
    pub analyses: Vec<String>,
    /// Run even if nothing changed.
    pub force: bool,
    /// Backtest instant; `None` = when it runs.
    pub as_of: Option<DateTime<Utc>>,
    /// queued | running | processed | skipped | failed.
    pub status: String,
    /// api | schedule.
    pub trigger: String,
    /// Requested.
    pub requested_at: DateTime<Utc>,
    /// First started.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Starts so far.
    pub attempts: i32,
    /// 0..1.
    pub progress: f64,
    /// Customers scored.
    pub records_processed: i64,
    /// Seed 004's `results`.
    pub results: Option<serde_json::Value>,
    /// The fitted models.
    pub model: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A run to queue.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = processing_runs)]
pub struct NewRun {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// Analyses.
    pub analyses: Vec<String>,
    /// Force.
    pub force: bool,
    /// Backtest instant.
    pub as_of: Option<DateTime<Utc>>,
    /// `queued`.
    pub status: String,
    /// api | schedule.
    pub trigger: String,
    /// Now.
    pub requested_at: DateTime<Utc>,
}

/// Queues a run unless the tenant already has one queued or running; returns the run
/// that will do the work (the new one or the one already active).
pub async fn enqueue(conn: &mut AsyncPgConnection, run: &NewRun) -> QueryResult<RunRow> {
    // The active run our insert conflicted with may end before we read it (a 500
    // "Record not found" that schemathesis found); then ours goes in on the next try.
    for _ in 0..3 {
        let inserted = diesel::insert_into(processing_runs::table)
            .values(run)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 1 {
            return find(conn, run.id).await;
        }
        let active = processing_runs::table
            .filter(processing_runs::tenant_id.eq(&run.tenant_id))
            .filter(processing_runs::status.eq_any(["queued", "running"]))
            .select(RunRow::as_select())
            .first(conn)
            .await
            .optional()?;
        if let Some(active) = active {
            return Ok(active);
        }
    }
    Err(diesel::result::Error::NotFound)
}

/// One run.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<RunRow> {
    processing_runs::table
        .find(id)
        .select(RunRow::as_select())
        .first(conn)
        .await
}

/// Marks a run running as its job starts (again, after a crash), counting the start;
/// `None` when the run already ended (its job was a leftover) .
pub async fn start(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<RunRow>> {
    diesel::sql_query(
        "UPDATE processing_runs SET status = 'running', attempts = attempts + 1, \
             started_at = COALESCE(started_at, now()) \
         WHERE id = $1 AND status IN ('queued', 'running') \
         RETURNING *",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .get_result(conn)
    .await
    .optional()
}

/// Records progress (0..1).
pub async fn progress(conn: &mut AsyncPgConnection, id: Uuid, fraction: f64) -> QueryResult<()> {
    use processing_runs::dsl as r;
    diesel::update(r::processing_runs.find(id))
        .set(r::progress.eq(fraction))
        .execute(conn)
        .await?;
    Ok(())
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// processed | skipped | failed.
    pub status: &'static str,
    /// Customers scored.
    pub records_processed: i64,
    /// Seed 004's results.
    pub results: Option<serde_json::Value>,
    /// Fitted models.
    pub model: Option<serde_json::Value>,
    /// Failure cause.
    pub error: Option<String>,
}

/// Ends a run.
pub async fn finish(conn: &mut AsyncPgConnection, id: Uuid, outcome: &Outcome) -> QueryResult<()> {
    use processing_runs::dsl as r;
    diesel::update(r::processing_runs.find(id))
        .set((
            r::status.eq(outcome.status),
            r::finished_at.eq(diesel::dsl::now),
            r::progress.eq(1.0),
            r::records_processed.eq(outcome.records_processed),
            r::results.eq(&outcome.results),
            r::model.eq(&outcome.model),
            r::error.eq(&outcome.error),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The tenant's most recent run, and its most recent completed live (not backtest) one.
pub async fn latest(
    conn: &mut AsyncPgConnection,
    tenant: &str,
) -> QueryResult<(Option<RunRow>, Option<RunRow>)> {
    use processing_runs::dsl as r;
    let newest = r::processing_runs
        .filter(r::tenant_id.eq(tenant))
        .order(r::requested_at.desc())
        .select(RunRow::as_select())
        .first(conn)
        .await
        .optional()?;
    let processed = r::processing_runs
        .filter(r::tenant_id.eq(tenant))
        .filter(r::status.eq("processed"))
        // Backtests do not replace the live scores, so they are not "the last run".
        .filter(r::as_of.is_null())
        .order(r::finished_at.desc())
        .select(RunRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok((newest, processed))
}

/// Tenants with orders whose nightly run is due at `now`: their schedule is enabled,
/// today's run hour (UTC; default 2) has passed, and no run was requested since then.
pub async fn tenants_due(
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Tenant {
        #[diesel(sql_type = diesel::sql_types::Text)]
        tenant_id: String,
    }
    let rows: Vec<Tenant> = diesel::sql_query(
        "WITH tenants AS (SELECT DISTINCT tenant_id FROM orders),          due AS (              SELECT t.tenant_id, date_trunc('day', $1::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'                     + make_interval(hours => COALESCE(s.schedule_hour_utc, 2)) AS due_at              FROM tenants t LEFT JOIN tenant_settings s USING (tenant_id)              WHERE COALESCE(s.schedule_enabled, TRUE)          )          SELECT d.tenant_id FROM due d WHERE $1 >= d.due_at            AND NOT EXISTS (SELECT 1 FROM processing_runs r                            WHERE r.tenant_id = d.tenant_id AND r.requested_at >= d.due_at)",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|t| t.tenant_id).collect())
}
