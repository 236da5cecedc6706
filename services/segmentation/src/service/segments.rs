//! Segment use cases: each write is one transaction that stores the segment, its
//! materialised membership and count, and (on edits) the membership events.

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::StreamExt;
use mkt_runtime::Infra;
use uuid::Uuid;

use crate::domain::segment::{Audience, Draft, ImportKey, Kind, name};
use crate::error::ApiError;
use crate::events::publish::Reason;
use crate::service::membership;
use crate::store::saved::{self, SegmentRow};
use crate::store::{customer_records, members};

fn row(tenant: &str, draft: Draft, existing: Option<&SegmentRow>) -> Result<SegmentRow, ApiError> {
    let now = Utc::now();
    let (rules, member_ids) = match draft.audience {
        Audience::Rules(tree) => (
            Some(serde_json::to_value(&tree).map_err(|e| ApiError::Internal(e.into()))?),
            Vec::new(),
        ),
        Audience::Members(ids) => (None, ids),
    };
    Ok(SegmentRow {
        tenant_id: tenant.to_owned(),
        id: existing.map_or_else(Uuid::now_v7, |e| e.id),
        name: draft.name,
        description: draft.description,
        kind: draft.kind,
        rules,
        member_ids,
        is_active: draft.is_active,
        cached_count: existing.map_or(0, |e| e.cached_count),
        count_cached_at: existing.and_then(|e| e.count_cached_at),
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
        imported_rows: existing.and_then(|e| e.imported_rows),
        unmatched_rows: existing.and_then(|e| e.unmatched_rows),
    })
}

async fn reread(conn: &mut AsyncPgConnection, row: &SegmentRow) -> Result<SegmentRow, ApiError> {
    saved::find(conn, &row.tenant_id, row.id)
        .await?
        .ok_or_else(|| ApiError::SegmentNotFound(row.id.to_string()))
}

/// Creates a segment and fills its membership (no events: nobody knew it before).
pub async fn create(infra: &Infra, tenant: &str, draft: Draft) -> Result<SegmentRow, ApiError> {
    let row = row(tenant, draft, None)?;
    let mut conn = infra.pool.get().await?;
    conn.transaction(async |conn| {
        saved::insert(conn, &row).await?;
        membership::recompute(conn, &row, None, Utc::now()).await?;
        reread(conn, &row).await
    })
    .await
}

/// Replaces a segment; members who entered or left because of the edit are published.
pub async fn replace(
    infra: &Infra,
    tenant: &str,
    id: Uuid,
    parse: impl FnOnce(&SegmentRow) -> Result<Draft, ApiError> + Send,
) -> Result<SegmentRow, ApiError> {
    let mut conn = infra.pool.get().await?;
    let outcome = conn
        .transaction(async |conn| {
            let existing = saved::find(conn, tenant, id)
                .await?
                .ok_or_else(|| ApiError::SegmentNotFound(id.to_string()))?;
            let row = row(tenant, parse(&existing)?, Some(&existing))?;
            saved::update(conn, &row).await?;
            let changes =
                membership::recompute(conn, &row, Some(Reason::SegmentChanged), Utc::now()).await?;
            Ok::<_, ApiError>((reread(conn, &row).await?, !changes.is_empty()))
        })
        .await?;
    if outcome.1 {
        infra.relay.wake();
    }
    Ok(outcome.0)
}

/// Deletes a segment and its membership.
pub async fn delete(infra: &Infra, tenant: &str, id: Uuid) -> Result<(), ApiError> {
    let mut conn = infra.pool.get().await?;
    conn.transaction(async |conn| {
        members::lock_exclusive(conn, id).await?;
        if !saved::delete(conn, tenant, id).await? {
            return Err(ApiError::SegmentNotFound(id.to_string()));
        }
        members::clear(conn, tenant, id).await?;
        Ok(())
    })
    .await
}

/// Most rows an uploaded CSV may have.
pub const MAX_IMPORT_ROWS: usize = 1_000_000;
/// Largest uploaded CSV (a million rows of long emails fit); a larger one is a 413.
pub const MAX_IMPORT_BYTES: u64 = 128 * 1024 * 1024;

/// Creates an imported segment from a CSV whose header names an `email`,
/// `external_id` or `customer_id` column. Rows matching no live customer are counted
/// in `unmatched_rows`, not refused: a store's list is usually a little stale.
pub async fn import(
    infra: &Infra,
    tenant: &str,
    name_raw: Option<String>,
    description: Option<String>,
    csv: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin + Send,
) -> Result<SegmentRow, ApiError> {
    let name =
        name(name_raw).map_err(|e| ApiError::InvalidSegment(serde_json::json!({"name": e})))?;
    let (key, values) = read_keys(csv).await?;
    let mut conn = infra.pool.get().await?;
    let mut ids = Vec::with_capacity(values.len());
    for chunk in values.chunks(10_000) {
        ids.extend(customer_records::resolve(&mut conn, tenant, key, chunk).await?);
    }
    ids.sort();
    ids.dedup();
    let rows = values.len() as i64;
    let mut row = row(
        tenant,
        Draft {
            name,
            description,
            kind: Kind::Imported,
            audience: Audience::Members(ids),
            is_active: true,
        },
        None,
    )?;
    row.imported_rows = Some(rows);
    conn.transaction(async |conn| {
        saved::insert(conn, &row).await?;
        membership::recompute(conn, &row, None, Utc::now()).await?;
        let mut stored = reread(conn, &row).await?;
        // Every data row that did not land as a member: unknown, erased or repeated.
        stored.unmatched_rows = Some(rows - stored.cached_count);
        saved::update(conn, &stored).await?;
        Ok(stored)
    })
    .await
}

/// The key column and its non-empty values.
/// The upload is read as it arrives (never buffered whole); a record over
/// `mkt_csv::MAX_RECORD_BYTES` is refused.
async fn read_keys(
    csv: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin + Send,
) -> Result<(ImportKey, Vec<String>), ApiError> {
    let bad = |why: String| ApiError::InvalidSegment(serde_json::json!({"file": [why]}));
    let mut reader = csv_async::AsyncReaderBuilder::new()
        .flexible(true)
        .create_reader(tokio_util::io::StreamReader::new(csv));
    let header = reader
        .headers()
        .await
        .map_err(|e| bad(format!("unreadable CSV header: {e}")))?
        .clone();
    let (key, column) = ImportKey::from_header(header.iter()).ok_or_else(|| {
        bad("the header must name an email, external_id or customer_id column".into())
    })?;
    let mut values = Vec::new();
    let mut records = reader.records();
    while let Some(record) = records.next().await {
        let record = record.map_err(|e| bad(format!("unreadable CSV: {e}")))?;
        if record.as_slice().len() > mkt_csv::MAX_RECORD_BYTES {
            let row = record.position().map_or(0, |p| p.line());
            return Err(bad(format!(
                "line {row} is longer than {} bytes",
                mkt_csv::MAX_RECORD_BYTES
            )));
        }
        let Some(value) = record.get(column).map(str::trim).filter(|v| !v.is_empty()) else {
            continue;
        };
        if values.len() == MAX_IMPORT_ROWS {
            return Err(bad(format!("at most {MAX_IMPORT_ROWS} rows")));
        }
        values.push(match key {
            ImportKey::Email => value.to_lowercase(),
            _ => value.to_owned(),
        });
    }
    if values.is_empty() {
        return Err(bad("the file has no data rows".into()));
    }
    Ok((key, values))
}
