//! Queries on `segment_members`, the materialised membership of every segment.
//!
//! Concurrency: a whole-segment recomputation (segment edit, clock) holds an exclusive
//! advisory lock on the segment; a consumer re-evaluating a few customers holds shared
//! locks on the segments it looks at. So a recomputation never works from a snapshot
//! older than a consumer's committed change, and never deletes what a consumer just
//! added from fresher data.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{segment_members, segments};
use crate::domain::rules::sql::Predicate;

/// Whether a customer entered or left a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Now a member.
    Entered,
    /// No longer a member.
    Exited,
}

/// One membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// The segment.
    pub segment_id: Uuid,
    /// The customer.
    pub customer_id: Uuid,
    /// Which way.
    pub change: Change,
}

#[derive(QueryableByName)]
struct ChangeRow {
    /// `true` from the `entered` CTE, `false` from `exited`.
    #[diesel(sql_type = Bool)]
    entered: bool,
    #[diesel(sql_type = SqlUuid)]
    customer_id: Uuid,
}

/// Takes the segment's exclusive lock until the end of the transaction.
pub async fn lock_exclusive(conn: &mut AsyncPgConnection, segment: Uuid) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0)) IS NULL")
        .bind::<SqlUuid, _>(segment)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes shared locks on `segments` (in id order, so lockers never deadlock).
pub async fn lock_shared(conn: &mut AsyncPgConnection, segments: &[Uuid]) -> QueryResult<()> {
    let mut sorted = segments.to_vec();
    sorted.sort();
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended(id::text, 0)) IS NULL \
         FROM (SELECT id FROM unnest($1::uuid[]) AS l(id) ORDER BY id) AS ordered",
    )
    .bind::<Array<SqlUuid>, _>(sorted)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes a dynamic segment's members exactly the live customers `predicate` matches
/// (its parameters start at `$3`; `$1` is the tenant, `$2` the segment), in one
/// statement, and returns who entered and who left.
pub async fn rematerialise(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    segment: Uuid,
    predicate: &Predicate,
    at: DateTime<Utc>,
) -> QueryResult<Vec<MembershipChange>> {
    let sql = format!(
        "WITH matching AS MATERIALIZED ( \
             SELECT p.customer_id FROM customer_profiles p \
             LEFT JOIN customer_scores s USING (tenant_id, customer_id) \
             WHERE p.tenant_id = $1 AND p.erased_at IS NULL AND {predicate} \
         ), entered AS ( \
             INSERT INTO segment_members (tenant_id, segment_id, customer_id, entered_at) \
             SELECT $1, $2, customer_id, ${at} FROM matching \
             ON CONFLICT DO NOTHING RETURNING customer_id \
         ), exited AS ( \
             DELETE FROM segment_members m WHERE m.tenant_id = $1 AND m.segment_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM matching x WHERE x.customer_id = m.customer_id) \
             RETURNING customer_id \
         ) \
         SELECT TRUE AS entered, customer_id FROM entered \
         UNION ALL SELECT FALSE, customer_id FROM exited",
        predicate = predicate.sql,
        at = predicate.binds.len() + 3,
    );
    let query = diesel::sql_query(sql)
        .into_boxed()
        .bind::<Text, _>(tenant)
        .bind::<SqlUuid, _>(segment);
    let rows: Vec<ChangeRow> = super::segments::bind_predicate(query, predicate)
        .bind::<Timestamptz, _>(at)
        .load(conn)
        .await?;
    Ok(changes(segment, rows))
}

fn changes(segment: Uuid, rows: Vec<ChangeRow>) -> Vec<MembershipChange> {
    rows.into_iter()
        .map(|r| MembershipChange {
            segment_id: segment,
            customer_id: r.customer_id,
            change: if r.entered {
                Change::Entered
            } else {
                Change::Exited
            },
        })
        .collect()
}

/// Makes an explicit (static or imported) segment's members exactly those of `ids`
/// that are live customers of the tenant; returns who entered and who left.
pub async fn replace_explicit(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    segment: Uuid,
    ids: &[Uuid],
    at: DateTime<Utc>,
) -> QueryResult<Vec<MembershipChange>> {
    let rows: Vec<ChangeRow> = diesel::sql_query(
        "WITH wanted AS MATERIALIZED ( \
             SELECT p.customer_id FROM customer_profiles p \
             WHERE p.tenant_id = $1 AND p.erased_at IS NULL AND p.customer_id = ANY($3) \
         ), entered AS ( \
             INSERT INTO segment_members (tenant_id, segment_id, customer_id, entered_at) \
             SELECT $1, $2, customer_id, $4 FROM wanted ON CONFLICT DO NOTHING RETURNING customer_id \
         ), exited AS ( \
             DELETE FROM segment_members m WHERE m.tenant_id = $1 AND m.segment_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.customer_id = m.customer_id) \
             RETURNING customer_id \
         ) \
         SELECT TRUE AS entered, customer_id FROM entered \
         UNION ALL SELECT FALSE, customer_id FROM exited",
    )
    .bind::<Text, _>(tenant)
    .bind::<SqlUuid, _>(segment)
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Timestamptz, _>(at)
    .load(conn)
    .await?;
    Ok(changes(segment, rows))
}

