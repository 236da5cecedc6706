//! `cargo xtask bench ingestion`: load-tests the running stack's customer ingestion and,
//! in the same run, what the same PostgreSQL does with `pgbench` alone.
//!
//! Rows of the result, for each concurrency `c`:
//! - API single POST `/api/v2/cdp/customers` through the gateway (and straight to the
//!   ingestion service, to price the proxy hop): `c` workers, one request in flight each,
//!   unique emails, every request's latency recorded;
//! - pgbench with `c` clients: a single-row upsert into a scratch copy of the customers
//!   table, then the same plus an outbox row in one transaction (what the API commits);
//! - batches: 1,000-row `/customers/batch` requests against pgbench's 500-row upsert
//!   statement (with and without outbox rows).
//!
//! Every cell runs `--warmup` seconds unmeasured, then `--seconds` measured. After an
//! API cell the bench waits until the outbox relay has published the cell's rows and
//! segmentation has consumed them, so that work never leaks into the next cell. CPU use
//! is read from `/proc` per process group for every cell.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use crate::demo::{Rng, StackEnv, check_gateway};
use crate::signals::StopFlag;

const USAGE: &str = "usage: cargo xtask bench ingestion [--seconds S] [--batch-seconds S] [--warmup S] \
[--concurrency 1,8,32,64] [--batch-concurrency 1,4,8] [--batch-size 1000] [--pg-batch-rows 500] [--no-direct] [--no-pgbench]";

/// The issue's targets, printed next to the figures.
const TARGET_SINGLE_RPS: f64 = 10_000.0;
const TARGET_SINGLE_P99_MS: f64 = 20.0;
const TARGET_BATCH_ROWS: f64 = 100_000.0;

/// The tenant the bench writes into, so the `demo` tenant's data stays as it was.
const TENANT: &str = "bench";
/// Where Debian's PostgreSQL 15 keeps `pgbench` and `psql`.
const PGBIN: &str = "/usr/lib/postgresql/15/bin";
/// How long to wait for the relay and the consumer to catch up after an API cell.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Cores busy outside the stack at rest above which the figures are flagged.
const BUSY_ELSEWHERE: f64 = 0.25;
/// The baseline: the stack with no load.
const IDLE: Duration = Duration::from_secs(5);

struct Options {
    seconds: u64,
    /// Batch cells run longer: one request takes seconds.
    batch_seconds: u64,
    warmup: u64,
    concurrency: Vec<usize>,
    batch_concurrency: Vec<usize>,
    batch_size: usize,
    pg_batch_rows: usize,
    direct: bool,
    pgbench: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut args = args.iter();
        match args.next().map(String::as_str) {
            Some("ingestion") => {}
            Some(other) => {
                bail!(
                    "unknown benchmark {other:?}: `ingestion`, `segmentation`, `analytics` or `freshness`\n{USAGE}"
                )
            }
            None => bail!("which benchmark?\n{USAGE}"),
        }
        let mut options = Options {
            seconds: 10,
            batch_seconds: 20,
            warmup: 2,
            concurrency: vec![1, 8, 32, 64],
            batch_concurrency: vec![1, 4, 8],
            batch_size: 1_000,
            pg_batch_rows: 500,
            direct: true,
            pgbench: true,
        };
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))
            };
            let number = |text: &str| -> Result<u64> {
                text.trim()
                    .parse()
                    .map_err(|_| anyhow!("{flag} takes whole numbers, got {text:?}"))
            };
            let list = |text: String| -> Result<Vec<usize>> {
                let list = text
                    .split(',')
                    .map(|n| number(n).map(|n| n as usize))
                    .collect::<Result<Vec<_>>>()?;
                if list.iter().any(|n| !(1..=256).contains(n)) {
                    bail!("{flag}: each concurrency must be 1..=256");
                }
                Ok(list)
            };
            match flag {
                "--seconds" => options.seconds = number(&value()?)?.max(1),
                "--batch-seconds" => options.batch_seconds = number(&value()?)?.max(1),
                "--warmup" => options.warmup = number(&value()?)?,
                "--concurrency" => options.concurrency = list(value()?)?,
                "--batch-concurrency" => options.batch_concurrency = list(value()?)?,
                "--batch-size" => {
                    options.batch_size = (number(&value()?)? as usize).clamp(1, 1_000)
                }
                "--pg-batch-rows" => {
                    options.pg_batch_rows = (number(&value()?)? as usize).clamp(1, 5_000)
                }
                "--no-direct" if inline.is_none() => options.direct = false,
                "--no-pgbench" if inline.is_none() => options.pgbench = false,
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------------
// CPU accounting from /proc
// ---------------------------------------------------------------------------------

/// Process groups whose CPU time is reported.
const GROUPS: [&str; 8] = [
    "gateway",
    "ingestion",
    "segmentation",
    "other services",
    "postgres",
    "rabbitmq",
    "load gen",
    "pgbench",
];

/// Cumulative CPU ticks: the whole machine, and per group.
#[derive(Clone)]
struct CpuSample {
    total: u64,
    busy: u64,
    groups: [u64; GROUPS.len()],
}

fn service_group(comm: &str) -> Option<usize> {
    match comm {
        "gateway" => Some(0),
        "ingestion" => Some(1),
        "segmentation" => Some(2),
        "campaign" | "webhook" | "cdp-analytics" => Some(3),
        _ => None,
    }
}

/// The stack's own PostgreSQL postmaster and RabbitMQ node: their process trees are
/// counted, while other clusters on the machine (a test run's) land in `other`.
#[derive(Clone, Copy)]
struct Roots {
    postgres: Option<u32>,
    rabbit: Option<u32>,
    me: u32,
}

impl Roots {
    fn find() -> Self {
        let dev = crate::workspace_root().join(".dev");
        let postgres = std::fs::read_to_string(dev.join("pg").join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse().ok());
        let marker = dev.join("rabbitmq").display().to_string().into_bytes();
        let rabbit = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                (comm.trim() == "beam.smp" && cmdline.windows(marker.len()).any(|w| w == marker))
                    .then_some(pid)
            });
        Self {
            postgres,
            rabbit,
            me: std::process::id(),
        }
    }
}

