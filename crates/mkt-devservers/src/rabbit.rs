//! A RabbitMQ node of our own, run as a child process next to its own epmd.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::process::{
    Watchdog, find_in_path, free_port, http_request, log_tail, process_alive, run_with_timeout,
    send_signal, tcp_accepts, terminate, wait_timeout,
};

/// Remembers the node name (its mnesia data is tied to it) and ports, so that
/// `restart` and `stop_leftover` can find the node again.
const NODE_FILE: &str = "mkt-node.conf";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Every Erlang node we start binds its distribution port to loopback only.
const LOOPBACK_DIST: &str = "-kernel inet_dist_use_interface {127,0,0,1}";

/// The scripts under RabbitMQ's own `bin` directory, not Debian's
/// `/usr/sbin/rabbitmq-server` wrapper, which switches to the `rabbitmq`
/// account and its system paths when run as root.
#[derive(Debug, Clone)]
pub(crate) struct RabbitBins {
    server: PathBuf,
    ctl: PathBuf,
    epmd: PathBuf,
}

impl RabbitBins {
    /// `MKT_RABBITMQ_BIN_DIR` or `/usr/lib/rabbitmq/bin`; epmd from `PATH` or
    /// `/usr/lib/erlang/bin`.
    pub(crate) fn locate() -> Result<Self> {
        let dir = std::env::var_os("MKT_RABBITMQ_BIN_DIR")
            .map_or_else(|| PathBuf::from("/usr/lib/rabbitmq/bin"), PathBuf::from);
        let server = dir.join("rabbitmq-server");
        let ctl = dir.join("rabbitmqctl");
        if !server.is_file() || !ctl.is_file() {
            bail!(
                "rabbitmq-server/rabbitmqctl not found in {} (set MKT_RABBITMQ_BIN_DIR)",
                dir.display()
            );
        }
        let epmd = find_in_path("epmd")
            .or_else(|| Some(PathBuf::from("/usr/lib/erlang/bin/epmd")).filter(|p| p.is_file()))
            .ok_or_else(|| anyhow!("epmd (Erlang) not found on PATH or in /usr/lib/erlang/bin"))?;
        Ok(Self { server, ctl, epmd })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    name: String,
    amqp_port: u16,
    mgmt_port: u16,
    epmd_port: u16,
    dist_port: u16,
}

impl Node {
    fn load(base_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(base_dir.join(NODE_FILE)).ok()?;
        let map: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let port = |key: &str| map.get(key)?.parse().ok();
        Some(Self {
            name: (*map.get("name")?).to_owned(),
            amqp_port: port("amqp_port")?,
            mgmt_port: port("mgmt_port")?,
            epmd_port: port("epmd_port")?,
            dist_port: port("dist_port")?,
        })
    }

