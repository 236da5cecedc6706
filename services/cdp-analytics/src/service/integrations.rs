//! Tenant integration use cases: CRUD with credentials sealed at rest, VTEX credential
//! validation, and the sync job that imports VTEX customers and orders through
//! ingestion's public API.
//!
//! A sync is a row in `integration_sync_runs`, worked by one worker per process
//! ([`run_worker`]) under a lease, so it survives a restart: a dead worker's lease
//! expires and another takes the run over; customers restart from the top (ingestion
//! replays what it already has), orders resume at the saved creation-date cursor.
//! Re-runs never duplicate: every write carries an `Idempotency-Key` derived from the
//! VTEX id (and, for customers, a fingerprint of what is sent), orders carry the VTEX
//! order id as `externalId`, and `integration_orders` remembers what was sent so an
//! unchanged order costs nothing and a changed status becomes one PATCH.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use chrono::{DateTime, Utc};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncConnection;
use mkt_auth::TenantId;
use mkt_error::{ErrorInfo, render};
use mkt_runtime::Infra;
use reqwest::Method;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::crypto::{Keyring, Sealed};
use crate::domain::integrations::{
    AccountName, Environment, FieldErrors, IntegrationPatch, NewIntegration, SyncRequest,
    ValidateRequest, VtexCredentials, credentials_aad,
};
use crate::domain::vtex::{
    Buyer, CustomerUpsert, MAX_ORDER_PAGES, OrderSummary, buyer_upsert, customer_upsert,
    fingerprint, order_body, order_status, parse_time,
};
use crate::service::ingestion_api::{Answer, IngestionApi, IngestionError, TOKEN_TTL_SECS};
use crate::service::vtex::{Account, VtexClient, VtexError};
use crate::store::integrations::{self as store, IntegrationRow, Progress, SyncRunRow};

/// A worker's lease on a run; renewed as the run progresses.
const LEASE_SECS: i64 = 120;
/// Progress is saved (and the lease renewed) at least this often.
const SAVE_EVERY: Duration = Duration::from_secs(15);
/// After a transient failure (VTEX or ingestion down) the run is retried this much
/// later, by whichever worker claims it first.
const RETRY_SECS: i64 = 30;
/// Starts before a run that keeps failing transiently is given up.
const MAX_ATTEMPTS: i32 = 5;
/// Failed items kept on a run for the status route.
const MAX_ITEM_ERRORS: usize = 50;

/// Everything integrations need beyond the database: the keyring, the VTEX and
/// ingestion clients, and the worker's wake-up.
pub struct Context {
    keyring: Option<Keyring>,
    /// The VTEX client.
    pub vtex: VtexClient,
    ingestion: IngestionApi,
    wake: Notify,
    poll: Duration,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Builds the context from the service's settings; a malformed key is an error
    /// (fail at start, not at the first write).
    pub fn from_config(config: &Config) -> anyhow::Result<Arc<Self>> {
        let settings = &config.integrations;
        let keyring = settings
            .encryption_key
            .as_ref()
            .map(|key| {
                Keyring::new(
                    &settings.encryption_key_id,
                    key,
                    settings.previous_encryption_keys.as_ref(),
                )
            })
            .transpose()?;
        if keyring.is_none() {
            tracing::warn!(
                "MKT_INTEGRATIONS__ENCRYPTION_KEY is not set: tenant integrations cannot be created or synced"
            );
        }
        let vtex = VtexClient::new(
            &settings.vtex_base_url,
            Duration::from_millis(settings.vtex_timeout_ms),
        )?;
        let auth = &config.service.auth;
        let secret = settings
            .ingestion_token_secret
            .as_ref()
            .or(auth.hs256_secret.as_ref());
        let ingestion = IngestionApi::new(
            &settings.ingestion_url,
            secret,
            &auth.issuer,
            &auth.audience,
            Duration::from_secs(30),
        )?;
        Ok(Arc::new(Self {
            keyring,
            vtex,
            ingestion,
            wake: Notify::new(),
            poll: Duration::from_millis(settings.sync_poll_ms.max(10)),
        }))
    }

    fn keyring(&self) -> Result<&Keyring, IntegrationError> {
        self.keyring.as_ref().ok_or(IntegrationError::NotConfigured)
    }
}

