//! CSV import use cases: receiving an upload as a stream, and the worker that turns
//! staged rows into customers and orders.
//!
//! Memory stays flat whatever the file size: the upload is parsed record by record and
//! staged in Postgres in chunks; the worker reads chunks back. Every chunk is one
//! transaction (rows written, events enqueued, cursor and counters advanced),
//! so a crash of the service resumes at the first unfinished chunk; imports run on the
//! shared job runner (mkt-jobs, queue [`QUEUE`]), which retries them and hands a dead
//! worker's import to another worker.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::{Stream, StreamExt};
use mkt_auth::TenantId;
use mkt_jobs::{Job, JobError};
use mkt_runtime::Infra;
use uuid::Uuid;

use crate::domain::import::{self, ImportKind, MAX_FIELD_BYTES};
use crate::error::ApiError;
use crate::events::publish;
use crate::store::customers;
use crate::store::imports::{self, JobRow, Rejection, StagedRow};

/// Rows staged per statement during an upload, and processed per worker transaction.
pub const CHUNK: usize = 1_000;
/// Most data rows one file may have.
pub const MAX_ROWS: i64 = 10_000_000;
/// The job queue (mkt-jobs) imports run on.
pub const QUEUE: &str = "ingestion.imports";
/// Starts an import gets before it fails for good (crashes mid-file count as starts).
const MAX_ATTEMPTS: i32 = 10;

/// Receives a CSV upload: validates the header, stages rows as they arrive, queues
/// the job. Malformed rows are rejected into the report rather than failing the upload.
pub async fn receive<S>(
    infra: &Infra,
    tenant: &TenantId,
    kind: ImportKind,
    body: S,
) -> Result<JobRow, ApiError>
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send,
{
    let reader = tokio_util::io::StreamReader::new(body);
    let mut csv = csv_async::AsyncReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .create_reader(reader);
    let mut records = csv.byte_records();
    let header = match records.next().await {
        None => return Err(ApiError::InvalidCsv("the file is empty".into())),
        Some(Err(e)) => return Err(ApiError::InvalidCsv(e.to_string())),
        Some(Ok(record)) => record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect::<Vec<_>>(),
    };
    let header = import::validate_header(kind, &header).map_err(ApiError::InvalidCsvHeader)?;
    let id = Uuid::now_v7();
    let tenant_id = tenant.as_str().to_owned();
    let mut conn = infra.pool.get().await?;
    imports::create(&mut conn, &tenant_id, id, kind.as_str(), &header).await?;

    let mut row_number = 0i64;
    let mut staged = Vec::with_capacity(CHUNK);
    let mut rejected = Vec::new();
    let mut failure = None;
    while let Some(record) = records.next().await {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                failure = Some(ApiError::InvalidCsv(format!(
                    "the upload broke after row {row_number}: {e}"
                )));
                break;
            }
        };
        row_number += 1;
        if row_number > MAX_ROWS {
            failure = Some(ApiError::InvalidCsv(format!(
                "a file may have at most {MAX_ROWS} rows"
            )));
            break;
        }
        let fields: Vec<String> = record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let too_long = record.as_slice().len() > mkt_csv::MAX_RECORD_BYTES
            || fields.iter().any(|f| f.len() > MAX_FIELD_BYTES);
        let problem = if record.as_slice().len() > mkt_csv::MAX_RECORD_BYTES {
            Some(format!(
                "the row is longer than {} bytes",
                mkt_csv::MAX_RECORD_BYTES
            ))
        } else if record.iter().any(|f| std::str::from_utf8(f).is_err()) {
            Some("the row is not valid UTF-8".to_owned())
        } else if fields.len() != header.len() {
            Some(format!(
                "expected {} fields, found {}",
                header.len(),
                fields.len()
            ))
        } else if fields.iter().any(|f| f.len() > MAX_FIELD_BYTES) {
            Some(format!("a field is longer than {MAX_FIELD_BYTES} bytes"))
        } else {
            None
        };
        match problem {
            Some(reason) => rejected.push(Rejection {
                tenant_id: tenant_id.clone(),
                job_id: id,
                row_number,
                reason,
                // An over-long row is reported, not stored (and echoed back) whole.
                fields: if too_long {
                    fields
                        .iter()
                        .map(|f| mkt_csv::truncate(f, mkt_csv::KEPT_FIELD_BYTES))
                        .collect()
                } else {
                    fields
                },
            }),
            None => staged.push(StagedRow {
                tenant_id: tenant_id.clone(),
                job_id: id,
                row_number,
                fields,
            }),
        }
        if staged.len() + rejected.len() >= CHUNK {
            flush(&mut conn, &mut staged, &mut rejected).await?;
        }
    }
    flush(&mut conn, &mut staged, &mut rejected).await?;
    if let Some(error) = failure {
        imports::set_status(
            &mut conn,
            &tenant_id,
            id,
            "failed",
            Some(&error.to_string()),
        )
        .await?;
        return Err(error);
    }
    conn.transaction(async |conn| {
        imports::set_status(conn, &tenant_id, id, "queued", None).await?;
        mkt_jobs::enqueue(
            conn,
            &mkt_jobs::NewJob {
                id,
                queue: QUEUE,
                tenant_id: &tenant_id,
                max_attempts: MAX_ATTEMPTS,
            },
        )
        .await
    })
    .await?;
    imports::find(&mut conn, &tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::ImportNotFound(id.to_string()))
}

