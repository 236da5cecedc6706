//! Queries on `tenant_integrations` and `integration_sync_runs` (a leased job queue: an
//! accepted sync survives a restart, an expired lease is taken over). Every query names
//! the tenant, except the worker's claim. Which store orders a sync already wrote is
//! not kept here: `orders.external_id` says it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{integration_sync_runs, tenant_integrations};

/// A stored integration. The credentials are only ever the sealed triple.
#[derive(Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tenant_integrations, primary_key(tenant_id, id), treat_none_as_null = true)]
pub struct IntegrationRow {
    /// Tenant.
    pub tenant_id: String,
    /// Id.
    pub id: Uuid,
    /// `vtex`.
    pub integration_type: String,
    /// Store account.
    pub account_name: String,
    /// VTEX environment.
    pub environment: String,
    /// Whether syncs may run.
    pub is_active: bool,
    /// Key that sealed the credentials.
    pub credentials_key_id: String,
    /// GCM nonce.
    pub credentials_nonce: Vec<u8>,
    /// Ciphertext and tag.
    pub credentials_ciphertext: Vec<u8>,
    /// Last four characters of the app key (or empty).
    pub app_key_last4: String,
    /// Last successful sync.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for IntegrationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationRow")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("account_name", &self.account_name)
            .finish_non_exhaustive()
    }
}

/// Adds an integration.
pub async fn insert(conn: &mut AsyncPgConnection, row: &IntegrationRow) -> QueryResult<()> {
    diesel::insert_into(tenant_integrations::table)
        .values(row)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The tenant's integrations, oldest first.
pub async fn list(conn: &mut AsyncPgConnection, tenant: &str) -> QueryResult<Vec<IntegrationRow>> {
    tenant_integrations::table
        .filter(tenant_integrations::tenant_id.eq(tenant))
        .order((tenant_integrations::created_at, tenant_integrations::id))
        .select(IntegrationRow::as_select())
        .load(conn)
        .await
}

/// One integration of the tenant; `lock` takes a row lock for a read-modify-write.
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
    lock: bool,
) -> QueryResult<Option<IntegrationRow>> {
    let query = tenant_integrations::table
        .filter(tenant_integrations::tenant_id.eq(tenant))
        .filter(tenant_integrations::id.eq(id))
        .select(IntegrationRow::as_select());
    if lock {
        query.for_update().first(conn).await.optional()
    } else {
        query.first(conn).await.optional()
    }
}

/// Writes every column of `row` (found by tenant and id).
pub async fn update(conn: &mut AsyncPgConnection, row: &IntegrationRow) -> QueryResult<usize> {
    diesel::update(
        tenant_integrations::table
            .filter(tenant_integrations::tenant_id.eq(&row.tenant_id))
            .filter(tenant_integrations::id.eq(row.id)),
    )
    .set(row)
    .execute(conn)
    .await
}

/// Deletes an integration (its runs go with it); returns rows deleted.
pub async fn delete(conn: &mut AsyncPgConnection, tenant: &str, id: Uuid) -> QueryResult<usize> {
    diesel::delete(
        tenant_integrations::table
            .filter(tenant_integrations::tenant_id.eq(tenant))
            .filter(tenant_integrations::id.eq(id)),
    )
    .execute(conn)
    .await
}

/// Records a successful sync.
pub async fn mark_synced(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(
        tenant_integrations::table
            .filter(tenant_integrations::tenant_id.eq(tenant))
            .filter(tenant_integrations::id.eq(id)),
    )
    .set(tenant_integrations::last_sync_at.eq(at))
    .execute(conn)
    .await
}

/// Re-seals credentials under the current key (key rotation) without touching
/// anything else.
pub async fn reseal(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
    key_id: &str,
    nonce: &[u8],
    ciphertext: &[u8],
) -> QueryResult<usize> {
    diesel::update(
        tenant_integrations::table
            .filter(tenant_integrations::tenant_id.eq(tenant))
            .filter(tenant_integrations::id.eq(id)),
    )
    .set((
        tenant_integrations::credentials_key_id.eq(key_id),
        tenant_integrations::credentials_nonce.eq(nonce),
        tenant_integrations::credentials_ciphertext.eq(ciphertext),
    ))
    .execute(conn)
    .await
}

