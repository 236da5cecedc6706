//! Customer use cases.

use chrono::Utc;
use futures_util::future::BoxFuture;
use mkt_auth::TenantId;
use mkt_runtime::Infra;
use uuid::Uuid;

use super::{Idempotency, Reply, execute};
use crate::domain::CustomerRef;
use crate::domain::customer::{ValidCustomer, ValidPatch};
use crate::error::ApiError;
use crate::events::publish;
use crate::store::customers::{self, CustomerRow, ListFilter};
use crate::views::{CustomerData, envelope};

/// Upserts within the caller's transaction: the row, its event, and the reply.
pub async fn upsert_in(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: &str,
    customer: &ValidCustomer,
) -> Result<(CustomerRow, bool), ApiError> {
    let row = customers::upsert(conn, tenant, customer).await?;
    publish::customer_upserted(conn, &row).await?;
    let created = row.version == 1;
    Ok((row, created))
}

fn upsert_reply(row: CustomerRow, created: bool) -> Reply {
    Reply::new(
        if created { 201 } else { 200 },
        envelope("User data ingested successfully.", CustomerData::from(row)),
    )
}

/// Creates or updates by (tenant, email): 201 or 200 with seed 000's envelope.
pub async fn upsert(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    customer: ValidCustomer,
) -> Result<Reply, ApiError> {
    let tenant_id = tenant.as_str().to_owned();
    execute(
        infra,
        tenant,
        idempotency,
        Box::new(move |conn| {
            Box::pin(async move {
                let (row, created) = upsert_in(conn, &tenant_id, &customer).await?;
                Ok(upsert_reply(row, created))
            })
        }),
    )
    .await
}

/// Upserts many; each item in its own savepoint.
pub async fn upsert_batch(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    items: Vec<Result<ValidCustomer, ApiError>>,
) -> Result<Reply, ApiError> {
    super::run_batch(infra, tenant, idempotency, items, upsert_item).await
}

fn upsert_item<'c>(
    conn: &'c mut diesel_async::AsyncPgConnection,
    tenant: &'c str,
    customer: ValidCustomer,
) -> BoxFuture<'c, Result<(u16, Uuid), ApiError>> {
    Box::pin(async move {
        let (row, created) = upsert_in(conn, tenant, &customer).await?;
        Ok((if created { 201 } else { 200 }, row.id))
    })
}

/// One customer by id or external id.
pub async fn find(
    infra: &Infra,
    tenant: &TenantId,
    reference: &CustomerRef,
) -> Result<CustomerRow, ApiError> {
    let mut conn = infra.pool.get().await?;
    customers::find_by_ref(&mut conn, tenant.as_str(), reference)
        .await?
        .ok_or_else(|| ApiError::CustomerNotFound(reference.to_string()))
}

/// A filtered page.
pub async fn list(
    infra: &Infra,
    tenant: &TenantId,
    filter: &ListFilter,
    page: i64,
    limit: i64,
) -> Result<(Vec<CustomerRow>, i64), ApiError> {
    let mut conn = infra.pool.get().await?;
    Ok(customers::list(
        &mut conn,
        tenant.as_str(),
        filter,
        limit,
        (page - 1) * limit,
    )
    .await?)
}

/// Applies a PATCH and emits the new state.
pub async fn patch(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    reference: CustomerRef,
    patch: ValidPatch,
) -> Result<Reply, ApiError> {
    let tenant_id = tenant.as_str().to_owned();
    execute(
        infra,
        tenant,
        idempotency,
        Box::new(move |conn| {
            Box::pin(async move {
                let found = customers::find_by_ref(conn, &tenant_id, &reference)
                    .await?
                    .ok_or_else(|| ApiError::CustomerNotFound(reference.to_string()))?;
                let current = customers::lock(conn, &tenant_id, found.id)
                    .await?
                    .ok_or_else(|| ApiError::CustomerNotFound(reference.to_string()))?;
                let row = customers::apply_patch(conn, &current, &patch).await?;
                publish::customer_upserted(conn, &row).await?;
                Ok(Reply::new(
                    200,
                    envelope("Customer updated.", CustomerData::from(row)),
                ))
            })
        }),
    )
    .await
}

/// GDPR erasure: wipes the personal data here and tells every service to do the same.
pub async fn erase(
    infra: &Infra,
    tenant: &TenantId,
    reference: CustomerRef,
) -> Result<Uuid, ApiError> {
    let tenant_id = tenant.as_str().to_owned();
    let reply = execute(
        infra,
        tenant,
        None,
        Box::new(move |conn| {
            Box::pin(async move {
                let found = customers::find_by_ref(conn, &tenant_id, &reference)
                    .await?
                    .ok_or_else(|| ApiError::CustomerNotFound(reference.to_string()))?;
                customers::lock(conn, &tenant_id, found.id).await?;
                let at = Utc::now();
                customers::erase(conn, &tenant_id, found.id, at).await?;
                publish::customer_erased(conn, &tenant_id, found.id, at).await?;
                Ok(Reply::new(204, serde_json::json!({"id": found.id})))
            })
        }),
    )
    .await?;
    reply.body["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("erase reply without id")))
}
