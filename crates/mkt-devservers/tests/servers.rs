//! Starts real PostgreSQL and RabbitMQ servers in a temporary directory and
//! checks that they serve, keep their data across restarts, and leave no
//! process behind.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use mkt_devservers::{PostgresServer, RabbitServer, ensure_installed};

/// A fresh directory under the system temp dir, removed on drop (after the
/// servers in it, since it is declared first).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<Self> {
        let path =
            std::env::temp_dir().join(format!("mkt-devservers-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)?;
        Ok(Self(path.canonicalize()?))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

/// Live processes whose command line mentions `dir`: servers we failed to stop.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.as_os_str().as_encoded_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            found.push(String::from_utf8_lossy(&cmdline).replace('\0', " "));
        }
    }
    found
}

/// Waits briefly, since a process that has exited may take a moment to be reaped.
fn assert_no_processes_using(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_using(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_using(dir),
        Vec::<String>::new(),
        "processes left behind"
    );
}

#[test]
fn postgres_serves_keeps_data_across_restarts_and_stops() -> Result<()> {
    ensure_installed()?;
    let dir = TempDir::new("pg")?;
    let data = dir.0.join("pg");

    let mut pg = PostgresServer::start(&data, 0)?;
    let port = pg.port();
    assert_eq!(pg.psql("postgres", "select 1")?, "1\n");
    assert_eq!(
        pg.admin_url(),
        format!(
            "postgres://postgres:{}@127.0.0.1:{port}/postgres",
            password(&pg.admin_url())?
        )
    );
    let settings = pg.psql(
        "postgres",
        "select current_setting('max_connections'), current_setting('fsync'), current_setting('listen_addresses'), \
         current_setting('shared_buffers'), current_setting('server_encoding'), current_user",
    )?;
    assert_eq!(settings, "300|on|127.0.0.1|128MB|UTF8|postgres\n");
    // Several statements, a meta-command, and a statement that cannot run in a transaction block.
    pg.psql(
        "postgres",
        "select 'create database app' \\gexec\ncreate table t (x int); insert into t values (42);",
    )?;
    let err = pg
        .psql("postgres", "select * from missing_table; select 1;")
        .expect_err("a failing statement fails");
    assert!(format!("{err:#}").contains("missing_table"), "{err:#}");

    // Password authentication is really enforced on TCP.
    let wrong = std::process::Command::new(psql_path()?)
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "select 1",
            "-p",
            &port.to_string(),
        ])
        .env("PGPASSWORD", "wrong")
        .output()?;
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("password authentication failed"));

    pg.stop()?;
    assert!(!accepts(port));
    pg.stop()?; // stopping twice is harmless

    let pg = PostgresServer::start(&data, 0)?;
    assert_eq!(pg.psql("app", "select 1")?, "1\n");
    assert_eq!(pg.psql("postgres", "select x from t")?, "42\n");
    let port = pg.port();
    drop(pg);
    assert!(!accepts(port), "drop stops the server");
    assert_no_processes_using(&dir.0);
    Ok(())
}

fn password(url: &str) -> Result<&str> {
    url.strip_prefix("postgres://postgres:")
        .and_then(|rest| rest.split_once('@'))
        .map(|(pw, _)| pw)
        .context("admin url has a password")
}

/// psql as used by the crate: Debian's newest major version.
fn psql_path() -> Result<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .parse::<u32>()
                .ok()
                .map(|v| (v, e.path()))
        })
        .max()
        .map(|(_, p)| p.join("bin/psql"))
        .context("a postgresql install")
}