async fn flush(
    conn: &mut AsyncPgConnection,
    staged: &mut Vec<StagedRow>,
    rejected: &mut Vec<Rejection>,
) -> Result<(), ApiError> {
    if staged.is_empty() && rejected.is_empty() {
        return Ok(());
    }
    let received = (staged.len() + rejected.len()) as i64;
    conn.transaction(async |conn| imports::stage(conn, staged, rejected, received).await)
        .await?;
    staged.clear();
    rejected.clear();
    Ok(())
}

/// One job of the tenant.
pub async fn find(infra: &Infra, tenant: &TenantId, id: Uuid) -> Result<JobRow, ApiError> {
    let mut conn = infra.pool.get().await?;
    imports::find(&mut conn, tenant.as_str(), id)
        .await?
        .ok_or_else(|| ApiError::ImportNotFound(id.to_string()))
}

/// A page of the rejection report.
pub async fn rejections(
    infra: &Infra,
    tenant: &TenantId,
    id: Uuid,
    after_row: i64,
    limit: i64,
) -> Result<Vec<Rejection>, ApiError> {
    let mut conn = infra.pool.get().await?;
    Ok(imports::rejections_after(&mut conn, tenant.as_str(), id, after_row, limit).await?)
}

/// The background worker: runs queued imports (mkt-jobs), chunk by chunk.
pub fn worker() -> mkt_runtime::Worker {
    Box::new(|infra| Box::pin(mkt_jobs::work(infra.pool.clone(), infra, queue())))
}

/// The imports queue: its handler, and the import marked failed when it runs out of
/// attempts.
pub fn queue() -> mkt_jobs::Queue<Infra> {
    mkt_jobs::Queue::new(
        QUEUE,
        Arc::new(|infra: Infra, job: Job| Box::pin(async move { run_import(&infra, &job).await })),
    )
    .on_gave_up(Arc::new(|infra: Infra, job: Job, reason: String| {
        Box::pin(async move {
            let failed = async {
                let mut conn = infra.pool.get().await?;
                imports::set_status(&mut conn, &job.tenant_id, job.id, "failed", Some(&reason))
                    .await?;
                Ok::<_, ApiError>(())
            };
            if let Err(error) = failed.await {
                tracing::error!(job = %job.id, %error, "cannot mark the import failed");
            }
        })
    }))
}

/// Processes one import to its end, resuming after the last committed chunk when an
/// earlier attempt died.
async fn run_import(infra: &Infra, claimed: &Job) -> Result<(), JobError> {
    let mut conn = infra.pool.get().await?;
    let Some(job) = imports::find(&mut conn, &claimed.tenant_id, claimed.id).await? else {
        return Err(JobError::Fail(format!(
            "import {} does not exist",
            claimed.id
        )));
    };
    if job.status == "completed" {
        return Ok(());
    }
    let kind = ImportKind::parse(&job.kind)
        .ok_or_else(|| JobError::Fail(format!("unknown import kind {}", job.kind)))?;
    imports::set_status(&mut conn, &job.tenant_id, job.id, "processing", None).await?;
    tracing::info!(job = %job.id, kind = %job.kind, total = job.total_rows, attempt = claimed.attempt, "import job started");
    let mut cursor = job.processed_through;
    loop {
        let next = conn
            .transaction(async |conn| match kind {
                ImportKind::Customers => customers_chunk(conn, &job, cursor).await,
                ImportKind::Orders => orders_chunk(conn, &job, cursor).await,
            })
            .await
            .map_err(|error| JobError::Retry(error.to_string()))?;
        infra.events_committed();
        match next {
            Some(through) => cursor = through,
            None => break,
        }
    }
    conn.transaction(async |conn| {
        imports::drop_staged(conn, &job.tenant_id, job.id).await?;
        imports::set_status(conn, &job.tenant_id, job.id, "completed", None).await
    })
    .await?;
    tracing::info!(job = %job.id, "import job completed");
    Ok(())
}

fn rejection(job: &JobRow, row: &StagedRow, reason: String) -> Rejection {
    Rejection {
        tenant_id: job.tenant_id.clone(),
        job_id: job.id,
        row_number: row.row_number,
        reason,
        fields: row.fields.clone(),
    }
}

