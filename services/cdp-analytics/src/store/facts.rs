//! `customer_facts`: each customer's purchase facts per currency, the input of a
//! processing run's models. The order consumer keeps them current ([`refresh`]); a live
//! run reads them whole ([`current`]); a backtest folds them from the orders placed up
//! to its instant ([`from_orders`]).
//!
//! Why kept rather than folded at run time: folding a 1M-customer tenant's 5M orders
//! took 3.2 s of a run; reading one row per customer takes a fraction of that
//! (`docs/benchmarks.md`, "CDP analytics"), and the consumer's cost is one indexed
//! read of the customer's orders per order event.

use chrono::{DateTime, Utc};
use diesel::QueryResult;
use diesel::sql_types::{Array, BigInt, Bpchar, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use mkt_contracts::v1::OrderStatus;
use uuid::Uuid;

use crate::domain::scoring::CustomerFacts;

/// The facts of one customer, recomputed from the orders in one statement: counted
/// orders per currency, grouped, unless the customer was erased. `$1` tenant, `$2`
/// customer (`NULL`: every customer of the tenant, as [`rebuild`] needs), `$3` the statuses
/// that do not count (`OrderStatus::uncounted_names`).
const FACTS_FROM_ORDERS: &str = "\
    INSERT INTO customer_facts (tenant_id, customer_id, currency, orders, spent, first_day, \
        last_day, purchase_days, repeat_spent, last_order_at) \
    SELECT o.tenant_id, o.customer_id, o.currency, count(*), sum(o.total_amount), \
           min(o.day), max(o.day), count(DISTINCT o.day), \
           coalesce(sum(o.total_amount) FILTER (WHERE o.day > o.first_day), 0), max(o.ordered_at) \
    FROM ( \
        SELECT tenant_id, customer_id, currency, total_amount, ordered_at, \
               floor(extract(epoch FROM ordered_at) / 86400)::bigint AS day, \
               min(floor(extract(epoch FROM ordered_at) / 86400)::bigint) \
                   OVER (PARTITION BY customer_id, currency) AS first_day \
        FROM orders \
        WHERE tenant_id = $1 AND ($2::uuid IS NULL OR customer_id = $2) \
          AND status <> ALL($3::text[]) \
    ) o \
    WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = o.tenant_id \
                      AND c.customer_id = o.customer_id AND c.erased_at IS NOT NULL) \
    GROUP BY o.tenant_id, o.customer_id, o.currency";

/// Recomputes one customer's facts from its orders, after an order of it was applied in
/// this transaction.
///
/// The customer's row is locked first: two orders of one customer applied concurrently
/// would otherwise each recompute without the other's uncommitted order, and the later
/// commit would keep facts missing one. Under the lock, each statement (read committed)
/// sees the other's order once it committed.
pub async fn refresh(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    customer: Uuid,
) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT 1 FROM customers WHERE tenant_id = $1 AND customer_id = $2 FOR UPDATE",
    )
    .bind::<Text, _>(tenant)
    .bind::<SqlUuid, _>(customer)
    .execute(conn)
    .await?;
    forget(conn, tenant, customer).await?;
    diesel::sql_query(FACTS_FROM_ORDERS)
        .bind::<Text, _>(tenant)
        .bind::<Nullable<SqlUuid>, _>(Some(customer))
        .bind::<Array<Text>, _>(OrderStatus::uncounted_names())
        .execute(conn)
        .await?;
    Ok(())
}

/// Drops one customer's facts (an erased customer counts no more).
pub async fn forget(conn: &mut AsyncPgConnection, tenant: &str, customer: Uuid) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM customer_facts WHERE tenant_id = $1 AND customer_id = $2")
        .bind::<Text, _>(tenant)
        .bind::<SqlUuid, _>(customer)
        .execute(conn)
        .await?;
    Ok(())
}

