//! Use cases: each one transaction that changes tables and writes the events the
//! change produces, then wakes the relay after the commit.

use diesel_async::AsyncConnection;
use mkt_auth::TenantId;
use mkt_runtime::Infra;
use uuid::Uuid;

use crate::domain::customer::ValidCustomer;
use crate::error::ApiError;
use crate::events::publish;
use crate::store::customers::{self, CustomerRow};

/// Upserts a customer and emits `customer.upserted.v1` in the same transaction.
/// Returns the row and whether it was created.
pub async fn upsert_customer(infra: &Infra, tenant: &TenantId, customer: &ValidCustomer) -> Result<(CustomerRow, bool), ApiError> {
    let mut conn = infra.pool.get().await?;
    let row = conn
        .transaction(async |conn| {
            let row = customers::upsert(conn, tenant.as_str(), customer).await?;
            publish::customer_upserted(conn, &row).await?;
            Ok::<_, diesel::result::Error>(row)
        })
        .await?;
    infra.events_committed();
    let created = row.version == 1;
    Ok((row, created))
}

/// One customer of the tenant.
pub async fn find_customer(infra: &Infra, tenant: &TenantId, id: Uuid) -> Result<Option<CustomerRow>, ApiError> {
    let mut conn = infra.pool.get().await?;
    Ok(customers::find(&mut conn, tenant.as_str(), id).await?)
}
