//! A process caught mid-flight by a snapshot: four threads blocked in different places
//! (a condition variable — raw atomic waits —, a read of an empty pipe, a sleep) or computing,
//! a pipe holding bytes nobody has read yet, and a file being written. It takes a snapshot
//! itself (`proc_snapshot`), then waits for a line on stdin, and finishes the same way
//! whether it ran straight through or was restored from the snapshot: every line it prints
//! and every byte it writes depend only on its input.
//!
//! `journaled FILE` writes FILE beneath the `/data` preopen.

use std::io::{BufRead, Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use wasix as x;

fn pipe() -> (std::fs::File, std::fs::File) {
    let (r, w) = unsafe { x::fd_pipe() }.expect("fd_pipe");
    // SAFETY (guest): fresh descriptors owned by nobody else.
    unsafe { (std::fs::File::from_raw_fd(r as i32), std::fs::File::from_raw_fd(w as i32)) }
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "journaled.txt".into());
    let mut out = std::fs::File::create(format!("/data/{name}")).expect("create the output file");
    out.write_all(b"before the snapshot\n").unwrap();

    // A thread parked on a condition variable (std's locks are raw atomic waits).
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let g = Arc::clone(&gate);
    let waiter = thread::spawn(move || {
        let (lock, cv) = &*g;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        "waiter: the gate opened".to_owned()
    });

    // A thread blocked reading an empty pipe, and a pipe with bytes waiting in it.
    let (mut empty_r, mut empty_w) = pipe();
    let (mut full_r, mut full_w) = pipe();
    full_w.write_all(b"queued before the snapshot").unwrap();
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 64];
        let n = empty_r.read(&mut buf).unwrap();
        format!("reader: {}", String::from_utf8_lossy(&buf[..n]))
    });

    // A thread asleep across the snapshot.
    let sleeper = thread::spawn(|| {
        thread::sleep(Duration::from_millis(300));
        "sleeper: woke up".to_owned()
    });

    // A thread computing when the snapshot is taken: a fixed amount of work, so its result
    // does not depend on when it is interrupted.
    let started = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&started);
    let computer = thread::spawn(move || {
        s.store(true, Ordering::SeqCst);
        let mut h: u64 = 1469598103934665603;
        for i in 0..150_000_000u64 {
            h = (h ^ (i & 0xff)).wrapping_mul(1099511628211);
        }
        format!("computer: {h:016x}")
    });
    while !started.load(Ordering::SeqCst) {
        thread::yield_now();
    }

    println!("snapshot: {:?}", unsafe { x::proc_snapshot() });
    std::io::stdout().flush().unwrap();

    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
    println!("stdin: {}", line.trim_end());

    out.write_all(b"after the snapshot\n").unwrap();
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    empty_w.write_all(b"written after the snapshot").unwrap();
    let mut queued = [0u8; 26];
    full_r.read_exact(&mut queued).unwrap();
    println!("main: {}", String::from_utf8_lossy(&queued));
    for t in [waiter, reader, sleeper, computer] {
        println!("{}", t.join().unwrap());
    }
    out.write_all(b"done\n").unwrap();
    println!("done");
}
