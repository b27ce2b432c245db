//! What one run measured, the targets of issue 5 judged against it, and its two renderings:
//! text tables for people and one JSON object for scripts.

use std::fmt::Write as _;

use serde::Serialize;

use crate::measure::Summary;
use crate::noise::Noise;

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// `full` or `quick`; quick figures only show that every measurement works.
    pub(crate) mode: &'static str,
    pub(crate) machine: Machine,
    /// The keywardd binary measured.
    pub(crate) keywardd: String,
    /// The socket floor: one 64-byte ping-pong between two processes.
    pub(crate) floor: Summary,
    pub(crate) latency: Vec<SchemeLatency>,
    /// `None` when ssh-agent is not installed (quick mode only); see `notes`.
    pub(crate) ssh_agent: Option<Vec<AgentLatency>>,
    /// The Python client and Python's in-process signing, in the same rounds; `None` when
    /// skipped (quick mode only); see `notes`.
    pub(crate) python: Option<PythonColumn>,
    pub(crate) throughput: Vec<Throughput>,
    pub(crate) contention: Contention,
    pub(crate) admin: AdminLoad,
    pub(crate) batch: Batch,
    pub(crate) rss: Rss,
    pub(crate) idle: IdleConnections,
    pub(crate) targets: Vec<Target>,
    pub(crate) notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu: String,
    pub(crate) kernel: String,
    /// 1-minute load average when the run started (it decays slowly: a run just before
    /// counts too).
    pub(crate) load_average_at_start: f64,
    /// What other processes and the hypervisor took from this run.
    pub(crate) noise: Noise,
}

/// One `Client::sign` round trip against the same signature made in-process.
#[derive(Debug, Serialize)]
pub(crate) struct SchemeLatency {
    pub(crate) scheme: &'static str,
    pub(crate) keywardd: Summary,
    pub(crate) in_process: Summary,
    /// The same signature from the bare signer (bare.rs): the least a signer in another
    /// process costs on this machine.
    pub(crate) bare_signer: Summary,
    /// The bare signer again, with a client that polls for the answer instead of sleeping
    /// (RSA only): what is left when nothing has to wake the client.
    pub(crate) bare_signer_polling: Option<Summary>,
    /// keywardd round trip − bare signer round trip: the median over rounds of the
    /// difference between adjacent blocks (run.rs, `paired_difference`). What keywardd
    /// itself adds to a signature.
    pub(crate) beyond_bare_paired_us: f64,
}

impl SchemeLatency {
    /// What the daemon adds to a signature, at the median.
    pub(crate) fn overhead_p50_us(&self) -> f64 {
        self.keywardd.p50_us - self.in_process.p50_us
    }
}

/// The same signature through OpenSSH's ssh-agent.
#[derive(Debug, Serialize)]
pub(crate) struct AgentLatency {
    pub(crate) scheme: &'static str,
    pub(crate) ssh_agent: Summary,
    pub(crate) keywardd_p50_us: f64,
    /// ssh-agent p50 / keywardd p50.
    pub(crate) speedup: f64,
}

/// What a Python bot pays: `python/benchmarks/roundtrip.py`'s rows.
#[derive(Debug, Serialize)]
pub(crate) struct PythonColumn {
    /// The interpreter, e.g. `CPython 3.11.7`.
    pub(crate) python: String,
    pub(crate) rows: Vec<PythonRow>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PythonRow {
    pub(crate) name: String,
    pub(crate) scheme: String,
    /// `keywardd` (a Python client round trip) or `in-process`.
    pub(crate) via: String,
    pub(crate) summary: Summary,
    /// The Rust client's p50 round trip for the same scheme, for keywardd rows.
    pub(crate) rust_client_p50_us: Option<f64>,
    /// This row's p50 over the Rust client's, for keywardd rows.
    pub(crate) over_rust_client_p50: Option<f64>,
}

/// Signatures per second with several client threads, one connection each.
#[derive(Debug, Serialize)]
pub(crate) struct Throughput {
    pub(crate) scheme: &'static str,
    pub(crate) threads: Vec<ThreadRate>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ThreadRate {
    pub(crate) threads: usize,
    /// Through keywardd, median over the rounds.
    pub(crate) sigs_per_s: f64,
    /// The same number of threads signing in-process with the same key: the ceiling.
    pub(crate) in_process_sigs_per_s: f64,
}

impl Throughput {
    fn find(&self, threads: usize) -> Option<&ThreadRate> {
        self.threads.iter().find(|rate| rate.threads == threads)
    }

