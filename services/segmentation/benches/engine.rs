//! The segment engine benchmark (`cargo xtask bench segmentation`, which runs
//! `cargo bench -p segmentation --bench engine -- ...` in release).
//!
//! For each tenant size (1M customers by default; `--also-10m` adds 10M) it:
//! 1. starts a throwaway PostgreSQL (`mkt-devservers`), migrates a fresh database and
//!    generates the tenant with `INSERT ... SELECT generate_series` (profiles with
//!    skewed states and tiers, order aggregates, traits; a scores row for 85%; about
//!    two behaviour events per customer over 60 days);
//! 2. adds indexes for the compiled SQL and builds what the best hand-written SQL can
//!    use: a precomputed one-row-per-customer table (lower-cased text, derived
//!    average, scores joined in, traits extracted) and an events table with the
//!    property extracted, each with b-tree indexes, then `VACUUM ANALYZE`;
//! 3. loads the engine through `store::snapshot::load_tenant` (time, heap bytes and
//!    RSS per customer), then times a change-feed round (`load_changed` + apply);
//! 4. times every rule (nested: profile + aggregates + an event condition, with a
//!    negated group) three ways — the engine (evaluate + count + a 10-id sample), the
//!    compiled SQL preview (`store::segments::count` over `rules::sql::compile`) and
//!    the hand-written SQL — and checks all three counts agree;
//! 5. prints a Markdown report.
//!
//! Every figure in `docs/benchmarks.md` ("Segmentation") comes from this program.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark: stdout carries the report, progress goes to stderr"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use mkt_devservers::PostgresServer;
use mkt_devservers::cpu::CpuSample;
use segmentation::domain::engine::{BehaviourEvent, CustomerRecord, Scores, TenantIndex};
use segmentation::domain::rules::{Group, sql, validate};
use segmentation::store::{segments, snapshot};
use serde_json::json;

const TENANT: &str = "bench";
const USAGE: &str = "usage: cargo xtask bench segmentation [--customers N] [--also-10m] [--reps R] \
[--sql-reps R] [--events-per-customer E] [--changes N] [--explain] [--only NAME] [--engine-only]";

/// The targets.
const TARGET_1M_P50_MS: f64 = 5.0;
const TARGET_10M_P50_MS: f64 = 50.0;
const TARGET_SPEEDUP: f64 = 10.0;

struct Options {
    sizes: Vec<u64>,
    reps: usize,
    sql_reps: usize,
    events_per_customer: u64,
    changes: u64,
    /// No PostgreSQL: records generated in Rust, the engine timed alone (profiling).
    engine_only: bool,
    /// Only rules whose name contains this.
    only: Option<String>,
    /// Print the best SQL's plans (EXPLAIN ANALYZE) to stderr.
    explain: bool,
}

