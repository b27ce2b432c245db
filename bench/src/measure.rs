//! Timing: interleaved rounds of operations, percentiles, and closed-loop throughput.

use std::time::{Duration, Instant};

use serde::Serialize;

/// One operation to time, how many times, and the times it took.
pub(crate) struct Probe<'a> {
    iterations: usize,
    op: Box<dyn FnMut() -> anyhow::Result<()> + 'a>,
    samples: Vec<Duration>,
}

impl<'a> Probe<'a> {
    pub(crate) fn new(iterations: usize, op: impl FnMut() -> anyhow::Result<()> + 'a) -> Self {
        Probe {
            iterations: iterations.max(1),
            op: Box::new(op),
            samples: Vec::with_capacity(iterations),
        }
    }

    pub(crate) fn summary(&self) -> Summary {
        Summary::of(&self.samples)
    }

    /// Runs the operation `count` times untimed (a warm-up).
    pub(crate) fn warm_up(&mut self, count: usize) -> anyhow::Result<()> {
        for _ in 0..count {
            (self.op)()?;
        }
        Ok(())
    }

    /// Runs and times the operation `count` times: one block of a schedule the caller
    /// makes itself (for rounds that change the conditions between probes).
    pub(crate) fn record(&mut self, count: usize) -> anyhow::Result<()> {
        for _ in 0..count {
            let start = Instant::now();
            (self.op)()?;
            self.samples.push(start.elapsed());
        }
        Ok(())
    }

    /// The iterations of one block when they are spread over `rounds`.
    pub(crate) fn block(&self, round: usize, rounds: usize) -> usize {
        self.iterations / rounds + usize::from(round < self.iterations % rounds)
    }
}

/// Runs every probe's iterations in `rounds` rounds, one block per probe per round (A, B, C,
/// A, B, C...), after a warm-up of a tenth of its iterations (at least 3) that is not
/// recorded. Each operation is timed on its own, so percentiles are per operation.
///
/// Interleaving is what makes ratios between probes fair on a shared machine: a burst of
/// load from elsewhere lands on a few blocks of every probe rather than on all of one.
pub(crate) fn interleave(probes: &mut [Probe<'_>], rounds: usize) -> anyhow::Result<()> {
    interleave_with(probes, rounds, |_, _| Ok(()))
}

/// [`interleave`], calling `each_round(round, rounds)` after the probes' blocks of every
/// round: for measurements made elsewhere (another process) that must take the same turns.
pub(crate) fn interleave_with(
    probes: &mut [Probe<'_>],
    rounds: usize,
    mut each_round: impl FnMut(usize, usize) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let rounds = rounds.max(1);
    for probe in probes.iter_mut() {
        probe.warm_up((probe.iterations / 10).max(3))?;
    }
    for round in 0..rounds {
        for probe in probes.iter_mut() {
            // Spread the iterations over the rounds; the first rounds take the remainder.
            probe.record(probe.block(round, rounds))?;
        }
        each_round(round, rounds)?;
    }
    Ok(())
}

/// Percentiles of one probe, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Summary {
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) samples: usize,
}

impl Summary {
    pub(crate) fn of(samples: &[Duration]) -> Summary {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        Summary {
            p50_us: micros(percentile(&sorted, 0.50)),
            p99_us: micros(percentile(&sorted, 0.99)),
            samples: sorted.len(),
        }
    }
}

/// Nearest-rank percentile of sorted samples; zero for none.
fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: the smallest sample with at least `quantile` of all samples at or below it.
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds, to the nanosecond (so JSON shows `47.581`, not `47.580999999999996`).
fn micros(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e9).round() / 1e3
}

/// The median of some rates; zero for none.
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
        let summary = Summary::of(&samples);
        assert_eq!(summary.p50_us.round(), 50.0);
        assert_eq!(summary.p99_us.round(), 99.0);
        assert_eq!(summary.samples, 100);
        let one = Summary::of(&[Duration::from_micros(7)]);
        assert_eq!((one.p50_us.round(), one.p99_us.round()), (7.0, 7.0));
        assert_eq!(Summary::of(&[]).p50_us, 0.0);
    }

    #[test]
    fn interleaving_runs_every_iteration_once_after_warm_up() {
        let (mut a, mut b) = (0, 0);
        {
            let mut probes = [
                Probe::new(25, || {
                    a += 1;
                    Ok(())
                }),
                Probe::new(7, || {
                    b += 1;
                    Ok(())
                }),
            ];
            interleave(&mut probes, 4).unwrap();
            assert_eq!(probes[0].samples.len(), 25);
            assert_eq!(probes[1].samples.len(), 7);
        }
        assert_eq!((a, b), (25 + 3, 7 + 3));
    }

    #[test]
    fn the_round_hook_runs_once_after_each_round_of_blocks() {
        let ops = std::cell::Cell::new(0);
        let mut seen = Vec::new();
        let mut probes = [Probe::new(8, || {
            ops.set(ops.get() + 1);
            Ok(())
        })];
        interleave_with(&mut probes, 4, |round, rounds| {
            // 3 warm-up iterations, then 2 per round.
            seen.push((round, rounds, ops.get()));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [(0, 4, 5), (1, 4, 7), (2, 4, 9), (3, 4, 11)]);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
