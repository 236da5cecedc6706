//! The input holes an outside review found, through the gateway: each answers a 4xx with
//! the error envelope (no panic, no 5xx) and the service behind it keeps answering.
//! Huge pages and offsets on every list route, day counts and lists in segment rules
//! past their caps, `as_of` out of range, and paths with dot segments (which the gateway
//! used to authorise as one path and forward as another). Also: a backtest answers with
//! its fitted model.

use std::time::Duration;

use chrono::{DateTime, Utc};
use e2e::Stack;
use mkt_test_support as support;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HUGE: &str = "9223372036854775807";
const WAIT: Duration = Duration::from_secs(30);

/// A 4xx with the error envelope (`success: false`, `code`, `status`).
#[track_caller]
fn assert_envelope(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], expected_status, "{body}");
}

async fn get(stack: &Stack, token: &str, path: &str) -> (u16, Value) {
    let (status, _, body) = stack.send(Method::GET, path, token, None, &[]).await;
    (status, body)
}

async fn post(stack: &Stack, token: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, _, body) = stack
        .send(Method::POST, path, token, Some(&body), &[])
        .await;
    (status, body)
}

#[actix_web::test]
async fn huge_pages_and_offsets_answer_400_on_every_list_route_and_the_services_stay_up() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader", "marketer"]);
    let customer = stack.create_customer(&token, "ann@example.com", "CA").await;
    let (status, segment) = post(
        &stack,
        &token,
        "/api/v1/marketing/segments",
        json!({"name": "Ann", "type": "static", "customer_ids": [customer]}),
    )
    .await;
    assert_eq!(status, 201, "{segment}");
    let id = segment["data"]["id"].as_str().expect("id").to_owned();

    let lists = [
        "/api/v2/cdp/customers".to_owned(),
        "/api/v2/cdp/orders".to_owned(),
        "/api/v1/marketing/segments".to_owned(),
        format!("/api/v1/marketing/segments/{id}/customers"),
    ];
    for list in &lists {
        for page in [HUGE, "100001"] {
            let (status, body) = get(&stack, &token, &format!("{list}?page={page}")).await;
            assert_envelope(status, &body, 400, "invalid_query");
        }
        // The worker that refused it is alive, and the last allowed page is fine.
        let (status, body) = get(&stack, &token, &format!("{list}?page=100000")).await;
        assert_eq!(status, 200, "{list}: {body}");
        let (status, body) = get(&stack, &token, list).await;
        assert_eq!(status, 200, "{list}: {body}");
    }
    let members = format!("/api/v2/cdp/segments/{id}/members");
    let (status, body) = get(&stack, &token, &format!("{members}?offset={HUGE}")).await;
    assert_envelope(status, &body, 400, "invalid_query");
    let (status, body) = get(&stack, &token, &format!("{members}?offset=10000000")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["members"], json!([]));
}

