//! The CPU time limit per guest process (`RuntimeConfig::max_cpu_time`), as `RLIMIT_CPU`
//! works: at the limit the process is sent SIGXCPU (its handler may save its work; by
//! default it ends), and a second later — of CPU — it is killed.
//!
//! A guest thread runs on a host thread (pooled host threads run one guest thread after
//! another), so a process's CPU time is what its threads' host threads used while running
//! for it: each guest thread notes its host thread and that thread's CPU clock when it
//! starts ([`CpuWatch::enter`]) and adds what it used when it ends ([`CpuWatch::leave`]).
//! One watchdog thread per runtime samples the live ones every 50 ms (the limit is checked
//! to that resolution), reading each host thread's CPU clock from outside.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use wasmix_process::{ControlPlane, Pid, Signal};

/// How long past the limit a process that survived its SIGXCPU may run (CPU time).
const GRACE: Duration = Duration::from_secs(1);
const SAMPLE: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Usage {
    /// Host thread id → its CPU clock (ns) when the guest thread started there.
    live: HashMap<i32, u64>,
    /// CPU (ns) of the process's guest threads that have ended.
    ended: u64,
    warned: bool,
}

/// Every process's CPU use, against one limit.
pub(crate) struct CpuWatch {
    limit: Duration,
    usage: Mutex<HashMap<Pid, Usage>>,
}

impl CpuWatch {
    /// A watch for `limit`, with its watchdog thread checking the processes of `control`.
    pub fn start(limit: Duration, control: &ControlPlane) -> std::io::Result<Arc<CpuWatch>> {
        let watch = Arc::new(CpuWatch {
            limit,
            usage: Mutex::new(HashMap::new()),
        });
        let weak: Weak<CpuWatch> = Arc::downgrade(&watch);
        let control = control.clone();
        std::thread::Builder::new()
            .name("wasmix-cpu-limit".into())
            .spawn(move || {
                crate::sched::background();
                while let Some(w) = weak.upgrade() {
                    w.check(&control);
                    drop(w);
                    std::thread::sleep(SAMPLE);
                }
            })?;
        Ok(watch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Pid, Usage>> {
        self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The calling host thread starts running a guest thread of `pid`.
    pub fn enter(&self, pid: Pid) {
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        let now = own_cpu();
        self.lock().entry(pid).or_default().live.insert(tid, now);
    }

    /// The calling host thread is done with its guest thread of `pid`.
    pub fn leave(&self, pid: Pid) {
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        let now = own_cpu();
        let mut usage = self.lock();
        if let Some(u) = usage.get_mut(&pid) {
            if let Some(start) = u.live.remove(&tid) {
                u.ended += now.saturating_sub(start);
            }
        }
    }

    /// The CPU time `pid` has used so far.
    #[cfg(test)]
    pub fn used(&self, pid: Pid) -> Duration {
        self.lock()
            .get(&pid)
            .map_or(Duration::ZERO, |u| Duration::from_nanos(total(u)))
    }

    /// One round of the watchdog: warns and kills processes over the limit, forgets the
    /// ones that are gone.
    fn check(&self, control: &ControlPlane) {
        let mut usage = self.lock();
        let mut over = Vec::new();
        usage.retain(|pid, u| {
            let Some(p) = control.lookup(*pid).filter(|p| p.try_status().is_none()) else {
                return false;
            };
            let used = Duration::from_nanos(total(u));
            if used >= self.limit + GRACE {
                over.push((p, Signal::KILL));
            } else if used >= self.limit && !u.warned {
                u.warned = true;
                over.push((p, Signal::XCPU));
            }
            true
        });
        drop(usage);
        for (p, sig) in over {
            tracing::debug!("process {} used its CPU time: {sig:?}", p.pid());
            let _ = p.signal(sig);
        }
    }
}

/// CPU (ns) used by a process's guest threads: those ended, and the live ones so far.
fn total(u: &Usage) -> u64 {
    u.ended
        + u.live
            .iter()
            .map(|(tid, start)| thread_cpu(*tid).saturating_sub(*start))
            .sum::<u64>()
}

/// The calling thread's CPU clock, ns.
fn own_cpu() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    (t.tv_sec as u64) * 1_000_000_000 + t.tv_nsec as u64
}

/// Host thread `tid`'s CPU clock, ns (0 if it is gone). Linux numbers a thread's CPU clock
/// from its id, as `pthread_getcpuclockid` does: `(~tid << 3) | CPUCLOCK_PERTHREAD |
/// CPUCLOCK_SCHED` (include/linux/posix-timers_types.h).
fn thread_cpu(tid: i32) -> u64 {
    let clock = ((!tid) << 3) | 6;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which is ours; an id of a thread that is
    // gone makes it fail, not misbehave.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_threads_cpu_clock_reads_what_it_used() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let start = own_cpu();
            let mut x = 1u64;
            while own_cpu() - start < 30_000_000 {
                x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
            }
            tx.send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        let seen = thread_cpu(tid);
        assert!(seen >= 30_000_000, "{seen} ns");
        assert!(thread_cpu(tid) < 10_000_000_000);
        done_tx.send(()).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn usage_adds_ended_threads_and_live_ones() {
        let w = CpuWatch {
            limit: Duration::from_secs(1),
            usage: Mutex::new(HashMap::new()),
        };
        w.enter(7);
        let start = own_cpu();
        let mut x = 1u64;
        while own_cpu() - start < 20_000_000 {
            x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
        }
        assert!(
            w.used(7) >= Duration::from_millis(20),
            "live: {:?}",
            w.used(7)
        );
        w.leave(7);
        let after = w.used(7);
        assert!(after >= Duration::from_millis(20), "ended: {after:?}");
        assert_eq!(w.used(8), Duration::ZERO);
    }
}
