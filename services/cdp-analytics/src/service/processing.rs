//! Processing runs: requested through the API (seed 004's `/process`) or by the nightly
//! schedule, queued in Postgres and executed by a leased worker, so an accepted run
//! survives a restart. A synchronous request executes its run inline and answers with
//! the results; `"async": true` answers 202 and the status route reports progress.
//!
//! A run with `as_of` is a backtest: it answers with its results and models but does not
//! replace the live scores nor publish them.
//!
//! `force: false` skips the work when nothing can have changed: the last completed run
//! covered the same analyses, was live (no `as_of`), ran today (UTC; recency and churn
//! move with the calendar) and no order changed since it started. The skipped run then
//! reports that run's results.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use mkt_runtime::Infra;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::scoring::{self, Analyses, Settings};
use crate::error::ApiError;
use crate::events::publish::{self, ChurnCrossing};
use crate::store::customers;
use crate::store::runs::{self, NewRun, Outcome, RunRow};
use crate::store::scores::{self, ScoreRow};

/// How long a worker's claim on a run lasts without progress.
pub const LEASE_SECONDS: i64 = 120;

/// `statement_timeout` for a run's bulk statements (reading every counted order,
/// writing every score), set with `SET LOCAL` in their transactions. The pool's own
/// timeout (5 s by default) guards the API's requests; at a million customers the
/// facts read alone takes about 3 s and the score upsert about 7 s
/// (`docs/benchmarks.md`), so a run gets this instead. It stays below the lease, which a run renews between
/// its phases.
const BATCH_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = '100s'";

/// A processing request (seed 004 plus `as_of` and `async`).
#[derive(Debug, Clone)]
pub struct Request {
    /// Which analyses.
    pub analyses: Analyses,
    /// Run even if nothing changed.
    pub force: bool,
    /// Compute as if now were this instant.
    pub as_of: Option<DateTime<Utc>>,
}

/// Queues a run for the tenant (or joins the one already queued or running).
pub async fn enqueue(
    infra: &Infra,
    tenant: &str,
    request: &Request,
    trigger: &str,
) -> Result<RunRow, ApiError> {
    let mut conn = infra.pool.get().await?;
    Ok(runs::enqueue(
        &mut conn,
        &NewRun {
            id: Uuid::now_v7(),
            tenant_id: tenant.to_owned(),
            analyses: request.analyses.names(),
            force: request.force,
            as_of: request.as_of,
            status: "queued".into(),
            trigger: trigger.into(),
            requested_at: Utc::now(),
        },
    )
    .await?)
}

