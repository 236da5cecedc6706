//! The integration sync job: the whole loop (claim under a lease, work, save progress,
//! retry with back-off, give up) in this one module, so it can move onto the shared job
//! runner as a unit. The seam: [`run_one`] claims; [`SyncJob::work`] is the job itself
//! (it needs only the claimed run, the integration's credentials and [`Infra`]);
//! [`SyncJob::conclude`] maps its outcome to done / failed / retry later.
//!
//! A sync is a row in `integration_sync_runs`. A dead worker's lease expires and another
//! takes the run over; customers restart from the top (their writes replay), orders
//! resume at the saved creation-date cursor.
//!
//! Every record goes through this service's own use cases, in-process, each in its own
//! transaction with its outbox events: customers through [`customers::upsert`] with an
//! `Idempotency-Key` derived from the VTEX id and a fingerprint of what is written (so
//! an unchanged customer replays and emits nothing), orders through [`orders::place`]
//! with the VTEX order id as `externalId`. An order already in ingestion (by
//! `(tenant_id, external_id)`, the unique index that also answers `duplicate_order`)
//! is not fetched again; a changed status becomes one [`orders::set_status`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::result::Error as DieselError;
use diesel_async::AsyncConnection;
use mkt_auth::TenantId;
use mkt_runtime::Infra;
use serde_json::{Value, json};
use uuid::Uuid;

use super::vtex::{Account, VtexError};
use super::{Context, Counts, open_credentials};
use crate::domain::customer::CustomerInput;
use crate::domain::integrations::{AccountName, Environment, VtexCredentials, credentials_aad};
use crate::domain::order::{OrderInput, OrderStatus};
use crate::domain::vtex::{
    Buyer, CustomerUpsert, MAX_ORDER_PAGES, OrderSummary, buyer_upsert, customer_upsert,
    fingerprint, order_body, order_status, parse_time,
};
use crate::error::ApiError;
use crate::service::{Idempotency, Reply, customers, orders};
use crate::store::integrations::{self as store, Progress, SyncRunRow};

