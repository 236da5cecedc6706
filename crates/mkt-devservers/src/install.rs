//! Making sure the server binaries are there.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::postgres::pg_bin_dir;
use crate::process::{find_in_path, is_root, run};
use crate::rabbit::RabbitBins;

/// Checks that the PostgreSQL and RabbitMQ server binaries exist. If some are
/// missing and we are root on Debian/Ubuntu, runs `apt-get update` and
/// `apt-get install -y` for the missing packages (`postgresql`,
/// `rabbitmq-server`); otherwise fails with the exact command to run.
///
/// `MKT_PG_BIN_DIR` and `MKT_RABBITMQ_BIN_DIR` point at binaries installed
/// elsewhere.
pub fn ensure_installed() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    let packages = missing.join(" ");
    let can_apt =
        is_root() && Path::new("/etc/debian_version").exists() && find_in_path("apt-get").is_some();
    if !can_apt {
        bail!(
            "{packages} not installed. On Debian/Ubuntu run: sudo apt-get update && sudo apt-get install -y {packages} \
             (or point MKT_PG_BIN_DIR / MKT_RABBITMQ_BIN_DIR at existing binaries)"
        );
    }
    eprintln!("mkt-devservers: installing {packages} with apt-get");
    run(Command::new("apt-get").args(["update", "-q"]))?;
    {
        let _no_daemons = NoServiceStarts::install()?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let still_missing = missing_packages();
    if !still_missing.is_empty() {
        bail!(
            "apt-get install succeeded but {} still not found",
            still_missing.join(" ")
        );
    }
    Ok(())
}

fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if pg_bin_dir().is_err() {
        missing.push("postgresql");
    }
    if RabbitBins::locate().is_err() {
        missing.push("rabbitmq-server");
    }
    missing
}

/// Debian's policy-rc.d hook, present for the duration of an install, so the
/// packages do not start system-wide daemons (a `main` cluster on 5432, a node
/// on 5672 with epmd on 4369) that nobody here uses.
struct NoServiceStarts {
    installed: bool,
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

impl NoServiceStarts {
    fn install() -> Result<Self> {
        if Path::new(POLICY_RC_D).exists() {
            // Someone else's policy (a container image's): leave it alone.
            return Ok(Self { installed: false });
        }
        std::fs::write(
            POLICY_RC_D,
            "#!/bin/sh\n# Temporary, from mkt-devservers::ensure_installed.\nexit 101\n",
        )
        .with_context(|| format!("writing {POLICY_RC_D}"))?;
        std::fs::set_permissions(POLICY_RC_D, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self { installed: true })
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if self.installed {
            let _ = std::fs::remove_file(POLICY_RC_D);
        }
    }
}
