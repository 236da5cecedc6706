//! The one-off move of tenant integrations from cdp-analytics' schema (where they lived
//! until issue 10) into this service's: `ingestion migrate-integrations`.
//!
//! Each service's database role may only touch its own schema, so the copy uses two
//! connections and no cross-schema grant: it reads `cdp_analytics.tenant_integrations`
//! and `cdp_analytics.integration_sync_runs` with a URL that may read them (the
//! cdp_analytics role's, given in [`SOURCE_URL_VAR`]) and writes this service's tables
//! with its own pool, in one transaction.
//!
//! Rows keep their ids, and the sealed credentials are copied byte for byte: the
//! associated data binds a ciphertext to `(tenant_id, id)`, so they open here with the
//! same `MKT_INTEGRATIONS__ENCRYPTION_KEY` (and key id) cdp-analytics used.
//!
//! Idempotent: an integration already here is only overwritten when the source row is
//! newer (`updated_at`), so a second run picks up edits made in between and never undoes
//! what happened here since; runs are inserted when missing. A run that was queued or
//! running in cdp-analytics arrives queued, so this service's worker finishes it. The
//! old tables are left alone; a later cdp-analytics migration drops them.
//! `integration_orders` is not copied: orders are recognised by `orders.external_id`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::open_credentials;
use crate::domain::crypto::Keyring;
use crate::store::integrations::{IntegrationRow, SyncRunRow};
use crate::store::schema::{integration_sync_runs, tenant_integrations};

/// The environment variable with the source database URL (a role that may read the
/// `cdp_analytics` schema: the cdp_analytics role itself, or an administrator).
pub const SOURCE_URL_VAR: &str = "MKT_MIGRATE_INTEGRATIONS__SOURCE_URL";

/// cdp-analytics' tables as its migration `2026-11-22-000100_tenant_integrations`
/// created them (same columns, same order as ours).
mod legacy {
    diesel::table! {
        cdp_analytics.tenant_integrations (tenant_id, id) {
            tenant_id -> Text,
            id -> Uuid,
            integration_type -> Text,
            account_name -> Text,
            environment -> Text,
            is_active -> Bool,
            credentials_key_id -> Text,
            credentials_nonce -> Bytea,
            credentials_ciphertext -> Bytea,
            app_key_last4 -> Text,
            last_sync_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        cdp_analytics.integration_sync_runs (tenant_id, id) {
            tenant_id -> Text,
            id -> Uuid,
            integration_id -> Uuid,
            status -> Text,
            phase -> Text,
            orders_since -> Timestamptz,
            orders_until -> Timestamptz,
            orders_cursor -> Nullable<Timestamptz>,
            counts -> Jsonb,
            item_errors -> Jsonb,
            error -> Nullable<Text>,
            attempts -> Int4,
            lease_until -> Nullable<Timestamptz>,
            requested_at -> Timestamptz,
            started_at -> Nullable<Timestamptz>,
            finished_at -> Nullable<Timestamptz>,
        }
    }
}

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Integrations in the source.
    pub found: usize,
    /// Integrations new here.
    pub inserted: usize,
    /// Integrations here that the source had a newer version of.
    pub updated: usize,
    /// Integrations here already as new as the source's.
    pub unchanged: usize,
    /// Source integrations not copied because this tenant already has another
    /// integration for the same account here (`tenant_id/id`).
    pub conflicts: Vec<String>,
    /// Sync runs new here.
    pub runs_inserted: usize,
    /// Copied integrations whose credentials the configured keys cannot open
    /// (`tenant_id/id`); empty when no key is configured to check with.
    pub unreadable: Vec<String>,
}

/// Copies from a connection that can read `cdp_analytics` into this service's tables
/// through `target`, in one transaction; with a keyring, checks that every copied
/// credential opens.
pub async fn copy(
    source: &mut AsyncPgConnection,
    target: &mut AsyncPgConnection,
    keyring: Option<&Keyring>,
) -> anyhow::Result<Report> {
    let integrations: Vec<IntegrationRow> = legacy::tenant_integrations::table
        .order((
            legacy::tenant_integrations::tenant_id,
            legacy::tenant_integrations::id,
        ))
        .load(source)
        .await?;
    let runs: Vec<SyncRunRow> = legacy::integration_sync_runs::table
        .order(legacy::integration_sync_runs::requested_at)
        .load(source)
        .await?;
    let sources: std::collections::HashSet<(String, Uuid)> = integrations
        .iter()
        .map(|row| (row.tenant_id.clone(), row.id))
        .collect();
    let mut report = target
        .transaction(async |conn| copy_into(conn, integrations, runs).await)
        .await?;
    if let Some(keyring) = keyring {
        for row in tenant_integrations::table
            .select(IntegrationRow::as_select())
            .load(target)
            .await?
        {
            if sources.contains(&(row.tenant_id.clone(), row.id))
                && open_credentials(keyring, &row).is_err()
            {
                report
                    .unreadable
                    .push(format!("{}/{}", row.tenant_id, row.id));
            }
        }
    }
    Ok(report)
}

