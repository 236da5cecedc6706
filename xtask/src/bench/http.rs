//! The HTTP load generator: workers that POST customers (single or batches) through
//! the gateway or straight to ingestion, each request's latency recorded, and the
//! summary of a measured window.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use super::cpu::{CpuSample, CpuUse};
use super::report::{Cell, percentile};
use super::{Bench, http_client};
use crate::demo::Rng;
use crate::signals::StopFlag;

#[derive(Clone, Copy)]
pub(super) enum Payload {
    Single,
    Batch(usize),
}

/// Stable parts of a bench customer; the email makes each one new.
pub(super) fn customer(run: &str, worker: usize, seq: u64, row: usize, rng: &mut Rng) -> String {
    let n = rng.next_u64() % 10_000;
    format!(
        r#"{{"name":"Bench Customer {n}","first_name":"Bench","last_name":"Customer {n}","email":"b{run}-{worker}-{seq}-{row}@bench.example","phone":"(212) 555-01{:02}","address":{{"street":"{n} Main St","city":"New York","state":"NY","zipCode":"10001","country":"USA"}},"external_id":"bench-{run}-{worker}-{seq}-{row}","loyalty_tier":"bronze","attributes":{{"acquisition_channel":"bench"}},"consent":{{"email":true,"sms":false,"push":true}}}}"#,
        n % 100
    )
}

/// One request or transaction, times in microseconds from a common origin.
#[derive(Debug, Clone, Default)]
pub(super) struct Sample {
    pub(super) start: u64,
    pub(super) end: u64,
    /// Rows it wrote.
    pub(super) rows: u64,
    /// Completed successfully (2xx; a batch may still have failed items).
    pub(super) ok: bool,
    /// What went wrong and how many rows or requests it concerns.
    pub(super) error: Option<(String, u64)>,
}

/// A cell's figures over the measured window.
pub(super) struct Summary {
    pub(super) per_second: f64,
    pub(super) rows_per_second: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    pub(super) count: usize,
    pub(super) errors: BTreeMap<String, u64>,
}

/// Throughput counts each request by the share of its duration inside the window
/// [`from`, `to`) (a 5-second batch straddling the window edge counts in part, so long
/// requests are neither lost nor double-counted); latencies are those of successful
/// requests that overlap the window.
pub(super) fn summarize(samples: &[Sample], from: u64, to: u64) -> Summary {
    let window = to.saturating_sub(from).max(1) as f64;
    let (mut requests, mut rows) = (0.0, 0.0);
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.end > from && s.start < to) {
        let duration = sample.end.saturating_sub(sample.start);
        let inside = sample.end.min(to).saturating_sub(sample.start.max(from));
        let share = if duration == 0 {
            1.0
        } else {
            inside as f64 / duration as f64
        };
        if sample.ok {
            requests += share;
            rows += share * sample.rows as f64;
            latencies.push(duration);
        }
        if let Some((kind, n)) = &sample.error {
            *errors.entry(kind.clone()).or_default() += n;
        }
    }
    latencies.sort_unstable();
    let secs = window / 1e6;
    Summary {
        per_second: requests / secs,
        rows_per_second: rows / secs,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: percentile(&latencies, 100.0),
        count: latencies.len(),
        errors,
    }
}

pub(super) struct HttpTarget {
    pub(super) url: String,
    pub(super) token: String,
    pub(super) payload: Payload,
}

