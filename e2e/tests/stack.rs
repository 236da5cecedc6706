//! The whole stack through the gateway: the first vertical slice (a customer POSTed,
//! read back, stored, and projected into segmentation via RabbitMQ), authentication,
//! tenant isolation, error envelopes, and upstream failure.

use std::time::Duration;

use e2e::Stack;
use mkt_auth::Claims;
use mkt_test_support as support;
use serde_json::{Value, json};

fn seed_customer(email: &str) -> Value {
    json!({
        "name": "John Doe",
        "email": email,
        "phone": "123-456-7890",
        "address": {"street": "123 Main St", "city": "Anytown", "state": "CA", "zipCode": "90210", "country": "USA"}
    })
}

#[actix_web::test]
async fn customer_flows_from_gateway_to_postgres_and_the_segmentation_read_model() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader"]);

    let (status, created) = stack
        .post(
            "/api/v2/cdp/customers",
            Some(&token),
            &seed_customer("John.Doe@Example.com"),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["success"], true);
    assert_eq!(created["message"], "User data ingested successfully.");
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(created["data"]["email"], "john.doe@example.com");
    assert_eq!(created["data"]["address"]["zipCode"], "90210");
    assert_eq!(created["data"]["address"]["userId"], id.as_str());

    let (status, read) = stack
        .get(&format!("/api/v2/cdp/customers/{id}"), Some(&token))
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["data"]["name"], "John Doe");
    assert_eq!(read["data"]["phone"], "123-456-7890");

    // Stored in the ingestion schema, scoped to the token's tenant.
    let stored = support::scalar_i64(
        &stack.ingestion_db,
        &format!("SELECT count(*) FROM ingestion.customers WHERE tenant_id = 'acme' AND id = '{id}' AND email = 'john.doe@example.com'"),
    )
    .await;
    assert_eq!(stored, 1);

    // Projected into segmentation through the outbox, RabbitMQ and the consumer.
    let projected = format!(
        "SELECT count(*) FROM segmentation.customer_profiles WHERE tenant_id = 'acme' AND customer_id = '{id}' AND city = 'Anytown' AND version = 1"
    );
    support::eventually(
        Duration::from_secs(10),
        "the customer in the segmentation read model",
        || async {
            (support::scalar_i64(&stack.segmentation_db, &projected).await == 1).then_some(())
        },
    )
    .await;

    // Same email again: an update (200), same id, and the projection follows.
    let mut changed = seed_customer("john.doe@example.com");
    changed["address"]["city"] = json!("Springfield");
    let (status, updated) = stack
        .post("/api/v2/cdp/customers", Some(&token), &changed)
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["id"], id.as_str());
    let projected = format!(
        "SELECT count(*) FROM segmentation.customer_profiles WHERE customer_id = '{id}' AND city = 'Springfield' AND version = 2"
    );
    support::eventually(
        Duration::from_secs(10),
        "the update in the read model",
        || async {
            (support::scalar_i64(&stack.segmentation_db, &projected).await == 1).then_some(())
        },
    )
    .await;
    let outbox_pending = support::scalar_i64(
        &stack.ingestion_db,
        "SELECT count(*) FROM ingestion.outbox_messages WHERE published_at IS NULL",
    )
    .await;
    assert_eq!(outbox_pending, 0);
    let inbox = support::scalar_i64(
        &stack.segmentation_db,
        "SELECT count(*) FROM segmentation.inbox_messages",
    )
    .await;
    assert_eq!(inbox, 2, "one inbox row per consumed event");

    // Another tenant cannot see it.
    let other = support::token("globex", &["reader"]);
    let (status, body) = stack
        .get(&format!("/api/v2/cdp/customers/{id}"), Some(&other))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "customer_not_found");
}

#[actix_web::test]
async fn missing_tampered_expired_and_wrong_audience_tokens_are_401_and_roles_are_403() {
    let stack = Stack::start().await;
    let path = "/api/v2/cdp/customers";
    let body = seed_customer("auth@example.com");

    let (status, envelope) = stack.post(path, None, &body).await;
    assert_eq!(status, 401);
    assert_eq!(envelope["success"], false);
    assert_eq!(envelope["code"], "unauthorized");
    assert_eq!(envelope["path"], path);
    assert!(envelope["timestamp"].as_str().is_some());

    let good = support::token("acme", &["ingest"]);
    let mut tampered = good.clone();
    let signature_start = tampered.rfind('.').expect("jws") + 1;
    let flipped = if &tampered[signature_start..signature_start + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(signature_start..signature_start + 1, flipped);
    let (status, envelope) = stack.post(path, Some(&tampered), &body).await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (401, Some("invalid_token"))
    );

    let expired = support::signer().sign("acme", &["ingest"], -3600);
    assert_eq!(stack.post(path, Some(&expired), &body).await.0, 401);

    let wrong_audience = support::signer().sign_claims(&Claims {
        sub: "x".into(),
        tenant_id: "acme".into(),
        roles: vec!["ingest".into()],
        iss: support::TEST_ISSUER.into(),
        aud: "someone-else".into(),
        exp: 4_000_000_000,
        iat: None,
        jti: None,
    });
    assert_eq!(stack.post(path, Some(&wrong_audience), &body).await.0, 401);

    // A reader may not write.
    let reader = support::token("acme", &["reader"]);
    let (status, envelope) = stack.post(path, Some(&reader), &body).await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (403, Some("forbidden"))
    );

    // Services verify tokens themselves: calling ingestion directly without one fails too.
    let direct = stack
        .http
        .post(format!("{}{path}", stack.ingestion.url()))
        .json(&body)
        .send()
        .await
        .expect("direct");
    assert_eq!(direct.status().as_u16(), 401);
    let stored = support::scalar_i64(
        &stack.ingestion_db,
        "SELECT count(*) FROM ingestion.customers",
    )
    .await;
    assert_eq!(stored, 0, "no rejected request wrote anything");
}

