//! Audience queries: a compiled rule predicate run over the read model.

use diesel::QueryableByName;
use diesel::pg::Pg;
use diesel::sql_types::{Array, BigInt, Bool, Double, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::domain::rules::sql::{Bind, Predicate};

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = SqlUuid)]
    customer_id: Uuid,
}

/// Builds `SELECT <select> FROM profiles WHERE tenant = $1 AND not erased AND <predicate> <tail>`.
fn query<'a>(
    select: &str,
    tenant: &'a str,
    predicate: &'a Predicate,
    tail: &str,
) -> diesel::query_builder::BoxedSqlQuery<'a, Pg, diesel::query_builder::SqlQuery> {
    let sql = format!(
        "SELECT {select} FROM customer_profiles p LEFT JOIN customer_scores s USING (tenant_id, customer_id) \
         WHERE p.tenant_id = $1 AND p.erased_at IS NULL AND {} {tail}",
        predicate.sql
    );
    let query = diesel::sql_query(sql)
        .into_boxed::<Pg>()
        .bind::<Text, _>(tenant);
    bind_predicate(query, predicate)
}

/// Binds a predicate's parameters, in order, after those already bound.
pub fn bind_predicate<'a>(
    mut query: diesel::query_builder::BoxedSqlQuery<'a, Pg, diesel::query_builder::SqlQuery>,
    predicate: &'a Predicate,
) -> diesel::query_builder::BoxedSqlQuery<'a, Pg, diesel::query_builder::SqlQuery> {
    for bind in &predicate.binds {
        query = match bind {
            Bind::Text(v) => query.bind::<Text, _>(v.clone()),
            Bind::TextArray(v) => query.bind::<Array<Text>, _>(v.clone()),
            Bind::Float(v) => query.bind::<Double, _>(*v),
            Bind::FloatArray(v) => query.bind::<Array<Double>, _>(v.clone()),
            Bind::Time(v) => query.bind::<Timestamptz, _>(*v),
            Bind::Bool(v) => query.bind::<Bool, _>(*v),
            Bind::Json(v) => query.bind::<Jsonb, _>(v.clone()),
            Bind::BigInt(v) => query.bind::<BigInt, _>(*v),
        };
    }
    query
}

/// How many customers of `tenant` match (the predicate's parameters start at `$2`).
pub async fn count(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    predicate: &Predicate,
) -> diesel::QueryResult<i64> {
    let row: CountRow = query("count(*) AS count", tenant, predicate, "")
        .get_result(conn)
        .await?;
    Ok(row.count)
}

/// A page of matching customer ids, in id order.
pub async fn members(
    conn: &mut AsyncPgConnection,
    tenant: &str,
    predicate: &Predicate,
    limit: i64,
    offset: i64,
) -> diesel::QueryResult<Vec<Uuid>> {
    let tail = format!(
        "ORDER BY p.customer_id LIMIT {} OFFSET {}",
        limit.clamp(0, 10_000),
        offset.max(0)
    );
    let rows: Vec<IdRow> = query("p.customer_id", tenant, predicate, &tail)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.customer_id).collect())
}
