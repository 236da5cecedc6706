//! The job runner against a real PostgreSQL: jobs commit with their transaction, run once,
//! retry with backoff, fail for good with the domain told, keep their lease while they run,
//! and are taken over (fenced) when their worker dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use diesel_async::AsyncConnection;
use mkt_db::{DbConfig, Migrations, Pool};
use mkt_jobs::{Job, JobError, NewJob, Outcome, Queue};
use mkt_test_support as support;
use uuid::Uuid;

const SCHEMA: &str = "jobs_test";
const QUEUE: &str = "test.things";

async fn database() -> (String, Pool) {
    let url = support::empty_database().await;
    let config = DbConfig::new(&url, SCHEMA);
    mkt_db::run_migrations(&config.url, SCHEMA, Migrations(vec![&mkt_jobs::MIGRATIONS]))
        .await
        .expect("migrate");
    let pool = mkt_db::connect(&config, SCHEMA).expect("pool");
    (url, pool)
}

async fn pool() -> Pool {
    database().await.1
}

#[tokio::test]
async fn schema_rs_matches_the_jobs_migration() {
    let (url, _pool) = database().await;
    support::assert_schema_rs_matches(&url, SCHEMA, include_str!("../src/schema.rs"), &[]).await;
}

async fn enqueue(pool: &Pool, max_attempts: i32) -> Uuid {
    let id = Uuid::now_v7();
    let mut conn = pool.get().await.expect("conn");
    conn.transaction(async |conn| {
        mkt_jobs::enqueue(
            conn,
            &NewJob {
                id,
                queue: QUEUE,
                tenant_id: "t1",
                max_attempts,
            },
        )
        .await
    })
    .await
    .expect("enqueue");
    id
}

async fn state(pool: &Pool, id: Uuid) -> mkt_jobs::JobRow {
    let mut conn = pool.get().await.expect("conn");
    mkt_jobs::find(&mut conn, id)
        .await
        .expect("find")
        .expect("job exists")
}

async fn claim(pool: &Pool, lease: Duration) -> Option<Job> {
    let mut conn = pool.get().await.expect("conn");
    mkt_jobs::claim(&mut conn, QUEUE, lease)
        .await
        .expect("claim")
}

/// A queue whose handler fails (retryably) until attempt `succeed_on`, counting runs.
fn queue(runs: Arc<AtomicI32>, succeed_on: i32) -> Queue<()> {
    let mut queue = Queue::new(
        QUEUE,
        Arc::new(move |(), job: Job| {
            let runs = runs.clone();
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                if job.attempt >= succeed_on {
                    Ok(())
                } else {
                    Err(JobError::Retry(format!("attempt {} broke", job.attempt)))
                }
            })
        }),
    );
    queue.backoff = Duration::from_millis(200);
    queue
}

