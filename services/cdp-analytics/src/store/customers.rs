//! Queries on `customers` and `orders`, this service's read model of ingestion.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::{customers, orders};

/// A customer as ingestion last described it.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = customers)]
pub struct CustomerRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Id.
    pub customer_id: Uuid,
    /// The store's id.
    pub external_id: Option<String>,
    /// Lower-cased, trimmed address as ingestion stored it; what exports and lookups show.
    pub email: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Sign-up time.
    pub signed_up_at: Option<DateTime<Utc>>,
    /// Ingestion's version.
    pub version: i64,
    /// Set once erased.
    pub erased_at: Option<DateTime<Utc>>,
}

/// Applies a newer version of a customer; an erased customer stays erased.
pub async fn upsert(conn: &mut AsyncPgConnection, row: &CustomerRow) -> QueryResult<()> {
    use customers::dsl as c;
    use diesel::query_dsl::methods::FilterDsl;
    diesel::insert_into(c::customers)
        .values(row)
        .on_conflict((c::tenant_id, c::customer_id))
        .do_update()
        .set((
            c::external_id.eq(excluded(c::external_id)),
            c::email.eq(excluded(c::email)),
            c::name.eq(excluded(c::name)),
            c::signed_up_at.eq(excluded(c::signed_up_at)),
            c::version.eq(excluded(c::version)),
        ))
        .filter(c::version.lt(row.version).and(c::erased_at.is_null()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Erases a customer's personal data (tombstone) and forgets its timeline.
pub async fn erase(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
    at: DateTime<Utc>,
) -> QueryResult<()> {
    use customers::dsl as c;
    diesel::insert_into(c::customers)
        .values((
            c::tenant_id.eq(tenant),
            c::customer_id.eq(customer),
            c::version.eq(i64::MAX),
            c::erased_at.eq(at),
        ))
        .on_conflict((c::tenant_id, c::customer_id))
        .do_update()
        .set((
            c::external_id.eq(None::<String>),
            c::email.eq(None::<String>),
            c::name.eq(None::<String>),
            c::version.eq(i64::MAX),
            c::erased_at.eq(at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// A customer of the tenant (erased ones included, so callers can tell).
pub async fn find(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
) -> QueryResult<Option<CustomerRow>> {
    customers::table
        .filter(customers::tenant_id.eq(tenant))
        .filter(customers::customer_id.eq(customer))
        .select(CustomerRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// An order's latest state.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = orders)]
pub struct OrderRow {
    /// Owning tenant (the `tenant_id` claim of the token the data came in with); every query
    /// on the table filters by it.
    pub tenant_id: String,
    /// Id.
    pub order_id: Uuid,
    /// Ingestion's id for the customer, the same in every service.
    pub customer_id: Uuid,
    /// The store's id.
    pub external_id: Option<String>,
    /// processing | shipped | delivered | cancelled | refunded.
    pub status: String,
    /// Minor units.
    pub total_amount: i64,
    /// ISO 4217.
    pub currency: String,
    /// Line count.
    pub items_count: i32,
    /// When placed.
    pub ordered_at: DateTime<Utc>,
    /// Ingestion's version.
    pub version: i64,
}

/// Applies a newer version of an order.
pub async fn upsert_order(conn: &mut AsyncPgConnection, row: &OrderRow) -> QueryResult<()> {
    use diesel::query_dsl::methods::FilterDsl;
    use orders::dsl as o;
    diesel::insert_into(o::orders)
        .values(row)
        .on_conflict((o::tenant_id, o::order_id))
        .do_update()
        .set((
            o::status.eq(excluded(o::status)),
            o::total_amount.eq(excluded(o::total_amount)),
            o::items_count.eq(excluded(o::items_count)),
            o::version.eq(excluded(o::version)),
            o::changed_at.eq(diesel::dsl::now),
        ))
        .filter(o::version.lt(row.version))
        .execute(conn)
        .await?;
    // A stub so the customer exists for the 360 before its own event arrives.
    diesel::insert_into(customers::table)
        .values((
            customers::tenant_id.eq(&row.tenant_id),
            customers::customer_id.eq(row.customer_id),
            customers::version.eq(0i64),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Orders of one customer, newest first (the timeline).
pub async fn orders_of(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
    limit: i64,
) -> QueryResult<Vec<OrderRow>> {
    orders::table
        .filter(orders::tenant_id.eq(tenant))
        .filter(orders::customer_id.eq(customer))
        .order(orders::ordered_at.desc())
        .limit(limit)
        .select(OrderRow::as_select())
        .load(conn)
        .await
}

/// Whether any order of the tenant changed after `since` (re-run only what changed).
pub async fn changed_since(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    since: DateTime<Utc>,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        orders::table
            .filter(orders::tenant_id.eq(tenant))
            .filter(orders::changed_at.gt(since)),
    ))
    .get_result(conn)
    .await
}
