//! The syscall trace, strace's way: with `WASMIX_LOG=wasmix::syscalls=trace`, one line per
//! host call —
//!
//! ```text
//! [1:1] path_open(3, 1, "data/in.txt", 11, 0, 8388606, 8388606, 0, 1048560) = 0 <41µs>
//! [1:1] fd_write(1, 1048520, 1, 1048516) "hello\n" = 0 <9µs>
//! [1:2] fd_read(5, 1048400, 1, 1048396) = Again (6) <2µs>
//! ```
//!
//! — `[pid:tid]`, the call's name (an older generation's as `name@N`), its arguments as the
//! guest passed them with paths shown as text in their place, the bytes written or read
//! (the first 64), the result (0, or the errno's name and number) and the time spent.
//! Off, it costs each call one check of whether the target is enabled. Calls of other
//! shapes (`proc_exit`, `thread-spawn`, the stack captures, the rewritten atomics) are not
//! traced.

use std::fmt::Write as _;
use std::time::Instant;

use wasmix_fs::Errno;
use wasmtime::Caller;

use crate::host::{split, Host};
use crate::mem::GuestMem;

/// How much of a buffer a line shows.
const SHOWN: usize = 64;

/// Whether calls are traced now.
pub(super) fn enabled() -> bool {
    tracing::enabled!(target: "wasmix::syscalls", tracing::Level::TRACE)
}

/// A call being traced: what the line shows of it before it runs.
pub(super) struct Traced {
    args: String,
    written: Option<String>,
    started: Instant,
}

/// Notes a call before it runs.
pub(super) fn start(caller: &mut Caller<'_, Host>, name: &str, args: &[i64]) -> Traced {
    let (mem, _) = split(caller);
    let base = base_name(name);
    let paths = path_args(base);
    let mut shown = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            shown.push_str(", ");
        }
        match paths.iter().find(|(p, _)| *p == i) {
            Some(&(p, l)) => {
                let text = mem
                    .bytes(args[p] as u32, (args[l] as u32).min(4096))
                    .map(|b| quote(&b, usize::MAX))
                    .unwrap_or_else(|_| format!("{:#x} (not in memory)", args[p] as u32));
                shown.push_str(&text);
            }
            None => {
                let _ = write!(shown, "{a}");
            }
        }
    }
    let written = match base {
        "fd_write" | "fd_pwrite" | "sock_send" => {
            iovec_bytes(&mem, arg(args, 1), arg(args, 2), SHOWN)
        }
        _ => None,
    };
    Traced {
        args: shown,
        written,
        started: Instant::now(),
    }
}

/// Writes the call's line once it returned `code`.
pub(super) fn finish(
    caller: &mut Caller<'_, Host>,
    name: &str,
    args: &[i64],
    t: Traced,
    code: i32,
) {
    let took = t.started.elapsed();
    let (mem, host) = split(caller);
    let base = base_name(name);
    // What a read brought in: the count is in its result slot.
    let read = match (base, code) {
        ("fd_read", 0) => read_bytes(&mem, args, 3),
        ("fd_pread", 0) => read_bytes(&mem, args, 4),
        _ => None,
    };
    let data = t
        .written
        .or(read)
        .map(|d| format!(" {d}"))
        .unwrap_or_default();
    let result = match u16::try_from(code).ok().filter(|c| *c != 0) {
        None if code == 0 => "0".to_owned(),
        Some(raw) => match Errno::from_raw(raw) {
            Some(e) => format!("{e:?} ({raw})"),
            None => code.to_string(),
        },
        None => code.to_string(),
    };
    tracing::trace!(
        target: "wasmix::syscalls",
        "[{}:{}] {name}({}){data} = {result} <{took:?}>",
        host.ctx.process.pid(),
        host.thread.tid(),
        t.args,
    );
}

fn arg(args: &[i64], i: usize) -> u32 {
    args.get(i).copied().unwrap_or(0) as u32
}

/// The call's name without its generation suffix.
fn base_name(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// Which arguments are paths: (pointer, length) positions, per call.
fn path_args(name: &str) -> &'static [(usize, usize)] {
    match name {
        "path_open" | "path_open2" | "path_filestat_get" | "path_filestat_set_times" => &[(2, 3)],
        "path_create_directory"
        | "path_remove_directory"
        | "path_unlink_file"
        | "path_readlink" => &[(1, 2)],
        "path_rename" => &[(1, 2), (4, 5)],
        "path_symlink" => &[(0, 1), (3, 4)],
        "path_link" => &[(2, 3), (5, 6)],
        "chdir" | "proc_spawn" | "proc_spawn2" => &[(0, 1)],
        "proc_exec" | "proc_exec2" | "proc_exec3" => &[(0, 1), (2, 3)],
        _ => &[],
    }
}

/// The first `limit` bytes an iovec table at `iovs` (`count` entries) points to, quoted.
fn iovec_bytes(mem: &GuestMem, iovs: u32, count: u32, limit: usize) -> Option<String> {
    let mut bytes = Vec::new();
    for i in 0..count.min(16) {
        let at = iovs.checked_add(i.checked_mul(8)?)?;
        let (buf, len) = (mem.u32(at).ok()?, mem.u32(at.checked_add(4)?).ok()?);
        let want = (limit.saturating_sub(bytes.len())).min(len as usize) as u32;
        bytes.extend_from_slice(&mem.bytes(buf, want).ok()?);
        if bytes.len() >= limit {
            break;
        }
    }
    Some(quote(&bytes, limit))
}

/// What a read put into its iovecs, its count read from argument `slot`.
fn read_bytes(mem: &GuestMem, args: &[i64], slot: usize) -> Option<String> {
    let n = mem.u32(arg(args, slot)).ok()? as usize;
    iovec_bytes(mem, arg(args, 1), arg(args, 2), n.min(SHOWN))
}

/// `bytes` as a quoted string: printable ASCII as is, the rest escaped; "..." past `limit`.
fn quote(bytes: &[u8], limit: usize) -> String {
    let mut s = String::from("\"");
    for &b in bytes.iter().take(limit) {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    if bytes.len() > limit {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_quoted_like_strace() {
        assert_eq!(quote(b"a\"b\\\n\x01", 64), "\"a\\\"b\\\\\\n\\x01\"");
        assert_eq!(quote(b"abcdef", 3), "\"abc\"...");
    }

    #[test]
    fn generation_suffixes_do_not_hide_a_calls_paths() {
        assert_eq!(base_name("proc_join@2"), "proc_join");
        assert_eq!(path_args(base_name("path_open@2")), &[(2, 3)]);
        assert!(path_args("fd_write").is_empty());
    }
}