#[test]
fn rabbitmq_serves_keeps_durable_messages_across_restarts_and_stops() -> Result<()> {
    ensure_installed()?;
    let dir = TempDir::new("rabbit")?;
    let mut rabbit = RabbitServer::start(&dir.0.join("rabbitmq"), 0, 0)?;
    let amqp_url = rabbit.amqp_url();
    let port = rabbit.amqp_port();
    assert_eq!(amqp_url, format!("amqp://guest:guest@127.0.0.1:{port}/%2f"));

    let (status, overview) = rabbit.management_request("GET", "/api/overview", None)?;
    assert_eq!(status, 200);
    assert!(overview.contains("\"rabbitmq_version\":\"3."), "{overview}");
    assert!(
        overview.contains(&format!("\"node\":\"mkt-{port}@localhost\"")),
        "{overview}"
    );
    let (status, _) = mkt_devservers::http_request(
        "GET",
        &format!("{}/api/overview", rabbit.management_url()),
        Some(("guest", "nope")),
        None,
    )?;
    assert_eq!(status, 401);

    // guest may log in over AMQP because we connect over loopback.
    assert!(amqp_login(port, "guest", "guest")?);
    assert!(!amqp_login(port, "guest", "wrong")?);

    let (status, _) = rabbit.management_request(
        "PUT",
        "/api/queues/%2f/durable-q",
        Some(r#"{"durable":true}"#),
    )?;
    assert_eq!(status, 201);
    let publish = r#"{"properties":{"delivery_mode":2},"routing_key":"durable-q","payload":"survives","payload_encoding":"string"}"#;
    let (status, body) = rabbit.management_request(
        "POST",
        "/api/exchanges/%2f/amq.default/publish",
        Some(publish),
    )?;
    assert_eq!((status, body.as_str()), (200, r#"{"routed":true}"#));

    for _ in 0..2 {
        rabbit.restart()?;
        assert_eq!(rabbit.amqp_url(), amqp_url, "same port after restart");
        // Peek without consuming: the message must still be there after the next restart.
        let get = r#"{"count":1,"ackmode":"reject_requeue_true","encoding":"auto"}"#;
        let (status, body) =
            rabbit.management_request("POST", "/api/queues/%2f/durable-q/get", Some(get))?;
        assert_eq!(status, 200);
        assert!(body.contains("\"payload\":\"survives\""), "{body}");
    }

    let mgmt = rabbit.management_url();
    let epmd_port = epmd_port_of(&dir.0.join("rabbitmq"))?;
    rabbit.stop()?;
    assert!(!accepts(port));
    assert!(!accepts(epmd_port), "the node's epmd stops with it");
    assert!(
        mkt_devservers::http_request("GET", &format!("{mgmt}/api/overview"), None, None).is_err()
    );
    rabbit.stop()?; // stopping twice is harmless
    assert_no_processes_using(&dir.0);
    Ok(())
}

#[test]
fn leftover_servers_of_a_killed_owner_are_stopped_and_nodes_coexist() -> Result<()> {
    ensure_installed()?;
    let dir = TempDir::new("leftover")?;

    // Forgetting a server is what a SIGKILLed owner amounts to: nobody stops it.
    let pg = PostgresServer::start(&dir.0.join("pg"), 0)?;
    let pg_port = pg.port();
    std::mem::forget(pg);
    let leftover = RabbitServer::start(&dir.0.join("rabbit-a"), 0, 0)?;
    let leftover_port = leftover.amqp_port();
    std::mem::forget(leftover);

    // A second node with its own epmd runs next to the first.
    let other = RabbitServer::start(&dir.0.join("rabbit-b"), 0, 0)?;
    assert!(accepts(leftover_port) && accepts(other.amqp_port()));
    drop(other);
    assert!(
        accepts(leftover_port),
        "stopping one node leaves the other alone"
    );

    let epmd_port = epmd_port_of(&dir.0.join("rabbit-a"))?;
    assert!(accepts(epmd_port));
    assert!(RabbitServer::stop_leftover(&dir.0.join("rabbit-a"))?);
    assert!(!accepts(leftover_port));
    assert!(!accepts(epmd_port), "the leftover node's epmd is gone too");
    assert!(
        !RabbitServer::stop_leftover(&dir.0.join("rabbit-a"))?,
        "nothing left the second time"
    );

    // Starting on the same data directory takes over from the leftover.
    let pg = PostgresServer::start(&dir.0.join("pg"), pg_port)?;
    assert_eq!(pg.psql("postgres", "select 1")?, "1\n");
    drop(pg);
    assert!(!PostgresServer::stop_leftover(&dir.0.join("pg"))?);
    assert_no_processes_using(&dir.0);
    Ok(())
}

#[test]
fn servers_stop_by_themselves_when_their_owner_is_killed() -> Result<()> {
    ensure_installed()?;
    let dir = TempDir::new("owner")?;
    // The owner is this test binary again, running only the helper below.
    let mut owner = std::process::Command::new(std::env::current_exe()?)
        .args(["--exact", "owner_helper", "--ignored", "--nocapture"])
        .env(OWNER_DIR_VAR, &dir.0)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let ready = dir.0.join("ready");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !ready.exists() {
        ensure!(
            owner.try_wait()?.is_none(),
            "the owner exited before its servers were up"
        );
        ensure!(
            Instant::now() < deadline,
            "the owner's servers did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ports: Vec<u16> = std::fs::read_to_string(&ready)?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    assert!(ports.iter().all(|&p| accepts(p)));

    owner.kill()?; // SIGKILL: no Drop, no cleanup of its own
    owner.wait()?;
    let deadline = Instant::now() + Duration::from_secs(40);
    while (ports.iter().any(|&p| accepts(p)) || !processes_using(&dir.0).is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        ports.iter().all(|&p| !accepts(p)),
        "ports still open: {ports:?}"
    );
    assert_no_processes_using(&dir.0);
    Ok(())
}

const OWNER_DIR_VAR: &str = "MKT_DEVSERVERS_TEST_OWNER_DIR";

/// Run only by `servers_stop_by_themselves_when_their_owner_is_killed`.
#[test]
#[ignore = "helper process for servers_stop_by_themselves_when_their_owner_is_killed"]
fn owner_helper() -> Result<()> {
    let dir = PathBuf::from(std::env::var(OWNER_DIR_VAR).context("run only as a helper")?);
    let pg = PostgresServer::start(&dir.join("pg"), 0)?;
    let rabbit = RabbitServer::start(&dir.join("rabbitmq"), 0, 0)?;
    let ports = [
        pg.port(),
        rabbit.amqp_port(),
        epmd_port_of(&dir.join("rabbitmq"))?,
    ];
    std::fs::write(
        dir.join("ready.tmp"),
        ports.map(|p| p.to_string()).join(" "),
    )?;
    std::fs::rename(dir.join("ready.tmp"), dir.join("ready"))?;
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// The private epmd port the crate recorded for a node (its epmd's command
/// line does not mention the directory, so the process scan cannot see it).
fn epmd_port_of(base_dir: &Path) -> Result<u16> {
    let node = std::fs::read_to_string(base_dir.join("mkt-node.conf"))?;
    let port = node
        .lines()
        .find_map(|l| l.strip_prefix("epmd_port="))
        .context("epmd_port recorded")?;
    Ok(port.parse()?)
}

/// Logs in over AMQP 0-9-1 with PLAIN up to `Connection.Tune` (success) or a
/// close (refused). Hand-rolled: the workspace's AMQP client is async and this
/// crate stays dependency-free.
fn amqp_login(port: u16, user: &str, password: &str) -> Result<bool> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"AMQP\x00\x00\x09\x01")?;
    let start = read_method_frame(&mut stream)?.context("Connection.Start")?;
    ensure!(
        start.starts_with(&[0, 10, 0, 10]),
        "expected Connection.Start, got {start:?}"
    );

    let mut start_ok = vec![0, 10, 0, 11];
    start_ok.extend(0u32.to_be_bytes()); // empty client-properties table
    let short = |buf: &mut Vec<u8>, s: &str| {
        buf.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
        buf.extend(s.as_bytes());
    };
    short(&mut start_ok, "PLAIN");
    let response = format!("\0{user}\0{password}");
    start_ok.extend(u32::try_from(response.len())?.to_be_bytes());
    start_ok.extend(response.as_bytes());
    short(&mut start_ok, "en_US");
    let mut frame = vec![1, 0, 0];
    frame.extend(u32::try_from(start_ok.len())?.to_be_bytes());
    frame.extend(&start_ok);
    frame.push(0xCE);
    stream.write_all(&frame)?;

    Ok(
        matches!(read_method_frame(&mut stream), Ok(Some(method)) if method.starts_with(&[0, 10, 0, 30])),
    )
}

fn read_method_frame(stream: &mut TcpStream) -> Result<Option<Vec<u8>>> {
    let mut header = [0u8; 7];
    if stream.read_exact(&mut header).is_err() {
        return Ok(None); // closed on us
    }
    ensure!(
        header[0] == 1,
        "expected a method frame, got type {}",
        header[0]
    );
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]);
    let mut payload = vec![0u8; usize::try_from(size)? + 1];
    stream.read_exact(&mut payload)?;
    payload.pop(); // frame-end octet
    Ok(Some(payload))
}