#[actix_web::test]
async fn bad_input_gets_a_4xx_envelope_with_field_details() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest"]);
    let path = "/api/v2/cdp/customers";

    let (status, envelope) = stack
        .post(
            path,
            Some(&token),
            &json!({"name": "X", "email": "nope", "address": {"street": "s"}}),
        )
        .await;
    assert_eq!(status, 400, "{envelope}");
    assert_eq!(envelope["error"], "Invalid user data provided.");
    assert_eq!(envelope["code"], "validation_failed");
    assert_eq!(envelope["details"]["email"][0], "Invalid email format");
    assert_eq!(envelope["details"]["address.city"][0], "is required");

    let (status, envelope) = stack
        .post(
            path,
            Some(&token),
            &json!({"email": "a@b.co", "name": "A", "tenant_id": "evil"}),
        )
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (400, Some("invalid_json")),
        "unknown fields are refused"
    );

    let response = stack
        .http
        .post(stack.url(path))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let envelope: Value = response.json().await.expect("envelope");
    assert_eq!(envelope["code"], "invalid_json");

    let (status, envelope) = stack
        .get("/api/v2/cdp/orders/not-a-uuid", Some(&token))
        .await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (400, Some("invalid_path"))
    );

    // A body over the 8 MiB JSON limit is refused, not buffered.
    let huge = format!(
        "{{\"name\": \"{}\", \"email\": \"a@b.co\"}}",
        "x".repeat(9 * 1024 * 1024)
    );
    let response = stack
        .http
        .post(stack.url(path))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 413);
    let envelope: Value = response.json().await.expect("envelope");
    assert_eq!(envelope["code"], "payload_too_large");

    let (status, envelope) = stack.get("/api/v2/cdp/nowhere", Some(&token)).await;
    assert_eq!(
        (status, envelope["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[actix_web::test]
async fn request_ids_readiness_and_the_merged_openapi_document() {
    let stack = Stack::start().await;
    let response = stack
        .http
        .get(stack.url("/readyz"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .expect("readyz");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-123");
    let ready: Value = response.json().await.expect("json");
    assert_eq!(ready["checks"]["segmentation"], "ok");

    let service_ready: Value = stack
        .http
        .get(format!("{}/readyz", stack.segmentation.url()))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(
        service_ready["checks"],
        json!({"database": "ok", "broker": "ok"})
    );

    let token = support::token("acme", &["ingest"]);
    let response = stack
        .http
        .post(stack.url("/api/v2/cdp/customers"))
        .bearer_auth(&token)
        .json(&seed_customer("rid@example.com"))
        .send()
        .await
        .expect("post");
    assert!(
        response
            .headers()
            .get("x-request-id")
            .is_some_and(|v| !v.is_empty())
    );

    let doc: Value = stack
        .http
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(
        doc["paths"]["/api/v2/cdp/customers"]["post"].is_object(),
        "{doc}"
    );
    assert!(doc["paths"]["/api/v2/cdp/customers/{id}"]["get"].is_object());
    assert!(doc["components"]["schemas"]["CustomerInput"].is_object());
    assert_eq!(doc["x-unavailable"], json!([]));
    let docs = stack
        .http
        .get(stack.url("/docs"))
        .send()
        .await
        .expect("docs");
    assert!(docs.text().await.expect("html").contains("/openapi.json"));
}

#[actix_web::test]
async fn an_unreachable_upstream_is_a_502_envelope() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let stack = Stack::start_with(Some(&dead)).await;
    let token = support::token("acme", &["analyst"]);
    let (status, envelope) = stack.get("/api/v2/cdp/analytics/rfm", Some(&token)).await;
    assert_eq!(status, 502, "{envelope}");
    assert_eq!(envelope["code"], "upstream_unavailable");
    let (status, _) = stack.get("/readyz", None).await;
    assert_eq!(status, 503);
}
