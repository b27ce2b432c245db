//! How much of the machine other work took during the run: on a shared machine this says
//! whether a run's figures can be trusted.
//!
//! The kernel's busy time over all CPUs (/proc/stat), minus the CPU time of this process and
//! every child it waited for (getrusage), is what other processes used; `steal` is time the
//! hypervisor gave to other guests while ours wanted to run.

use std::time::Instant;

use nix::sys::resource::{UsageWho, getrusage};
use nix::unistd::{SysconfVar, sysconf};
use serde::Serialize;

/// CPU counters at one moment.
#[derive(Debug)]
pub(crate) struct Snapshot {
    at: Instant,
    /// user + nice + system + irq + softirq over all CPUs, in seconds.
    busy: f64,
    steal: f64,
}

/// What others took between two snapshots, as a share of all cores over the interval.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Noise {
    /// Percent of the machine's CPU time used by processes outside this benchmark.
    pub(crate) other_cpu_percent: f64,
    /// Percent of the machine's CPU time stolen by the hypervisor.
    pub(crate) steal_percent: f64,
}

impl Snapshot {
    pub(crate) fn now() -> Snapshot {
        let (busy, steal) = proc_stat().unwrap_or((f64::NAN, f64::NAN));
        Snapshot {
            at: Instant::now(),
            busy,
            steal,
        }
    }

    /// Call once every child process has been waited for, so that their CPU time is counted
    /// as ours.
    pub(crate) fn noise_since(&self, start: &Snapshot, cores: usize) -> Noise {
        let capacity = self.at.duration_since(start.at).as_secs_f64() * cores as f64;
        let others = (self.busy - start.busy) - own_cpu_seconds();
        let percent = |part: f64| (1000.0 * part / capacity).round() / 10.0;
        Noise {
            other_cpu_percent: percent(others).max(0.0),
            steal_percent: percent(self.steal - start.steal),
        }
    }
}

/// Busy and steal seconds from the first line of /proc/stat.
fn proc_stat() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let field = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    let hz = sysconf(SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    let busy = field(0) + field(1) + field(2) + field(5) + field(6);
    Some((busy / hz, field(7) / hz))
}

/// CPU seconds used by this process and its waited-for children.
fn own_cpu_seconds() -> f64 {
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .filter_map(|who| getrusage(who).ok())
        .map(|usage| {
            let seconds =
                |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            seconds(usage.user_time()) + seconds(usage.system_time())
        })
        .sum()
}
