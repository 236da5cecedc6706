//! The ingestion API through the gateway: customers (list, external ids, PATCH, GDPR
//! erasure), orders (money rules, lifecycle), behaviour events, partial batches, and
//! Idempotency-Key replays, with what lands in Postgres and on RabbitMQ.

use std::time::Duration;

use e2e::Stack;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use mkt_test_support as support;
use reqwest::Method;
use serde_json::{Value, json};

fn customer(email: &str, external_id: &str) -> Value {
    json!({
        "name": "Jane Roe", "email": email, "phone": "+1 555 0100", "external_id": external_id,
        "address": {"street": "1 Elm St", "city": "Austin", "state": "TX", "zipCode": "73301", "country": "USA"},
        "loyalty_tier": "gold", "attributes": {"vip": true}, "consent": {"email": true}
    })
}

fn order(customer_ref: (&str, &str), total: i64) -> Value {
    let mut body = json!({
        "items": [
            {"productId": "sku-1", "name": "Shirt", "price": total - 500, "quantity": 1, "total": total - 500},
            {"productId": "sku-2", "name": "Socks", "price": 250, "quantity": 2, "total": 500}
        ],
        "totalAmount": total, "currency": "USD", "status": "delivered", "promoCode": "spring10"
    });
    body[customer_ref.0] = json!(customer_ref.1);
    body
}

async fn count(db: &str, sql: &str) -> i64 {
    support::scalar_i64(db, sql).await
}

#[actix_web::test]
async fn idempotency_keys_replay_the_first_response_and_refuse_another_body() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest"]);
    let body = customer("idem@example.com", "ext-idem");
    let key = [("Idempotency-Key", "key-0001")];

    let (status, headers, first) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&body),
            &key,
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());

    // Same key, same JSON in another key order: the stored response, nothing rewritten.
    let reordered: Value =
        serde_json::from_str(&serde_json::to_string(&body).expect("json")).expect("json");
    let (status, headers, replay) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&reordered),
            &key,
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(replay, first);
    assert_eq!(
        count(
            &stack.ingestion_db,
            "SELECT version FROM ingestion.customers WHERE email = 'idem@example.com'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &stack.ingestion_db,
            "SELECT count(*) FROM ingestion.outbox_messages"
        )
        .await,
        1
    );

    // Same key, another body: 422.
    let (status, _, envelope) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&customer("other@example.com", "ext-2")),
            &key,
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );

    // Keys are per tenant: another tenant's identical key is independent.
    let other = support::token("globex", &["ingest"]);
    let (status, headers, _) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &other,
            Some(&body),
            &key,
        )
        .await;
    assert_eq!(status, 201);
    assert!(headers.get("idempotent-replayed").is_none());
}

#[actix_web::test]
async fn a_partial_batch_commits_the_valid_items_and_reports_each_in_order() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest"]);
    let batch = json!({"customers": [
        customer("b1@example.com", "b-1"),
        {"name": "Broken", "email": "not-an-email"},
        customer("b2@example.com", "b-2"),
        {"name": "Sneaky", "email": "s@example.com", "is_admin": true},
        customer("b1@example.com", "b-1"),
    ]});
    let (status, _, body) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers/batch",
            &token,
            Some(&batch),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["data"]["results"].as_array().expect("results");
    let statuses: Vec<i64> = results
        .iter()
        .map(|r| r["status"].as_i64().expect("status"))
        .collect();
    assert_eq!(statuses, vec![201, 400, 201, 400, 200]);
    assert_eq!(results[1]["details"]["email"][0], "Invalid email format");
    assert_eq!(results[3]["code"], "invalid_json");
    assert_eq!(
        (
            body["data"]["succeeded"].as_i64(),
            body["data"]["failed"].as_i64()
        ),
        (Some(3), Some(2))
    );
    assert_eq!(
        count(
            &stack.ingestion_db,
            "SELECT count(*) FROM ingestion.customers"
        )
        .await,
        2
    );

    // Orders: one for an unknown customer fails alone.
    let orders = json!({"orders": [
        order(("customerExternalId", "b-1"), 2000),
        order(("customerExternalId", "nobody"), 2000),
        order(("customerEmail", "b2@example.com"), 1500),
    ]});
    let (status, _, body) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/orders/batch",
            &token,
            Some(&orders),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let results = body["data"]["results"].as_array().expect("results");
    assert_eq!(results[1]["status"], 404);
    assert_eq!(results[1]["error"], "Customer with ID nobody not found.");
    assert_eq!(
        count(&stack.ingestion_db, "SELECT count(*) FROM ingestion.orders").await,
        2
    );
    assert_eq!(
        count(
            &stack.ingestion_db,
            "SELECT count(*) FROM ingestion.order_items"
        )
        .await,
        4
    );

    let too_many = json!({"events": vec![json!({}); 1001]});
    let (status, _, envelope) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/events/batch",
            &token,
            Some(&too_many),
            &[],
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (413, Some("batch_too_large"))
    );
}

