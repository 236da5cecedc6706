//! Processing runs: requested through the API (seed 004's `/process`) or by the nightly
//! schedule, queued on the shared job runner (mkt-jobs, queue [`QUEUE`]) in the
//! transaction that records the run, so an accepted run survives a restart and a dead
//! worker's run is taken over. A synchronous request executes its run inline and answers with
//! the results; `"async": true` answers 202 and the status route reports progress.
//!
//! A run with `as_of` is a backtest: it answers with its results and models but does not
//! replace the live scores nor publish them.
//!
//! `force: false` skips the work when nothing can have changed: the last completed run
//! covered the same analyses, was live (no `as_of`), ran today (UTC; recency and churn
//! move with the calendar) and no order changed since it started. The skipped run then
//! reports that run's results.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use mkt_jobs::{Job, JobError, NewJob};
use mkt_runtime::Infra;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::scoring::{self, Analyses, Settings};
use crate::error::ApiError;
use crate::events::publish;
use crate::store::runs::{self, NewRun, Outcome, RunRow};
use crate::store::scores::{self, RunScores};
use crate::store::{customers, facts};
use mkt_bus::outbox::enqueue_many;

/// The job queue (mkt-jobs) runs execute on.
pub const QUEUE: &str = "cdp-analytics.processing-runs";
/// Starts a run gets (a worker dying mid-run counts as one) before it is failed.
const MAX_ATTEMPTS: i32 = 3;

/// Earliest `as_of` of a backtest, as a Unix time: 1970-01-01. The facts count days since
/// then, and a far-past instant (`-9999-...`) overflowed date arithmetic into a 500;
/// earlier is a 400 (docs/errors.md).
pub const EARLIEST_AS_OF_UNIX: i64 = 0;

