//! Real PostgreSQL and RabbitMQ servers run as local processes, for the dev
//! stack (`cargo xtask up`) and for tests (`cargo xtask test`, `mkt-test-support`).
//!
//! This crate owns: finding (and on Debian/Ubuntu as root, installing) the
//! server binaries, creating their data directories, starting them on
//! 127.0.0.1, waiting until they really serve, and stopping them so that no
//! process outlives its owner. It also carries the little process and
//! HTTP plumbing that this needs and that `xtask` reuses.
//!
//! It must never: listen on anything but loopback, touch data outside the
//! directory its caller gives it, use a system-wide server or its config
//! (`/etc/rabbitmq`, the Debian `main` cluster), or weaken durability (`fsync`
//! stays on). It is synchronous on purpose (plain `std::process`): async tests
//! call it through `spawn_blocking`.
//!
//! Every server is started in a process group of its own, so a Ctrl-C at the
//! terminal reaches only the owner, which then stops things in order. Because
//! signals aimed at the owner no longer reach the servers, each server also
//! gets a watchdog (a tiny `sh` loop) that stops it within seconds once the
//! owner process is gone, whether it panicked, was interrupted by a test
//! runner or was SIGKILLed. A server that still survives (say, the machine
//! slept through it) is stopped by the next `start` on the same directory,
//! or by `stop_leftover` (`cargo xtask down`).

pub mod cpu;
mod install;
mod postgres;
mod process;
mod rabbit;

pub use install::ensure_installed;
pub use postgres::PostgresServer;
pub use process::{
    free_port, http_request, log_tail, process_alive, random_hex, send_signal, terminate,
};
pub use rabbit::RabbitServer;
