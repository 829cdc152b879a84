//! CPU backoff for processes that poll idly: after a cool-off period without activity, each idle
//! poll sleeps longer (1 ms doubling up to a cap). A held run token suspends backoff; taking one
//! wakes sleepers and resets it.

use std::time::{Duration, Instant};

use crate::sync::{lock, wait, Condvar, Mutex};

struct State {
    /// `None` until the first idle poll: the cool-off starts there, not at process creation
    /// (which then costs no clock read).
    last_activity: Option<Instant>,
    current: Option<Duration>,
    tokens: usize,
    /// Bumped when a token is taken, to cut sleeps short.
    generation: u64,
}

/// The backoff state of one process.
pub struct CpuBackoff {
    state: Mutex<State>,
    cv: Condvar,
    cooloff: Duration,
    first: Duration,
    cap: Duration,
}

impl Default for CpuBackoff {
    fn default() -> Self {
        CpuBackoff::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl CpuBackoff {
    /// Backoff starting after `cooloff` of idleness, capped at `cap` per sleep.
    pub fn new(cooloff: Duration, cap: Duration) -> CpuBackoff {
        CpuBackoff {
            state: Mutex::new(State {
                last_activity: None,
                current: None,
                tokens: 0,
                generation: 0,
            }),
            cv: Condvar::new(),
            cooloff,
            first: Duration::from_millis(1),
            cap: cap.max(Duration::from_millis(1)),
        }
    }

    /// Something useful happened: no backoff until the process is idle for a cool-off again.
    pub fn activity(&self) {
        let mut st = lock(&self.state);
        st.last_activity = Some(Instant::now());
        st.current = None;
    }

    /// An idle poll happened at `now`: how long the poller should sleep, if at all.
    pub fn idle_at(&self, now: Instant) -> Option<Duration> {
        self.next_sleep(&mut lock(&self.state), now)
    }

    fn next_sleep(&self, st: &mut State, now: Instant) -> Option<Duration> {
        let since = *st.last_activity.get_or_insert(now);
        if st.tokens > 0 || now.saturating_duration_since(since) < self.cooloff {
            return None;
        }
        let next = match st.current {
            None => self.first,
            Some(d) => (d * 2).min(self.cap),
        };
        st.current = Some(next);
        Some(next)
    }

    /// Sleeps as [`CpuBackoff::idle_at`] says, returning early when a run token is taken.
    pub fn idle(&self) {
        let mut st = lock(&self.state);
        let Some(d) = self.next_sleep(&mut st, Instant::now()) else {
            return;
        };
        let deadline = Instant::now() + d;
        // Read under the same lock as the decision, so a token taken after it always wakes us.
        let gen = st.generation;
        while st.generation == gen && Instant::now() < deadline {
            st = wait(&self.cv, st, Some(deadline));
        }
    }

    /// Takes a run token: no backoff while any is held; sleepers wake now.
    pub fn acquire(&self) -> RunToken<'_> {
        let mut st = lock(&self.state);
        st.tokens += 1;
        st.generation += 1;
        st.current = None;
        st.last_activity = Some(Instant::now());
        drop(st);
        self.cv.notify_all();
        RunToken { backoff: self }
    }
}

/// Holding one keeps a process at full speed.
pub struct RunToken<'a> {
    backoff: &'a CpuBackoff,
}

impl Drop for RunToken<'_> {
    fn drop(&mut self) {
        let mut st = lock(&self.backoff.state);
        st.tokens -= 1;
        st.last_activity = Some(Instant::now());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn doubles_after_cooloff_up_to_the_cap() {
        let b = CpuBackoff::new(Duration::from_millis(500), Duration::from_millis(10));
        let t0 = Instant::now();
        assert_eq!(b.idle_at(t0), None, "within the cool-off");
        let later = t0 + Duration::from_secs(1);
        let seq: Vec<_> = (0..6)
            .map(|_| b.idle_at(later).unwrap().as_millis())
            .collect();
        assert_eq!(seq, vec![1, 2, 4, 8, 10, 10]);
        b.activity();
        assert_eq!(b.idle_at(Instant::now()), None, "activity resets");
    }

    #[test]
    fn tokens_suspend_and_reset() {
        let b = CpuBackoff::new(Duration::ZERO, Duration::from_secs(30));
        let later = Instant::now() + Duration::from_secs(1);
        assert!(b.idle_at(later).is_some());
        {
            let _t = b.acquire();
            assert_eq!(b.idle_at(later + Duration::from_secs(5)), None);
        }
        assert_eq!(
            b.idle_at(Instant::now() + Duration::from_secs(5)).unwrap(),
            Duration::from_millis(1)
        );
    }

    #[test]
    fn taking_a_token_wakes_a_sleeper() {
        let b = std::sync::Arc::new(CpuBackoff::new(Duration::ZERO, Duration::from_secs(3600)));
        for _ in 0..25 {
            b.idle_at(Instant::now() + Duration::from_secs(1));
        }
        let b2 = std::sync::Arc::clone(&b);
        let h = std::thread::spawn(move || {
            let start = Instant::now();
            b2.idle();
            start.elapsed()
        });
        // Keep taking tokens until the sleeper has returned: it must not sit out its hour.
        while !h.is_finished() {
            drop(b.acquire());
            std::thread::yield_now();
        }
        assert!(h.join().unwrap() < Duration::from_secs(60));
    }
}
