//! fork from a multi-threaded process: only the forking thread lives on in the child, which
//! still has the memory every thread wrote.
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;

use wasmix_guests::proc::{self, Status};

static PROGRESS: AtomicU32 = AtomicU32::new(0);

fn main() {
    let (go, wait) = mpsc::channel::<()>();
    let (ready, started) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        PROGRESS.store(1, Ordering::SeqCst);
        ready.send(()).unwrap();
        wait.recv().unwrap(); // parked in a futex wait while the main thread forks
        PROGRESS.store(2, Ordering::SeqCst);
    });
    started.recv().unwrap();
    let pid = match proc::fork(true) {
        Ok(pid) => pid,
        Err(e) => wasmix_guests::fail(&format!("proc_fork failed with errno {e}")),
    };
    if pid == 0 {
        println!(
            "child: sees the worker's progress {}, runs alone",
            PROGRESS.load(Ordering::SeqCst)
        );
        std::process::exit(9);
    }
    go.send(()).unwrap();
    worker.join().unwrap();
    let (e, _, status) = proc::join(Some(pid), false);
    println!(
        "parent: worker finished ({}), child {:?}",
        PROGRESS.load(Ordering::SeqCst),
        if e == 0 { status } else { Status::Nothing }
    );
}