/// Queues a run and waits for it: executes it here unless a worker already took it.
pub async fn run_now(infra: &Infra, tenant: &str, request: &Request) -> Result<RunRow, ApiError> {
    let run = enqueue(infra, tenant, request, "api").await?;
    let claimed = {
        let mut conn = infra.pool.get().await?;
        runs::claim_one(&mut conn, run.id, LEASE_SECONDS).await?
    };
    if let Some(run) = claimed {
        execute(infra, &run).await;
    }
    let mut conn = infra.pool.get().await?;
    loop {
        let current = runs::find(&mut conn, run.id).await?;
        if !matches!(current.status.as_str(), "queued" | "running") {
            return Ok(current);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn same_day(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.date_naive() == b.date_naive()
}

/// Executes a claimed run to its end (processed, skipped or failed); never panics the
/// worker: failures are recorded on the run.
pub async fn execute(infra: &Infra, run: &RunRow) {
    let outcome = match compute(infra, run).await {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::error!(run = %run.id, error = %format!("{error:#}"), "processing failed");
            Outcome {
                status: "failed",
                records_processed: 0,
                results: None,
                model: None,
                error: Some(format!("{error:#}")),
            }
        }
    };
    match infra.pool.get().await {
        Ok(mut conn) => {
            if let Err(error) = runs::finish(&mut conn, run.id, &outcome).await {
                tracing::error!(run = %run.id, %error, "could not record the run's end");
            }
        }
        Err(error) => tracing::error!(run = %run.id, %error, "could not record the run's end"),
    }
}

async fn compute(infra: &Infra, run: &RunRow) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let analyses = Analyses::parse(&run.analyses).map_err(anyhow::Error::msg)?;
    let mut conn = infra.pool.get().await?;
    if !run.force
        && let (_, Some(last)) = runs::latest(&mut conn, &run.tenant_id).await?
        && run.as_of.is_none()
        && last.as_of.is_none()
        && analyses.names().iter().all(|a| last.analyses.contains(a))
        && let Some(last_started) = last.started_at
        && same_day(last_started, Utc::now())
        && !customers::changed_since(&mut conn, &run.tenant_id, last_started).await?
    {
        return Ok(Outcome {
            status: "skipped",
            records_processed: last.records_processed,
            results: last.results.clone(),
            model: last.model.clone(),
            error: None,
        });
    }
    let as_of = run.as_of.unwrap_or_else(Utc::now);
    // One read-only snapshot for the currency and the facts, with the batch timeout.
    let tenant = run.tenant_id.clone();
    let read = conn
        .build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| {
            conn.batch_execute(BATCH_STATEMENT_TIMEOUT).await?;
            let Some(currency) = customers::main_currency(conn, &tenant).await? else {
                return Ok::<_, diesel::result::Error>(None);
            };
            let facts = customers::facts(conn, &tenant, &currency, as_of).await?;
            Ok(Some((currency, facts)))
        })
        .await?;
    let Some((currency, facts)) = read else {
        return Ok(Outcome {
            status: "processed",
            records_processed: 0,
            results: Some(json!({})),
            model: Some(json!({})),
            error: None,
        });
    };
    let settings = settings_of(&mut conn, &run.tenant_id).await?;
    runs::progress(&mut conn, run.id, 0.4, LEASE_SECONDS).await?;
    // The models are CPU work: keep them off the async workers.
    let result =
        tokio::task::spawn_blocking(move || scoring::run(&facts, as_of, analyses, &settings))
            .await?
            .map_err(anyhow::Error::msg)?;
    runs::progress(&mut conn, run.id, 0.8, LEASE_SECONDS).await?;
    let computed_at = Utc::now();
    let rows: Vec<ScoreRow> = result
        .customers
        .iter()
        .map(|c| score_row(&run.tenant_id, run.id, as_of, &currency, c))
        .collect();
    let records = rows.len() as i64;
    if run.as_of.is_some() {
        // A backtest answers "what would the models have said then": it reports, but
        // never replaces today's scores or tells other services about them.
        return Ok(finished(started, result.results, result.model, records));
    }
    let run_id = run.id;
    conn.transaction(async |conn| {
        conn.batch_execute(BATCH_STATEMENT_TIMEOUT).await?;
        let previous = scores::risks(conn, &tenant).await?;
        scores::replace(conn, &tenant, run_id, &rows).await?;
        publish::scores_updated(conn, &tenant, run_id, computed_at, &rows).await?;
        let crossings = churn_crossings(&previous, &rows);
        publish::churn_alerts(conn, &tenant, run_id, computed_at, &crossings).await?;
        Ok::<_, diesel::result::Error>(())
    })
    .await?;
    infra.relay.wake();
    Ok(finished(started, result.results, result.model, records))
}

/// A processed run's outcome, each analysis stamped with the run's duration in seconds.
fn finished(
    started: Instant,
    mut results: serde_json::Map<String, Value>,
    model: Value,
    records: i64,
) -> Outcome {
    let seconds = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    for value in results.values_mut() {
        if let Value::Object(map) = value {
            map.insert("processing_time".into(), json!(seconds));
        }
    }
    Outcome {
        status: "processed",
        records_processed: records,
        results: Some(Value::Object(results)),
        model: Some(model),
        error: None,
    }
}

