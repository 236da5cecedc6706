//! CSV imports through the gateway: rejections with reasons, orders grouped by line,
//! live progress over server-sent events, and a million-row file whose memory stays
//! flat because it is streamed end to end.

use std::time::Duration;

use e2e::Stack;
use futures_util::StreamExt;
use mkt_test_support as support;
use reqwest::Method;
use serde_json::Value;

/// Just ingestion behind the gateway: the million-row test measures the import, not
/// the consumers of its million events (their queues do not exist, so the relay holds
/// the events back, as it does for any routing key nobody consumes yet).
struct IngestionOnly {
    gateway: gateway::Running,
    _ingestion: mkt_runtime::Running,
    ingestion_db: String,
}

impl IngestionOnly {
    async fn start() -> Self {
        let amqp = support::vhost().await;
        let ingestion_db = support::database_for(&ingestion::SPEC).await;
        let mut config = support::service_config(&ingestion_db, &amqp);
        config.database.schema = Some("ingestion".into());
        let ingestion = ingestion::spawn(config).await.expect("ingestion");
        let url = ingestion.url();
        let gateway = gateway::spawn(gateway::config::Config {
            http: mkt_runtime::HttpConfig {
                addr: "127.0.0.1:0".into(),
                workers: Some(1),
            },
            auth: support::auth_config(),
            upstreams: gateway::config::Upstreams {
                ingestion: url.clone(),
                segmentation: url.clone(),
                campaign: url.clone(),
                webhook: url.clone(),
                cdp_analytics: url,
                timeout_ms: 5_000,
                upload_timeout_ms: 600_000,
                connect_timeout_ms: 500,
            },
            telemetry: Default::default(),
        })
        .await
        .expect("gateway");
        Self {
            gateway,
            _ingestion: ingestion,
            ingestion_db,
        }
    }
}

async fn upload(stack: &Stack, token: &str, kind: &str, body: reqwest::Body) -> (u16, Value) {
    upload_to(&stack.gateway.url(), token, kind, body).await
}

