//! Spinning briefly before sleeping, where the thing waited for usually comes within
//! microseconds from another CPU (a futex hand-off, a pooled worker's next job): sleeping
//! and being woken cost a context switch on each side, several times what the wait itself
//! lasts. Never on a single CPU, where the spinner would only hold up the thread it waits for.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether more than one CPU is available to this process.
fn several_cpus() -> bool {
    static SEVERAL: OnceLock<bool> = OnceLock::new();
    *SEVERAL.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() > 1))
}

/// Polls `ready` for at most `limit`; whether it became true. A false answer means the
/// caller should go on to sleep as it would have.
pub(crate) fn until(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    if !several_cpus() {
        return ready();
    }
    let start = Instant::now();
    loop {
        for _ in 0..32 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= limit {
            return ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_condition_already_true_returns_at_once_and_a_false_one_gives_up() {
        assert!(until(Duration::from_secs(60), || true));
        let start = Instant::now();
        assert!(!until(Duration::from_micros(200), || false));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_flag_raised_by_another_thread_is_seen() {
        let flag = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&flag);
        let t = std::thread::spawn(move || f.store(true, Ordering::Release));
        let seen = until(Duration::from_secs(30), || flag.load(Ordering::Acquire));
        t.join().unwrap();
        // On one CPU it does not spin: one look, which may come first.
        assert!(seen || !several_cpus());
    }
}
