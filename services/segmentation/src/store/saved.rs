//! Queries on `segments` (saved segments).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::segments;
use crate::domain::segment::Kind;

/// A saved segment.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = segments)]
pub struct SegmentRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// UUIDv7 given by the service when the segment is created; never changes.
    pub id: Uuid,
    /// Display name, trimmed, 1 to 200 characters; not unique within the tenant.
    pub name: String,
    /// Free text for people; `None` when none was given.
    pub description: Option<String>,
    /// What defines the members; stored as its text name (`Kind::as_str`).
    #[diesel(serialize_as = String, deserialize_as = String)]
    pub kind: Kind,
    /// Canonical rule tree (dynamic).
    pub rules: Option<serde_json::Value>,
    /// Explicit members (static, imported).
    pub member_ids: Vec<Uuid>,
    /// Whether campaigns may use it.
    pub is_active: bool,
    /// Audience size when last computed.
    pub cached_count: i64,
    /// When it was computed.
    pub count_cached_at: Option<DateTime<Utc>>,
    /// When the segment was first saved (service clock); kept across updates.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Imported segments: data rows in the uploaded CSV.
    pub imported_rows: Option<i64>,
    /// Imported segments: rows that matched no live customer.
    pub unmatched_rows: Option<i64>,
}

// `segments.kind` is text in PostgreSQL; these two conversions are the only place the
// service meets the stored name, so everything above the store compares `Kind`s.
impl From<Kind> for String {
    fn from(kind: Kind) -> String {
        kind.as_str().to_owned()
    }
}

impl TryFrom<String> for Kind {
    type Error = String;

    fn try_from(stored: String) -> Result<Kind, String> {
        Kind::parse(&stored)
            .ok_or_else(|| format!("unknown segment kind {stored:?} in segments.kind"))
    }
}

/// Stores a new segment.
pub async fn insert(conn: &mut AsyncPgConnection, row: &SegmentRow) -> QueryResult<()> {
    diesel::insert_into(segments::table)
        // By value: `kind`'s `serialize_as` conversion consumes the row (one small copy
        // per segment write).
        .values(row.clone())
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces a segment's fields.
pub async fn update(conn: &mut AsyncPgConnection, row: &SegmentRow) -> QueryResult<()> {
    diesel::update(
        segments::table
            .filter(segments::tenant_id.eq(&row.tenant_id))
            .filter(segments::id.eq(row.id)),
    )
    .set(row.clone())
    .execute(conn)
    .await?;
    Ok(())
}

/// One segment of the tenant.
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
) -> QueryResult<Option<SegmentRow>> {
    segments::table
        .filter(segments::tenant_id.eq(tenant))
        .filter(segments::id.eq(id))
        .select(SegmentRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A page of the tenant's segments, newest first, optionally of one kind, and the total.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    kind: Option<&str>,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<SegmentRow>, i64)> {
    let build = || {
        let mut query = segments::table
            .filter(segments::tenant_id.eq(tenant))
            .into_boxed();
        if let Some(kind) = kind {
            query = query.filter(segments::kind.eq(kind.to_owned()));
        }
        query
    };
    let total = build().count().get_result(conn).await?;
    let rows = build()
        .order((segments::created_at.desc(), segments::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(SegmentRow::as_select())
        .load(conn)
        .await?;
    Ok((rows, total))
}

/// Deletes a segment; whether it existed.
pub async fn delete(conn: &mut AsyncPgConnection, tenant: &str, id: Uuid) -> QueryResult<bool> {
    let n = diesel::delete(
        segments::table
            .filter(segments::tenant_id.eq(tenant))
            .filter(segments::id.eq(id)),
    )
    .execute(conn)
    .await?;
    Ok(n > 0)
}

/// How many of `ids` are live (not erased) customers of the tenant.
pub async fn count_known(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    ids: &[Uuid],
) -> QueryResult<i64> {
    use super::schema::customer_profiles as p;
    p::table
        .filter(p::tenant_id.eq(tenant))
        .filter(p::customer_id.eq_any(ids))
        .filter(p::erased_at.is_null())
        .count()
        .get_result(conn)
        .await
}

/// The tenant's dynamic segments (the consumers re-evaluate touched customers against them).
pub async fn dynamic(conn: &mut AsyncPgConnection, tenant: &str) -> QueryResult<Vec<SegmentRow>> {
    segments::table
        .filter(segments::tenant_id.eq(tenant))
        .filter(segments::kind.eq(Kind::Dynamic.as_str()))
        .select(SegmentRow::as_select())
        .load(conn)
        .await
}

/// Every tenant's dynamic segments (the clock picks the time-relative ones).
pub async fn all_dynamic(conn: &mut AsyncPgConnection) -> QueryResult<Vec<SegmentRow>> {
    segments::table
        .filter(segments::kind.eq(Kind::Dynamic.as_str()))
        .select(SegmentRow::as_select())
        .load(conn)
        .await
}

/// Records a freshly computed audience size.
pub async fn set_count(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
    count: i64,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(
        segments::table
            .filter(segments::tenant_id.eq(tenant))
            .filter(segments::id.eq(id)),
    )
    .set((
        segments::cached_count.eq(count),
        segments::count_cached_at.eq(at),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Drops an erased customer from every explicit member list of the tenant.
pub async fn forget_member(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE segments SET member_ids = array_remove(member_ids, $2) \
         WHERE tenant_id = $1 AND $2 = ANY(member_ids)",
    )
    .bind::<diesel::sql_types::Text, _>(tenant)
    .bind::<diesel::sql_types::Uuid, _>(customer)
    .execute(conn)
    .await?;
    Ok(())
}