impl Options {
    fn parse() -> Result<Self> {
        let mut options = Options {
            sizes: vec![1_000_000],
            reps: 101,
            sql_reps: 11,
            events_per_customer: 2,
            changes: 10_000,
            engine_only: false,
            only: None,
            explain: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = |flag: &str| -> Result<u64> {
                args.next()
                    .and_then(|v| v.replace('_', "").parse().ok())
                    .ok_or_else(|| anyhow!("{flag} takes a whole number\n{USAGE}"))
            };
            match arg.as_str() {
                // `cargo bench` passes this to every bench target.
                "--bench" => {}
                "--customers" => options.sizes[0] = number("--customers")?.max(1_000),
                "--also-10m" => options.sizes.push(10_000_000),
                "--reps" => options.reps = number("--reps")?.max(1) as usize,
                "--sql-reps" => options.sql_reps = number("--sql-reps")?.max(1) as usize,
                "--events-per-customer" => {
                    options.events_per_customer = number("--events-per-customer")?
                }
                "--changes" => options.changes = number("--changes")?,
                "--engine-only" => options.engine_only = true,
                "--only" => options.only = args.next(),
                "--explain" => options.explain = true,
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        Ok(options)
    }
}

/// A benchmarked rule: the canonical tree and the best SQL we could write for it.
struct Rule {
    name: &'static str,
    what: &'static str,
    tree: serde_json::Value,
    /// Over `bench_facts f` / `bench_events e`; `{now}`, `{d7}` ... are instants.
    best_sql: &'static str,
}

fn rules(only: Option<&str>) -> Vec<Rule> {
    let all = vec![
        Rule {
            name: "R1 big spenders carting",
            what: "state in (CA, TX, NY) AND total_spent >= 20000 AND add_to_cart >= 1 in 7 days \
                   AND NOT (tier = bronze OR unsubscribed)",
            tree: json!({"logic": "AND", "conditions": [
                {"field": "state", "operator": "in", "value": ["CA", "TX", "NY"]},
                {"field": "total_spent", "operator": "greater_than_or_equals", "value": 20000},
                {"field": "event", "operator": "performed_at_least", "value": 1,
                 "event_type": "add_to_cart", "within_days": 7}
            ], "groups": [{"logic": "OR", "negate": true, "conditions": [
                {"field": "loyalty_tier", "operator": "equals", "value": "bronze"},
                {"field": "unsubscribed", "operator": "equals", "value": true}
            ]}]}),
            best_sql: "SELECT count(*) AS count FROM bench_facts f \
                WHERE f.state = ANY('{ca,tx,ny}') AND f.total_spent >= 20000 \
                AND NOT (COALESCE(f.tier = 'bronze', FALSE) OR f.unsubscribed) \
                AND f.customer_id IN (SELECT e.customer_id FROM bench_events e WHERE e.event_type = 'add_to_cart' \
                    AND e.occurred_at >= '{d7}' AND e.occurred_at <= '{now}')",
        },
        Rule {
            name: "R2 lapsing valuables",
            what: "last_order_days_ago > 90 AND avg_order_value >= 5000 AND (churn_probability > 0.6 \
                   OR segment in (At Risk, Cant Lose, Hibernating)) AND not_performed purchase in 30 days",
            tree: json!({"logic": "AND", "conditions": [
                {"field": "last_order_days_ago", "operator": "greater_than", "value": 90},
                {"field": "avg_order_value", "operator": "greater_than_or_equals", "value": 5000},
                {"field": "event", "operator": "not_performed", "event_type": "purchase", "within_days": 30}
            ], "groups": [{"logic": "OR", "conditions": [
                {"field": "churn_probability", "operator": "greater_than", "value": 0.6},
                {"field": "segment", "operator": "in", "value": ["At Risk", "Cant Lose", "Hibernating"]}
            ]}]}),
            best_sql: "SELECT count(*) AS count FROM bench_facts f \
                WHERE f.last_order_at <= '{d91}' AND f.avg_order_value >= 5000 \
                AND (COALESCE(f.churn_probability > 0.6, FALSE) OR COALESCE(f.segment = ANY('{at risk,cant lose,hibernating}'), FALSE)) \
                AND NOT EXISTS (SELECT 1 FROM bench_events e WHERE e.customer_id = f.customer_id \
                    AND e.event_type = 'purchase' AND e.occurred_at >= '{d30}' AND e.occurred_at <= '{now}')",
        },
        Rule {
            name: "R3 engaged newcomers into shoes",
            what: "created_at newer_than_days 180 AND consent_email AND emails_opened >= 5 AND page_view \
                   with category = shoes >= 1 in 30 days AND NOT (attributes.plan = free AND orders_count = 0)",
            tree: json!({"logic": "AND", "conditions": [
                {"field": "created_at", "operator": "newer_than_days", "value": 180},
                {"field": "consent_email", "operator": "equals", "value": true},
                {"field": "emails_opened", "operator": "greater_than_or_equals", "value": 5},
                {"field": "event", "operator": "performed_at_least", "value": 1, "event_type": "page_view",
                 "within_days": 30, "property": {"name": "category", "value": "shoes"}}
            ], "groups": [{"logic": "AND", "negate": true, "conditions": [
                {"field": "attributes.plan", "operator": "equals", "value": "free"},
                {"field": "orders_count", "operator": "equals", "value": 0}
            ]}]}),
            best_sql: "SELECT count(*) AS count FROM bench_facts f \
                WHERE f.signed_up_at >= '{d180}' AND f.consent_email AND f.emails_opened >= 5 \
                AND NOT (COALESCE(f.plan = 'free', FALSE) AND f.orders_count = 0) \
                AND f.customer_id IN (SELECT e.customer_id FROM bench_events e WHERE e.event_type = 'page_view' \
                    AND e.category = 'shoes' AND e.occurred_at >= '{d30}' AND e.occurred_at <= '{now}')",
        },
        Rule {
            name: "R4 broad OR",
            what: "(city contains \"san\" AND orders_count >= 1) OR (attributes.vip AND NOT state = CA) \
                   OR purchase >= 1 in 30 days",
            tree: json!({"logic": "OR", "conditions": [
                {"field": "event", "operator": "performed_at_least", "value": 1,
                 "event_type": "purchase", "within_days": 30}
            ], "groups": [
                {"logic": "AND", "conditions": [
                    {"field": "city", "operator": "contains", "value": "san"},
                    {"field": "orders_count", "operator": "greater_than_or_equals", "value": 1}
                ]},
                {"logic": "AND", "conditions": [
                    {"field": "attributes.vip", "operator": "equals", "value": true}
                ], "groups": [{"logic": "AND", "negate": true, "conditions": [
                    {"field": "state", "operator": "equals", "value": "CA"}
                ]}]}
            ]}),
            best_sql: "SELECT count(*) AS count FROM bench_facts f \
                WHERE (strpos(f.city, 'san') > 0 AND f.orders_count >= 1) \
                OR (COALESCE(f.vip, FALSE) AND NOT COALESCE(f.state = 'ca', FALSE)) \
                OR f.customer_id IN (SELECT e.customer_id FROM bench_events e WHERE e.event_type = 'purchase' \
                    AND e.occurred_at >= '{d30}' AND e.occurred_at <= '{now}')",
        },
    ];
    all.into_iter()
        .filter(|r| only.is_none_or(|o| r.name.contains(o)))
        .collect()
}

/// Lists the generator draws from (a CTE every statement joins).
const LISTS: &str = "WITH k AS (SELECT \
    ARRAY['CA','CA','CA','CA','CA','TX','TX','TX','NY','NY','NY','FL','FL','IL','PA','OH','GA','NC','MI','NJ','VA','WA',\
          'AZ','MA','TN','IN','MO','MD','WI','CO','MN','SC','AL','LA','KY','OR','OK','CT','UT','IA','NV','AR','MS','KS',\
          'NM','NE','ID','WV','HI','NH','ME','MT','RI','DE','SD','ND','AK','VT','WY'] AS states, \
    ARRAY['Los Angeles','San Francisco','San Diego','San Jose','Sacramento','Houston','Austin','Dallas','San Antonio',\
          'New York','Brooklyn','Buffalo','Miami','Orlando','Tampa','Chicago','Philadelphia','Pittsburgh','Columbus',\
          'Atlanta','Charlotte','Detroit','Newark','Seattle','Phoenix','Boston','Nashville','Denver','Portland','Santa Fe'] AS cities, \
    ARRAY['Ana','Ben','Chloe','David','Emma','Farid','Grace','Hiro','Ines','Jonas','Kemal','Lena','Mateo','Nora','Omar',\
          'Priya','Quinn','Rosa','Sven','Tara'] AS first_names, \
    ARRAY['Smith','Garcia','Chen','Müller','Okafor','Rossi','Kim','Novak','Silva','Dubois','Tanaka','Cohen','Haddad',\
          'Ivanova','Jensen','Khan'] AS last_names, \
    ARRAY['gmail.com','yahoo.com','outlook.com','icloud.com','example.com'] AS domains, \
    ARRAY['free','free','free','pro','team'] AS plans, \
    ARRAY['Champions','Loyal','Potential Loyalists','New','Promising','At Risk','Cant Lose','Hibernating','Lost'] AS segments, \
    ARRAY['active','active','active','at_risk','churning','churned'] AS risks, \
    ARRAY['page_view','page_view','page_view','page_view','page_view','page_view','page_view','page_view','page_view',\
          'page_view','add_to_cart','add_to_cart','add_to_cart','add_to_cart','add_to_cart','purchase','purchase',\
          'email_click','email_click','email_click'] AS types, \
    ARRAY['shoes','hats','bags','shirts','pants','dresses','jackets','socks','watches','jewelry','sports','home'] AS categories)";

fn profiles_sql(from: u64, to: u64) -> String {
    format!(
        "{LISTS} INSERT INTO customer_profiles (tenant_id, customer_id, name, email, phone, city, state, zip_code, \
            country, loyalty_tier, attributes, consent_email, consent_sms, consent_push, signed_up_at, version, \
            orders_count, total_spent, first_order_at, last_order_at) \
         SELECT '{TENANT}', md5('customer-' || g.i)::uuid, \
            k.first_names[1 + floor(g.r1 * 20)::int] || ' ' || k.last_names[1 + floor(g.r2 * 16)::int], \
            'user' || g.i || '@' || k.domains[1 + (g.i % 5)::int], \
            CASE WHEN g.r3 < 0.7 THEN '+1' || lpad(floor(g.r4 * 1e10)::bigint::text, 10, '0') END, \
            CASE WHEN g.r5 < 0.95 THEN k.cities[1 + floor(g.r6 * cardinality(k.cities))::int] END, \
            CASE WHEN g.r5 < 0.97 THEN k.states[1 + floor(g.r7 * cardinality(k.states))::int] END, \
            lpad(floor(g.r8 * 100000)::int::text, 5, '0'), \
            CASE WHEN g.r9 < 0.95 THEN 'US' WHEN g.r9 < 0.98 THEN 'CA' ELSE 'MX' END, \
            CASE WHEN g.r10 < 0.10 THEN 'gold' WHEN g.r10 < 0.35 THEN 'silver' WHEN g.r10 < 0.70 THEN 'bronze' END, \
            jsonb_strip_nulls(jsonb_build_object('vip', g.r11 < 0.08, \
                'plan', CASE WHEN g.r12 < 0.9 THEN k.plans[1 + floor(g.r13 * 5)::int] END, \
                'age', 18 + floor(g.r14 * 60)::int)), \
            g.r15 < 0.6, g.r16 < 0.3, g.r17 < 0.4, \
            now() - g.r18 * interval '1095 days', 1, \
            g.orders, CASE WHEN g.orders > 0 THEN g.orders * (1500 + floor(g.r19 * 13500)::int) ELSE 0 END, \
            CASE WHEN g.orders > 0 THEN now() - g.last_ago - g.r20 * interval '700 days' END, \
            CASE WHEN g.orders > 0 THEN now() - g.last_ago END \
         FROM (SELECT i, random() r1, random() r2, random() r3, random() r4, random() r5, random() r6, random() r7, \
                 random() r8, random() r9, random() r10, random() r11, random() r12, random() r13, random() r14, \
                 random() r15, random() r16, random() r17, random() r18, random() r19, random() r20, \
                 floor(-ln(1 - random()) * 1.8)::int AS orders, random() * interval '365 days' AS last_ago \
               FROM generate_series({from}, {to}) AS i) g, k"
    )
}

fn scores_sql() -> String {
    format!(
        "{LISTS} INSERT INTO customer_scores (tenant_id, customer_id, rfm_segment, recency_score, frequency_score, \
            monetary_score, clv, clv_tier, churn_risk, churn_probability, emails_opened, emails_clicked, unsubscribed) \
         SELECT '{TENANT}', g.customer_id, k.segments[1 + floor(g.r1 * cardinality(k.segments))::int], \
            1 + floor(g.r2 * 5)::int, 1 + floor(g.r3 * 5)::int, 1 + floor(g.r4 * 5)::int, g.clv, \
            CASE WHEN g.clv > 60000 THEN 'high' WHEN g.clv > 15000 THEN 'medium' ELSE 'low' END, \
            k.risks[1 + floor(g.r5 * cardinality(k.risks))::int], round(g.r6::numeric, 3)::float8, \
            floor(g.r7 * g.r7 * 40)::int, floor(g.r8 * g.r8 * 6)::int, g.r9 < 0.08 \
         FROM (SELECT customer_id, random() r0, random() r1, random() r2, random() r3, random() r4, random() r5, \
                 random() r6, random() r7, random() r8, random() r9, \
                 (total_spent * (1 + random()))::bigint AS clv \
               FROM customer_profiles WHERE tenant_id = '{TENANT}') g, k \
         WHERE g.r0 < 0.85"
    )
}

fn events_sql(customers: u64, count: u64) -> String {
    format!(
        "{LISTS} INSERT INTO customer_events (tenant_id, event_id, customer_id, event_type, properties, occurred_at) \
         SELECT '{TENANT}', gen_random_uuid(), md5('customer-' || (1 + floor(g.r1 * {customers}))::bigint)::uuid, \
            k.types[1 + floor(g.r2 * cardinality(k.types))::int], \
            jsonb_build_object('category', k.categories[1 + floor(g.r3 * cardinality(k.categories))::int], \
                'price', 500 + floor(g.r4 * 20000)::int), \
            now() - g.r5 * interval '60 days' \
         FROM (SELECT i, random() r1, random() r2, random() r3, random() r4, random() r5 \
               FROM generate_series(1, {count}) AS i) g, k"
    )
}

/// Indexes the compiled SQL can use, and the precomputed tables of the best SQL.
const PREPARE_SQL: &str = "\
CREATE INDEX bench_profiles_state ON customer_profiles (tenant_id, lower(state)); \
CREATE INDEX bench_profiles_spent ON customer_profiles (tenant_id, total_spent); \
CREATE INDEX bench_profiles_last_order ON customer_profiles (tenant_id, last_order_at); \
CREATE INDEX bench_profiles_signed_up ON customer_profiles (tenant_id, signed_up_at); \
CREATE INDEX bench_events_type_time ON customer_events (tenant_id, event_type, occurred_at) INCLUDE (customer_id); \
CREATE TABLE bench_facts AS \
  SELECT p.customer_id, lower(p.state) AS state, lower(p.loyalty_tier) AS tier, lower(p.city) AS city, \
         p.orders_count, p.total_spent, \
         CASE WHEN p.orders_count > 0 THEN p.total_spent / p.orders_count END AS avg_order_value, \
         p.last_order_at, p.signed_up_at, p.consent_email, lower(s.rfm_segment) AS segment, s.churn_probability, \
         COALESCE(s.emails_opened, 0) AS emails_opened, COALESCE(s.unsubscribed, FALSE) AS unsubscribed, \
         CASE WHEN jsonb_typeof(p.attributes -> 'vip') = 'boolean' THEN (p.attributes ->> 'vip')::boolean END AS vip, \
         CASE WHEN jsonb_typeof(p.attributes -> 'plan') = 'string' THEN lower(p.attributes ->> 'plan') END AS plan \
  FROM customer_profiles p LEFT JOIN customer_scores s USING (tenant_id, customer_id) \
  WHERE p.tenant_id = 'bench' AND p.erased_at IS NULL; \
ALTER TABLE bench_facts ADD PRIMARY KEY (customer_id); \
CREATE INDEX ON bench_facts (state); \
CREATE INDEX ON bench_facts (total_spent); \
CREATE INDEX ON bench_facts (avg_order_value); \
CREATE INDEX ON bench_facts (last_order_at); \
CREATE INDEX ON bench_facts (signed_up_at); \
CREATE INDEX ON bench_facts (emails_opened); \
CREATE INDEX ON bench_facts (tier); \
CREATE TABLE bench_events AS \
  SELECT customer_id, event_type, occurred_at, \
         CASE WHEN jsonb_typeof(properties -> 'category') = 'string' THEN lower(properties ->> 'category') END AS category \
  FROM customer_events WHERE tenant_id = 'bench'; \
CREATE INDEX ON bench_events (event_type, occurred_at) INCLUDE (customer_id, category); \
CREATE INDEX ON bench_events (customer_id, event_type, occurred_at); \
VACUUM ANALYZE;";

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Milliseconds, nearest-rank percentiles.
struct Timing {
    p50: f64,
    p95: f64,
    min: f64,
    runs: usize,
}

impl Timing {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let rank = |p: f64| {
            let i = ((p / 100.0) * samples.len() as f64).ceil() as usize;
            ms(samples[i.clamp(1, samples.len()) - 1])
        };
        Timing {
            p50: rank(50.0),
            p95: rank(95.0),
            min: ms(samples[0]),
            runs: samples.len(),
        }
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024 / 1024);
    format!("{cores} cores ({cpu}), {memory} GiB RAM")
}

async fn connect(url: &str) -> Result<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    conn.batch_execute("SET search_path TO segmentation")
        .await?;
    Ok(conn)
}

