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
pub(crate) fn until(limit: Duration, ready: impl FnMut() -> bool) -> bool {
    spin(limit, false, ready)
}

/// Like [`until`], yielding the CPU between polls: for a spinner that may hold up a thread it
/// just woke — the scheduler often places a wakee on its waker's CPU — such as a pooled
/// worker whose guest thread's exit woke its joiner. With nothing else to run, a yield
/// returns at once; it costs a system call, so hand-offs that come within a microsecond or
/// two (futexes) use [`until`].
pub(crate) fn until_yielding(limit: Duration, ready: impl FnMut() -> bool) -> bool {
    spin(limit, true, ready)
}

fn spin(limit: Duration, yielding: bool, mut ready: impl FnMut() -> bool) -> bool {
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
        if yielding {
            std::thread::yield_now();
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

    /// Runs `spin` on a SCHED_FIFO thread pinned to one CPU, with a thread queued behind it
    /// on that CPU that raises the flag the spin polls: a FIFO thread keeps its CPU until it
    /// yields, so the flag is seen only if the spin yields. `None` where real-time
    /// scheduling is not allowed.
    fn queued_behind(spin: fn(Duration, &AtomicBool) -> bool) -> Option<bool> {
        std::thread::spawn(move || {
            // SAFETY: no arguments.
            let cpu = unsafe { libc::sched_getcpu() };
            // SAFETY: a CPU set is plain bits; all zero is the empty set.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            // SAFETY: `set` is a valid set and `cpu` a CPU number the kernel gave.
            unsafe { libc::CPU_SET(cpu as usize, &mut set) };
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: plain calls on this thread (pid 0) with valid arguments.
            unsafe {
                if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0
                    || libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) != 0
                {
                    return None;
                }
            }
            let flag = Arc::new(AtomicBool::new(false));
            let f = Arc::clone(&flag);
            // Inherits the CPU and the policy: it runs only when the spinner lets it.
            let behind = std::thread::spawn(move || f.store(true, Ordering::Release));
            // Well under the kernel's real-time throttling (0.95 s of every second), which
            // would otherwise hand the CPU over anyway.
            let seen = spin(Duration::from_millis(300), &flag);
            behind.join().unwrap();
            Some(seen)
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_yielding_spin_lets_a_thread_queued_on_its_cpu_run() {
        let Some(seen) = queued_behind(|d, f| until_yielding(d, || f.load(Ordering::Acquire)))
        else {
            eprintln!("SCHED_FIFO not allowed here (needs CAP_SYS_NICE): not checked");
            return;
        };
        assert!(seen || !several_cpus());
        // And the case it is for: a plain spin holds the queued thread up for all of it.
        let held = queued_behind(|d, f| until(d, || f.load(Ordering::Acquire))).unwrap();
        assert!(!held || !several_cpus());
    }
}
