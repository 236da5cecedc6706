//! Property test: on random customers and random valid rule trees, the SQL the
//! preview runs selects exactly the customers the reference evaluator accepts.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use mkt_test_support as support;
use segmentation::domain::rules::evaluate::{Customer, EventRecord, evaluate};
use segmentation::domain::rules::{Condition, Group, Logic, PropertyFilter, sql, validate};
use segmentation::store::segments;
use serde_json::{Value, json};

const TENANT: &str = "prop";
const STATES: [&str; 4] = ["CA", "ca", "TX", "NY"];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];

fn pick<'a>(rng: &mut fastrand::Rng, options: &[&'a str]) -> &'a str {
    options[rng.usize(..options.len())]
}

fn instant(rng: &mut fastrand::Rng, now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::seconds(rng.i64(0..400 * 86_400))
}

struct Generated {
    id: uuid::Uuid,
    customer: Customer,
    sql: Vec<String>,
}

fn sql_text(value: Option<&str>) -> String {
    value.map_or("NULL".into(), |v| format!("'{v}'"))
}

fn sql_time(value: Option<DateTime<Utc>>) -> String {
    value.map_or("NULL".into(), |v| {
        format!("'{}'::timestamptz", v.to_rfc3339())
    })
}

fn generate_customer(rng: &mut fastrand::Rng, now: DateTime<Utc>) -> Generated {
    let id = uuid::Uuid::from_u128(rng.u128(..));
    let state = rng.bool().then(|| pick(rng, &STATES));
    let tier = rng.bool().then(|| pick(rng, &TIERS));
    let orders = rng.i64(0..6);
    let spent = if orders == 0 { 0 } else { rng.i64(0..30_000) };
    let created = rng.bool().then(|| instant(rng, now));
    let last = (orders > 0).then(|| instant(rng, now));
    let consent = rng.bool();
    let churn = rng.bool().then(|| f64::from(rng.u8(0..=100)) / 100.0);
    let vip = if rng.bool() { Some(rng.bool()) } else { None };
    let level = rng.bool().then(|| rng.i64(0..10));

    let mut fields = std::collections::BTreeMap::new();
    if let Some(s) = state {
        fields.insert("state".to_owned(), json!(s));
    }
    if let Some(t) = tier {
        fields.insert("loyalty_tier".to_owned(), json!(t));
    }
    fields.insert("orders_count".to_owned(), json!(orders));
    fields.insert("total_spent".to_owned(), json!(spent));
    if let Some(c) = created {
        fields.insert("created_at".to_owned(), json!(c.to_rfc3339()));
    }
    if let Some(l) = last {
        fields.insert("last_order_at".to_owned(), json!(l.to_rfc3339()));
    }
    fields.insert("consent_email".to_owned(), json!(consent));
    if let Some(c) = churn {
        fields.insert("churn_probability".to_owned(), json!(c));
    }
    // No engagement row reads as zero opens, like the SQL's COALESCE.
    fields.insert("emails_opened".to_owned(), json!(0));
    let mut attributes = serde_json::Map::new();
    if let Some(v) = vip {
        attributes.insert("vip".into(), json!(v));
    }
    if let Some(l) = level {
        attributes.insert("level".into(), json!(l));
    }
    let events: Vec<EventRecord> = (0..rng.usize(0..4))
        .map(|_| EventRecord {
            event_type: pick(rng, &["add_to_cart", "page_view"]).to_owned(),
            occurred_at: now - Duration::seconds(rng.i64(0..20 * 86_400)),
            properties: json!({"category": pick(rng, &["shoes", "Shoes", "hats"])}),
        })
        .collect();

    let mut statements = vec![format!(
        "INSERT INTO customer_profiles (tenant_id, customer_id, state, loyalty_tier, orders_count, total_spent, signed_up_at, \
         last_order_at, consent_email, attributes, version) VALUES ('{TENANT}', '{id}', {}, {}, {orders}, {spent}, {}, {}, {consent}, '{}', 1)",
        sql_text(state),
        sql_text(tier),
        sql_time(created),
        sql_time(last),
        Value::Object(attributes.clone()),
    )];
    if let Some(c) = churn {
        statements.push(format!("INSERT INTO customer_scores (tenant_id, customer_id, churn_probability) VALUES ('{TENANT}', '{id}', {c})"));
    }
    for (i, e) in events.iter().enumerate() {
        let event_id = uuid::Uuid::from_u128(id.as_u128().wrapping_add(i as u128 + 1));
        statements.push(format!(
            "INSERT INTO customer_events (tenant_id, event_id, customer_id, event_type, properties, occurred_at) \
             VALUES ('{TENANT}', '{event_id}', '{id}', '{}', '{}', '{}')",
            e.event_type,
            e.properties,
            e.occurred_at.to_rfc3339()
        ));
    }
    Generated {
        id,
        customer: Customer {
            fields,
            attributes,
            events,
        },
        sql: statements,
    }
}

