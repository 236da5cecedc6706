//! A PostgreSQL cluster of our own, run as a child process.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::process::{
    Watchdog, find_in_path, free_port, is_root, log_tail, random_hex, run, terminate, wait_timeout,
};

/// Lives inside the data directory so that the cluster and its credentials
/// travel (and get deleted) together.
const PASSWORD_FILE: &str = "mkt-superuser-password";
/// Rewritten on every start, because the port and socket directory may change.
const SETTINGS_FILE: &str = "mkt-dev.conf";
const LOG_FILE: &str = "mkt-postgres.log";
const SUPERUSER: &str = "postgres";
const REQUIRED_BINARIES: [&str; 5] = ["initdb", "pg_ctl", "postgres", "psql", "pg_isready"];
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory holding `initdb`, `pg_ctl`, `postgres`, `psql`, `pg_isready`:
/// `MKT_PG_BIN_DIR`, else Debian's newest `/usr/lib/postgresql/<major>/bin`,
/// else wherever `pg_ctl` is on `PATH`.
pub(crate) fn pg_bin_dir() -> Result<PathBuf> {
    let complete = |dir: &Path| REQUIRED_BINARIES.iter().all(|b| dir.join(b).is_file());
    if let Some(dir) = std::env::var_os("MKT_PG_BIN_DIR") {
        let dir = PathBuf::from(dir);
        return if complete(&dir) {
            Ok(dir)
        } else {
            Err(anyhow!(
                "MKT_PG_BIN_DIR={} lacks one of {REQUIRED_BINARIES:?}",
                dir.display()
            ))
        };
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry.file_name().to_str()?.parse::<u32>().ok()?,
                entry.path().join("bin"),
            ))
        })
        .filter(|(_, dir)| complete(dir))
        .max_by_key(|(major, _)| *major)
        .map(|(_, dir)| dir);
    debian
        .or_else(|| find_in_path("pg_ctl").and_then(|p| p.parent().map(Path::to_path_buf)).filter(|d| complete(d)))
        .ok_or_else(|| anyhow!("PostgreSQL server binaries not found (looked in MKT_PG_BIN_DIR, /usr/lib/postgresql/*/bin, PATH)"))
}

/// PostgreSQL refuses to run as root, so as root the server runs as the
/// `postgres` account the Debian package creates, and owns its data directory.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    ids: Option<(u32, u32)>,
}

impl RunAs {
    fn detect() -> Result<Self> {
        if !is_root() {
            return Ok(Self { ids: None });
        }
        let id = |flag: &str| -> Result<u32> {
            let out = run(Command::new("id").args([flag, SUPERUSER]))
                .context("running as root, the server needs the `postgres` OS account (created by the postgresql package)")?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
        };
        Ok(Self {
            ids: Some((id("-u")?, id("-g")?)),
        })
    }