impl CpuSample {
    /// Reads `/proc/stat` and every `/proc/<pid>/stat`. Exited processes still count:
    /// PostgreSQL's backends through the postmaster's reaped-children time, pgbench
    /// through ours.
    fn take(roots: &Roots) -> Self {
        let (busy, total) = mkt_devservers::cpu::machine_ticks();
        let all = mkt_devservers::cpu::processes();
        let parents: std::collections::HashMap<u32, u32> =
            all.iter().map(|p| (p.pid, p.ppid)).collect();
        let under = |pid: u32, root: Option<u32>| {
            root.is_some_and(|root| mkt_devservers::cpu::descends_from(&parents, pid, root, 6))
        };
        let mut groups = [0; GROUPS.len()];
        for p in &all {
            if p.pid == roots.me {
                groups[6] += p.own;
                groups[7] += p.reaped;
            } else if under(p.pid, roots.postgres) {
                groups[4] += p.own
                    + if Some(p.pid) == roots.postgres {
                        p.reaped
                    } else {
                        0
                    };
            } else if under(p.pid, roots.rabbit) {
                groups[5] += p.own
                    + if Some(p.pid) == roots.rabbit {
                        p.reaped
                    } else {
                        0
                    };
            } else if let Some(group) = service_group(&p.comm) {
                groups[group] += p.own;
            }
        }
        Self {
            total,
            busy,
            groups,
        }
    }
}

/// CPU used during a cell, in cores (1.0 = one core busy all the time).
#[derive(Clone)]
struct CpuUse {
    busy: f64,
    groups: [f64; GROUPS.len()],
}

impl CpuUse {
    fn between(before: &CpuSample, after: &CpuSample, cpus: f64) -> Self {
        let total = after.total.saturating_sub(before.total).max(1) as f64;
        let cores = |ticks: u64| ticks as f64 / total * cpus;
        let mut groups = [0.0; GROUPS.len()];
        for (i, g) in groups.iter_mut().enumerate() {
            *g = cores(after.groups[i].saturating_sub(before.groups[i]));
        }
        Self {
            busy: cores(after.busy.saturating_sub(before.busy)),
            groups,
        }
    }

    /// Busy time not in any group (the kernel's softirqs, cargo, a compiler...).
    fn other(&self) -> f64 {
        (self.busy - self.groups.iter().sum::<f64>()).max(0.0)
    }
}

// ---------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------

