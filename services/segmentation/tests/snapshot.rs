//! The engine's loader and change feed against a real PostgreSQL: the initial load, a
//! change made by a transaction that commits only after a read (the case the
//! watermark protocol exists for), and an erasure.

use chrono::{Duration, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use mkt_test_support as support;
use segmentation::domain::engine::{Change, TenantIndex};
use segmentation::domain::rules::Group;
use segmentation::store::snapshot::{load_changed, load_tenant};
use serde_json::json;
use uuid::Uuid;

const TENANT: &str = "snap";
const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);
const C: Uuid = Uuid::from_u128(0xc);

async fn connect(url: &str) -> AsyncPgConnection {
    let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
    conn.batch_execute("SET search_path TO segmentation")
        .await
        .expect("search path");
    conn
}

fn rule(json: serde_json::Value) -> Group {
    serde_json::from_value(json).expect("canonical tree")
}

fn members(index: &TenantIndex, tree: &Group) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = index.evaluate(tree, Utc::now()).ids().collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn loads_a_tenant_and_follows_its_changes_even_when_they_commit_late() {
    let url = support::database_for(&segmentation::SPEC).await;
    let mut conn = connect(&url).await;
    let recent = (Utc::now() - Duration::days(2)).to_rfc3339();
    conn.batch_execute(&format!(
        "INSERT INTO customer_profiles (tenant_id, customer_id, state, attributes, orders_count, total_spent, version) VALUES \
           ('{TENANT}', '{A}', 'CA', '{{\"vip\": true}}', 2, 5000, 1), \
           ('{TENANT}', '{B}', NULL, '{{}}', 0, 0, 0), \
           ('other', '{C}', 'CA', '{{}}', 0, 0, 1); \
         INSERT INTO customer_profiles (tenant_id, customer_id, version, erased_at) VALUES ('{TENANT}', '{C}', 1, now()); \
         INSERT INTO customer_scores (tenant_id, customer_id, emails_opened, churn_risk) VALUES ('{TENANT}', '{A}', 3, 'at_risk'); \
         INSERT INTO customer_events (tenant_id, event_id, customer_id, event_type, properties, occurred_at) VALUES \
           ('{TENANT}', gen_random_uuid(), '{A}', 'add_to_cart', '{{\"category\": \"Shoes\"}}', '{recent}'), \
           ('{TENANT}', gen_random_uuid(), '{A}', 'add_to_cart', '{{\"category\": \"hats\"}}', '{recent}'), \
           ('{TENANT}', gen_random_uuid(), '{B}', 'page_view', '{{}}', '{recent}');"
    ))
    .await
    .expect("seed");

    let (mut index, watermark) = load_tenant(&mut conn, TENANT).await.expect("load");
    assert_eq!(
        index.len(),
        2,
        "erased customers and other tenants stay out"
    );
    assert!(!index.contains(C));
    let in_ca = rule(json!({"logic": "AND", "conditions": [
        {"field": "state", "operator": "equals", "value": "ca"},
        {"field": "attributes.vip", "operator": "equals", "value": true},
        {"field": "churn_risk", "operator": "equals", "value": "AT_RISK"},
        {"field": "avg_order_value", "operator": "equals", "value": 2500}
    ]}));
    assert_eq!(members(&index, &in_ca), vec![A]);
    let shoes = rule(json!({"logic": "AND", "conditions": [
        {"field": "event", "operator": "performed_exactly", "value": 1, "event_type": "add_to_cart",
         "within_days": 7, "property": {"name": "category", "value": "shoes"}}
    ]}));
    assert_eq!(members(&index, &shoes), vec![A]);
    let unengaged = rule(json!({"logic": "AND", "conditions": [
        {"field": "emails_opened", "operator": "equals", "value": 0}
    ]}));
    assert_eq!(
        members(&index, &unengaged),
        vec![B],
        "no scores row reads as 0"
    );

    // A writer stamps A while our next read runs, and commits after it. Other tests
    // share this PostgreSQL cluster, and their open transactions can hold `xmin` back
    // so that reads return customers again: the protocol allows that (upserts are
    // idempotent), so the assertions look for what must and must not be there.
    let mut writer = connect(&url).await;
    writer
        .batch_execute(&format!(
            "BEGIN; UPDATE customer_profiles SET state = 'TX', revision = pg_current_xact_id()::text::bigint \
             WHERE tenant_id = '{TENANT}' AND customer_id = '{A}'"
        ))
        .await
        .expect("open writer");
    let (changes, next) = load_changed(&mut conn, TENANT, watermark)
        .await
        .expect("changes");
    assert!(next >= watermark, "the watermark never moves back");
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::Upsert(r) if r.state.as_deref() == Some("TX"))),
        "the uncommitted write is invisible: {changes:?}"
    );
    writer.batch_execute("COMMIT").await.expect("commit");
    let (changes, after) = load_changed(&mut conn, TENANT, next)
        .await
        .expect("changes");
    assert!(after >= next, "the watermark never moves back");
    assert!(
        changes.iter().any(|c| matches!(c, Change::Upsert(r) if r.id == A && r.state.as_deref() == Some("TX") && r.events.len() == 2)),
        "the late commit is caught: {changes:?}"
    );
    assert!(
        changes.iter().all(|c| match c {
            Change::Upsert(r) => r.id == A || r.id == B,
            Change::Remove(id) => *id == C,
        }),
        "only this tenant's customers come back, the erased one as a removal: {changes:?}"
    );
    for change in changes {
        index.apply(change);
    }
    assert!(members(&index, &in_ca).is_empty());

    // Erasure is a removal.
    conn.batch_execute(&format!(
        "UPDATE customer_profiles SET erased_at = now(), revision = pg_current_xact_id()::text::bigint \
         WHERE tenant_id = '{TENANT}' AND customer_id = '{B}'"
    ))
    .await
    .expect("erase");
    let (changes, _) = load_changed(&mut conn, TENANT, after)
        .await
        .expect("changes");
    assert!(changes.contains(&Change::Remove(B)), "{changes:?}");
    assert!(
        changes.iter().all(|c| match c {
            Change::Upsert(r) => r.id == A,
            Change::Remove(id) => *id == B || *id == C,
        }),
        "besides the erasure, at most re-reads: {changes:?}"
    );
    for change in changes {
        index.apply(change);
    }
    assert_eq!(index.len(), 1);
    assert!(members(&index, &unengaged).is_empty());
}
