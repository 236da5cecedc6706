//! Turning Ctrl-C / SIGTERM / SIGHUP into a flag that long-running commands poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};
use tokio::signal::unix::{SignalKind, signal};

/// Set once a stop signal arrived. Polling a flag keeps the commands plain
/// blocking code; the signals themselves need tokio, since std cannot catch
/// them and `unsafe` is forbidden.
#[derive(Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Catches SIGINT, SIGTERM and SIGHUP from now on: they no longer kill
    /// the process, they set the flag.
    pub fn install() -> Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registered before returning, so a signal arriving right after cannot kill us.
        let (mut int, mut term, mut hup) = runtime.block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
            ))
        })?;
        let set = Arc::clone(&flag);
        std::thread::spawn(move || {
            runtime.block_on(async move {
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                        _ = hup.recv() => {}
                    }
                    if !set.swap(true, Ordering::SeqCst) {
                        eprintln!("\nstopping (this can take ~30 s)...");
                    }
                }
            });
        });
        Ok(Self(flag))
    }

    /// Whether a stop signal arrived.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Fails with "interrupted" once a stop signal arrived.
    pub fn check(&self) -> Result<()> {
        if self.requested() {
            bail!("interrupted");
        }
        Ok(())
    }
}