async fn copy_into(
    conn: &mut AsyncPgConnection,
    integrations: Vec<IntegrationRow>,
    runs: Vec<SyncRunRow>,
) -> Result<Report, DieselError> {
    let mut report = Report {
        found: integrations.len(),
        ..Report::default()
    };
    // What is here already: when it last changed, and when it last synced.
    type Seen = (DateTime<Utc>, Option<DateTime<Utc>>);
    let here: HashMap<(String, Uuid), Seen> = tenant_integrations::table
        .select((
            tenant_integrations::tenant_id,
            tenant_integrations::id,
            tenant_integrations::updated_at,
            tenant_integrations::last_sync_at,
        ))
        .load::<(String, Uuid, DateTime<Utc>, Option<DateTime<Utc>>)>(conn)
        .await?
        .into_iter()
        .map(|(tenant, id, at, synced)| ((tenant, id), (at, synced)))
        .collect();
    for row in &integrations {
        match here.get(&(row.tenant_id.clone(), row.id)) {
            Some((at, _)) if *at >= row.updated_at => report.unchanged += 1,
            Some((_, synced_here)) => {
                // Edited in cdp-analytics after the last copy: its settings win, but a
                // sync that ran here since is not forgotten.
                let mut row = row.clone();
                row.last_sync_at = row.last_sync_at.max(*synced_here);
                diesel::update(
                    tenant_integrations::table
                        .filter(tenant_integrations::tenant_id.eq(&row.tenant_id))
                        .filter(tenant_integrations::id.eq(row.id)),
                )
                .set(&row)
                .execute(conn)
                .await?;
                report.updated += 1;
            }
            None => {
                // A savepoint: an account the tenant re-created here under another id
                // is reported, not fatal.
                let inserted = conn
                    .transaction(async |conn| {
                        diesel::insert_into(tenant_integrations::table)
                            .values(row)
                            .execute(conn)
                            .await
                    })
                    .await;
                match inserted {
                    Ok(_) => report.inserted += 1,
                    Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                        report
                            .conflicts
                            .push(format!("{}/{}", row.tenant_id, row.id));
                    }
                    Err(error) => return Err(error),
                }
            }
        }
    }
    let copied: std::collections::HashSet<(String, Uuid)> = tenant_integrations::table
        .select((tenant_integrations::tenant_id, tenant_integrations::id))
        .load::<(String, Uuid)>(conn)
        .await?
        .into_iter()
        .collect();
    for mut run in runs {
        if !copied.contains(&(run.tenant_id.clone(), run.integration_id)) {
            continue;
        }
        if matches!(run.status.as_str(), "queued" | "running") {
            // cdp-analytics no longer works runs: this service's worker takes it from
            // where it stopped (its phase and orders cursor).
            run.status = "queued".into();
            run.lease_until = None;
        }
        // Without a conflict target: an existing run (same id) and a second active run
        // of one integration are both left as they are.
        report.runs_inserted += diesel::insert_into(integration_sync_runs::table)
            .values(&run)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    Ok(report)
}

/// `ingestion migrate-integrations`: connects to the source named by
/// [`SOURCE_URL_VAR`] and to this service's database as configured, copies, and logs
/// the report. Fails (non-zero exit) when a copied credential does not open with the
/// configured keys or an integration could not be copied, so a deployment notices
/// before it drops the old tables.
pub async fn run(config: &crate::config::Config) -> anyhow::Result<Report> {
    // The URL may carry a password: it is never logged.
    let source_url = std::env::var(SOURCE_URL_VAR).map_err(|_| {
        anyhow::anyhow!(
            "set {SOURCE_URL_VAR} to a database URL that can read the cdp_analytics schema"
        )
    })?;
    run_from(&source_url, config).await
}

/// [`run`] with the source URL given (tests).
pub async fn run_from(source_url: &str, config: &crate::config::Config) -> anyhow::Result<Report> {
    let mut source = AsyncPgConnection::establish(source_url).await?;
    let pool = mkt_db::connect(&config.service.database, crate::SPEC.schema)?;
    let mut target = pool.get().await?;
    let keyring = super::keyring_from(&config.integrations)?;
    if keyring.is_none() {
        tracing::warn!(
            "MKT_INTEGRATIONS__ENCRYPTION_KEY is not set: copied credentials are not checked"
        );
    }
    let report = copy(&mut source, &mut target, keyring.as_ref()).await?;
    tracing::info!(?report, "tenant integrations copied from cdp_analytics");
    anyhow::ensure!(
        report.conflicts.is_empty() && report.unreadable.is_empty(),
        "copied, but {} integration(s) conflict and {} credential(s) do not open: {report:?}",
        report.conflicts.len(),
        report.unreadable.len()
    );
    Ok(report)
}