fn step<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    eprintln!("[bench] {what}...");
    let started = Instant::now();
    let value = f()?;
    let took = started.elapsed();
    eprintln!("[bench] {what}: {:.1} s", took.as_secs_f64());
    Ok((value, took))
}

struct RuleResult {
    name: &'static str,
    what: &'static str,
    count: usize,
    engine: Timing,
    compiled: Timing,
    best: Timing,
    /// `jit` setting of the faster best-SQL run.
    best_jit: &'static str,
}

async fn time_sql(
    conn: &mut AsyncPgConnection,
    reps: usize,
    mut run: impl AsyncFnMut(&mut AsyncPgConnection) -> Result<i64>,
) -> Result<(i64, Timing)> {
    // One unmeasured run: plans and caches warm, as for a repeated preview.
    let count = run(conn).await?;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let again = run(conn).await?;
        samples.push(started.elapsed());
        if again != count {
            bail!("SQL count changed between runs: {count} then {again}");
        }
    }
    Ok((count, Timing::of(samples)))
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[allow(
    clippy::too_many_lines,
    reason = "the benchmark's script, read top to bottom"
)]
fn run_size(pg: &PostgresServer, options: &Options, customers: u64) -> Result<()> {
    let database = format!("bench_segmentation_{customers}");
    pg.psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {database}; CREATE DATABASE {database}"),
    )?;
    let admin = pg.admin_url();
    let url = format!(
        "{}/{database}",
        admin.strip_suffix("/postgres").unwrap_or(&admin)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        mkt_runtime::migrate(
            &segmentation::SPEC,
            &mkt_db::DbConfig::new(url.clone(), "segmentation"),
        )
        .await
        .map(drop)
    })?;
    let psql = |sql: &str| {
        pg.psql(
            &database,
            &format!("SET search_path TO segmentation; {sql}"),
        )
    };

    let (_, generated) = step(
        &format!("generate {} customers", thousands(customers)),
        || {
            let chunk = 1_000_000;
            let mut from = 1;
            while from <= customers {
                let to = (from + chunk - 1).min(customers);
                psql(&format!(
                    "SELECT setseed({}); {}",
                    (from as f64 / customers as f64) * 0.5,
                    profiles_sql(from, to)
                ))?;
                eprintln!(
                    "[bench]   profiles {} / {}",
                    thousands(to),
                    thousands(customers)
                );
                from = to + 1;
            }
            psql(&format!("SELECT setseed(0.7); {}", scores_sql()))?;
            let events = customers * options.events_per_customer;
            let mut done = 0;
            while done < events {
                let n = (events - done).min(2_000_000);
                psql(&events_sql(customers, n))?;
                done += n;
                eprintln!(
                    "[bench]   events {} / {}",
                    thousands(done),
                    thousands(events)
                );
            }
            Ok(())
        },
    )?;
    let (_, prepared) = step("indexes, precomputed tables, VACUUM ANALYZE", || {
        psql(PREPARE_SQL).map(drop)
    })?;
    let sizes = psql(
        "SELECT pg_size_pretty(pg_total_relation_size('customer_profiles')) || ' profiles, ' || \
                pg_size_pretty(pg_total_relation_size('customer_scores')) || ' scores, ' || \
                pg_size_pretty(pg_total_relation_size('customer_events')) || ' events, ' || \
                pg_size_pretty(pg_total_relation_size('bench_facts')) || ' bench_facts, ' || \
                pg_size_pretty(pg_total_relation_size('bench_events')) || ' bench_events (tables with indexes)'",
    )?;
    let event_rows = psql("SELECT count(*) FROM customer_events")?;

    runtime.block_on(async {
        let mut conn = connect(&url).await?;
        // The engine: built from the snapshot loader, as a replica does at start.
        let rss_before = rss_bytes();
        eprintln!("[bench] load the engine...");
        let started = Instant::now();
        let (mut index, watermark) = snapshot::load_tenant(&mut conn, TENANT).await?;
        let load = started.elapsed();
        let rss_after = rss_bytes();
        let heap = index.memory_bytes();
        eprintln!("[bench] loaded {} customers in {:.1} s", index.len(), load.as_secs_f64());
        if index.len() as u64 != customers {
            bail!("loaded {} customers, expected {customers}", index.len());
        }

        // The change feed: a batch of customers changes, the replica catches up.
        let mut feed = None;
        if options.changes > 0 {
            conn.batch_execute(&format!(
                "UPDATE customer_profiles SET total_spent = total_spent + 2500, orders_count = orders_count + 1, \
                 last_order_at = now(), revision = pg_current_xact_id()::text::bigint \
                 WHERE tenant_id = '{TENANT}' AND customer_id IN \
                   (SELECT customer_id FROM customer_profiles WHERE tenant_id = '{TENANT}' \
                    ORDER BY md5(customer_id::text) LIMIT {})",
                options.changes
            ))
            .await?;
            let started = Instant::now();
            let (changes, _) = snapshot::load_changed(&mut conn, TENANT, watermark).await?;
            let read = started.elapsed();
            let n = changes.len();
            let started = Instant::now();
            for change in changes {
                index.apply(change);
            }
            let applied = started.elapsed();
            feed = Some((n, read, applied));
            // The precomputed tables follow the same change, so all three agree.
            conn.batch_execute(&format!(
                "UPDATE bench_facts f SET total_spent = p.total_spent, orders_count = p.orders_count, \
                 last_order_at = p.last_order_at, \
                 avg_order_value = CASE WHEN p.orders_count > 0 THEN p.total_spent / p.orders_count END \
                 FROM customer_profiles p WHERE p.tenant_id = '{TENANT}' AND p.customer_id = f.customer_id \
                 AND p.revision >= {watermark}"
            ))
            .await?;
            conn.batch_execute("VACUUM ANALYZE bench_facts").await?;
        }

        // The same instant for every path, in whole microseconds (PostgreSQL's).
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros())
            .ok_or_else(|| anyhow!("clock out of range"))?;
        let days = |d: i64| instant(now - chrono::Duration::days(d));
        let mut results = Vec::new();
        let cpu_before = CpuSample::take();
        let timed = Instant::now();
        for rule in rules(options.only.as_deref()) {
            let tree: Group = serde_json::from_value(rule.tree.clone())?;
            validate("rules", &tree).map_err(|e| anyhow!("{}: invalid rule {e:?}", rule.name))?;
            eprintln!("[bench] {}", rule.name);

            // Engine: evaluate + count + the preview's sample, as a preview does.
            let mut count = 0;
            for _ in 0..3 {
                count = index.evaluate(&tree, now).count();
            }
            let mut samples = Vec::with_capacity(options.reps);
            for _ in 0..options.reps {
                let started = Instant::now();
                let members = index.evaluate(black_box(&tree), now);
                let n = members.count();
                black_box(members.sample(10));
                samples.push(started.elapsed());
                if n != count {
                    bail!("engine count changed between runs");
                }
            }
            let engine = Timing::of(samples);

            let predicate = sql::compile(&tree, now, 2);
            let (compiled_count, compiled) = time_sql(&mut conn, options.sql_reps, async |conn| {
                Ok(segments::count(conn, TENANT, &predicate).await?)
            })
            .await?;
            let best_sql = rule
                .best_sql
                .replace("{now}", &instant(now))
                .replace("{d7}", &days(7))
                .replace("{d30}", &days(30))
                .replace("{d91}", &days(91))
                .replace("{d180}", &days(180));
            // The best SQL is timed with PostgreSQL's JIT on (the default) and off, and
            // the faster kept: compiling the plan can cost more than running it.
            let mut best_runs = Vec::new();
            for jit in ["on", "off"] {
                conn.batch_execute(&format!("SET jit = {jit}")).await?;
                let (n, timing) = time_sql(&mut conn, options.sql_reps, async |conn| {
                    let row: CountRow = diesel::sql_query(&best_sql).get_result(conn).await?;
                    Ok(row.count)
                })
                .await?;
                best_runs.push((n, timing, jit));
            }
            conn.batch_execute("RESET jit").await?;
            best_runs.sort_by(|a, b| a.1.p50.total_cmp(&b.1.p50));
            let Some((best_count, best, best_jit)) = best_runs.into_iter().next() else {
                bail!("no best SQL run");
            };
            if options.explain {
                conn.batch_execute(&format!("SET jit = {best_jit}")).await?;
                #[derive(QueryableByName)]
                struct PlanLine {
                    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
                    line: String,
                }
                let plan: Vec<PlanLine> =
                    diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS) {best_sql}"))
                        .load(&mut conn)
                        .await?;
                eprintln!("[bench] plan of the best SQL for {} (jit {best_jit}):", rule.name);
                for l in plan {
                    eprintln!("    {}", l.line);
                }
                conn.batch_execute("RESET jit").await?;
            }
            if compiled_count != count as i64 || best_count != count as i64 {
                bail!(
                    "{}: counts disagree: engine {count}, compiled SQL {compiled_count}, best SQL {best_count}",
                    rule.name
                );
            }
            results.push(RuleResult {
                name: rule.name,
                what: rule.what,
                count,
                engine,
                compiled,
                best,
                best_jit,
            });
        }

        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let others = CpuSample::take().others_since(&cpu_before);
        let timed = timed.elapsed();

        // Report.
        let per = |bytes: u64| bytes as f64 / customers as f64;
        println!("### {} customers\n", thousands(customers));
        println!(
            "Data: {} customers, {} behaviour events, scores for about 85%. {}",
            thousands(customers),
            thousands(event_rows.trim().parse().unwrap_or(0)),
            sizes.trim()
        );
        println!(
            "Generated in {:.0} s; indexes and precomputed tables in {:.0} s.\n",
            generated.as_secs_f64(),
            prepared.as_secs_f64()
        );
        println!("| rule | members | engine p50 ms | engine p95 ms | compiled SQL p50 ms | best SQL p50 ms | best SQL p95 ms | best SQL jit | engine vs best SQL |");
        println!("|---|---:|---:|---:|---:|---:|---:|---|---:|");
        for r in &results {
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} | {} | {:.0}x |",
                r.name,
                thousands(r.count as u64),
                r.engine.p50,
                r.engine.p95,
                r.compiled.p50,
                r.best.p50,
                r.best.p95,
                r.best_jit,
                r.best.p50 / r.engine.p50
            );
        }
        let target = if customers >= 10_000_000 {
            TARGET_10M_P50_MS
        } else {
            TARGET_1M_P50_MS
        };
        let worst = results.iter().map(|r| r.engine.p50).fold(0.0, f64::max);
        let least = results
            .iter()
            .map(|r| r.best.p50 / r.engine.p50)
            .fold(f64::INFINITY, f64::min);
        println!(
            "\nTargets: engine p50 <= {target} ms (worst rule: {worst:.2} ms, {}); >= {TARGET_SPEEDUP}x the best SQL \
             (least: {least:.0}x, {}).",
            if worst <= target { "met" } else { "NOT met" },
            if least >= TARGET_SPEEDUP { "met" } else { "NOT met" }
        );
        println!(
            "Runs per rule: engine {} (after 3 warm-up), each SQL {} (after 1 warm-up; the best SQL once with PostgreSQL's \
             JIT on and once off, the faster reported); min ms engine / compiled / best: {}.",
            results.as_slice().first().map_or(0, |r| r.engine.runs),
            results.as_slice().first().map_or(0, |r| r.best.runs),
            results
                .iter()
                .map(|r| format!("{:.2} / {:.0} / {:.1}", r.engine.min, r.compiled.min, r.best.min))
                .collect::<Vec<_>>()
                .join("; ")
        );
        println!(
            "While the rules were timed ({:.0} s), other work on the machine (not this bench, not its PostgreSQL) \
             kept {others:.2} of {cores} cores busy on average{}.",
            timed.as_secs_f64(),
            if others > 0.25 { ": the figures are depressed by it" } else { "" }
        );
        println!("\nRules:\n");
        for r in &results {
            println!("- **{}**: {}", r.name, r.what);
        }
        println!("\nEngine memory and load:\n");
        println!("| | |\n|---|---:|");
        println!("| load (`snapshot::load_tenant`, {} customers) | {:.1} s ({} customers/s) |",
            thousands(customers), load.as_secs_f64(), thousands((customers as f64 / load.as_secs_f64()) as u64));
        println!("| heap held by the index (`memory_bytes`) | {:.0} MiB = {:.0} bytes per customer |",
            heap as f64 / 1048576.0, per(heap as u64));
        println!("| process RSS growth over the load | {:.0} MiB = {:.0} bytes per customer |",
            rss_after.saturating_sub(rss_before) as f64 / 1048576.0, per(rss_after.saturating_sub(rss_before)));
        if let Some((n, read, applied)) = feed {
            println!(
                "| change feed: {} changed customers read (`load_changed`) / applied | {:.0} ms / {:.1} ms ({:.1} µs per change) |",
                thousands(n as u64),
                read.as_secs_f64() * 1000.0,
                applied.as_secs_f64() * 1000.0,
                applied.as_secs_f64() * 1e6 / n.max(1) as f64
            );
        }
        println!();
        drop(index);
        Ok::<(), anyhow::Error>(())
    })?;
    // The runtime still holds the connection's socket until it is gone.
    drop(runtime);
    pg.psql(
        "postgres",
        &format!("DROP DATABASE {database} WITH (FORCE)"),
    )?;
    Ok(())
}

