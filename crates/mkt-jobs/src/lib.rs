//! The job runner every service shares: a queue in the service's own Postgres schema
//! (`jobs`, migrated with the bus tables), with leases, heartbeats, retries with
//! exponential backoff, takeover of a dead worker's job, and progress.
//!
//! Owns: when a job runs and who runs it. A job is written with [`enqueue`] in the
//! transaction that creates the work (an import's upload, a processing request), so an
//! accepted job survives any crash; a worker loop per queue ([`work`]) claims runnable
//! jobs with `FOR UPDATE SKIP LOCKED`, keeps its lease alive with a heartbeat while the
//! handler runs, and records the end. A job whose worker died (no heartbeat past the lease)
//! is claimed again by any worker; each start increments `attempts`, which fences the old
//! worker's heartbeats and end so it cannot overwrite the new one's.
//!
//! Handlers must therefore be resumable: they keep their own cursor in their domain
//! tables (an import's last committed row) and may run again after a crash.
//!
//! Must never: know a service's job kinds or domain tables (handlers are the services').

/// The `jobs` table's diesel definition (print-schema shape; a test checks it).
pub mod schema;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use mkt_db::Pool;
use uuid::Uuid;

use schema::jobs;

/// The `jobs` table, migrated into every service's schema before the service's own
/// migrations (after the bus's).
pub const MIGRATIONS: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations");

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// The job's id; the domain row's own id (an import, a run) so either finds the other.
    pub id: Uuid,
    /// The queue whose worker runs it (`<service>.<kind>`).
    pub queue: &'a str,
    /// The tenant the work is for.
    pub tenant_id: &'a str,
    /// Starts allowed before it fails for good (a crash mid-run counts as a start).
    pub max_attempts: i32,
}

/// Queues a job on `conn`, which should be inside the transaction that creates the work.
/// Queuing an id that exists already does nothing (a retried request, a replayed event).
pub async fn enqueue(conn: &mut AsyncPgConnection, job: &NewJob<'_>) -> QueryResult<()> {
    diesel::insert_into(jobs::table)
        .values((
            jobs::id.eq(job.id),
            jobs::queue.eq(job.queue),
            jobs::tenant_id.eq(job.tenant_id),
            jobs::max_attempts.eq(job.max_attempts.max(1)),
        ))
        .on_conflict(jobs::id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// A claimed job, as its handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job's (and its domain row's) id.
    pub id: Uuid,
    /// Its queue.
    pub queue: String,
    /// Its tenant.
    pub tenant_id: String,
    /// This start's number, from 1; above 1 the handler resumes a job that was started
    /// before (after a crash or a retry).
    pub attempt: i32,
    /// Starts allowed.
    pub max_attempts: i32,
}

/// A job's state as stored.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    /// Id.
    pub id: Uuid,
    /// Queue.
    pub queue: String,
    /// Tenant.
    pub tenant_id: String,
    /// queued | running | succeeded | failed.
    pub state: String,
    /// Starts so far.
    pub attempts: i32,
    /// Starts allowed.
    pub max_attempts: i32,
    /// Not before.
    pub run_at: DateTime<Utc>,
    /// The running worker's lease.
    pub lease_until: Option<DateTime<Utc>>,
    /// 0..1.
    pub progress: f64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Succeeded or failed for good.
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Queryable)]
struct Claimed {
    id: Uuid,
    queue: String,
    tenant_id: String,
    attempts: i32,
    max_attempts: i32,
}

impl From<Claimed> for Job {
    fn from(row: Claimed) -> Self {
        Job {
            id: row.id,
            queue: row.queue,
            tenant_id: row.tenant_id,
            attempt: row.attempts,
            max_attempts: row.max_attempts,
        }
    }
}

fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

/// Claims the oldest runnable job of `queue` for `lease`: a queued one whose time has
/// come, or a running one whose worker stopped renewing its lease. Skips jobs other
/// workers are claiming at the same moment.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    queue: &str,
    lease: Duration,
) -> QueryResult<Option<Job>> {
    let now = Utc::now();
    let candidate: Option<Uuid> = jobs::table
        .filter(jobs::queue.eq(queue))
        .filter(
            jobs::state
                .eq("queued")
                .and(jobs::run_at.le(now))
                .or(jobs::state.eq("running").and(jobs::lease_until.lt(now))),
        )
        .order(jobs::run_at.asc())
        .select(jobs::id)
        .for_update()
        .skip_locked()
        .first(conn)
        .await
        .optional()?;
    match candidate {
        Some(id) => start(conn, id, lease).await,
        None => Ok(None),
    }
}

/// Claims one specific job if it is still queued (a synchronous request running the job
/// it just queued); `None` when a worker got it first.
pub async fn claim_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    lease: Duration,
) -> QueryResult<Option<Job>> {
    let candidate: Option<Uuid> = jobs::table
        .filter(jobs::id.eq(id))
        .filter(jobs::state.eq("queued"))
        .select(jobs::id)
        .for_update()
        .skip_locked()
        .first(conn)
        .await
        .optional()?;
    match candidate {
        Some(id) => start(conn, id, lease).await,
        None => Ok(None),
    }
}

