//! Queries on `customer_orders` and the order aggregates of `customer_profiles`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use mkt_contracts::v1::OrderStatus;
use uuid::Uuid;

use super::schema::{customer_orders, customer_profiles};

/// An order's state as received.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = customer_orders)]
pub struct OrderState {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Ingestion's id for the order.
    pub order_id: Uuid,
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// The status's name (`OrderStatus::name`); which ones count is the contract's rule.
    pub status: String,
    /// Total in minor units.
    pub total_amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Promo code as ingestion stored it (upper-cased).
    pub promo_code: Option<String>,
    /// Purchase time.
    pub ordered_at: DateTime<Utc>,
    /// Ingestion's version of the order.
    pub version: i64,
}

/// Stores the order unless a newer version is known; returns whether it changed.
pub async fn apply(conn: &mut AsyncPgConnection, order: &OrderState) -> QueryResult<bool> {
    use customer_orders::dsl as o;
    let stored: Option<i64> = o::customer_orders
        .filter(o::tenant_id.eq(&order.tenant_id))
        .filter(o::order_id.eq(order.order_id))
        .select(o::version)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    if stored.is_some_and(|v| v >= order.version) {
        return Ok(false);
    }
    diesel::insert_into(o::customer_orders)
        .values(order)
        .on_conflict((o::tenant_id, o::order_id))
        .do_update()
        .set((
            o::status.eq(&order.status),
            o::total_amount.eq(order.total_amount),
            o::version.eq(order.version),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}

/// Count, net spend, first and last order of one customer.
type OrderTotals = (
    i64,
    Option<i64>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// Recomputes a customer's order aggregates (refunds and cancellations excluded),
/// creating a stub profile when the customer event has not arrived yet.
pub async fn refresh_aggregates(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
) -> QueryResult<()> {
    use customer_orders::dsl as o;
    use customer_profiles::dsl as p;
    let counted = o::customer_orders
        .filter(o::tenant_id.eq(tenant))
        .filter(o::customer_id.eq(customer))
        .filter(o::status.ne_all(OrderStatus::uncounted_names()));
    let (count, spent, first, last): OrderTotals = counted
        .select((
            diesel::dsl::count_star(),
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>(
                "sum(total_amount)::int8",
            ),
            diesel::dsl::min(o::ordered_at),
            diesel::dsl::max(o::ordered_at),
        ))
        .first(conn)
        .await?;
    diesel::insert_into(p::customer_profiles)
        .values((
            p::tenant_id.eq(tenant),
            p::customer_id.eq(customer),
            p::version.eq(0i64),
            p::orders_count.eq(count),
            p::total_spent.eq(spent.unwrap_or(0)),
            p::first_order_at.eq(first),
            p::last_order_at.eq(last),
        ))
        .on_conflict((p::tenant_id, p::customer_id))
        .do_update()
        .set((
            p::orders_count.eq(count),
            p::total_spent.eq(spent.unwrap_or(0)),
            p::first_order_at.eq(first),
            p::last_order_at.eq(last),
            p::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
