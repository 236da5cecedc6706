//! `cargo xtask up` and `cargo xtask down`: the whole platform on 127.0.0.1.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use mkt_devservers::{
    PostgresServer, RabbitServer, ensure_installed, http_request, log_tail, process_alive,
    random_hex, send_signal, terminate,
};

use crate::signals::StopFlag;
use crate::token::mint;

/// JWT issuer the services are configured to accept.
pub const ISSUER: &str = "mkt-dev";
/// JWT audience the services are configured to accept.
pub const AUDIENCE: &str = "mkt-api";

const PG_PORT: u16 = 54329;
const AMQP_PORT: u16 = 56729;
const MGMT_PORT: u16 = 15679;
const DATABASE: &str = "marketing";
const GATEWAY_PORT: u16 = 8080;
const ALL_ROLES: [&str; 5] = ["admin", "ingest", "reader", "marketer", "analyst"];
const DEV_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(300);
const SERVICE_GRACE: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 40;

const PID_FILE: &str = "stack.pid";
const ENV_FILE: &str = "stack.env";
/// `<pid> <binary path>` lines, so `down` can stop services whose `up` was killed.
const SERVICES_FILE: &str = "services.pids";

/// One binary of the platform.
struct Service {
    bin: &'static str,
    port: u16,
    /// Schema and role name; `None` for the gateway, which has no database or bus.
    schema: Option<&'static str>,
}

const SERVICES: [Service; 6] = [
    Service {
        bin: "ingestion",
        port: 8081,
        schema: Some("ingestion"),
    },
    Service {
        bin: "segmentation",
        port: 8082,
        schema: Some("segmentation"),
    },
    Service {
        bin: "campaign",
        port: 8083,
        schema: Some("campaign"),
    },
    Service {
        bin: "webhook",
        port: 8084,
        schema: Some("webhook"),
    },
    Service {
        bin: "cdp-analytics",
        port: 8085,
        schema: Some("cdp_analytics"),
    },
    Service {
        bin: "gateway",
        port: GATEWAY_PORT,
        schema: None,
    },
];

impl Service {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    fn database_url(schema: &str) -> String {
        format!(
            "postgres://{schema}:{}@127.0.0.1:{PG_PORT}/{DATABASE}",
            dev_password(schema)
        )
    }

    fn env(&self, secret: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("MKT_HTTP__ADDR".into(), self.addr()),
            ("MKT_AUTH__HS256_SECRET".into(), secret.into()),
            ("MKT_AUTH__ISSUER".into(), ISSUER.into()),
            ("MKT_AUTH__AUDIENCE".into(), AUDIENCE.into()),
            // A developer's own RUST_LOG wins, so `RUST_LOG=debug cargo xtask up` works.
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ];
        if self.bin == "ingestion" {
            // Dev only: a fixed key (base64 of the 32 ASCII bytes below) so integrations
            // created in one `up` still decrypt in the next. Production takes a Secret.
            env.push((
                "MKT_INTEGRATIONS__ENCRYPTION_KEY".into(),
                "bWFya2V0aW5nLWRldi1pbnRlZ3JhdGlvbnMta2V5ISE=".into(),
            ));
        }
        match self.schema {
            Some(schema) => env.extend([
                ("MKT_DATABASE__URL".into(), Self::database_url(schema)),
                ("MKT_DATABASE__SCHEMA".into(), schema.into()),
                (
                    "MKT_BUS__URL".into(),
                    format!("amqp://guest:guest@127.0.0.1:{AMQP_PORT}/%2f"),
                ),
            ]),
            None => env.extend(SERVICES.iter().filter(|s| s.schema.is_some()).map(|s| {
                (
                    format!("MKT_UPSTREAMS__{}", s.bin.to_uppercase().replace('-', "_")),
                    s.url(),
                )
            })),
        }
        env
    }
}

/// Fixed, not random: the cluster only listens on loopback, and a
/// predictable password lets a developer connect as a service to debug it.
fn dev_password(schema: &str) -> String {
    // init.sql's dev-only default.
    format!("{schema}-dev")
}

fn dev_dir(root: &Path) -> PathBuf {
    root.join(".dev")
}

/// Where the stack's HS256 secret is kept between runs.
pub fn secret_path(root: &Path) -> PathBuf {
    dev_dir(root).join("secret")
}

