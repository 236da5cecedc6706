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

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

use crate::demo::{StackEnv, check_gateway};
use crate::signals::StopFlag;

mod cpu;
mod http;
mod pgbench;
mod report;

use cpu::{CpuSample, CpuUse, Roots};
use http::Payload;
use report::{Cell, binaries, busy_warning};

const USAGE: &str = "usage: cargo xtask bench ingestion [--seconds S] [--batch-seconds S] [--warmup S] \
[--concurrency 1,8,32,64] [--batch-concurrency 1,4,8] [--batch-size 1000] [--pg-batch-rows 500] [--no-direct] [--no-pgbench]";

/// The targets, printed next to the figures.
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
