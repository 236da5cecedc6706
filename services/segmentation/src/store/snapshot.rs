//! Loads the fast engine's index (`domain::engine::TenantIndex`) from PostgreSQL, and
//! reads the change feed that keeps it in step.
//!
//! **The watermark protocol.** Every write that changes what a rule can see about a
//! customer (profile, orders, scores, engagement, events, erasure) stamps the
//! customer's profile with `revision = pg_current_xact_id()` (migration
//! `2026-11-22-000005_revisions_and_members`; `customer_profiles::touch` does it for
//! writes that do not upsert the profile itself). A reader takes, in the same
//! REPEATABLE READ snapshot as the rows it reads, `xmin = pg_snapshot_xmin(snapshot)`:
//! every transaction below `xmin` had finished when the snapshot was taken, so its
//! changes are in what was read. Transactions at or above `xmin` may not be; the next
//! read therefore asks for `revision >= xmin`. A transaction that commits late (it
//! started before the snapshot, committed after) is still above the old `xmin` and
//! is caught, which a sequence number handed out at write time could not promise.
//! Some rows are read twice; upserts are idempotent, so that costs only time. A
//! transaction left open for long holds `xmin` back, and each read re-reads what
//! changed since it began.
//!
//! Both functions read page by page (10,000 customers, keyset on `customer_id`) inside
//! one read-only REPEATABLE READ transaction: memory stays bounded by a page, and
//! every page sees the same snapshot. Customers with `erased_at` set are removals.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

use super::schema::{customer_events, customer_profiles, customer_scores};
use crate::domain::engine::{BehaviourEvent, Change, CustomerRecord, Scores, TenantIndex};
use crate::domain::rules::evaluate::Customer;

/// Customers per page.
const PAGE: i64 = 10_000;