/// Which of `segments` each of `customers` is currently a member of.
pub async fn of_customers(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customers: &[Uuid],
    segments: &[Uuid],
) -> QueryResult<Vec<(Uuid, Uuid)>> {
    segment_members::table
        .filter(segment_members::tenant_id.eq(tenant))
        .filter(segment_members::customer_id.eq_any(customers))
        .filter(segment_members::segment_id.eq_any(segments))
        .select((segment_members::segment_id, segment_members::customer_id))
        .load(conn)
        .await
}

/// Applies changes worked out elsewhere (the consumers' incremental path).
pub async fn apply(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    changes: &[MembershipChange],
    at: DateTime<Utc>,
) -> QueryResult<()> {
    for change in changes {
        let row = segment_members::table
            .filter(segment_members::tenant_id.eq(tenant))
            .filter(segment_members::segment_id.eq(change.segment_id))
            .filter(segment_members::customer_id.eq(change.customer_id));
        match change.change {
            Change::Entered => {
                diesel::insert_into(segment_members::table)
                    .values((
                        segment_members::tenant_id.eq(tenant),
                        segment_members::segment_id.eq(change.segment_id),
                        segment_members::customer_id.eq(change.customer_id),
                        segment_members::entered_at.eq(at),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
            }
            Change::Exited => {
                diesel::delete(row).execute(conn).await?;
            }
        }
    }
    Ok(())
}

/// Moves each segment's `cached_count` by the net of `changes` and stamps it.
pub async fn adjust_counts(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    changes: &[MembershipChange],
    at: DateTime<Utc>,
) -> QueryResult<()> {
    let mut deltas: HashMap<Uuid, i64> = HashMap::new();
    for change in changes {
        *deltas.entry(change.segment_id).or_default() += match change.change {
            Change::Entered => 1,
            Change::Exited => -1,
        };
    }
    for (segment, delta) in deltas {
        diesel::update(
            segments::table
                .filter(segments::tenant_id.eq(tenant))
                .filter(segments::id.eq(segment)),
        )
        .set((
            segments::cached_count.eq(segments::cached_count + delta),
            segments::count_cached_at.eq(at),
        ))
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// How many members a segment has now.
pub async fn count(conn: &mut AsyncPgConnection, tenant: &str, segment: Uuid) -> QueryResult<i64> {
    segment_members::table
        .filter(segment_members::tenant_id.eq(tenant))
        .filter(segment_members::segment_id.eq(segment))
        .count()
        .get_result(conn)
        .await
}

/// Removes a customer from every segment (erasure); returns the segments it left.
pub async fn remove_everywhere(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
) -> QueryResult<Vec<Uuid>> {
    diesel::delete(
        segment_members::table
            .filter(segment_members::tenant_id.eq(tenant))
            .filter(segment_members::customer_id.eq(customer)),
    )
    .returning(segment_members::segment_id)
    .get_results(conn)
    .await
}

/// Removes every member of a deleted segment.
pub async fn clear(conn: &mut AsyncPgConnection, tenant: &str, segment: Uuid) -> QueryResult<()> {
    diesel::delete(
        segment_members::table
            .filter(segment_members::tenant_id.eq(tenant))
            .filter(segment_members::segment_id.eq(segment)),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of a segment's members in customer-id order.
pub async fn page(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    segment: Uuid,
    limit: i64,
    offset: i64,
) -> QueryResult<Vec<Uuid>> {
    segment_members::table
        .filter(segment_members::tenant_id.eq(tenant))
        .filter(segment_members::segment_id.eq(segment))
        .order(segment_members::customer_id)
        .limit(limit)
        .offset(offset)
        .select(segment_members::customer_id)
        .load(conn)
        .await
}

/// The next `limit` members after `after` (keyset pagination for exports of any size).
pub async fn after(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    segment: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> QueryResult<Vec<Uuid>> {
    let mut query = segment_members::table
        .filter(segment_members::tenant_id.eq(tenant))
        .filter(segment_members::segment_id.eq(segment))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(segment_members::customer_id.gt(after));
    }
    query
        .order(segment_members::customer_id)
        .limit(limit)
        .select(segment_members::customer_id)
        .load(conn)
        .await
}

/// Counts members of every segment of a tenant at once (the v2 list's member_count).
pub async fn counts(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    segment: &[Uuid],
) -> QueryResult<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = segment_members::table
        .filter(segment_members::tenant_id.eq(tenant))
        .filter(segment_members::segment_id.eq_any(segment))
        .group_by(segment_members::segment_id)
        .select((segment_members::segment_id, diesel::dsl::count_star()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}