    fn save(&self, base_dir: &Path) -> Result<()> {
        let Self {
            name,
            amqp_port,
            mgmt_port,
            epmd_port,
            dist_port,
        } = self;
        std::fs::write(
            base_dir.join(NODE_FILE),
            format!(
                "name={name}\namqp_port={amqp_port}\nmgmt_port={mgmt_port}\nepmd_port={epmd_port}\ndist_port={dist_port}\n"
            ),
        )?;
        Ok(())
    }
}

/// A RabbitMQ node with the management plugin, on 127.0.0.1, whose mnesia,
/// logs, config and Erlang cookie live under one directory.
///
/// Each node runs its own epmd (`epmd -port <p>`, a child we hold) and is
/// started with `-start_epmd false`: a node that launched epmd itself would
/// leave it running as a daemon we could not find, while our own child is
/// simply stopped with the node. With private epmd, distribution and CLI
/// ports, several nodes (the dev stack, parallel test runs) coexist.
///
/// The default `guest`/`guest` user works: RabbitMQ only restricts it to
/// loopback connections, and every listener here is loopback.
/// Dropping a running node stops it.
#[derive(Debug)]
pub struct RabbitServer {
    base_dir: PathBuf,
    bins: RabbitBins,
    node: Node,
    server: Option<Child>,
    epmd: Option<Child>,
    watchdog: Option<Watchdog>,
}

impl RabbitServer {
    /// Starts a node under `base_dir` with AMQP on 127.0.0.1:`amqp_port` and the
    /// management HTTP API on 127.0.0.1:`mgmt_port` (0 picks a free port for
    /// either), and waits (up to 60 s) until AMQP accepts TCP and
    /// `GET /api/overview` answers 200 to guest. A node left running under
    /// `base_dir` by an owner that was killed is stopped first.
    pub fn start(base_dir: &Path, amqp_port: u16, mgmt_port: u16) -> Result<Self> {
        let bins = RabbitBins::locate()?;
        std::fs::create_dir_all(base_dir.join("log"))
            .with_context(|| format!("creating {}", base_dir.display()))?;
        let base_dir = base_dir.canonicalize()?;
        let previous = Node::load(&base_dir);
        if let Some(previous) = &previous {
            stop_leftover_node(&bins, &base_dir, previous)?;
        }
        let mut taken = Vec::new();
        let mut port = |wanted: u16| -> Result<u16> {
            let port = if wanted != 0 {
                wanted
            } else {
                distinct_free_port(&taken)?
            };
            taken.push(port);
            Ok(port)
        };
        let (amqp_port, mgmt_port, epmd_port, dist_port) =
            (port(amqp_port)?, port(mgmt_port)?, port(0)?, port(0)?);
        let node = Node {
            // The mnesia directory is named after the node, so the name outlives port changes.
            name: previous.map_or_else(|| format!("mkt-{amqp_port}@localhost"), |p| p.name),
            amqp_port,
            mgmt_port,
            epmd_port,
            dist_port,
        };
        node.save(&base_dir)?;
        std::fs::write(
            base_dir.join("rabbitmq.conf"),
            format!(
                "# Written by mkt-devservers on every start: edits are overwritten.\n\
                 listeners.tcp.1 = 127.0.0.1:{amqp_port}\n\
                 management.tcp.ip = 127.0.0.1\n\
                 management.tcp.port = {mgmt_port}\n\
                 # The default; guest can still log in because every listener is loopback.\n\
                 loopback_users.guest = true\n"
            ),
        )?;
        std::fs::write(base_dir.join("enabled_plugins"), "[rabbitmq_management].\n")?;

        let mut server = Self {
            base_dir,
            bins,
            node,
            server: None,
            epmd: None,
            watchdog: None,
        };
        // On failure `server` is dropped here, which stops whatever did start.
        server.launch()?;
        Ok(server)
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.node.amqp_port)
    }

