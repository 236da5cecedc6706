//! CDP analytics through the gateway: seed 004's processing, RFM, CLV and churn
//! endpoints, the customer 360 and timeline, backtesting with `as_of`, a refund lowering
//! monetary and CLV, asynchronous runs, scores reaching segmentation, and tenant
//! isolation.

use std::time::Duration;

use chrono::{DateTime, Utc};
use e2e::Stack;
use mkt_contracts::Message;
use mkt_contracts::v1;
use mkt_test_support as support;
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn order_at(
    stack: &Stack,
    token: &str,
    customer: &str,
    amount: i64,
    at: DateTime<Utc>,
) -> String {
    let order = json!({"customerId": customer, "currency": "USD", "status": "delivered",
        "totalAmount": amount, "orderedAt": at.to_rfc3339(),
        "items": [{"productId": "p", "name": "n", "price": amount, "quantity": 1, "total": amount}]});
    let (status, _, body) = stack
        .send(Method::POST, "/api/v2/cdp/orders", token, Some(&order), &[])
        .await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().expect("id").to_owned()
}

async fn get(stack: &Stack, token: &str, path: &str) -> (u16, Value) {
    let (status, _, body) = stack.send(Method::GET, path, token, None, &[]).await;
    (status, body)
}

async fn process(stack: &Stack, token: &str, body: Value) -> (u16, Value) {
    process_for(stack, token, "acme", body).await
}

/// `POST /api/v2/cdp/process/{tenant}`.
async fn process_for(stack: &Stack, token: &str, tenant: &str, body: Value) -> (u16, Value) {
    let path = format!("/api/v2/cdp/process/{tenant}");
    let (status, _, body) = stack
        .send(Method::POST, &path, token, Some(&body), &[])
        .await;
    (status, body)
}

/// Waits until the customer's timeline (analytics' read model) shows `orders` orders.
async fn timeline_orders(stack: &Stack, token: &str, customer: &str, orders: usize) -> Value {
    let path = format!("/api/v2/cdp/customers/{customer}/timeline?limit=50");
    support::eventually(WAIT, "orders in the analytics read model", || async {
        let (status, body) = get(stack, token, &path).await;
        let count = body["data"]["events"]
            .as_array()
            .map_or(0, |e| e.iter().filter(|e| e["type"] == "order").count());
        (status == 200 && count == orders).then_some(body)
    })
    .await
}