async fn upload_to(gateway: &str, token: &str, kind: &str, body: reqwest::Body) -> (u16, Value) {
    let response = mkt_http_client::client()
        .post(format!("{gateway}/api/v2/cdp/imports?type={kind}"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn wait_done(gateway: &str, token: &str, id: &str, timeout: Duration) -> Value {
    let url = format!("{gateway}/api/v2/cdp/imports/{id}");
    let http = mkt_http_client::client();
    support::eventually(timeout, "the import to finish", || async {
        let job: Value = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (job["data"]["status"] == "completed" || job["data"]["status"] == "failed")
            .then_some(job["data"].clone())
    })
    .await
}

#[actix_web::test]
async fn an_import_reports_rejected_rows_with_reasons_and_streams_progress() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader"]);
    let csv = "email,name,city,state,zip_code,country,street,consent_email\n\
               ann@example.com,Ann,Austin,TX,73301,USA,1 Elm St,yes\n\
               not-an-email,Bob,,,,,,\n\
               cy@example.com,\"Cy, Jr.\",Austin,TX,73301,USA,\"2 Oak\nSt\",no\n\
               short@example.com,Short\n\
               ann@example.com,Ann Again,Austin,TX,73301,USA,1 Elm St,maybe\n";
    let (status, body) = upload(&stack, &token, "customers", reqwest::Body::from(csv)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(body["data"]["total_rows"], 5);

    // Live progress: the stream ends with a `done` event carrying the final counts.
    let response = stack
        .http
        .get(stack.url(&format!("/api/v2/cdp/imports/{id}/events")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("events");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), chunks.next())
        .await
        .expect("sse in time")
    {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    let done = text
        .split("event: done\ndata: ")
        .nth(1)
        .expect("a done event")
        .trim();
    let job: Value = serde_json::from_str(done).expect("done payload");
    assert_eq!(
        (job["status"].as_str(), job["progress"].as_f64()),
        (Some("completed"), Some(100.0))
    );
    assert_eq!(
        (
            job["succeeded_rows"].as_i64(),
            job["rejected_rows"].as_i64()
        ),
        (Some(2), Some(3)),
        "{job}"
    );

    let report = stack
        .http
        .get(stack.url(&format!("/api/v2/cdp/imports/{id}/rejections")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("report")
        .text()
        .await
        .expect("csv");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[0],
        "row_number,reason,email,name,city,state,zip_code,country,street,consent_email"
    );
    assert!(
        lines[1].starts_with("2,email: Invalid email format"),
        "{report}"
    );
    assert!(
        lines[2].starts_with("4,\"expected 8 fields, found 2\""),
        "{report}"
    );
    assert!(
        lines[3].starts_with("5,consent_email: must be true or false"),
        "{report}"
    );
    let stored = support::scalar_i64(
        &stack.ingestion_db,
        "SELECT count(*) FROM ingestion.customers WHERE email IN ('ann@example.com', 'cy@example.com') AND (name = 'Ann' OR street = E'2 Oak\\nSt')",
    )
    .await;
    assert_eq!(stored, 2);

    // Orders: one row per line item, grouped by order_external_id.
    let orders = "order_external_id,customer_email,currency,status,product_id,name,price,quantity,ordered_at\n\
                  o-1,ann@example.com,USD,delivered,p1,Cup,250,2,2024-03-01T10:00:00Z\n\
                  o-1,ann@example.com,USD,delivered,p2,Pot,1000,1,2024-03-01T10:00:00Z\n\
                  o-2,nobody@example.com,USD,delivered,p1,Cup,250,1,2024-03-02T10:00:00Z\n\
                  o-3,cy@example.com,EUR,shipped,p3,Pan,999,3,2024-03-03T10:00:00Z\n";
    let (status, body) = upload(&stack, &token, "orders", reqwest::Body::from(orders)).await;
    assert_eq!(status, 202, "{body}");
    let job = wait_done(
        &stack.gateway.url(),
        &token,
        body["data"]["id"].as_str().expect("id"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        (
            job["succeeded_rows"].as_i64(),
            job["rejected_rows"].as_i64()
        ),
        (Some(3), Some(1)),
        "{job}"
    );
    assert_eq!(
        support::scalar_i64(
            &stack.ingestion_db,
            "SELECT total_amount FROM ingestion.orders WHERE external_id = 'o-1'"
        )
        .await,
        1500
    );

    // A header that would mass-assign, or a wrong type, is refused up front.
    let (status, body) = upload(
        &stack,
        &token,
        "customers",
        reqwest::Body::from("email,name,is_admin\n"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_csv_header"))
    );
    assert!(
        body["details"]["header"][0]
            .as_str()
            .is_some_and(|m| m.contains("is_admin"))
    );
    let (status, _) = upload(&stack, &token, "invoices", reqwest::Body::from("a\n")).await;
    assert_eq!(status, 400);
    let other = support::token("globex", &["reader"]);
    assert_eq!(
        stack
            .send(
                Method::GET,
                &format!("/api/v2/cdp/imports/{id}"),
                &other,
                None,
                &[]
            )
            .await
            .0,
        404
    );
}

/// Resident memory of this process (the services run in it), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[actix_web::test]
async fn a_million_row_import_streams_with_flat_memory() {
    let rows: u64 = std::env::var("MKT_TEST_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let stack = IngestionOnly::start().await;
    let token = support::token("acme", &["ingest", "reader"]);
    let before = rss_kib();

    // The client streams the file too: nothing here holds it whole.
    let header = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(
            b"email,name,city,state,zip_code,country,street\n",
        ))
    });
    let body = futures_util::stream::iter(0..rows.div_ceil(1_000)).map(move |block| {
        let mut chunk = String::with_capacity(100_000);
        for i in block * 1_000..((block + 1) * 1_000).min(rows) {
            chunk.push_str(&format!("user{i}@example.com,Customer Number {i},Springfield,IL,62701,USA,{i} Long Street Name Avenue\n"));
        }
        Ok::<_, std::io::Error>(bytes::Bytes::from(chunk))
    });
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let gateway = stack.gateway.url();
    let (status, body) = upload_to(
        &gateway,
        &token,
        "customers",
        reqwest::Body::wrap_stream(header.chain(body)),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["data"]["total_rows"].as_u64(), Some(rows));
    let job = wait_done(
        &gateway,
        &token,
        body["data"]["id"].as_str().expect("id"),
        Duration::from_secs(1_200),
    )
    .await;
    assert_eq!(job["succeeded_rows"].as_u64(), Some(rows), "{job}");
    sampler.abort();
    let peak = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(rss_kib());
    let stored = support::scalar_i64(
        &stack.ingestion_db,
        "SELECT count(*) FROM ingestion.customers",
    )
    .await;
    assert_eq!(stored as u64, rows);
    // The file is ~100 bytes a row (~100 MiB for a million); holding it would add far
    // more than this.
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 96,
        "memory grew by {grown_mib} MiB for {rows} rows"
    );
}
