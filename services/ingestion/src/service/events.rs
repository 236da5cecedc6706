//! Behaviour event use cases.

use mkt_auth::TenantId;
use mkt_runtime::Infra;

use super::{Idempotency, Reply, execute};
use crate::domain::event::ValidEvent;
use crate::error::ApiError;
use crate::events::publish;
use crate::store::{customers, events};
use crate::views::{EventData, envelope};

/// Records one event within the caller's transaction; the customer must exist.
pub async fn track_in(conn: &mut diesel_async::AsyncPgConnection, tenant: &str, event: &ValidEvent) -> Result<EventData, ApiError> {
    let customer = customers::find_by_ref(conn, tenant, &event.customer)
        .await?
        .ok_or_else(|| ApiError::CustomerNotFound(event.customer.to_string()))?;
    let row = events::insert(conn, tenant, customer.id, event).await?;
    publish::behaviour_tracked(conn, &row).await?;
    Ok(EventData::from(row))
}

/// `POST /events`: 201.
pub async fn track(infra: &Infra, tenant: &TenantId, idempotency: Option<&Idempotency>, event: ValidEvent) -> Result<Reply, ApiError> {
    let tenant_id = tenant.as_str().to_owned();
    execute(
        infra,
        tenant,
        idempotency,
        Box::new(move |conn| {
            Box::pin(async move {
                let data = track_in(conn, &tenant_id, &event).await?;
                Ok(Reply::new(201, envelope("Event tracked successfully", data)))
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
    let tenant_id = tenant.as_str().to_owned();
    execute(
        infra,
        tenant,
        idempotency,
        Box::new(move |conn| {
            Box::pin(async move {
                let mut results = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    let outcome = match item {
                        Err(error) => Err(error),
                        Ok(event) => {
                            let tenant_id = tenant_id.clone();
                            super::in_savepoint(
                                conn,
                                Box::new(move |conn| {
                                    Box::pin(async move {
                                        let data = track_in(conn, &tenant_id, &event).await?;
                                        Ok(serde_json::json!({"index": index, "status": 201, "id": data.id}))
                                    })
                                }),
                            )
                            .await
                        }
                    };
                    results.push(outcome.unwrap_or_else(|error| super::batch_item_error(index, &error)));
                }
                Ok(super::batch_reply(results))
            })
        }),
    )
    .await
}