/// Processes up to [`CHUNK`] customer rows after `cursor`; returns the new cursor, or
/// `None` when none were left.
async fn customers_chunk(
    conn: &mut AsyncPgConnection,
    job: &JobRow,
    cursor: i64,
) -> Result<Option<i64>, ApiError> {
    let rows = imports::next_rows(conn, &job.tenant_id, job.id, cursor, CHUNK as i64).await?;
    let Some(last) = rows.last() else {
        return Ok(None);
    };
    let through_row = last.row_number;
    let mut rejections = Vec::new();
    let mut valid = Vec::new();
    for row in &rows {
        match import::customer_row(&job.header, &row.fields) {
            Ok(customer) => valid.push((row, customer)),
            Err(reason) => rejections.push(rejection(job, row, reason)),
        }
    }
    // The last row of an email wins; earlier ones are superseded (and succeed).
    let mut last_of: HashMap<String, usize> = HashMap::new();
    for (index, (_, customer)) in valid.iter().enumerate() {
        last_of.insert(customer.email.as_str().to_owned(), index);
    }
    let unique: Vec<_> = valid
        .iter()
        .enumerate()
        .filter(|(i, (_, c))| last_of.get(c.email.as_str()) == Some(i))
        .map(|(_, v)| v)
        .collect();
    let batch: Vec<_> = unique.iter().map(|(_, c)| c.clone()).collect();
    let together = conn
        .transaction(async |conn| {
            let rows = customers::upsert_many(conn, &job.tenant_id, &batch).await?;
            publish::customers_upserted(conn, &rows).await?;
            Ok::<_, ApiError>(())
        })
        .await;
    if together.is_err() {
        // One row conflicts (an external_id owned by another customer): go row by row
        // so only that row is rejected.
        for (row, customer) in &unique {
            let one = conn
                .transaction(async |conn| {
                    let stored = customers::upsert(conn, &job.tenant_id, customer).await?;
                    publish::customer_upserted(conn, &stored).await?;
                    Ok::<_, ApiError>(())
                })
                .await;
            if let Err(error) = one {
                rejections.push(rejection(job, row, error.info().message));
            }
        }
    }
    let rejected = rejections.len() as i64;
    imports::insert_rejections(conn, &rejections).await?;
    imports::finish_chunk(
        conn,
        &job.tenant_id,
        job.id,
        cursor,
        through_row,
        rows.len() as i64 - rejected,
        rejected,
    )
    .await?;
    Ok(Some(through_row))
}

/// Processes the orders of up to [`CHUNK`] rows after `cursor` (whole orders only);
/// returns the new cursor, or `None` when none were left.
async fn orders_chunk(
    conn: &mut AsyncPgConnection,
    job: &JobRow,
    cursor: i64,
) -> Result<Option<i64>, ApiError> {
    let mut rows = imports::next_rows(conn, &job.tenant_id, job.id, cursor, CHUNK as i64).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    // Keep whole orders: when the chunk is full, its last order may continue in the
    // next rows, so it waits for the next chunk (unless it is the only one).
    if rows.len() == CHUNK {
        let last_key = rows
            .last()
            .map(|r| import::order_key(&job.header, &r.fields))
            .unwrap_or_default();
        let keep = rows
            .iter()
            .rposition(|r| import::order_key(&job.header, &r.fields) != last_key)
            .map_or(rows.len(), |i| i + 1);
        rows.truncate(keep);
    }
    let through_row = rows.last().map_or(0, |r| r.row_number);
    let mut groups: Vec<Vec<&StagedRow>> = Vec::new();
    for row in &rows {
        let key = import::order_key(&job.header, &row.fields);
        match groups.last_mut() {
            Some(group)
                if !key.is_empty()
                    && group
                        .first()
                        .is_some_and(|g| import::order_key(&job.header, &g.fields) == key) =>
            {
                group.push(row)
            }
            _ => groups.push(vec![row]),
        }
    }
    let mut rejections = Vec::new();
    for group in groups {
        let fields: Vec<&[String]> = group.iter().map(|r| r.fields.as_slice()).collect();
        let outcome = match import::order_rows(&job.header, &fields) {
            Err(reason) => Err(reason),
            Ok(order) => conn
                .transaction(async |conn| {
                    super::orders::place_in(conn, &job.tenant_id, &order).await
                })
                .await
                .map(|_| ())
                .map_err(|error| error.info().message),
        };
        if let Err(reason) = outcome {
            rejections.extend(group.iter().map(|row| rejection(job, row, reason.clone())));
        }
    }
    let rejected = rejections.len() as i64;
    imports::insert_rejections(conn, &rejections).await?;
    imports::finish_chunk(
        conn,
        &job.tenant_id,
        job.id,
        cursor,
        through_row,
        rows.len() as i64 - rejected,
        rejected,
    )
    .await?;
    Ok(Some(through_row))
}