/// A worker's lease on a run; renewed as the run progresses.
const LEASE_SECS: i64 = 120;
/// Progress is saved (and the lease renewed) at least this often.
const SAVE_EVERY: Duration = Duration::from_secs(15);
/// After a transient failure (VTEX or the database down) the run is retried this much
/// later, by whichever worker claims it first.
const RETRY_SECS: i64 = 30;
/// Starts before a run that keeps failing transiently is given up.
const MAX_ATTEMPTS: i32 = 5;
/// Failed items kept on a run for the status route.
const MAX_ITEM_ERRORS: usize = 50;
/// The path a customer upsert's idempotency fingerprint names: the API's, so keys
/// stored by syncs that wrote over HTTP (before integrations moved here) still replay.
const CUSTOMERS_PATH: &str = "/api/v2/cdp/customers";

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
pub async fn run_one(infra: &Infra, context: &Context) -> anyhow::Result<bool> {
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
    let (Ok(account_name), Ok(environment), Ok(tenant)) = (
        AccountName::parse(&integration.account_name),
        Environment::parse(&integration.environment),
        TenantId::parse(&integration.tenant_id),
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
    let mut job = SyncJob {
        infra,
        context,
        phase: run.phase.clone(),
        cursor: run.orders_cursor,
        counts: serde_json::from_value(run.counts.clone()).unwrap_or_default(),
        item_errors: run.item_errors.as_array().cloned().unwrap_or_default(),
        run,
        tenant,
        account_name,
        environment,
        credentials,
        saved: Instant::now(),
    };
    let outcome = job.work().await;
    job.conclude(outcome).await?;
    Ok(true)
}

/// Why a run stopped before the end.
#[derive(Debug)]
enum Stop {
    /// Retrying cannot help (credentials, permissions, configuration).
    Permanent(String),
    /// VTEX or the database are down: retry later.
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

/// A use case's refusal of one record (the record's problem, counted and listed), or a
/// failure of the service itself (the database: the run is retried later).
fn refusal(error: ApiError) -> Result<ApiError, Stop> {
    match error {
        ApiError::Internal(cause) => Err(Stop::Transient(format!("ingestion: {cause:#}"))),
        other => Ok(other),
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
    tenant: TenantId,
    account_name: AccountName,
    environment: Environment,
    credentials: VtexCredentials,
    counts: Counts,
    item_errors: Vec<Value>,
    phase: String,
    cursor: Option<DateTime<Utc>>,
    saved: Instant,
}

impl SyncJob<'_> {
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

    /// Lists a refused record with the use case's code and message.
    fn refused(&mut self, kind: &str, reference: &str, error: &ApiError) {
        let info = error.info();
        self.item_error(kind, reference, info.code, &info.message);
    }

    /// Customers: the whole `CL` entity through Master Data's scroll. On a takeover the
    /// phase starts again from the top (a scroll cannot be resumed), which costs only
    /// replays: each customer's key carries a fingerprint of what is written.
    async fn customers(&mut self) -> Result<(), Stop> {
        self.counts.customers = Default::default();
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

    /// One customer through [`customers::upsert`], validated as the API validates it.
    async fn upsert_customer(&mut self, upsert: &CustomerUpsert) -> Result<(), Stop> {
        let key = format!(
            "vtex:{}:customer:{}:{}",
            self.account_name.as_str(),
            key_part(&upsert.reference),
            fingerprint(&upsert.body)
        );
        let idempotency = Idempotency::for_request("POST", CUSTOMERS_PATH, key, &upsert.body);
        let result = match serde_json::from_value::<CustomerInput>(upsert.body.clone()) {
            Err(error) => Err(ApiError::InvalidBody(error.to_string())),
            Ok(input) => match input.validate() {
                Err(errors) => Err(ApiError::InvalidCustomer(errors)),
                Ok(valid) => {
                    customers::upsert(self.infra, &self.tenant, Some(&idempotency), valid).await
                }
            },
        };
        match result {
            Ok(Reply { replayed: true, .. }) => self.counts.customers.unchanged += 1,
            Ok(Reply { status: 201, .. }) => self.counts.customers.created += 1,
            Ok(_) => self.counts.customers.updated += 1,
            Err(error) => {
                let error = refusal(error)?;
                self.counts.customers.failed += 1;
                self.refused("customer", &upsert.reference, &error);
            }
        }
        Ok(())
    }

    /// Orders created in the run's window, oldest first. The list serves at most 30
    /// pages, so after the 30th the window restarts at the last creation date seen
    /// (orders at that instant are seen twice, which `external_id` makes harmless).
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
        let external = summary.order_id.as_str();
        let known = {
            let mut conn = self.infra.pool.get().await?;
            crate::store::orders::find_by_external(&mut conn, self.tenant.as_str(), external)
                .await?
        };
        if let Some((order_id, stored_status)) = known {
            return self
                .update_order_status(order_id, external, &stored_status, &summary.status)
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
        let mut result = self.place_order(&body).await;
        if matches!(result, Err(ApiError::CustomerNotFound(_)))
            && let Some(upsert) = order.client_profile_data.as_ref().and_then(buyer_upsert)
        {
            // The buyer has no CL document we imported: create them from the order.
            self.upsert_customer(&upsert).await?;
            result = self.place_order(&body).await;
        }
        match result {
            Ok(_) => self.counts.orders.created += 1,
            // Written meanwhile (another run, the API, a CSV): the unique external id
            // kept it to one order.
            Err(ApiError::Conflict("duplicate_order", _)) => self.counts.orders.unchanged += 1,
            Err(error) => {
                let error = refusal(error)?;
                self.counts.orders.failed += 1;
                self.refused("order", external, &error);
            }
        }
        Ok(())
    }

    /// One order through [`orders::place`], validated as the API validates it. No
    /// idempotency key: the order's `externalId` is what makes a retry harmless.
    async fn place_order(&self, body: &Value) -> Result<Reply, ApiError> {
        let input: OrderInput = serde_json::from_value(body.clone())
            .map_err(|error| ApiError::InvalidBody(error.to_string()))?;
        let valid = input.validate().map_err(ApiError::InvalidOrder)?;
        orders::place(self.infra, &self.tenant, None, valid).await
    }

    /// An order ingestion already has: nothing to do unless VTEX moved it to a status
    /// that maps to another of ours, which is one status change.
    async fn update_order_status(
        &mut self,
        order_id: Uuid,
        external: &str,
        stored: &str,
        vtex_status: &str,
    ) -> Result<(), Stop> {
        let Some(wanted) = OrderStatus::from_name(order_status(vtex_status)) else {
            return Err(Stop::Permanent(format!(
                "VTEX status {vtex_status:?} maps to no order status"
            )));
        };
        if OrderStatus::from_name(stored) == Some(wanted) {
            self.counts.orders.unchanged += 1;
            return Ok(());
        }
        match orders::set_status(self.infra, &self.tenant, None, order_id, wanted).await {
            Ok(_) => self.counts.orders.updated += 1,
            // Our lifecycle does not allow it (a cancelled order invoiced later): ours
            // stays.
            Err(ApiError::InvalidTransition { .. }) => self.counts.orders.unchanged += 1,
            Err(error) => {
                let error = refusal(error)?;
                self.counts.orders.failed += 1;
                self.refused("order", external, &error);
            }
        }
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
}
