//! `cargo xtask test`: the workspace tests against throwaway servers.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};

use anyhow::Result;
use mkt_devservers::ensure_installed;

use crate::signals::StopFlag;

/// `cargo xtask test [-- <nextest args>]`
pub fn command(args: &[String]) -> Result<ExitCode> {
    // `cargo xtask test -- -p x` reaches us as `test -- -p x`.
    let extra = args.strip_prefix(&["--".to_owned()]).unwrap_or(args);
    let nextest = crate::cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut cargo_args: Vec<String> = Vec::new();
    if nextest {
        cargo_args.extend(["nextest", "run", "--no-fail-fast"].map(String::from));
    } else {
        eprintln!("cargo-nextest not found; falling back to cargo test");
        cargo_args.push("test".into());
    }
    // `--workspace` would override an explicit `-p`, so it is only the default
    // (and `--exclude` needs it).
    if !selects_packages(extra) {
        cargo_args.push("--workspace".into());
    }
    cargo_args.extend(extra.iter().cloned());
    with_servers(&cargo_args)
}

/// Runs `cargo <cargo_args>` in the workspace root against throwaway PostgreSQL and
/// RabbitMQ servers, which it starts first and stops after, whatever the outcome. The
/// command gets `MKT_TEST_DATABASE_URL` (superuser, database `postgres`),
/// `MKT_TEST_AMQP_URL` and `MKT_TEST_RABBITMQ_API` (management API, guest/guest), what
/// `mkt-test-support` reads. Exits with the command's code.
pub fn with_servers(cargo_args: &[String]) -> Result<ExitCode> {
    ensure_installed()?;
    // From here a Ctrl-C reaches the child (same process group) and us, and we still clean up.
    let stop = StopFlag::install()?;
    // Declared before the servers so it is removed after they stop.
    let dir = TempDir::create()?;
    eprintln!(
        "starting throwaway PostgreSQL and RabbitMQ in {}...",
        dir.0.display()
    );
    let (mut pg, mut rabbit) =
        crate::start_servers(&dir.0.join("pg"), 0, &dir.0.join("rabbitmq"), 0, 0)?;
    stop.check()?;

    let status = crate::cargo()
        .args(cargo_args)
        .current_dir(crate::workspace_root())
        .env("MKT_TEST_DATABASE_URL", pg.admin_url())
        .env("MKT_TEST_AMQP_URL", rabbit.amqp_url())
        .env("MKT_TEST_RABBITMQ_API", rabbit.management_url())
        .status()?;

    eprintln!("stopping the throwaway servers...");
    // A server that stops badly is worth a warning, not a different verdict on the tests.
    if let Err(e) = rabbit.stop() {
        eprintln!("warning: stopping RabbitMQ: {e:#}");
    }
    if let Err(e) = pg.stop() {
        eprintln!("warning: stopping PostgreSQL: {e:#}");
    }
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(1));
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn selects_packages(args: &[String]) -> bool {
    args.iter().any(|a| {
        matches!(a.as_str(), "-p" | "--package" | "--workspace" | "--all")
            || a.starts_with("--package=")
            || (a.starts_with("-p") && a.len() > 2)
    })
}

/// `<temp>/mkt-xtask-test-<pid>`, removed on drop whatever the outcome.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("mkt-xtask-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::selects_packages;

    #[test]
    fn package_selection_is_detected_in_every_spelling() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        for picked in [
            &["-p", "x"][..],
            &["-px"],
            &["--package", "x"],
            &["--package=x"],
            &["--workspace"],
        ] {
            assert!(selects_packages(&args(picked)), "{picked:?}");
        }
        for not_picked in [
            &[][..],
            &["--no-capture"],
            &["my_test_filter"],
            &["-E", "test(foo)"],
            &["--exclude", "e2e"],
        ] {
            assert!(!selects_packages(&args(not_picked)), "{not_picked:?}");
        }
    }
}
