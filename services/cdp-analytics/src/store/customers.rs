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
    /// Tenant.
    pub tenant_id: String,
    /// Id.
    pub customer_id: Uuid,
    /// The store's id.
    pub external_id: Option<String>,
    /// Email.
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
    /// Tenant.
    pub tenant_id: String,
    /// Id.
    pub order_id: Uuid,
    /// Customer.
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

/// The tenant's main currency: the one most of its counted orders use.
pub async fn main_currency(
    conn: &mut AsyncPgConnection,
    tenant: &str,
) -> QueryResult<Option<String>> {
    use orders::dsl as o;
    let rows: Vec<(String, i64)> = o::orders
        .filter(o::tenant_id.eq(tenant))
        .group_by(o::currency)
        .select((o::currency, diesel::dsl::count_star()))
        .order(diesel::dsl::count_star().desc())
        .limit(1)
        .load(conn)
        .await?;
    Ok(rows.into_iter().next().map(|(c, _)| c))
}

#[derive(diesel::QueryableByName)]
struct OrderFact {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    customer_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    total_amount: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    ordered_at: DateTime<Utc>,
}

/// Every live customer's purchase facts as of `as_of` (orders placed at or before it,
/// cancelled and refunded ones excluded, in `currency` only), in customer id order.
///
/// Postgres only filters: the tenant's counted orders are streamed unsorted and
/// ungrouped, and folded here. Asking Postgres to group by customer and day (or to sort
/// by customer) made it walk `orders_customer_idx` and read the table in customer order,
/// one random page per order (the planner takes the index's leading `tenant_id` as
/// perfectly correlated with the table), or else hash or sort millions of rows: 12 s for
/// a tenant of 5M orders where this takes about 4 (`docs/benchmarks.md`). Memory
/// holds 32 bytes per counted order while folding, then one entry per customer.
pub async fn facts(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    currency: &str,
    as_of: DateTime<Utc>,
) -> QueryResult<Vec<crate::domain::scoring::CustomerFacts>> {
    use futures_util::TryStreamExt;
    let mut stream = diesel::sql_query(
        "SELECT o.customer_id, o.total_amount, o.ordered_at \
         FROM orders o \
         WHERE o.tenant_id = $1 AND o.currency = $2 AND o.ordered_at <= $3 \
           AND o.status NOT IN ('cancelled', 'refunded') \
           AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = o.tenant_id \
                           AND c.customer_id = o.customer_id AND c.erased_at IS NOT NULL)",
    )
    .bind::<diesel::sql_types::Text, _>(tenant)
    .bind::<diesel::sql_types::Bpchar, _>(currency)
    .bind::<diesel::sql_types::Timestamptz, _>(as_of)
    .load_stream::<OrderFact>(conn)
    .await?;
    let mut folded = FactsFold::default();
    while let Some(row) = stream.try_next().await? {
        folded.push(row.customer_id, row.total_amount, row.ordered_at);
    }
    Ok(folded.finish())
}

/// Folds counted orders, in any order, into [`crate::domain::scoring::CustomerFacts`]:
/// the orders are kept (32 bytes each), sorted by customer and time (the two halves on
/// two threads when there are many), then summed customer by customer. Sorting once
/// costs less than looking each order's customer up in a map as it arrives (a cache miss
/// or two per order on a million customers).
#[derive(Default)]
struct FactsFold {
    /// (customer, microseconds since 1970, amount).
    orders: Vec<(u128, i64, i64)>,
}

/// Orders above which [`FactsFold`] sorts on two threads.
const PARALLEL_SORT: usize = 200_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

impl FactsFold {
    fn push(&mut self, customer: Uuid, amount: i64, at: DateTime<Utc>) {
        self.orders
            .push((customer.as_u128(), at.timestamp_micros(), amount));
    }

    /// The facts, in customer id order.
    fn finish(self) -> Vec<crate::domain::scoring::CustomerFacts> {
        self.finish_sorting(PARALLEL_SORT)
    }