fn random_condition(rng: &mut fastrand::Rng, now: DateTime<Utc>) -> Condition {
    let mut c = Condition {
        id: String::new(),
        field: String::new(),
        operator: String::new(),
        value: None,
        value2: None,
        event_type: None,
        within_days: None,
        property: None,
    };
    let numeric_ops = [
        "equals",
        "not_equals",
        "greater_than",
        "greater_than_or_equals",
        "less_than",
        "less_than_or_equals",
        "between",
        "in",
        "not_in",
        "is_set",
        "is_not_set",
    ];
    match rng.u8(0..11) {
        0 => {
            c.field = "state".into();
            c.operator = pick(
                rng,
                &[
                    "equals",
                    "not_equals",
                    "in",
                    "not_in",
                    "contains",
                    "not_contains",
                    "starts_with",
                    "ends_with",
                    "is_set",
                    "is_not_set",
                ],
            )
            .into();
            c.value = Some(if c.operator.ends_with("in") {
                json!([pick(rng, &STATES), pick(rng, &STATES)])
            } else {
                json!(pick(rng, &["CA", "c", "X", "NY"]))
            });
        }
        1 => {
            c.field = "loyalty_tier".into();
            c.operator = pick(rng, &["equals", "not_equals", "in", "is_set", "is_not_set"]).into();
            c.value = Some(if c.operator == "in" {
                json!([pick(rng, &TIERS)])
            } else {
                json!(pick(rng, &TIERS))
            });
        }
        2..=4 => {
            c.field = pick(
                rng,
                &[
                    "orders_count",
                    "total_spent",
                    "avg_order_value",
                    "last_order_days_ago",
                ],
            )
            .into();
            c.operator = pick(rng, &numeric_ops).into();
            let scale = if c.field == "orders_count" {
                6
            } else if c.field == "last_order_days_ago" {
                400
            } else {
                30_000
            };
            let a = rng.i64(0..scale);
            let b = a + rng.i64(0..scale);
            c.value = Some(if c.operator.ends_with("in") {
                json!([a, b])
            } else {
                json!(a)
            });
            if c.operator == "between" {
                c.value2 = Some(json!(b));
            }
        }
        5..=6 => {
            c.field = pick(rng, &["created_at", "last_order_at"]).into();
            c.operator = pick(
                rng,
                &[
                    "before",
                    "after",
                    "between",
                    "newer_than_days",
                    "older_than_days",
                    "is_set",
                    "is_not_set",
                ],
            )
            .into();
            let a = instant(rng, now);
            let b = a + Duration::seconds(rng.i64(0..200 * 86_400));
            c.value = Some(if c.operator.ends_with("days") {
                json!(rng.i64(0..400))
            } else {
                json!(a.to_rfc3339())
            });
            if c.operator == "between" {
                c.value2 = Some(json!(b.to_rfc3339()));
            }
        }
        7 => {
            c.field = "consent_email".into();
            c.operator = pick(rng, &["equals", "not_equals", "is_set"]).into();
            c.value = Some(json!(rng.bool()));
        }
        8 => {
            c.field = "churn_probability".into();
            c.operator = pick(rng, &numeric_ops).into();
            c.value = Some(json!(f64::from(rng.u8(0..=100)) / 100.0));
            if c.operator.ends_with("in") {
                c.value = Some(json!([0.5, f64::from(rng.u8(0..=100)) / 100.0]));
            }
            if c.operator == "between" {
                c.value = Some(json!(0.2));
                c.value2 = Some(json!(0.8));
            }
        }
        9 => {
            c.field = pick(rng, &["attributes.vip", "attributes.level"]).into();
            c.operator = pick(
                rng,
                &[
                    "equals",
                    "not_equals",
                    "greater_than",
                    "less_than_or_equals",
                    "is_set",
                    "is_not_set",
                    "in",
                ],
            )
            .into();
            c.value = Some(if c.field.ends_with("vip") {
                json!(rng.bool())
            } else {
                json!(rng.i64(0..10))
            });
            if c.operator == "in" {
                c.value = Some(json!([rng.i64(0..10), rng.i64(0..10)]));
            }
        }
        _ => {
            c.field = "event".into();
            c.operator = pick(
                rng,
                &[
                    "performed_at_least",
                    "performed_at_most",
                    "performed_exactly",
                    "not_performed",
                ],
            )
            .into();
            c.event_type = Some(pick(rng, &["add_to_cart", "page_view", "purchase"]).into());
            c.within_days = Some(rng.i64(1..21));
            c.value = Some(json!(rng.i64(0..3)));
            if rng.bool() {
                c.property = Some(PropertyFilter {
                    name: "category".into(),
                    value: json!(pick(rng, &["shoes", "HATS"])),
                });
            }
        }
    }
    c
}

