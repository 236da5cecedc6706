//! `cargo xtask demo`: a realistic synthetic store, loaded through the public API.
//!
//! Customers (names, emails on reserved `.example` domains, addresses in seven
//! countries, sign-ups spread over three years, consent, loyalty tiers), their order
//! histories (heavy-tailed order counts, Black Friday / holiday / weekend seasonality, a
//! 52-product catalogue in minor units, promo codes, cancellations and refunds) and
//! behaviour events (the shopping session behind every order, browsing and abandoned
//! carts, newsletter opens and clicks, campaign conversions).
//!
//! Everything is a pure function of `--seed`, `--as-of` and the customer's index, so a
//! run is reproducible, and each 1,000-row batch carries an `Idempotency-Key` derived
//! from the seed, the kind, the batch index and the body: re-running after a crash
//! replays what was stored instead of writing it twice. Orders also carry `externalId`s,
//! so an order re-sent under another key comes back 409 `duplicate_order`, which counts
//! as already present.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};

mod batches;
mod calendar;
mod catalogue;
mod client;
mod customers;
mod events;
mod people;
mod rng;
mod summary;

use batches::{Batcher, Kind};
use calendar::midnight;
use client::{Client, Progress, Totals, send};
pub(crate) use rng::Rng;
use summary::print_summary;

const USAGE: &str = "usage: cargo xtask demo [--customers N] [--seed S] [--concurrency C] [--as-of YYYY-MM-DD] [--tenant T] [--dry-run]";
const DEFAULT_CUSTOMERS: usize = 2_000;
const DEFAULT_SEED: u64 = 42;
const DEFAULT_CONCURRENCY: usize = 4;
/// Rows per batch request: the API's maximum.
const BATCH: usize = 1_000;
/// How far back sign-ups (and so order histories) go.
const HISTORY_DAYS: u64 = 3 * 365;
/// Attempts per batch on transport errors, 5xx, 429 and `idempotency_in_progress`.
const ATTEMPTS: u32 = 6;

// ---------------------------------------------------------------------------------
// The running stack
// ---------------------------------------------------------------------------------

/// The settings `cargo xtask up` writes to `.dev/stack.env` (`KEY='value'` lines).
pub(crate) struct StackEnv {
    path: PathBuf,
    vars: BTreeMap<String, String>,
}

impl StackEnv {
    /// Reads `.dev/stack.env`; a missing file means the stack is not up.
    pub(crate) fn load() -> Result<Self> {
        let path = crate::workspace_root().join(".dev").join("stack.env");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "the stack is not up: {} does not exist. Start it with `cargo xtask up` \
                 (in another shell, or `cargo xtask up > /tmp/up.log 2>&1 &`) and wait for \"Stack is up\"",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let vars = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| {
                let value = value
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .map_or_else(|| value.to_owned(), |v| v.replace(r"'\''", "'"));
                (key.trim().to_owned(), value)
            })
            .collect();
        Ok(Self { path, vars })
    }

    /// One setting, or an error naming the file.
    pub(crate) fn get(&self, key: &str) -> Result<&str> {
        self.vars.get(key).map(String::as_str).with_context(|| {
            format!(
                "{key} is missing from {}; restart the stack",
                self.path.display()
            )
        })
    }
}

/// Fails with a clear message when the gateway does not answer its `/healthz`.
pub(crate) async fn check_gateway(client: &reqwest::Client, gateway: &str) -> Result<()> {
    let url = format!("{gateway}/healthz");
    match client
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => bail!(
            "the gateway answered {} on {url}; is the stack healthy? (see .dev/logs/gateway.log)",
            response.status()
        ),
        Err(e) => bail!(
            "the gateway does not answer on {url} ({e}): .dev/stack.env exists but the stack \
             looks down; start it with `cargo xtask up`"
        ),
    }
}

// ---------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------