/// `cargo xtask up`
pub fn up() -> Result<ExitCode> {
    let root = crate::workspace_root();
    let dev = dev_dir(&root);
    if let Some(pid) = running_up(&dev) {
        bail!("the stack is already up (pid {pid}); run `cargo xtask down` first");
    }
    // Services of an `up` that was killed outright would hold our ports.
    stop_leftover_services(&dev)?;
    let built = crate::cargo()
        .args(["build", "--workspace", "--bins"])
        .current_dir(&root)
        .status()?;
    if !built.success() {
        bail!("cargo build --workspace --bins failed ({built})");
    }
    let bins = debug_bin_dir(&root)?;
    ensure_installed()?;
    std::fs::create_dir_all(dev.join("logs"))?;
    let stop = StopFlag::install()?;
    std::fs::write(dev.join(PID_FILE), std::process::id().to_string())?;
    // Declared before the servers so that it runs after they are stopped: `down` waits on our pid.
    let _files = RemoveOnDrop(vec![
        dev.join(PID_FILE),
        dev.join(ENV_FILE),
        dev.join(SERVICES_FILE),
    ]);
    run_stack(&root, &bins, &dev, &stop)
}

/// `target/debug`, wherever `CARGO_TARGET_DIR` or cargo config put it (CI moves it out of the clone).
fn debug_bin_dir(root: &Path) -> Result<PathBuf> {
    let output = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let target = metadata["target_directory"]
        .as_str()
        .context("cargo metadata has a target_directory")?;
    Ok(Path::new(target).join("debug"))
}

/// Starts everything, waits for a stop signal or a crash, stops everything.
/// Early returns drop (and so stop) services first, then RabbitMQ, then Postgres.
fn run_stack(root: &Path, bins: &Path, dev: &Path, stop: &StopFlag) -> Result<ExitCode> {
    eprintln!(
        "starting PostgreSQL on 127.0.0.1:{PG_PORT} and RabbitMQ on 127.0.0.1:{AMQP_PORT} (management {MGMT_PORT})..."
    );
    let (mut pg, mut rabbit) = crate::start_servers(
        &dev.join("pg"),
        PG_PORT,
        &dev.join("rabbitmq"),
        AMQP_PORT,
        MGMT_PORT,
    )?;
    stop.check()?;
    provision(&pg)?;
    let secret = load_or_create_secret(root)?;

    let mut services = Services {
        dev: dev.to_path_buf(),
        running: Vec::new(),
    };
    for service in &SERVICES {
        std::fs::write(log_path(dev, service.bin), "")?;
    }
    for service in SERVICES.iter().filter(|s| s.schema.is_some()) {
        eprintln!("migrating {}...", service.bin);
        migrate(root, bins, dev, service, &secret, stop)?;
    }
    for service in &SERVICES {
        services.spawn(root, bins, service, &secret)?;
    }
    eprintln!("waiting for every /readyz...");
    services.wait_ready(stop)?;

    let token = mint(&secret, "demo", &ALL_ROLES.map(String::from), DEV_TOKEN_TTL)?;
    write_stack_env(dev, &pg, &rabbit, &secret, &token)?;
    println!("Stack is up. Gateway: http://127.0.0.1:{GATEWAY_PORT}");
    println!(
        "Dev token (tenant demo, roles {}, 30 days):\n{token}",
        ALL_ROLES.join(",")
    );
    println!(
        "Settings: {}  Logs: {}",
        dev.join(ENV_FILE).display(),
        dev.join("logs").display()
    );
    println!("Ctrl-C or `cargo xtask down` stops it.");

    let outcome = services.supervise(stop);
    eprintln!("stopping services...");
    services.stop_all();
    eprintln!("stopping RabbitMQ and PostgreSQL...");
    let rabbit_stopped = rabbit.stop();
    let pg_stopped = pg.stop();
    outcome?;
    rabbit_stopped?;
    pg_stopped?;
    eprintln!("stack stopped");
    Ok(ExitCode::SUCCESS)
}

/// One database, one role and schema per service, each role confined to its
/// schema: exactly what production runs, `deploy/postgres/init.sql` (with its
/// dev-only default passwords), so the dev stack cannot drift from it. Idempotent.
fn provision(pg: &PostgresServer) -> Result<()> {
    const INIT_SQL: &str = include_str!("../../deploy/postgres/init.sql");
    pg.psql("postgres", INIT_SQL)
        .context("provisioning with deploy/postgres/init.sql")?;
    // Dev-only hardening on top: service roles have no business in the maintenance
    // databases (a managed production cluster decides this itself).
    pg.psql(
        "postgres",
        "REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC;",
    )
    .context("revoking CONNECT on maintenance databases")?;
    Ok(())
}