    /// `http://127.0.0.1:<mgmt_port>`; credentials guest/guest.
    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.node.mgmt_port)
    }

    /// The AMQP port on 127.0.0.1.
    pub fn amqp_port(&self) -> u16 {
        self.node.amqp_port
    }

    /// Calls the management HTTP API as guest, e.g.
    /// `management_request("GET", "/api/queues/%2f", None)`. Returns the
    /// status code and body.
    pub fn management_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String)> {
        http_request(
            method,
            &format!("{}{path}", self.management_url()),
            Some(("guest", "guest")),
            body,
        )
    }

    /// Stops the node completely and starts it again on the same ports with
    /// the same data: durable queues and persistent messages survive.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Stops the node: `rabbitmqctl stop`, then waits for the node's process to
    /// exit, killing its process group if that takes over 20 s (an error,
    /// since the shutdown was not clean); then stops its epmd.
    pub fn stop(&mut self) -> Result<()> {
        let mut result = Ok(());
        // Dropped on return, once the node and its epmd are gone.
        let _watchdog = self.watchdog.take();
        if let Some(mut server) = self.server.take() {
            if let Some(status) = server.try_wait()? {
                result = Err(anyhow!(
                    "rabbitmq had already exited ({status}); log tail:\n{}",
                    self.log_tails()
                ));
            } else {
                let ctl = run_with_timeout(self.ctl_command().arg("stop"), STOP_TIMEOUT);
                if wait_timeout(&mut server, STOP_TIMEOUT)?.is_none() {
                    terminate(&mut server, Duration::from_secs(5))?;
                    let ctl =
                        ctl.map_or_else(|e| format!("{e:#}"), |_| "which succeeded".to_owned());
                    result = Err(anyhow!(
                        "rabbitmq did not exit within {STOP_TIMEOUT:?} of `rabbitmqctl stop` ({ctl}); killed it"
                    ));
                }
            }
        }
        if let Some(mut epmd) = self.epmd.take() {
            terminate(&mut epmd, Duration::from_secs(5))?;
        }
        result
    }

    /// Stops a node still running under `base_dir` (its owner was killed
    /// before it could stop it), and that node's epmd. Returns whether there
    /// was anything to stop.
    pub fn stop_leftover(base_dir: &Path) -> Result<bool> {
        let Some(node) = Node::load(base_dir) else {
            return Ok(false);
        };
        stop_leftover_node(&RabbitBins::locate()?, &base_dir.canonicalize()?, &node)
    }

    fn launch(&mut self) -> Result<()> {
        let log_dir = self.base_dir.join("log");
        let open_log = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(log_dir.join(name))
        };

        let epmd_log = open_log("epmd.log")?;
        let epmd = Command::new(&self.bins.epmd)
            .args(["-address", "127.0.0.1", "-port"])
            .arg(self.node.epmd_port.to_string())
            .stdin(Stdio::null())
            .stdout(epmd_log.try_clone()?)
            .stderr(epmd_log)
            .process_group(0)
            .spawn()
            .context("spawning epmd")?;
        let epmd_pid = epmd.id();
        let epmd = self.epmd.insert(epmd);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !tcp_accepts(self.node.epmd_port) {
            if epmd.try_wait()?.is_some() || Instant::now() >= deadline {
                bail!(
                    "epmd did not come up on 127.0.0.1:{}: {}",
                    self.node.epmd_port,
                    log_tail(&log_dir.join("epmd.log"), 5)
                );
            }
            sleep(Duration::from_millis(50));
        }

        let out = open_log("stdout.log")?;
        let server = self
            .node_command(&self.bins.server)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .context("spawning rabbitmq-server")?;
        let groups = [server.id(), epmd_pid];
        self.server = Some(server);
        // The node first: it still needs its epmd while it shuts down.
        self.watchdog = Some(Watchdog::spawn("TERM", &groups)?);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let server = self.server.as_mut().context("node is running")?;
            if let Some(status) = server.try_wait()? {
                self.server = None;
                bail!(
                    "rabbitmq exited ({status}) while starting; log tail:\n{}",
                    self.log_tails()
                );
            }
            if amqp_answers(self.node.amqp_port)
                && matches!(
                    self.management_request("GET", "/api/overview", None),
                    Ok((200, _))
                )
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "rabbitmq not ready after {READY_TIMEOUT:?} (AMQP {}, management {}); log tail:\n{}",
                    self.node.amqp_port,
                    self.node.mgmt_port,
                    self.log_tails()
                );
            }
            sleep(Duration::from_millis(250));
        }
    }

    fn log_tails(&self) -> String {
        let log_dir = self.base_dir.join("log");
        format!(
            "{}\n{}",
            log_tail(&log_dir.join("stdout.log"), 10),
            log_tail(&log_dir.join(format!("{}.log", self.node.name)), 20)
        )
    }

    fn node_command(&self, program: &Path) -> Command {
        node_command(program, &self.base_dir, &self.node)
    }

    fn ctl_command(&self) -> Command {
        ctl_command(&self.bins, &self.base_dir, &self.node)
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        if (self.server.is_some() || self.epmd.is_some())
            && let Err(e) = self.stop()
        {
            eprintln!(
                "mkt-devservers: stopping rabbitmq in {}: {e:#}",
                self.base_dir.display()
            );
        }
    }
}

/// A command for a RabbitMQ script (server or CLI) that sees only this node's
/// settings: nothing from the caller's `RABBITMQ_*`/`ERL_*` variables, nor
/// from `/etc/rabbitmq`.
fn node_command(program: &Path, base_dir: &Path, node: &Node) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("RABBITMQ_") || k.starts_with("ERL_"))
        {
            cmd.env_remove(key);
        }
    }
    let path = |name: &str| base_dir.join(name);
    cmd.current_dir(base_dir)
        // The Erlang cookie goes to $HOME/.erlang.cookie.
        .env("HOME", base_dir)
        .env("RABBITMQ_NODENAME", &node.name)
        // Never created: it only keeps /etc/rabbitmq/rabbitmq-env.conf out.
        .env("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf"))
        .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
        .env("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config"))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
        .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
        .env("RABBITMQ_LOG_BASE", path("log"))
        .env("RABBITMQ_PID_FILE", path("rabbitmq.pid"))
        .env("RABBITMQ_DIST_PORT", node.dist_port.to_string())
        .env(
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            format!("-start_epmd false {LOOPBACK_DIST}"),
        )
        .env("ERL_EPMD_PORT", node.epmd_port.to_string())
        .env("ERL_EPMD_ADDRESS", "127.0.0.1");
    cmd
}