#[allow(clippy::too_many_arguments, reason = "one worker's whole context")]
pub(super) async fn http_worker(
    client: reqwest::Client,
    target: std::sync::Arc<HttpTarget>,
    run: String,
    worker: usize,
    origin: Instant,
    warm_end: Instant,
    deadline: Instant,
    stop: StopFlag,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut rng = Rng::derive(worker as u64, 7, 0);
    let mut seq = 0u64;
    let micros = |at: Instant| at.saturating_duration_since(origin).as_micros() as u64;
    while Instant::now() < deadline && !stop.requested() {
        seq += 1;
        let body = match target.payload {
            Payload::Single => customer(&run, worker, seq, 0, &mut rng),
            Payload::Batch(rows) => {
                let items: Vec<String> = (0..rows)
                    .map(|row| customer(&run, worker, seq, row, &mut rng))
                    .collect();
                format!(r#"{{"customers":[{}]}}"#, items.join(","))
            }
        };
        let started = Instant::now();
        let response = client
            .post(&target.url)
            .bearer_auth(&target.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        // The body is read before the clock stops: the response is complete, and the
        // connection goes back to the pool.
        let outcome = match response {
            Err(e) => Err(if e.is_timeout() {
                "timeout".to_owned()
            } else {
                "transport error".to_owned()
            }),
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Err(_) => Err("transport error (body)".to_owned()),
                    Ok(_) if !status.is_success() => Err(format!("HTTP {}", status.as_u16())),
                    Ok(bytes) => Ok(bytes),
                }
            }
        };
        let ended = Instant::now();
        if ended < warm_end {
            continue;
        }
        let mut sample = Sample {
            start: micros(started),
            end: micros(ended),
            ..Sample::default()
        };
        match (outcome, target.payload) {
            (Err(kind), _) => sample.error = Some((kind, 1)),
            (Ok(_), Payload::Single) => (sample.ok, sample.rows) = (true, 1),
            (Ok(bytes), Payload::Batch(_)) => {
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                sample.ok = true;
                sample.rows = body["data"]["succeeded"].as_u64().unwrap_or(0);
                let failed = body["data"]["failed"].as_u64().unwrap_or(0);
                if failed > 0 {
                    let code = body["data"]["results"]
                        .as_array()
                        .and_then(|r| r.iter().find_map(|r| r["code"].as_str()))
                        .unwrap_or("?");
                    sample.error = Some((format!("item {code}"), failed));
                }
            }
        }
        samples.push(sample);
    }
    samples
}

impl Bench {
    #[allow(
        clippy::too_many_arguments,
        reason = "a cell is its section, load, target and duration"
    )]
    pub(super) fn http_cell(
        &mut self,
        section: &'static str,
        c: usize,
        what: &str,
        url: &str,
        payload: Payload,
        seconds: u64,
    ) -> Result<()> {
        self.stop.check()?;
        eprint!("c={c:<3} {what}: ");
        let (warmup, measured) = (
            Duration::from_secs(self.options.warmup),
            Duration::from_secs(seconds),
        );
        let target = std::sync::Arc::new(HttpTarget {
            url: url.to_owned(),
            token: self.token.clone(),
            payload,
        });
        let cell_run = format!("{}{}", self.run, self.cells.len());
        // A fresh client per cell: connections left idle from an earlier cell may have
        // passed the server's keep-alive and would fail as transport errors.
        let client = http_client()?;
        let origin = Instant::now();
        let (warm_end, deadline) = (origin + warmup, origin + warmup + measured);
        let (samples, cpu) = self.runtime.block_on(async {
            let mut workers = tokio::task::JoinSet::new();
            for worker in 0..c {
                workers.spawn(http_worker(
                    client.clone(),
                    target.clone(),
                    cell_run.clone(),
                    worker,
                    origin,
                    warm_end,
                    deadline,
                    self.stop.clone(),
                ));
            }
            // CPU over exactly the measured window.
            tokio::time::sleep_until(warm_end.into()).await;
            let before = CpuSample::take(&self.roots);
            tokio::time::sleep_until(deadline.into()).await;
            let cpu = CpuUse::between(&before, &CpuSample::take(&self.roots), self.cpus);
            let mut samples = Vec::new();
            while let Some(worker) = workers.join_next().await {
                samples.extend(worker?);
            }
            Ok::<_, anyhow::Error>((samples, cpu))
        })?;
        self.stop.check()?;
        let micros = |at: Instant| at.saturating_duration_since(origin).as_micros() as u64;
        let summary = summarize(&samples, micros(warm_end), micros(deadline));
        let drained = self.drain()?;
        let note = format!(
            "{} successful requests overlapping the {seconds} s window",
            summary.count
        );
        self.push(Cell::new(
            section,
            c,
            what,
            "req/s",
            summary,
            Some(drained),
            note,
            cpu,
        ));
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_by_their_share_of_the_window() {
        let sample = |start, end, ok| Sample {
            start,
            end,
            rows: 10,
            ok,
            error: (!ok).then(|| ("HTTP 500".to_owned(), 1)),
        };
        // Window [100, 200): one request inside, one half in, one outside, one failed.
        let samples = [
            sample(110, 120, true),
            sample(150, 250, true),
            sample(0, 50, true),
            sample(120, 130, false),
        ];
        let summary = summarize(&samples, 100, 200);
        // 1.5 requests and 15 rows in 100 µs.
        assert!((summary.per_second - 15_000.0).abs() < 1e-6);
        assert!((summary.rows_per_second - 150_000.0).abs() < 1e-6);
        assert_eq!(summary.count, 2);
        assert_eq!(summary.errors.get("HTTP 500"), Some(&1));
        assert_eq!(summary.max_ms, 0.1);
    }
}