/// Everything an integrations request can fail with. Codes are listed in
/// `docs/errors.md`; no variant ever carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// The body is invalid; details keyed by field.
    #[error("invalid integration data")]
    Invalid(FieldErrors),
    /// A body or path names another tenant than the token's.
    #[error("tenant {0} not found")]
    TenantNotFound(String),
    /// No integration with that id in the caller's tenant.
    #[error("integration {0} not found")]
    NotFound(String),
    /// No such sync run of that integration.
    #[error("sync run {0} not found")]
    RunNotFound(String),
    /// The tenant already has an integration for this account.
    #[error("integration exists")]
    Exists,
    /// A sync of this integration is queued or running.
    #[error("a sync is already running")]
    SyncInProgress(Uuid),
    /// The integration is disabled.
    #[error("integration inactive")]
    Inactive,
    /// Stored credentials cannot be opened (their key was retired): both must be re-entered.
    #[error("stored credentials cannot be decrypted")]
    CredentialsUnreadable,
    /// No encryption key is configured.
    #[error("integrations are not configured")]
    NotConfigured,
    /// VTEX refused the app key and token.
    #[error("VTEX credentials are invalid")]
    CredentialsInvalid,
    /// The credentials work but lack permissions a sync needs.
    #[error("VTEX permissions missing")]
    PermissionsMissing(Value),
    /// VTEX does not know the account.
    #[error("VTEX account not found")]
    AccountNotFound,
    /// VTEX is unreachable or failing.
    #[error("VTEX unavailable: {0}")]
    VtexUnavailable(String),
    /// Authentication or authorisation failed.
    #[error(transparent)]
    Auth(#[from] mkt_auth::AuthError),
    /// Anything unexpected: logged, answered with a generic 500.
    #[error("internal: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<DieselError> for IntegrationError {
    fn from(error: DieselError) -> Self {
        if let DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) = &error
            && info.constraint_name() == Some("tenant_integrations_account_key")
        {
            return IntegrationError::Exists;
        }
        IntegrationError::Internal(error.into())
    }
}

impl From<mkt_db::diesel_async::pooled_connection::deadpool::PoolError> for IntegrationError {
    fn from(error: mkt_db::diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        IntegrationError::Internal(anyhow::anyhow!("database pool: {error}"))
    }
}

impl IntegrationError {
    /// Status, code, message and details.
    pub fn info(&self) -> ErrorInfo {
        match self {
            IntegrationError::Invalid(errors) => ErrorInfo::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Invalid integration data.",
            )
            .with_details(serde_json::to_value(errors).unwrap_or_default()),
            IntegrationError::TenantNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "tenant_not_found",
                format!("Tenant with ID {id} not found."),
            ),
            IntegrationError::NotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "integration_not_found",
                format!("Integration with ID {id} not found."),
            ),
            IntegrationError::RunNotFound(id) => ErrorInfo::new(
                StatusCode::NOT_FOUND,
                "sync_run_not_found",
                format!("Sync run with ID {id} not found."),
            ),
            IntegrationError::Exists => ErrorInfo::new(
                StatusCode::CONFLICT,
                "integration_exists",
                "This tenant already has an integration for this account.",
            ),
            IntegrationError::SyncInProgress(run) => ErrorInfo::new(
                StatusCode::CONFLICT,
                "sync_in_progress",
                "A sync of this integration is already queued or running.",
            )
            .with_details(json!({ "run_id": run })),
            IntegrationError::Inactive => ErrorInfo::new(
                StatusCode::CONFLICT,
                "integration_inactive",
                "The integration is inactive; set is_active to true to sync it.",
            ),
            IntegrationError::CredentialsUnreadable => ErrorInfo::new(
                StatusCode::CONFLICT,
                "credentials_unreadable",
                "The stored credentials can no longer be decrypted; send both app_key and app_token.",
            ),
            IntegrationError::NotConfigured => ErrorInfo::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "integrations_not_configured",
                "Tenant integrations are not configured on this deployment.",
            ),
            IntegrationError::CredentialsInvalid => ErrorInfo::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "vtex_credentials_invalid",
                "VTEX rejected the app key and app token.",
            ),
            IntegrationError::PermissionsMissing(details) => ErrorInfo::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "vtex_permissions_missing",
                "The VTEX credentials are valid but lack permissions a sync needs.",
            )
            .with_details(details.clone()),
            IntegrationError::AccountNotFound => ErrorInfo::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "vtex_account_not_found",
                "VTEX does not know this account in this environment.",
            ),
            IntegrationError::VtexUnavailable(_) => ErrorInfo::new(
                StatusCode::BAD_GATEWAY,
                "vtex_unavailable",
                "VTEX could not be reached; try again later.",
            ),
            IntegrationError::Auth(e) => ErrorInfo::new(e.status_code(), "auth", e.to_string()),
            IntegrationError::Internal(_) => ErrorInfo::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal server error",
            ),
        }
    }
}

impl ResponseError for IntegrationError {
    fn status_code(&self) -> StatusCode {
        self.info().status
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            IntegrationError::Auth(e) => e.error_response(),
            IntegrationError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "request failed");
                mkt_error::internal()
            }
            IntegrationError::VtexUnavailable(reason) => {
                tracing::warn!(%reason, "VTEX unavailable");
                render(self.info())
            }
            other => render(other.info()),
        }
    }
}

