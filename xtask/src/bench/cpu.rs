//! CPU accounting from `/proc`: per process group (gateway, each service, PostgreSQL,
//! RabbitMQ, pgbench, the bench itself), sampled around every cell.

/// Process groups whose CPU time is reported.
pub(super) const GROUPS: [&str; 8] = [
    "gateway",
    "ingestion",
    "segmentation",
    "other services",
    "postgres",
    "rabbitmq",
    "load gen",
    "pgbench",
];

/// Cumulative CPU ticks: the whole machine, and per group.
#[derive(Clone)]
pub(super) struct CpuSample {
    pub(super) total: u64,
    pub(super) busy: u64,
    pub(super) groups: [u64; GROUPS.len()],
}

pub(super) fn service_group(comm: &str) -> Option<usize> {
    match comm {
        "gateway" => Some(0),
        "ingestion" => Some(1),
        "segmentation" => Some(2),
        "campaign" | "webhook" | "cdp-analytics" => Some(3),
        _ => None,
    }
}

/// The stack's own PostgreSQL postmaster and RabbitMQ node: their process trees are
/// counted, while other clusters on the machine (a test run's) land in `other`.
#[derive(Clone, Copy)]
pub(super) struct Roots {
    pub(super) postgres: Option<u32>,
    pub(super) rabbit: Option<u32>,
    pub(super) me: u32,
}

impl Roots {
    pub(super) fn find() -> Self {
        let dev = crate::workspace_root().join(".dev");
        let postgres = std::fs::read_to_string(dev.join("pg").join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse().ok());
        let marker = dev.join("rabbitmq").display().to_string().into_bytes();
        let rabbit = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                (comm.trim() == "beam.smp" && cmdline.windows(marker.len()).any(|w| w == marker))
                    .then_some(pid)
            });
        Self {
            postgres,
            rabbit,
            me: std::process::id(),
        }
    }
}

impl CpuSample {
    /// Reads `/proc/stat` and every `/proc/<pid>/stat`. Exited processes still count:
    /// PostgreSQL's backends through the postmaster's reaped-children time, pgbench
    /// through ours.
    pub(super) fn take(roots: &Roots) -> Self {
        let (busy, total) = mkt_devservers::cpu::machine_ticks();
        let all = mkt_devservers::cpu::processes();
        let parents: std::collections::HashMap<u32, u32> =
            all.iter().map(|p| (p.pid, p.ppid)).collect();
        let under = |pid: u32, root: Option<u32>| {
            root.is_some_and(|root| mkt_devservers::cpu::descends_from(&parents, pid, root, 6))
        };
        let mut groups = [0; GROUPS.len()];
        for p in &all {
            if p.pid == roots.me {
                groups[6] += p.own;
                groups[7] += p.reaped;
            } else if under(p.pid, roots.postgres) {
                groups[4] += p.own
                    + if Some(p.pid) == roots.postgres {
                        p.reaped
                    } else {
                        0
                    };
            } else if under(p.pid, roots.rabbit) {
                groups[5] += p.own
                    + if Some(p.pid) == roots.rabbit {
                        p.reaped
                    } else {
                        0
                    };
            } else if let Some(group) = service_group(&p.comm) {
                groups[group] += p.own;
            }
        }
        Self {
            total,
            busy,
            groups,
        }
    }
}

/// CPU used during a cell, in cores (1.0 = one core busy all the time).
#[derive(Clone)]
pub(super) struct CpuUse {
    pub(super) busy: f64,
    pub(super) groups: [f64; GROUPS.len()],
}

impl CpuUse {
    pub(super) fn between(before: &CpuSample, after: &CpuSample, cpus: f64) -> Self {
        let total = after.total.saturating_sub(before.total).max(1) as f64;
        let cores = |ticks: u64| ticks as f64 / total * cpus;
        let mut groups = [0.0; GROUPS.len()];
        for (i, g) in groups.iter_mut().enumerate() {
            *g = cores(after.groups[i].saturating_sub(before.groups[i]));
        }
        Self {
            busy: cores(after.busy.saturating_sub(before.busy)),
            groups,
        }
    }

    /// Busy time not in any group (the kernel's softirqs, cargo, a compiler...).
    pub(super) fn other(&self) -> f64 {
        (self.busy - self.groups.iter().sum::<f64>()).max(0.0)
    }
}