fn load_or_create_secret(root: &Path) -> Result<String> {
    let path = secret_path(root);
    // A kept secret under the 32 bytes the services demand
    // (`mkt_auth::MIN_HS256_SECRET_BYTES`), from an older or hand-edited file, is
    // replaced rather than failing every service at start-up.
    if let Ok(secret) = std::fs::read_to_string(&path)
        && secret.trim().len() >= 32
    {
        return Ok(secret.trim().to_owned());
    }
    let secret = random_hex(32)?;
    write_private(&path, &format!("{secret}\n"))?;
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

fn write_stack_env(
    dev: &Path,
    pg: &PostgresServer,
    rabbit: &RabbitServer,
    secret: &str,
    token: &str,
) -> Result<()> {
    let admin = pg.admin_url();
    let database_url = format!(
        "{}/{DATABASE}",
        admin
            .strip_suffix("/postgres")
            .context("admin URL names database postgres")?
    );
    let mut vars = vec![
        (
            "GATEWAY_URL".to_owned(),
            format!("http://127.0.0.1:{GATEWAY_PORT}"),
        ),
        ("DEV_TOKEN".to_owned(), token.to_owned()),
        ("DATABASE_URL".to_owned(), database_url),
        ("AMQP_URL".to_owned(), rabbit.amqp_url()),
        (
            "RABBITMQ_MANAGEMENT_URL".to_owned(),
            rabbit.management_url(),
        ),
        ("JWT_HS256_SECRET".to_owned(), secret.to_owned()),
        ("JWT_ISSUER".to_owned(), ISSUER.to_owned()),
        ("JWT_AUDIENCE".to_owned(), AUDIENCE.to_owned()),
    ];
    vars.extend(SERVICES.iter().filter(|s| s.schema.is_some()).map(|s| {
        (
            format!("{}_URL", s.bin.to_uppercase().replace('-', "_")),
            s.url(),
        )
    }));
    let text: String = vars
        .iter()
        .map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', r"'\''")))
        .collect();
    // Written whole then renamed: whoever waits for this file never reads half of it.
    let tmp = dev.join(format!("{ENV_FILE}.tmp"));
    write_private(&tmp, &text)?;
    std::fs::rename(&tmp, dev.join(ENV_FILE))?;
    Ok(())
}

fn log_path(dev: &Path, bin: &str) -> PathBuf {
    dev.join("logs").join(format!("{bin}.log"))
}

/// A service binary with its env, output appended to its log, in a process
/// group of its own so a terminal Ctrl-C reaches only us and we stop things in order.
fn service_command(
    root: &Path,
    bins: &Path,
    dev: &Path,
    service: &Service,
    secret: &str,
) -> Result<Command> {
    let bin = bins.join(service.bin);
    if !bin.is_file() {
        bail!(
            "{} is missing: does the workspace build a `{}` binary?",
            bin.display(),
            service.bin
        );
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(dev, service.bin))?;
    let mut cmd = Command::new(bin);
    cmd.envs(service.env(secret))
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    Ok(cmd)
}

fn migrate(
    root: &Path,
    bins: &Path,
    dev: &Path,
    service: &Service,
    secret: &str,
    stop: &StopFlag,
) -> Result<()> {
    let mut child = service_command(root, bins, dev, service, secret)?
        .arg("migrate")
        .spawn()?;
    let deadline = Instant::now() + MIGRATE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if stop.requested() || Instant::now() >= deadline {
            terminate(&mut child, SERVICE_GRACE)?;
            stop.check()?;
            bail!(
                "{} migrate did not finish within {MIGRATE_TIMEOUT:?}",
                service.bin
            );
        }
        sleep(Duration::from_millis(100));
    };
    if !status.success() {
        bail!(
            "{} migrate failed ({status}); last lines of its log:\n{}",
            service.bin,
            log_tail(&log_path(dev, service.bin), LOG_TAIL_LINES)
        );
    }
    Ok(())
}

struct Running {
    service: &'static Service,
    child: Child,
}

/// The running services; dropping it stops them.
struct Services {
    dev: PathBuf,
    running: Vec<Running>,
}

