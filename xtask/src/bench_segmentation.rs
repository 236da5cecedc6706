//! `cargo xtask bench segmentation`: runs the segmentation crate's engine benchmark
//! (`services/segmentation/benches/engine.rs`) in release. The benchmark itself starts
//! its own throwaway PostgreSQL, generates the tenant, and prints a Markdown report;
//! this command only builds and runs it, passing the options through.

use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask bench segmentation [--customers N] [--also-10m] [--reps R] \
[--sql-reps R] [--events-per-customer E] [--changes N] [--explain] [--only NAME] [--engine-only]";

/// `cargo xtask bench segmentation [options]`
pub fn command(args: &[String]) -> Result<ExitCode> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        bail!("{USAGE}");
    }
    let status = crate::cargo()
        .args(["bench", "-p", "segmentation", "--bench", "engine", "--"])
        .args(args)
        .current_dir(crate::workspace_root())
        .status()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
