//! `cargo xtask <command>`: the developer's entry point to a local stack.
//!
//! This crate owns the dev workflow around the services: building them,
//! running PostgreSQL and RabbitMQ (through `mkt-devservers`), provisioning
//! the `marketing` database, starting every service with its dev settings,
//! minting dev tokens, running the test suite against throwaway servers, and,
//! against a running stack, loading a demo store and benchmarking ingestion.
//! Everything it creates lives under `.dev/` or a temporary directory.
//!
//! It must never hold business logic, be needed in production, or reach
//! anything but 127.0.0.1. Commands and ports are described in `xtask/README.md`.

#![allow(
    clippy::print_stdout,
    reason = "a CLI: stdout carries its results (URLs, tokens); progress goes to stderr"
)]

mod bench;
mod bench_segmentation;
mod demo;
mod signals;
mod stack;
mod test;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  up                       build, start Postgres + RabbitMQ + every service; stay in the foreground
  down                     stop a running `up` (or whatever it left behind)
  token --tenant T --roles r1,r2 [--ttl 1h]
                           print a dev JWT signed with the secret in .dev/secret (ttl: 30s, 15m, 1h, 30d)
  test [-- <nextest args>] run the workspace tests against throwaway Postgres and RabbitMQ
  demo [--customers N] [--seed S] [--concurrency C] [--as-of YYYY-MM-DD] [--tenant T] [--dry-run]
                           load a synthetic store (customers, orders, events) through the gateway
  bench ingestion [--seconds S] [--concurrency 1,8,32,64] [--batch-concurrency 1,4,8] ...
                           load-test ingestion through the gateway, side by side with pgbench
  bench segmentation [--customers 1000000] [--also-10m] [--reps R] [--sql-reps R]
                           the in-memory segment engine against SQL on a generated tenant (release build,
                           its own throwaway PostgreSQL)
  bench analytics [--customers 1000000] [--orders-per-customer 5] [--skip-peer]
                           RFM + CLV + churn over 1M customers, and the BG/NBD fit next to Python lifetimes
  bench freshness [--orders 200] [--customers 1000]
                           order in -> customer visible in previews, members and membership events (p50..p99)
  help                     this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        "up" => no_args(command, rest).and_then(|()| stack::up()),
        "down" => no_args(command, rest).and_then(|()| stack::down()),
        "token" => token::command(rest),
        "test" => test::command(rest),
        "demo" => demo::command(rest),
        "bench" => bench::command(rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprintln!("unknown command {other:?}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

fn no_args(command: &str, rest: &[String]) -> Result<()> {
    if !rest.is_empty() {
        bail!("`{command}` takes no arguments, got {rest:?}");
    }
    Ok(())
}

/// The workspace root, where `.dev/` and `target/` live.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo that runs us (`cargo xtask` sets `CARGO`), so toolchain overrides hold.
fn cargo() -> std::process::Command {
    std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Starts both servers, PostgreSQL first. If RabbitMQ fails, PostgreSQL is stopped
/// again (dropped).
fn start_servers(
    pg_dir: &Path,
    pg_port: u16,
    rabbit_dir: &Path,
    amqp_port: u16,
    mgmt_port: u16,
) -> Result<(mkt_devservers::PostgresServer, mkt_devservers::RabbitServer)> {
    // One after the other: each picks free ports and binds them later, so started at
    // once they could pick the same one (PostgreSQL, quick to bind, would win it and
    // RabbitMQ's listener would fail). PostgreSQL is up in a second or two.
    let pg = mkt_devservers::PostgresServer::start(pg_dir, pg_port)?;
    let rabbit = mkt_devservers::RabbitServer::start(rabbit_dir, amqp_port, mgmt_port)?;
    Ok((pg, rabbit))
}
