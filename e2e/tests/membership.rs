//! Live segment membership through the gateway and the bus: membership events when an
//! order, a refund, analytics scores or delivery events arrive, the clock for
//! time-relative rules, static and imported segments, members pages, CSV and XLSX
//! exports read back with real readers, seed 004's v2 routes, and tenant isolation.

use std::time::Duration;

use chrono::Utc;
use e2e::{Listener, Stack};
use mkt_contracts::Message;
use mkt_contracts::v1;
use mkt_test_support as support;
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

async fn profiles_ready(stack: &Stack, n: i64) {
    support::eventually(WAIT, "profiles in the read model", || async {
        let count = support::scalar_i64(
            &stack.segmentation_db,
            "SELECT count(*) FROM segmentation.customer_profiles WHERE email IS NOT NULL",
        )
        .await;
        (count == n).then_some(())
    })
    .await;
}

async fn create_segment(stack: &Stack, token: &str, body: Value) -> Value {
    let (status, _, created) = stack
        .send(
            Method::POST,
            "/api/v1/marketing/segments",
            token,
            Some(&body),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["data"].clone()
}

async fn next_change(events: &mut Listener) -> v1::SegmentMembershipChanged {
    let payload = events.next(WAIT).await.expect("a membership event");
    v1::SegmentMembershipChanged::decode(payload.as_slice()).expect("decodes")
}

async fn get(stack: &Stack, token: &str, path: &str) -> (u16, Value) {
    let (status, _, body) = stack.send(Method::GET, path, token, None, &[]).await;
    (status, body)
}

#[actix_web::test]
async fn an_order_moves_a_customer_in_a_refund_moves_them_out_and_the_clock_ages_one_out() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "marketer", "reader"]);
    let mut events = stack.listen("segment.membership.changed.v1").await;
    let ann = stack.create_customer(&token, "ann@example.com", "CA").await;
    let bob = stack.create_customer(&token, "bob@example.com", "TX").await;
    profiles_ready(&stack, 2).await;

    let big = create_segment(
        &stack,
        &token,
        json!({"name": "Big spenders", "criteria": {"total_spent": {"gte": 10000}}}),
    )
    .await;
    assert_eq!(big["cached_count"], 0);
    let recent = create_segment(
        &stack,
        &token,
        json!({"name": "Ordered this week", "rules": {"logic": "AND", "conditions": [
            {"field": "last_order_at", "operator": "newer_than_days", "value": 7}]}}),
    )
    .await;
    let big_id = big["id"].as_str().expect("id").to_owned();
    let recent_id = recent["id"].as_str().expect("id").to_owned();

    let order = stack.place_order(&token, &ann, 12_000).await;
    stack.place_order(&token, &bob, 500).await;
    // Ann enters both; Bob enters only the recent-orders segment.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let change = next_change(&mut events).await;
        assert_eq!(change.tenant_id, "acme");
        assert_eq!(change.change(), v1::MembershipChange::Entered);
        assert_eq!(change.reason(), v1::MembershipReason::CustomerChanged);
        seen.push((change.segment_id, change.customer_id));
    }
    seen.sort();
    let mut expected = vec![
        (big_id.clone(), ann.clone()),
        (recent_id.clone(), ann.clone()),
        (recent_id.clone(), bob.clone()),
    ];
    expected.sort();
    assert_eq!(seen, expected);

    // The members page (seed 003's shape) shows Ann with her order stats.
    let (status, page) = get(
        &stack,
        &token,
        &format!("/api/v1/marketing/segments/{big_id}/customers?page=1&limit=25"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["meta"]["total"], 1);
    assert_eq!(page["data"][0]["id"], ann.as_str());
    assert_eq!(page["data"][0]["orders_count"], 1);
    assert_eq!(page["data"][0]["orders_amount"], 12_000);
    assert!(page["data"][0]["analytics"].is_object());
    let (_, segment) = get(
        &stack,
        &token,
        &format!("/api/v1/marketing/segments/{big_id}"),
    )
    .await;
    assert_eq!(segment["data"]["cached_count"], 1);

    // A refund takes Ann's spend to zero and her only order out of the aggregates:
    // she leaves both segments.
    let (status, _, _) = stack
        .send(
            Method::PATCH,
            &format!("/api/v2/cdp/orders/{order}"),
            &token,
            Some(&json!({"status": "refunded"})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let mut left = Vec::new();
    for _ in 0..2 {
        let change = next_change(&mut events).await;
        assert_eq!(
            (change.customer_id.as_str(), change.change()),
            (ann.as_str(), v1::MembershipChange::Exited)
        );
        left.push(change.segment_id);
    }
    left.sort();
    let mut both = vec![big_id.clone(), recent_id.clone()];
    both.sort();
    assert_eq!(left, both);
    let (_, page) = get(
        &stack,
        &token,
        &format!("/api/v1/marketing/segments/{big_id}/customers"),
    )
    .await;
    assert_eq!(page["meta"]["total"], 0);

    // Eight days later Bob's order is not "this week" any more: the clock moves him out.
    let later = Utc::now() + chrono::Duration::days(8);
    let moved = segmentation::service::membership::clock_tick(&stack.segmentation.infra, later)
        .await
        .expect("clock");
    assert_eq!(moved, 1);
    let change = next_change(&mut events).await;
    assert_eq!(change.reason(), v1::MembershipReason::Clock);
    assert_eq!(
        (
            change.segment_id.as_str(),
            change.customer_id.as_str(),
            change.change()
        ),
        (
            recent_id.as_str(),
            bob.as_str(),
            v1::MembershipChange::Exited
        )
    );
    let (_, segment) = get(
        &stack,
        &token,
        &format!("/api/v1/marketing/segments/{recent_id}"),
    )
    .await;
    assert_eq!(segment["data"]["cached_count"], 0);
}

#[actix_web::test]
async fn analytics_scores_and_delivery_events_feed_rules_once_per_message() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "marketer", "reader"]);
    let mut events = stack.listen("segment.membership.changed.v1").await;
    let ann = stack.create_customer(&token, "ann@example.com", "CA").await;
    let bob = stack.create_customer(&token, "bob@example.com", "TX").await;
    profiles_ready(&stack, 2).await;
    let champions = create_segment(
        &stack,
        &token,
        json!({"name": "Champions", "criteria": {"rfm_segment": ["Champions"], "clv_tier": "high"}}),
    )
    .await;
    let openers = create_segment(
        &stack,
        &token,
        json!({"name": "Openers", "rules": {"logic": "AND", "conditions": [
            {"field": "emails_opened", "operator": "greater_than_or_equals", "value": 2}]}}),
    )
    .await;

    let now = Utc::now();
    let scores = |at: chrono::DateTime<Utc>, segment: &str| v1::ScoresUpdated {
        tenant_id: "acme".into(),
        run_id: uuid::Uuid::new_v4().to_string(),
        computed_at: Some(mkt_contracts::timestamp(at)),
        as_of: Some(mkt_contracts::timestamp(at)),
        scores: vec![v1::CustomerScores {
            customer_id: ann.clone(),
            rfm_segment: Some(segment.into()),
            recency_score: Some(5),
            frequency_score: Some(5),
            monetary_score: Some(4),
            clv: Some(450_000),
            clv_tier: Some("high".into()),
            churn_risk: Some("active".into()),
            churn_probability: Some(0.05),
            currency: "USD".into(),
        }],
    };
    stack
        .publish(
            "analytics.scores.updated.v1",
            "acme",
            scores(now, "Champions").encode_to_vec(),
        )
        .await;
    let change = next_change(&mut events).await;
    assert_eq!(
        (
            change.segment_id.as_str(),
            change.customer_id.as_str(),
            change.change()
        ),
        (
            champions["id"].as_str().expect("id"),
            ann.as_str(),
            v1::MembershipChange::Entered
        )
    );
    // An older run delivered late changes nothing.
    stack
        .publish(
            "analytics.scores.updated.v1",
            "acme",
            scores(now - chrono::Duration::hours(1), "Lost").encode_to_vec(),
        )
        .await;
    let late = "SELECT count(*) FROM segmentation.inbox_messages WHERE routing_key = 'analytics.scores.updated.v1'";
    support::eventually(WAIT, "the late run to be consumed", || async {
        (support::scalar_i64(&stack.segmentation_db, late).await == 2).then_some(())
    })
    .await;
    assert_eq!(
        support::scalar_i64(
            &stack.segmentation_db,
            "SELECT count(*) FROM segmentation.customer_scores WHERE rfm_segment = 'Champions'"
        )
        .await,
        1
    );
    let (_, page) = get(
        &stack,
        &token,
        &format!(
            "/api/v1/marketing/segments/{}/customers",
            champions["id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(page["data"][0]["analytics"]["segment"], "Champions");
    assert_eq!(page["data"][0]["analytics"]["cltv"], 450_000);

    // Bob opens one email three times (counted once), then another email: two opens.
    let opened = |message: &str| v1::DeliveryRecorded {
        tenant_id: "acme".into(),
        event_id: uuid::Uuid::new_v4().to_string(),
        message_id: message.into(),
        campaign_id: None,
        customer_id: bob.clone(),
        channel: v1::Channel::Email as i32,
        kind: v1::DeliveryKind::Opened as i32,
        occurred_at: Some(mkt_contracts::timestamp(Utc::now())),
        provider: "sendgrid".into(),
        url: None,
    };
    for message in ["m1", "m1", "m1"] {
        stack
            .publish(
                "delivery.recorded.v1",
                "acme",
                opened(message).encode_to_vec(),
            )
            .await;
    }
    let consumed = "SELECT count(*) FROM segmentation.inbox_messages WHERE routing_key = 'delivery.recorded.v1'";
    support::eventually(WAIT, "the opens to be consumed", || async {
        (support::scalar_i64(&stack.segmentation_db, consumed).await == 3).then_some(())
    })
    .await;
    let (_, segment) = get(
        &stack,
        &token,
        &format!(
            "/api/v1/marketing/segments/{}",
            openers["id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(segment["data"]["cached_count"], 0, "one email opened once");
    stack
        .publish("delivery.recorded.v1", "acme", opened("m2").encode_to_vec())
        .await;
    let change = next_change(&mut events).await;
    assert_eq!(
        (
            change.segment_id.as_str(),
            change.customer_id.as_str(),
            change.change()
        ),
        (
            openers["id"].as_str().expect("id"),
            bob.as_str(),
            v1::MembershipChange::Entered
        )
    );
}

#[actix_web::test]
async fn static_and_imported_segments_pages_exports_and_v2_routes_are_per_tenant() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "marketer", "reader"]);
    let mut ids = Vec::new();
    for i in 0..5 {
        let email = format!("c{i}@example.com");
        ids.push(
            stack
                .create_customer(&token, &email, if i % 2 == 0 { "CA" } else { "NY" })
                .await,
        );
    }
    profiles_ready(&stack, 5).await;
    stack.place_order(&token, &ids[0], 2_500).await;

    // Static: explicit ids; an id that is no customer of ours is not a member.
    let stranger = uuid::Uuid::new_v4().to_string();
    let fixed = create_segment(
        &stack,
        &token,
        json!({"name": "Hand picked", "type": "static", "customer_ids": [ids[0], ids[1], stranger]}),
    )
    .await;
    assert_eq!(fixed["cached_count"], 2);

    // Imported: a CSV of emails (any case), one unknown, one repeated.
    let csv = "Name,Email\nA,C0@example.com\nB,c2@example.com\nC,c4@example.com\nD,nobody@example.com\nE,c2@example.com\n";
    let response = stack
        .http
        .post(stack.url(
            "/api/v1/marketing/segments/import?name=Newsletter%20list&description=from%20a%20fair",
        ))
        .bearer_auth(&token)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 201);
    let imported: Value = response.json().await.expect("json");
    let imported = &imported["data"];
    assert_eq!(imported["type"], "imported");
    assert_eq!(imported["cached_count"], 3);
    assert_eq!(imported["imported_rows"], 5);
    assert_eq!(imported["unmatched_rows"], 2);
    let imported_id = imported["id"].as_str().expect("id");
    let bad = stack
        .http
        .post(stack.url("/api/v1/marketing/segments/import?name=x"))
        .bearer_auth(&token)
        .body("phone\n123\n")
        .send()
        .await
        .expect("import");
    assert_eq!(bad.status().as_u16(), 400);

    // Members pages paginate in a stable order.
    let path = |page: i64| {
        format!("/api/v1/marketing/segments/{imported_id}/customers?page={page}&limit=2")
    };
    let (_, first) = get(&stack, &token, &path(1)).await;
    let (_, second) = get(&stack, &token, &path(2)).await;
    assert_eq!(first["meta"]["total"], 3);
    assert_eq!(first["meta"]["total_pages"], 2);
    assert_eq!(first["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(second["data"].as_array().map(Vec::len), Some(1));
    let mut emails: Vec<String> = first["data"]
        .as_array()
        .into_iter()
        .chain(second["data"].as_array())
        .flatten()
        .map(|c| c["email"].as_str().expect("email").to_owned())
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        ["c0@example.com", "c2@example.com", "c4@example.com"]
    );

    // CSV export, read back with a CSV reader.
    let response = stack
        .http
        .get(stack.url(&format!(
            "/api/v1/marketing/segments/{imported_id}/export?format=csv"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    let body = response.bytes().await.expect("body");
    let mut reader = csv_async::AsyncReader::from_reader(&body[..]);
    let header = reader.headers().await.expect("header").clone();
    assert_eq!(&header[3], "email");
    assert_eq!(&header[9], "total_spent_minor");
    let mut records = Vec::new();
    {
        use futures_util::StreamExt;
        let mut stream = reader.records();
        while let Some(record) = stream.next().await {
            records.push(record.expect("record"));
        }
    }
    assert_eq!(records.len(), 3);
    let c0 = records
        .iter()
        .find(|r| &r[3] == "c0@example.com")
        .expect("c0 row");
    assert_eq!((&c0[8], &c0[9]), ("1", "2500"));

    // XLSX export, opened with a spreadsheet reader.
    let response = stack
        .http
        .get(stack.url(&format!(
            "/api/v1/marketing/segments/{imported_id}/export?format=xlsx"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.bytes().await.expect("body");
    {
        use calamine::Reader;
        let mut workbook =
            calamine::Xlsx::new(std::io::Cursor::new(body.to_vec())).expect("a real xlsx");
        let sheet = workbook.worksheet_range("Sheet1").expect("Sheet1");
        let rows: Vec<Vec<String>> = sheet
            .rows()
            .map(|r| r.iter().map(ToString::to_string).collect())
            .collect();
        assert_eq!(rows.len(), 4, "header and three members");
        assert_eq!(rows[0][3], "email");
        let c0 = rows
            .iter()
            .find(|r| r[3] == "c0@example.com")
            .expect("c0 row");
        assert_eq!((c0[8].as_str(), c0[9].as_str()), ("1", "2500"));
    }
    let (status, body) = get(
        &stack,
        &token,
        &format!("/api/v1/marketing/segments/{imported_id}/export?format=pdf"),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Seed 004's routes over the same data.
    let (status, list) = get(&stack, &token, "/api/v2/cdp/segments?type=static").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["data"][0]["member_count"], 2);
    let (_, all) = get(&stack, &token, "/api/v2/cdp/segments").await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2));
    let (status, members) = get(
        &stack,
        &token,
        &format!("/api/v2/cdp/segments/{imported_id}/members?limit=2&offset=2"),
    )
    .await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["data"]["total"], 3);
    assert_eq!(members["data"]["members"].as_array().map(Vec::len), Some(1));

    // Another tenant sees none of it.
    let other = support::token("globex", &["marketer", "reader"]);
    for path in [
        format!("/api/v1/marketing/segments/{imported_id}/customers"),
        format!("/api/v1/marketing/segments/{imported_id}/export?format=csv"),
        format!("/api/v2/cdp/segments/{imported_id}/members"),
    ] {
        let (status, body) = get(&stack, &other, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, theirs) = get(&stack, &other, "/api/v2/cdp/segments").await;
    assert_eq!(theirs["data"], json!([]));

    // Erasure removes a customer from explicit segments too.
    let (status, _, _) = stack
        .send(
            Method::DELETE,
            &format!("/api/v2/cdp/customers/{}", ids[0]),
            &token,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 204);
    let fixed_id = fixed["id"].as_str().expect("id").to_owned();
    support::eventually(WAIT, "the erased customer to leave", || async {
        let (_, segment) = get(
            &stack,
            &token,
            &format!("/api/v1/marketing/segments/{fixed_id}"),
        )
        .await;
        (segment["data"]["cached_count"] == 1).then_some(())
    })
    .await;
}
