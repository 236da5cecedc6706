//! CSV safety through the gateway: cells that a spreadsheet would run as formulas are
//! neutralised in the segment export and the import rejections report, an over-long
//! record is reported with its fields cut short (not stored and echoed back whole), and
//! over-size uploads answer 413 while the services keep answering.

use std::time::Duration;

use e2e::Stack;
use futures_util::StreamExt;
use mkt_test_support as support;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(30);

async fn read_csv(body: &[u8]) -> Vec<Vec<String>> {
    let mut reader = csv_async::AsyncReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .create_reader(body);
    let mut records = reader.records();
    let mut out = Vec::new();
    while let Some(record) = records.next().await {
        out.push(record.expect("record").iter().map(str::to_owned).collect());
    }
    out
}

async fn download(stack: &Stack, token: &str, path: &str) -> Vec<Vec<String>> {
    let response = stack
        .http
        .get(stack.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    read_csv(&response.bytes().await.expect("body")).await
}

async fn upload_customers(stack: &Stack, token: &str, body: reqwest::Body) -> (u16, Value) {
    let response = stack
        .http
        .post(stack.url("/api/v2/cdp/imports?type=customers"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn wait_done(stack: &Stack, token: &str, id: &str) -> Value {
    let path = format!("/api/v2/cdp/imports/{id}");
    support::eventually(WAIT, "the import to finish", || async {
        let (_, job) = stack.get(&path, Some(token)).await;
        matches!(job["data"]["status"].as_str(), Some("completed" | "failed"))
            .then(|| job["data"].clone())
    })
    .await
}

#[actix_web::test]
async fn the_segment_export_neutralises_formula_cells() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader", "marketer"]);
    let name = "=HYPERLINK(\"http://evil.example\",\"click\")";
    let city = "@SUM(A1:A2)";
    let customer = json!({"name": name, "email": "eve@example.com",
        "address": {"street": "1 St", "city": city, "state": "CA", "zipCode": "1", "country": "USA"}});
    let (status, _, created) = stack
        .send(
            Method::POST,
            "/api/v2/cdp/customers",
            &token,
            Some(&customer),
            &[],
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["data"]["id"].as_str().expect("id").to_owned();
    support::eventually_scalar(
        WAIT,
        "the customer in segmentation's read model",
        &stack.segmentation_db,
        "SELECT count(*) FROM segmentation.customer_profiles WHERE email = 'eve@example.com'",
        1,
    )
    .await;
    let (status, segment) = stack
        .post(
            "/api/v1/marketing/segments",
            Some(&token),
            &json!({"name": "Eve", "type": "static", "customer_ids": [id]}),
        )
        .await;
    assert_eq!(status, 201, "{segment}");
    let export = format!(
        "/api/v1/marketing/segments/{}/export?format=csv",
        segment["data"]["id"].as_str().expect("segment id")
    );
    let rows = support::eventually(WAIT, "the customer in the export", || async {
        let rows = download(&stack, &token, &export).await;
        rows.iter()
            .any(|r| r.get(3).map(String::as_str) == Some("eve@example.com"))
            .then_some(rows)
    })
    .await;
    assert_eq!(rows[0][2], "name");
    assert_eq!(rows[0][5], "city");
    let eve = rows
        .iter()
        .find(|r| r[3] == "eve@example.com")
        .expect("eve's row");
    assert_eq!(eve[2], format!("'{name}"));
    assert_eq!(eve[5], format!("'{city}"));
    // Nothing else in the file starts like a formula.
    for cell in rows.iter().flatten() {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{cell:?}"
        );
    }
}

#[actix_web::test]
async fn the_rejections_report_neutralises_cells_and_cuts_over_long_rows() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader"]);
    let huge = "x".repeat(2 * 1024 * 1024);
    // Every data row is rejected (a bad email, or a row over the record cap).
    let csv = format!(
        "email,name,city,state,zip_code,country,street\n\
         =HYPERLINK(\"http://evil.example\"),@SUM(A1:A2),+1+2,-1+2,\"\tx\",\"\rx\",ok\n\
         big@example.com,{huge},Austin,TX,73301,USA,1 Elm St\n\
         ann@example.com,Ann,Austin,TX,73301,USA,1 Elm St\n"
    );
    let (status, body) = upload_customers(&stack, &token, reqwest::Body::from(csv)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["data"]["id"].as_str().expect("id").to_owned();
    let job = wait_done(&stack, &token, &id).await;
    assert_eq!(
        (
            job["succeeded_rows"].as_i64(),
            job["rejected_rows"].as_i64()
        ),
        (Some(1), Some(2)),
        "{job}"
    );
    let rows = download(
        &stack,
        &token,
        &format!("/api/v2/cdp/imports/{id}/rejections"),
    )
    .await;
    assert_eq!(rows.len(), 3, "header and two rejections");
    let formulas = &rows[1];
    assert_eq!(formulas[0], "1");
    assert_eq!(
        &formulas[2..8],
        [
            "'=HYPERLINK(\"http://evil.example\")",
            "'@SUM(A1:A2)",
            "'+1+2",
            "'-1+2",
            "'\tx",
            "'\rx"
        ]
    );
    assert_eq!(formulas[8], "ok");
    let big = &rows[2];
    assert_eq!(big[0], "2");
    assert!(big[1].contains("bytes"), "{:?}", big[1]);
    assert_eq!(big[2], "big@example.com");
    assert!(big[3].len() < 1024, "kept {} bytes", big[3].len());
    assert!(
        big[3].starts_with("xxx") && big[3].ends_with('…'),
        "{}",
        big[3]
    );
    // The row is not stored whole either.
    let stored = support::scalar_i64(
        &stack.ingestion_db,
        "SELECT coalesce(max(octet_length(fields::text)), 0) FROM ingestion.import_rejections",
    )
    .await;
    assert!(stored < 4096, "a rejection stores {stored} bytes");
}

/// Sends a request head declaring `length` body bytes, and a few of them, over a plain
/// socket; returns the status and the JSON body of the answer.
async fn declared_upload(base: &str, path: &str, token: &str, length: u64) -> (u16, Value) {
    let addr = base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: text/csv\r\nContent-Length: {length}\r\nConnection: close\r\n\r\nemail\n"
    );
    socket.write_all(head.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    // The answer comes before the body does; the server may keep the socket open.
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buffer)).await
    {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buffer[..n]);
    }
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
async fn over_size_uploads_answer_413_and_imports_keep_working() {
    let stack = Stack::start().await;
    let token = support::token("acme", &["ingest", "reader", "marketer"]);

    // Declared over the cap: refused before a byte of the body is read.
    for (base, path) in [
        (stack.ingestion.url(), "/api/v2/cdp/imports?type=customers"),
        (
            stack.segmentation.url(),
            "/api/v1/marketing/segments/import?name=big",
        ),
    ] {
        let (status, body) = declared_upload(&base, path, &token, 4 << 30).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["code"], "payload_too_large", "{body}");
        assert_eq!(body["success"], false, "{body}");
    }

    // Streamed with no length: the segment import stops at 128 MiB. (Straight to the
    // service: the gateway gives this route 5 s, too short for 128 MiB in a debug build.)
    // (Rows without a key are skipped, so the service holds nothing while it reads.)
    let line = format!(",{}\n", "a".repeat(1_000));
    let lines = (128 * 1024 * 1024) / line.len() + 100;
    let chunk = bytes::Bytes::from(line.repeat(1_000));
    let stream = futures_util::stream::iter(0..lines.div_ceil(1_000))
        .map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let body = futures_util::stream::once(async { Ok(bytes::Bytes::from_static(b"email,note\n")) })
        .chain(stream);
    let response = stack
        .http
        .post(format!(
            "{}/api/v1/marketing/segments/import?name=big",
            stack.segmentation.url()
        ))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 413);
    let envelope: Value = response.json().await.expect("envelope");
    assert_eq!(envelope["code"], "payload_too_large", "{envelope}");

    // Both services still take a normal upload.
    let response = stack
        .http
        .post(stack.url("/api/v1/marketing/segments/import?name=small"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body("email\nnobody@example.com\n")
        .send()
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 201);
    let (status, body) = upload_customers(
        &stack,
        &token,
        reqwest::Body::from("email,name\nann@example.com,Ann\n"),
    )
    .await;
    assert_eq!(status, 202, "{body}");
}
