//! Order use cases.

use futures_util::future::BoxFuture;
use mkt_auth::TenantId;
use mkt_runtime::Infra;
use uuid::Uuid;

use super::{Idempotency, Reply, execute};
use crate::domain::order::{OrderStatus, ValidOrder, may_become};
use crate::error::ApiError;
use crate::events::publish;
use crate::store::{customers, orders};
use crate::views::{OrderData, envelope};

/// Records an order within the caller's transaction; the customer must exist.
pub async fn place_in(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: &str,
    order: &ValidOrder,
) -> Result<OrderData, ApiError> {
    let customer = customers::find_by_ref(conn, tenant, &order.customer)
        .await?
        .ok_or_else(|| ApiError::CustomerNotFound(order.customer.to_string()))?;
    let (row, items) = orders::insert(conn, tenant, customer.id, order).await?;
    publish::order_placed(conn, &row, &items).await?;
    Ok(OrderData::from_rows(row, items))
}

/// `POST /orders`: 201 with seed 000's envelope.
pub async fn place(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    order: ValidOrder,
) -> Result<Reply, ApiError> {
    let tenant_id = tenant.as_str().to_owned();
    execute(
        infra,
        tenant,
        idempotency,
        Box::new(move |conn| {
            Box::pin(async move {
                let data = place_in(conn, &tenant_id, &order).await?;
                Ok(Reply::new(
                    201,
                    envelope("Order data ingested successfully.", data),
                ))
            })
        }),
    )
    .await
}

/// Places many; each item in its own savepoint.
pub async fn place_batch(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    items: Vec<Result<ValidOrder, ApiError>>,
) -> Result<Reply, ApiError> {
    super::run_batch(infra, tenant, idempotency, items, place_item).await
}

fn place_item<'c>(
    conn: &'c mut diesel_async::AsyncPgConnection,
    tenant: &'c str,
    order: ValidOrder,
) -> BoxFuture<'c, Result<(u16, Uuid), ApiError>> {
    Box::pin(async move { Ok((201, place_in(conn, tenant, &order).await?.id)) })
}

/// One order.
pub async fn find(infra: &Infra, tenant: &TenantId, id: Uuid) -> Result<OrderData, ApiError> {
    let mut conn = infra.pool.get().await?;
    let (order, items) = orders::find(&mut conn, tenant.as_str(), id, false)
        .await?
        .ok_or_else(|| ApiError::OrderNotFound(id.to_string()))?;
    Ok(OrderData::from_rows(order, items))
}

/// A page of orders with their items.
pub async fn list(
    infra: &Infra,
    tenant: &TenantId,
    customer: Option<Uuid>,
    status: Option<OrderStatus>,
    page: i64,
    limit: i64,
) -> Result<(Vec<OrderData>, i64), ApiError> {
    let mut conn = infra.pool.get().await?;
    let (rows, total) = orders::list(
        &mut conn,
        tenant.as_str(),
        customer,
        status,
        limit,
        (page - 1) * limit,
    )
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut items = orders::items_of(&mut conn, tenant.as_str(), &ids).await?;
    let data = rows
        .into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                items.drain(..).partition(|i| i.order_id == row.id);
            items = rest;
            OrderData::from_rows(row, mine)
        })
        .collect();
    Ok((data, total))
}

/// Changes the status along the lifecycle and emits `order.updated.v1`; the same
/// status again is a no-op.
pub async fn set_status(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    id: Uuid,
    status: OrderStatus,
) -> Result<Reply, ApiError> {
    let tenant_id = tenant.as_str().to_owned();
    execute(
        infra,
        tenant,
        idempotency,
        Box::new(move |conn| {
            Box::pin(async move {
                let (current, items) = orders::find(conn, &tenant_id, id, true)
                    .await?
                    .ok_or_else(|| ApiError::OrderNotFound(id.to_string()))?;
                let previous = OrderStatus::from_name(&current.status).ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("stored status {:?}", current.status))
                })?;
                if previous == status {
                    return Ok(Reply::new(
                        200,
                        envelope("Order unchanged.", OrderData::from_rows(current, items)),
                    ));
                }
                if !may_become(previous, status) {
                    return Err(ApiError::InvalidTransition {
                        from: previous.name().into(),
                        to: status.name().into(),
                    });
                }
                let updated = orders::set_status(conn, &current, status).await?;
                publish::order_updated(conn, &updated, &items, previous).await?;
                Ok(Reply::new(
                    200,
                    envelope("Order updated.", OrderData::from_rows(updated, items)),
                ))
            })
        }),
    )
    .await
}
