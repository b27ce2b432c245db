//! Rate-limited log lines (issue 16 §2): a client that provokes a warning per request (a
//! denied signature, a malformed frame) must not turn each request into a journal line. At
//! most [`Throttle`]'s budget of lines per window is logged; the next line logged says how
//! many were suppressed in between. The audit log is unaffected: it records every decision.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Throttle {
    per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Throttle {
    pub(crate) const fn new(per_window: u32, window: Duration) -> Throttle {
        Throttle {
            per_window,
            window,
            state: Mutex::new(State {
                started: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)`: log this line, and say that `n` lines were suppressed before it. `None`:
    /// suppress it.
    pub(crate) fn admit(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if state
            .started
            .is_none_or(|started| now.duration_since(started) >= self.window)
        {
            state.started = Some(now);
            state.logged = 0;
        }
        if state.logged >= self.per_window {
            state.suppressed += 1;
            return None;
        }
        state.logged += 1;
        Some(std::mem::take(&mut state.suppressed))
    }
}

/// " (N similar lines suppressed)", or nothing.
pub(crate) fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} similar lines suppressed)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_budget_then_counts_and_reports_the_suppressed_lines() {
        let throttle = Throttle::new(3, Duration::from_millis(200));
        let first: Vec<Option<u64>> = (0..10).map(|_| throttle.admit()).collect();
        assert_eq!(first[..3], [Some(0), Some(0), Some(0)]);
        assert!(first[3..].iter().all(Option::is_none));
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(throttle.admit(), Some(7));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(suppressed_note(0), "");
        assert_eq!(suppressed_note(7), " (7 similar lines suppressed)");
    }
}
