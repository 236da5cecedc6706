//! Results: one `Cell` per measured run, and the Markdown report printed at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use super::cpu::{CpuUse, GROUPS};
use super::http::Summary;
use super::{BUSY_ELSEWHERE, Bench, TARGET_BATCH_ROWS, TARGET_SINGLE_P99_MS, TARGET_SINGLE_RPS};

pub(super) struct Cell {
    pub(super) section: &'static str,
    pub(super) concurrency: usize,
    pub(super) what: String,
    /// Requests or transactions per second.
    pub(super) per_second: f64,
    pub(super) unit: &'static str,
    /// Rows per second (batches).
    pub(super) rows_per_second: f64,
    pub(super) p50_ms: f64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    pub(super) errors: u64,
    pub(super) error_kinds: String,
    /// How long the relay and the consumer needed after the cell (API cells).
    pub(super) drained: Option<Duration>,
    /// pgbench's own summary line, as a cross-check.
    pub(super) note: String,
    pub(super) cpu: CpuUse,
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
pub(super) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

impl Bench {
    pub(super) fn print(&self) {
        let o = &self.options;
        println!("## Ingestion benchmark\n");
        println!(
            "Targets (issue): single POST >= {} req/s durable with p99 < {} ms; batch >= {} rows/s.",
            thousands(TARGET_SINGLE_RPS),
            TARGET_SINGLE_P99_MS,
            thousands(TARGET_BATCH_ROWS)
        );
        println!(
            "Each cell: {} s measured ({} s for batches) after {} s warm-up. Throughput counts each request by \
             the share of its duration inside the window. Latency = whole request (HTTP: sending the body to \
             reading the whole response) or transaction (pgbench), successful ones only; errors counted apart.\n",
            o.seconds, o.batch_seconds, o.warmup
        );
        for (section, title) in [
            (
                "single",
                "Single-row upserts: one request / one transaction per customer",
            ),
            ("batch", "Batches"),
        ] {
            let cells: Vec<&Cell> = self.cells.iter().filter(|c| c.section == section).collect();
            if cells.is_empty() {
                continue;
            }
            println!("### {title}\n");
            println!(
                "| c | what | throughput | rows/s | p50 ms | p99 ms | max ms | errors | backlog drained in |"
            );
            println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
            for cell in &cells {
                println!(
                    "| {} | {} | {} {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
                    cell.concurrency,
                    cell.what,
                    rate(cell.per_second),
                    cell.unit,
                    thousands(cell.rows_per_second),
                    cell.p50_ms,
                    cell.p99_ms,
                    cell.max_ms,
                    if cell.error_kinds.is_empty() {
                        cell.errors.to_string()
                    } else {
                        format!("{} ({})", cell.errors, cell.error_kinds)
                    },
                    cell.drained
                        .map_or_else(|| "-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
                );
            }
            let api = cells
                .iter()
                .filter(|c| c.what.starts_with("API") && c.what.contains("via gateway"));
            if section == "single" {
                if let Some(best) = api.max_by(|a, b| a.per_second.total_cmp(&b.per_second)) {
                    println!(
                        "\nBest API single POST via gateway: {} req/s at c={} (p99 {:.1} ms) = {:.1}% of the {} req/s target{}.",
                        thousands(best.per_second),
                        best.concurrency,
                        best.p99_ms,
                        100.0 * best.per_second / TARGET_SINGLE_RPS,
                        thousands(TARGET_SINGLE_RPS),
                        if best.p99_ms < TARGET_SINGLE_P99_MS {
                            ", p99 within 20 ms"
                        } else {
                            ", p99 over 20 ms"
                        }
                    );
                }
            } else if let Some(best) =
                api.max_by(|a, b| a.rows_per_second.total_cmp(&b.rows_per_second))
            {
                println!(
                    "\nBest API batch via gateway: {} rows/s at c={} = {:.1}% of the {} rows/s target.",
                    thousands(best.rows_per_second),
                    best.concurrency,
                    100.0 * best.rows_per_second / TARGET_BATCH_ROWS,
                    thousands(TARGET_BATCH_ROWS)
                );
            }
            println!();
        }
        if let Some(idle) = self.cells.iter().find(|c| c.section == "idle")
            && idle.cpu.other() > BUSY_ELSEWHERE
        {
            println!("**{}**\n", busy_warning(idle.cpu.other(), self.cpus));
        }
        println!(
            "### CPU during each cell (cores busy, of {} cores; from /proc)\n",
            self.cpus
        );
        println!(
            "| c | what | busy | {} | other | CPU ms per row |",
            GROUPS.join(" | ")
        );
        println!("|---:|---|---:|{}---:|---:|", "---:|".repeat(GROUPS.len()));
        for cell in &self.cells {
            let groups: Vec<String> = cell.cpu.groups.iter().map(|g| format!("{g:.2}")).collect();
            // CPU time of everything measured (all but `other`) per row written.
            let per_row = if cell.rows_per_second > 0.0 {
                format!(
                    "{:.2}",
                    (cell.cpu.busy - cell.cpu.other()) * 1000.0 / cell.rows_per_second
                )
            } else {
                "-".to_owned()
            };
            println!(
                "| {} | {} | {:.2} | {} | {:.2} | {per_row} |",
                if cell.concurrency == 0 {
                    "-".to_owned()
                } else {
                    cell.concurrency.to_string()
                },
                cell.what,
                cell.cpu.busy,
                groups.join(" | "),
                cell.cpu.other()
            );
        }
        println!(
            "\nAPI cells: measured window only. pgbench cells: the whole pgbench run including warm-up \
             and connection set-up (its CPU is only known once it exits). `other` = busy minus the groups. \
             CPU ms per row = (busy - other) x 1000 / rows per second."
        );
        let notes: Vec<&Cell> = self.cells.iter().filter(|c| !c.note.is_empty()).collect();
        if !notes.is_empty() {
            println!("\n### Raw\n");
            for cell in notes {
                println!("- c={} {}: {}", cell.concurrency, cell.what, cell.note);
            }
        }
    }
}

impl Cell {
    #[allow(clippy::too_many_arguments, reason = "a plain constructor")]
    pub(super) fn new(
        section: &'static str,
        concurrency: usize,
        what: &str,
        unit: &'static str,
        summary: Summary,
        drained: Option<Duration>,
        note: String,
        cpu: CpuUse,
    ) -> Self {
        Cell {
            section,
            concurrency,
            what: what.to_owned(),
            per_second: summary.per_second,
            unit,
            rows_per_second: summary.rows_per_second,
            p50_ms: summary.p50_ms,
            p99_ms: summary.p99_ms,
            max_ms: summary.max_ms,
            errors: summary.errors.values().sum(),
            error_kinds: summary
                .errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            drained,
            note,
            cpu,
        }
    }

