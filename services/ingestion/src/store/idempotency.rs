//! Queries on `idempotency_keys`.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::idempotency_keys;

/// A stored first response.
#[derive(Debug, Clone, Queryable)]
pub struct StoredResponse {
    /// Fingerprint of the first request.
    pub request_hash: String,
    /// Its status.
    pub status_code: i16,
    /// Its body.
    pub response_body: serde_json::Value,
}

/// The stored response for (tenant, key), locked until the caller's transaction ends.
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    key: &str,
) -> QueryResult<Option<StoredResponse>> {
    idempotency_keys::table
        .filter(idempotency_keys::tenant_id.eq(tenant))
        .filter(idempotency_keys::key.eq(key))
        .select((
            idempotency_keys::request_hash,
            idempotency_keys::status_code,
            idempotency_keys::response_body,
        ))
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Records the first response; fails with a unique violation if a concurrent request
/// with the same key committed first (the caller then replays that one).
pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    key: &str,
    request_hash: &str,
    status: u16,
    body: &serde_json::Value,
) -> QueryResult<()> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::tenant_id.eq(tenant),
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(request_hash),
            idempotency_keys::status_code.eq(status as i16),
            idempotency_keys::response_body.eq(body),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