    fn finish_sorting(
        mut self,
        parallel_above: usize,
    ) -> Vec<crate::domain::scoring::CustomerFacts> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let orders = &mut self.orders;
        let mid = if orders.len() >= parallel_above && cores >= 2 {
            orders.len() / 2
        } else {
            orders.len()
        };
        let (left, right) = orders.split_at_mut(mid);
        std::thread::scope(|scope| {
            if !right.is_empty() {
                scope.spawn(|| right.sort_unstable());
            }
            left.sort_unstable();
        });
        // Merge the sorted halves on the fly into the per-customer sums.
        let (left, right) = (&orders[..mid], &orders[mid..]);
        let (mut i, mut j) = (0, 0);
        // Exact: the instants came from `DateTime`s (Postgres keeps microseconds).
        let at =
            |micros: i64| DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::microseconds(micros);
        let mut all: Vec<crate::domain::scoring::CustomerFacts> = Vec::new();
        while i < left.len() || j < right.len() {
            let next = if j == right.len() || (i < left.len() && left[i] <= right[j]) {
                i += 1;
                left[i - 1]
            } else {
                j += 1;
                right[j - 1]
            };
            let (customer, micros, amount) = next;
            // Days since 1970-01-01 (UTC), floored: what `floor(epoch / 86400)` gives.
            let day = micros.div_euclid(MICROS_PER_DAY);
            match all.last_mut() {
                Some(f) if f.customer_id.as_u128() == customer => {
                    f.orders += 1;
                    f.spent += amount;
                    if day != f.last_day {
                        f.purchase_days += 1;
                        f.last_day = day;
                    }
                    if day != f.first_day {
                        f.repeat_spent += amount;
                    }
                    f.last_order_at = at(micros);
                }
                _ => all.push(crate::domain::scoring::CustomerFacts {
                    customer_id: Uuid::from_u128(customer),
                    orders: 1,
                    spent: amount,
                    first_day: day,
                    last_day: day,
                    purchase_days: 1,
                    repeat_spent: 0,
                    last_order_at: at(micros),
                }),
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::scoring::CustomerFacts;
    use std::collections::BTreeMap;

    /// What the former `GROUP BY customer_id, day ORDER BY customer_id, day` query and its
    /// fold computed.
    fn grouped(orders: &[(Uuid, i64, DateTime<Utc>)]) -> Vec<CustomerFacts> {
        let mut days: BTreeMap<(Uuid, i64), (i64, i64, DateTime<Utc>)> = BTreeMap::new();
        for &(customer, amount, at) in orders {
            let day = (at.timestamp() as f64 / 86_400.0).floor() as i64;
            let e = days.entry((customer, day)).or_insert((0, 0, at));
            e.0 += amount;
            e.1 += 1;
            e.2 = e.2.max(at);
        }
        let mut all: Vec<CustomerFacts> = Vec::new();
        for ((customer, day), (spent, orders, last_at)) in days {
            match all.last_mut() {
                Some(f) if f.customer_id == customer => {
                    f.orders += orders;
                    f.spent += spent;
                    f.last_day = day;
                    f.purchase_days += 1;
                    f.repeat_spent += spent;
                    f.last_order_at = last_at;
                }
                _ => all.push(CustomerFacts {
                    customer_id: customer,
                    orders,
                    spent,
                    first_day: day,
                    last_day: day,
                    purchase_days: 1,
                    repeat_spent: 0,
                    last_order_at: last_at,
                }),
            }
        }
        all
    }

    #[test]
    fn the_fold_gives_what_grouping_by_customer_and_day_gave() {
        // Deterministic pseudo-random orders, some on the same day, some before 1970,
        // some a microsecond either side of midnight, in no particular order.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut orders = Vec::new();
        for _ in 0..20_000 {
            let customer = Uuid::from_u128(u128::from(next() % 1_500));
            let day = (next() % 900) as i64 - 50 + 19_000 * i64::from(next() % 2 == 0);
            let micros = match next() % 4 {
                0 => 0,
                1 => 86_400_000_000 - 1,
                _ => (next() % 86_400_000_000) as i64,
            };
            let at = DateTime::from_timestamp_micros(day * 86_400_000_000 + micros).expect("time");
            orders.push((customer, (next() % 20_000) as i64, at));
        }
        let expected = grouped(&orders);
        for parallel_above in [usize::MAX, 0] {
            let mut fold = FactsFold::default();
            for &(customer, amount, at) in &orders {
                fold.push(customer, amount, at);
            }
            assert_eq!(fold.finish_sorting(parallel_above), expected);
        }
    }
}
