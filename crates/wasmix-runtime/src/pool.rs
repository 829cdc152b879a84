//! OS threads for guest threads and processes, kept after their guest ends and reused: a new
//! OS thread costs a clone, fresh stack pages and the engine's per-thread signal stack, which
//! dominate a short guest thread's life.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Mutex;
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// How long an idle worker waits for work before it exits.
const IDLE: Duration = Duration::from_secs(10);

/// How long a worker that just finished spins for its next job before it sleeps: a program
/// starting threads one after another (spawn, join, spawn) sends the next within
/// microseconds, and a sleeping worker's wake-up costs more than the thread's whole run.
const SPIN: Duration = Duration::from_micros(50);

/// Idle workers, each waiting on its own channel, with the worker's number.
struct IdleList(Mutex<Vec<(u64, Sender<Job>)>>);

impl IdleList {
    const fn new() -> IdleList {
        IdleList(Mutex::new(Vec::new()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Sender<Job>)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static IDLE_WORKERS: IdleList = IdleList::new();

static NEXT_WORKER: AtomicU64 = AtomicU64::new(0);

/// Runs `job` on an idle worker, or on a new OS thread named `name`.
pub(crate) fn run(name: String, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let mut job: Job = Box::new(job);
    loop {
        let idle = IDLE_WORKERS.lock().pop();
        match idle {
            // A worker that exited meanwhile hands the job back: try the next one.
            Some((_, worker)) => match worker.send(job) {
                Ok(()) => return Ok(()),
                Err(back) => job = back.0,
            },
            None => break,
        }
    }
    std::thread::Builder::new().name(name).spawn(move || {
        job();
        let me = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel::<Job>();
        loop {
            IDLE_WORKERS.lock().push((me, tx.clone()));
            match next_job(&IDLE_WORKERS, me, &rx, IDLE) {
                Some(next) => next(),
                None => return,
            }
        }
    })?;
    Ok(())
}

/// The next job for worker `me` (listed in `list`, receiving on `rx`), or `None` once it
/// has waited `idle` and is no longer listed.
fn next_job(list: &IdleList, me: u64, rx: &Receiver<Job>, idle: Duration) -> Option<Job> {
    let mut spun = None;
    if crate::spin::until_yielding(SPIN, || match rx.try_recv() {
        Ok(job) => {
            spun = Some(job);
            true
        }
        Err(TryRecvError::Empty) => false,
        Err(TryRecvError::Disconnected) => true,
    }) {
        if let Some(job) = spun {
            return Some(job);
        }
    }
    loop {
        if let Ok(job) = rx.recv_timeout(idle) {
            return Some(job);
        }
        // Timed out. Still listed: nobody can send now that it is taken off, so it may go.
        // Not listed: a sender took it and its job is on the way (it never loses one).
        let mut idle = list.lock();
        if let Some(at) = idle.iter().position(|(n, _)| *n == me) {
            idle.swap_remove(at);
            return None;
        }
        drop(idle);
        if let Ok(job) = rx.recv() {
            return Some(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn every_job_runs() {
        let (done, finished) = sync_channel::<u32>(0);
        for i in 0..50 {
            let done = done.clone();
            run("pool-test".into(), move || done.send(i).unwrap()).unwrap();
            // Whether a worker was reused depends on timing (and on other tests sharing the
            // pool); that each job runs does not.
            assert_eq!(finished.recv().unwrap(), i);
        }
    }

    #[test]
    fn an_idle_worker_leaves_the_list_when_it_exits() {
        let list = IdleList::new();
        let (tx, rx) = channel::<Job>();
        list.lock().push((7, tx));
        assert!(next_job(&list, 7, &rx, Duration::from_millis(1)).is_none());
        assert!(list.lock().is_empty());
    }

    /// A sender that took the worker off the list just as the worker's wait ran out: the job
    /// still runs (it was once dropped with the exiting worker's channel).
    #[test]
    fn a_job_sent_as_the_idle_wait_runs_out_is_not_lost() {
        for round in 0..20 {
            let list = IdleList::new();
            let (tx, rx) = channel::<Job>();
            list.lock().push((7, tx));
            // What `run` does: takes the worker off the list, then sends.
            let sender = list.lock().pop().unwrap().1;
            let t = std::thread::spawn(move || {
                for _ in 0..round {
                    std::thread::yield_now();
                }
                sender.send(Box::new(|| {})).map_err(drop).unwrap();
            });
            let job = next_job(&list, 7, &rx, Duration::from_micros(1));
            t.join().unwrap();
            assert!(job.is_some(), "round {round}: the job was lost");
        }
    }
}
