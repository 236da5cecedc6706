//! Live membership: keeping `segment_members` true as data arrives and time passes, and
//! publishing each change as `segment.membership.changed.v1`.
//!
//! Three paths write membership, each in one transaction with its outbox rows:
//! - [`customers_changed`]: a consumer touched some customers; each dynamic segment of
//!   the tenant is re-evaluated for just them with the reference evaluator.
//! - [`recompute`]: a whole segment at once in SQL (segment written, or the clock).
//! - [`clock_tick`]: the clock recomputes every time-relative dynamic segment.
//!
//! Creating a segment fills its membership without events (nothing "changed" for a
//! consumer that never saw the segment); editing its rules publishes who entered and
//! left with reason `segment_changed`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use mkt_runtime::Infra;
use uuid::Uuid;

use crate::domain::rules::{Group, evaluate, sql};
use crate::domain::segment::Kind;
use crate::events::publish::{self, Reason};
use crate::store::members::{self, Change, MembershipChange};
use crate::store::saved::SegmentRow;
use crate::store::{customer_profiles, saved, snapshot};

/// How often the clock re-evaluates time-relative segments.
pub const CLOCK_INTERVAL: Duration = Duration::from_secs(60);

/// A dynamic segment's stored tree (`None` if the stored JSON is not a valid tree,
/// which only a hand-edited row could produce; such a segment is skipped and logged).
fn tree(row: &SegmentRow) -> Option<Group> {
    let parsed = row
        .rules
        .clone()
        .map(serde_json::from_value::<Group>)
        .transpose();
    match parsed {
        Ok(tree) => tree,
        Err(error) => {
            tracing::error!(segment = %row.id, %error, "stored rules are not a canonical tree");
            None
        }
    }
}

/// Re-evaluates every dynamic segment of `tenant` for `customers` (who just changed),
/// applies the differences and publishes them. Runs inside the consumer's transaction.
pub async fn customers_changed(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customers: &[Uuid],
    now: DateTime<Utc>,
) -> diesel::QueryResult<Vec<MembershipChange>> {
    customer_profiles::touch(conn, tenant, customers).await?;
    let segments: Vec<(SegmentRow, Group)> = saved::dynamic(conn, tenant)
        .await?
        .into_iter()
        .filter_map(|row| tree(&row).map(|t| (row, t)))
        .collect();
    if segments.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = segments.iter().map(|(row, _)| row.id).collect();
    members::lock_shared(conn, &ids).await?;
    let window = segments
        .iter()
        .filter_map(|(_, tree)| tree.event_window_days())
        .max();
    let since = window.map(|days| now - chrono::Duration::days(days));
    let records = snapshot::load_customers(conn, tenant, customers, since).await?;
    let current: HashSet<(Uuid, Uuid)> = members::of_customers(conn, tenant, customers, &ids)
        .await?
        .into_iter()
        .collect();
    let mut changes = Vec::new();
    for (row, tree) in &segments {
        for customer in customers {
            let is = records
                .get(customer)
                .is_some_and(|record| evaluate::evaluate(tree, record, now));
            let was = current.contains(&(row.id, *customer));
            if is != was {
                changes.push(MembershipChange {
                    segment_id: row.id,
                    customer_id: *customer,
                    change: if is { Change::Entered } else { Change::Exited },
                });
            }
        }
    }
    let names = segments
        .iter()
        .map(|(row, _)| (row.id, row.name.clone()))
        .collect();
    record(conn, tenant, &changes, &names, Reason::CustomerChanged, now).await?;
    Ok(changes)
}

/// An erased customer leaves every segment, explicit ones included.
pub async fn customer_erased(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    customer_profiles::touch(conn, tenant, &[customer]).await?;
    let left = members::remove_everywhere(conn, tenant, customer).await?;
    saved::forget_member(conn, tenant, customer).await?;
    let changes: Vec<MembershipChange> = left
        .into_iter()
        .map(|segment_id| MembershipChange {
            segment_id,
            customer_id: customer,
            change: Change::Exited,
        })
        .collect();
    let names = names_of(conn, tenant, &changes).await?;
    members::adjust_counts(conn, tenant, &changes, now).await?;
    publish::membership_changed(conn, tenant, &changes, &names, Reason::CustomerChanged, now).await
}

async fn names_of(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    changes: &[MembershipChange],
) -> diesel::QueryResult<HashMap<Uuid, String>> {
    let mut names = HashMap::new();
    for change in changes {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(change.segment_id)
            && let Some(row) = saved::find(conn, tenant, change.segment_id).await?
        {
            slot.insert(row.name);
        }
    }
    Ok(names)
}

/// Applies changes that were worked out customer by customer, keeps the counts and
/// publishes them.
async fn record(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    changes: &[MembershipChange],
    names: &HashMap<Uuid, String>,
    reason: Reason,
    now: DateTime<Utc>,
) -> diesel::QueryResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    members::apply(conn, tenant, changes, now).await?;
    members::adjust_counts(conn, tenant, changes, now).await?;
    publish::membership_changed(conn, tenant, changes, names, reason, now).await
}

/// Recomputes a whole segment's membership as of `now` (inside the caller's
/// transaction, under the segment's exclusive lock) and stores its new count. Publishes
/// the changes with `reason`, or nothing when `reason` is `None` (a new segment).
pub async fn recompute(
    conn: &mut AsyncPgConnection,
    row: &SegmentRow,
    reason: Option<Reason>,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Vec<MembershipChange>> {
    members::lock_exclusive(conn, row.id).await?;
    let changes = if row.kind == Kind::Dynamic {
        let Some(tree) = tree(row) else {
            return Ok(Vec::new());
        };
        let predicate = sql::compile(&tree, now, 3);
        members::rematerialise(conn, &row.tenant_id, row.id, &predicate, now).await?
    } else {
        members::replace_explicit(conn, &row.tenant_id, row.id, &row.member_ids, now).await?
    };
    let count = members::count(conn, &row.tenant_id, row.id).await?;
    saved::set_count(conn, &row.tenant_id, row.id, count, now).await?;
    if let Some(reason) = reason {
        let names = HashMap::from([(row.id, row.name.clone())]);
        publish::membership_changed(conn, &row.tenant_id, &changes, &names, reason, now).await?;
    }
    Ok(changes)
}

/// One pass of the clock: every time-relative dynamic segment of every tenant is
/// recomputed as of `now`, each in its own transaction. Returns how many members moved.
pub async fn clock_tick(infra: &Infra, now: DateTime<Utc>) -> anyhow::Result<usize> {
    let mut conn = infra.pool.get().await?;
    let due: Vec<SegmentRow> = saved::all_dynamic(&mut conn)
        .await?
        .into_iter()
        .filter(|row| tree(row).is_some_and(|t| t.is_time_relative()))
        .collect();
    let mut moved = 0;
    for row in due {
        let changes = conn
            .transaction(async |conn| recompute(conn, &row, Some(Reason::Clock), now).await)
            .await?;
        moved += changes.len();
    }
    if moved > 0 {
        infra.relay.wake();
    }
    Ok(moved)
}

/// The clock worker: a [`clock_tick`] every [`CLOCK_INTERVAL`]. Every replica runs it;
/// the segment locks make concurrent passes safe, and a second pass finds nothing to do.
pub async fn run_clock(infra: Infra) {
    let mut ticker = tokio::time::interval(CLOCK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match clock_tick(&infra, Utc::now()).await {
            Ok(0) => {}
            Ok(moved) => tracing::info!(moved, "clock re-evaluated time-relative segments"),
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "clock pass failed"),
        }
    }
}
