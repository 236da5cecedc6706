//! Tenant integrations through the gateway (seed 004 and issue #5): CRUD with tenant
//! isolation, credentials that never leak (responses, error bodies, the database),
//! VTEX credential validation, and syncs that import a VTEX store's customers and
//! orders into ingestion, against a local server speaking VTEX's API, without
//! duplicating anything on a re-run.

use std::time::Duration;

use chrono::Utc;
use diesel_async::{AsyncConnection, RunQueryDsl};
use e2e::Stack;
use e2e::fake_vtex::{self, AppKey, FakeVtex, Store};
use mkt_test_support as support;
use reqwest::Method;
use serde_json::{Value, json};

const BASE: &str = "/api/v2/cdp/tenant-integrations";
const KEY: &str = "vtexappkey-chelseaio-QWERTY";
const TOKEN: &str = "TOKEN-9f8e7d6c5b4a-very-secret";
const NEW_TOKEN: &str = "TOKEN-rotated-0a1b2c3d4e5f";
const LIMITED_KEY: &str = "vtexappkey-chelseaio-LIMITED";
const LIMITED_TOKEN: &str = "TOKEN-limited-7777777777";

fn create_body(account: &str) -> Value {
    json!({
        "tenant_id": "acme", "integration_type": "vtex", "account_name": account,
        "environment": "vtexcommercestable", "app_key": KEY, "app_token": TOKEN,
    })
}

/// No credential in any form in `body`.
fn assert_no_secret(body: &Value) {
    let text = body.to_string();
    for secret in [KEY, TOKEN, NEW_TOKEN, LIMITED_TOKEN] {
        assert!(!text.contains(secret), "credential leaked in {text}");
    }
}