#[actix_web::test]
async fn processing_scores_customers_as_seed_004_shows_and_refunds_lower_value() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "analyst", "reader", "marketer"]);
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    let ann = stack.create_customer(&token, "ann@example.com", "CA").await;
    let bob = stack.create_customer(&token, "bob@example.com", "TX").await;
    let cy = stack.create_customer(&token, "cy@example.com", "NY").await;
    let dee = stack.create_customer(&token, "dee@example.com", "NY").await;
    order_at(&stack, &token, &ann, 5_000, days(100)).await;
    order_at(&stack, &token, &ann, 7_000, days(60)).await;
    order_at(&stack, &token, &ann, 6_000, days(3)).await;
    // Bob's only order is placed exactly at the backtest instant below.
    let pivot = DateTime::from_timestamp(days(50).timestamp(), 0).expect("time");
    order_at(&stack, &token, &bob, 1_000, pivot).await;
    let cy_big = order_at(&stack, &token, &cy, 20_000, days(30)).await;
    order_at(&stack, &token, &cy, 3_000, days(20)).await;
    let event = json!({"customer_email": "ann@example.com", "event_type": "page_view",
        "properties": {"page": "/shoes"}});
    let (status, _, _) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/events",
            &token,
            Some(&event),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    let timeline = timeline_orders(&stack, &token, &ann, 3).await;
    timeline_orders(&stack, &token, &bob, 1).await;
    timeline_orders(&stack, &token, &cy, 2).await;
    // Newest first: the page view (just now) before Ann's latest order.
    support::eventually(WAIT, "the page view on the timeline", || async {
        let (_, body) = get(
            &stack,
            &token,
            &format!("/api/v2/cdp/customers/{ann}/timeline"),
        )
        .await;
        (body["data"]["events"][0]["type"] == "page_view").then_some(())
    })
    .await;
    assert_eq!(
        timeline["data"]["events"]
            .as_array()
            .map(Vec::len)
            .map(|n| n >= 3),
        Some(true)
    );

    let mut scores_published = stack.listen("analytics.scores.updated.v1").await;
    let (status, body) =
        process(&stack, &token, json!({"analyses": ["rfm", "clv", "churn"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    let rfm = &body["results"]["rfm"];
    assert_eq!(rfm["total_processed"], 3, "dee has no orders");
    let counted: i64 = rfm["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["count"].as_i64().expect("count"))
        .sum();
    assert_eq!(counted, 3);
    assert!(rfm["processing_time"].is_number());

    // RFM: Ann bought most recently and most often.
    let (status, rfm) = get(&stack, &token, "/api/v2/cdp/analytics/rfm?tenant_id=acme").await;
    assert_eq!(status, 200, "{rfm}");
    let overview = &rfm["data"]["overview"];
    assert_eq!(overview["total_customers"], 3);
    assert_eq!(overview["total_revenue"], 18_000 + 1_000 + 23_000);
    assert!(overview["last_calculation"].is_string());
    let (_, profile) = get(
        &stack,
        &token,
        &format!("/api/v2/cdp/customers/{ann}/profile"),
    )
    .await;
    let data = &profile["data"];
    assert_eq!(data["customer"]["email"], "ann@example.com");
    assert_eq!(data["rfm"]["frequency"], 3);
    assert_eq!(data["rfm"]["monetary"], 18_000);
    assert_eq!(data["rfm"]["recency_days"], 3);
    assert_eq!(data["rfm"]["recency_score"], 5);
    // Frequencies 3, 1, 2: the quintile cut points are 1, 2, 2, 3 (nearest rank), and 3
    // exceeds three of them.
    assert_eq!(data["rfm"]["frequency_score"], 4);
    assert_eq!(data["rfm"]["rfm_score"].as_str().map(str::len), Some(3));
    assert!(data["clv"]["predicted_value"].as_i64().expect("clv") > 0);
    assert!(data["churn"]["probability"].is_number());

    // CLV: three customers are too few to fit BG/NBD; the model says so.
    let (status, clv) = get(&stack, &token, "/api/v2/cdp/analytics/clv").await;
    assert_eq!(status, 200, "{clv}");
    let model = &clv["data"]["model"];
    assert_eq!(model["time_unit"], "week");
    assert_eq!(model["purchase"]["name"], "heuristic");
    assert!(model["purchase"]["reason"].is_string());
    assert_eq!(clv["data"]["overview"]["total_customers"], 3);
    assert_eq!(
        clv["data"]["top_customers"].as_array().map(Vec::len),
        Some(3)
    );

    // Churn: Bob has been silent longest.
    let (status, churn) = get(&stack, &token, "/api/v2/cdp/analytics/churn").await;
    assert_eq!(status, 200, "{churn}");
    let distribution = &churn["data"]["overview"]["distribution"];
    let total: i64 = ["active", "at_risk", "churning", "churned"]
        .iter()
        .map(|l| distribution[*l].as_i64().expect("count"))
        .sum();
    assert_eq!(total, 3);
    let risk = |id: &str| {
        let stack = &stack;
        let token = &token;
        let id = id.to_owned();
        async move {
            let (_, p) = get(stack, token, &format!("/api/v2/cdp/customers/{id}/profile")).await;
            p["data"]["churn"]["probability"]
                .as_f64()
                .expect("probability")
        }
    };
    assert!(risk(&bob).await > risk(&ann).await);

    // The scores were published, and segmentation's rules can use them.
    let payload = scores_published.next(WAIT).await.expect("scores published");
    let published = v1::ScoresUpdated::decode(payload.as_slice()).expect("decodes");
    assert_eq!(published.scores.len(), 3);
    support::eventually_scalar(
        WAIT,
        "segmentation to hold the scores",
        &stack.segmentation_db,
        "SELECT count(*) FROM segmentation.customer_scores WHERE clv_tier IS NOT NULL",
        3,
    )
    .await;

    // A refund of Cy's big order lowers her monetary value and CLV.
    let (_, before) = get(
        &stack,
        &token,
        &format!("/api/v2/cdp/customers/{cy}/profile"),
    )
    .await;
    let (status, _, _) = stack
        .send(
            Method::PATCH,
            &format!("/api/v2/cdp/orders/{cy_big}"),
            &token,
            Some(&json!({"status": "refunded"})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    support::eventually(WAIT, "the refund in the read model", || async {
        let (_, body) = get(
            &stack,
            &token,
            &format!("/api/v2/cdp/customers/{cy}/timeline"),
        )
        .await;
        body["data"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["details"]["status"] == "refunded")
            .then_some(())
    })
    .await;
    let (status, body) = process(
        &stack,
        &token,
        json!({"analyses": ["rfm", "clv"], "force": false}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("processed")),
        "an order changed: {body}"
    );
    let (_, after) = get(
        &stack,
        &token,
        &format!("/api/v2/cdp/customers/{cy}/profile"),
    )
    .await;
    assert_eq!(before["data"]["rfm"]["monetary"], 23_000);
    assert_eq!(after["data"]["rfm"]["monetary"], 3_000);
    assert!(
        after["data"]["clv"]["predicted_value"].as_i64()
            < before["data"]["clv"]["predicted_value"].as_i64(),
        "{before} -> {after}"
    );
    // Nothing changed since: a non-forced run is skipped and reports the last results.
    let (_, skipped) = process(&stack, &token, json!({"analyses": ["rfm"]})).await;
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert_eq!(skipped["results"]["rfm"]["total_processed"], 3);

    // Backtest as of Bob's order: Ann (two orders by then) and Bob (the order placed
    // exactly then counts); Cy had not ordered yet. Live scores are untouched.
    let (status, backtest) = process(
        &stack,
        &token,
        json!({"analyses": ["rfm"], "as_of": pivot.to_rfc3339(), "force": true}),
    )
    .await;
    assert_eq!(status, 200, "{backtest}");
    assert_eq!(backtest["results"]["rfm"]["total_processed"], 2);
    let (_, live) = get(&stack, &token, "/api/v2/cdp/analytics/rfm").await;
    assert_eq!(live["data"]["overview"]["total_customers"], 3);

    // A tenant's own RFM mapping: a partial one is refused, a catch-all one is used from
    // the next run on.
    let (status, _, refused) = stack
        .send(
            Method::PUT,
            "/api/v2/cdp/analytics/rfm/mapping",
            &token,
            Some(&json!({"rules": [{"segment": "Champions", "r": [5, 5], "f": [5, 5], "m": [5, 5]}]})),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let (status, _, _) = stack
        .send(
            Method::PUT,
            "/api/v2/cdp/analytics/rfm/mapping",
            &token,
            Some(&json!({"rules": [{"segment": "Loyal Customers", "r": [1, 5], "f": [1, 5], "m": [1, 5]}]})),
            &[],
        )
        .await;
    assert_eq!(status, 200);

    // Asynchronous: 202 now, progress and results from the status route.
    let (status, accepted) = process(&stack, &token, json!({"async": true, "force": true})).await;
    assert_eq!(status, 202, "{accepted}");
    let done = support::eventually(WAIT, "the async run", || async {
        let (_, s) = get(&stack, &token, "/api/v2/cdp/process/status/acme").await;
        (s["status"] == "processed" && s["current_run"]["status"] == "processed").then_some(s)
    })
    .await;
    assert_eq!(done["records_processed"], 3);
    let (_, rfm) = get(&stack, &token, "/api/v2/cdp/analytics/rfm").await;
    assert_eq!(
        rfm["data"]["distribution"],
        json!([{"segment": "Loyal Customers", "customer_count": 3, "percentage": 100.0,
                "avg_recency": rfm["data"]["distribution"][0]["avg_recency"],
                "avg_frequency": rfm["data"]["distribution"][0]["avg_frequency"],
                "avg_monetary": rfm["data"]["distribution"][0]["avg_monetary"]}]),
        "the tenant's mapping applies"
    );
    assert_eq!(done["is_stale"], false);
    assert!(done["last_processed"].is_string());

    // Bad input and other tenants.
    let (status, bad) = process(&stack, &token, json!({"analyses": ["ltv"]})).await;
    assert_eq!(status, 400, "{bad}");
    let (status, _) = get(
        &stack,
        &token,
        "/api/v2/cdp/analytics/churn?risk_level=doomed",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/process/globex",
            &token,
            Some(&json!({})),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    let other = support::token("globex", &["reader", "analyst"]);
    let (status, _) = get(
        &stack,
        &other,
        &format!("/api/v2/cdp/customers/{ann}/profile"),
    )
    .await;
    assert_eq!(status, 404);
    let (_, theirs) = get(&stack, &other, "/api/v2/cdp/analytics/rfm").await;
    assert_eq!(theirs["data"]["overview"]["total_customers"], 0);
    let (status, _) = get(
        &stack,
        &token,
        &format!("/api/v2/cdp/customers/{dee}/profile"),
    )
    .await;
    assert_eq!(
        status, 200,
        "a customer without orders has a profile and no scores"
    );
}

#[actix_web::test]
async fn the_nightly_schedule_queues_each_due_tenant_once_and_respects_its_settings() {
    let stack = Stack::start().await;
    let acme = support::token("acme", &["ingest", "analyst", "reader"]);
    let globex = support::token("globex", &["ingest", "analyst", "reader"]);
    for token in [&acme, &globex] {
        let customer = stack.create_customer(token, "x@example.com", "CA").await;
        stack.place_order(token, &customer, 1_000).await;
    }
    support::eventually_scalar(
        WAIT,
        "orders in the analytics read model",
        &stack.analytics_db,
        "SELECT count(*) FROM cdp_analytics.orders",
        2,
    )
    .await;
    // Globex turns its nightly run off; acme runs at 00:00 UTC, which has passed.
    let (status, _, _) = stack
        .send(
            Method::PUT,
            "/api/v2/cdp/analytics/schedule",
            &globex,
            Some(&json!({"enabled": false})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = stack
        .send(
            Method::PUT,
            "/api/v2/cdp/analytics/schedule",
            &acme,
            Some(&json!({"enabled": true, "hour_utc": 0})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, bad) = stack
        .send(
            Method::PUT,
            "/api/v2/cdp/analytics/schedule",
            &acme,
            Some(&json!({"enabled": true, "hour_utc": 24})),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let (_, schedule) = get(&stack, &acme, "/api/v2/cdp/analytics/schedule").await;
    assert_eq!(schedule["data"], json!({"enabled": true, "hour_utc": 0}));

    let infra = &stack.analytics.infra;
    let queued = cdp_analytics::service::processing::schedule_pass(infra, Utc::now())
        .await
        .expect("pass");
    assert_eq!(queued, vec!["acme".to_owned()]);
    let again = cdp_analytics::service::processing::schedule_pass(infra, Utc::now())
        .await
        .expect("pass");
    assert!(again.is_empty(), "already requested today: {again:?}");
    // The worker picks the scheduled run up.
    support::eventually(WAIT, "the scheduled run", || async {
        let (_, s) = get(&stack, &acme, "/api/v2/cdp/process/status/acme").await;
        (s["status"] == "processed").then_some(())
    })
    .await;
    let trigger = support::scalar_i64(
        &stack.analytics_db,
        "SELECT count(*) FROM cdp_analytics.processing_runs WHERE trigger = 'schedule' AND status = 'processed'",
    )
    .await;
    assert_eq!(trigger, 1);

    // A run whose worker died mid-way (its lease ran out) is taken over and finished.
    {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let mut conn = diesel_async::AsyncPgConnection::establish(&stack.analytics_db)
            .await
            .expect("connect");
        // The run, and its job on the runner with a lease that ran out five minutes ago.
        let inserted = diesel::sql_query(
            "WITH run AS (INSERT INTO cdp_analytics.processing_runs \
               (id, tenant_id, analyses, force, status, trigger, requested_at, started_at, attempts) \
             VALUES (gen_random_uuid(), 'globex', '{rfm}', true, 'running', 'api', now() - interval '10 minutes', \
                     now() - interval '10 minutes', 1) RETURNING id, tenant_id) \
             INSERT INTO cdp_analytics.jobs (id, queue, tenant_id, state, attempts, max_attempts, \
                     run_at, lease_until, started_at) \
             SELECT id, 'cdp-analytics.processing-runs', tenant_id, 'running', 1, 3, \
                    now() - interval '10 minutes', now() - interval '5 minutes', now() - interval '10 minutes' \
             FROM run",
        )
        .execute(&mut conn)
        .await
        .expect("orphaned run");
        assert_eq!(inserted, 1);
    }
    support::eventually_scalar(
        WAIT,
        "the orphaned run to be taken over",
        &stack.analytics_db,
        "SELECT count(*) FROM cdp_analytics.processing_runs \
             WHERE tenant_id = 'globex' AND status = 'processed' AND attempts = 2",
        1,
    )
    .await;
}

/// Runs one statement on the analytics database; returns the rows it touched.
async fn analytics_execute(stack: &Stack, sql: &str) -> usize {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let mut conn = diesel_async::AsyncPgConnection::establish(&stack.analytics_db)
        .await
        .expect("connect");
    diesel::sql_query(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[actix_web::test]
async fn kept_facts_drive_runs_crossings_into_churning_alert_and_each_run_replaces_the_scores() {
    let stack = Stack::start().await;
    let token = support::token("initech", &["ingest", "analyst", "reader"]);
    let now = Utc::now();
    let days = |d: i64| now - chrono::Duration::days(d);
    // Twelve customers with four purchase days a week apart, the last one 10 to 400 days
    // ago, and a thirteenth who bought twelve days running: with the model's fallback
    // heuristic (too few repeat customers to fit BG/NBD) the twelve's churn
    // probabilities run from active (0.28) through three churning ones (0.70-0.82) to
    // churned (0.95).
    let silences = [10, 30, 50, 70, 90, 120, 150, 180, 220, 260, 320, 400];
    let mut customers = Vec::new();
    for (i, silence) in silences.iter().enumerate() {
        let id = stack
            .create_customer(&token, &format!("c{i}@initech.example"), "TX")
            .await;
        for week in 0..4 {
            order_at(&stack, &token, &id, 2_000, days(silence + 7 * week)).await;
        }
        customers.push(id);
    }
    // Orders of one customer applied concurrently still add up in its kept facts.
    let burst = stack
        .create_customer(&token, "burst@initech.example", "TX")
        .await;
    futures_util::future::join_all(
        (0..12).map(|i| order_at(&stack, &token, &burst, 100 + i, days(5 + i))),
    )
    .await;
    support::eventually_scalar(
        WAIT,
        "the consumer to keep every customer's facts",
        &stack.analytics_db,
        "SELECT count(*) FROM cdp_analytics.customer_facts \
             WHERE tenant_id = 'initech' AND orders = 4 AND purchase_days = 4 AND spent = 8000 \
               AND repeat_spent = 6000",
        12,
    )
    .await;
    support::eventually_scalar(
        WAIT,
        "the burst in the kept facts",
        &stack.analytics_db,
        &format!(
            "SELECT count(*) FROM cdp_analytics.customer_facts WHERE tenant_id = 'initech' \
                 AND customer_id = '{burst}' AND orders = 12 AND purchase_days = 12 \
                 AND spent = {} AND repeat_spent = {}",
            (100..112).sum::<i64>(),
            (100..111).sum::<i64>()
        ),
        1,
    )
    .await;

    let (status, refused) = process(&stack, &token, json!({"force": true})).await;
    assert_eq!(status, 404, "another tenant's path: {refused}");
    let run = |body: Value| {
        let stack = &stack;
        let token = &token;
        async move {
            let (status, body) = process_for(stack, token, "initech", body).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let first = run(json!({"force": true})).await;
    assert_eq!(first["results"]["rfm"]["total_processed"], 13, "{first}");
    let churning = support::scalar_i64(
        &stack.analytics_db,
        "SELECT count(*) FROM cdp_analytics.customer_scores \
         WHERE tenant_id = 'initech' AND churn_risk = 'churning'",
    )
    .await;
    assert!(
        churning >= 2,
        "the data gives churning customers: {churning}"
    );

    // As if a run days earlier had stored them otherwise: the churning ones were active,
    // except one already churned (moving back to churning is no crossing).
    let churned_before = analytics_execute(
        &stack,
        "UPDATE cdp_analytics.customer_scores SET churn_risk = CASE WHEN customer_id = \
           (SELECT customer_id FROM cdp_analytics.customer_scores \
            WHERE tenant_id = 'initech' AND churn_risk = 'churning' \
            ORDER BY customer_id LIMIT 1) \
           THEN 'churned' ELSE 'active' END \
         WHERE tenant_id = 'initech' AND churn_risk = 'churning'",
    )
    .await;
    assert_eq!(churned_before as i64, churning);
    // A load table left by a run that died before swapping it in.
    analytics_execute(
        &stack,
        "CREATE TABLE cdp_analytics.customer_scores_r0123456789abcdef0123456789abcdef \
         (LIKE cdp_analytics.customer_scores)",
    )
    .await;

    let mut alerts = stack.listen("churn.alert.v1").await;
    run(json!({"force": true})).await;
    let mut alerted = Vec::new();
    while let Some(payload) = alerts.next(Duration::from_secs(3)).await {
        alerted.push(v1::ChurnAlert::decode(payload.as_slice()).expect("decodes"));
    }
    assert_eq!(alerted.len() as i64, churning - 1, "{alerted:?}");
    for alert in &alerted {
        assert_eq!(
            (
                alert.tenant_id.as_str(),
                alert.previous_risk.as_str(),
                alert.risk.as_str()
            ),
            ("initech", "active", "churning")
        );
        assert!((0.6..0.85).contains(&alert.churn_probability), "{alert:?}");
        let profile = get(
            &stack,
            &token,
            &format!("/api/v2/cdp/customers/{}/profile", alert.customer_id),
        )
        .await
        .1;
        assert_eq!(profile["data"]["churn"]["risk"], "churning", "{profile}");
    }

    // Each run's scores are one table, swapped in whole: one partition for the tenant,
    // the latest run's; the earlier run's and the abandoned load table are gone.
    let tables = support::scalar_i64(
        &stack.analytics_db,
        "SELECT count(*) FROM pg_tables \
         WHERE schemaname = 'cdp_analytics' AND tablename LIKE 'customer_scores\\_r%'",
    )
    .await;
    assert_eq!(tables, 1);
    let current = support::scalar_i64(
        &stack.analytics_db,
        "SELECT count(*) FROM cdp_analytics.score_partitions p \
         JOIN pg_inherits i ON i.inhrelid = \
           ('cdp_analytics.customer_scores_r' || replace(p.run_id::text, '-', ''))::regclass \
         WHERE p.tenant_id = 'initech' AND p.run_id = \
           (SELECT id FROM cdp_analytics.processing_runs WHERE tenant_id = 'initech' \
            AND status = 'processed' ORDER BY finished_at DESC LIMIT 1)",
    )
    .await;
    assert_eq!(current, 1);

    // An erased customer drops out of the kept facts, and of the scores at the next run.
    let erased = &customers[0];
    let (status, _, _) = stack
        .send(
            Method::DELETE,
            &format!("/api/v2/cdp/customers/{erased}"),
            &token,
            None,
            &[],
        )
        .await;
    assert!((200..300).contains(&status), "erase: {status}");
    support::eventually_scalar(
        WAIT,
        "the erasure in the kept facts",
        &stack.analytics_db,
        "SELECT count(*) FROM cdp_analytics.customer_facts WHERE tenant_id = 'initech'",
        12,
    )
    .await;
    let after = run(json!({"force": true})).await;
    assert_eq!(after["results"]["rfm"]["total_processed"], 12, "{after}");
    let scored = support::scalar_i64(
        &stack.analytics_db,
        &format!(
            "SELECT count(*) FROM cdp_analytics.customer_scores WHERE customer_id = '{erased}'"
        ),
    )
    .await;
    assert_eq!(scored, 0);

    // Two tenants' runs at once, each replacing scores it already has: both swaps go
    // through, one after the other, and each tenant keeps one partition.
    let hooli = support::token("hooli", &["ingest", "analyst", "reader"]);
    let mut hooli_customers = Vec::new();
    for i in 0..3 {
        let id = stack
            .create_customer(&hooli, &format!("h{i}@hooli.example"), "CA")
            .await;
        order_at(&stack, &hooli, &id, 1_500, days(10 + i)).await;
        hooli_customers.push(id);
    }
    // Ingestion allows five minutes of clock skew: an order dated a few minutes ahead is
    // in the kept facts, but a run now must not count it.
    let ahead = &hooli_customers[0];
    order_at(
        &stack,
        &hooli,
        ahead,
        7_000,
        Utc::now() + chrono::Duration::minutes(4),
    )
    .await;
    support::eventually_scalar(
        WAIT,
        "hooli's facts",
        &stack.analytics_db,
        "SELECT sum(orders) FROM cdp_analytics.customer_facts WHERE tenant_id = 'hooli'",
        4,
    )
    .await;
    let run_for = |tenant: &'static str, token: String| {
        let stack = &stack;
        async move {
            let (status, body) = process_for(stack, &token, tenant, json!({"force": true})).await;
            (status, body["status"].clone())
        }
    };
    for _ in 0..3 {
        let (a, b) = futures_util::join!(
            run_for("initech", token.clone()),
            run_for("hooli", hooli.clone())
        );
        assert_eq!(
            (a, b),
            ((200, json!("processed")), (200, json!("processed")))
        );
    }
    let (_, profile) = get(
        &stack,
        &hooli,
        &format!("/api/v2/cdp/customers/{ahead}/profile"),
    )
    .await;
    assert_eq!(
        (
            &profile["data"]["rfm"]["frequency"],
            &profile["data"]["rfm"]["monetary"]
        ),
        (&json!(1), &json!(1_500)),
        "the order dated ahead does not count yet: {profile}"
    );
    let partitions = support::scalar_i64(
        &stack.analytics_db,
        "SELECT count(*) FROM pg_inherits \
         WHERE inhparent = 'cdp_analytics.customer_scores'::regclass",
    )
    .await;
    assert_eq!(partitions, 2);
}
