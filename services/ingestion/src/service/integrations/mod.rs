//! Tenant integrations, an import source beside CSV: CRUD with credentials sealed at
//! rest, VTEX credential validation, and sync runs that import a store's customers and
//! orders through this service's own use cases (`service::customers`,
//! `service::orders`: the same validation and events as the API and CSV paths).
//!
//! `vtex` is the VTEX REST client; `worker` is the whole sync job loop (claim, lease,
//! retry, the import itself), in one module so it can move onto the shared job runner;
//! `migrate` is the one-off copy of the integrations cdp-analytics used to own.

pub mod migrate;
pub mod vtex;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use chrono::Utc;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::AsyncConnection;
use mkt_auth::TenantId;
use mkt_error::{ErrorInfo, render};
use mkt_runtime::Infra;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

use self::vtex::{Account, VtexClient, VtexError};
use crate::config::IntegrationsConfig;
use crate::domain::crypto::{Keyring, Sealed};
use crate::domain::integrations::{
    FieldErrors, IntegrationPatch, NewIntegration, SyncRequest, ValidateRequest, VtexCredentials,
    credentials_aad,
};
use crate::store::integrations::{self as store, IntegrationRow, SyncRunRow};

/// Everything integrations need beyond the database: the keyring, the VTEX client and
/// the worker's wake-up. (No ingestion client: syncs write in-process.)
pub struct Context {
    keyring: Option<Keyring>,
    /// The VTEX client.
    pub vtex: VtexClient,
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
    /// Builds the context from the integration settings; a malformed key is an error
    /// (fail at start, not at the first write).
    pub fn from_config(settings: &IntegrationsConfig) -> anyhow::Result<Arc<Self>> {
        let keyring = keyring_from(settings)?;
        if keyring.is_none() {
            tracing::warn!(
                "MKT_INTEGRATIONS__ENCRYPTION_KEY is not set: tenant integrations cannot be created or synced"
            );
        }
        let vtex = VtexClient::new(
            &settings.vtex_base_url,
            Duration::from_millis(settings.vtex_timeout_ms),
        )?;
        Ok(Arc::new(Self {
            keyring,
            vtex,
            wake: Notify::new(),
            poll: Duration::from_millis(settings.sync_poll_ms.max(10)),
        }))
    }

    fn keyring(&self) -> Result<&Keyring, IntegrationError> {
        self.keyring.as_ref().ok_or(IntegrationError::NotConfigured)
    }
}

/// The keyring the settings describe, if a key is set.
pub fn keyring_from(settings: &IntegrationsConfig) -> anyhow::Result<Option<Keyring>> {
    Ok(settings
        .encryption_key
        .as_ref()
        .map(|key| {
            Keyring::new(
                &settings.encryption_key_id,
                key,
                settings.previous_encryption_keys.as_ref(),
            )
        })
        .transpose()?)
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

/// Opens an integration's sealed credentials.
pub fn open_credentials(
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

/// Deletes an integration with its runs (the customers and orders it imported stay).
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
    /// Refused by ingestion's validation or unreadable; listed in `item_errors`.
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

#[cfg(test)]
mod tests {
    use super::*;

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