struct Cell {
    section: &'static str,
    concurrency: usize,
    what: String,
    /// Requests or transactions per second.
    per_second: f64,
    unit: &'static str,
    /// Rows per second (batches).
    rows_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: u64,
    error_kinds: String,
    /// How long the relay and the consumer needed after the cell (API cells).
    drained: Option<Duration>,
    /// pgbench's own summary line, as a cross-check.
    note: String,
    cpu: CpuUse,
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

// ---------------------------------------------------------------------------------
// The HTTP load generator
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Payload {
    Single,
    Batch(usize),
}

/// Stable parts of a bench customer; the email makes each one new.
fn customer(run: &str, worker: usize, seq: u64, row: usize, rng: &mut Rng) -> String {
    let n = rng.next_u64() % 10_000;
    format!(
        r#"{{"name":"Bench Customer {n}","first_name":"Bench","last_name":"Customer {n}","email":"b{run}-{worker}-{seq}-{row}@bench.example","phone":"(212) 555-01{:02}","address":{{"street":"{n} Main St","city":"New York","state":"NY","zipCode":"10001","country":"USA"}},"external_id":"bench-{run}-{worker}-{seq}-{row}","loyalty_tier":"bronze","attributes":{{"acquisition_channel":"bench"}},"consent":{{"email":true,"sms":false,"push":true}}}}"#,
        n % 100
    )
}

/// One request or transaction, times in microseconds from a common origin.
#[derive(Debug, Clone, Default)]
struct Sample {
    start: u64,
    end: u64,
    /// Rows it wrote.
    rows: u64,
    /// Completed successfully (2xx; a batch may still have failed items).
    ok: bool,
    /// What went wrong and how many rows or requests it concerns.
    error: Option<(String, u64)>,
}

/// A cell's figures over the measured window.
struct Summary {
    per_second: f64,
    rows_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    count: usize,
    errors: BTreeMap<String, u64>,
}

/// Throughput counts each request by the share of its duration inside the window
/// [`from`, `to`) (a 5-second batch straddling the window edge counts in part, so long
/// requests are neither lost nor double-counted); latencies are those of successful
/// requests that overlap the window.
fn summarize(samples: &[Sample], from: u64, to: u64) -> Summary {
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

struct HttpTarget {
    url: String,
    token: String,
    payload: Payload,
}

#[allow(clippy::too_many_arguments, reason = "one worker's whole context")]
async fn http_worker(
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

// ---------------------------------------------------------------------------------
// The bench
// ---------------------------------------------------------------------------------

struct Bench {
    options: Options,
    runtime: tokio::runtime::Runtime,
    stop: StopFlag,
    cpus: f64,
    run: String,
    gateway: String,
    ingestion: String,
    token: String,
    database_url: String,
    psql: PathBuf,
    pgbench: Option<PathBuf>,
    scratch: PathBuf,
    roots: Roots,
    cells: Vec<Cell>,
}

/// `cargo xtask bench ingestion [...]`
pub fn command(args: &[String]) -> Result<ExitCode> {
    if args.first().is_some_and(|a| a == "segmentation") {
        return crate::bench_segmentation::command(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "analytics") {
        // A bench binary of cdp-analytics (release): its own throwaway Postgres, the
        // service's own processing code, and Python lifetimes side by side.
        let status = crate::cargo()
            .args(["bench", "-p", "cdp-analytics", "--bench", "analytics", "--"])
            .args(&args[1..])
            .current_dir(crate::workspace_root())
            .status()?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if args.first().is_some_and(|a| a == "freshness") {
        // The whole stack in one release process against throwaway servers.
        let mut cargo_args: Vec<String> = ["bench", "-p", "e2e", "--bench", "freshness", "--"]
            .map(String::from)
            .to_vec();
        cargo_args.extend(args[1..].iter().cloned());
        return crate::test::with_servers(&cargo_args);
    }
    let options = Options::parse(args)?;
    let env = StackEnv::load()?;
    // Before any runtime exists: it starts one of its own.
    let stop = StopFlag::install()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = http_client()?;
    let gateway = env.get("GATEWAY_URL")?.trim_end_matches('/').to_owned();
    runtime.block_on(check_gateway(&client, &gateway))?;
    let pgbench = if options.pgbench {
        Some(find_tool("pgbench")?)
    } else {
        None
    };
    let psql = find_tool("psql")?;
    let secret = env.get("JWT_HS256_SECRET")?;
    let token = crate::token::mint(
        secret,
        TENANT,
        &["ingest".to_owned()],
        Duration::from_secs(4 * 3600),
    )?;
    let run = format!(
        "{:x}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs()
    );
    let scratch = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let cpus = std::fs::read_to_string("/proc/stat")?
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count()
        .max(1) as f64;
    let mut bench = Bench {
        options,
        runtime,
        stop,
        cpus,
        run,
        gateway,
        ingestion: env.get("INGESTION_URL")?.trim_end_matches('/').to_owned(),
        token,
        database_url: env.get("DATABASE_URL")?.to_owned(),
        psql,
        pgbench,
        scratch,
        roots: Roots::find(),
        cells: Vec::new(),
    };
    let result = bench.run();
    // Whatever happened: the scratch schema and files go.
    if bench.pgbench.is_some()
        && let Err(e) = bench.sql("DROP SCHEMA IF EXISTS bench CASCADE")
    {
        eprintln!("warning: could not drop the scratch schema `bench`: {e:#}");
    }
    let _ = std::fs::remove_dir_all(&bench.scratch);
    result?;
    bench.print();
    Ok(ExitCode::SUCCESS)
}

/// The load generator's client: keep-alive, no Nagle delay, a 60 s ceiling per request.
fn http_client() -> Result<reqwest::Client> {
    Ok(mkt_http_client::builder()
        .timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .pool_max_idle_per_host(512)
        .build()?)
}

/// `name` from PostgreSQL 15's directory, the newest other version's, or `PATH`.
fn find_tool(name: &str) -> Result<PathBuf> {
    let preferred = Path::new(PGBIN).join(name);
    if preferred.exists() {
        return Ok(preferred);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .map(|d| d.path().join("bin").join(name))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    if let Some(path) = found.pop() {
        return Ok(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| {
            anyhow!(
                "{name} not found in {PGBIN} or PATH (Debian: apt-get install postgresql-15){}",
                if name == "pgbench" {
                    "; or run with --no-pgbench"
                } else {
                    ""
                }
            )
        })
}

impl Bench {
    fn run(&mut self) -> Result<()> {
        self.print_setup()?;
        if self.pgbench.is_some() {
            self.create_scratch()?;
        }
        self.measure_idle()?;
        let o = &self.options;
        let (single, batch, direct, pgbench) = (
            o.concurrency.clone(),
            o.batch_concurrency.clone(),
            o.direct,
            o.pgbench,
        );
        let (batch_size, pg_rows) = (o.batch_size, o.pg_batch_rows);
        let (seconds, batch_seconds) = (o.seconds, o.batch_seconds);
        for c in single {
            let via_gateway = format!("{}/api/v2/cdp/customers", self.gateway);
            self.http_cell(
                "single",
                c,
                "API POST /customers via gateway",
                &via_gateway,
                Payload::Single,
                seconds,
            )?;
            if direct {
                let direct = format!("{}/api/v2/cdp/customers", self.ingestion);
                self.http_cell(
                    "single",
                    c,
                    "API POST /customers, no gateway",
                    &direct,
                    Payload::Single,
                    seconds,
                )?;
            }
            if pgbench {
                self.pgbench_cell(
                    "single",
                    c,
                    "pgbench 1-row upsert",
                    "upsert.sql",
                    1,
                    seconds,
                )?;
                self.pgbench_cell(
                    "single",
                    c,
                    "pgbench 1-row upsert + outbox row",
                    "upsert_outbox.sql",
                    1,
                    seconds,
                )?;
            }
        }
        for c in batch {
            let url = format!("{}/api/v2/cdp/customers/batch", self.gateway);
            let what = format!("API POST /customers/batch ({batch_size} rows) via gateway");
            self.http_cell(
                "batch",
                c,
                &what,
                &url,
                Payload::Batch(batch_size),
                batch_seconds,
            )?;
            if pgbench {
                let what = format!("pgbench {pg_rows}-row upsert");
                self.pgbench_cell("batch", c, &what, "batch.sql", pg_rows, batch_seconds)?;
                let what = format!("pgbench {pg_rows}-row upsert + outbox rows");
                self.pgbench_cell(
                    "batch",
                    c,
                    &what,
                    "batch_outbox.sql",
                    pg_rows,
                    batch_seconds,
                )?;
            }
        }
        Ok(())
    }

    /// psql as the superuser on `marketing`; returns unaligned, tuples-only output.
    fn sql(&self, sql: &str) -> Result<String> {
        let output = Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.database_url,
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.psql.display()))?;
        if !output.status.success() {
            bail!(
                "psql failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn print_setup(&self) -> Result<()> {
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").map(|m| m.trim().to_owned()))
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        eprintln!(
            "machine: {} CPUs ({model}), {memory} RAM, Linux {}",
            self.cpus,
            kernel.trim()
        );
        eprintln!("services: {}", binaries());
        eprintln!(
            "stack processes: postgres postmaster {}, rabbitmq beam {}; load average before the run: {}",
            self.roots
                .postgres
                .map_or_else(|| "not found".to_owned(), |p| p.to_string()),
            self.roots
                .rabbit
                .map_or_else(|| "not found".to_owned(), |p| p.to_string()),
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
        );
        if self.pgbench.is_some() {
            let settings = self.sql(
                "SELECT current_setting('server_version') || ', fsync=' || current_setting('fsync') \
                 || ', synchronous_commit=' || current_setting('synchronous_commit') \
                 || ', wal_sync_method=' || current_setting('wal_sync_method') \
                 || ', shared_buffers=' || current_setting('shared_buffers')",
            )?;
            eprintln!("postgres: {settings}");
        }
        let o = &self.options;
        eprintln!(
            "cells: {} s measured after {} s warm-up; tenant `{TENANT}`; run id {}",
            o.seconds, o.warmup, self.run
        );
        Ok(())
    }

    /// The scratch schema: the customers table's shape and the outbox's, without the
    /// services' roles; dropped at the end.
    fn create_scratch(&self) -> Result<()> {
        self.sql(
            "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
             CREATE TABLE bench.bench_customers (
                 tenant_id text NOT NULL, id uuid NOT NULL, external_id text, email text NOT NULL,
                 name text NOT NULL, first_name text, last_name text, phone text, street text,
                 city text, state text, zip_code text, country text, loyalty_tier text,
                 attributes jsonb NOT NULL DEFAULT '{}', consent_email boolean NOT NULL DEFAULT false,
                 consent_sms boolean NOT NULL DEFAULT false, consent_push boolean NOT NULL DEFAULT false,
                 created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
                 version bigint NOT NULL DEFAULT 1, erased_at timestamptz,
                 PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, email));
             CREATE UNIQUE INDEX ON bench.bench_customers (tenant_id, external_id) WHERE external_id IS NOT NULL;
             CREATE TABLE bench.bench_outbox (
                 id bigserial PRIMARY KEY, message_id uuid NOT NULL UNIQUE, tenant_id text NOT NULL,
                 aggregate_id text NOT NULL, routing_key text NOT NULL, payload bytea NOT NULL,
                 headers jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(),
                 published_at timestamptz, attempts integer NOT NULL DEFAULT 0, last_error text,
                 next_attempt_at timestamptz);
             CREATE INDEX ON bench.bench_outbox (aggregate_id, routing_key, id) WHERE published_at IS NULL;
             CREATE INDEX ON bench.bench_outbox (id) WHERE published_at IS NULL;
             CREATE INDEX ON bench.bench_outbox (published_at) WHERE published_at IS NOT NULL;",
        )?;
        let columns = "tenant_id, id, external_id, email, name, first_name, last_name, phone, street, city, \
                       state, zip_code, country, loyalty_tier, attributes, consent_email, consent_sms, consent_push, \
                       created_at, updated_at, version";
        // The service's ON CONFLICT clause, column for column.
        let update = "ON CONFLICT (tenant_id, email) DO UPDATE SET \
                      external_id = COALESCE(EXCLUDED.external_id, c.external_id), name = EXCLUDED.name, \
                      first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, phone = EXCLUDED.phone, \
                      street = EXCLUDED.street, city = EXCLUDED.city, state = EXCLUDED.state, \
                      zip_code = EXCLUDED.zip_code, country = EXCLUDED.country, loyalty_tier = EXCLUDED.loyalty_tier, \
                      attributes = EXCLUDED.attributes, consent_email = EXCLUDED.consent_email, \
                      consent_sms = EXCLUDED.consent_sms, consent_push = EXCLUDED.consent_push, \
                      updated_at = EXCLUDED.updated_at, version = c.version + 1";
        // A protobuf customer.upserted.v1 is about 300 bytes.
        let outbox = "INSERT INTO bench.bench_outbox (message_id, tenant_id, aggregate_id, routing_key, payload, headers)";
        let payload = "decode(repeat('ab', 300), 'hex'), '{\"traceparent\": \"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}'";
        let row = |email: &str| {
            format!(
                "('{TENANT}', gen_random_uuid(), 'pg-' || {email}, {email}, 'Bench Customer', 'Bench', 'Customer', \
                 '(212) 555-0100', '1 Main St', 'New York', 'NY', '10001', 'USA', 'bronze', \
                 '{{\"acquisition_channel\": \"bench\"}}', true, false, true, now(), now(), 1)"
            )
        };
        let single_row = row("(:n::text || '@pg.example')");
        let upsert = format!(
            "INSERT INTO bench.bench_customers AS c ({columns})\nVALUES {single_row}\n{update}"
        );
        self.script(
            "upsert.sql",
            &format!("\\set n random(1, 2000000000)\n{upsert}\nRETURNING id;\n"),
        )?;
        self.script(
            "upsert_outbox.sql",
            &format!(
                "\\set n random(1, 2000000000)\nBEGIN;\n{upsert}\nRETURNING id \\gset\n\
                 {outbox} VALUES (gen_random_uuid(), '{TENANT}', :id, 'customer.upserted.v1', {payload});\nCOMMIT;\n"
            ),
        )?;
        // pgbench allows 255 parameters per prepared statement, so the 500 rows are
        // literal VALUES joined with the one random number.
        let values: Vec<String> = (1..=self.options.pg_batch_rows)
            .map(|k| {
                format!(
                    "({k}, 'Bench Customer {k}', 'Customer {k}', '{} Main St')",
                    k * 7 % 9999
                )
            })
            .collect();
        let select = format!(
            "INSERT INTO bench.bench_customers AS c ({columns})\n\
             SELECT '{TENANT}', gen_random_uuid(), 'pgx-' || :n::text || '-' || r.k, \
             :n::text || '-' || r.k || '@pg.example', r.name, 'Bench', r.last_name, '(212) 555-0100', r.street, \
             'New York', 'NY', '10001', 'USA', 'bronze', '{{\"acquisition_channel\": \"bench\"}}', true, false, true, \
             now(), now(), 1\nFROM (VALUES\n{}\n) AS r(k, name, last_name, street)\n{update}",
            values.join(",\n")
        );
        self.script(
            "batch.sql",
            &format!("\\set n random(1, 2000000000)\n{select};\n"),
        )?;
        self.script(
            "batch_outbox.sql",
            &format!(
                "\\set n random(1, 2000000000)\nWITH ins AS (\n{select}\nRETURNING id)\n\
                 {outbox} SELECT gen_random_uuid(), '{TENANT}', ins.id::text, 'customer.upserted.v1', {payload} FROM ins;\n"
            ),
        )?;
        Ok(())
    }

    fn script(&self, name: &str, text: &str) -> Result<()> {
        std::fs::write(self.scratch.join(name), text).with_context(|| format!("writing {name}"))
    }

    /// A few seconds of the machine at rest, the baseline of the CPU table.
    fn measure_idle(&mut self) -> Result<()> {
        eprintln!("measuring the idle stack for {} s...", IDLE.as_secs());
        let before = CpuSample::take(&self.roots);
        std::thread::sleep(IDLE);
        let cpu = CpuUse::between(&before, &CpuSample::take(&self.roots), self.cpus);
        if cpu.other() > BUSY_ELSEWHERE {
            eprintln!("{}", busy_warning(cpu.other(), self.cpus));
        }
        self.cells.push(Cell {
            section: "idle",
            concurrency: 0,
            what: "idle stack (no load)".to_owned(),
            per_second: 0.0,
            unit: "",
            rows_per_second: 0.0,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
            max_ms: f64::NAN,
            errors: 0,
            error_kinds: String::new(),
            drained: None,
            note: String::new(),
            cpu,
        });
        Ok(())
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "a cell is its section, load, target and duration"
    )]
    fn http_cell(
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

    fn push(&mut self, cell: Cell) {
        eprintln!("{}", cell.brief());
        self.cells.push(cell);
    }

    /// Waits until the cell's work is done downstream too: every outbox row of the bench
    /// tenant published, and every bench customer in segmentation's read model.
    fn drain(&self) -> Result<Duration> {
        let started = Instant::now();
        loop {
            self.stop.check()?;
            let state = self.sql(&format!(
                "SELECT (SELECT count(*) FROM ingestion.outbox_messages WHERE tenant_id = '{TENANT}' AND published_at IS NULL) \
                 || ' ' || ((SELECT count(*) FROM ingestion.customers WHERE tenant_id = '{TENANT}') \
                 - (SELECT count(*) FROM segmentation.customer_profiles WHERE tenant_id = '{TENANT}'))"
            ))?;
            let (unpublished, unconsumed) = state.split_once(' ').unwrap_or(("?", "?"));
            if unpublished == "0" && unconsumed == "0" {
                return Ok(started.elapsed());
            }
            if started.elapsed() > DRAIN_TIMEOUT {
                bail!(
                    "after {} s, {unpublished} outbox rows are still unpublished and {unconsumed} customers \
                     missing from segmentation's read model",
                    DRAIN_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "a cell is its section, load, script and duration"
    )]
    fn pgbench_cell(
        &mut self,
        section: &'static str,
        c: usize,
        what: &str,
        script: &str,
        rows: usize,
        seconds: u64,
    ) -> Result<()> {
        self.stop.check()?;
        let Some(pgbench) = self.pgbench.clone() else {
            return Ok(());
        };
        eprint!("c={c:<3} {what}: ");
        let prefix = format!("cell{}", self.cells.len());
        let threads = c.min(self.cpus as usize).max(1);
        let total = self.options.warmup + seconds;
        let origin = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as u64;
        let before = CpuSample::take(&self.roots);
        let output = Command::new(&pgbench)
            .current_dir(&self.scratch)
            .args(["-n", "-M", "prepared", "--log", "--log-prefix", &prefix])
            .args([
                "-c",
                &c.to_string(),
                "-j",
                &threads.to_string(),
                "-T",
                &total.to_string(),
            ])
            .arg("-f")
            .arg(self.scratch.join(script))
            .arg(&self.database_url)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", pgbench.display()))?;
        // pgbench's backends exit as it does. Sampled while the postmaster reaps them,
        // a backend can be read neither alive nor in the postmaster's reaped-children
        // time, and its CPU lands in `other`: give them a moment.
        std::thread::sleep(Duration::from_millis(300));
        let cpu = CpuUse::between(&before, &CpuSample::take(&self.roots), self.cpus);
        self.stop.check()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("pgbench failed ({}):\n{stderr}\n{stdout}", output.status);
        }
        // Per-transaction log lines: client, transaction, latency µs, script, then the
        // completion time as epoch seconds and microseconds.
        let mut samples = Vec::new();
        for entry in std::fs::read_dir(&self.scratch)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&format!("{prefix}.")) {
                continue;
            }
            for line in std::fs::read_to_string(entry.path())?.lines() {
                let f: Vec<u64> = line
                    .split_whitespace()
                    .take(6)
                    .map(|n| n.parse().unwrap_or(0))
                    .collect();
                let [_, _, latency, _, epoch, micros] = f[..] else {
                    continue;
                };
                let end = (epoch * 1_000_000 + micros).saturating_sub(origin);
                samples.push(Sample {
                    start: end.saturating_sub(latency),
                    end,
                    rows: rows as u64,
                    ok: true,
                    error: None,
                });
            }
            std::fs::remove_file(entry.path())?;
        }
        // pgbench's clock starts after its connections: the window ends with its last
        // transaction rather than at origin + total.
        let from = self.options.warmup * 1_000_000;
        let to = samples
            .iter()
            .map(|s| s.end)
            .max()
            .unwrap_or(from)
            .min(total * 1_000_000)
            .max(from + 1);
        let mut summary = summarize(&samples, from, to);
        let failed: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if failed > 0 {
            summary
                .errors
                .insert("failed transactions".to_owned(), failed);
        }
        let aborted = stderr.matches("aborted").count() as u64;
        if aborted > 0 {
            summary.errors.insert("clients aborted".to_owned(), aborted);
        }
        let reported_tps = stdout
            .lines()
            .find(|l| l.starts_with("tps = "))
            .unwrap_or("tps = ?")
            .trim();
        let reported_latency = stdout
            .lines()
            .find(|l| l.starts_with("latency average"))
            .unwrap_or("")
            .trim();
        let note = format!(
            "{} transactions in the window; pgbench's own summary (-j {threads}, {total} s incl. warm-up): \
             {reported_tps}; {reported_latency}",
            summary.count
        );
        self.push(Cell::new(
            section, c, what, "tx/s", summary, None, note, cpu,
        ));
        Ok(())
    }

    fn print(&self) {
        let o = &self.options;
        println!("## Ingestion benchmark\n");
        println!(
            "Targets (issue): single POST >= {} req/s durable with p99 < {} ms; batch >= {} rows/s.",
            thousands(TARGET_SINGLE_RPS),
            TARGET_SINGLE_P99_MS,
            thousands(TARGET_BATCH_ROWS)
        );
        println!(
            "Each cell: {} s measured ({} s for batches) after {} s warm-up. Throughput counts each request by \
             the share of its duration inside the window. Latency = whole request (HTTP: sending the body to \
             reading the whole response) or transaction (pgbench), successful ones only; errors counted apart.\n",
            o.seconds, o.batch_seconds, o.warmup
        );
        for (section, title) in [
            (
                "single",
                "Single-row upserts: one request / one transaction per customer",
            ),
            ("batch", "Batches"),
        ] {
            let cells: Vec<&Cell> = self.cells.iter().filter(|c| c.section == section).collect();
            if cells.is_empty() {
                continue;
            }
            println!("### {title}\n");
            println!(
                "| c | what | throughput | rows/s | p50 ms | p99 ms | max ms | errors | backlog drained in |"
            );
            println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
            for cell in &cells {
                println!(
                    "| {} | {} | {} {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
                    cell.concurrency,
                    cell.what,
                    rate(cell.per_second),
                    cell.unit,
                    thousands(cell.rows_per_second),
                    cell.p50_ms,
                    cell.p99_ms,
                    cell.max_ms,
                    if cell.error_kinds.is_empty() {
                        cell.errors.to_string()
                    } else {
                        format!("{} ({})", cell.errors, cell.error_kinds)
                    },
                    cell.drained
                        .map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
                );
            }
            let api = cells
                .iter()
                .filter(|c| c.what.starts_with("API") && c.what.contains("via gateway"));
            if section == "single" {
                if let Some(best) = api.max_by(|a, b| a.per_second.total_cmp(&b.per_second)) {
                    println!(
                        "\nBest API single POST via gateway: {} req/s at c={} (p99 {:.1} ms) = {:.1}% of the {} req/s target{}.",
                        thousands(best.per_second),
                        best.concurrency,
                        best.p99_ms,
                        100.0 * best.per_second / TARGET_SINGLE_RPS,
                        thousands(TARGET_SINGLE_RPS),
                        if best.p99_ms < TARGET_SINGLE_P99_MS {
                            ", p99 within 20 ms"
                        } else {
                            ", p99 over 20 ms"
                        }
                    );
                }
            } else if let Some(best) =
                api.max_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second))
            {
                println!(
                    "\nBest API batch via gateway: {} rows/s at c={} = {:.1}% of the {} rows/s target.",
                    thousands(best.rows_per_second),
                    best.concurrency,
                    100.0 * best.rows_per_second / TARGET_BATCH_ROWS,
                    thousands(TARGET_BATCH_ROWS)
                );
            }
            println!();
        }
        if let Some(idle) = self.cells.iter().find(|c| c.section == "idle")
            && idle.cpu.other() > BUSY_ELSEWHERE
        {
            println!("**{}**\n", busy_warning(idle.cpu.other(), self.cpus));
        }
        println!(
            "### CPU during each cell (cores busy, of {} cores; from /proc)\n",
            self.cpus
        );
        println!(
            "| c | what | busy | {} | other | CPU ms per row |",
            GROUPS.join(" | ")
        );
        println!("|---:|---|---:|{}---:|---:|", "---:|".repeat(GROUPS.len()));
        for cell in &self.cells {
            let groups: Vec<String> = cell.cpu.groups.iter().map(|g| format!("{g:.2}")).collect();
            // CPU time of everything measured (all but `other`) per row written.
            let per_row = if cell.rows_per_second > 0.0 {
                format!(
                    "{:.2}",
                    (cell.cpu.busy - cell.cpu.other()) * 1000.0 / cell.rows_per_second
                )
            } else {
                "-".to_owned()
            };
            println!(
                "| {} | {} | {:.2} | {} | {:.2} | {per_row} |",
                if cell.concurrency == 0 {
                    "-".to_owned()
                } else {
                    cell.concurrency.to_string()
                },
                cell.what,
                cell.cpu.busy,
                groups.join(" | "),
                cell.cpu.other()
            );
        }
        println!(
            "\nAPI cells: measured window only. pgbench cells: the whole pgbench run including warm-up \
             and connection set-up (its CPU is only known once it exits). `other` = busy minus the groups. \
             CPU ms per row = (busy - other) x 1000 / rows per second."
        );
        let notes: Vec<&Cell> = self.cells.iter().filter(|c| !c.note.is_empty()).collect();
        if !notes.is_empty() {
            println!("\n### Raw\n");
            for cell in notes {
                println!("- c={} {}: {}", cell.concurrency, cell.what, cell.note);
            }
        }
    }
}

impl Cell {
    #[allow(clippy::too_many_arguments, reason = "a plain constructor")]
    fn new(
        section: &'static str,
        concurrency: usize,
        what: &str,
        unit: &'static str,
        summary: Summary,
        drained: Option<Duration>,
        note: String,
        cpu: CpuUse,
    ) -> Self {
        Cell {
            section,
            concurrency,
            what: what.to_owned(),
            per_second: summary.per_second,
            unit,
            rows_per_second: summary.rows_per_second,
            p50_ms: summary.p50_ms,
            p99_ms: summary.p99_ms,
            max_ms: summary.max_ms,
            errors: summary.errors.values().sum(),
            error_kinds: summary
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            drained,
            note,
            cpu,
        }
    }

    fn brief(&self) -> String {
        let mut text = format!(
            "{} {}, p50 {:.1} ms, p99 {:.1} ms, {} errors",
            rate(self.per_second),
            self.unit,
            self.p50_ms,
            self.p99_ms,
            self.errors
        );
        if self.section == "batch" {
            text.push_str(&format!(", {} rows/s", thousands(self.rows_per_second)));
        }
        if let Some(drained) = self.drained {
            text.push_str(&format!(
                ", backlog drained in {:.1} s",
                drained.as_secs_f64()
            ));
        }
        text
    }
}

fn busy_warning(other: f64, cpus: f64) -> String {
    format!(
        "WARNING: with the stack idle, {other:.2} of {cpus} cores were busy outside it (builds, tests...): \
         every figure below is depressed by that"
    )
}

/// A rate: decimals while it is small (a batch cell may do 0.4 req/s).
fn rate(value: f64) -> String {
    if value.is_finite() && value.abs() < 10.0 {
        format!("{value:.2}")
    } else {
        thousands(value)
    }
}

/// 12345.6 -> "12,346".
fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

/// Which build of the services is running (a debug build is several times slower).
fn binaries() -> String {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim().to_owned();
        if matches!(comm.as_str(), "gateway" | "ingestion" | "segmentation")
            && let Ok(exe) = std::fs::read_link(entry.path().join("exe"))
        {
            found.insert(comm, exe.display().to_string());
        }
    }
    if found.is_empty() {
        return "not found in /proc".to_owned();
    }
    let debug = found.values().any(|p| p.contains("/debug/"));
    format!(
        "{}{}",
        found
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
        if debug {
            " (DEBUG builds: unoptimised, see docs/benchmarks.md)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|n| n * 1000).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&[7000], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

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

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(f64::NAN), "-");
    }

    #[test]
    fn options_parse() -> Result<()> {
        let args: Vec<String> = [
            "ingestion",
            "--seconds",
            "3",
            "--concurrency=1,2",
            "--no-direct",
        ]
        .map(String::from)
        .to_vec();
        let options = Options::parse(&args)?;
        assert_eq!(
            (options.seconds, options.concurrency, options.direct),
            (3, vec![1, 2], false)
        );
        assert!(Options::parse(&["egress".to_owned()]).is_err());
        Ok(())
    }
}