/// [`EARLIEST_AS_OF_UNIX`] as an instant.
pub fn earliest_as_of() -> DateTime<Utc> {
    DateTime::from_timestamp(EARLIEST_AS_OF_UNIX, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// `statement_timeout` for a run's bulk statements (reading every counted order,
/// writing every score), set with `SET LOCAL` in their transactions. The pool's own
/// timeout (5 s by default) guards the API's requests; a run's reads of every customer's
/// facts (or, for a backtest, every order) and its load of every score take longer at
/// scale (`docs/benchmarks.md`), so a run gets this instead. The job's heartbeat keeps
/// the run's lease alive meanwhile.
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
    let new = NewRun {
        id: Uuid::now_v7(),
        tenant_id: tenant.to_owned(),
        analyses: request.analyses.names(),
        force: request.force,
        as_of: request.as_of,
        status: "queued".into(),
        trigger: trigger.into(),
        requested_at: Utc::now(),
    };
    let mut conn = infra.pool.get().await?;
    let run = conn
        .transaction(async |conn| {
            let run = runs::enqueue(conn, &new).await?;
            if run.id == new.id {
                let job = NewJob {
                    id: run.id,
                    queue: QUEUE,
                    tenant_id: tenant,
                    max_attempts: MAX_ATTEMPTS,
                };
                mkt_jobs::enqueue(conn, &job).await?;
            }
            Ok::<_, ApiError>(run)
        })
        .await?;
    Ok(run)
}

/// Queues a run and waits for it: executes it here unless a worker already took it.
pub async fn run_now(infra: &Infra, tenant: &str, request: &Request) -> Result<RunRow, ApiError> {
    Ok(run_now_timed(infra, tenant, request).await?.0)
}

/// [`run_now`], with the phase times when it executed the run itself (the bench's view).
pub async fn run_now_timed(
    infra: &Infra,
    tenant: &str,
    request: &Request,
) -> Result<(RunRow, Option<Phases>), ApiError> {
    let run = enqueue(infra, tenant, request, "api").await?;
    let claimed = {
        let mut conn = infra.pool.get().await?;
        mkt_jobs::claim_id(&mut conn, run.id, queue().lease).await?
    };
    let mut phases = None;
    if let Some(job) = claimed {
        // Executed here, under the runner's heartbeat and fencing, its phases kept aside.
        let timed: PhaseSink = Arc::new(Mutex::new(None));
        mkt_jobs::execute(&infra.pool, infra, &queue_with(Some(timed.clone())), job).await;
        phases = timed.lock().ok().and_then(|mut p| p.take());
    }
    let mut conn = infra.pool.get().await?;
    loop {
        let current = runs::find(&mut conn, run.id).await?;
        if !matches!(current.status.as_str(), "queued" | "running") {
            return Ok((current, phases));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn same_day(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    a.date_naive() == b.date_naive()
}

/// Where a synchronous request collects the phases of the run it executed.
type PhaseSink = Arc<Mutex<Option<Phases>>>;

/// The processing queue: each job executes its run; a run whose job runs out of
/// attempts (its workers kept dying) is marked failed.
pub fn queue() -> mkt_jobs::Queue<Infra> {
    queue_with(None)
}

fn queue_with(sink: Option<PhaseSink>) -> mkt_jobs::Queue<Infra> {
    let mut queue = mkt_jobs::Queue::new(
        QUEUE,
        Arc::new(move |infra: Infra, job: Job| {
            let sink = sink.clone();
            Box::pin(async move {
                let phases = run_job(&infra, &job).await?;
                if let (Some(sink), Some(phases)) = (sink, phases)
                    && let Ok(mut slot) = sink.lock()
                {
                    *slot = Some(phases);
                }
                Ok(())
            })
        }),
    )
    .on_gave_up(Arc::new(|infra: Infra, job: Job, reason: String| {
        Box::pin(async move {
            let outcome = Outcome {
                status: "failed",
                records_processed: 0,
                results: None,
                model: None,
                error: Some(format!("the run could not complete: {reason}")),
            };
            match infra.pool.get().await {
                Ok(mut conn) => {
                    if let Err(error) = runs::finish(&mut conn, job.id, &outcome).await {
                        tracing::error!(run = %job.id, %error, "cannot mark the run failed");
                    }
                }
                Err(error) => tracing::error!(run = %job.id, %error, "cannot mark the run failed"),
            }
        })
    }));
    queue.lease = Duration::from_secs(120);
    queue.poll = Duration::from_secs(1);
    queue
}

/// Starts the job's run and executes it to its end (processed, skipped or failed: a
/// failure is the run's, recorded on it, not retried); `None` when it had already ended.
async fn run_job(infra: &Infra, job: &Job) -> Result<Option<Phases>, JobError> {
    let started = {
        let mut conn = infra.pool.get().await?;
        runs::start(&mut conn, job.id).await?
    };
    match started {
        Some(run) => Ok(Some(execute_timed(infra, &run).await)),
        None => Ok(None),
    }
}

/// How long each phase of a run took: logged when a run ends; the analytics bench
/// prints them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Reading the facts (the main currency with them).
    pub facts: Duration,
    /// The models (`scoring::run`).
    pub scoring: Duration,
    /// Encoding the `analytics.scores.updated` messages (on a blocking thread, while
    /// the load streams).
    pub encode: Duration,
    /// The write transaction, all of it: the load on the bulk connection while the
    /// crossings and the outbox rows are written, then the swap and the commit.
    pub persist: Duration,
    /// The binary `COPY` into the run's table (its creation included).
    pub load_copy: Duration,
    /// Building that table's primary key and analysing it.
    pub load_key: Duration,
    /// Reading the previous risks of the customers churning now ([`scores::crossings`]).
    pub crossings_read: Duration,
    /// Writing `analytics.scores.updated` and `churn.alert` to the outbox.
    pub outbox: Duration,
    /// Swapping the run's table in ([`scores::swap_in`]).
    pub swap: Duration,
    /// Customers that crossed into churning.
    pub crossings: usize,
    /// The whole run, bookkeeping (claim, progress, finish) included.
    pub total: Duration,
}

/// Executes a started run to its end (processed, skipped or failed), returning how long
/// each phase took; never panics the worker: failures are recorded on the run.
async fn execute_timed(infra: &Infra, run: &RunRow) -> Phases {
    let started = Instant::now();
    let mut phases = Phases::default();
    let outcome = match compute(infra, run, &mut phases).await {
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
    phases.total = started.elapsed();
    tracing::info!(
        run = %run.id,
        tenant = %run.tenant_id,
        status = outcome.status,
        records = outcome.records_processed,
        ?phases,
        "processing run ended"
    );
    phases
}

async fn compute(infra: &Infra, run: &RunRow, phases: &mut Phases) -> anyhow::Result<Outcome> {
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
    // One read-only snapshot for the currency and the facts, with the batch timeout. A
    // live run reads the facts the order consumer keeps; a backtest folds them from the
    // orders placed up to its instant.
    let t = Instant::now();
    let tenant = run.tenant_id.clone();
    let backtest = run.as_of.is_some();
    let read = conn
        .build_transaction()
        .read_only()
        .repeatable_read()
        .run(async |conn| {
            conn.batch_execute(BATCH_STATEMENT_TIMEOUT).await?;
            if !backtest {
                return facts::current(conn, &tenant, as_of).await;
            }
            let Some(currency) = facts::main_currency(conn, &tenant, as_of).await? else {
                return Ok::<_, diesel::result::Error>(None);
            };
            let facts = facts::from_orders(conn, &tenant, &currency, as_of, None).await?;
            Ok(Some((currency, facts)))
        })
        .await?;
    phases.facts = t.elapsed();
    let settings = settings_of(&mut conn, &run.tenant_id).await?;
    runs::progress(&mut conn, run.id, 0.4).await?;
    // No counted order: nothing to score (and, for a live run, no scores to keep).
    let (results, model, scored) = match read {
        Some((currency, facts)) if !facts.is_empty() => {
            let t = Instant::now();
            // The models are CPU work: keep them off the async workers.
            let result = tokio::task::spawn_blocking(move || {
                scoring::run(&facts, as_of, analyses, &settings)
            })
            .await?
            .map_err(anyhow::Error::msg)?;
            phases.scoring = t.elapsed();
            (
                result.results,
                result.model,
                Some((currency, result.customers)),
            )
        }
        _ => (serde_json::Map::new(), json!({}), None),
    };
    runs::progress(&mut conn, run.id, 0.8).await?;
    let (currency, customers) = scored.unwrap_or_default();
    let records = customers.len() as i64;
    if backtest {
        // A backtest answers "what would the models have said then": it reports, but
        // never replaces today's scores or tells other services about them.
        return Ok(finished(started, results, model, records));
    }
    let customers = std::sync::Arc::new(customers);
    let computed_at = Utc::now();
    // The messages are encoded on a blocking thread while the load streams (CPU work,
    // needed only when the outbox rows are written).
    let encoding = {
        let (customers, tenant, currency, run) =
            (customers.clone(), tenant.clone(), currency.clone(), run.id);
        tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let scores = RunScores {
                tenant: &tenant,
                run,
                as_of,
                currency: &currency,
                customers: &customers,
            };
            (publish::scores_updated(&scores, computed_at), t.elapsed())
        })
    };
    let scores = RunScores {
        tenant: &tenant,
        run: run.id,
        as_of,
        currency: &currency,
        customers: &customers,
    };
    let mut bulk = if customers.is_empty() {
        None
    } else {
        Some(infra.bulk_connection().await?)
    };
    runs::progress(&mut conn, run.id, 0.9).await?;
    let t = Instant::now();
    let (loaded, written, swap) = conn
        .transaction(async |conn| {
            conn.batch_execute(BATCH_STATEMENT_TIMEOUT).await?;
            // The load (over the bulk connection) and this transaction's crossings and
            // outbox rows run at once: two backends, one per core.
            let load = async {
                match bulk.as_mut() {
                    Some(bulk) => Ok(Some(scores::load(bulk, &scores).await?)),
                    None => Ok::<_, anyhow::Error>(None),
                }
            };
            let write = async {
                let t = Instant::now();
                let crossings = scores::crossings(&mut *conn, &scores).await?;
                let crossings_time = t.elapsed();
                let (mut events, encode) = encoding.await?;
                events.extend(publish::churn_alerts(
                    &tenant,
                    scores.run,
                    computed_at,
                    &crossings,
                ));
                let t = Instant::now();
                enqueue_many(&mut *conn, &events).await?;
                Ok::<_, anyhow::Error>((crossings_time, crossings.len(), encode, t.elapsed()))
            };
            let (loaded, written) = tokio::try_join!(load, write)?;
            // Last: the swap holds an exclusive lock on `customer_scores` until commit.
            let t = Instant::now();
            let loaded_run = loaded.is_some().then_some(scores.run);
            scores::swap_in(conn, &tenant, loaded_run).await?;
            Ok::<_, anyhow::Error>((loaded, written, t.elapsed()))
        })
        .await?;
    if let Some(loaded) = loaded {
        (phases.load_copy, phases.load_key) = (loaded.copy, loaded.key);
    }
    (
        phases.crossings_read,
        phases.crossings,
        phases.encode,
        phases.outbox,
    ) = written;
    phases.swap = swap;
    phases.persist = t.elapsed();
    infra.relay.wake();
    Ok(finished(started, results, model, records))
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

/// The worker: runs queued runs (and runs whose worker died) on the job runner.
pub async fn run_worker(infra: Infra) {
    mkt_jobs::work(infra.pool.clone(), infra, queue()).await;
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
