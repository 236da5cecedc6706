//! Behaviour event use cases.

use futures_util::future::BoxFuture;
use mkt_auth::TenantId;
use mkt_runtime::Infra;

use super::{Idempotency, Reply, execute};
use crate::domain::event::ValidEvent;
use crate::error::ApiError;
use crate::events::publish;
use crate::store::{customers, events};
use crate::views::{EventData, envelope};

/// Records one event within the caller's transaction; the customer must exist.
pub async fn track_in(
    conn: &mut diesel_async::AsyncPgConnection,
    tenant: &str,
    event: &ValidEvent,
) -> Result<EventData, ApiError> {
    let customer = customers::find_by_ref(conn, tenant, &event.customer)
        .await?
        .ok_or_else(|| ApiError::CustomerNotFound(event.customer.to_string()))?;
    let row = events::insert(conn, tenant, customer.id, event).await?;
    publish::behaviour_tracked(conn, &row).await?;
    Ok(EventData::from(row))
}

/// `POST /events`: 201.
pub async fn track(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    event: ValidEvent,
) -> Result<Reply, ApiError> {
    let tenant_id = tenant.as_str().to_owned();
    execute(
        infra,
        tenant,
        idempotency,
        Box::new(move |conn| {
            Box::pin(async move {
                let data = track_in(conn, &tenant_id, &event).await?;
                Ok(Reply::new(
                    201,
                    envelope("Event tracked successfully", data),
                ))
            })
        }),
    )
    .await
}

/// Tracks many; each item in its own savepoint.
pub async fn track_batch(
    infra: &Infra,
    tenant: &TenantId,
    idempotency: Option<&Idempotency>,
    items: Vec<Result<ValidEvent, ApiError>>,
) -> Result<Reply, ApiError> {
    super::run_batch(infra, tenant, idempotency, items, track_item).await
}

fn track_item<'c>(
    conn: &'c mut diesel_async::AsyncPgConnection,
    tenant: &'c str,
    event: ValidEvent,
) -> BoxFuture<'c, Result<(u16, uuid::Uuid), ApiError>> {
    Box::pin(async move { Ok((201, track_in(conn, tenant, &event).await?.id)) })
}