fn ctl_command(bins: &RabbitBins, base_dir: &Path, node: &Node) -> Command {
    let mut cmd = node_command(&bins.ctl, base_dir, node);
    // The CLI is an Erlang node too; its default port range (35672-35682) is
    // shared machine-wide, so give each call a port of its own.
    let port = free_port().map_or_else(|_| "0".to_owned(), |p| p.to_string());
    cmd.env("RABBITMQ_CTL_ERL_ARGS", LOOPBACK_DIST)
        .env("RABBITMQ_CTL_DIST_PORT_MIN", &port)
        .env("RABBITMQ_CTL_DIST_PORT_MAX", &port)
        .args(["-q", "-n", &node.name]);
    cmd
}

fn distinct_free_port(taken: &[u16]) -> Result<u16> {
    for _ in 0..20 {
        let port = free_port()?;
        if !taken.contains(&port) {
            return Ok(port);
        }
    }
    bail!("could not find a free port distinct from {taken:?}")
}

fn stop_leftover_node(bins: &RabbitBins, base_dir: &Path, node: &Node) -> Result<bool> {
    let mut stopped = false;
    let pid = std::fs::read_to_string(base_dir.join("rabbitmq.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    // A stale pid may now belong to anything; only a VM whose $HOME is this directory is ours.
    let ours = |pid: u32| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let needle = [
            b"-home\0".as_slice(),
            base_dir.as_os_str().as_encoded_bytes(),
            b"\0",
        ]
        .concat();
        process_alive(pid) && cmdline.windows(needle.len()).any(|w| w == needle)
    };
    if let Some(pid) = pid.filter(|&pid| ours(pid)) {
        eprintln!(
            "mkt-devservers: stopping a leftover rabbitmq node {} (pid {pid})",
            node.name
        );
        stopped = true;
        if tcp_accepts(node.epmd_port)
            && let Err(e) =
                run_with_timeout(ctl_command(bins, base_dir, node).arg("stop"), STOP_TIMEOUT)
        {
            eprintln!("mkt-devservers: rabbitmqctl stop: {e:#}");
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while ours(pid) && Instant::now() < deadline {
            sleep(Duration::from_millis(100));
        }
        if ours(pid) {
            // Without its epmd the CLI cannot reach the node; the VM shuts down cleanly on SIGTERM too.
            send_signal(pid, "TERM", false)?;
            let deadline = Instant::now() + STOP_TIMEOUT;
            while ours(pid) && Instant::now() < deadline {
                sleep(Duration::from_millis(100));
            }
            if ours(pid) {
                send_signal(pid, "KILL", false)?;
            }
        }
    }
    if tcp_accepts(node.epmd_port) {
        // Refused by epmd while a node is still registered, so this only ever ends an idle leftover.
        let killed = Command::new(&bins.epmd)
            // epmd reads its options in order: the port must come before the command.
            .arg("-port")
            .arg(node.epmd_port.to_string())
            .arg("-kill")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success();
        stopped |= killed;
    }
    Ok(stopped)
}

/// Whether the AMQP port is served by AMQP: a client's protocol header gets a method
/// frame (type 1) back. Accepting TCP is not enough: while the node boots, another
/// server that took the same port (ports are picked free, then bound later) would pass,
/// and the node would then die on `eaddrinuse` under the tests' feet.
fn amqp_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut frame_type = [0u8; 1];
    stream.write_all(b"AMQP\x00\x00\x09\x01").is_ok()
        && stream.read_exact(&mut frame_type).is_ok()
        && frame_type[0] == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_served_by_something_else_is_not_taken_for_amqp() {
        use std::io::{Read, Write};
        // What PostgreSQL does with bytes that are not a startup packet: an error, 'E'.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut header = [0u8; 8];
            let _ = stream.read_exact(&mut header);
            let _ = stream.write_all(b"E");
            header
        });
        assert!(!amqp_answers(port));
        assert_eq!(&server.join().expect("server"), b"AMQP\x00\x00\x09\x01");
        // Nothing listening at all.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("addr")
            .port();
        assert!(!amqp_answers(closed));
    }
}