#[actix_web::test]
async fn rule_day_counts_and_lists_past_their_caps_answer_400_and_previews_keep_working() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "marketer"]);
    stack.create_customer(&token, "ann@example.com", "CA").await;
    let preview = |condition: Value| json!({"rules": {"logic": "AND", "conditions": [condition]}});
    let items: Vec<String> = (0..1_001).map(|i| format!("city-{i}")).collect();
    for condition in [
        json!({"field": "created_at", "operator": "newer_than_days", "value": 1_000_000_000}),
        json!({"field": "created_at", "operator": "older_than_days", "value": 36_501}),
        json!({"field": "event", "operator": "performed_at_least", "value": 1,
               "event_type": "page_view", "within_days": 1_000_000_000}),
        json!({"field": "city", "operator": "in", "value": items}),
    ] {
        for path in [
            "/api/v1/marketing/segments/preview",
            "/api/v1/marketing/segments",
        ] {
            let mut body = preview(condition.clone());
            if path.ends_with("/segments") {
                body["name"] = json!("too much");
            }
            let (status, answer) = post(&stack, &token, path, body).await;
            assert_envelope(status, &answer, 400, "invalid_segment_criteria");
        }
    }
    // The largest day count is fine, and counts the customer once it reached the service.
    let largest =
        preview(json!({"field": "created_at", "operator": "newer_than_days", "value": 36_500}));
    support::eventually(WAIT, "the customer in the preview", || async {
        let (status, body) = post(
            &stack,
            &token,
            "/api/v1/marketing/segments/preview",
            largest.clone(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        (body["data"]["count"] == 1).then_some(())
    })
    .await;
}

#[actix_web::test]
async fn an_as_of_out_of_range_answers_400_and_processing_keeps_working() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["analyst"]);
    for as_of in [
        "-9999-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
    ] {
        let (status, body) = post(
            &stack,
            &token,
            "/api/v2/cdp/process/acme",
            json!({"as_of": as_of, "force": true}),
        )
        .await;
        assert_envelope(status, &body, 400, "validation_failed");
        assert!(body["details"]["as_of"].is_array(), "{body}");
    }
    let (status, body) = post(
        &stack,
        &token,
        "/api/v2/cdp/process/acme",
        json!({"as_of": "1970-01-01T00:00:00Z", "force": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Sends `GET path` over a plain socket: an HTTP client would resolve the dot segments
/// itself, as the gateway's upstream client did, and the test would prove nothing.
async fn raw_get(stack: &Stack, path: &str, token: &str) -> (u16, Value) {
    let addr = stack.gateway.url().trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = match (text.find('{'), text.rfind('}')) {
        (Some(start), Some(end)) => serde_json::from_str(&text[start..=end]).unwrap_or(Value::Null),
        _ => Value::Null,
    };
    (status, body)
}

#[actix_web::test]
async fn dot_segments_are_refused_before_the_gateway_authorises_a_path() {
    let stack = Stack::start().await;
    // A reader may read profiles, not the admin's integrations.
    let reader = support::token("acme", &["reader"]);
    for path in [
        "/api/v2/cdp/customers/x/profile/../../../tenant-integrations",
        "/api/v2/cdp/customers/x/profile/%2e%2e/%2E%2e/%2e%2E/tenant-integrations",
        "/api/v2/cdp/customers/x/profile/.%2e/..%2E/../tenant-integrations",
        "/api/v2/cdp/customers/x/profile/./x",
        "/api/v2/cdp/customers/x%2f..%2f..%2f..%2ftenant-integrations/profile",
        "/api/v2/cdp/customers/x%5C..%5C..%5Ctenant-integrations/profile",
    ] {
        let (status, body) = raw_get(&stack, path, &reader).await;
        assert_envelope(status, &body, 400, "invalid_path");
    }
    // The same socket path without dot segments is authorised and forwarded as sent.
    let (status, body) = raw_get(&stack, "/api/v2/cdp/customers", &reader).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_get(&stack, "/api/v2/cdp/tenant-integrations", &reader).await;
    assert_envelope(status, &body, 403, "forbidden");
}

async fn order_at(stack: &Stack, token: &str, customer: &str, amount: i64, at: DateTime<Utc>) {
    let order = json!({"customerId": customer, "currency": "USD", "status": "delivered",
        "totalAmount": amount, "orderedAt": at.to_rfc3339(),
        "items": [{"productId": "p", "name": "n", "price": amount, "quantity": 1, "total": amount}]});
    let (status, body) = post(stack, token, "/api/v2/cdp/orders", order).await;
    assert_eq!(status, 201, "{body}");
}

#[actix_web::test]
async fn a_backtest_answers_with_its_fitted_model_and_the_status_route_shows_it() {
    let stack = Stack::start().await;
    let writer = support::token("acme", &["ingest"]);
    let analyst = support::token("acme", &["analyst", "reader"]);
    let as_of = Utc::now() - chrono::Duration::days(1);
    // 24 customers with two to six purchase days each: enough repeat buyers (20) for
    // BG/NBD to be fitted rather than the heuristic.
    let mut orders = 0;
    // A fixed pseudo-random mix of purchase counts, gaps and amounts (an LCG), so the
    // fits see customers that differ.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |below: i64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) % below as u64) as i64
    };
    for i in 0..24_i64 {
        let customer = stack
            .create_customer(&writer, &format!("c{i}@example.com"), "CA")
            .await;
        let typical = 1_500 + next(6_000);
        let mut at = as_of - chrono::Duration::days(1 + next(60));
        for _ in 0..(2 + next(5)) {
            order_at(&stack, &writer, &customer, typical + next(typical), at).await;
            orders += 1;
            at -= chrono::Duration::days(3 + next(40));
        }
    }
    support::eventually_scalar(
        WAIT,
        "orders in the analytics read model",
        &stack.analytics_db,
        "SELECT count(*) FROM cdp_analytics.orders",
        orders,
    )
    .await;

    let (status, backtest) = post(
        &stack,
        &analyst,
        "/api/v2/cdp/process/acme",
        json!({"analyses": ["clv", "churn"], "as_of": as_of.to_rfc3339(), "force": true}),
    )
    .await;
    assert_eq!(status, 200, "{backtest}");
    let model = &backtest["model"];
    assert_eq!(model["time_unit"], "week", "{backtest}");
    let purchase = &model["purchase"];
    // The optimiser's convergence on 24 customers depends on where "now" falls (the data
    // is dated relative to it), so either the fit or the documented fallback may come back;
    // each must carry what the issue asks for.
    match purchase["name"].as_str() {
        Some("bg_nbd") => {
            assert_eq!(model["method"], "bg_nbd", "{model}");
            for p in ["r", "alpha", "a", "b"] {
                let v = purchase["params"][p].as_f64().expect("purchase parameter");
                assert!(v.is_finite() && v > 0.0, "{p} = {v}");
            }
            let ll = purchase["log_likelihood"].as_f64().expect("log-likelihood");
            assert!(ll.is_finite() && ll < 0.0, "log-likelihood {ll}");
            assert!(purchase["converged"].is_boolean(), "{model}");
            assert_eq!(purchase["customers"], 24, "{model}");
        }
        // The documented fallback says why, in the model and in its method.
        Some("heuristic") => {
            let reason = purchase["reason"].as_str().unwrap_or_default();
            assert!(!reason.is_empty(), "{model}");
            assert_eq!(model["method"], format!("heuristic: {reason}"), "{model}");
            assert!(
                purchase["params"]["mean_frequency"].as_f64().is_some(),
                "{model}"
            );
        }
        other => panic!("purchase model {other:?}: {model}"),
    }
    let spend = &model["spend"];
    assert_eq!(spend["customers"], 24, "{model}");
    match spend["name"].as_str() {
        Some("gamma_gamma") => {
            for p in ["p", "q", "gamma"] {
                let v = spend["params"][p].as_f64().expect("spend parameter");
                assert!(v.is_finite() && v > 0.0, "{p} = {v}");
            }
            assert!(spend["log_likelihood"].as_f64().is_some_and(f64::is_finite));
            assert!(spend["converged"].is_boolean(), "{model}");
        }
        // The documented fallback, which says why.
        Some("average_order_value") => {
            assert!(
                spend["reason"].as_str().is_some_and(|r| !r.is_empty()),
                "{model}"
            );
        }
        other => panic!("spend model {other:?}: {model}"),
    }

    // The status route's run carries the same model.
    let (status, body) = get(&stack, &analyst, "/api/v2/cdp/process/status/acme").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["current_run"]["run_id"], backtest["run_id"], "{body}");
    assert_eq!(&body["current_run"]["model"], model, "{body}");

    // RFM alone fits no model: null, not an empty object.
    let (status, rfm) = post(
        &stack,
        &analyst,
        "/api/v2/cdp/process/acme",
        json!({"analyses": ["rfm"], "as_of": as_of.to_rfc3339(), "force": true}),
    )
    .await;
    assert_eq!(status, 200, "{rfm}");
    assert_eq!(rfm["model"], Value::Null, "{rfm}");
}

#[actix_web::test]
async fn a_token_not_valid_yet_answers_401_and_a_valid_one_still_passes() {
    let stack = Stack::start().await;
    let now = Utc::now().timestamp();
    let claims = |nbf: i64| {
        json!({"sub": "u", "tenant_id": "acme", "roles": ["reader"], "iss": support::TEST_ISSUER,
            "aud": support::TEST_AUDIENCE, "exp": now + 600, "nbf": nbf})
    };
    let early = support::signer().sign_json(&claims(now + 600));
    let (status, body) = get(&stack, &early, "/api/v2/cdp/customers").await;
    assert_envelope(status, &body, 401, "invalid_token");
    let valid = support::signer().sign_json(&claims(now - 5));
    let (status, body) = get(&stack, &valid, "/api/v2/cdp/customers").await;
    assert_eq!(status, 200, "{body}");
}