fn random_group(rng: &mut fastrand::Rng, now: DateTime<Utc>, depth: usize) -> Group {
    let conditions = (0..rng.usize(1..4))
        .map(|_| random_condition(rng, now))
        .collect();
    let groups = if depth < 3 {
        (0..rng.usize(0..3))
            .map(|_| random_group(rng, now, depth + 1))
            .collect()
    } else {
        Vec::new()
    };
    Group {
        id: String::new(),
        logic: if rng.bool() { Logic::And } else { Logic::Or },
        negate: rng.u8(0..4) == 0,
        conditions,
        groups,
    }
}

#[tokio::test]
async fn sql_and_reference_evaluator_agree_on_random_rules_and_customers() {
    let url = support::database_for(&segmentation::SPEC).await;
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    diesel::sql_query("SET search_path TO segmentation")
        .execute(&mut conn)
        .await
        .expect("search path");
    let seed = std::env::var("MKT_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_121u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    let now = Utc.timestamp_opt(1_795_000_000, 0).single().expect("now");
    let customers: Vec<Generated> = (0..250).map(|_| generate_customer(&mut rng, now)).collect();
    for statement in customers.iter().flat_map(|c| c.sql.iter()) {
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    let mut checked = 0;
    // Cases whose audience is neither empty nor everyone: the interesting ones.
    let mut discriminating = 0;
    for case in 0..300 {
        let tree = random_group(&mut rng, now, 1);
        if validate("rules", &tree).is_err() {
            continue;
        }
        let predicate = sql::compile(&tree, now, 2);
        let from_sql: BTreeSet<uuid::Uuid> =
            segments::members(&mut conn, TENANT, &predicate, 10_000, 0)
                .await
                .unwrap_or_else(|e| panic!("case {case}: {e}\n{}", predicate.sql))
                .into_iter()
                .collect();
        let from_reference: BTreeSet<uuid::Uuid> = customers
            .iter()
            .filter(|c| evaluate(&tree, &c.customer, now))
            .map(|c| c.id)
            .collect();
        assert_eq!(
            from_sql,
            from_reference,
            "case {case} (seed {seed}) disagrees for rules {}",
            serde_json::to_string(&tree).unwrap_or_default()
        );
        checked += 1;
        if !from_reference.is_empty() && from_reference.len() < customers.len() {
            discriminating += 1;
        }
    }
    assert!(checked > 250, "only {checked} valid random trees");
    assert!(
        discriminating > 100,
        "only {discriminating} trees split the customers"
    );
}