struct Options {
    customers: usize,
    seed: u64,
    concurrency: usize,
    as_of: DateTime<Utc>,
    /// `demo` uses the stack's DEV_TOKEN; any other tenant gets a token minted here.
    tenant: String,
    dry_run: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options {
            customers: DEFAULT_CUSTOMERS,
            seed: DEFAULT_SEED,
            concurrency: DEFAULT_CONCURRENCY,
            as_of: midnight(Utc::now()),
            tenant: "demo".to_owned(),
            dry_run: false,
        };
        let mut args = args.iter();
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
            let number = |text: String| -> Result<u64> {
                text.replace('_', "")
                    .parse()
                    .map_err(|_| anyhow!("{flag} takes a whole number, got {text:?}"))
            };
            match flag {
                "--customers" => options.customers = number(value()?)? as usize,
                "--seed" => options.seed = number(value()?)?,
                "--concurrency" => options.concurrency = (number(value()?)? as usize).clamp(1, 64),
                "--as-of" => {
                    let text = value()?;
                    let date = NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
                        anyhow!("--as-of takes a date like 2025-01-31, got {text:?}")
                    })?;
                    options.as_of = date.and_time(chrono::NaiveTime::MIN).and_utc();
                    if options.as_of > Utc::now() {
                        bail!("--as-of {text} is in the future; the API refuses future dates");
                    }
                }
                "--tenant" => options.tenant = value()?,
                "--dry-run" if inline.is_none() => options.dry_run = true,
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        if options.customers == 0 {
            bail!("--customers must be at least 1");
        }
        Ok(options)
    }
}

/// `cargo xtask demo [--customers N] [--seed S] [--concurrency C] [--as-of YYYY-MM-DD] [--dry-run]`
pub fn command(args: &[String]) -> Result<ExitCode> {
    let options = Options::parse(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> Result<ExitCode> {
    let client = if options.dry_run {
        None
    } else {
        let env = StackEnv::load()?;
        let http = mkt_http_client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(options.concurrency)
            .build()?;
        let gateway = env.get("GATEWAY_URL")?.trim_end_matches('/').to_owned();
        check_gateway(&http, &gateway).await?;
        let token = if options.tenant == "demo" {
            env.get("DEV_TOKEN")?.to_owned()
        } else {
            let ttl = Duration::from_secs(12 * 3600);
            crate::token::mint(
                env.get("JWT_HS256_SECRET")?,
                &options.tenant,
                &["ingest".to_owned()],
                ttl,
            )?
        };
        Some(Arc::new(Client {
            http,
            gateway,
            token,
        }))
    };
    eprintln!(
        "{} a store of {} customers (seed {}, as of {}) {}",
        if options.dry_run {
            "generating"
        } else {
            "loading"
        },
        options.customers,
        options.seed,
        options.as_of.date_naive(),
        client.as_ref().map_or_else(
            || "without sending anything (--dry-run)".to_owned(),
            |c| format!(
                "through {} as tenant {}, {} requests at a time",
                c.gateway, options.tenant, options.concurrency
            )
        ),
    );
    let started = Instant::now();
    let totals = Arc::new(Mutex::new(Totals::default()));
    let mut profile = None;
    for kind in [Kind::Customers, Kind::Orders, Kind::Events] {
        let batcher = Arc::new(Mutex::new(Batcher::new(kind, &options)));
        let progress = Arc::new(Progress {
            label: kind.name(),
            customers: options.customers,
            through: AtomicUsize::new(0),
            rows: AtomicU64::new(0),
            done: AtomicBool::new(false),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        });
        let drawing = tokio::spawn(progress.clone().draw());
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..options.concurrency {
            let (batcher, progress, totals, client) = (
                batcher.clone(),
                progress.clone(),
                totals.clone(),
                client.clone(),
            );
            workers.spawn(async move {
                loop {
                    let batch = batcher
                        .lock()
                        .map_err(|_| anyhow!("batcher lock poisoned"))?
                        .next_batch()?;
                    let Some(batch) = batch else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    match &client {
                        Some(client) => send(client, &batch, &totals).await?,
                        None => {
                            let mut totals =
                                totals.lock().map_err(|_| anyhow!("tally lock poisoned"))?;
                            let tally = totals.per_kind.entry(kind.name()).or_default();
                            tally.batches += 1;
                            tally.rows += batch.rows.len() as u64;
                        }
                    }
                    progress
                        .rows
                        .fetch_add(batch.rows.len() as u64, Ordering::Relaxed);
                    progress
                        .through
                        .fetch_max(batch.customers_through, Ordering::Relaxed);
                }
            });
        }
        let mut outcome = Ok(());
        while let Some(joined) = workers.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result
                && outcome.is_ok()
            {
                outcome = Err(e);
                workers.abort_all();
            }
        }
        progress.finish();
        drawing.abort();
        outcome?;
        if kind == Kind::Orders {
            profile = batcher
                .lock()
                .map_err(|_| anyhow!("batcher lock poisoned"))?
                .profile
                .take();
        }
    }
    let elapsed = started.elapsed();
    let totals = std::mem::take(&mut *totals.lock().map_err(|_| anyhow!("tally lock poisoned"))?);
    print_summary(&options, client.as_deref(), &totals, elapsed);
    if let Some(profile) = profile {
        profile.print(options.customers);
    }
    if totals.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}