async fn start(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    lease: Duration,
) -> QueryResult<Option<Job>> {
    let now = Utc::now();
    diesel::update(jobs::table.find(id))
        .set((
            jobs::state.eq("running"),
            jobs::attempts.eq(jobs::attempts + 1),
            jobs::lease_until.eq(lease_end(lease)),
            jobs::heartbeat_at.eq(now),
            jobs::started_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >("COALESCE(started_at, now())")),
        ))
        .returning((
            jobs::id,
            jobs::queue,
            jobs::tenant_id,
            jobs::attempts,
            jobs::max_attempts,
        ))
        .get_result::<Claimed>(conn)
        .await
        .optional()
        .map(|row| row.map(Job::from))
}

/// The job's row while `job` is still its current attempt and running: every write of an
/// attempt is fenced by it.
macro_rules! current {
    ($job:expr) => {
        jobs::table
            .find($job.id)
            .filter(jobs::attempts.eq($job.attempt))
            .filter(jobs::state.eq("running"))
    };
}

/// Extends the lease (and records progress when given); `false` when the job is no
/// longer this attempt's (another worker took it over, or it ended).
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    job: &Job,
    lease: Duration,
    progress: Option<f64>,
) -> QueryResult<bool> {
    let renewed = match progress {
        Some(fraction) => {
            diesel::update(current!(job))
                .set((
                    jobs::lease_until.eq(lease_end(lease)),
                    jobs::heartbeat_at.eq(Utc::now()),
                    jobs::progress.eq(fraction.clamp(0.0, 1.0)),
                ))
                .execute(conn)
                .await?
        }
        None => {
            diesel::update(current!(job))
                .set((
                    jobs::lease_until.eq(lease_end(lease)),
                    jobs::heartbeat_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?
        }
    };
    Ok(renewed == 1)
}

/// Marks the job succeeded; `false` when it was no longer this attempt's.
pub async fn complete(conn: &mut AsyncPgConnection, job: &Job) -> QueryResult<bool> {
    let ended = diesel::update(current!(job))
        .set((
            jobs::state.eq("succeeded"),
            jobs::progress.eq(1.0),
            jobs::lease_until.eq(None::<DateTime<Utc>>),
            jobs::last_error.eq(None::<String>),
            jobs::finished_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(ended == 1)
}

/// Puts the job back in the queue until `delay` has passed, noting why it failed.
pub async fn retry_later(
    conn: &mut AsyncPgConnection,
    job: &Job,
    error: &str,
    delay: Duration,
) -> QueryResult<bool> {
    let requeued = diesel::update(current!(job))
        .set((
            jobs::state.eq("queued"),
            jobs::run_at.eq(lease_end(delay)),
            jobs::lease_until.eq(None::<DateTime<Utc>>),
            jobs::last_error.eq(error),
        ))
        .execute(conn)
        .await?;
    Ok(requeued == 1)
}

/// Fails the job for good.
pub async fn fail(conn: &mut AsyncPgConnection, job: &Job, error: &str) -> QueryResult<bool> {
    let ended = diesel::update(current!(job))
        .set((
            jobs::state.eq("failed"),
            jobs::lease_until.eq(None::<DateTime<Utc>>),
            jobs::last_error.eq(error),
            jobs::finished_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(ended == 1)
}

/// One job's stored state.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<JobRow>> {
    jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Jobs waiting or running per queue (for readiness details and metrics).
pub async fn depth(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, String, i64)>> {
    jobs::table
        .filter(jobs::state.eq_any(["queued", "running"]))
        .group_by((jobs::queue, jobs::state))
        .select((jobs::queue, jobs::state, diesel::dsl::count_star()))
        .order((jobs::queue, jobs::state))
        .load(conn)
        .await
}

/// How an attempt of a job ended badly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// Might work later (a database hiccup, a third party down): retried with backoff
    /// while attempts remain.
    Retry(String),
    /// Can never work (the input is broken): fails now.
    Fail(String),
}

impl<E: std::fmt::Display> From<E> for JobError {
    fn from(error: E) -> Self {
        JobError::Retry(error.to_string())
    }
}

/// What a queue's handler does with one claimed job. The job is `'static` and owned, so
/// the future may outlive the loop's borrow.
pub type RunJob<C> = Arc<dyn Fn(C, Job) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Domain bookkeeping once a job has failed for good (mark the import failed...).
pub type GaveUp<C> = Arc<dyn Fn(C, Job, String) -> BoxFuture<'static, ()> + Send + Sync>;

/// One queue: its name, timings and handler.
#[derive(Clone)]
pub struct Queue<C> {
    /// `<service>.<kind>`.
    pub name: &'static str,
    /// How long a claim lasts without a heartbeat; the heartbeat renews it every third.
    pub lease: Duration,
    /// How long an idle worker waits before looking again.
    pub poll: Duration,
    /// First retry delay; doubled per attempt, at most [`Queue::max_backoff`].
    pub backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// The handler.
    pub run: RunJob<C>,
    /// Called once a job failed for good.
    pub gave_up: GaveUp<C>,
}

impl<C: Send + 'static> Queue<C> {
    /// A queue with the usual timings: 60 s lease, 250 ms poll, retries after 1 s, 2 s,
    /// 4 s... up to 5 minutes.
    pub fn new(name: &'static str, run: RunJob<C>) -> Self {
        Self {
            name,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(250),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            run,
            gave_up: Arc::new(|_, _, _| Box::pin(async {})),
        }
    }

    /// Sets the bookkeeping for a job that failed for good.
    pub fn on_gave_up(mut self, gave_up: GaveUp<C>) -> Self {
        self.gave_up = gave_up;
        self
    }

    /// The delay before retrying after `attempt` failed.
    pub fn retry_delay(&self, attempt: i32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).clamp(0, 16);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler finished; the job succeeded.
    Succeeded,
    /// It failed and will be tried again after the delay.
    Retrying(Duration),
    /// It failed for good.
    Failed(String),
    /// Another worker took the job over meanwhile (this worker's lease had lapsed);
    /// nothing was recorded.
    Superseded,
}

/// Runs `queue`'s jobs forever: claim, execute, repeat; waits `queue.poll` when idle.
pub async fn work<C: Clone + Send + Sync + 'static>(pool: Pool, ctx: C, queue: Queue<C>) {
    let mut idle_errors = 0u32;
    loop {
        let claimed = match pool.get().await {
            Ok(mut conn) => claim(&mut conn, queue.name, queue.lease)
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match claimed {
            Ok(Some(job)) => {
                idle_errors = 0;
                execute(&pool, &ctx, &queue, job).await;
            }
            Ok(None) => tokio::time::sleep(queue.poll).await,
            Err(error) => {
                idle_errors = idle_errors.saturating_add(1);
                tracing::warn!(%error, queue = queue.name, "job worker cannot claim; retrying");
                tokio::time::sleep(queue.poll.saturating_mul(4 * idle_errors.min(8))).await;
            }
        }
    }
}

/// Runs one claimed job to the end of this attempt, renewing its lease meanwhile, and
/// records how it ended. Never panics the caller: a handler's failure is recorded.
pub async fn execute<C: Clone + Send + Sync + 'static>(
    pool: &Pool,
    ctx: &C,
    queue: &Queue<C>,
    job: Job,
) -> Outcome {
    use tracing::Instrument;
    let span = tracing::info_span!("job", queue = queue.name, job = %job.id, tenant = %job.tenant_id, attempt = job.attempt);
    let beat = tokio::spawn(keep_alive(pool.clone(), job.clone(), queue.lease));
    let result = (queue.run)(ctx.clone(), job.clone())
        .instrument(span.clone())
        .await;
    beat.abort();
    let outcome = match &result {
        Ok(()) => Outcome::Succeeded,
        Err(JobError::Retry(reason)) if job.attempt < job.max_attempts => {
            tracing::warn!(parent: &span, %reason, "job attempt failed; retrying");
            Outcome::Retrying(queue.retry_delay(job.attempt))
        }
        Err(JobError::Retry(reason) | JobError::Fail(reason)) => {
            tracing::error!(parent: &span, %reason, "job failed for good");
            Outcome::Failed(reason.clone())
        }
    };
    let reason = match &result {
        Err(JobError::Retry(reason) | JobError::Fail(reason)) => reason.as_str(),
        Ok(()) => "",
    };
    match record(pool, &job, &outcome, reason).await {
        Ok(true) => {
            if let Outcome::Failed(reason) = &outcome {
                (queue.gave_up)(ctx.clone(), job.clone(), reason.clone()).await;
            }
            outcome
        }
        Ok(false) => {
            tracing::warn!(parent: &span, "job was taken over by another worker meanwhile");
            Outcome::Superseded
        }
        Err(error) => {
            // The lease lapses and another attempt takes over: nothing is lost.
            tracing::error!(parent: &span, %error, "cannot record the job's end");
            Outcome::Superseded
        }
    }
}

async fn record(pool: &Pool, job: &Job, outcome: &Outcome, reason: &str) -> Result<bool, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let recorded = match outcome {
        Outcome::Succeeded => complete(&mut conn, job).await,
        Outcome::Retrying(delay) => retry_later(&mut conn, job, reason, *delay).await,
        Outcome::Failed(reason) => fail(&mut conn, job, reason).await,
        Outcome::Superseded => Ok(false),
    };
    recorded.map_err(|e| e.to_string())
}

/// Renews the lease every third of it until aborted; a failed renewal is retried at the
/// next beat (the lease has two more thirds to run).
async fn keep_alive(pool: Pool, job: Job, lease: Duration) {
    let mut ticker = tokio::time::interval(lease / 3);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let renewed = match pool.get().await {
            Ok(mut conn) => heartbeat(&mut conn, &job, lease, None)
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job = %job.id, "lease lost to another worker");
                return;
            }
            Err(error) => tracing::warn!(job = %job.id, %error, "heartbeat failed"),
        }
    }
}