/// Seed 004 names tenants in bodies and paths; the verified token decides, and a body
/// or path naming another tenant is that tenant's 404.
pub fn own_tenant(tenant: &TenantId, named: Option<&str>) -> Result<(), IntegrationError> {
    match named {
        Some(named) if named.trim() != tenant.as_str() => {
            Err(IntegrationError::TenantNotFound(named.trim().to_owned()))
        }
        _ => Ok(()),
    }
}

fn open_credentials(
    keyring: &Keyring,
    row: &IntegrationRow,
) -> Result<VtexCredentials, IntegrationError> {
    let sealed = Sealed {
        key_id: row.credentials_key_id.clone(),
        nonce: row.credentials_nonce.clone(),
        ciphertext: row.credentials_ciphertext.clone(),
    };
    let plain = keyring
        .open(&credentials_aad(&row.tenant_id, row.id), &sealed)
        .map_err(|_| IntegrationError::CredentialsUnreadable)?;
    VtexCredentials::from_plaintext(&plain).ok_or(IntegrationError::CredentialsUnreadable)
}

fn seal_into(keyring: &Keyring, row: &mut IntegrationRow, credentials: &VtexCredentials) {
    let sealed = keyring.seal(
        &credentials_aad(&row.tenant_id, row.id),
        &credentials.to_plaintext(),
    );
    row.credentials_key_id = sealed.key_id;
    row.credentials_nonce = sealed.nonce;
    row.credentials_ciphertext = sealed.ciphertext;
    row.app_key_last4 = credentials.app_key_last4();
}

/// The tenant's integrations.
pub async fn list(
    infra: &Infra,
    tenant: &TenantId,
) -> Result<Vec<IntegrationRow>, IntegrationError> {
    let mut conn = infra.pool.get().await?;
    Ok(store::list(&mut conn, tenant.as_str()).await?)
}

/// One integration.
pub async fn find(
    infra: &Infra,
    tenant: &TenantId,
    id: Uuid,
) -> Result<IntegrationRow, IntegrationError> {
    let mut conn = infra.pool.get().await?;
    store::find(&mut conn, tenant.as_str(), id, false)
        .await?
        .ok_or_else(|| IntegrationError::NotFound(id.to_string()))
}

/// Creates an integration with its credentials sealed.
pub async fn create(
    infra: &Infra,
    context: &Context,
    tenant: &TenantId,
    input: NewIntegration,
) -> Result<IntegrationRow, IntegrationError> {
    own_tenant(tenant, input.tenant_id.as_deref())?;
    let keyring = context.keyring()?;
    let now = Utc::now();
    let mut row = IntegrationRow {
        tenant_id: tenant.as_str().to_owned(),
        id: Uuid::now_v7(),
        integration_type: input.integration_type.as_str().to_owned(),
        account_name: input.account_name.as_str().to_owned(),
        environment: input.environment.as_str().to_owned(),
        is_active: input.is_active,
        credentials_key_id: String::new(),
        credentials_nonce: Vec::new(),
        credentials_ciphertext: Vec::new(),
        app_key_last4: String::new(),
        last_sync_at: None,
        created_at: now,
        updated_at: now,
    };
    seal_into(keyring, &mut row, &input.credentials);
    let mut conn = infra.pool.get().await?;
    store::insert(&mut conn, &row).await?;
    Ok(row)
}

/// Applies a PUT: activity, account, environment, and new credentials (a new token
/// alone keeps the stored key).
pub async fn update(
    infra: &Infra,
    context: &Context,
    tenant: &TenantId,
    id: Uuid,
    patch: IntegrationPatch,
) -> Result<IntegrationRow, IntegrationError> {
    own_tenant(tenant, patch.tenant_id.as_deref())?;
    let mut conn = infra.pool.get().await?;
    conn.transaction(async |conn| {
        let mut row = store::find(conn, tenant.as_str(), id, true)
            .await?
            .ok_or_else(|| IntegrationError::NotFound(id.to_string()))?;
        if let Some(active) = patch.is_active {
            row.is_active = active;
        }
        if let Some(account) = &patch.account_name {
            row.account_name = account.as_str().to_owned();
        }
        if let Some(environment) = &patch.environment {
            row.environment = environment.as_str().to_owned();
        }
        let credentials = match (patch.app_key.clone(), patch.app_token.clone()) {
            (Some(app_key), Some(app_token)) => Some(VtexCredentials { app_key, app_token }),
            (None, Some(app_token)) => {
                let stored = open_credentials(context.keyring()?, &row)?;
                Some(VtexCredentials {
                    app_key: stored.app_key,
                    app_token,
                })
            }
            _ => None,
        };
        if let Some(credentials) = credentials {
            seal_into(context.keyring()?, &mut row, &credentials);
        }
        row.updated_at = Utc::now();
        store::update(conn, &row).await?;
        Ok(row)
    })
    .await
}