/// Recomputes every customer's facts of the tenant from its orders, as the migration
/// that introduced the table did for existing data (the analytics bench loads its orders
/// in bulk and calls this).
pub async fn rebuild(conn: &mut AsyncPgConnection, tenant: &str) -> QueryResult<()> {
    diesel::sql_query("DELETE FROM customer_facts WHERE tenant_id = $1")
        .bind::<Text, _>(tenant)
        .execute(conn)
        .await?;
    diesel::sql_query(FACTS_FROM_ORDERS)
        .bind::<Text, _>(tenant)
        .bind::<Nullable<SqlUuid>, _>(None::<Uuid>)
        .bind::<Array<Text>, _>(OrderStatus::uncounted_names())
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct FactsRow {
    #[diesel(sql_type = SqlUuid)]
    customer_id: Uuid,
    #[diesel(sql_type = Bpchar)]
    currency: String,
    #[diesel(sql_type = BigInt)]
    orders: i64,
    #[diesel(sql_type = BigInt)]
    spent: i64,
    #[diesel(sql_type = BigInt)]
    first_day: i64,
    #[diesel(sql_type = BigInt)]
    last_day: i64,
    #[diesel(sql_type = BigInt)]
    purchase_days: i64,
    #[diesel(sql_type = BigInt)]
    repeat_spent: i64,
    #[diesel(sql_type = Timestamptz)]
    last_order_at: DateTime<Utc>,
}

/// The tenant's main currency and its customers' facts in that currency as of `as_of`,
/// in customer id order; `None` when the tenant has no counted order.
///
/// The main currency is the one most counted orders use (ties: the first code
/// alphabetically), as [`main_currency`] tells for a backtest; here the few orders dated
/// after `as_of` (at most the five minutes of clock skew ingestion allows) count too,
/// which spares a second read of the orders. Customers whose kept
/// facts include an order dated after `as_of` are folded again from their orders up to
/// `as_of`. Call it in a repeatable-read transaction so both reads see one snapshot.
pub async fn current(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    as_of: DateTime<Utc>,
) -> QueryResult<Option<(String, Vec<CustomerFacts>)>> {
    use futures_util::TryStreamExt;
    let mut stream = diesel::sql_query(
        "SELECT customer_id, currency, orders, spent, first_day, last_day, purchase_days, \
                repeat_spent, last_order_at \
         FROM customer_facts WHERE tenant_id = $1",
    )
    .bind::<Text, _>(tenant)
    .load_stream::<FactsRow>(conn)
    .await?;
    // Facts and order counts per currency: nearly every tenant has one currency, so a
    // short list searched linearly (no hashing or cloning per row).
    let mut by_currency: Vec<(String, i64, Vec<CustomerFacts>)> = Vec::new();
    while let Some(row) = stream.try_next().await? {
        let index = match by_currency.iter().position(|(c, _, _)| *c == row.currency) {
            Some(index) => index,
            None => {
                by_currency.push((row.currency.clone(), 0, Vec::new()));
                by_currency.len() - 1
            }
        };
        let (_, orders, facts) = &mut by_currency[index];
        *orders += row.orders;
        facts.push(CustomerFacts {
            customer_id: row.customer_id,
            orders: row.orders,
            spent: row.spent,
            first_day: row.first_day,
            last_day: row.last_day,
            purchase_days: row.purchase_days,
            repeat_spent: row.repeat_spent,
            last_order_at: row.last_order_at,
        });
    }
    drop(stream);
    let Some(currency) = main_of(by_currency.iter().map(|(c, n, _)| (c.clone(), *n))) else {
        return Ok(None);
    };
    let mut facts = by_currency
        .into_iter()
        .find_map(|(c, _, facts)| (c == currency).then_some(facts))
        .unwrap_or_default();
    let late: Vec<Uuid> = facts
        .iter()
        .filter(|f| f.last_order_at > as_of)
        .map(|f| f.customer_id)
        .collect();
    if !late.is_empty() {
        facts.retain(|f| f.last_order_at <= as_of);
        facts.extend(from_orders(conn, tenant, &currency, as_of, Some(&late)).await?);
    }
    facts.sort_unstable_by_key(|f| f.customer_id);
    Ok(Some((currency, facts)))
}

/// The currency with the most orders (ties: the first code alphabetically).
fn main_of(orders_by_currency: impl Iterator<Item = (String, i64)>) -> Option<String> {
    orders_by_currency
        .max_by(|(a, n), (b, m)| n.cmp(m).then_with(|| b.cmp(a)))
        .map(|(currency, _)| currency)
}

#[derive(diesel::QueryableByName)]
struct CurrencyCount {
    #[diesel(sql_type = Bpchar)]
    currency: String,
    #[diesel(sql_type = BigInt)]
    orders: i64,
}

/// The tenant's main currency as of `as_of`: the one most of its counted orders placed
/// up to then use (ties: the first code alphabetically), as [`current`] picks it.
pub async fn main_currency(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    as_of: DateTime<Utc>,
) -> QueryResult<Option<String>> {
    let rows: Vec<CurrencyCount> = diesel::sql_query(
        "SELECT currency, count(*) AS orders FROM orders \
         WHERE tenant_id = $1 AND ordered_at <= $2 AND status <> ALL($3::text[]) \
         GROUP BY currency",
    )
    .bind::<Text, _>(tenant)
    .bind::<Timestamptz, _>(as_of)
    .bind::<Array<Text>, _>(OrderStatus::uncounted_names())
    .load(conn)
    .await?;
    Ok(main_of(rows.into_iter().map(|r| (r.currency, r.orders))))
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

/// Live customers' purchase facts as of `as_of`, folded from their orders (placed at or
/// before it, cancelled and refunded ones excluded, in `currency` only), in customer id
/// order: every customer of the tenant, or only those in `only`. A backtest reads its
/// facts this way; a live run reads [`current`], and comes here only for customers whose
/// kept facts include orders dated after the run's instant.
///
/// Postgres only filters: the tenant's counted orders are streamed unsorted and
/// ungrouped, and folded here. Asking Postgres to group by customer and day (or to sort
/// by customer) made it walk `orders_customer_idx` and read the table in customer order,
/// one random page per order (the planner takes the index's leading `tenant_id` as
/// perfectly correlated with the table), or else hash or sort millions of rows: 12 s for
/// a tenant of 5M orders where this takes about 4 (`docs/benchmarks.md`). Memory
/// holds 32 bytes per counted order while folding, then one entry per customer.
pub async fn from_orders(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    currency: &str,
    as_of: DateTime<Utc>,
    only: Option<&[Uuid]>,
) -> QueryResult<Vec<CustomerFacts>> {
    use futures_util::TryStreamExt;
    let mut stream = diesel::sql_query(
        "SELECT o.customer_id, o.total_amount, o.ordered_at \
         FROM orders o \
         WHERE o.tenant_id = $1 AND o.currency = $2 AND o.ordered_at <= $3 \
           AND o.status <> ALL($5::text[]) \
           AND ($4::uuid[] IS NULL OR o.customer_id = ANY($4)) \
           AND NOT EXISTS (SELECT 1 FROM customers c WHERE c.tenant_id = o.tenant_id \
                           AND c.customer_id = o.customer_id AND c.erased_at IS NOT NULL)",
    )
    .bind::<Text, _>(tenant)
    .bind::<Bpchar, _>(currency)
    .bind::<Timestamptz, _>(as_of)
    .bind::<Nullable<Array<SqlUuid>>, _>(only)
    .bind::<Array<Text>, _>(OrderStatus::uncounted_names())
    .load_stream::<OrderFact>(conn)
    .await?;
    let mut folded = FactsFold::default();
    while let Some(row) = stream.try_next().await? {
        folded.push(row.customer_id, row.total_amount, row.ordered_at);
    }
    Ok(folded.finish())
}

/// Folds counted orders, in any order, into [`CustomerFacts`]:
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
    fn finish(self) -> Vec<CustomerFacts> {
        self.finish_sorting(PARALLEL_SORT)
    }

    fn finish_sorting(mut self, parallel_above: usize) -> Vec<CustomerFacts> {
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
        let mut all: Vec<CustomerFacts> = Vec::new();
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
                _ => all.push(CustomerFacts {
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
    use CustomerFacts;
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
