//! CPU accounting from Linux's `/proc`, for the benchmarks: how busy the machine was,
//! and how much of that was the bench itself (with the servers it started) rather than
//! other work that would depress its figures. Figures are clock ticks; ratios of them
//! over the machine's total ticks give cores.

use std::collections::HashMap;

/// One process's CPU ticks, read from `/proc/<pid>/stat`.
#[derive(Debug, Clone)]
pub struct ProcessTicks {
    /// Its id.
    pub pid: u32,
    /// Its parent's id.
    pub ppid: u32,
    /// Its command name (`comm`).
    pub comm: String,
    /// utime + stime.
    pub own: u64,
    /// cutime + cstime: its children that exited and were reaped.
    pub reaped: u64,
}

/// Every process's ticks. Processes come and go while `/proc` is read: a vanished one
/// is simply skipped.
pub fn processes() -> Vec<ProcessTicks> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (text.find('('), text.rfind(')')) else {
            continue;
        };
        // After the name: state, ppid, ... utime (field 14), stime, cutime, cstime.
        let fields: Vec<u64> = text[close + 1..]
            .split_whitespace()
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        let (Some(ppid), Some(times)) = (fields.get(1), fields.get(11..15)) else {
            continue;
        };
        all.push(ProcessTicks {
            pid,
            ppid: *ppid as u32,
            comm: text[open + 1..close].to_owned(),
            own: times[0] + times[1],
            reaped: times[2] + times[3],
        });
    }
    all
}

/// The whole machine's ticks since boot: `(busy, total)`, from `/proc/stat`.
pub fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    let total: u64 = cpu.iter().sum();
    let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// Whether `pid` is `root` or descends from it (within `depth` generations).
pub fn descends_from(parents: &HashMap<u32, u32>, mut pid: u32, root: u32, depth: usize) -> bool {
    for _ in 0..depth {
        if pid == root {
            return true;
        }
        match parents.get(&pid) {
            Some(&parent) if parent > 1 => pid = parent,
            _ => return false,
        }
    }
    false
}

/// The machine's ticks and those of this process's tree (the bench and the servers it
/// started, their exited children included), at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    busy: u64,
    total: u64,
    ours: u64,
}

impl CpuSample {
    /// Reads `/proc` now.
    pub fn take() -> Self {
        let (busy, total) = machine_ticks();
        let all = processes();
        let parents: HashMap<u32, u32> = all.iter().map(|p| (p.pid, p.ppid)).collect();
        let me = std::process::id();
        let ours = all
            .iter()
            .filter(|p| descends_from(&parents, p.pid, me, 8))
            // Our own reaped children, and each direct child's (a postmaster reaps
            // its backends), are ours; deeper ones are already inside those.
            .map(|p| {
                p.own
                    + if p.pid == me || p.ppid == me {
                        p.reaped
                    } else {
                        0
                    }
            })
            .sum();
        Self { busy, total, ours }
    }

    /// Cores kept busy by anything outside this process's tree between `earlier` and
    /// `self` (1.0 = one core all the time).
    pub fn others_since(&self, earlier: &CpuSample) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let total = self.total.saturating_sub(earlier.total).max(1) as f64;
        let others = self
            .busy
            .saturating_sub(earlier.busy)
            .saturating_sub(self.ours.saturating_sub(earlier.ours));
        others as f64 / total * cores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_listed_with_its_parent_and_burns_ticks() {
        let before = processes();
        let me = std::process::id();
        let mine = before.iter().find(|p| p.pid == me).expect("listed");
        assert_eq!(mine.ppid, std::os::unix::process::parent_id());
        // Spin until the kernel has charged us another tick (on a loaded machine a
        // fixed spin might get no CPU at all), for at most 30 s of wall time.
        let own = |all: &[ProcessTicks]| all.iter().find(|p| p.pid == me).map(|p| p.own);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut later = own(&before);
        while later <= Some(mine.own) && start.elapsed() < std::time::Duration::from_secs(30) {
            for _ in 0..1_000_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            later = own(&processes());
        }
        std::hint::black_box(x);
        assert!(later > Some(mine.own), "{} -> {later:?}", mine.own);
        let after = processes();
        let (busy, total) = machine_ticks();
        assert!(busy > 0 && busy <= total);
        let parents: HashMap<u32, u32> = after.iter().map(|p| (p.pid, p.ppid)).collect();
        assert!(descends_from(&parents, me, me, 1));
        assert!(!descends_from(&parents, mine.ppid, me, 8));
    }
}