#[actix_web::test]
async fn orders_follow_seed_rules_and_their_lifecycle() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader"]);
    let (_, _, created) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&customer("o@example.com", "c-o")),
            &[],
        )
        .await;
    let customer_id = created["data"]["id"].as_str().expect("id").to_owned();

    let (status, _, placed) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/orders",
            &token,
            Some(&order(("customerId", &customer_id), 5000)),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["message"], "Order data ingested successfully.");
    assert_eq!(placed["data"]["customerId"], customer_id.as_str());
    assert_eq!(placed["data"]["totalAmount"], 5000);
    assert_eq!(placed["data"]["promoCode"], "SPRING10");
    assert_eq!(placed["data"]["items"][1]["orderId"], placed["data"]["id"]);
    let order_id = placed["data"]["id"].as_str().expect("id").to_owned();

    let mut wrong = order(("customerId", &customer_id), 5000);
    wrong["totalAmount"] = json!(4999);
    wrong["currency"] = json!("ABC");
    let (status, _, envelope) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/orders",
            &token,
            Some(&wrong),
            &[],
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        envelope["details"]["totalAmount"].is_array() && envelope["details"]["currency"].is_array(),
        "{envelope}"
    );

    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, _, envelope) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/orders",
            &token,
            Some(&order(("customerId", &unknown), 5000)),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        envelope["error"],
        format!("Customer with ID {unknown} not found.")
    );

    // Delivered -> refunded is allowed once; refunded is final.
    let path = format!("/api/v2/cdp/orders/{order_id}");
    let (status, _, updated) = stack
        .send(
            Method::PATCH,
            &path,
            &token,
            Some(&json!({"status": "refunded"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, updated["data"]["status"].as_str()),
        (200, Some("refunded"))
    );
    let (status, _, envelope) = stack
        .send(
            Method::PATCH,
            &path,
            &token,
            Some(&json!({"status": "shipped"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (409, Some("invalid_status_transition"))
    );
    assert_eq!(
        count(
            &stack.ingestion_db,
            "SELECT count(*) FROM ingestion.outbox_messages WHERE routing_key = 'order.updated.v1'"
        )
        .await,
        1
    );

    let (status, _, listed) = stack
        .send(
            Method::GET,
            &format!("/api/v2/cdp/orders?customer_id={customer_id}&limit=10"),
            &token,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["pagination"]["total"], 1);
    assert_eq!(listed["data"][0]["items"].as_array().map(Vec::len), Some(2));

    // Another tenant sees nothing.
    let other = support::token("globex", &["reader"]);
    assert_eq!(
        stack.send(Method::GET, &path, &other, None, &[]).await.0,
        404
    );
}

#[actix_web::test]
async fn events_are_tracked_for_the_tokens_tenant_only() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest"]);
    stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&customer("e@example.com", "12345")),
            &[],
        )
        .await;

    let event = json!({"customer_id": 12345, "event_type": "page_view", "properties": {"page": "/products/shoes"},
                       "timestamp": "2024-09-16T20:00:00Z"});
    let (status, _, body) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/events",
            &token,
            Some(&event),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["event_type"], "page_view");
    assert_eq!(body["data"]["timestamp"], "2024-09-16T20:00:00Z");

    let custom = json!({"customer_email": "E@example.com", "event_type": "wishlist_add"});
    assert_eq!(
        stack
            .send(
                Method::POST,
                "/api/v2/cdp/events",
                &token,
                Some(&custom),
                &[]
            )
            .await
            .0,
        201
    );

    let foreign = json!({"tenant_id": 56, "customer_id": 12345, "event_type": "page_view"});
    let (status, _, envelope) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/events",
            &token,
            Some(&foreign),
            &[],
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (403, Some("tenant_mismatch"))
    );
    let bad = json!({"customer_id": 12345, "event_type": "Page View!", "properties": []});
    let (status, _, envelope) = stack
        .send(Method::POST, "/api/v2/cdp/events", &token, Some(&bad), &[])
        .await;
    assert_eq!(status, 400);
    assert!(
        envelope["details"]["event_type"].is_array()
            && envelope["details"]["properties"].is_array()
    );

    assert_eq!(
        count(
            &stack.ingestion_db,
            "SELECT count(*) FROM ingestion.behaviour_events WHERE tenant_id = 'acme'"
        )
        .await,
        2
    );
    assert_eq!(
        count(&stack.ingestion_db, "SELECT count(*) FROM ingestion.outbox_messages WHERE routing_key = 'behaviour.tracked.v1'").await,
        2
    );
}

