//! Guest-sent kills, for the kill table (bench/kill.sh): `killer SIGNAL READY PROGRAM ARGS...`
//! spawns PROGRAM (found along /bin) with its stdin and stdout on pipes, waits until its first
//! line is READY (`-`: no line; it waits 300 ms instead), sends it SIGNAL (a number) with
//! proc_signal and joins it: prints `gone in X ms: STATUS`, the time from the send to the join.
use wasmix_guests::proc::{self, FdOp};
use wasmix_guests::fail;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: killer SIGNAL READY|- PROGRAM [ARGS...]");
        std::process::exit(2);
    }
    let sig: i32 = args[1].parse().unwrap_or_else(|_| fail("SIGNAL is a number"));
    let argv: Vec<&str> = args[3..].iter().map(String::as_str).collect();
    let (out_r, out_w) = proc::pipe();
    let (in_r, in_w) = proc::pipe();
    let ops = [
        FdOp::dup2(out_w, 1),
        FdOp::dup2(in_r, 0),
        FdOp::close(out_r),
        FdOp::close(out_w),
        FdOp::close(in_r),
        FdOp::close(in_w),
    ];
    let pid = proc::spawn(argv[0], &argv, &["PATH=/bin"], &ops, &[])
        .unwrap_or_else(|e| fail(&format!("spawn {}: errno {e}", argv[0])));
    proc::close(out_w);
    proc::close(in_r);
    if args[2] == "-" {
        std::thread::sleep(std::time::Duration::from_millis(300));
    } else {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while byte[0] != b'\n' {
            match proc::read_fd(out_r, &mut byte) {
                Ok(1) => line.push(byte[0]),
                _ => fail(&format!("{} ended before saying {}", argv[0], args[2])),
            }
        }
        if String::from_utf8_lossy(&line).trim_end() != args[2] {
            fail(&format!("{} said {:?}", argv[0], String::from_utf8_lossy(&line)));
        }
    }
    let t0 = proc::now_ns();
    if proc::signal(pid, sig) != 0 {
        fail("proc_signal failed");
    }
    let (e, _, status) = proc::join(Some(pid), false);
    let ms = (proc::now_ns() - t0) as f64 / 1e6;
    if e != 0 {
        fail(&format!("join: errno {e}"));
    }
    println!("gone in {ms:.3} ms: {status:?}");
    // The writer end of its stdin stays open until here, so a reading child stays blocked.
    proc::close(in_w);
}