#[tokio::test]
async fn a_job_rolled_back_with_its_transaction_never_runs() {
    let pool = pool().await;
    let mut conn = pool.get().await.expect("conn");
    let id = Uuid::now_v7();
    let rolled_back: Result<(), diesel::result::Error> = conn
        .transaction(async |conn| {
            mkt_jobs::enqueue(
                conn,
                &NewJob {
                    id,
                    queue: QUEUE,
                    tenant_id: "t1",
                    max_attempts: 3,
                },
            )
            .await?;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(rolled_back.is_err());
    assert_eq!(claim(&pool, Duration::from_secs(5)).await, None);
}

#[tokio::test]
async fn a_failing_job_is_retried_after_its_backoff_then_succeeds_once() {
    let pool = pool().await;
    let runs = Arc::new(AtomicI32::new(0));
    let queue = queue(runs.clone(), 2);
    let id = enqueue(&pool, 5).await;

    let first = claim(&pool, queue.lease).await.expect("runnable");
    assert_eq!((first.id, first.attempt), (id, 1));
    assert_eq!(
        mkt_jobs::execute(&pool, &(), &queue, first).await,
        Outcome::Retrying(Duration::from_millis(200))
    );
    let waiting = state(&pool, id).await;
    assert_eq!(waiting.state, "queued");
    assert_eq!(waiting.last_error.as_deref(), Some("attempt 1 broke"));
    // Not before its backoff has passed.
    assert_eq!(claim(&pool, queue.lease).await, None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = claim(&pool, queue.lease).await.expect("runnable again");
    assert_eq!(second.attempt, 2);
    assert_eq!(
        mkt_jobs::execute(&pool, &(), &queue, second).await,
        Outcome::Succeeded
    );
    let done = state(&pool, id).await;
    assert_eq!((done.state.as_str(), done.attempts), ("succeeded", 2));
    assert_eq!(done.progress, 1.0);
    assert!(done.finished_at.is_some());
    assert_eq!(
        claim(&pool, queue.lease).await,
        None,
        "a finished job never runs again"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_job_out_of_attempts_fails_for_good_and_the_domain_is_told() {
    let pool = pool().await;
    let told = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = told.clone();
    let mut queue = queue(Arc::new(AtomicI32::new(0)), i32::MAX).on_gave_up(Arc::new(
        move |(), job: Job, reason: String| {
            let sink = sink.clone();
            Box::pin(async move {
                if let Ok(mut told) = sink.lock() {
                    told.push(format!("{}: {reason}", job.attempt));
                }
            })
        },
    ));
    queue.backoff = Duration::ZERO;
    let id = enqueue(&pool, 2).await;
    for _ in 0..2 {
        let job = claim(&pool, queue.lease).await.expect("runnable");
        mkt_jobs::execute(&pool, &(), &queue, job).await;
    }
    let failed = state(&pool, id).await;
    assert_eq!((failed.state.as_str(), failed.attempts), ("failed", 2));
    assert_eq!(failed.last_error.as_deref(), Some("attempt 2 broke"));
    assert_eq!(
        told.lock().map(|t| t.clone()).unwrap_or_default(),
        vec!["2: attempt 2 broke".to_owned()]
    );
    assert_eq!(claim(&pool, queue.lease).await, None);
}

#[tokio::test]
async fn a_dead_workers_job_is_taken_over_and_the_old_attempt_is_fenced() {
    let pool = pool().await;
    let id = enqueue(&pool, 5).await;
    let lease = Duration::from_millis(300);
    // A worker claims the job and dies: no heartbeat, no end.
    let dead = claim(&pool, lease).await.expect("runnable");
    assert_eq!(claim(&pool, lease).await, None, "held while the lease runs");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taker = claim(&pool, lease)
        .await
        .expect("taken over after the lease");
    assert_eq!((taker.id, taker.attempt), (id, 2));

    let mut conn = pool.get().await.expect("conn");
    assert!(
        !mkt_jobs::heartbeat(&mut conn, &dead, lease, None)
            .await
            .expect("beat")
    );
    assert!(
        !mkt_jobs::complete(&mut conn, &dead)
            .await
            .expect("complete")
    );
    assert_eq!(
        state(&pool, id).await.state,
        "running",
        "the old attempt changed nothing"
    );
    assert!(
        mkt_jobs::heartbeat(&mut conn, &taker, lease, Some(0.5))
            .await
            .expect("beat")
    );
    assert!(
        mkt_jobs::complete(&mut conn, &taker)
            .await
            .expect("complete")
    );
    assert_eq!(state(&pool, id).await.state, "succeeded");
}

#[tokio::test]
async fn a_running_job_keeps_its_lease_while_its_handler_works() {
    let pool = pool().await;
    let mut queue = Queue::new(
        QUEUE,
        Arc::new(|(), _job: Job| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(3_000)).await;
                Ok(())
            })
        }),
    );
    // Short enough that the test outlives it three times, long enough that a heartbeat
    // delayed by a busy machine still lands in time.
    queue.lease = Duration::from_millis(900);
    let id = enqueue(&pool, 5).await;
    let job = claim(&pool, queue.lease).await.expect("runnable");
    let worker = {
        let pool = pool.clone();
        let queue = queue.clone();
        tokio::spawn(async move { mkt_jobs::execute(&pool, &(), &queue, job).await })
    };
    // Three leases' worth of time: without the heartbeat another worker would take it.
    for _ in 0..27 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(claim(&pool, queue.lease).await, None, "still leased");
    }
    assert_eq!(worker.await.expect("join"), Outcome::Succeeded);
    let done = state(&pool, id).await;
    assert_eq!((done.state.as_str(), done.attempts), ("succeeded", 1));

    let mut conn = pool.get().await.expect("conn");
    let depth = mkt_jobs::depth(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("depth: {e}"));
    assert!(depth.is_empty(), "{depth:?}");
}