/// Records like the SQL generator's, made in Rust one at a time, in id order
/// (`--engine-only`).
fn synthetic(
    customers: u64,
    events_per_customer: u64,
    now: DateTime<Utc>,
) -> impl Iterator<Item = CustomerRecord> {
    let mut rng = fastrand::Rng::with_seed(42);
    let pick = |rng: &mut fastrand::Rng, list: &[&str]| list[rng.usize(..list.len())].to_owned();
    let states = [
        "CA", "CA", "CA", "CA", "CA", "TX", "TX", "TX", "NY", "NY", "NY", "FL", "FL", "IL", "PA",
        "OH", "GA", "NC", "MI", "NJ", "VA", "WA", "AZ", "MA", "TN", "IN", "MO", "MD", "WI", "CO",
        "MN", "SC", "AL", "LA", "KY", "OR", "OK", "CT", "UT", "IA", "NV", "AR", "MS", "KS", "NM",
        "NE", "ID", "WV", "HI", "NH", "ME", "MT", "RI", "DE", "SD", "ND", "AK", "VT", "WY",
    ];
    let cities = [
        "Los Angeles",
        "San Francisco",
        "San Diego",
        "San Jose",
        "Sacramento",
        "Houston",
        "Austin",
        "Dallas",
        "San Antonio",
        "New York",
        "Brooklyn",
        "Buffalo",
        "Miami",
        "Orlando",
        "Tampa",
        "Chicago",
        "Philadelphia",
        "Pittsburgh",
        "Columbus",
        "Atlanta",
        "Charlotte",
        "Detroit",
        "Newark",
        "Seattle",
        "Phoenix",
        "Boston",
        "Nashville",
        "Denver",
        "Portland",
        "Santa Fe",
    ];
    let types = [
        "page_view",
        "page_view",
        "page_view",
        "page_view",
        "page_view",
        "page_view",
        "page_view",
        "page_view",
        "page_view",
        "page_view",
        "add_to_cart",
        "add_to_cart",
        "add_to_cart",
        "add_to_cart",
        "add_to_cart",
        "purchase",
        "purchase",
        "email_click",
        "email_click",
        "email_click",
    ];
    let categories = [
        "shoes", "hats", "bags", "shirts", "pants", "dresses", "jackets", "socks", "watches",
        "jewelry", "sports", "home",
    ];
    let segments = [
        "Champions",
        "Loyal",
        "Potential Loyalists",
        "New",
        "Promising",
        "At Risk",
        "Cant Lose",
        "Hibernating",
        "Lost",
    ];
    let ago = move |rng: &mut fastrand::Rng, days: f64| {
        now - chrono::Duration::microseconds((rng.f64() * days * 86_400e6) as i64)
    };
    (1..=customers).map(move |i| {
            let orders = (-(1.0 - rng.f64()).ln() * 1.8).floor() as i64;
            let last = ago(&mut rng, 365.0);
            let mut attributes = serde_json::Map::new();
            attributes.insert("vip".into(), json!(rng.f64() < 0.08));
            if rng.f64() < 0.9 {
                attributes.insert(
                    "plan".into(),
                    json!(pick(&mut rng, &["free", "free", "free", "pro", "team"])),
                );
            }
            attributes.insert("age".into(), json!(18 + rng.i64(0..60)));
            let spent = if orders > 0 {
                orders * (1500 + rng.i64(0..13_500))
            } else {
                0
            };
            // About `events_per_customer` events each, spread like the SQL's.
            let n = (0..events_per_customer * 2).filter(|_| rng.bool()).count();
            let events = (0..n)
                .map(|_| BehaviourEvent {
                    event_type: pick(&mut rng, &types),
                    occurred_at: ago(&mut rng, 60.0),
                    properties: json!({"category": pick(&mut rng, &categories), "price": 500 + rng.i64(0..20_000)}),
                })
                .collect();
            CustomerRecord {
                id: uuid::Uuid::from_u128((u128::from(i) << 64) | u128::from(rng.u64(..))),
                name: Some(format!("Name{} Last{}", rng.u8(..20), rng.u8(..16))),
                email: Some(format!("user{i}@example.com")),
                phone: (rng.f64() < 0.7).then(|| format!("+1{:010}", rng.u64(..10_000_000_000))),
                city: (rng.f64() < 0.95).then(|| pick(&mut rng, &cities)),
                state: (rng.f64() < 0.97).then(|| pick(&mut rng, &states)),
                country: Some("US".into()),
                zip_code: Some(format!("{:05}", rng.u32(..100_000))),
                loyalty_tier: match rng.f64() {
                    x if x < 0.10 => Some("gold".into()),
                    x if x < 0.35 => Some("silver".into()),
                    x if x < 0.70 => Some("bronze".into()),
                    _ => None,
                },
                signed_up_at: Some(ago(&mut rng, 1095.0)),
                consent_email: rng.f64() < 0.6,
                consent_sms: rng.f64() < 0.3,
                consent_push: rng.f64() < 0.4,
                orders_count: orders,
                total_spent: spent,
                first_order_at: (orders > 0)
                    .then(|| last - chrono::Duration::days(rng.i64(0..700))),
                last_order_at: (orders > 0).then_some(last),
                scores: (rng.f64() < 0.85).then(|| Scores {
                    rfm_segment: Some(pick(&mut rng, &segments)),
                    recency_score: Some(rng.i32(1..6)),
                    frequency_score: Some(rng.i32(1..6)),
                    monetary_score: Some(rng.i32(1..6)),
                    clv: Some(spent * 3 / 2),
                    clv_tier: Some(pick(&mut rng, &["high", "medium", "low"])),
                    churn_risk: Some(pick(
                        &mut rng,
                        &["active", "active", "at_risk", "churning", "churned"],
                    )),
                    churn_probability: Some(rng.f64()),
                    emails_opened: (rng.f64() * rng.f64() * 40.0) as i64,
                    emails_clicked: (rng.f64() * rng.f64() * 6.0) as i64,
                    unsubscribed: rng.f64() < 0.08,
                }),
                attributes,
                events,
            }
    })
}

