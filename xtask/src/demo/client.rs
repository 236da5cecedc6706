//! Sending batches through the gateway with retries and idempotency keys, tallying
//! the answers, and progress on stderr.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ATTEMPTS;
use super::batches::{Batch, Kind};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

pub(super) struct Failure {
    pub(super) kind: Kind,
    pub(super) what: String,
    pub(super) status: u64,
    pub(super) code: String,
    pub(super) error: String,
    pub(super) details: Value,
}

#[derive(Default)]
pub(super) struct Tally {
    pub(super) rows: u64,
    pub(super) created: u64,
    pub(super) updated: u64,
    pub(super) already_present: u64,
    pub(super) failed: u64,
    pub(super) batches: u64,
    pub(super) replayed: u64,
    pub(super) retries: u64,
}

#[derive(Default)]
pub(super) struct Totals {
    pub(super) per_kind: BTreeMap<&'static str, Tally>,
    pub(super) failures: Vec<Failure>,
}

pub(super) struct Client {
    pub(super) http: reqwest::Client,
    pub(super) gateway: String,
    pub(super) token: String,
}

pub(super) async fn send(client: &Client, batch: &Batch, totals: &Mutex<Totals>) -> Result<()> {
    let url = format!("{}{}", client.gateway, batch.kind.path());
    let mut retries = 0;
    let mut attempt = 0;
    let (status, replayed, text) = loop {
        attempt += 1;
        let result = client
            .http
            .post(&url)
            .bearer_auth(&client.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &batch.key)
            .body(batch.body.clone())
            .send()
            .await;
        let retry_because = match result {
            Err(e) => format!("{e}"),
            Ok(response) => {
                let status = response.status().as_u16();
                let replayed = response.headers().contains_key("idempotent-replayed");
                let text = response.text().await.unwrap_or_default();
                let in_progress = status == 409 && text.contains("idempotency_in_progress");
                if !(matches!(status, 429 | 500 | 502 | 503 | 504) || in_progress) {
                    break (status, replayed, text);
                }
                format!("HTTP {status}: {}", truncate(&text, 300))
            }
        };
        if attempt >= ATTEMPTS {
            bail!(
                "{} batch {} failed {ATTEMPTS} times, last: {retry_because}. The Idempotency-Key makes \
                 re-running safe once the stack is healthy",
                batch.kind.name(),
                batch.index
            );
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
    };

    let mut totals = totals.lock().map_err(|_| anyhow!("tally lock poisoned"))?;
    let totals = &mut *totals;
    let tally = totals.per_kind.entry(batch.kind.name()).or_default();
    tally.batches += 1;
    tally.rows += batch.rows.len() as u64;
    tally.replayed += u64::from(replayed);
    tally.retries += retries;
    if status != 200 {
        // The whole batch was refused (400 invalid body, 413, 401...): every row failed.
        tally.failed += batch.rows.len() as u64;
        let body: Value =
            serde_json::from_str(&text).unwrap_or(Value::String(truncate(&text, 500)));
        totals.failures.push(Failure {
            kind: batch.kind,
            what: format!(
                "the whole batch {} ({} rows)",
                batch.index,
                batch.rows.len()
            ),
            status: u64::from(status),
            code: body
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            error: body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            details: body.get("details").cloned().unwrap_or(body),
        });
        return Ok(());
    }
    let body: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} batch {}: the 200 response is not JSON: {}",
            batch.kind.name(),
            batch.index,
            truncate(&text, 300)
        )
    })?;
    let results = body["data"]["results"].as_array().with_context(|| {
        format!(
            "{} batch {}: no data.results in {}",
            batch.kind.name(),
            batch.index,
            truncate(&text, 300)
        )
    })?;
    if results.len() != batch.rows.len() {
        bail!(
            "{} batch {}: {} results for {} rows",
            batch.kind.name(),
            batch.index,
            results.len(),
            batch.rows.len()
        );
    }
    for result in results {
        let status = result["status"].as_u64().unwrap_or(0);
        let code = result["code"].as_str().unwrap_or("");
        match (status, code) {
            (201, _) => tally.created += 1,
            (200, _) => tally.updated += 1,
            // Sent before (under another key): the order is there.
            (409, "duplicate_order") => tally.already_present += 1,
            _ => {
                tally.failed += 1;
                let index = result["index"].as_u64().unwrap_or(u64::MAX) as usize;
                totals.failures.push(Failure {
                    kind: batch.kind,
                    what: batch
                        .rows
                        .get(index)
                        .map_or_else(|| format!("row {index}"), |row| batch.kind.identity(row)),
                    status,
                    code: code.to_owned(),
                    error: result["error"].as_str().unwrap_or("").to_owned(),
                    details: result["details"].clone(),
                });
            }
        }
    }
    Ok(())
}

pub(super) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

pub(super) struct Progress {
    pub(super) label: &'static str,
    pub(super) customers: usize,
    pub(super) through: AtomicUsize,
    pub(super) rows: AtomicU64,
    pub(super) done: AtomicBool,
    pub(super) started: Instant,
    pub(super) terminal: bool,
}

impl Progress {
    pub(super) fn line(&self) -> String {
        let through = self.through.load(Ordering::Relaxed).min(self.customers);
        let fraction = if self.customers == 0 {
            1.0
        } else {
            through as f64 / self.customers as f64
        };
        let width = 28;
        let filled = (fraction * width as f64).round() as usize;
        let rows = self.rows.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{:<9} [{}{}] {:>3.0}%  {:>8} rows  {:>7.0} rows/s  {:>5.1} s",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            fraction * 100.0,
            rows,
            rows as f64 / secs,
            secs
        )
    }

    /// Redraws the line in place (a terminal only) until the phase ends.
    pub(super) async fn draw(self: Arc<Self>) {
        while !self.done.load(Ordering::Relaxed) {
            if self.terminal {
                eprint!("\r{}", self.line());
                let _ = std::io::stderr().flush();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(super) fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        eprintln!("{}{}", if self.terminal { "\r" } else { "" }, self.line());
    }
}
