//! OS threads for guest threads and processes, kept after their guest ends and reused: a new
//! OS thread costs a clone, fresh stack pages and the engine's per-thread signal stack, which
//! dominate a short guest thread's life.

use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// How long an idle worker waits for work before it exits.
const IDLE: Duration = Duration::from_secs(10);

/// Idle workers, each waiting on its own channel.
static IDLE_WORKERS: Mutex<Vec<Sender<Job>>> = Mutex::new(Vec::new());

/// Runs `job` on an idle worker, or on a new OS thread named `name`.
pub(crate) fn run(name: String, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    let mut job: Job = Box::new(job);
    loop {
        let idle = IDLE_WORKERS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            // A worker that timed out meanwhile hands the job back: try the next one.
            Some(worker) => match worker.send(job) {
                Ok(()) => return Ok(()),
                Err(back) => job = back.0,
            },
            None => break,
        }
    }
    std::thread::Builder::new().name(name).spawn(move || {
        job();
        let (tx, rx) = channel::<Job>();
        loop {
            IDLE_WORKERS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tx.clone());
            match rx.recv_timeout(IDLE) {
                Ok(next) => next(),
                Err(_) => return,
            }
        }
    })?;
    Ok(())
}