    pub(super) fn brief(&self) -> String {
        let mut text = format!(
            "{} {}, p50 {:.1} ms, p99 {:.1} ms, {} errors",
            rate(self.per_second),
            self.unit,
            self.p50_ms,
            self.p99_ms,
            self.errors
        );
        if self.section == "batch" {
            text.push_str(&format!(", {} rows/s", thousands(self.rows_per_second)));
        }
        if let Some(drained) = self.drained {
            text.push_str(&format!(
                ", backlog drained in {:.1} s",
                drained.as_secs_f64()
            ));
        }
        text
    }
}

pub(super) fn busy_warning(other: f64, cpus: f64) -> String {
    format!(
        "WARNING: with the stack idle, {other:.2} of {cpus} cores were busy outside it (builds, tests...): \
         every figure below is depressed by that"
    )
}

/// A rate: decimals while it is small (a batch cell may do 0.4 req/s).
pub(super) fn rate(value: f64) -> String {
    if value.is_finite() && value.abs() < 10.0 {
        format!("{value:.2}")
    } else {
        thousands(value)
    }
}

/// 12345.6 -> "12,346".
pub(super) fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if value < 0.0 { format!("-{out}") } else { out }
}

/// Which build of the services is running (a debug build is several times slower).
pub(super) fn binaries() -> String {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim().to_owned();
        if matches!(comm.as_str(), "gateway" | "ingestion" | "segmentation")
            && let Ok(exe) = std::fs::read_link(entry.path().join("exe"))
        {
            found.insert(comm, exe.display().to_string());
        }
    }
    if found.is_empty() {
        return "not found in /proc".to_owned();
    }
    let debug = found.values().any(|p| p.contains("/debug/"));
    format!(
        "{}{}",
        found
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
        if debug {
            " (DEBUG builds: unoptimised, see docs/benchmarks.md)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).map(|n| n * 1000).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 100.0), 100.0);
        assert_eq!(percentile(&[7000], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(f64::NAN), "-");
    }
}
