//! Segment previews through the gateway, over the read model fed by ingestion's events:
//! each seed dialect against a hand-computed audience, nested negated groups with an
//! event condition, invalid rules, and tenant isolation.

use std::time::Duration;

use e2e::Stack;
use mkt_test_support as support;
use reqwest::Method;
use serde_json::{Value, json};

async fn seed(stack: &Stack, token: &str) -> Vec<String> {
    // (email, state, orders in cents); hand-computed audiences below refer to indexes.
    let people = [
        ("ann@example.com", "CA", vec![6000, 6000]), // 0: CA, spent 12000, 2 orders
        ("bob@example.com", "TX", vec![20000]),      // 1: TX, spent 20000, 1 order
        ("cy@example.com", "CA", vec![100, 100, 100, 100, 100]), // 2: CA, spent 500, 5 orders
        ("dee@example.com", "NY", vec![]),           // 3: NY, no orders
    ];
    let mut ids = Vec::new();
    for (email, state, orders) in &people {
        let customer = json!({"name": email, "email": email,
            "address": {"street": "1 St", "city": "X", "state": state, "zipCode": "1", "country": "USA"}});
        let (status, _, body) = stack
            .send(
                Method::POST,
                "/api/v2/cdp/customers",
                token,
                Some(&customer),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["data"]["id"].as_str().expect("id").to_owned();
        for amount in orders {
            let order = json!({"customerId": id, "currency": "USD", "status": "delivered", "totalAmount": amount,
                "items": [{"productId": "p", "name": "n", "price": amount, "quantity": 1, "total": amount}]});
            assert_eq!(
                stack
                    .send(Method::POST, "/api/v2/cdp/orders", token, Some(&order), &[])
                    .await
                    .0,
                201
            );
        }
        ids.push(id);
    }
    for _ in 0..2 {
        let event = json!({"customer_email": "cy@example.com", "event_type": "add_to_cart", "properties": {"category": "Shoes"}});
        assert_eq!(
            stack
                .send(Method::POST, "/api/v2/cdp/events", token, Some(&event), &[])
                .await
                .0,
            201
        );
    }
    let projected = "SELECT count(*) FROM segmentation.customer_profiles WHERE email IS NOT NULL AND \
                     orders_count = (CASE email WHEN 'ann@example.com' THEN 2 WHEN 'bob@example.com' THEN 1 WHEN 'cy@example.com' THEN 5 ELSE 0 END)";
    support::eventually(Duration::from_secs(15), "the read model", || async {
        let profiles = support::scalar_i64(&stack.segmentation_db, projected).await;
        let events = support::scalar_i64(
            &stack.segmentation_db,
            "SELECT count(*) FROM segmentation.customer_events",
        )
        .await;
        (profiles == 4 && events == 2).then_some(())
    })
    .await;
    ids
}

async fn preview(stack: &Stack, token: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = stack
        .send(
            Method::POST,
            "/api/v1/marketing/segments/preview",
            token,
            Some(&body),
            &[],
        )
        .await;
    (status, body)
}

fn members(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["data"]["sample_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_owned())
        .collect();
    ids.sort();
    ids
}

fn expect(ids: &[String], indexes: &[usize]) -> Vec<String> {
    let mut out: Vec<String> = indexes.iter().map(|i| ids[*i].clone()).collect();
    out.sort();
    out
}

#[actix_web::test]
async fn previews_in_every_dialect_match_hand_computed_audiences() {
    let stack = Stack::start().await;
    let writer = support::token("acme", &["ingest"]);
    let ids = seed(&stack, &writer).await;
    let marketer = support::token("acme", &["marketer"]);

    // Seed 000: (totalSpend > 10000 AND state = CA) OR orderCount >= 5 -> ann, cy.
    let (status, body) = preview(&stack, &marketer, json!({"rules": {"groups": [
        {"conditions": [{"field": "totalSpend", "operator": "greaterThan", "value": 10000}, {"field": "state", "operator": "equals", "value": "ca"}]},
        {"conditions": [{"field": "orderCount", "operator": "greaterThanOrEqual", "value": 5}]}
    ]}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["count"], 2);
    assert_eq!(body["data"]["audienceSize"], 2);
    assert_eq!(members(&body), expect(&ids, &[0, 2]));

    // Seed 001: total_spent >= 500 AND state in [CA, TX] -> ann, bob, cy.
    let (_, body) = preview(
        &stack,
        &marketer,
        json!({"criteria": {"total_spent": {"gte": 500}, "state": ["CA", "TX"]}}),
    )
    .await;
    assert_eq!(members(&body), expect(&ids, &[0, 1, 2]));

    // Seed 003 tree: NOT (state = CA) AND orders_count between 0 and 1 -> bob, dee;
    // and an event condition: 2+ add_to_cart of Shoes within 7 days -> cy.
    let (_, body) = preview(
        &stack,
        &marketer,
        json!({"rules": {"id": "root", "logic": "AND", "conditions": [
        {"id": "c1", "field": "orders_count", "operator": "between", "value": 0, "value2": 1}
    ], "groups": [{"id": "g1", "logic": "OR", "negate": true, "conditions": [
        {"id": "c2", "field": "state", "operator": "equals", "value": "CA"}
    ], "groups": []}]}}),
    )
    .await;
    assert_eq!(members(&body), expect(&ids, &[1, 3]));
    let (_, body) = preview(&stack, &marketer, json!({"rules": {"logic": "AND", "conditions": [
        {"field": "event", "operator": "performed_at_least", "value": 2, "event_type": "add_to_cart", "within_days": 7,
         "property": {"name": "category", "value": "shoes"}}
    ]}})).await;
    assert_eq!(members(&body), expect(&ids, &[2]));

    // An invalid rule names the bad node.
    let (status, body) = preview(
        &stack,
        &marketer,
        json!({"rules": {"logic": "AND", "conditions": [
            {"field": "orders_count", "operator": "between", "value": 1}
        ]}}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_segment_criteria"))
    );
    assert!(
        body["details"]["rules.conditions[0].value2"].is_array(),
        "{body}"
    );

    // Another tenant sees none of these customers.
    let other = support::token("globex", &["marketer"]);
    let (_, body) = preview(
        &stack,
        &other,
        json!({"criteria": {"orders_count": {"gte": 0}}}),
    )
    .await;
    assert_eq!(body["data"]["count"], 0);

    let (status, _, fields) = stack
        .send(
            Method::GET,
            "/api/v1/marketing/segments/fields",
            &marketer,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert!(fields["data"].as_array().is_some_and(|f| {
        f.iter()
            .any(|f| f["name"] == "total_spent" && f["type"] == "integer")
    }));
}

#[actix_web::test]
async fn segments_are_created_counted_replaced_listed_and_deleted_per_tenant() {
    let stack = Stack::start().await;
    let writer = support::token("acme", &["ingest"]);
    let ids = seed(&stack, &writer).await;
    let marketer = support::token("acme", &["marketer"]);
    let path = "/api/v1/marketing/segments";

    let (status, _, created) = stack
        .send(Method::POST, path, &marketer, Some(&json!({"name": "CA buyers", "criteria": {"state": "CA", "orders_count": {"gte": 1}}})), &[])
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["message"],
        "Segment \"CA buyers\" created successfully."
    );
    assert_eq!(
        (
            created["data"]["type"].as_str(),
            created["data"]["cached_count"].as_i64()
        ),
        (Some("dynamic"), Some(2))
    );
    assert_eq!(
        created["data"]["rules"]["logic"], "AND",
        "stored as the canonical tree"
    );
    let id = created["data"]["id"].as_str().expect("id").to_owned();

    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, _, fixed) = stack
        .send(Method::POST, path, &marketer, Some(&json!({"name": "Hand picked", "type": "static", "customer_ids": [ids[1], ids[3], unknown]})), &[])
        .await;
    assert_eq!(
        (status, fixed["data"]["cached_count"].as_i64()),
        (201, Some(2)),
        "{fixed}"
    );

    let one = format!("{path}/{id}");
    let (status, _, replaced) = stack
        .send(
            Method::PUT,
            &one,
            &marketer,
            Some(
                &json!({"name": "Big spenders", "rules": {"groups": [{"conditions": [
            {"field": "totalSpend", "operator": "greaterThanOrEqual", "value": 12000}]}]}}),
            ),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(
        (
            replaced["data"]["name"].as_str(),
            replaced["data"]["cached_count"].as_i64()
        ),
        (Some("Big spenders"), Some(2))
    );

    let (_, _, listed) = stack
        .send(
            Method::GET,
            &format!("{path}?limit=10"),
            &marketer,
            None,
            &[],
        )
        .await;
    let names: Vec<&str> = listed["data"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, vec!["Hand picked", "Big spenders"], "newest first");
    let (_, _, statics) = stack
        .send(
            Method::GET,
            &format!("{path}?type=static"),
            &marketer,
            None,
            &[],
        )
        .await;
    assert_eq!(statics["pagination"]["total"], 1);

    let (status, _, envelope) = stack
        .send(
            Method::POST,
            path,
            &marketer,
            Some(&json!({"rules": {"logic": "AND", "conditions": []}})),
            &[],
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (400, Some("invalid_segment_criteria"))
    );
    let reader = support::token("acme", &["reader"]);
    assert_eq!(
        stack
            .send(
                Method::POST,
                path,
                &reader,
                Some(&json!({"name": "x", "criteria": {"state": "CA"}})),
                &[]
            )
            .await
            .0,
        403
    );
    let other = support::token("globex", &["marketer"]);
    assert_eq!(
        stack.send(Method::GET, &one, &other, None, &[]).await.0,
        404
    );
    assert_eq!(
        stack.send(Method::DELETE, &one, &other, None, &[]).await.0,
        404
    );

    assert_eq!(
        stack
            .send(Method::DELETE, &one, &marketer, None, &[])
            .await
            .0,
        204
    );
    assert_eq!(
        stack.send(Method::GET, &one, &marketer, None, &[]).await.0,
        404
    );
}

#[actix_web::test]
async fn every_operator_selects_its_hand_computed_audience() {
    let stack = Stack::start().await;
    let writer = support::token("acme", &["ingest"]);
    // 0 ann: CA, 2 orders, 12000 | 1 bob: TX, 1 order, 20000 | 2 cy: CA, 5 orders, 500,
    // two add_to_cart (category Shoes) | 3 dee: NY, no orders.
    let ids = seed(&stack, &writer).await;
    let marketer = support::token("acme", &["marketer"]);
    let condition = |field: &str, operator: &str, value: Value| json!({"field": field, "operator": operator, "value": value});
    let between =
        json!({"field": "total_spent", "operator": "between", "value": 500, "value2": 12000});
    let event = |operator: &str, times: i64| {
        json!({"field": "event", "operator": operator, "value": times,
               "event_type": "add_to_cart", "within_days": 7})
    };
    let cases: Vec<(Value, Vec<usize>)> = vec![
        (condition("state", "equals", json!("ca")), vec![0, 2]),
        (condition("state", "not_equals", json!("CA")), vec![1, 3]),
        (
            condition("total_spent", "greater_than", json!(12000)),
            vec![1],
        ),
        (
            condition("total_spent", "greater_than_or_equals", json!(12000)),
            vec![0, 1],
        ),
        (condition("orders_count", "less_than", json!(2)), vec![1, 3]),
        (
            condition("orders_count", "less_than_or_equals", json!(2)),
            vec![0, 1, 3],
        ),
        (between, vec![0, 2]),
        (condition("state", "in", json!(["TX", "ny"])), vec![1, 3]),
        (
            condition("state", "not_in", json!(["TX", "NY"])),
            vec![0, 2],
        ),
        (condition("email", "contains", json!("B@")), vec![1]),
        (
            condition("email", "not_contains", json!("nn")),
            vec![1, 2, 3],
        ),
        (condition("email", "starts_with", json!("c")), vec![2]),
        (
            condition("email", "ends_with", json!("e@example.com")),
            vec![3],
        ),
        (
            condition("last_order_at", "is_set", Value::Null),
            vec![0, 1, 2],
        ),
        (
            condition("last_order_at", "is_not_set", Value::Null),
            vec![3],
        ),
        (
            condition("created_at", "before", json!("2000-01-01T00:00:00Z")),
            vec![],
        ),
        (
            condition("created_at", "after", json!("2000-01-01T00:00:00Z")),
            vec![0, 1, 2, 3],
        ),
        (
            condition("last_order_at", "newer_than_days", json!(1)),
            vec![0, 1, 2],
        ),
        (
            condition("last_order_at", "older_than_days", json!(1)),
            vec![],
        ),
        (event("performed_at_least", 2), vec![2]),
        (event("performed_at_most", 1), vec![0, 1, 3]),
        (event("performed_exactly", 2), vec![2]),
        (event("not_performed", 0), vec![0, 1, 3]),
        (
            json!({"field": "event", "operator": "performed_at_least", "value": 2,
                   "event_type": "add_to_cart", "within_days": 7,
                   "property": {"name": "category", "value": "shoes"}}),
            vec![2],
        ),
    ];
    // The first preview is answered by SQL while the replica loads the tenant into its
    // in-memory engine; once loaded, the engine answers. Both must give these audiences.
    let rich = json!({"criteria": {"total_spent": {"gt": 12000}}, "sample_size": 100});
    let mut engines_seen = std::collections::BTreeSet::new();
    for (condition, expected) in &cases {
        let rules = json!({"rules": {"id": "root", "logic": "AND", "conditions": [condition], "groups": []},
                           "sample_size": 100});
        let (status, body) = preview(&stack, &marketer, rules).await;
        assert_eq!(status, 200, "{condition}: {body}");
        assert_eq!(
            members(&body),
            expect(&ids, expected),
            "{condition} ({})",
            body["data"]["evaluated_by"]
        );
        assert_eq!(body["data"]["count"], expected.len(), "{condition}");
        engines_seen.insert(
            body["data"]["evaluated_by"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert!(engines_seen.contains("sql"), "{engines_seen:?}");
    support::eventually(Duration::from_secs(15), "the engine to load", || async {
        let (_, body) = preview(&stack, &marketer, rich.clone()).await;
        (body["data"]["evaluated_by"] == "memory").then_some(())
    })
    .await;
    for (condition, expected) in &cases {
        let rules = json!({"rules": {"id": "root", "logic": "AND", "conditions": [condition], "groups": []},
                           "sample_size": 100});
        let (_, body) = preview(&stack, &marketer, rules).await;
        assert_eq!(body["data"]["evaluated_by"], "memory");
        assert_eq!(
            members(&body),
            expect(&ids, expected),
            "memory: {condition}"
        );
    }

    // The engine follows the change feed: Dee's first order shows in the next previews.
    stack.place_order(&writer, &ids[3], 30_000).await;
    support::eventually(Duration::from_secs(15), "the order in memory", || async {
        let (_, body) = preview(&stack, &marketer, rich.clone()).await;
        (body["data"]["evaluated_by"] == "memory" && members(&body) == expect(&ids, &[1, 3]))
            .then_some(())
    })
    .await;
}