    /// keywardd's throughput with 2 client threads over 1.
    pub(crate) fn scaling(&self) -> f64 {
        let rate = |n| self.find(n).map_or(0.0, |rate| rate.sigs_per_s);
        rate(2) / rate(1)
    }

    /// The same for in-process signing: how far this machine lets 2 threads scale.
    pub(crate) fn in_process_scaling(&self) -> f64 {
        let rate = |n| self.find(n).map_or(0.0, |rate| rate.in_process_sigs_per_s);
        rate(2) / rate(1)
    }
}

/// Ed25519 latency on one connection while others keep the daemon busy with RSA: what a bot
/// signing with a fast key pays when another bot signs with RSA (issue 15: its p99 at most
/// 2 × one in-process signature of that RSA key).
#[derive(Debug, Serialize)]
pub(crate) struct Contention {
    pub(crate) load: String,
    /// The RSA key signing back to back, e.g. `rsa-4096`.
    pub(crate) rsa_scheme: &'static str,
    pub(crate) ed25519: Summary,
    pub(crate) load_sigs_per_s: f64,
}

/// Signatures alone and while admin work runs (key generation, Argon2id unlock), in
/// alternating rounds on the same connections (issue 15: p99 during at most 2 × alone).
#[derive(Debug, Serialize)]
pub(crate) struct AdminLoad {
    pub(crate) work: String,
    /// Keys generated and unlocks answered while the "during" rounds were measured.
    pub(crate) generated: usize,
    pub(crate) unlocked: usize,
    /// Time spent measuring during admin work.
    pub(crate) measured_during_ms: f64,
    pub(crate) ed25519_alone: Summary,
    pub(crate) ed25519_during: Summary,
    pub(crate) rsa2048_alone: Summary,
    pub(crate) rsa2048_during: Summary,
}

/// Many connections open and idle (after the Hello), on a daemon started as the shipped
/// unit starts it (its `Environment=`).
#[derive(Debug, Serialize)]
pub(crate) struct IdleConnections {
    pub(crate) connections: usize,
    /// The unit's environment the daemon ran with, e.g. `MALLOC_ARENA_MAX=2`.
    pub(crate) environment: String,
    pub(crate) rss_before_kib: u64,
    pub(crate) rss_after_kib: u64,
    /// Whether the daemon's memory was locked (mlockall); if not, `memlock_kib` is VmSize.
    pub(crate) locked: bool,
    /// VmLck with the connections open: what counts against RLIMIT_MEMLOCK.
    pub(crate) memlock_kib: u64,
    /// The shipped unit's `LimitMEMLOCK=`.
    pub(crate) limit_memlock_bytes: u64,
}

impl IdleConnections {
    pub(crate) fn rss_growth_kib(&self) -> u64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib)
    }

    pub(crate) fn bytes_per_connection(&self) -> f64 {
        self.rss_growth_kib() as f64 * 1024.0 / self.connections.max(1) as f64
    }
}

/// `sign_batch` of N HMAC payloads against N single round trips.
#[derive(Debug, Serialize)]
pub(crate) struct Batch {
    pub(crate) scheme: &'static str,
    pub(crate) payloads: usize,
    /// Time for one `sign_batch` call of all payloads.
    pub(crate) batch: Summary,
    /// Time for the same payloads signed one `sign` call each.
    pub(crate) singles: Summary,
    pub(crate) batch_sigs_per_s: f64,
    pub(crate) singles_sigs_per_s: f64,
    pub(crate) ratio: f64,
}