#[actix_web::test]
async fn customers_are_listed_found_by_external_id_and_patched() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader"]);
    for i in 0..5 {
        let (status, _, _) = stack
            .send(
                Method::POST,
                "/api/v2/cdp/customers",
                &token,
                Some(&customer(&format!("l{i}@example.com"), &format!("L-{i}"))),
                &[],
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, _, page) = stack
        .send(
            Method::GET,
            "/api/v2/cdp/customers?page=2&limit=2",
            &token,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        page["pagination"],
        json!({"page": 2, "limit": 2, "total": 5, "total_pages": 3})
    );
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    let (status, _, envelope) = stack
        .send(
            Method::GET,
            "/api/v2/cdp/customers?limit=500",
            &token,
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (400, Some("invalid_query"))
    );

    let (status, _, found) = stack
        .send(Method::GET, "/api/v2/cdp/customers/L-3", &token, None, &[])
        .await;
    assert_eq!(
        (status, found["data"]["email"].as_str()),
        (200, Some("l3@example.com"))
    );

    let patch = json!({"phone": null, "loyalty_tier": "platinum", "attributes": {"vip": null, "segment": "b2b"}, "consent": {"sms": true}});
    let (status, _, patched) = stack
        .send(
            Method::PATCH,
            "/api/v2/cdp/customers/L-3",
            &token,
            Some(&patch),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["data"]["phone"], Value::Null);
    assert_eq!(patched["data"]["loyalty_tier"], "platinum");
    assert_eq!(patched["data"]["attributes"], json!({"segment": "b2b"}));
    assert_eq!(
        patched["data"]["consent"],
        json!({"email": true, "sms": true, "push": false})
    );

    let (status, _, envelope) = stack
        .send(
            Method::PATCH,
            "/api/v2/cdp/customers/L-3",
            &token,
            Some(&json!({"email": "l1@example.com"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (409, Some("email_taken"))
    );
    let (status, _, envelope) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&customer("new@example.com", "L-1")),
            &[],
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (409, Some("external_id_taken"))
    );
}

#[actix_web::test]
async fn an_erased_customer_is_gone_everywhere_and_a_replayed_event_cannot_bring_it_back() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader"]);
    let (_, _, created) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&customer("gdpr@example.com", "G-1")),
            &[],
        )
        .await;
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    stack
        .send(
            Method::POST,
            "/api/v2/cdp/events",
            &token,
            Some(&json!({"customer_id": id, "event_type": "page_view"})),
            &[],
        )
        .await;
    let projected = format!(
        "SELECT count(*) FROM segmentation.customer_profiles WHERE customer_id = '{id}' AND email = 'gdpr@example.com'"
    );
    support::eventually(Duration::from_secs(10), "the projection", || async {
        (count(&stack.segmentation_db, &projected).await == 1).then_some(())
    })
    .await;

    let (status, _, _) = stack
        .send(
            Method::DELETE,
            &format!("/api/v2/cdp/customers/{id}"),
            &token,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        stack
            .send(
                Method::GET,
                &format!("/api/v2/cdp/customers/{id}"),
                &token,
                None,
                &[]
            )
            .await
            .0,
        404
    );
    assert_eq!(
        stack
            .send(Method::GET, "/api/v2/cdp/customers/G-1", &token, None, &[])
            .await
            .0,
        404
    );
    assert_eq!(
        count(&stack.ingestion_db, "SELECT count(*) FROM ingestion.customers WHERE email LIKE '%gdpr%' OR name <> '' AND erased_at IS NOT NULL").await,
        0,
        "no personal data left in ingestion"
    );
    assert_eq!(
        count(
            &stack.ingestion_db,
            "SELECT count(*) FROM ingestion.behaviour_events"
        )
        .await,
        0
    );
    let erased = format!(
        "SELECT count(*) FROM segmentation.customer_profiles WHERE customer_id = '{id}' AND email IS NULL AND erased_at IS NOT NULL"
    );
    support::eventually(
        Duration::from_secs(10),
        "the erasure in segmentation",
        || async { (count(&stack.segmentation_db, &erased).await == 1).then_some(()) },
    )
    .await;

    // Replay the original customer.upserted (as a broker-level redelivery with a fresh
    // message id, which the inbox cannot catch): the tombstone must hold.
    #[derive(diesel::QueryableByName)]
    struct Payload {
        #[diesel(sql_type = diesel::sql_types::Bytea)]
        payload: Vec<u8>,
    }
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let mut conn = diesel_async::AsyncPgConnection::establish(&stack.ingestion_db)
        .await
        .expect("connect");
    let original: Payload = diesel::sql_query(
        "SELECT payload FROM ingestion.outbox_messages WHERE routing_key = 'customer.upserted.v1' ORDER BY id LIMIT 1",
    )
    .get_result(&mut conn)
    .await
    .expect("original event");
    let connection =
        lapin::Connection::connect(&stack.amqp_url, lapin::ConnectionProperties::default())
            .await
            .expect("amqp");
    let channel = connection.create_channel().await.expect("channel");
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("x-tenant-id"),
        AMQPValue::LongString(LongString::from("acme")),
    );
    channel
        .basic_publish(
            "mkt.events".into(),
            "customer.upserted.v1".into(),
            BasicPublishOptions::default(),
            &original.payload,
            lapin::BasicProperties::default()
                .with_message_id(uuid::Uuid::new_v4().to_string().into())
                .with_headers(headers),
        )
        .await
        .expect("publish");
    let consumed = "SELECT count(*) FROM segmentation.inbox_messages WHERE routing_key = 'customer.upserted.v1'";
    support::eventually(
        Duration::from_secs(10),
        "the replay to be consumed",
        || async { (count(&stack.segmentation_db, consumed).await == 2).then_some(()) },
    )
    .await;
    assert_eq!(
        count(&stack.segmentation_db, &erased).await,
        1,
        "erased data did not come back"
    );
}