/// `--engine-only`: the engine alone on records made in Rust.
fn engine_only(options: &Options) -> Result<()> {
    for &customers in &options.sizes {
        let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros())
            .ok_or_else(|| anyhow!("clock out of range"))?;
        let rss_before = rss_bytes();
        let (index, _) = step("generate records and build the index", || {
            let mut index = TenantIndex::default();
            for record in synthetic(customers, options.events_per_customer, now) {
                index.upsert(record);
            }
            index.optimize();
            Ok(index)
        })?;
        println!(
            "{} customers: {:.0} bytes per customer (memory_bytes), RSS growth {:.0} bytes per customer",
            thousands(customers),
            index.memory_bytes() as f64 / customers as f64,
            rss_bytes().saturating_sub(rss_before) as f64 / customers as f64
        );
        for rule in rules(options.only.as_deref()) {
            let tree: Group = serde_json::from_value(rule.tree.clone())?;
            let mut count = 0;
            let mut samples = Vec::new();
            for _ in 0..options.reps {
                let started = Instant::now();
                let members = index.evaluate(black_box(&tree), now);
                count = members.count();
                black_box(members.sample(10));
                samples.push(started.elapsed());
            }
            let t = Timing::of(samples);
            println!(
                "{}: {} members, p50 {:.2} ms, p95 {:.2} ms, min {:.2} ms",
                rule.name,
                thousands(count as u64),
                t.p50,
                t.p95,
                t.min
            );
            // Each condition alone, to see what costs what.
            for condition in tree
                .conditions
                .iter()
                .chain(tree.groups.iter().flat_map(|g| g.conditions.iter()))
            {
                let alone = Group {
                    id: String::new(),
                    logic: segmentation::domain::rules::Logic::And,
                    negate: false,
                    conditions: vec![condition.clone()],
                    groups: Vec::new(),
                };
                let mut samples = Vec::new();
                let mut n = 0;
                for _ in 0..options.reps {
                    let started = Instant::now();
                    n = index.evaluate(black_box(&alone), now).count();
                    samples.push(started.elapsed());
                }
                let t = Timing::of(samples);
                println!(
                    "    {} {}: {} members, p50 {:.2} ms",
                    condition.field,
                    condition.operator,
                    thousands(n as u64),
                    t.p50
                );
            }
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let options = Options::parse()?;
    if options.engine_only {
        return engine_only(&options);
    }
    let dir: PathBuf =
        std::env::temp_dir().join(format!("mkt-bench-segmentation-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let pg_dir = dir.join("pg");
    let (mut pg, _) = step("start PostgreSQL", || PostgresServer::start(&pg_dir, 0))?;
    // Memory for PostgreSQL's caches, as a server with this RAM would be given, and
    // no fsync wait per generating statement (nothing here measures writes).
    pg.psql(
        "postgres",
        "ALTER SYSTEM SET shared_buffers = '4GB'; ALTER SYSTEM SET effective_cache_size = '12GB'; \
         ALTER SYSTEM SET work_mem = '64MB'; ALTER SYSTEM SET maintenance_work_mem = '1GB'; \
         ALTER SYSTEM SET max_wal_size = '2GB'; ALTER SYSTEM SET synchronous_commit = off; \
         ALTER SYSTEM SET random_page_cost = 1.1",
    )?;
    pg.stop()?;
    let mut pg =
        PostgresServer::start(&pg_dir, 0).context("restart PostgreSQL with the settings")?;
    let version = pg.psql("postgres", "SHOW server_version")?;
    let settings = pg.psql(
        "postgres",
        "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings \
         WHERE name IN ('shared_buffers', 'work_mem', 'effective_cache_size', 'max_parallel_workers_per_gather', 'jit', 'random_page_cost')",
    )?;

    println!("## Segmentation benchmark\n");
    println!(
        "Machine: {}. PostgreSQL {} on the same machine ({}). Release build; the engine is \
         single-threaded, PostgreSQL may use parallel workers.\n",
        machine(),
        version.trim(),
        settings.trim()
    );
    for &customers in &options.sizes {
        run_size(&pg, &options, customers)?;
    }
    pg.stop()?;
    Ok(())
}
