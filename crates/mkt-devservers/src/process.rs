//! Process, file and HTTP plumbing shared by the servers and by `xtask`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// Picks a free TCP port on 127.0.0.1 by binding port 0 and releasing it.
///
/// Another process may grab the port before the caller binds it; callers
/// retry or fail loudly, which is acceptable for dev and test servers.
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Sends `signal` (a name such as `TERM`, `KILL`, or `0` to probe) to `pid`,
/// or with `group` to the process group whose id is `pid`.
///
/// Goes through the shell's `kill` builtin: the workspace forbids `unsafe`
/// (so no libc), and the builtin exists even where procps is not installed.
pub fn send_signal(pid: u32, signal: &str, group: bool) -> Result<()> {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    let output = Command::new("sh")
        .args(["-c", r#"kill -s "$0" -- "$1""#, signal, &target])
        .stdin(Stdio::null())
        .output()
        .context("running sh to send a signal")?;
    if !output.status.success() {
        bail!(
            "kill -s {signal} {target}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Whether a process with this pid exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name, which may itself contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Stops a child that was spawned as the leader of its own process group
/// (`CommandExt::process_group(0)`): SIGTERM to the group, then SIGKILL to the
/// group if it has not exited within `grace`. Signalling the group rather than
/// the pid also reaches grandchildren (a wrapper script's server, helpers).
pub fn terminate(child: &mut Child, grace: Duration) -> Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        // The leader is gone but helpers may linger in its group; a failed kill just means none do.
        let _ = send_signal(child.id(), "KILL", true);
        return Ok(status);
    }
    if send_signal(child.id(), "TERM", true).is_err() {
        // Not a group leader after all: fall back to the process itself.
        let _ = send_signal(child.id(), "TERM", false);
    }
    let status = match wait_timeout(child, grace)? {
        Some(status) => status,
        None => {
            let _ = send_signal(child.id(), "KILL", true);
            let _ = child.kill();
            child.wait()?
        }
    };
    let _ = send_signal(child.id(), "KILL", true);
    Ok(status)
}

/// Stops our servers if their owner dies without stopping them (SIGKILL, a
/// test runner killing a test, a Ctrl-C the owner does not handle).
///
/// The servers run in process groups of their own, so signals aimed at the
/// owner do not reach them; this small `sh` loop, in a group of its own too,
/// polls the owner's pid and then signals each group in turn, waiting up to
/// 20 s for it to go before SIGKILL. Dropping the watchdog (on a normal stop)
/// ends it, so it can never signal a group id that was reused later.
#[derive(Debug)]
pub(crate) struct Watchdog(Child);

const WATCHDOG_SCRIPT: &str = r#"owner=$1; sig=$2; shift 2
while kill -0 "$owner" 2>/dev/null; do sleep 1; done
for g in "$@"; do
  kill -s "$sig" -- "-$g" 2>/dev/null || continue
  n=0
  while kill -0 -- "-$g" 2>/dev/null && [ $n -lt 20 ]; do sleep 1; n=$((n+1)); done
  kill -s KILL -- "-$g" 2>/dev/null
done"#;

impl Watchdog {
    /// Watches this process; on its death sends `signal` to each of `groups`, in order.
    pub(crate) fn spawn(signal: &str, groups: &[u32]) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let child = Command::new("sh")
            .args(["-c", WATCHDOG_SCRIPT, "mkt-devservers-watchdog"])
            .arg(std::process::id().to_string())
            .arg(signal)
            .args(groups.iter().map(u32::to_string))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("spawning the watchdog shell")?;
        Ok(Self(child))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // The whole group, so its current `sleep` goes too.
        let _ = send_signal(self.0.id(), "KILL", true);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` to exit for at most `timeout`.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` to completion, failing with its output when it exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Like [`run`], but kills the command if it has not finished within `timeout`
/// (CLI tools that talk to a wedged server can hang forever).
pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = match wait_timeout(&mut child, timeout)? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            child.wait()?;
            bail!("{cmd:?} did not finish within {timeout:?}; killed it");
        }
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    if !status.success() {
        bail!(
            "{cmd:?} failed ({status}):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// The last `lines` lines of a (log) file, or a note saying why there are none.
pub fn log_tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no log at {}: {e})", path.display()),
    }
}

/// `bytes` random bytes from the kernel, hex-encoded (so twice as many characters).
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A minimal HTTP/1.0 client for loopback dev servers: `url` must be
/// `http://host:port/path`. Returns the status code and the body.
///
/// HTTP/1.0 so that servers never answer chunked and always close, which
/// keeps this a dozen lines instead of a dependency.
pub fn http_request(
    method: &str,
    url: &str,
    basic_auth: Option<(&str, &str)>,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("{url}: host must be ip:port"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;

    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: */*\r\n");
    if let Some((user, password)) = basic_auth {
        request.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(format!("{user}:{password}").as_bytes())
        ));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;

    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .with_context(|| format!("reading the response of {method} {url}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("{method} {url}: malformed response: {head:?}"))?;
    Ok((status, body.to_owned()))
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// The first `name` found on `PATH`.
pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub(crate) fn tcp_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("guest:guest", "Z3Vlc3Q6Z3Vlc3Q="),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn random_hex_has_requested_length_and_varies() -> Result<()> {
        let a = random_hex(16)?;
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(16)?);
        Ok(())
    }

    #[test]
    fn our_own_process_is_alive_and_a_reaped_child_is_not() -> Result<()> {
        assert!(process_alive(std::process::id()));
        let mut child = Command::new("true").spawn()?;
        let pid = child.id();
        child.wait()?;
        assert!(!process_alive(pid));
        Ok(())
    }

    #[test]
    fn terminate_stops_a_process_group_including_grandchildren() -> Result<()> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("sh")
            .args(["-c", "sleep 60 & echo $! ; wait"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let mut line = String::new();
        let mut stdout = child.stdout.take().context("stdout is piped")?;
        let mut byte = [0u8; 1];
        while stdout.read(&mut byte)? == 1 && byte[0] != b'\n' {
            line.push(char::from(byte[0]));
        }
        let grandchild: u32 = line.trim().parse()?;
        assert!(process_alive(grandchild));
        terminate(&mut child, Duration::from_secs(5))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        // The grandchild is reparented to init, which reaps it on its own schedule.
        while process_alive(grandchild) && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        assert!(!process_alive(grandchild));
        Ok(())
    }
}