#[actix_web::test]
async fn orders_and_events_reach_the_segmentation_read_model_and_refunds_lower_spend() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader"]);
    let (_, _, created) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&customer("agg@example.com", "A-1")),
            &[],
        )
        .await;
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    let (_, _, first) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/orders",
            &token,
            Some(&order(("customerExternalId", "A-1"), 5000)),
            &[],
        )
        .await;
    let (status, _, _) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/orders",
            &token,
            Some(&order(("customerExternalId", "A-1"), 3000)),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    stack
        .send(
            Method::POST,
            "/api/v2/cdp/events",
            &token,
            Some(&json!({"customer_id": "A-1", "event_type": "add_to_cart"})),
            &[],
        )
        .await;
    let both = format!(
        "SELECT count(*) FROM segmentation.customer_profiles WHERE customer_id = '{id}' AND orders_count = 2 AND total_spent = 8000 AND email = 'agg@example.com'"
    );
    support::eventually(
        Duration::from_secs(10),
        "both orders in the aggregates",
        || async { (count(&stack.segmentation_db, &both).await == 1).then_some(()) },
    )
    .await;

    let order_id = first["data"]["id"].as_str().expect("id");
    let (status, _, _) = stack
        .send(
            Method::PATCH,
            &format!("/api/v2/cdp/orders/{order_id}"),
            &token,
            Some(&json!({"status": "refunded"})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let refunded = format!(
        "SELECT count(*) FROM segmentation.customer_profiles WHERE customer_id = '{id}' AND orders_count = 1 AND total_spent = 3000"
    );
    support::eventually(
        Duration::from_secs(10),
        "the refund to lower spend",
        || async { (count(&stack.segmentation_db, &refunded).await == 1).then_some(()) },
    )
    .await;
    let tracked = format!(
        "SELECT count(*) FROM segmentation.customer_events WHERE customer_id = '{id}' AND event_type = 'add_to_cart'"
    );
    assert_eq!(count(&stack.segmentation_db, &tracked).await, 1);
    support::eventually(
        Duration::from_secs(10),
        "the ingestion outbox to drain",
        || async {
            (count(
                &stack.ingestion_db,
                "SELECT count(*) FROM ingestion.outbox_messages WHERE published_at IS NULL",
            )
            .await
                == 0)
                .then_some(())
        },
    )
    .await;
}