impl Services {
    fn spawn(
        &mut self,
        root: &Path,
        bins: &Path,
        service: &'static Service,
        secret: &str,
    ) -> Result<()> {
        let child = service_command(root, bins, &self.dev, service, secret)?.spawn()?;
        let mut pids = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dev.join(SERVICES_FILE))?;
        writeln!(pids, "{} {}", child.id(), bins.join(service.bin).display())?;
        self.running.push(Running { service, child });
        Ok(())
    }

    /// Fails with the log tail of the first service that has exited.
    fn check_alive(&mut self) -> Result<()> {
        for running in &mut self.running {
            if let Some(status) = running.child.try_wait()? {
                let bin = running.service.bin;
                bail!(
                    "{bin} exited ({status}); last lines of {}:\n{}",
                    log_path(&self.dev, bin).display(),
                    log_tail(&log_path(&self.dev, bin), LOG_TAIL_LINES)
                );
            }
        }
        Ok(())
    }

    fn wait_ready(&mut self, stop: &StopFlag) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pending: Vec<&'static Service> = self.running.iter().map(|r| r.service).collect();
        loop {
            stop.check()?;
            self.check_alive()?;
            pending.retain(|s| {
                !matches!(
                    http_request("GET", &format!("{}/readyz", s.url()), None, None),
                    Ok((200, _))
                )
            });
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tails: Vec<String> = pending
                    .iter()
                    .map(|s| {
                        format!(
                            "--- {} (GET {}/readyz) ---\n{}",
                            s.bin,
                            s.url(),
                            log_tail(&log_path(&self.dev, s.bin), LOG_TAIL_LINES)
                        )
                    })
                    .collect();
                bail!("not ready after {READY_TIMEOUT:?}:\n{}", tails.join("\n"));
            }
            sleep(Duration::from_millis(300));
        }
    }

    /// Returns when a stop signal arrives; fails when a service exits by itself.
    fn supervise(&mut self, stop: &StopFlag) -> Result<()> {
        while !stop.requested() {
            self.check_alive()?;
            sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    /// SIGTERM to all at once, then up to 10 s in total before SIGKILL.
    fn stop_all(&mut self) {
        for running in &self.running {
            let _ = send_signal(running.child.id(), "TERM", true);
        }
        let deadline = Instant::now() + SERVICE_GRACE;
        for mut running in self.running.drain(..) {
            let grace = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = terminate(&mut running.child, grace) {
                eprintln!("stopping {}: {e:#}", running.service.bin);
            }
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The pid of a live `cargo xtask up` recorded in `.dev/stack.pid`.
fn running_up(dev: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dev.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // A stale pid may have been reused by anything; only an xtask counts.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_xtask = cmdline
        .split(|b| *b == 0)
        .next()
        .is_some_and(|arg0| arg0.ends_with(b"xtask"));
    (process_alive(pid) && is_xtask).then_some(pid)
}

/// `cargo xtask down`
pub fn down() -> Result<ExitCode> {
    let root = crate::workspace_root();
    let dev = dev_dir(&root);
    if let Some(pid) = running_up(&dev) {
        eprintln!("asking `cargo xtask up` (pid {pid}) to stop...");
        send_signal(pid, "TERM", false)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while process_alive(pid) {
            if Instant::now() >= deadline {
                bail!(
                    "pid {pid} is still running after 2 minutes; `kill -9 {pid}` it and run `cargo xtask down` again"
                );
            }
            sleep(Duration::from_millis(200));
        }
    }
    // Whatever an `up` that was killed outright left behind.
    stop_leftover_services(&dev)?;
    if PostgresServer::stop_leftover(&dev.join("pg"))? {
        eprintln!("stopped a leftover PostgreSQL");
    }
    if RabbitServer::stop_leftover(&dev.join("rabbitmq"))? {
        eprintln!("stopped a leftover RabbitMQ");
    }
    drop(RemoveOnDrop(vec![
        dev.join(PID_FILE),
        dev.join(ENV_FILE),
        dev.join(SERVICES_FILE),
    ]));
    eprintln!("stack is down");
    Ok(ExitCode::SUCCESS)
}

fn stop_leftover_services(dev: &Path) -> Result<()> {
    let Ok(list) = std::fs::read_to_string(dev.join(SERVICES_FILE)) else {
        return Ok(());
    };
    let leftovers: Vec<(u32, &str)> = list
        .lines()
        .filter_map(|line| {
            let (pid, bin) = line.split_once(' ')?;
            let pid = pid.parse().ok()?;
            // Only a process still running that binary: the pid may have been reused.
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            let ours = exe.to_string_lossy().trim_end_matches(" (deleted)") == bin;
            (ours && process_alive(pid)).then_some((pid, bin))
        })
        .collect();
    for (pid, bin) in &leftovers {
        eprintln!("stopping leftover {bin} (pid {pid})");
        send_signal(*pid, "TERM", true)?;
    }
    let deadline = Instant::now() + SERVICE_GRACE;
    while leftovers.iter().any(|(pid, _)| process_alive(*pid)) && Instant::now() < deadline {
        sleep(Duration::from_millis(100));
    }
    for (pid, bin) in leftovers.iter().filter(|(pid, _)| process_alive(*pid)) {
        send_signal(*pid, "KILL", true).map_err(|e| anyhow!("killing {bin}: {e:#}"))?;
    }
    Ok(())
}

/// Deletes the files on drop (missing ones are fine).
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}
