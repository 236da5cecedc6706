//! Queries on `import_jobs`, `import_rows` and `import_rejections`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{import_jobs, import_rejections, import_rows};

/// An import job.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = import_jobs)]
pub struct JobRow {
    /// Tenant.
    pub tenant_id: String,
    /// Id.
    pub id: Uuid,
    /// customers | orders.
    pub kind: String,
    /// receiving | queued | processing | completed | failed.
    pub status: String,
    /// Normalised header.
    pub header: Vec<String>,
    /// Data rows received.
    pub total_rows: i64,
    /// Rows processed (succeeded + rejected).
    pub processed_rows: i64,
    /// Rows that became customers or order lines.
    pub succeeded_rows: i64,
    /// Rows rejected (see the report).
    pub rejected_rows: i64,
    /// Why the job failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Finished.
    pub completed_at: Option<DateTime<Utc>>,
    /// Last staged row number the worker has committed.
    pub processed_through: i64,
}

/// A staged row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = import_rows)]
pub struct StagedRow {
    /// Tenant.
    pub tenant_id: String,
    /// Job.
    pub job_id: Uuid,
    /// 1-based data row number (the header is row 0).
    pub row_number: i64,
    /// Raw fields.
    pub fields: Vec<String>,
}

/// A rejected row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = import_rejections)]
pub struct Rejection {
    /// Tenant.
    pub tenant_id: String,
    /// Job.
    pub job_id: Uuid,
    /// Data row number.
    pub row_number: i64,
    /// Why.
    pub reason: String,
    /// Raw fields.
    pub fields: Vec<String>,
}

/// Creates a job in `receiving`.
pub async fn create(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
    kind: &str,
    header: &[String],
) -> QueryResult<()> {
    diesel::insert_into(import_jobs::table)
        .values((
            import_jobs::tenant_id.eq(tenant),
            import_jobs::id.eq(id),
            import_jobs::kind.eq(kind),
            import_jobs::status.eq("receiving"),
            import_jobs::header.eq(header),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Stages rows and upload-time rejections, and counts them into `total_rows`.
pub async fn stage(
    conn: &mut AsyncPgConnection,
    rows: &[StagedRow],
    rejections: &[Rejection],
    received: i64,
) -> QueryResult<()> {
    // Four bind parameters per row, well under Postgres' 65535 per statement.
    if !rows.is_empty() {
        diesel::insert_into(import_rows::table)
            .values(rows)
            .execute(conn)
            .await?;
    }
    insert_rejections(conn, rejections).await?;
    if let Some((tenant, job)) = rows
        .first()
        .map(|r| (&r.tenant_id, r.job_id))
        .or(rejections.first().map(|r| (&r.tenant_id, r.job_id)))
    {
        let rejected = rejections.len() as i64;
        diesel::update(
            import_jobs::table
                .filter(import_jobs::tenant_id.eq(tenant))
                .filter(import_jobs::id.eq(job)),
        )
        .set((
            import_jobs::total_rows.eq(import_jobs::total_rows + received),
            import_jobs::processed_rows.eq(import_jobs::processed_rows + rejected),
            import_jobs::rejected_rows.eq(import_jobs::rejected_rows + rejected),
            import_jobs::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// Records rejections.
pub async fn insert_rejections(
    conn: &mut AsyncPgConnection,
    rejections: &[Rejection],
) -> QueryResult<()> {
    if !rejections.is_empty() {
        diesel::insert_into(import_rejections::table)
            .values(rejections)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Sets a job's status (and `completed_at` for final ones).
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
    status: &str,
    error: Option<&str>,
) -> QueryResult<()> {
    let done = matches!(status, "completed" | "failed");
    diesel::update(
        import_jobs::table
            .filter(import_jobs::tenant_id.eq(tenant))
            .filter(import_jobs::id.eq(id)),
    )
    .set((
        import_jobs::status.eq(status),
        import_jobs::error.eq(error),
        import_jobs::updated_at.eq(Utc::now()),
        import_jobs::completed_at.eq(done.then(Utc::now)),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// One job of the tenant.
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
) -> QueryResult<Option<JobRow>> {
    import_jobs::table
        .filter(import_jobs::tenant_id.eq(tenant))
        .filter(import_jobs::id.eq(id))
        .select(JobRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The staged rows of a job after `after_row`, in row order.
pub async fn next_rows(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    job: Uuid,
    after_row: i64,
    limit: i64,
) -> QueryResult<Vec<StagedRow>> {
    import_rows::table
        .filter(import_rows::tenant_id.eq(tenant))
        .filter(import_rows::job_id.eq(job))
        .filter(import_rows::row_number.gt(after_row))
        .order(import_rows::row_number.asc())
        .limit(limit)
        .select(StagedRow::as_select())
        .load(conn)
        .await
}

/// Advances the cursor from `from_row` to `through_row` and the counters. Fenced on the
/// cursor: when another attempt committed this chunk first (this worker's lease lapsed
/// and the job was taken over), nothing changes and the transaction must roll back.
#[allow(clippy::too_many_arguments)]
pub async fn finish_chunk(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    job: Uuid,
    from_row: i64,
    through_row: i64,
    succeeded: i64,
    rejected: i64,
) -> QueryResult<()> {
    let advanced = diesel::update(
        import_jobs::table
            .filter(import_jobs::tenant_id.eq(tenant))
            .filter(import_jobs::id.eq(job))
            .filter(import_jobs::processed_through.eq(from_row)),
    )
    .set((
        import_jobs::processed_through.eq(through_row),
        import_jobs::processed_rows.eq(import_jobs::processed_rows + succeeded + rejected),
        import_jobs::succeeded_rows.eq(import_jobs::succeeded_rows + succeeded),
        import_jobs::rejected_rows.eq(import_jobs::rejected_rows + rejected),
        import_jobs::updated_at.eq(Utc::now()),
    ))
    .execute(conn)
    .await?;
    if advanced == 0 {
        return Err(diesel::result::Error::RollbackTransaction);
    }
    Ok(())
}

/// Drops a finished job's staged rows.
pub async fn drop_staged(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    job: Uuid,
) -> QueryResult<usize> {
    diesel::delete(
        import_rows::table
            .filter(import_rows::tenant_id.eq(tenant))
            .filter(import_rows::job_id.eq(job)),
    )
    .execute(conn)
    .await
}

/// A page of rejections after `after_row`, in row order.
pub async fn rejections_after(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    job: Uuid,
    after_row: i64,
    limit: i64,
) -> QueryResult<Vec<Rejection>> {
    import_rejections::table
        .filter(import_rejections::tenant_id.eq(tenant))
        .filter(import_rejections::job_id.eq(job))
        .filter(import_rejections::row_number.gt(after_row))
        .order(import_rejections::row_number.asc())
        .limit(limit)
        .select(Rejection::as_select())
        .load(conn)
        .await
}