type ProfileRow = (
    Uuid,
    (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    (bool, bool, bool),
    Option<DateTime<Utc>>,
    Value,
    (i64, i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    Option<DateTime<Utc>>,
);

type ScoreRow = (
    Uuid,
    (
        Option<String>,
        Option<i32>,
        Option<i32>,
        Option<i32>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<f64>,
    ),
    (i64, i64, bool),
);

type EventRow = (Uuid, String, DateTime<Utc>, Value);

#[derive(QueryableByName)]
struct Watermark {
    #[diesel(sql_type = BigInt)]
    xmin: i64,
}

/// Which profiles a page reads.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// Every live customer (the initial load).
    Live,
    /// Customers changed at or after a watermark, erased ones included.
    ChangedSince(i64),
    /// These customers if live, with their events since the instant (none if `None`).
    Customers(&'a [Uuid], Option<DateTime<Utc>>),
}

/// The oldest transaction still running when this transaction's snapshot was taken.
async fn watermark(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    let row: Watermark =
        diesel::sql_query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin")
            .get_result(conn)
            .await?;
    Ok(row.xmin)
}

async fn profiles_page(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    scope: Scope<'_>,
    after: Option<Uuid>,
) -> QueryResult<Vec<ProfileRow>> {
    use customer_profiles::dsl as p;
    let mut query = p::customer_profiles
        .filter(p::tenant_id.eq(tenant))
        .order(p::customer_id.asc())
        .limit(PAGE)
        .select((
            p::customer_id,
            (
                p::name,
                p::email,
                p::phone,
                p::city,
                p::state,
                p::country,
                p::zip_code,
                p::loyalty_tier,
            ),
            (p::consent_email, p::consent_sms, p::consent_push),
            p::signed_up_at,
            p::attributes,
            (
                p::orders_count,
                p::total_spent,
                p::first_order_at,
                p::last_order_at,
            ),
            p::erased_at,
        ))
        .into_boxed();
    query = match scope {
        Scope::Live => query.filter(p::erased_at.is_null()),
        Scope::ChangedSince(since) => query.filter(p::revision.ge(since)),
        Scope::Customers(ids, _) => query
            .filter(p::erased_at.is_null())
            .filter(p::customer_id.eq_any(ids.to_vec())),
    };
    if let Some(after) = after {
        query = query.filter(p::customer_id.gt(after));
    }
    query.load(conn).await
}

/// Scores and events of `ids` (ascending, read under `scope`), each sorted by customer.
async fn details(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    ids: &[Uuid],
    scope: Scope<'_>,
) -> QueryResult<(Vec<ScoreRow>, Vec<EventRow>)> {
    let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    use customer_events::dsl as e;
    use customer_scores::dsl as s;
    // A whole page of the initial load is a key range (an index range scan); the
    // customers of a change are scattered, so they are listed.
    let mut scores = s::customer_scores
        .filter(s::tenant_id.eq(tenant))
        .order(s::customer_id.asc())
        .select((
            s::customer_id,
            (
                s::rfm_segment,
                s::recency_score,
                s::frequency_score,
                s::monetary_score,
                s::clv,
                s::clv_tier,
                s::churn_risk,
                s::churn_probability,
            ),
            (s::emails_opened, s::emails_clicked, s::unsubscribed),
        ))
        .into_boxed();
    let mut events = e::customer_events
        .filter(e::tenant_id.eq(tenant))
        .order(e::customer_id.asc())
        .select((e::customer_id, e::event_type, e::occurred_at, e::properties))
        .into_boxed();
    if matches!(scope, Scope::Live) {
        scores = scores.filter(s::customer_id.between(first, last));
        events = events.filter(e::customer_id.between(first, last));
    } else {
        scores = scores.filter(s::customer_id.eq_any(ids.to_vec()));
        events = events.filter(e::customer_id.eq_any(ids.to_vec()));
    }
    let scores: Vec<ScoreRow> = scores.load(conn).await?;
    let events: Vec<EventRow> = match scope {
        Scope::Customers(_, None) => Vec::new(),
        Scope::Customers(_, Some(since)) => {
            events.filter(e::occurred_at.ge(since)).load(conn).await?
        }
        Scope::Live | Scope::ChangedSince(_) => events.load(conn).await?,
    };
    Ok((scores, events))
}

fn record(row: ProfileRow) -> CustomerRecord {
    let (id, text, consent, signed_up_at, attributes, orders, _erased) = row;
    let (name, email, phone, city, state, country, zip_code, loyalty_tier) = text;
    let (orders_count, total_spent, first_order_at, last_order_at) = orders;
    CustomerRecord {
        id,
        name,
        email,
        phone,
        city,
        state,
        country,
        zip_code,
        loyalty_tier,
        signed_up_at,
        consent_email: consent.0,
        consent_sms: consent.1,
        consent_push: consent.2,
        orders_count,
        total_spent,
        first_order_at,
        last_order_at,
        scores: None,
        attributes: match attributes {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
        events: Vec::new(),
    }
}

fn scores(row: ScoreRow) -> Scores {
    let (_, analytics, engagement) = row;
    let (
        rfm_segment,
        recency_score,
        frequency_score,
        monetary_score,
        clv,
        clv_tier,
        churn_risk,
        churn_probability,
    ) = analytics;
    Scores {
        rfm_segment,
        recency_score,
        frequency_score,
        monetary_score,
        clv,
        clv_tier,
        churn_risk,
        churn_probability,
        emails_opened: engagement.0,
        emails_clicked: engagement.1,
        unsubscribed: engagement.2,
    }
}

/// Turns a page (profiles, scores and events, each sorted by customer) into changes:
/// a merge join on `customer_id`.
fn merge(
    profiles: Vec<ProfileRow>,
    scores_rows: Vec<ScoreRow>,
    events: Vec<EventRow>,
) -> Vec<Change> {
    let mut scores_rows = scores_rows.into_iter().peekable();
    let mut events = events.into_iter().peekable();
    let mut changes = Vec::with_capacity(profiles.len());
    for row in profiles {
        let id = row.0;
        let erased = row.6.is_some();
        let mut customer = record(row);
        while let Some(score) = scores_rows.next_if(|s| s.0 <= id) {
            if score.0 == id {
                customer.scores = Some(scores(score));
            }
        }
        while let Some((customer_id, event_type, occurred_at, properties)) =
            events.next_if(|e| e.0 <= id)
        {
            if customer_id == id {
                customer.events.push(BehaviourEvent {
                    event_type,
                    occurred_at,
                    properties,
                });
            }
        }
        changes.push(if erased {
            Change::Remove(id)
        } else {
            Change::Upsert(customer)
        });
    }
    changes
}

/// Reads `scope` page by page inside the caller's transaction; `each` gets every page.
async fn pages(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    scope: Scope<'_>,
    mut each: impl FnMut(Vec<Change>) + Send,
) -> QueryResult<()> {
    let mut after = None;
    loop {
        let profiles = profiles_page(conn, tenant, scope, after).await?;
        let Some(last) = profiles.last().map(|p| p.0) else {
            return Ok(());
        };
        let full = profiles.len() as i64 == PAGE;
        // Erased customers need no details.
        let ids: Vec<Uuid> = profiles
            .iter()
            .filter(|p| p.6.is_none())
            .map(|p| p.0)
            .collect();
        let (scores, events) = details(conn, tenant, &ids, scope).await?;
        each(merge(profiles, scores, events));
        if !full {
            return Ok(());
        }
        after = Some(last);
    }
}

/// Builds a tenant's index from PostgreSQL. Returns it with the watermark to pass to
/// the first [`load_changed`]. Customers are added in id order, which makes the
/// index's [`Members::sample`](crate::domain::engine::Members::sample) cheap.
///
/// Takes seconds for millions of customers: a replica serves previews through the SQL
/// path until it is done.
pub async fn load_tenant(
    conn: &mut AsyncPgConnection,
    tenant: &str,
) -> QueryResult<(TenantIndex, i64)> {
    let tenant = tenant.to_owned();
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async move |conn| {
            let xmin = watermark(conn).await?;
            let mut index = TenantIndex::default();
            pages(conn, &tenant, Scope::Live, |changes| {
                for change in changes {
                    index.apply(change);
                }
            })
            .await?;
            index.optimize();
            Ok((index, xmin))
        })
        .await
}

/// What changed for `tenant` since the watermark `since` (from [`load_tenant`] or the
/// previous call), in customer id order, and the next watermark. Each change is the
/// customer's whole current state, or its removal; apply them with
/// [`TenantIndex::apply`].
pub async fn load_changed(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    since: i64,
) -> QueryResult<(Vec<Change>, i64)> {
    let tenant = tenant.to_owned();
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(async move |conn| {
            let xmin = watermark(conn).await?;
            let mut all = Vec::new();
            pages(conn, &tenant, Scope::ChangedSince(since), |changes| {
                all.extend(changes);
            })
            .await?;
            Ok((all, xmin))
        })
        .await
}

/// The live customers among `ids`, in the reference evaluator's shape, each with its
/// profile, order aggregates, scores, engagement and, when `events_since` is given, its
/// behaviour events since then (the membership path re-evaluates the customers an event
/// touched with these). Unknown or erased customers are left out: they match no
/// segment. Runs in the caller's transaction, so it sees the caller's own writes.
pub async fn load_customers(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    ids: &[Uuid],
    events_since: Option<DateTime<Utc>>,
) -> QueryResult<HashMap<Uuid, Customer>> {
    let mut customers = HashMap::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(customers);
    }
    pages(
        conn,
        tenant,
        Scope::Customers(ids, events_since),
        |changes| {
            for change in changes {
                if let Change::Upsert(record) = change {
                    customers.insert(record.id, record.to_reference());
                }
            }
        },
    )
    .await?;
    Ok(customers)
}