/// Customers whose risk went from active or at_risk (before this run) to churning: the
/// ones a `churn.alert` is for. A customer scored for the first time alerts nothing.
pub fn churn_crossings(
    previous: &std::collections::HashMap<Uuid, String>,
    rows: &[ScoreRow],
) -> Vec<ChurnCrossing> {
    rows.iter()
        .filter(|r| r.churn_risk.as_deref() == Some("churning"))
        .filter_map(|r| {
            let before = previous.get(&r.customer_id)?;
            matches!(before.as_str(), "active" | "at_risk").then(|| ChurnCrossing {
                customer_id: r.customer_id,
                previous_risk: before.clone(),
                probability: r.churn_probability.unwrap_or_default(),
            })
        })
        .collect()
}

/// The tenant's run settings: its RFM mapping if it set one, the defaults otherwise.
async fn settings_of(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: &str,
) -> anyhow::Result<Settings> {
    let mut settings = Settings::default();
    if let Some(rules) = crate::store::settings::rfm_rules(conn, tenant).await? {
        settings.rules = serde_json::from_value(rules)?;
    }
    Ok(settings)
}

/// The stored row of one scored customer (the bench builds its rows with this too).
pub fn score_row(
    tenant: &str,
    run: Uuid,
    as_of: DateTime<Utc>,
    currency: &str,
    c: &scoring::Scored,
) -> ScoreRow {
    let clamp = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
    ScoreRow {
        tenant_id: tenant.to_owned(),
        customer_id: c.customer_id,
        run_id: run,
        as_of,
        recency_days: Some(clamp(c.values.recency_days)),
        frequency: Some(clamp(c.values.frequency)),
        monetary: Some(c.values.monetary),
        recency_score: c.rfm.as_ref().map(|r| i32::from(r.0.recency)),
        frequency_score: c.rfm.as_ref().map(|r| i32::from(r.0.frequency)),
        monetary_score: c.rfm.as_ref().map(|r| i32::from(r.0.monetary)),
        rfm_score: c.rfm.as_ref().map(|r| r.0.code()),
        rfm_segment: c.rfm.as_ref().map(|r| r.1.clone()),
        historical_value: Some(c.values.monetary),
        predicted_value: c.clv.map(|v| v.0),
        expected_purchases: c.clv.map(|v| v.1),
        clv_tier: c.clv_tier.map(str::to_owned),
        churn_probability: c.churn.map(|v| v.0),
        churn_risk: c.churn.map(|v| v.1.to_owned()),
        last_order_at: Some(c.last_order_at),
        currency: Some(currency.to_owned()),
    }
}

/// The worker: claims queued runs (and runs whose worker died) and executes them.
pub async fn run_worker(infra: Infra) {
    loop {
        let claimed = match infra.pool.get().await {
            Ok(mut conn) => runs::claim(&mut conn, LEASE_SECONDS).await,
            Err(error) => {
                tracing::warn!(%error, "processing worker: no connection");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        match claimed {
            Ok(Some(run)) => execute(&infra, &run).await,
            Ok(None) => tokio::time::sleep(Duration::from_secs(1)).await,
            Err(error) => {
                tracing::warn!(%error, "processing worker: claim failed");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The nightly schedule: every five minutes, each tenant whose run hour (UTC, per tenant,
/// default 02:00) has passed today and that has had no run requested since gets a
/// `force: false` run of all analyses. Every replica may run it: the one-active-run
/// index makes a second enqueue join the first.
pub async fn run_schedule(infra: Infra) {
    let mut ticker = tokio::time::interval(Duration::from_secs(300));
    loop {
        ticker.tick().await;
        if let Err(error) = schedule_pass(&infra, Utc::now()).await {
            tracing::warn!(error = %format!("{error:#}"), "schedule pass failed");
        }
    }
}

/// One pass of the schedule as of `now`; returns the tenants it queued runs for.
pub async fn schedule_pass(infra: &Infra, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
    let tenants = {
        let mut conn = infra.pool.get().await?;
        runs::tenants_due(&mut conn, now).await?
    };
    let request = Request {
        analyses: Analyses::parse(&[]).map_err(anyhow::Error::msg)?,
        force: false,
        as_of: None,
    };
    for tenant in &tenants {
        enqueue(infra, tenant, &request, "schedule").await?;
    }
    Ok(tenants)
}
