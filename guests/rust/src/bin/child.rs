//! A helper the process tests spawn and exec: its first argument says what to do.
use std::sync::atomic::{AtomicU32, Ordering};

use wasmix_guests::proc;

static SIGNALS: AtomicU32 = AtomicU32::new(0);

#[no_mangle]
pub extern "C" fn __wasm_signal(_sig: i32) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// Waits (in short sleeps, each a place a snapshot can capture) until `ready()`.
fn wait_until(ready: impl Fn() -> bool) {
    while !ready() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "exit" => std::process::exit(arg(2).parse().unwrap_or(0)),
        "echo" => println!("{}", args[2..].join(" ")),
        "env" => println!("{}", std::env::var(arg(2)).unwrap_or_else(|_| "<unset>".into())),
        "ids" => println!("pid={} ppid={}", proc::pid(), proc::ppid()),
        "argv0" => println!("{}", arg(0)),
        "cat" => {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = proc::read_fd(0, &mut buf).expect("read stdin");
                if n == 0 {
                    break;
                }
                proc::write_fd(1, &buf[..n]).expect("write stdout");
            }
        }
        "drain" => {
            // Reads stdin to its end and reports the byte count (the pipe benchmark's reader).
            let mut buf = vec![0u8; 65536];
            let mut total = 0u64;
            loop {
                let n = proc::read_fd(0, &mut buf).expect("read stdin");
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            println!("{total}");
        }
        "raise" => {
            proc::raise(arg(2).parse().unwrap_or(15));
            println!("survived");
        }
        "sleep" => {
            let ms: u64 = arg(2).parse().unwrap_or(100);
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        "spin" => {
            println!("spinning");
            let mut x = 1u64;
            loop {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                if x == 42 {
                    break;
                }
            }
            println!("{x}");
        }
        "fds" => {
            let open: Vec<String> = (0..12u32)
                .filter(|fd| unsafe { wasi::fd_fdstat_get(*fd) }.is_ok())
                .map(|fd| fd.to_string())
                .collect();
            println!("open {}", open.join(","));
        }
        "exec" => {
            println!("before exec pid={}", proc::pid());
            let rest: Vec<&str> = args[2..].iter().map(String::as_str).collect();
            let e = proc::exec(rest[0], &rest);
            println!("exec failed errno={e}");
            std::process::exit(3);
        }
        "sigdisp" => {
            // Signals this program inherited as ignored (what a libc reads at start-up).
            let x = wasix::wasix_32v1::proc_signals_sizes_get;
            let mut n = 0u32;
            unsafe { x(&mut n as *mut u32 as i32) };
            let mut buf = vec![0u8; 2 * n as usize];
            unsafe { wasix::wasix_32v1::proc_signals_get(buf.as_mut_ptr() as i32) };
            let ignored: Vec<String> = buf.chunks(2).map(|c| c[0].to_string()).collect();
            println!("ignored [{}]", ignored.join(","));
        }
        "write" => {
            // Writes its third argument and a newline to the file its second names.
            std::fs::write(arg(2), format!("{}\n", arg(3))).expect("write the file");
        }
        "produce" => {
            // Lines 1..=N on stdout, in writes of a few KiB.
            let n: u64 = arg(2).parse().unwrap_or(1000);
            let mut out = String::new();
            for i in 1..=n {
                out.push_str(&i.to_string());
                out.push('\n');
                if out.len() > 4000 {
                    proc::write_fd(1, out.as_bytes()).expect("write stdout");
                    out.clear();
                }
            }
            proc::write_fd(1, out.as_bytes()).expect("write stdout");
        }
        "sum" => {
            // Sums the numbers on stdin, one per line, once a signal came (`signal`) or a
            // file exists (any other argument: its path), or at once (none).
            match arg(2) {
                "" => {}
                "signal" => {
                    proc::register_signal_callback();
                    wait_until(|| SIGNALS.load(Ordering::SeqCst) > 0);
                }
                path => wait_until(|| std::path::Path::new(path).exists()),
            }
            let mut buf = vec![0u8; 65536];
            let (mut lines, mut sum, mut current) = (0u64, 0u64, 0u64);
            loop {
                let n = proc::read_fd(0, &mut buf).expect("read stdin");
                if n == 0 {
                    break;
                }
                for b in &buf[..n] {
                    if *b == b'\n' {
                        lines += 1;
                        sum = sum.wrapping_add(current);
                        current = 0;
                    } else {
                        current = current * 10 + u64::from(b - b'0');
                    }
                }
            }
            println!("lines {lines} sum {sum}");
        }
        "" => {}
        other => {
            eprintln!("child: unknown command {other}");
            std::process::exit(2);
        }
    }
}
