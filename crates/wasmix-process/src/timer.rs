//! Interval timers for every process, driven by one service thread (not a thread per timer).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::ids::Pid;
use crate::signal::Signal;
use crate::sync::{lock, wait};

struct Entry {
    deadline: Instant,
    repeat: Option<Duration>,
    generation: u64,
}

#[derive(Default)]
struct Timers {
    entries: HashMap<(Pid, Signal), Entry>,
    heap: BinaryHeap<Reverse<(Instant, u64, Pid, u8)>>,
    generation: u64,
    shutdown: bool,
}

/// What became of a timer's signal.
pub(crate) enum Delivery {
    Delivered,
    /// The process is gone: its timer goes too.
    NoProcess,
    /// Whoever the timers served is gone: the service stops.
    Stop,
}

/// Raises a due timer's signal in its process.
pub(crate) type Deliver = Box<dyn Fn(Pid, Signal) -> Delivery + Send>;

pub(crate) struct TimerService {
    shared: Arc<(Mutex<Timers>, Condvar)>,
}

impl TimerService {
    pub(crate) fn start(deliver: Deliver) -> Option<TimerService> {
        let shared = Arc::new((Mutex::new(Timers::default()), Condvar::new()));
        let worker = Arc::clone(&shared);
        // Out of threads is the host's resource limit, not a reason to panic.
        std::thread::Builder::new()
            .name("wasmix-timers".into())
            .spawn(move || run(worker, deliver))
            .ok()?;
        Some(TimerService { shared })
    }

    /// The timers of `pid`: signal, time left, period if it repeats.
    pub(crate) fn list(&self, pid: Pid) -> Vec<(Signal, Duration, Option<Duration>)> {
        let t = lock(&self.shared.0);
        let now = Instant::now();
        let mut out: Vec<_> = t
            .entries
            .iter()
            .filter(|((p, _), _)| *p == pid)
            .map(|((_, sig), e)| (*sig, e.deadline.saturating_duration_since(now), e.repeat))
            .collect();
        out.sort_by_key(|(sig, _, _)| *sig);
        out
    }

    /// Arms, re-arms or (with `None`) cancels the timer raising `sig` in `pid`: first after
    /// `first`, then every `every` if given. Returns the time the previous one still had.
    pub(crate) fn set(
        &self,
        pid: Pid,
        sig: Signal,
        first: Option<Duration>,
        every: Option<Duration>,
    ) -> Option<Duration> {
        let (m, cv) = &*self.shared;
        let mut t = lock(m);
        let now = Instant::now();
        let previous = t
            .entries
            .remove(&(pid, sig))
            .map(|e| e.deadline.saturating_duration_since(now));
        if let Some(d) = first.filter(|d| !d.is_zero()) {
            t.generation += 1;
            let generation = t.generation;
            let deadline = now + d;
            t.entries.insert(
                (pid, sig),
                Entry {
                    deadline,
                    repeat: every.filter(|e| !e.is_zero()),
                    generation,
                },
            );
            t.heap
                .push(Reverse((deadline, generation, pid, sig.number())));
        }
        drop(t);
        cv.notify_all();
        previous
    }
}

impl Drop for TimerService {
    fn drop(&mut self) {
        let (m, cv) = &*self.shared;
        lock(m).shutdown = true;
        cv.notify_all();
    }
}

fn run(shared: Arc<(Mutex<Timers>, Condvar)>, deliver: Deliver) {
    let (m, cv) = &*shared;
    let mut t = lock(m);
    loop {
        if t.shutdown {
            return;
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(Reverse((deadline, generation, pid, sig))) = t.heap.peek().copied() {
            if deadline > now {
                break;
            }
            t.heap.pop();
            let sig = Signal::new(sig).expect("stored from a Signal");
            let Some(entry) = t.entries.get_mut(&(pid, sig)) else {
                continue;
            };
            if entry.generation != generation {
                continue; // replaced or cancelled
            }
            due.push((pid, sig));
            match entry.repeat {
                Some(every) => {
                    // Catch up without a burst if the service fell behind.
                    let mut next = entry.deadline + every;
                    if next <= now {
                        next = now + every;
                    }
                    entry.deadline = next;
                    t.heap.push(Reverse((next, generation, pid, sig.number())));
                }
                None => {
                    t.entries.remove(&(pid, sig));
                }
            }
        }
        if !due.is_empty() {
            drop(t);
            for (pid, sig) in due {
                match deliver(pid, sig) {
                    Delivery::Delivered => {}
                    Delivery::NoProcess => {
                        lock(m).entries.remove(&(pid, sig));
                    }
                    Delivery::Stop => return,
                }
            }
            t = lock(m);
            continue;
        }
        let next = t.heap.peek().map(|Reverse((d, ..))| *d);
        t = wait(cv, t, next);
    }
}
