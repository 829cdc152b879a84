//! Spawns, joins, signals, pipes and execs the `child` program; its first argument picks the
//! scenario. Expects the guest directory mounted at /bin.
use wasmix_guests::proc::{self, FdOp, Status};
use wasmix_guests::{check, fail};

fn read_all(fd: u32) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match proc::read_fd(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => fail(&format!("read: {e:?}")),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `child ARGS` with its stdout on a pipe; returns (status, output).
fn capture(argv: &[&str], env: &[&str], extra: &[FdOp]) -> (Status, String) {
    let (r, w) = proc::pipe();
    let mut ops = vec![FdOp::dup2(w, 1), FdOp::close(r), FdOp::close(w)];
    ops.extend_from_slice(extra);
    let pid = proc::spawn("child", argv, env, &ops, &[]).unwrap_or_else(|e| fail(&format!("spawn: errno {e}")));
    proc::close(w);
    let out = read_all(r);
    proc::close(r);
    let (e, joined, status) = proc::join(Some(pid), false);
    check(e == 0 && joined == pid, "join returns the child");
    (status, out)
}

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    match scenario.as_str() {
        "exit" => {
            let pid = proc::spawn("child", &["child", "exit", "7"], &[], &[], &[]).expect("spawn");
            let (e, p, st) = proc::join(Some(pid), false);
            println!("join errno={e} same_pid={} status={st:?}", p == pid);
            let (e, _, _) = proc::join(None, false);
            println!("join again errno={e}");
        }
        "snapshot-with-child" => {
            // The child is snapshotted with its parent (or, ended already, as a zombie).
            let pid = proc::spawn("child", &["child", "exit", "3"], &[], &[], &[]).expect("spawn");
            let answer = match unsafe { wasmix_guests::wasix::proc_snapshot() } {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.name().to_owned(),
            };
            println!("snapshot with a child: {answer}");
            let (e, _, st) = proc::join(Some(pid), false);
            println!("join errno={e} status={st:?}");
        }
        "pipe" => {
            let (st, out) = capture(&["child", "echo", "hello", "through", "a", "pipe"], &[], &[]);
            print!("{out}");
            println!("status={st:?}");
        }
        "stdin" => {
            // parent → child stdin → child stdout → parent
            let (in_r, in_w) = proc::pipe();
            let (out_r, out_w) = proc::pipe();
            let ops = [
                FdOp::dup2(in_r, 0),
                FdOp::dup2(out_w, 1),
                FdOp::close(in_r),
                FdOp::close(in_w),
                FdOp::close(out_r),
                FdOp::close(out_w),
            ];
            let pid = proc::spawn("child", &["child", "cat"], &[], &ops, &[]).expect("spawn");
            proc::close(in_r);
            proc::close(out_w);
            proc::write_fd(in_w, b"round trip\n").expect("write");
            proc::close(in_w);
            print!("{}", read_all(out_r));
            let (_, _, st) = proc::join(Some(pid), false);
            println!("status={st:?}");
        }
        "env" => {
            let (_, out) = capture(&["child", "env", "GREETING"], &["GREETING=hi there"], &[]);
            print!("{out}");
            let (_, out) = capture(&["renamed-argv0"], &[], &[]);
            let _ = out;
            let (_, out) = capture(&["my-argv0", "argv0"], &[], &[]);
            print!("{out}");
        }
        "kill" => {
            let (r, w) = proc::pipe();
            let ops = [FdOp::dup2(w, 1), FdOp::close(r), FdOp::close(w)];
            let pid = proc::spawn("child", &["child", "spin"], &[], &ops, &[]).expect("spawn");
            proc::close(w);
            let mut buf = [0u8; 9];
            proc::read_fd(r, &mut buf).expect("child says it spins");
            let t0 = proc::now_ms();
            check(proc::signal(pid, proc::SIGKILL) == 0, "kill");
            let (_, _, st) = proc::join(Some(pid), false);
            let ms = proc::now_ms() - t0;
            println!("status={st:?}");
            println!("kill_ms_under_1000={}", ms < 1000.0);
            eprintln!("kill took {ms:.2} ms");
        }
        "kill-parked" => {
            // A multi-threaded child whose threads all sit in raw atomic waits.
            let (r, w) = proc::pipe();
            let ops = [FdOp::dup2(w, 1), FdOp::close(r), FdOp::close(w)];
            let pid = proc::spawn("threads", &["threads", "parked"], &[], &ops, &[]).expect("spawn");
            proc::close(w);
            let mut buf = [0u8; 7];
            proc::read_fd(r, &mut buf).expect("child says it parked");
            let t0 = proc::now_ms();
            check(proc::signal(pid, proc::SIGKILL) == 0, "kill");
            let (_, _, st) = proc::join(Some(pid), false);
            let ms = proc::now_ms() - t0;
            println!("status={st:?}");
            println!("kill_ms_under_1000={}", ms < 1000.0);
            eprintln!("kill took {ms:.2} ms");
        }
        "kill-blocked" => {
            // Children blocked in a sleep, a pipe read and a join of their own child.
            let (r, w) = proc::pipe();
            let cases: [&[&str]; 3] = [
                &["child", "sleep", "100000"],
                &["child", "cat"],
                &["spawner", "wait-child"],
            ];
            for argv in cases {
                let ops = [FdOp::dup2(r, 0), FdOp::close(r)];
                let pid = proc::spawn(argv[0], argv, &[], &ops, &[]).expect("spawn");
                // Give it a moment to block (the kill must work either way).
                std::thread::sleep(std::time::Duration::from_millis(30));
                check(proc::signal(pid, proc::SIGKILL) == 0, "kill");
                let (_, _, st) = proc::join(Some(pid), false);
                println!("{} -> {st:?}", argv[1]);
            }
            proc::close(w);
        }
        "wait-child" => {
            // Waits for a computing child: Ctrl-C goes to the child (the foreground job). One
            // that arrives before the join starts runs the (empty) handler instead, so the
            // sender can repeat it without a race.
            proc::register_signal_callback();
            let (r, w) = proc::pipe();
            let ops = [FdOp::dup2(w, 1), FdOp::close(r), FdOp::close(w)];
            let pid = proc::spawn("child", &["child", "spin"], &[], &ops, &[]).expect("spawn");
            proc::close(w);
            let mut buf = [0u8; 9];
            proc::read_fd(r, &mut buf).expect("child spins");
            println!("ready");
            let (_, _, st) = proc::join(Some(pid), false);
            println!("child status={st:?}");
        }
        "raise" => {
            let (st, out) = capture(&["child", "raise", "15"], &[], &[]);
            println!("status={st:?} out={:?}", out.trim());
            let (st, out) = capture(&["child", "raise", "17"], &[], &[]);
            println!("status={st:?} out={:?}", out.trim());
        }
        "nohang" => {
            let pid = proc::spawn("child", &["child", "sleep", "300"], &[], &[], &[]).expect("spawn");
            let (e, p, st) = proc::join(Some(pid), true);
            println!("nohang errno={e} pid={p} status={st:?}");
            let (e, p, st) = proc::join(None, false);
            println!("any errno={e} same_pid={} status={st:?}", p == pid);
            let (e, _, _) = proc::join(None, true);
            println!("no children errno={e}");
        }
        "exec" => {
            let (st, out) = capture(&["child", "exec", "child", "ids"], &[], &[]);
            let before: Vec<&str> = out.lines().collect();
            let pid_before = before[0].trim_start_matches("before exec pid=");
            let after = before.get(1).copied().unwrap_or("");
            println!("pid kept={}", after.starts_with(&format!("pid={pid_before} ")));
            println!("status={st:?}");
            let (st, out) = capture(&["child", "exec", "no-such-program"], &[], &[]);
            print!("{}", out.lines().nth(1).map(|l| format!("{l}\n")).unwrap_or_default());
            println!("status={st:?}");
        }
        "cloexec" => {
            let (r, w) = proc::pipe();
            let kept = wasix::wasix_32v1::fd_dup2 as unsafe extern "C" fn(i32, i32, i32, i32) -> i32;
            let mut fd_keep = 0u32;
            let mut fd_cloexec = 0u32;
            unsafe {
                kept(r as i32, 9, 0, &mut fd_keep as *mut u32 as i32);
                kept(r as i32, 10, 1, &mut fd_cloexec as *mut u32 as i32);
            }
            println!("dup2 gave {fd_keep} and {fd_cloexec}");
            let (_, out) = capture(&["child", "fds"], &[], &[]);
            print!("{out}");
            proc::close(w);
        }
        "dispositions" => {
            let (r, w) = proc::pipe();
            let ops = [FdOp::dup2(w, 1), FdOp::close(r), FdOp::close(w)];
            let pid = proc::spawn("child", &["child", "sigdisp"], &[], &ops, &[(10, 1), (12, 1), (12, 0)]).expect("spawn");
            proc::close(w);
            print!("{}", read_all(r));
            proc::join(Some(pid), false);
        }
        "spawn-path" => {
            // Each argument a path to spawn: prints the errno it answers.
            for path in std::env::args().skip(2) {
                let e = proc::spawn(&path, &["x"], &[], &[], &[]).err();
                println!("{path} errno={e:?}");
            }
        }
        "missing" => {
            let e = proc::spawn("no-such-program", &["x"], &[], &[], &[]).err();
            println!("spawn missing errno={e:?}");
            let e = proc::spawn("child", &["child"], &[], &[FdOp::dup2(99999, 5)], &[]).err();
            println!("spawn bad dup2 errno={e:?}");
        }
        "limit" => {
            // Children sleep argv[2] ms (default 100).
            let ms = std::env::args().nth(2).unwrap_or_else(|| "100".into());
            let mut pids = Vec::new();
            let errno = loop {
                match proc::spawn("child", &["child", "sleep", &ms], &[], &[], &[]) {
                    Ok(pid) => pids.push(pid),
                    Err(e) => break e,
                }
                if pids.len() > 10_000 {
                    fail("no limit");
                }
            };
            println!("spawned {} then errno={errno}", pids.len());
            // argv[3] "kill": end the sleepers now instead of waiting for them.
            if std::env::args().nth(3).as_deref() == Some("kill") {
                for &pid in &pids {
                    proc::signal(pid, proc::SIGKILL);
                }
            }
            for _ in &pids {
                proc::join(None, false);
            }
            println!("reaped all");
        }
        "bench-spawn" => {
            // spawn + exit + join of the smallest module, N times.
            let n: u64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(200);
            let t0 = proc::now_ns();
            for _ in 0..n {
                let pid = proc::spawn("/bin/tiny.wat", &["tiny"], &[], &[], &[]).expect("spawn");
                let (_, _, st) = proc::join(Some(pid), false);
                check(st == Status::Exited(0), "tiny exits 0");
            }
            println!("spawn_exit_join {} ns", (proc::now_ns() - t0) / n);
        }
        "bench-pipe" => {
            // 64 KiB writes into a pipe another process drains.
            let mib: u64 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(1024);
            let (r, w) = proc::pipe();
            let (out_r, out_w) = proc::pipe();
            let ops = [FdOp::dup2(r, 0), FdOp::dup2(out_w, 1), FdOp::close(r), FdOp::close(w), FdOp::close(out_r), FdOp::close(out_w)];
            let pid = proc::spawn("child", &["child", "drain"], &[], &ops, &[]).expect("spawn");
            proc::close(r);
            proc::close(out_w);
            let chunk = vec![7u8; 65536];
            let t0 = proc::now_ns();
            for _ in 0..mib * 16 {
                let mut off = 0;
                while off < chunk.len() {
                    off += proc::write_fd(w, &chunk[off..]).expect("write");
                }
            }
            proc::close(w);
            let got = read_all(out_r);
            let dt = proc::now_ns() - t0;
            proc::join(Some(pid), false);
            check(got.trim() == (mib * 1048576).to_string(), "reader got every byte");
            println!("pipe_throughput {:.2} GB/s", (mib * 1048576) as f64 / dt as f64);
        }
        "ids" => {
            println!("pid={} ppid={}", proc::pid(), proc::ppid());
        }
        other => fail(&format!("unknown scenario {other}")),
    }
}

/// Signals the guest handles: none do anything (only `wait-child` registers it).
#[no_mangle]
pub extern "C" fn __wasm_signal(_sig: i32) {}
