//! The peer's cells: `pgbench` against a scratch copy of the customers and outbox
//! tables, on the same PostgreSQL the stack uses.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::cpu::{CpuSample, CpuUse};
use super::http::{Sample, summarize};
use super::report::Cell;
use super::{Bench, TENANT};

impl Bench {
    /// The scratch schema: the customers table's shape and the outbox's, without the
    /// services' roles; dropped at the end.
    pub(super) fn create_scratch(&self) -> Result<()> {
        self.sql(
            "DROP SCHEMA IF EXISTS bench CASCADE; CREATE SCHEMA bench;
             CREATE TABLE bench.bench_customers (
                 tenant_id text NOT NULL, id uuid NOT NULL, external_id text, email text NOT NULL,
                 name text NOT NULL, first_name text, last_name text, phone text, street text,
                 city text, state text, zip_code text, country text, loyalty_tier text,
                 attributes jsonb NOT NULL DEFAULT '{}', consent_email boolean NOT NULL DEFAULT false,
                 consent_sms boolean NOT NULL DEFAULT false, consent_push boolean NOT NULL DEFAULT false,
                 created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
                 version bigint NOT NULL DEFAULT 1, erased_at timestamptz,
                 PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, email));
             CREATE UNIQUE INDEX ON bench.bench_customers (tenant_id, external_id) WHERE external_id IS NOT NULL;
             CREATE TABLE bench.bench_outbox (
                 id bigserial PRIMARY KEY, message_id uuid NOT NULL UNIQUE, tenant_id text NOT NULL,
                 aggregate_id text NOT NULL, routing_key text NOT NULL, payload bytea NOT NULL,
                 headers jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(),
                 published_at timestamptz, attempts integer NOT NULL DEFAULT 0, last_error text,
                 next_attempt_at timestamptz);
             CREATE INDEX ON bench.bench_outbox (aggregate_id, routing_key, id) WHERE published_at IS NULL;
             CREATE INDEX ON bench.bench_outbox (id) WHERE published_at IS NULL;
             CREATE INDEX ON bench.bench_outbox (published_at) WHERE published_at IS NOT NULL;",
        )?;
        let columns = "tenant_id, id, external_id, email, name, first_name, last_name, phone, street, city, \
                       state, zip_code, country, loyalty_tier, attributes, consent_email, consent_sms, consent_push, \
                       created_at, updated_at, version";
        // The service's ON CONFLICT clause, column for column.
        let update = "ON CONFLICT (tenant_id, email) DO UPDATE SET \
                      external_id = COALESCE(EXCLUDED.external_id, c.external_id), name = EXCLUDED.name, \
                      first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, phone = EXCLUDED.phone, \
                      street = EXCLUDED.street, city = EXCLUDED.city, state = EXCLUDED.state, \
                      zip_code = EXCLUDED.zip_code, country = EXCLUDED.country, loyalty_tier = EXCLUDED.loyalty_tier, \
                      attributes = EXCLUDED.attributes, consent_email = EXCLUDED.consent_email, \
                      consent_sms = EXCLUDED.consent_sms, consent_push = EXCLUDED.consent_push, \
                      updated_at = EXCLUDED.updated_at, version = c.version + 1";
        // A protobuf customer.upserted.v1 is about 300 bytes.
        let outbox = "INSERT INTO bench.bench_outbox (message_id, tenant_id, aggregate_id, routing_key, payload, headers)";
        let payload = "decode(repeat('ab', 300), 'hex'), '{\"traceparent\": \"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\"}'";
        let row = |email: &str| {
            format!(
                "('{TENANT}', gen_random_uuid(), 'pg-' || {email}, {email}, 'Bench Customer', 'Bench', 'Customer', \
                 '(212) 555-0100', '1 Main St', 'New York', 'NY', '10001', 'USA', 'bronze', \
                 '{{\"acquisition_channel\": \"bench\"}}', true, false, true, now(), now(), 1)"
            )
        };
        let single_row = row("(:n::text || '@pg.example')");
        let upsert = format!(
            "INSERT INTO bench.bench_customers AS c ({columns})\nVALUES {single_row}\n{update}"
        );
        self.script(
            "upsert.sql",
            &format!("\\set n random(1, 2000000000)\n{upsert}\nRETURNING id;\n"),
        )?;
        self.script(
            "upsert_outbox.sql",
            &format!(
                "\\set n random(1, 2000000000)\nBEGIN;\n{upsert}\nRETURNING id \\gset\n\
                 {outbox} VALUES (gen_random_uuid(), '{TENANT}', :id, 'customer.upserted.v1', {payload});\nCOMMIT;\n"
            ),
        )?;
        // pgbench allows 255 parameters per prepared statement, so the 500 rows are
        // literal VALUES joined with the one random number.
        let values: Vec<String> = (1..=self.options.pg_batch_rows)
            .map(|k| {
                format!(
                    "({k}, 'Bench Customer {k}', 'Customer {k}', '{} Main St')",
                    k * 7 % 9999
                )
            })
            .collect();
        let select = format!(
            "INSERT INTO bench.bench_customers AS c ({columns})\n\
             SELECT '{TENANT}', gen_random_uuid(), 'pgx-' || :n::text || '-' || r.k, \
             :n::text || '-' || r.k || '@pg.example', r.name, 'Bench', r.last_name, '(212) 555-0100', r.street, \
             'New York', 'NY', '10001', 'USA', 'bronze', '{{\"acquisition_channel\": \"bench\"}}', true, false, true, \
             now(), now(), 1\nFROM (VALUES\n{}\n) AS r(k, name, last_name, street)\n{update}",
            values.join(",\n")
        );
        self.script(
            "batch.sql",
            &format!("\\set n random(1, 2000000000)\n{select};\n"),
        )?;
        self.script(
            "batch_outbox.sql",
            &format!(
                "\\set n random(1, 2000000000)\nWITH ins AS (\n{select}\nRETURNING id)\n\
                 {outbox} SELECT gen_random_uuid(), '{TENANT}', ins.id::text, 'customer.upserted.v1', {payload} FROM ins;\n"
            ),
        )?;
        Ok(())
    }

    pub(super) fn script(&self, name: &str, text: &str) -> Result<()> {
        std::fs::write(self.scratch.join(name), text).with_context(|| format!("writing {name}"))
    }
    #[allow(
        clippy::too_many_arguments,
        reason = "a cell is its section, load, script and duration"
    )]
    pub(super) fn pgbench_cell(
        &mut self,
        section: &'static str,
        c: usize,
        what: &str,
        script: &str,
        rows: usize,
        seconds: u64,
    ) -> Result<()> {
        self.stop.check()?;
        let Some(pgbench) = self.pgbench.clone() else {
            return Ok(());
        };
        eprint!("c={c:<3} {what}: ");
        let prefix = format!("cell{}", self.cells.len());
        let threads = c.min(self.cpus as usize).max(1);
        let total = self.options.warmup + seconds;
        let origin = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros() as u64;
        let before = CpuSample::take(&self.roots);
        let output = Command::new(&pgbench)
            .current_dir(&self.scratch)
            .args(["-n", "-M", "prepared", "--log", "--log-prefix", &prefix])
            .args([
                "-c",
                &c.to_string(),
                "-j",
                &threads.to_string(),
                "-T",
                &total.to_string(),
            ])
            .arg("-f")
            .arg(self.scratch.join(script))
            .arg(&self.database_url)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", pgbench.display()))?;
        // pgbench's backends exit as it does. Sampled while the postmaster reaps them,
        // a backend can be read neither alive nor in the postmaster's reaped-children
        // time, and its CPU lands in `other`: give them a moment.
        std::thread::sleep(Duration::from_millis(300));
        let cpu = CpuUse::between(&before, &CpuSample::take(&self.roots), self.cpus);
        self.stop.check()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("pgbench failed ({}):\n{stderr}\n{stdout}", output.status);
        }
        // Per-transaction log lines: client, transaction, latency µs, script, then the
        // completion time as epoch seconds and microseconds.
        let mut samples = Vec::new();
        for entry in std::fs::read_dir(&self.scratch)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&format!("{prefix}.")) {
                continue;
            }
            for line in std::fs::read_to_string(entry.path())?.lines() {
                let f: Vec<u64> = line
                    .split_whitespace()
                    .take(6)
                    .map(|n| n.parse().unwrap_or(0))
                    .collect();
                let [_, _, latency, _, epoch, micros] = f[..] else {
                    continue;
                };
                let end = (epoch * 1_000_000 + micros).saturating_sub(origin);
                samples.push(Sample {
                    start: end.saturating_sub(latency),
                    end,
                    rows: rows as u64,
                    ok: true,
                    error: None,
                });
            }
            std::fs::remove_file(entry.path())?;
        }
        // pgbench's clock starts after its connections: the window ends with its last
        // transaction rather than at origin + total.
        let from = self.options.warmup * 1_000_000;
        let to = samples
            .iter()
            .map(|s| s.end)
            .max()
            .unwrap_or(from)
            .min(total * 1_000_000)
            .max(from + 1);
        let mut summary = summarize(&samples, from, to);
        let failed: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if failed > 0 {
            summary
                .errors
                .insert("failed transactions".to_owned(), failed);
        }
        let aborted = stderr.matches("aborted").count() as u64;
        if aborted > 0 {
            summary.errors.insert("clients aborted".to_owned(), aborted);
        }
        let reported_tps = stdout
            .lines()
            .find(|l| l.starts_with("tps = "))
            .unwrap_or("tps = ?")
            .trim();
        let reported_latency = stdout
            .lines()
            .find(|l| l.starts_with("latency average"))
            .unwrap_or("")
            .trim();
        let note = format!(
            "{} transactions in the window; pgbench's own summary (-j {threads}, {total} s incl. warm-up): \
             {reported_tps}; {reported_latency}",
            summary.count
        );
        self.push(Cell::new(
            section, c, what, "tx/s", summary, None, note, cpu,
        ));
        Ok(())
    }
}