    fn command(self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.ids {
            // std drops root's supplementary groups when it switches uid.
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn chown(self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
        }
        Ok(())
    }
}

/// A PostgreSQL server on 127.0.0.1 with its cluster in a directory of ours.
///
/// Superuser `postgres` authenticates with a random password (scram-sha-256)
/// over TCP; the Unix socket lives inside the data directory. Dropping a
/// running server stops it.
#[derive(Debug)]
pub struct PostgresServer {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    run_as: RunAs,
    port: u16,
    password: String,
    child: Option<Child>,
    watchdog: Option<Watchdog>,
}

impl PostgresServer {
    /// Runs `initdb` in `data_dir` unless it already holds a cluster, then
    /// starts the server on 127.0.0.1:`port` (0 picks a free port) and waits
    /// (up to 30 s) until it accepts the superuser. A server left running on
    /// `data_dir` by an owner that was killed is stopped first.
    pub fn start(data_dir: &Path, port: u16) -> Result<Self> {
        let bin_dir = pg_bin_dir()?;
        let run_as = RunAs::detect()?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let data_dir = data_dir.canonicalize()?;
        stop_leftover_in(&bin_dir, run_as, &data_dir)?;
        if !data_dir.join("PG_VERSION").exists() {
            init_cluster(&bin_dir, run_as, &data_dir)?;
        }
        let password = std::fs::read_to_string(data_dir.join(PASSWORD_FILE))
            .with_context(|| format!("{} holds a cluster not made by mkt-devservers (no {PASSWORD_FILE}); delete it to start afresh", data_dir.display()))?
            .trim()
            .to_owned();
        let port = if port == 0 { free_port()? } else { port };
        write_settings(run_as, &data_dir, port)?;

        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join(LOG_FILE))?;
        let child = run_as
            .command(&bin_dir.join("postgres"))
            .arg("-D")
            .arg(&data_dir)
            .current_dir(&data_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("spawning postgres")?;
        let mut server = Self {
            bin_dir,
            data_dir,
            run_as,
            port,
            password,
            child: Some(child),
            watchdog: None,
        };
        // On failure `server` is dropped here, which stops the half-started process.
        // SIGINT is PostgreSQL's fast shutdown, what `pg_ctl stop -m fast` sends.
        server.watchdog = Some(Watchdog::spawn("INT", &[server.pid()?])?);
        server.wait_ready()?;
        Ok(server)
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>/postgres`
    pub fn admin_url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` (one or more statements, psql meta-commands such as `\gexec`
    /// allowed) as superuser in `database` through `psql` with
    /// `ON_ERROR_STOP=1`, and returns its stdout. Output is unaligned and
    /// tuples-only (`-At`), so `select 1` returns `"1\n"`.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let mut child = Command::new(self.bin_dir.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                SUPERUSER,
                "-f",
                "-",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning psql")?;
        let mut stdin = child.stdin.take().context("psql stdin is piped")?;
        let sql = sql.to_owned();
        // Written from a thread so a large result cannot deadlock against a large script.
        let writer = std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
        let output = child.wait_with_output()?;
        // A write error just means psql stopped reading early; its exit status says why.
        let _ = writer.join();
        if !output.status.success() {
            bail!(
                "psql on database {database:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Stops the server with `pg_ctl stop -m fast` (rolls back open
    /// transactions, checkpoints, exits). Errors if the server had already
    /// died on its own. Doing nothing is fine when already stopped.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // Dropped on return, once the server is gone.
        let _watchdog = self.watchdog.take();
        if let Some(status) = child.try_wait()? {
            bail!(
                "postgres had already exited ({status}); log tail:\n{}",
                log_tail(&self.data_dir.join(LOG_FILE), 20)
            );
        }
        let stopped = pg_ctl_stop(&self.bin_dir, self.run_as, &self.data_dir);
        if wait_timeout(&mut child, Duration::from_secs(10))?.is_none() {
            terminate(&mut child, Duration::ZERO)?;
            stopped?;
            bail!("postgres did not exit after pg_ctl stop; killed it");
        }
        stopped
    }

    /// Stops a server still running on `data_dir` (its owner was killed
    /// before it could stop it). Returns whether there was one.
    pub fn stop_leftover(data_dir: &Path) -> Result<bool> {
        if !data_dir.join("postmaster.pid").exists() {
            return Ok(false);
        }
        stop_leftover_in(&pg_bin_dir()?, RunAs::detect()?, &data_dir.canonicalize()?)
    }

    fn pid(&self) -> Result<u32> {
        Ok(self.child.as_ref().context("server is running")?.id())
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let log = self.data_dir.join(LOG_FILE);
        loop {
            let child = self.child.as_mut().context("server is running")?;
            if let Some(status) = child.try_wait()? {
                self.child = None;
                self.watchdog = None;
                bail!(
                    "postgres exited ({status}) before accepting connections; log tail:\n{}",
                    log_tail(&log, 20)
                );
            }
            let ready = Command::new(self.bin_dir.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-d",
                    "postgres",
                    "-U",
                    SUPERUSER,
                    "-t",
                    "2",
                    "-p",
                ])
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .status()?
                .success();
            if ready {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "postgres not ready on 127.0.0.1:{} after {READY_TIMEOUT:?}; log tail:\n{}",
                    self.port,
                    log_tail(&log, 20)
                );
            }
            sleep(Duration::from_millis(100));
        }
        // Accepting connections is not enough: prove our credentials work too.
        self.psql("postgres", "select 1").map(drop)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(e) = self.stop()
        {
            eprintln!(
                "mkt-devservers: stopping postgres in {}: {e:#}",
                self.data_dir.display()
            );
        }
    }
}

fn init_cluster(bin_dir: &Path, run_as: RunAs, data_dir: &Path) -> Result<()> {
    run_as.chown(data_dir)?;
    let password = random_hex(16)?;
    // initdb wants the password in a file and the data directory empty, so the
    // file sits next to the data directory, where the server account can reach it.
    let parent = data_dir.parent().context("data_dir has a parent")?;
    let pwfile = TempFile(parent.join(format!(".mkt-initdb-pw-{}", std::process::id())));
    write_private(&pwfile.0, &password)?;
    run_as.chown(&pwfile.0)?;
    run(run_as
        .command(&bin_dir.join("initdb"))
        .arg("-D")
        .arg(data_dir)
        .args([
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
        ])
        .arg(format!("--pwfile={}", pwfile.0.display()))
        .current_dir(data_dir))
    .context("initdb")?;
    // Local (socket) trust is safe: the socket sits in the 0700 data directory.
    let mut conf = OpenOptions::new()
        .append(true)
        .open(data_dir.join("postgresql.conf"))?;
    writeln!(
        conf,
        "\n# mkt-devservers: port, addresses and dev settings.\ninclude_if_exists = '{SETTINGS_FILE}'"
    )?;
    write_private(&data_dir.join(PASSWORD_FILE), &password)
}

fn write_settings(run_as: RunAs, data_dir: &Path, port: u16) -> Result<()> {
    let dir = data_dir.to_string_lossy();
    // sun_path is 108 bytes; a deeper path would stop the server from starting at all.
    let socket_dir = if dir.len() + "/.s.PGSQL.".len() + port.to_string().len() < 108 {
        dir.replace('\'', "''")
    } else {
        String::new()
    };
    let path = data_dir.join(SETTINGS_FILE);
    std::fs::write(
        &path,
        format!(
            "# Written by mkt-devservers on every start: edits are overwritten.\n\
             listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = '{socket_dir}'\n\
             max_connections = 300\n\
             shared_buffers = 128MB\n\
             fsync = on\n"
        ),
    )?;
    run_as.chown(&path)
}

fn pg_ctl_stop(bin_dir: &Path, run_as: RunAs, data_dir: &Path) -> Result<()> {
    run(run_as
        .command(&bin_dir.join("pg_ctl"))
        .args(["stop", "-m", "fast", "-w", "-t", "60", "-D"])
        .arg(data_dir)
        .current_dir(data_dir))
    .map(drop)
}

fn stop_leftover_in(bin_dir: &Path, run_as: RunAs, data_dir: &Path) -> Result<bool> {
    let Ok(pid_file) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return Ok(false);
    };
    let Some(pid) = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<u32>().ok())
    else {
        return Ok(false);
    };
    // A stale pid may now belong to anything; only signal a postmaster of this directory.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let needle = data_dir.as_os_str().as_encoded_bytes();
    if !cmdline.windows(needle.len()).any(|w| w == needle) {
        return Ok(false);
    }
    eprintln!(
        "mkt-devservers: stopping a leftover postgres (pid {pid}) in {}",
        data_dir.display()
    );
    pg_ctl_stop(bin_dir, run_as, data_dir)?;
    Ok(true)
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