/// Deletes an integration with its runs and order links (what it imported stays in
/// ingestion).
pub async fn delete(infra: &Infra, tenant: &TenantId, id: Uuid) -> Result<(), IntegrationError> {
    let mut conn = infra.pool.get().await?;
    match store::delete(&mut conn, tenant.as_str(), id).await? {
        0 => Err(IntegrationError::NotFound(id.to_string())),
        _ => Ok(()),
    }
}

/// Checks credentials against VTEX with the two calls a sync depends on: listing
/// orders (OMS) and reading customers (Master Data `CL`). Returns seed 004's
/// `account_info`.
pub async fn validate_vtex(
    context: &Context,
    request: &ValidateRequest,
) -> Result<Value, IntegrationError> {
    let account = Account {
        name: &request.account_name,
        environment: &request.environment,
        credentials: &request.credentials,
    };
    let (orders, customers) = tokio::join!(
        context.vtex.probe_orders(&account),
        context.vtex.probe_customers(&account)
    );
    let mut missing = serde_json::Map::new();
    for result in [&orders, &customers] {
        match result {
            Ok(()) => {}
            Err(VtexError::Unauthorized) => return Err(IntegrationError::CredentialsInvalid),
            Err(VtexError::NotFound(_)) => return Err(IntegrationError::AccountNotFound),
            Err(VtexError::Forbidden(what)) => {
                let resource = match *what {
                    "orders" => "OMS > List Orders",
                    _ => "Dynamic Storage > Read only documents (Master Data CL)",
                };
                missing.insert((*what).to_owned(), json!([resource]));
            }
            Err(other) => return Err(IntegrationError::VtexUnavailable(other.to_string())),
        }
    }
    if !missing.is_empty() {
        return Err(IntegrationError::PermissionsMissing(Value::Object(missing)));
    }
    let host = format!(
        "{}.{}.com.br",
        request.account_name.as_str(),
        request.environment.as_str()
    );
    Ok(json!({
        "account_name": request.account_name.as_str(),
        "environment": request.environment.as_str(),
        "is_active": true,
        "hosts": [host],
        "permissions": {"orders": true, "customers": true},
    }))
}

/// Queues a sync of an active integration and wakes the worker.
pub async fn start_sync(
    infra: &Infra,
    context: &Context,
    tenant: &TenantId,
    id: Uuid,
    request: SyncRequest,
) -> Result<SyncRunRow, IntegrationError> {
    context.keyring()?;
    let mut conn = infra.pool.get().await?;
    let integration = store::find(&mut conn, tenant.as_str(), id, false)
        .await?
        .ok_or_else(|| IntegrationError::NotFound(id.to_string()))?;
    if !integration.is_active {
        return Err(IntegrationError::Inactive);
    }
    let run = SyncRunRow {
        tenant_id: tenant.as_str().to_owned(),
        id: Uuid::now_v7(),
        integration_id: id,
        status: "queued".into(),
        phase: "customers".into(),
        orders_since: request.since,
        orders_until: request.until,
        orders_cursor: None,
        counts: serde_json::to_value(Counts::default()).unwrap_or_default(),
        item_errors: json!([]),
        error: None,
        attempts: 0,
        lease_until: None,
        requested_at: Utc::now(),
        started_at: None,
        finished_at: None,
    };
    if !store::enqueue(&mut conn, &run).await? {
        let active = store::active_run(&mut conn, tenant.as_str(), id).await?;
        return Err(IntegrationError::SyncInProgress(
            active.map(|r| r.id).unwrap_or_default(),
        ));
    }
    context.wake.notify_one();
    Ok(run)
}

/// An integration's runs, newest first (one, when `run` names it).
pub async fn runs(
    infra: &Infra,
    tenant: &TenantId,
    id: Uuid,
    run: Option<Uuid>,
    limit: i64,
) -> Result<Vec<SyncRunRow>, IntegrationError> {
    let mut conn = infra.pool.get().await?;
    if store::find(&mut conn, tenant.as_str(), id, false)
        .await?
        .is_none()
    {
        return Err(IntegrationError::NotFound(id.to_string()));
    }
    let rows = store::runs(&mut conn, tenant.as_str(), id, run, limit).await?;
    match (run, rows.is_empty()) {
        (Some(run), true) => Err(IntegrationError::RunNotFound(run.to_string())),
        _ => Ok(rows),
    }
}