/// The daemon's resident memory (VmRSS), in KiB, on a daemon started for this alone.
#[derive(Debug, Serialize)]
pub(crate) struct Rss {
    pub(crate) one_key_kib: u64,
    pub(crate) hundred_keys_kib: u64,
    /// How the 100 keys are made up, e.g. `44 ed25519 + ...`.
    pub(crate) hundred_keys_mix: String,
    /// Peak RSS (VmHWM) of the daemon that served every other measurement, for reference.
    pub(crate) benchmark_daemon_peak_kib: u64,
}

/// One target of the issue, judged.
#[derive(Debug, Serialize)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) measured: f64,
    /// `<=` or `>=`.
    pub(crate) comparison: &'static str,
    pub(crate) limit: f64,
    pub(crate) unit: &'static str,
    pub(crate) pass: bool,
}

impl Target {
    pub(crate) fn at_most(name: String, measured: f64, limit: f64, unit: &'static str) -> Self {
        Target {
            name,
            measured,
            comparison: "<=",
            limit,
            unit,
            pass: measured <= limit,
        }
    }

    pub(crate) fn at_least(name: String, measured: f64, limit: f64, unit: &'static str) -> Self {
        Target {
            name,
            measured,
            comparison: ">=",
            limit,
            unit,
            pass: measured >= limit,
        }
    }
}

impl Report {
    pub(crate) fn to_json(&self) -> String {
        // Only plain numbers, strings and vectors: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|err| format!("{{\"error\":\"{err}\"}}"))
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "keyward-bench ({} mode) on {} core(s), {}; kernel {}",
            self.mode, self.machine.cores, self.machine.cpu, self.machine.kernel,
        );
        let _ = writeln!(
            out,
            "during the run, other processes used {:.1}% of the CPU and the hypervisor stole {:.1}% \
             (load average {:.2} at start)",
            self.machine.noise.other_cpu_percent,
            self.machine.noise.steal_percent,
            self.machine.load_average_at_start
        );
        let _ = writeln!(out, "keywardd: {}", self.keywardd);
        if self.mode == "quick" {
            let _ = writeln!(
                out,
                "QUICK MODE: few iterations; these figures show that every measurement works, \
                 they are not timings."
            );
        }

