//! fork and vfork through WASIX `proc_fork`: the scenario is the first argument. Built
//! asyncify-instrumented by guests/build.sh, as WASIX toolchains ship their programs.
use std::sync::atomic::{AtomicU32, Ordering};

use wasmix_guests::proc::{self, Status};
use wasmix_guests::{check, fail};

/// Written by vfork children: the parent must see it (the memory is borrowed).
static SHARED: AtomicU32 = AtomicU32::new(0);

/// The last signal the handler saw.
static SIGNALLED: AtomicU32 = AtomicU32::new(0);

#[no_mangle]
pub extern "C" fn __wasm_signal(sig: i32) {
    SIGNALLED.store(sig as u32, Ordering::SeqCst);
}

fn fork_or_die(copy: bool) -> u32 {
    match proc::fork(copy) {
        Ok(pid) => pid,
        Err(e) => fail(&format!("proc_fork failed with errno {e}")),
    }
}

fn wait(pid: u32) -> Status {
    let (e, got, status) = proc::join(Some(pid), false);
    check(e == 0 && got == pid, "join the child");
    status
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "basic" => {
            let mut data = vec![1u8; 1 << 20];
            data[5] = 7;
            let me = proc::pid();
            let pid = fork_or_die(true);
            if pid == 0 {
                let before = data[5];
                data[5] = 99;
                println!(
                    "child: ppid is parent {}, new pid {}, saw {before}",
                    proc::ppid() == me,
                    proc::pid() != me
                );
                std::process::exit(3);
            }
            let status = wait(pid);
            println!("parent: child {status:?}, mine still {}", data[5]);
        }
        "loop" => {
            let n: u32 = arg(2).parse().unwrap_or(20);
            let mut ok = 0;
            for i in 0..n {
                let pid = fork_or_die(true);
                if pid == 0 {
                    std::process::exit((i % 200) as i32);
                }
                if wait(pid) == Status::Exited((i % 200) as u16) {
                    ok += 1;
                }
            }
            println!("forked {n} children, {ok} exited as told");
        }
        "nested" => {
            let pid = fork_or_die(true);
            if pid == 0 {
                let grandchild = fork_or_die(true);
                if grandchild == 0 {
                    std::process::exit(4);
                }
                let Status::Exited(c) = wait(grandchild) else { fail("grandchild status") };
                std::process::exit(i32::from(c) + 1);
            }
            println!("nested: {:?}", wait(pid));
        }
        "pipe" => {
            let (r, w) = proc::pipe();
            let pid = fork_or_die(true);
            if pid == 0 {
                proc::close(r);
                let msg = format!("hello through the pipe from {}", proc::pid());
                proc::write_fd(w, msg.as_bytes()).expect("write");
                std::process::exit(0);
            }
            proc::close(w);
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                let n = proc::read_fd(r, &mut buf).expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&got);
            println!("{} (pid matches: {})", text.split(" from ").next().unwrap_or(""), text.ends_with(&pid.to_string()));
            println!("pipe child {:?}", wait(pid));
        }
        "snapshot" => {
            // A forked child changes its copy of a buffer and waits for a word from its
            // parent, which snapshots the two of them first; each then sums its own copy.
            let mut data = vec![1u8; 1 << 20];
            let (to_child_r, to_child_w) = proc::pipe();
            let (to_parent_r, to_parent_w) = proc::pipe();
            let pid = fork_or_die(true);
            if pid == 0 {
                proc::close(to_child_w);
                proc::close(to_parent_r);
                data[..4096].fill(9);
                let mut go = [0u8; 2];
                proc::read_fd(to_child_r, &mut go).expect("read go");
                let sum: u64 = data.iter().map(|b| u64::from(*b)).sum();
                let msg = format!("child {} sums {sum} after {}", proc::pid(), String::from_utf8_lossy(&go));
                proc::write_fd(to_parent_w, msg.as_bytes()).expect("write");
                std::process::exit(4);
            }
            proc::close(to_child_r);
            proc::close(to_parent_w);
            data[4096..8192].fill(3);
            let r = unsafe { wasmix_guests::wasix::proc_snapshot() };
            eprintln!("snapshot: {}", r.map_or_else(|e| e.name().to_owned(), |()| "ok".into()));
            proc::write_fd(to_child_w, b"go").expect("write go");
            let mut buf = [0u8; 256];
            let n = proc::read_fd(to_parent_r, &mut buf).expect("read");
            println!("{}", String::from_utf8_lossy(&buf[..n]));
            let sum: u64 = data.iter().map(|b| u64::from(*b)).sum();
            println!("parent sums {sum}; child {pid} {:?}", wait(pid));
        }
        "snapshot-vfork-exec" => {
            // A vfork child that exec'd runs a program of its own when the parent snapshots.
            let pid = fork_or_die(false);
            if pid == 0 {
                let e = proc::exec("child", &["child", "sleep", "300"]);
                std::process::exit(100 + e);
            }
            let r = unsafe { wasmix_guests::wasix::proc_snapshot() };
            eprintln!("snapshot: {}", r.map_or_else(|e| e.name().to_owned(), |()| "ok".into()));
            println!("exec'd child {:?}", wait(pid));
        }
        "vfork-exec" => {
            let pid = fork_or_die(false);
            if pid == 0 {
                let e = proc::exec("child", &["child", "exit", "7"]);
                std::process::exit(100 + e);
            }
            println!("parent resumed, child {:?}", wait(pid));
        }
        "vfork-exit" => {
            let pid = fork_or_die(false);
            if pid == 0 {
                SHARED.store(41, Ordering::SeqCst);
                std::process::exit(5);
            }
            println!(
                "parent resumed, sees {} written by the child, child {:?}",
                SHARED.load(Ordering::SeqCst),
                wait(pid)
            );
        }
        "fork-exec" => {
            let pid = fork_or_die(true);
            if pid == 0 {
                let e = proc::exec("child", &["child", "echo", "exec'd", "after", "fork"]);
                std::process::exit(100 + e);
            }
            println!("fork-exec child {:?}", wait(pid));
        }
        "signal" => {
            // The child keeps the parent's handler and gets its own signals.
            proc::register_signal_callback();
            let pid = fork_or_die(true);
            if pid == 0 {
                while SIGNALLED.load(Ordering::SeqCst) == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                println!("child: handler ran for signal {}", SIGNALLED.load(Ordering::SeqCst));
                std::process::exit(0);
            }
            check(proc::signal(pid, proc::SIGUSR1) == 0, "signal the child");
            println!("parent: child {:?}, own handler idle {}", wait(pid), SIGNALLED.load(Ordering::SeqCst) == 0);
        }
        "limit" => {
            let mut pids = Vec::new();
            // Children block reading a pipe nobody writes, so all stay alive (holding their
            // memory) until the parent kills them.
            let (hold, _writer) = proc::pipe();
            let errno = loop {
                match proc::fork(true) {
                    Ok(0) => {
                        let mut b = [0u8; 1];
                        let _ = proc::read_fd(hold, &mut b);
                        std::process::exit(0);
                    }
                    Ok(pid) => pids.push(pid),
                    Err(e) => break e,
                }
                if pids.len() > 10_000 {
                    fail("no limit reached");
                }
            };
            println!("fork failed with errno {errno} after {} children", pids.len());
            for pid in pids {
                proc::signal(pid, proc::SIGKILL);
                wait(pid);
            }
        }
        "tree" => {
            // N children computing forever; the parent says `tree ready` and waits for them.
            let n: usize = arg(2).parse().unwrap_or(16);
            for _ in 0..n {
                match proc::fork(true) {
                    Ok(0) => {
                        let mut x = 1u64;
                        loop {
                            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => fail(&format!("fork: {e}")),
                }
            }
            println!("tree ready");
            loop {
                let (e, _, _) = proc::join(None, false);
                if e != 0 {
                    break;
                }
            }
        }
        "bench" => {
            // fork + child exit + join, with `MiB` of touched memory.
            let mib: usize = arg(2).parse().unwrap_or(1);
            let rounds: usize = arg(3).parse().unwrap_or(200);
            let mut ballast = vec![0u8; mib << 20];
            for (i, b) in ballast.iter_mut().enumerate().step_by(4096) {
                *b = i as u8 | 1;
            }
            let mut times = Vec::with_capacity(rounds);
            for _ in 0..rounds {
                let t0 = proc::now_ns();
                let pid = fork_or_die(true);
                if pid == 0 {
                    std::process::exit(0);
                }
                wait(pid);
                times.push(proc::now_ns() - t0);
            }
            times.sort_unstable();
            let sum: u64 = ballast.iter().step_by(4096).map(|b| u64::from(*b)).sum();
            check(sum > 0, "ballast kept");
            // One line per measure, in ns, as bench/stacks.sh reads them.
            println!("fork_exit_join_{mib}mib {} ns", times[rounds / 2]);
        }
        other => fail(&format!("unknown scenario {other:?}")),
    }
}