/// Counters of one kind of record in a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    /// New in ingestion.
    pub created: i64,
    /// Changed in ingestion.
    pub updated: i64,
    /// Already there as sent.
    pub unchanged: i64,
    /// Not importable (no email, no buyer, gone from VTEX).
    pub skipped: i64,
    /// Refused by ingestion or unreadable; listed in `item_errors`.
    pub failed: i64,
}

/// A run's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// VTEX customers (and order buyers created on the way).
    pub customers: KindCounts,
    /// VTEX orders.
    pub orders: KindCounts,
}

/// The sync worker: claims runs (its own are signalled at once, other processes' are
/// found by polling), works them, and never exits.
pub fn worker(context: Arc<Context>) -> mkt_runtime::Worker {
    Box::new(move |infra| Box::pin(run_worker(infra, context)))
}

async fn run_worker(infra: Infra, context: Arc<Context>) {
    loop {
        match run_one(&infra, &context).await {
            Ok(true) => {}
            Ok(false) => {
                tokio::select! {
                    () = context.wake.notified() => {}
                    () = tokio::time::sleep(context.poll) => {}
                }
            }
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "integration sync worker failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Claims and works one run; `false` when there was nothing to do.
async fn run_one(infra: &Infra, context: &Context) -> anyhow::Result<bool> {
    // Without a key no credentials open: leave runs queued for a configured process.
    let Some(keyring) = context.keyring.as_ref() else {
        return Ok(false);
    };
    let mut conn = infra.pool.get().await?;
    let Some(run) = store::claim(&mut conn, LEASE_SECS).await? else {
        return Ok(false);
    };
    if run.attempts > MAX_ATTEMPTS {
        let reason = format!(
            "gave up after {} attempts: {}",
            MAX_ATTEMPTS,
            run.error.as_deref().unwrap_or("unknown error")
        );
        store::finish(&mut conn, &run, "failed", Some(&reason)).await?;
        return Ok(true);
    }
    let Some(integration) =
        store::find(&mut conn, &run.tenant_id, run.integration_id, false).await?
    else {
        // Deleted meanwhile (its runs go with it): nothing left to do.
        return Ok(true);
    };
    if !integration.is_active {
        store::finish(
            &mut conn,
            &run,
            "failed",
            Some("the integration was deactivated"),
        )
        .await?;
        return Ok(true);
    }
    let credentials = match open_credentials(keyring, &integration) {
        Ok(credentials) => credentials,
        Err(_) => {
            store::finish(
                &mut conn,
                &run,
                "failed",
                Some("the stored credentials cannot be decrypted with the configured keys"),
            )
            .await?;
            return Ok(true);
        }
    };
    if integration.credentials_key_id != keyring.current_id() {
        // Key rotation: values sealed under a retired key move to the current one.
        let sealed = keyring.seal(
            &credentials_aad(&integration.tenant_id, integration.id),
            &credentials.to_plaintext(),
        );
        store::reseal(
            &mut conn,
            &integration.tenant_id,
            integration.id,
            &sealed.key_id,
            &sealed.nonce,
            &sealed.ciphertext,
        )
        .await?;
    }
    let (Ok(account_name), Ok(environment)) = (
        AccountName::parse(&integration.account_name),
        Environment::parse(&integration.environment),
    ) else {
        store::finish(
            &mut conn,
            &run,
            "failed",
            Some("the stored account is invalid"),
        )
        .await?;
        return Ok(true);
    };
    drop(conn);
    tracing::info!(run = %run.id, tenant = %run.tenant_id, integration = %run.integration_id, attempt = run.attempts, "integration sync started");
    let mut job = SyncJob::new(infra, context, run, account_name, environment, credentials);
    let outcome = job.work().await;
    job.conclude(outcome).await?;
    Ok(true)
}

/// Why a run stopped before the end.
#[derive(Debug)]
enum Stop {
    /// Retrying cannot help (credentials, permissions, configuration).
    Permanent(String),
    /// VTEX or ingestion are down, or the database hiccuped: retry later.
    Transient(String),
    /// Another worker owns the run now (or it was deleted).
    LeaseLost,
}

impl From<DieselError> for Stop {
    fn from(error: DieselError) -> Self {
        Stop::Transient(format!("database: {error}"))
    }
}

impl From<mkt_db::diesel_async::pooled_connection::deadpool::PoolError> for Stop {
    fn from(error: mkt_db::diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        Stop::Transient(format!("database pool: {error}"))
    }
}

impl From<VtexError> for Stop {
    fn from(error: VtexError) -> Self {
        if error.is_permanent() {
            Stop::Permanent(error.to_string())
        } else {
            Stop::Transient(error.to_string())
        }
    }
}

impl From<IngestionError> for Stop {
    fn from(error: IngestionError) -> Self {
        match error {
            IngestionError::Unavailable(_) => Stop::Transient(error.to_string()),
            IngestionError::NotConfigured | IngestionError::Refused(_) => {
                Stop::Permanent(error.to_string())
            }
        }
    }
}

/// An idempotency-key part from a store id: kept when it is short visible ASCII,
/// hashed otherwise (keys are 1-255 visible ASCII characters).
fn key_part(raw: &str) -> String {
    if !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic()) {
        raw.to_owned()
    } else {
        fingerprint(&Value::String(raw.to_owned()))
    }
}

/// One run being worked.
struct SyncJob<'a> {
    infra: &'a Infra,
    context: &'a Context,
    run: SyncRunRow,
    account_name: AccountName,
    environment: Environment,
    credentials: VtexCredentials,
    counts: Counts,
    item_errors: Vec<Value>,
    phase: String,
    cursor: Option<DateTime<Utc>>,
    token: Option<(SecretString, Instant)>,
    saved: Instant,
}

impl<'a> SyncJob<'a> {
    fn new(
        infra: &'a Infra,
        context: &'a Context,
        run: SyncRunRow,
        account_name: AccountName,
        environment: Environment,
        credentials: VtexCredentials,
    ) -> Self {
        let counts = serde_json::from_value(run.counts.clone()).unwrap_or_default();
        let item_errors = run.item_errors.as_array().cloned().unwrap_or_default();
        Self {
            infra,
            context,
            phase: run.phase.clone(),
            cursor: run.orders_cursor,
            run,
            account_name,
            environment,
            credentials,
            counts,
            item_errors,
            token: None,
            saved: Instant::now(),
        }
    }

    fn account(&self) -> Account<'_> {
        Account {
            name: &self.account_name,
            environment: &self.environment,
            credentials: &self.credentials,
        }
    }

    async fn work(&mut self) -> Result<(), Stop> {
        if self.phase == "customers" {
            self.customers().await?;
        }
        if self.phase == "orders" {
            self.orders().await?;
        }
        Ok(())
    }

    /// Ends the attempt: success, failure, or a back-off for a later retry.
    async fn conclude(&mut self, outcome: Result<(), Stop>) -> anyhow::Result<()> {
        let (tenant, run_id) = (self.run.tenant_id.clone(), self.run.id);
        match outcome {
            Ok(()) => {
                self.save().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let mut conn = self.infra.pool.get().await?;
                let run = self.run.clone();
                conn.transaction(async |conn| {
                    if store::finish(conn, &run, "succeeded", None).await? {
                        store::mark_synced(conn, &run.tenant_id, run.integration_id, Utc::now())
                            .await?;
                    }
                    Ok::<_, DieselError>(())
                })
                .await?;
                tracing::info!(run = %run_id, %tenant, counts = ?self.counts, "integration sync succeeded");
            }
            Err(Stop::LeaseLost) => {
                tracing::warn!(run = %run_id, %tenant, "integration sync lost its lease; another worker has it");
            }
            Err(Stop::Permanent(reason)) => {
                // Progress first, so the status route shows how far it got.
                let _ = self.save().await;
                let mut conn = self.infra.pool.get().await?;
                store::finish(&mut conn, &self.run, "failed", Some(&reason)).await?;
                tracing::warn!(run = %run_id, %tenant, %reason, "integration sync failed");
            }
            Err(Stop::Transient(reason)) => {
                let _ = self.save().await;
                let mut conn = self.infra.pool.get().await?;
                store::back_off(&mut conn, &self.run, &reason, RETRY_SECS).await?;
                tracing::warn!(run = %run_id, %tenant, %reason, "integration sync will be retried");
            }
        }
        Ok(())
    }

    async fn save(&mut self) -> Result<(), Stop> {
        let counts = serde_json::to_value(self.counts).unwrap_or_default();
        let item_errors = Value::Array(self.item_errors.clone());
        let mut conn = self.infra.pool.get().await?;
        let progress = Progress {
            run: &self.run,
            phase: &self.phase,
            orders_cursor: self.cursor,
            counts: &counts,
            item_errors: &item_errors,
        };
        if !store::save_progress(&mut conn, &progress, LEASE_SECS).await? {
            return Err(Stop::LeaseLost);
        }
        self.saved = Instant::now();
        Ok(())
    }

    async fn maybe_save(&mut self) -> Result<(), Stop> {
        if self.saved.elapsed() >= SAVE_EVERY {
            self.save().await?;
        }
        Ok(())
    }

    fn item_error(&mut self, kind: &str, reference: &str, code: &str, message: &str) {
        if self.item_errors.len() < MAX_ITEM_ERRORS {
            self.item_errors.push(json!({
                "kind": kind, "reference": reference, "code": code, "message": message,
            }));
        }
    }

    /// Sends one write to ingestion with a fresh enough service token.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Result<Answer, Stop> {
        let fresh = self
            .token
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < Duration::from_secs((TOKEN_TTL_SECS / 2) as u64));
        if !fresh {
            let token = self.context.ingestion.token(&self.run.tenant_id)?;
            self.token = Some((token, Instant::now()));
        }
        let Some((token, _)) = self.token.as_ref() else {
            return Err(Stop::Permanent("no ingestion token".into()));
        };
        Ok(self
            .context
            .ingestion
            .send(token, method, path, key, body)
            .await?)
    }

    /// Customers: the whole `CL` entity through Master Data's scroll. On a takeover the
    /// phase starts again from the top (a scroll cannot be resumed), which costs only
    /// replays: each customer's key carries a fingerprint of what is sent.
    async fn customers(&mut self) -> Result<(), Stop> {
        self.counts.customers = KindCounts::default();
        let mut token: Option<String> = None;
        loop {
            let (page, next) = self
                .context
                .vtex
                .scroll_customers(&self.account(), token.as_deref())
                .await?;
            if page.is_empty() {
                break;
            }
            for document in &page {
                match customer_upsert(document) {
                    Some(upsert) => self.upsert_customer(&upsert).await?,
                    None => self.counts.customers.skipped += 1,
                }
                self.maybe_save().await?;
            }
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        self.phase = "orders".into();
        self.save().await
    }

    async fn upsert_customer(&mut self, upsert: &CustomerUpsert) -> Result<(), Stop> {
        let key = format!(
            "vtex:{}:customer:{}:{}",
            self.account_name.as_str(),
            key_part(&upsert.reference),
            fingerprint(&upsert.body)
        );
        match self
            .send(Method::POST, "/api/v2/cdp/customers", &key, &upsert.body)
            .await?
        {
            Answer::Done { replayed: true, .. } => self.counts.customers.unchanged += 1,
            Answer::Done { status: 201, .. } => self.counts.customers.created += 1,
            Answer::Done { .. } => self.counts.customers.updated += 1,
            Answer::Rejected { code, message, .. } => {
                self.counts.customers.failed += 1;
                self.item_error("customer", &upsert.reference, &code, &message);
            }
        }
        Ok(())
    }

    /// Orders created in the run's window, oldest first. The list serves at most 30
    /// pages, so after the 30th the window restarts at the last creation date seen
    /// (orders at that instant are seen twice, which the order links make harmless).
    async fn orders(&mut self) -> Result<(), Stop> {
        let until = self.run.orders_until;
        let mut from = self.cursor.unwrap_or(self.run.orders_since);
        loop {
            let mut last_seen: Option<DateTime<Utc>> = None;
            let mut page = 1;
            let finished = loop {
                let list = self
                    .context
                    .vtex
                    .list_orders(&self.account(), from, until, page)
                    .await?;
                for summary in &list.list {
                    self.import_order(summary).await?;
                    if let Some(at) = parse_time(&summary.creation_date) {
                        last_seen = Some(at);
                        self.cursor = Some(at);
                    }
                    self.maybe_save().await?;
                }
                if list.list.is_empty() || i64::from(page) >= list.paging.pages {
                    break true;
                }
                if page >= MAX_ORDER_PAGES {
                    break false;
                }
                page += 1;
            };
            if finished {
                break;
            }
            from = match last_seen {
                // More than a sweep's worth of orders share one instant: step past it.
                Some(at) if at > from => at,
                _ => from + chrono::Duration::milliseconds(1),
            };
        }
        self.phase = "done".into();
        self.save().await
    }

    async fn import_order(&mut self, summary: &OrderSummary) -> Result<(), Stop> {
        let tenant = self.run.tenant_id.clone();
        let integration = self.run.integration_id;
        let external = summary.order_id.as_str();
        let known = {
            let mut conn = self.infra.pool.get().await?;
            store::imported_order(&mut conn, &tenant, integration, external).await?
        };
        if let Some((order_id, sent_status)) = known {
            return self
                .update_order_status(order_id, external, &sent_status, &summary.status)
                .await;
        }
        let order = match self.context.vtex.order(&self.account(), external).await {
            Ok(order) => order,
            Err(VtexError::NotFound(_)) => {
                self.counts.orders.skipped += 1;
                self.item_error(
                    "order",
                    external,
                    "vtex_not_found",
                    "VTEX no longer has this order",
                );
                return Ok(());
            }
            Err(error @ VtexError::Decode { .. }) => {
                self.counts.orders.failed += 1;
                self.item_error("order", external, "vtex_unreadable", &error.to_string());
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        let Some(buyer) = Buyer::of(&order) else {
            self.counts.orders.skipped += 1;
            self.item_error("order", external, "no_buyer", "The order names no buyer");
            return Ok(());
        };
        let body = match order_body(&order, &buyer) {
            Ok(body) => body,
            Err(reason) => {
                self.counts.orders.failed += 1;
                self.item_error("order", external, "unmappable", &reason);
                return Ok(());
            }
        };
        let key = format!(
            "vtex:{}:order:{}",
            self.account_name.as_str(),
            key_part(external)
        );
        let mut answer = self
            .send(Method::POST, "/api/v2/cdp/orders", &key, &body)
            .await?;
        if matches!(&answer, Answer::Rejected { status: 404, .. })
            && let Some(upsert) = order.client_profile_data.as_ref().and_then(buyer_upsert)
        {
            // The buyer has no CL document we imported: create them from the order.
            self.upsert_customer(&upsert).await?;
            answer = self
                .send(Method::POST, "/api/v2/cdp/orders", &key, &body)
                .await?;
        }
        match answer {
            Answer::Done {
                replayed,
                body: reply,
                ..
            } => {
                let Some(order_id) = reply["data"]["id"]
                    .as_str()
                    .and_then(|id| Uuid::parse_str(id).ok())
                else {
                    self.counts.orders.failed += 1;
                    self.item_error(
                        "order",
                        external,
                        "no_id",
                        "ingestion answered without an id",
                    );
                    return Ok(());
                };
                let mut conn = self.infra.pool.get().await?;
                store::record_order(
                    &mut conn,
                    &tenant,
                    integration,
                    external,
                    order_id,
                    &order.status,
                )
                .await?;
                if replayed {
                    self.counts.orders.unchanged += 1;
                } else {
                    self.counts.orders.created += 1;
                }
            }
            Answer::Rejected {
                status: 409, code, ..
            }
            | Answer::Rejected {
                status: 422, code, ..
            } if code == "duplicate_order" || code == "idempotency_key_reused" => {
                self.counts.orders.skipped += 1;
                self.item_error(
                    "order",
                    external,
                    &code,
                    "ingestion already has an order with this externalId that this integration did not record",
                );
            }
            Answer::Rejected { code, message, .. } => {
                self.counts.orders.failed += 1;
                self.item_error("order", external, &code, &message);
            }
        }
        Ok(())
    }

    /// An order sent before: nothing to do unless VTEX moved it to a status that maps
    /// to another of ours, which is one PATCH.
    async fn update_order_status(
        &mut self,
        order_id: Uuid,
        external: &str,
        sent: &str,
        current: &str,
    ) -> Result<(), Stop> {
        if sent == current {
            self.counts.orders.unchanged += 1;
            return Ok(());
        }
        let (before, now) = (order_status(sent), order_status(current));
        if before == now {
            self.counts.orders.unchanged += 1;
        } else {
            let key = format!(
                "vtex:{}:order:{}:status:{now}",
                self.account_name.as_str(),
                key_part(external)
            );
            let path = format!("/api/v2/cdp/orders/{order_id}");
            match self
                .send(Method::PATCH, &path, &key, &json!({ "status": now }))
                .await?
            {
                Answer::Done { replayed: true, .. } => self.counts.orders.unchanged += 1,
                Answer::Done { .. } => self.counts.orders.updated += 1,
                // Our lifecycle does not allow it (a cancelled order invoiced later):
                // ours stays, and we stop asking.
                Answer::Rejected { status: 409, .. } => self.counts.orders.unchanged += 1,
                Answer::Rejected { code, message, .. } => {
                    // Not recorded, so the next sync tries again.
                    self.counts.orders.failed += 1;
                    self.item_error("order", external, &code, &message);
                    return Ok(());
                }
            }
        }
        let mut conn = self.infra.pool.get().await?;
        store::record_order(
            &mut conn,
            &self.run.tenant_id,
            self.run.integration_id,
            external,
            order_id,
            current,
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_stay_short_visible_ascii() {
        assert_eq!(key_part("v502556llux-01"), "v502556llux-01");
        let odd = key_part("ação 1");
        assert!(odd.bytes().all(|b| b.is_ascii_graphic()) && odd.len() == 16);
        assert_eq!(key_part(&"x".repeat(300)).len(), 16);
    }

    #[test]
    fn errors_map_to_the_documented_codes() {
        let cases = [
            (IntegrationError::Exists, 409, "integration_exists"),
            (
                IntegrationError::NotConfigured,
                503,
                "integrations_not_configured",
            ),
            (
                IntegrationError::CredentialsInvalid,
                422,
                "vtex_credentials_invalid",
            ),
            (
                IntegrationError::VtexUnavailable("down".into()),
                502,
                "vtex_unavailable",
            ),
            (
                IntegrationError::TenantNotFound("x".into()),
                404,
                "tenant_not_found",
            ),
        ];
        for (error, status, code) in cases {
            let info = error.info();
            assert_eq!((info.status.as_u16(), info.code), (status, code));
        }
    }
}