/// A sync run.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, Insertable)]
#[diesel(table_name = integration_sync_runs)]
pub struct SyncRunRow {
    /// Tenant.
    pub tenant_id: String,
    /// Id.
    pub id: Uuid,
    /// The integration it syncs.
    pub integration_id: Uuid,
    /// queued | running | succeeded | failed.
    pub status: String,
    /// customers | orders | done.
    pub phase: String,
    /// Orders created from.
    pub orders_since: DateTime<Utc>,
    /// Orders created until.
    pub orders_until: DateTime<Utc>,
    /// Orders created before this are done.
    pub orders_cursor: Option<DateTime<Utc>>,
    /// Counters per kind.
    pub counts: serde_json::Value,
    /// The first failed items.
    pub item_errors: serde_json::Value,
    /// Why the run (or its last attempt) failed.
    pub error: Option<String>,
    /// Starts so far.
    pub attempts: i32,
    /// The running worker's lease.
    pub lease_until: Option<DateTime<Utc>>,
    /// Requested.
    pub requested_at: DateTime<Utc>,
    /// First started.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Queues a run; `false` when the integration already has one queued or running.
pub async fn enqueue(conn: &mut AsyncPgConnection, run: &SyncRunRow) -> QueryResult<bool> {
    diesel::insert_into(integration_sync_runs::table)
        .values(run)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(|n| n == 1)
}

/// The integration's queued or running run, if any.
pub async fn active_run(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    integration: Uuid,
) -> QueryResult<Option<SyncRunRow>> {
    integration_sync_runs::table
        .filter(integration_sync_runs::tenant_id.eq(tenant))
        .filter(integration_sync_runs::integration_id.eq(integration))
        .filter(integration_sync_runs::status.eq_any(["queued", "running"]))
        .select(SyncRunRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The integration's runs, newest first.
pub async fn runs(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    integration: Uuid,
    run: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<SyncRunRow>> {
    let mut query = integration_sync_runs::table
        .filter(integration_sync_runs::tenant_id.eq(tenant))
        .filter(integration_sync_runs::integration_id.eq(integration))
        .into_boxed();
    if let Some(run) = run {
        query = query.filter(integration_sync_runs::id.eq(run));
    }
    query
        .order((
            integration_sync_runs::requested_at.desc(),
            integration_sync_runs::id.desc(),
        ))
        .limit(limit)
        .select(SyncRunRow::as_select())
        .load(conn)
        .await
}

/// Takes the oldest queued run, or a running one whose lease expired (its worker died
/// or backed off after a transient failure), and leases it.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    lease_seconds: i64,
) -> QueryResult<Option<SyncRunRow>> {
    diesel::sql_query(
        "UPDATE integration_sync_runs SET status = 'running', attempts = attempts + 1, \
             started_at = COALESCE(started_at, now()), \
             lease_until = now() + make_interval(secs => $1) \
         WHERE (tenant_id, id) = (SELECT tenant_id, id FROM integration_sync_runs \
             WHERE status = 'queued' OR (status = 'running' AND lease_until < now()) \
             ORDER BY requested_at FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING *",
    )
    .bind::<diesel::sql_types::Double, _>(lease_seconds as f64)
    .get_result(conn)
    .await
    .optional()
}

/// Progress of a run the caller holds (matched by its attempt number, so a worker whose
/// lease was taken over cannot write); `false` when the lease is lost.
pub struct Progress<'a> {
    /// The run as claimed.
    pub run: &'a SyncRunRow,
    /// Current phase.
    pub phase: &'a str,
    /// Resume point for orders.
    pub orders_cursor: Option<DateTime<Utc>>,
    /// Counters.
    pub counts: &'a serde_json::Value,
    /// Failed items.
    pub item_errors: &'a serde_json::Value,
}

/// Saves progress and extends the lease by `lease_seconds`; `false` if lost.
pub async fn save_progress(
    conn: &mut AsyncPgConnection,
    progress: &Progress<'_>,
    lease_seconds: i64,
) -> QueryResult<bool> {
    let run = progress.run;
    diesel::update(
        integration_sync_runs::table
            .filter(integration_sync_runs::tenant_id.eq(&run.tenant_id))
            .filter(integration_sync_runs::id.eq(run.id))
            .filter(integration_sync_runs::status.eq("running"))
            .filter(integration_sync_runs::attempts.eq(run.attempts)),
    )
    .set((
        integration_sync_runs::phase.eq(progress.phase),
        integration_sync_runs::orders_cursor.eq(progress.orders_cursor),
        integration_sync_runs::counts.eq(progress.counts),
        integration_sync_runs::item_errors.eq(progress.item_errors),
        integration_sync_runs::lease_until
            .eq(Utc::now() + chrono::Duration::seconds(lease_seconds)),
    ))
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Ends a run the caller holds with `status` (succeeded | failed).
pub async fn finish(
    conn: &mut AsyncPgConnection,
    run: &SyncRunRow,
    status: &str,
    error: Option<&str>,
) -> QueryResult<bool> {
    diesel::update(
        integration_sync_runs::table
            .filter(integration_sync_runs::tenant_id.eq(&run.tenant_id))
            .filter(integration_sync_runs::id.eq(run.id))
            .filter(integration_sync_runs::attempts.eq(run.attempts)),
    )
    .set((
        integration_sync_runs::status.eq(status),
        integration_sync_runs::error.eq(error),
        integration_sync_runs::finished_at.eq(Utc::now()),
        integration_sync_runs::lease_until.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Records a transient failure and lets the lease lapse in `retry_in_seconds`, when
/// any worker may take the run over again.
pub async fn back_off(
    conn: &mut AsyncPgConnection,
    run: &SyncRunRow,
    error: &str,
    retry_in_seconds: i64,
) -> QueryResult<bool> {
    diesel::update(
        integration_sync_runs::table
            .filter(integration_sync_runs::tenant_id.eq(&run.tenant_id))
            .filter(integration_sync_runs::id.eq(run.id))
            .filter(integration_sync_runs::attempts.eq(run.attempts)),
    )
    .set((
        integration_sync_runs::error.eq(error),
        integration_sync_runs::lease_until
            .eq(Utc::now() + chrono::Duration::seconds(retry_in_seconds)),
    ))
    .execute(conn)
    .await
    .map(|n| n == 1)
}