async fn send(
    stack: &Stack,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, _, body) = stack.send(method, path, token, body, &[]).await;
    assert_no_secret(&body);
    (status, body)
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[actix_web::test]
async fn crud_is_tenant_scoped_admin_only_and_never_leaks_credentials() {
    let stack = Stack::start().await;
    let admin = support::token("acme", &["admin"]);
    let other = support::token("globex", &["admin"]);
    let everyone_else = support::token("acme", &["reader", "ingest", "marketer", "analyst"]);

    let (status, created) = send(
        &stack,
        Method::POST,
        BASE,
        &admin,
        Some(&create_body("ChelseaIO")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["success"], true);
    assert_eq!(created["message"], "Integration created successfully");
    let data = &created["data"];
    assert_eq!(data["tenant_id"], "acme");
    assert_eq!(data["integration_type"], "vtex");
    assert_eq!(data["account_name"], "chelseaio");
    assert_eq!(data["environment"], "vtexcommercestable");
    assert_eq!(data["is_active"], true);
    assert_eq!(data["last_sync"], Value::Null);
    assert_eq!(data["app_key_last4"], "ERTY");
    let id = data["id"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    let one = format!("{BASE}/{id}");

    // Only admins, for reads too.
    for (method, path) in [
        (Method::GET, BASE.to_owned()),
        (Method::GET, one.clone()),
        (Method::DELETE, one.clone()),
    ] {
        let (status, body) = send(&stack, method, &path, &everyone_else, None).await;
        assert_eq!(status, 403, "{body}");
    }

    let (status, listed) = send(&stack, Method::GET, BASE, &admin, None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["data"][0]["id"], id.as_str());
    // Seed 004's form, with the tenant in the path: the token's tenant lists...
    let (status, seed_list) =
        send(&stack, Method::GET, &format!("{BASE}/acme"), &admin, None).await;
    assert_eq!(
        (status, seed_list["data"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    // ...and any other tenant is not found.
    let (status, body) = send(&stack, Method::GET, &format!("{BASE}/globex"), &admin, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("tenant_not_found"))
    );
    let (status, read) = send(&stack, Method::GET, &one, &admin, None).await;
    assert_eq!(
        (status, read["data"]["account_name"].as_str()),
        (200, Some("chelseaio"))
    );

    // Another tenant sees nothing and can touch nothing.
    let (status, theirs) = send(&stack, Method::GET, BASE, &other, None).await;
    assert_eq!(
        (status, theirs["data"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    for (method, path, body) in [
        (Method::GET, one.clone(), None),
        (Method::PUT, one.clone(), Some(json!({"is_active": false}))),
        (Method::DELETE, one.clone(), None),
        (Method::POST, format!("{one}/sync"), None),
        (Method::GET, format!("{one}/sync"), None),
    ] {
        let (status, body) = send(&stack, method, &path, &other, body.as_ref()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("integration_not_found")),
            "{path}"
        );
    }
    // A body naming another tenant is that tenant's 404.
    let mut foreign = create_body("another");
    foreign["tenant_id"] = json!("globex");
    let (status, body) = send(&stack, Method::POST, BASE, &admin, Some(&foreign)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("tenant_not_found"))
    );

    // Bad input is a 400 with per-field details that never echo values.
    let bad = json!({"account_name": "evil.com/x", "environment": "attacker", "app_key": 12345,
                     "app_token": TOKEN, "integration_type": "shopify", "apptoken": TOKEN});
    let (status, body) = send(&stack, Method::POST, BASE, &admin, Some(&bad)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_failed")),
        "{body}"
    );
    for field in [
        "account_name",
        "environment",
        "app_key",
        "integration_type",
        "apptoken",
    ] {
        assert!(body["details"][field].is_array(), "{field}: {body}");
    }
    let (status, body) = send(
        &stack,
        Method::POST,
        BASE,
        &admin,
        Some(&json!({"account_name": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["details"]["app_token"][0], "is required");
    let (status, _, body) = stack
        .send(
            Method::POST,
            BASE,
            &admin,
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // One integration per account.
    let (status, body) = send(
        &stack,
        Method::POST,
        BASE,
        &admin,
        Some(&create_body("chelseaio")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("integration_exists"))
    );

    // A new token alone keeps the key; deactivation stops syncs.
    let (status, updated) = send(
        &stack,
        Method::PUT,
        &one,
        &admin,
        Some(&json!({"tenant_id": "acme", "app_token": NEW_TOKEN, "is_active": false})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["message"], "Integration updated successfully");
    assert_eq!(updated["data"]["is_active"], false);
    assert_eq!(updated["data"]["app_key_last4"], "ERTY");
    let (status, body) = send(
        &stack,
        Method::PUT,
        &one,
        &admin,
        Some(&json!({"app_key": "new-key-only"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_failed"))
    );
    let (status, body) = send(
        &stack,
        Method::PUT,
        &format!("{BASE}/not-a-uuid"),
        &admin,
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = send(&stack, Method::POST, &format!("{one}/sync"), &admin, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("integration_inactive"))
    );

    // Not in plain text in the database: neither the text nor its bytes, in any column.
    let rows = support::scalar_i64(
        &stack.ingestion_db,
        "SELECT count(*) FROM ingestion.tenant_integrations",
    )
    .await;
    assert_eq!(rows, 1);
    for secret in [KEY, TOKEN, NEW_TOKEN] {
        let leaks = support::scalar_i64(
            &stack.ingestion_db,
            &format!(
                "SELECT count(*) FROM ingestion.tenant_integrations t \
                 WHERE position('{secret}' in t::text) > 0 OR position('{}' in t::text) > 0",
                hex(secret)
            ),
        )
        .await;
        assert_eq!(leaks, 0, "{secret} is readable in the database");
    }

    // VTEX is unreachable in this stack: validation says so with a 502, not a 500.
    let (status, body) = send(
        &stack,
        Method::POST,
        &format!("{BASE}/validate/vtex"),
        &admin,
        Some(&json!({"account_name": "chelseaio", "app_key": KEY, "app_token": TOKEN})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (502, Some("vtex_unavailable")),
        "{body}"
    );

    let (status, _) = send(&stack, Method::DELETE, &one, &admin, None).await;
    assert_eq!(status, 204);
    let (status, body) = send(&stack, Method::GET, &one, &admin, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("integration_not_found"))
    );
}

fn days_ago(days: i64) -> String {
    (Utc::now() - chrono::Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn fake_store() -> FakeVtex {
    FakeVtex::start(Store {
        keys: vec![
            AppKey { key: KEY.into(), token: TOKEN.into(), orders: true, customers: true },
            AppKey { key: LIMITED_KEY.into(), token: LIMITED_TOKEN.into(), orders: true, customers: false },
        ],
        customers: vec![
            fake_vtex::customer("3f7c1a2e-0000-4000-8000-000000000001", "ana@example.com", "Ana", "Lima"),
            fake_vtex::customer("3f7c1a2e-0000-4000-8000-000000000002", "Bruno@Example.com", "Bruno", "Souza"),
            json!({"id": "doc-3", "userId": "3f7c1a2e-0000-4000-8000-000000000003", "firstName": "No email"}),
        ],
        orders: vec![
            fake_vtex::order("v1001-01", &days_ago(20), "invoiced",
                ("3f7c1a2e-0000-4000-8000-000000000001", "ana@example.com"),
                &[("11", "Running shoe", 2, 12_990), ("12", "Socks", 1, 1_500)], 1_000),
            fake_vtex::order("v1002-01", &days_ago(10), "ready-for-handling",
                ("3f7c1a2e-0000-4000-8000-000000000002", "bruno@example.com"),
                &[("13", "Cap", 1, 4_990)], 0),
            // A buyer with no CL document: created from the order.
            fake_vtex::order("v1003-01", &days_ago(5), "payment-approved",
                ("3f7c1a2e-0000-4000-8000-000000000009", "carla@example.com"),
                &[("14", "Jacket", 1, 29_990)], 2_500),
            fake_vtex::order("v1004-01", &days_ago(3), "canceled",
                ("3f7c1a2e-0000-4000-8000-000000000001", "ana@example.com"),
                &[("15", "Gloves", 1, 3_000)], 0),
            // Older than VTEX lists: outside every sync's window.
            fake_vtex::order("v0999-01", &days_ago(900), "invoiced",
                ("3f7c1a2e-0000-4000-8000-000000000001", "ana@example.com"),
                &[("16", "Old thing", 1, 100)], 0),
        ],
        ..Default::default()
    })
    .await
}

#[actix_web::test]
async fn validate_vtex_accepts_working_credentials_and_explains_the_others() {
    let vtex = fake_store().await;
    let stack = Stack::start_with_vtex(&vtex.url).await;
    let admin = support::token("acme", &["admin"]);
    let path = format!("{BASE}/validate/vtex");
    let validate = |key: &str, token: &str| json!({"account_name": "chelseaio", "app_key": key, "app_token": token, "environment": "vtexcommercestable"});

    let (status, body) = send(
        &stack,
        Method::POST,
        &path,
        &admin,
        Some(&validate(KEY, TOKEN)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "VTEX credentials are valid");
    assert_eq!(body["account_info"]["account_name"], "chelseaio");
    assert_eq!(body["account_info"]["is_active"], true);
    assert_eq!(
        body["account_info"]["hosts"],
        json!(["chelseaio.vtexcommercestable.com.br"])
    );
    // It asked VTEX with the credentials, on the two APIs a sync uses.
    assert!(vtex.requests("GET /api/oms/pvt/orders") >= 1);
    assert!(vtex.requests("GET /api/dataentities/CL/search") >= 1);

    let (status, body) = send(
        &stack,
        Method::POST,
        &path,
        &admin,
        Some(&validate(KEY, "wrong-token")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("vtex_credentials_invalid")),
        "{body}"
    );
    let (status, body) = send(
        &stack,
        Method::POST,
        &path,
        &admin,
        Some(&validate(LIMITED_KEY, LIMITED_TOKEN)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("vtex_permissions_missing")),
        "{body}"
    );
    assert!(
        body["details"]["customers"].is_array() && body["details"]["orders"].is_null(),
        "{body}"
    );
    let (status, body) = send(
        &stack,
        Method::POST,
        &path,
        &admin,
        Some(&json!({"account_name": "chelseaio", "app_key": KEY})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_failed"))
    );
    let mut foreign = validate(KEY, TOKEN);
    foreign["tenant_id"] = json!(56);
    let (status, body) = send(&stack, Method::POST, &path, &admin, Some(&foreign)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("tenant_not_found"))
    );
    let reader = support::token("acme", &["reader"]);
    let (status, _) = send(
        &stack,
        Method::POST,
        &path,
        &reader,
        Some(&validate(KEY, TOKEN)),
    )
    .await;
    assert_eq!(status, 403);
    vtex.stop().await;
}

async fn wait_for_run(stack: &Stack, token: &str, location: &str) -> Value {
    support::eventually(Duration::from_secs(60), "the sync to finish", || async {
        let (status, body) = send(stack, Method::GET, location, token, None).await;
        assert_eq!(status, 200, "{body}");
        matches!(
            body["data"]["status"].as_str(),
            Some("succeeded" | "failed")
        )
        .then_some(body["data"].clone())
    })
    .await
}

async fn start_sync(stack: &Stack, token: &str, integration: &str) -> String {
    let (status, headers, body) = stack
        .send(
            Method::POST,
            &format!("{BASE}/{integration}/sync"),
            token,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["status"], "queued");
    headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location")
        .to_owned()
}

async fn ingestion_list(stack: &Stack, token: &str, what: &str) -> Vec<Value> {
    let (status, body) = send(
        stack,
        Method::GET,
        &format!("/api/v2/cdp/{what}?limit=200"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn a_sync_imports_vtex_customers_and_orders_through_ingestion_once() {
    let vtex = fake_store().await;
    let stack = Stack::start_with_vtex(&vtex.url).await;
    let admin = support::token("acme", &["admin"]);
    let reader = support::token("acme", &["reader"]);
    let mut upserts = stack.listen("customer.upserted.v1").await;

    let (status, created) = send(
        &stack,
        Method::POST,
        BASE,
        &admin,
        Some(&create_body("chelseaio")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    let (status, body) = send(
        &stack,
        Method::GET,
        &format!("{BASE}/{id}/sync"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("sync_run_not_found"))
    );

    let location = start_sync(&stack, &admin, &id).await;
    let run = wait_for_run(&stack, &admin, &location).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["phase"], "done");
    assert_eq!(
        run["counts"],
        json!({
            "customers": {"created": 3, "updated": 0, "unchanged": 0, "skipped": 1, "failed": 0},
            "orders": {"created": 4, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0},
        }),
        "{run}"
    );

    // In ingestion, as any store backend's writes would be.
    let customers = ingestion_list(&stack, &reader, "customers").await;
    let mut emails: Vec<&str> = customers
        .iter()
        .filter_map(|c| c["email"].as_str())
        .collect();
    emails.sort_unstable();
    assert_eq!(
        emails,
        ["ana@example.com", "bruno@example.com", "carla@example.com"]
    );
    let ana = customers
        .iter()
        .find(|c| c["email"] == "ana@example.com")
        .expect("ana");
    assert_eq!(ana["external_id"], "3f7c1a2e-0000-4000-8000-000000000001");
    assert_eq!(ana["name"], "Ana Lima");
    assert_eq!(ana["consent"]["email"], true);
    let orders = ingestion_list(&stack, &reader, "orders").await;
    assert_eq!(orders.len(), 4, "{orders:?}");
    let by_id = |external: &str| {
        orders
            .iter()
            .find(|o| o["externalId"] == external)
            .cloned()
            .expect(external)
    };
    let first = by_id("v1001-01");
    // Cents from VTEX are BRL minor units: 2 x 129.90 + 15.00 + 10.00 shipping.
    assert_eq!(first["totalAmount"], 2 * 12_990 + 1_500 + 1_000);
    assert_eq!(first["currency"], "BRL");
    assert_eq!(first["status"], "shipped");
    assert_eq!(first["customerId"], ana["id"]);
    assert_eq!(by_id("v1002-01")["status"], "processing");
    assert_eq!(by_id("v1003-01")["totalAmount"], 29_990 + 2_500);
    assert_eq!(by_id("v1004-01")["status"], "cancelled");
    assert!(
        upserts.next(Duration::from_secs(10)).await.is_some(),
        "customer events flow"
    );
    let (_, integration) = send(&stack, Method::GET, &format!("{BASE}/{id}"), &admin, None).await;
    assert!(
        integration["data"]["last_sync"].is_string(),
        "{integration}"
    );

    // A second sync changes nothing and does not even fetch the orders again.
    let details_before = vtex.requests("GET /api/oms/pvt/orders/v");
    let second = start_sync(&stack, &admin, &id).await;
    assert_ne!(second, location);
    let run = wait_for_run(&stack, &admin, &second).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["orders"]["unchanged"], 4, "{run}");
    assert_eq!(run["counts"]["orders"]["created"], 0, "{run}");
    assert_eq!(run["counts"]["customers"]["unchanged"], 2, "{run}");
    assert_eq!(run["counts"]["customers"]["created"], 0, "{run}");
    assert_eq!(vtex.requests("GET /api/oms/pvt/orders/v"), details_before);
    assert_eq!(ingestion_list(&stack, &reader, "customers").await.len(), 3);
    assert_eq!(ingestion_list(&stack, &reader, "orders").await.len(), 4);
    let stored = support::scalar_i64(
        &stack.ingestion_db,
        "SELECT count(*) FROM ingestion.orders WHERE tenant_id = 'acme' AND external_id LIKE 'v10%'",
    )
    .await;
    assert_eq!(stored, 4);

    // VTEX invoices an order: the next sync moves it along in ingestion.
    for order in vtex.store().orders.iter_mut() {
        if order["orderId"] == "v1002-01" {
            order["status"] = json!("invoiced");
        }
    }
    let third = start_sync(&stack, &admin, &id).await;
    let run = wait_for_run(&stack, &admin, &third).await;
    assert_eq!(run["counts"]["orders"]["updated"], 1, "{run}");
    assert_eq!(
        by_status(&ingestion_list(&stack, &reader, "orders").await, "v1002-01"),
        "shipped"
    );
    let (status, runs) = send(
        &stack,
        Method::GET,
        &format!("{BASE}/{id}/syncs"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (status, runs["data"].as_array().map(Vec::len)),
        (200, Some(3))
    );

    // Credentials VTEX refuses fail the run with the reason, and nothing else breaks.
    let (status, _) = send(
        &stack,
        Method::PUT,
        &format!("{BASE}/{id}"),
        &admin,
        Some(&json!({"app_token": "revoked-token-000000"})),
    )
    .await;
    assert_eq!(status, 200);
    let fourth = start_sync(&stack, &admin, &id).await;
    let run = wait_for_run(&stack, &admin, &fourth).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"].as_str().is_some_and(|e| e.contains("401")),
        "{run}"
    );
    assert_no_secret(&run);
    vtex.stop().await;
}

fn by_status(orders: &[Value], external: &str) -> String {
    orders
        .iter()
        .find(|o| o["externalId"] == external)
        .and_then(|o| o["status"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn sync_run_status(stack: &Stack, run: &str) -> Option<String> {
    let mut conn = diesel_async::AsyncPgConnection::establish(&stack.ingestion_db)
        .await
        .expect("connect");
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    let rows: Vec<Row> =
        diesel::sql_query("SELECT status FROM ingestion.integration_sync_runs WHERE id = $1::uuid")
            .bind::<diesel::sql_types::Text, _>(run)
            .load(&mut conn)
            .await
            .expect("run status");
    rows.into_iter().next().map(|r| r.status)
}

/// Counts the messages a listener receives until it stays quiet for three seconds.
async fn drain(listener: &mut e2e::Listener) -> usize {
    let mut count = 0;
    while listener.next(Duration::from_secs(3)).await.is_some() {
        count += 1;
    }
    count
}

#[actix_web::test]
async fn a_sync_writes_inside_ingestion_with_no_http_hop_between_services() {
    let vtex = fake_store().await;
    let stack = Stack::start_with_vtex(&vtex.url).await;
    let admin = support::token("acme", &["admin"]);
    let mut customer_events = stack.listen("customer.upserted.v1").await;
    let mut order_events = stack.listen("order.placed.v1").await;
    let (status, created) = send(
        &stack,
        Method::POST,
        BASE,
        &admin,
        Some(&create_body("chelseaio")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().expect("id").to_owned();

    // No service answers HTTP any more: neither cdp-analytics (which used to run syncs)
    // nor ingestion's own API (which syncs used to call). Only ingestion's background
    // worker, its database and the bus are left.
    stack.analytics.server.stop(false).await;
    stack.ingestion.server.stop(false).await;
    let (status, _, _) = stack.send(Method::GET, BASE, &admin, None, &[]).await;
    assert!(
        (502..=504).contains(&status),
        "the gateway reaches no ingestion HTTP server now: {status}"
    );

    // Queue a run the way `POST .../sync` does (the route is down with the server).
    let run = uuid::Uuid::now_v7().to_string();
    let mut conn = diesel_async::AsyncPgConnection::establish(&stack.ingestion_db)
        .await
        .expect("connect");
    diesel::sql_query(
        "INSERT INTO ingestion.integration_sync_runs (tenant_id, id, integration_id, status, \
         phase, orders_since, orders_until, counts, item_errors, attempts, requested_at) \
         VALUES ('acme', $1::uuid, $2::uuid, 'queued', 'customers', now() - interval '90 days', \
         now(), '{}', '[]', 0, now())",
    )
    .bind::<diesel::sql_types::Text, _>(&run)
    .bind::<diesel::sql_types::Text, _>(&id)
    .execute(&mut conn)
    .await
    .expect("queue a run");
    let status = support::eventually(Duration::from_secs(60), "the sync to finish", || async {
        sync_run_status(&stack, &run)
            .await
            .filter(|s| s == "succeeded" || s == "failed")
    })
    .await;
    assert_eq!(status, "succeeded");

    // Written through ingestion's use cases: rows, and their events on the bus.
    assert_eq!(
        support::scalar_i64(
            &stack.ingestion_db,
            "SELECT count(*) FROM ingestion.customers WHERE tenant_id = 'acme'"
        )
        .await,
        3
    );
    assert_eq!(
        support::scalar_i64(
            &stack.ingestion_db,
            "SELECT count(*) FROM ingestion.orders WHERE tenant_id = 'acme'"
        )
        .await,
        4
    );
    assert_eq!(drain(&mut customer_events).await, 3, "customer.upserted.v1");
    assert_eq!(drain(&mut order_events).await, 4, "order.placed.v1");
    vtex.stop().await;
}

#[actix_web::test]
async fn integrations_left_in_cdp_analytics_move_to_ingestion_with_their_credentials() {
    let vtex = fake_store().await;
    let stack = Stack::start_with_vtex(&vtex.url).await;
    let admin = support::token("acme", &["admin"]);

    // An integration as cdp-analytics stored it: its own tables, the credentials sealed
    // under the deployment's key with the (tenant, id) binding, a finished run, and the
    // shadow order table the move leaves behind.
    let id = uuid::Uuid::now_v7();
    let config = Stack::ingestion_config(
        {
            let mut service = support::service_config(&stack.ingestion_db, &stack.amqp_url);
            service.database.schema = Some("ingestion".into());
            service
        },
        None,
    );
    let keyring = ingestion::service::integrations::keyring_from(&config.integrations)
        .expect("keyring")
        .expect("a key");
    let credentials = ingestion::domain::integrations::VtexCredentials {
        app_key: KEY.into(),
        app_token: TOKEN.into(),
    };
    let sealed = keyring.seal(
        &ingestion::domain::integrations::credentials_aad("acme", id),
        &credentials.to_plaintext(),
    );
    let mut old = diesel_async::AsyncPgConnection::establish(&stack.analytics_db)
        .await
        .expect("connect");
    diesel::sql_query(
        "INSERT INTO cdp_analytics.tenant_integrations (tenant_id, id, integration_type, \
         account_name, environment, is_active, credentials_key_id, credentials_nonce, \
         credentials_ciphertext, app_key_last4, last_sync_at, created_at, updated_at) \
         VALUES ('acme', $1, 'vtex', 'chelseaio', 'vtexcommercestable', true, $2, $3, $4, \
         'ERTY', now() - interval '1 day', now() - interval '30 days', now() - interval '2 days')",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Text, _>(&sealed.key_id)
    .bind::<diesel::sql_types::Bytea, _>(&sealed.nonce)
    .bind::<diesel::sql_types::Bytea, _>(&sealed.ciphertext)
    .execute(&mut old)
    .await
    .expect("old integration");
    diesel::sql_query(
        "INSERT INTO cdp_analytics.integration_sync_runs (tenant_id, id, integration_id, status, \
         phase, orders_since, orders_until, counts, item_errors, attempts, requested_at, \
         started_at, finished_at) VALUES ('acme', $1, $2, 'succeeded', 'done', \
         now() - interval '91 days', now() - interval '1 day', '{}', '[]', 1, \
         now() - interval '1 day', now() - interval '1 day', now() - interval '1 day')",
    )
    .bind::<diesel::sql_types::Uuid, _>(uuid::Uuid::now_v7())
    .bind::<diesel::sql_types::Uuid, _>(id)
    .execute(&mut old)
    .await
    .expect("old run");

    // Before the copy ingestion knows nothing of it.
    let (status, listed) = send(&stack, Method::GET, BASE, &admin, None).await;
    assert_eq!(
        (status, listed["data"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    // `ingestion migrate-integrations`, twice: the second run changes nothing.
    let migrate = ingestion::service::integrations::migrate::run_from;
    let report = migrate(&stack.analytics_db, &config).await.expect("copy");
    assert_eq!(
        (report.found, report.inserted, report.runs_inserted),
        (1, 1, 1),
        "{report:?}"
    );
    assert!(
        report.unreadable.is_empty() && report.conflicts.is_empty(),
        "{report:?}"
    );
    let again = migrate(&stack.analytics_db, &config).await.expect("again");
    assert_eq!(
        (
            again.found,
            again.inserted,
            again.updated,
            again.unchanged,
            again.runs_inserted
        ),
        (1, 0, 0, 1, 0),
        "{again:?}"
    );

    // Edited in cdp-analytics after the copy (it served the routes until the gateway
    // switched): the next run takes the newer row...
    diesel::sql_query(
        "UPDATE cdp_analytics.tenant_integrations SET is_active = false, updated_at = now()",
    )
    .execute(&mut old)
    .await
    .expect("edit the old row");
    let third = migrate(&stack.analytics_db, &config).await.expect("third");
    assert_eq!((third.updated, third.unchanged), (1, 0), "{third:?}");
    let one = format!("{BASE}/{id}");
    let (status, read) = send(&stack, Method::GET, &one, &admin, None).await;
    assert_eq!(
        (status, read["data"]["is_active"].as_bool()),
        (200, Some(false))
    );
    // ...and never undoes what was changed in ingestion since.
    let (status, _) = send(
        &stack,
        Method::PUT,
        &one,
        &admin,
        Some(&json!({"is_active": true})),
    )
    .await;
    assert_eq!(status, 200);
    let fourth = migrate(&stack.analytics_db, &config).await.expect("fourth");
    assert_eq!((fourth.updated, fourth.unchanged), (0, 1), "{fourth:?}");

    // The same integration, with its history, now served by ingestion.
    let (status, read) = send(&stack, Method::GET, &one, &admin, None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["data"]["account_name"], "chelseaio");
    assert_eq!(read["data"]["app_key_last4"], "ERTY");
    assert!(read["data"]["last_sync"].is_string(), "{read}");
    let (status, runs) = send(&stack, Method::GET, &format!("{one}/syncs"), &admin, None).await;
    assert_eq!(
        (status, runs["data"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    // The copied credentials open: VTEX (which accepts only KEY and TOKEN) serves the sync.
    let location = start_sync(&stack, &admin, &id.to_string()).await;
    let run = wait_for_run(&stack, &admin, &location).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["customers"]["created"], 3, "{run}");
    assert_eq!(run["counts"]["orders"]["created"], 4, "{run}");

    // The old rows stay until cdp-analytics' later migration drops them.
    assert_eq!(
        support::scalar_i64(
            &stack.analytics_db,
            "SELECT count(*) FROM cdp_analytics.tenant_integrations"
        )
        .await,
        1
    );
    vtex.stop().await;
}
