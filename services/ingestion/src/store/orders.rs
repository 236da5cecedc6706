//! Queries on `orders` and `order_items`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{order_items, orders};
use crate::domain::order::{OrderStatus, ValidOrder};

/// A stored order.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Our id.
    pub id: Uuid,
    /// Store's order id.
    pub external_id: Option<String>,
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// Total in minor units.
    pub total_amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// `OrderStatus` as text: `processing`, `shipped`, `delivered`, `cancelled` or `refunded`.
    pub status: String,
    /// Promo code, upper-cased by ingestion (letters, digits, `-`, `_`; at most 64).
    pub promo_code: Option<String>,
    /// Purchase time.
    pub ordered_at: DateTime<Utc>,
    /// When we recorded it.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Change counter.
    pub version: i64,
}

/// A stored order line.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = order_items)]
pub struct ItemRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Ingestion's id for the order this line belongs to.
    pub order_id: Uuid,
    /// Line id.
    pub id: Uuid,
    /// Position in the order (0-based).
    pub position: i32,
    /// The store's own product id (free text, at most 128 characters; no catalogue lookup).
    pub product_id: String,
    /// Product name as the store sent it with the order.
    pub name: String,
    /// Unit price.
    pub price: i64,
    /// Units bought, 1 to 1,000,000 (ingestion refuses anything else).
    pub quantity: i32,
    /// Line total.
    pub total: i64,
}

/// Inserts an order and its items for `customer_id`.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer_id: Uuid,
    order: &ValidOrder,
) -> QueryResult<(OrderRow, Vec<ItemRow>)> {
    let now = Utc::now();
    let id = Uuid::now_v7();
    let row: OrderRow = diesel::insert_into(orders::table)
        .values((
            orders::tenant_id.eq(tenant),
            orders::id.eq(id),
            orders::external_id.eq(&order.external_id),
            orders::customer_id.eq(customer_id),
            orders::total_amount.eq(order.total_amount),
            orders::currency.eq(&order.currency),
            orders::status.eq(order.status.name()),
            orders::promo_code.eq(&order.promo_code),
            orders::ordered_at.eq(order.ordered_at.unwrap_or(now)),
            orders::created_at.eq(now),
            orders::updated_at.eq(now),
        ))
        .returning(OrderRow::as_returning())
        .get_result(conn)
        .await?;
    let items: Vec<ItemRow> = order
        .items
        .iter()
        .enumerate()
        .map(|(position, item)| ItemRow {
            tenant_id: tenant.to_owned(),
            order_id: id,
            id: Uuid::now_v7(),
            position: position as i32,
            product_id: item.product_id.clone(),
            name: item.name.clone(),
            price: item.price,
            quantity: item.quantity,
            total: item.total,
        })
        .collect();
    diesel::insert_into(order_items::table)
        .values(&items)
        .execute(conn)
        .await?;
    Ok((row, items))
}

/// One order with its items.
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    id: Uuid,
    lock: bool,
) -> QueryResult<Option<(OrderRow, Vec<ItemRow>)>> {
    let query = orders::table
        .filter(orders::tenant_id.eq(tenant))
        .filter(orders::id.eq(id))
        .select(OrderRow::as_select());
    let order = if lock {
        query.for_update().first(conn).await.optional()?
    } else {
        query.first(conn).await.optional()?
    };
    let Some(order) = order else { return Ok(None) };
    let items = items_of(conn, tenant, &[order.id]).await?;
    Ok(Some((order, items)))
}

/// The id and status of the tenant's order with the store's `external_id`, if any:
/// how an integration sync knows an order is already here.
pub async fn find_by_external(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    external_id: &str,
) -> QueryResult<Option<(Uuid, String)>> {
    orders::table
        .filter(orders::tenant_id.eq(tenant))
        .filter(orders::external_id.eq(external_id))
        .select((orders::id, orders::status))
        .first(conn)
        .await
        .optional()
}

/// Items of several orders, in order position.
pub async fn items_of(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    ids: &[Uuid],
) -> QueryResult<Vec<ItemRow>> {
    order_items::table
        .filter(order_items::tenant_id.eq(tenant))
        .filter(order_items::order_id.eq_any(ids))
        .order((order_items::order_id, order_items::position))
        .select(ItemRow::as_select())
        .load(conn)
        .await
}

/// A page of orders, newest first, optionally of one customer, and the total.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Option<Uuid>,
    status: Option<OrderStatus>,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<OrderRow>, i64)> {
    let build = || {
        let mut query = orders::table
            .filter(orders::tenant_id.eq(tenant))
            .into_boxed();
        if let Some(customer) = customer {
            query = query.filter(orders::customer_id.eq(customer));
        }
        if let Some(status) = status {
            query = query.filter(orders::status.eq(status.name()));
        }
        query
    };
    let total = build().count().get_result(conn).await?;
    let rows = build()
        .order((orders::ordered_at.desc(), orders::id.desc()))
        .limit(limit)
        .offset(offset)
        .select(OrderRow::as_select())
        .load(conn)
        .await?;
    Ok((rows, total))
}

/// Sets the status and bumps the version.
pub async fn set_status(
    conn: &mut AsyncPgConnection,
    order: &OrderRow,
    status: OrderStatus,
) -> QueryResult<OrderRow> {
    diesel::update(
        orders::table
            .filter(orders::tenant_id.eq(&order.tenant_id))
            .filter(orders::id.eq(order.id)),
    )
    .set((
        orders::status.eq(status.name()),
        orders::updated_at.eq(Utc::now()),
        orders::version.eq(orders::version + 1),
    ))
    .returning(OrderRow::as_returning())
    .get_result(conn)
    .await
}
