//! Snapshot triggers met inside calls and on signals.
//!
//! * `environ`: says `started`, then reads `GREETING` (first-environ).
//! * `clock` / `random`: says `started`, then reads the wall clock (the time in ns) or 16
//!   random bytes (non-deterministic).
//! * `signals`: counts signals in its handler (each says `got signal N`), says `ready`,
//!   then echoes stdin lines until EOF.
//! * `alarm`: arms a one-shot 20 ms SIGALRM, says `armed`, then sleeps until the handler
//!   (which says `got signal 14`) has run.
//! * `stop`: says `stopping`, raises SIGSTOP on itself, says `continued`.
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use wasmix_guests::proc;

const SIGSTOP: i32 = 18;

static ALARMS: AtomicU32 = AtomicU32::new(0);

#[no_mangle]
pub extern "C" fn __wasm_signal(sig: i32) {
    if sig == proc::SIGALRM {
        ALARMS.fetch_add(1, Ordering::SeqCst);
    }
    let _ = proc::write_fd(1, format!("got signal {sig}\n").as_bytes());
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    match mode.as_str() {
        "environ" => {
            say("started");
            let v = std::env::var("GREETING").unwrap_or_else(|_| "unset".into());
            say(&format!("GREETING={v}"));
        }
        "clock" => {
            say("started");
            let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            say(&format!("time {}", t.as_nanos()));
        }
        "random" => {
            say("started");
            let mut b = [0u8; 16];
            // SAFETY: the buffer is 16 writable bytes.
            unsafe { wasmix_guests::wasi::random_get(b.as_mut_ptr(), b.len()) }.unwrap();
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            say(&format!("random {hex}"));
        }
        "signals" => {
            proc::register_signal_callback();
            say("ready");
            for line in std::io::stdin().lock().lines() {
                say(&format!("line {}", line.unwrap()));
            }
        }
        "alarm" => {
            proc::register_signal_callback();
            proc::raise_interval(proc::SIGALRM, 20, false);
            say("armed");
            while ALARMS.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        "stop" => {
            say("stopping");
            proc::raise(SIGSTOP);
            say("continued");
        }
        other => {
            eprintln!("unknown mode `{other}`");
            std::process::exit(2);
        }
    }
}