        let _ = writeln!(
            out,
            "\nOne signature, µs (interleaved rounds, same key in-process, in keywardd and in the bare signer)"
        );
        let mut table = Table::new(&[
            "",
            "round trip p50",
            "p99",
            "in-process p50",
            "p99",
            "overhead p50",
            "bare signer p50",
            "keywardd − bare (paired)",
            "ssh-agent p50",
            "p99",
        ]);
        table.row(vec![
            "socket floor (64 B ping-pong)".into(),
            us(self.floor.p50_us),
            us(self.floor.p99_us),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
        for latency in &self.latency {
            let agent = self
                .ssh_agent
                .iter()
                .flatten()
                .find(|agent| agent.scheme == latency.scheme);
            table.row(vec![
                latency.scheme.into(),
                us(latency.keywardd.p50_us),
                us(latency.keywardd.p99_us),
                us(latency.in_process.p50_us),
                us(latency.in_process.p99_us),
                us(latency.overhead_p50_us()),
                us(latency.bare_signer.p50_us),
                us(latency.beyond_bare_paired_us),
                agent.map_or("-".into(), |a| us(a.ssh_agent.p50_us)),
                agent.map_or("-".into(), |a| us(a.ssh_agent.p99_us)),
            ]);
        }
        out.push_str(&table.render());

        let polled: Vec<_> = self
            .latency
            .iter()
            .filter_map(|l| l.bare_signer_polling.map(|polling| (l, polling)))
            .collect();
        if !polled.is_empty() {
            let _ = writeln!(
                out,
                "\nThe bare signer (bare.rs) with a client that sleeps in read() and one that polls, µs (same rounds)"
            );
            let mut table = Table::new(&[
                "",
                "in-process p50",
                "client sleeps p50",
                "client polls p50",
                "wake-up cost",
            ]);
            for (latency, polling) in polled {
                table.row(vec![
                    latency.scheme.into(),
                    us(latency.in_process.p50_us),
                    us(latency.bare_signer.p50_us),
                    us(polling.p50_us),
                    us(latency.bare_signer.p50_us - polling.p50_us),
                ]);
            }
            out.push_str(&table.render());
        }

        if let Some(python) = &self.python {
            let _ = writeln!(
                out,
                "\nPython ({}): the keyward package and in-process signing, µs (same rounds)",
                python.python
            );
            let mut table = Table::new(&["", "p50", "p99", "Rust client p50", "Python / Rust"]);
            for row in &python.rows {
                table.row(vec![
                    row.name.clone(),
                    us(row.summary.p50_us),
                    us(row.summary.p99_us),
                    row.rust_client_p50_us.map_or("-".into(), us),
                    row.over_rust_client_p50.map_or("-".into(), ratio),
                ]);
            }
            out.push_str(&table.render());
        }

        let _ = writeln!(
            out,
            "\nThroughput, signatures/s (one connection per client thread; median of rounds)"
        );
        let counts: Vec<usize> = self
            .throughput
            .first()
            .map(|t| t.threads.iter().map(|rate| rate.threads).collect())
            .unwrap_or_default();
        let mut header: Vec<String> = vec![String::new()];
        header.extend(
            counts
                .iter()
                .map(|n| format!("{n} thread{}", if *n == 1 { "" } else { "s" })),
        );
        header.push("2 / 1".into());
        let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut table = Table::new(&header_refs);
        for throughput in &self.throughput {
            let mut row = vec![format!("{} keywardd", throughput.scheme)];
            row.extend(
                throughput
                    .threads
                    .iter()
                    .map(|rate| rate_text(rate.sigs_per_s)),
            );
            row.push(ratio(throughput.scaling()));
            table.row(row);
            let mut row = vec![format!("{} in-process", throughput.scheme)];
            row.extend(
                throughput
                    .threads
                    .iter()
                    .map(|rate| rate_text(rate.in_process_sigs_per_s)),
            );
            row.push(ratio(throughput.in_process_scaling()));
            table.row(row);
        }
        out.push_str(&table.render());

        let contention = &self.contention;
        let _ = writeln!(
            out,
            "\ned25519 round trip while {} ({} RSA signatures/s), µs",
            contention.load,
            rate_text(contention.load_sigs_per_s)
        );
        let mut table = Table::new(&["", "p50", "p99"]);
        table.row(vec![
            "ed25519 under RSA load".into(),
            us(contention.ed25519.p50_us),
            us(contention.ed25519.p99_us),
        ]);
        if let Some(idle) = self.latency.iter().find(|l| l.scheme == "ed25519") {
            table.row(vec![
                "ed25519 alone (from the first table)".into(),
                us(idle.keywardd.p50_us),
                us(idle.keywardd.p99_us),
            ]);
        }
        if let Some(rsa) = self
            .latency
            .iter()
            .find(|l| l.scheme == contention.rsa_scheme)
        {
            table.row(vec![
                format!("{} in-process (from the first table)", rsa.scheme),
                us(rsa.in_process.p50_us),
                us(rsa.in_process.p99_us),
            ]);
        }
        out.push_str(&table.render());

        let admin = &self.admin;
        let _ = writeln!(
            out,
            "\nSignatures alone and during admin work ({}; {} generated, {} unlocks in {:.0} ms \
             of measuring), µs, alternating rounds",
            admin.work, admin.generated, admin.unlocked, admin.measured_during_ms
        );
        let mut table = Table::new(&["", "alone p50", "p99", "during p50", "p99", "p99 ratio"]);
        for (scheme, alone, during) in [
            ("ed25519", admin.ed25519_alone, admin.ed25519_during),
            ("rsa-2048", admin.rsa2048_alone, admin.rsa2048_during),
        ] {
            table.row(vec![
                scheme.into(),
                us(alone.p50_us),
                us(alone.p99_us),
                us(during.p50_us),
                us(during.p99_us),
                ratio(during.p99_us / alone.p99_us),
            ]);
        }
        out.push_str(&table.render());

        let batch = &self.batch;
        let _ = writeln!(
            out,
            "\n{} payloads, {}: one sign_batch vs {} single round trips",
            batch.payloads, batch.scheme, batch.payloads
        );
        let mut table = Table::new(&["", "p50 µs per call", "p99", "signatures/s"]);
        table.row(vec![
            format!("{} × sign", batch.payloads),
            us(batch.singles.p50_us),
            us(batch.singles.p99_us),
            rate_text(batch.singles_sigs_per_s),
        ]);
        table.row(vec![
            format!("1 × sign_batch({})", batch.payloads),
            us(batch.batch.p50_us),
            us(batch.batch.p99_us),
            rate_text(batch.batch_sigs_per_s),
        ]);
        out.push_str(&table.render());

        let rss = &self.rss;
        let _ = writeln!(out, "\nkeywardd resident memory (VmRSS)");
        let mut table = Table::new(&["", "MiB"]);
        table.row(vec!["1 key".into(), mib(rss.one_key_kib)]);
        table.row(vec![
            format!("100 keys ({})", rss.hundred_keys_mix),
            mib(rss.hundred_keys_kib),
        ]);
        table.row(vec![
            "peak of the daemon measured above".into(),
            mib(rss.benchmark_daemon_peak_kib),
        ]);
        out.push_str(&table.render());

        let idle = &self.idle;
        let _ = writeln!(
            out,
            "\n{} idle connections, on a daemon started with the unit's {}",
            idle.connections, idle.environment
        );
        let mut table = Table::new(&["", "MiB"]);
        table.row(vec!["RSS before".into(), mib(idle.rss_before_kib)]);
        table.row(vec![
            format!("RSS with {} idle connections", idle.connections),
            mib(idle.rss_after_kib),
        ]);
        table.row(vec![
            format!(
                "growth per idle connection: {:.0} bytes",
                idle.bytes_per_connection()
            ),
            mib(idle.rss_growth_kib()),
        ]);
        table.row(vec![
            if idle.locked {
                "locked (VmLck), against the unit's LimitMEMLOCK".into()
            } else {
                "mapped (VmSize; memory not locked here) vs LimitMEMLOCK".into()
            },
            format!(
                "{} of {}",
                mib(idle.memlock_kib),
                mib(idle.limit_memlock_bytes / 1024)
            ),
        ]);
        out.push_str(&table.render());

        let _ = writeln!(out, "\nTargets (issues 5, 11 and 15)");
        let mut table = Table::new(&["", "measured", "", "limit", "result"]);
        for target in &self.targets {
            table.row(vec![
                target.name.clone(),
                format!("{} {}", number(target.measured), target.unit),
                target.comparison.replace("<=", "≤").replace(">=", "≥"),
                format!("{} {}", number(target.limit), target.unit),
                if target.pass { "pass" } else { "FAIL" }.into(),
            ]);
        }
        out.push_str(&table.render());
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

fn us(value: f64) -> String {
    if value.abs() < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn number(value: f64) -> String {
    if value.abs() < 10.0 {
        format!("{value:.2}")
    } else {
        us(value)
    }
}

fn ratio(value: f64) -> String {
    format!("{value:.2}×")
}

fn rate_text(value: f64) -> String {
    format!("{value:.0}")
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// A text table: first column left-aligned, the others right-aligned.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|cell| (*cell).to_owned()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(column))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                let pad = widths[column].saturating_sub(cell.chars().count());
                if column == 0 {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                } else {
                    line.push_str("  ");
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                }
            }
            out.push_str("  ");
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}
