//! WASIX descriptor calls: pipes, dup, eventfd, close-on-exec, the working directory, the tty.

use std::os::fd::AsFd;

use wasmix_fs::{Errno, Node};
use wasmtime::Result;

use super::{narrow, syscall, Abi, HostCalls};

const WASIX: Abi = Abi::Wasix;

/// `fdflagsext`: close-on-exec.
const FDFLAGSEXT_CLOEXEC: u16 = 1;
/// `eventfdflags`: semaphore mode.
const EVENTFD_SEMAPHORE: u16 = 1;

pub(super) fn add(linker: &mut HostCalls<'_>) -> Result<()> {
    syscall!(
        linker,
        WASIX,
        "fd_pipe",
        |host, mem, ret_r: i32, ret_w: i32| {
            // Check both result slots first so a bad pointer leaks no descriptors.
            mem.slice(ret_r as u32, 4)?;
            mem.slice(ret_w as u32, 4)?;
            let (r, w) = host.fs.pipe()?;
            mem.put_u32(ret_r as u32, r)?;
            mem.put_u32(ret_w as u32, w)
        }
    );
    syscall!(linker, WASIX, "fd_dup", |host, mem, fd: i32, ret: i32| {
        mem.slice(ret as u32, 4)?;
        let new = host.fs.dup(fd as u32, 0, false)?;
        mem.put_u32(ret as u32, new)
    });
    syscall!(
        linker,
        WASIX,
        "fd_dup2",
        |host, mem, fd: i32, min: i32, cloexec: i32, ret: i32| {
            mem.slice(ret as u32, 4)?;
            let new = host.fs.dup(fd as u32, min as u32, cloexec & 1 != 0)?;
            mem.put_u32(ret as u32, new)
        }
    );
    syscall!(
        linker,
        WASIX,
        "fd_event",
        |host, mem, initial: i64, flags: i32, ret: i32| {
            let flags: u16 = narrow(flags)?;
            mem.slice(ret as u32, 4)?;
            let fd = host
                .fs
                .event(initial as u64, flags & EVENTFD_SEMAPHORE != 0)?;
            mem.put_u32(ret as u32, fd)
        }
    );
    syscall!(
        linker,
        WASIX,
        "fd_fdflags_get",
        |host, mem, fd: i32, ret: i32| {
            let cloexec = host.fs.cloexec(fd as u32)?;
            mem.put_u16(ret as u32, if cloexec { FDFLAGSEXT_CLOEXEC } else { 0 })
        }
    );
    syscall!(
        linker,
        WASIX,
        "fd_fdflags_set",
        |host, mem, fd: i32, flags: i32| {
            let flags: u16 = narrow(flags)?;
            if flags & !FDFLAGSEXT_CLOEXEC != 0 {
                return Err(Errno::Inval);
            }
            host.fs.set_cloexec(fd as u32, flags != 0)
        }
    );
    syscall!(
        linker,
        WASIX,
        "getcwd",
        |host, mem, buf: i32, len_ptr: i32| {
            let cwd = host.fs.cwd();
            let room = mem.u32(len_ptr as u32)?;
            let need = cwd.len() as u32 + 1;
            mem.put_u32(len_ptr as u32, need)?;
            if room < need {
                return Err(Errno::Overflow);
            }
            mem.write(buf as u32, cwd.as_bytes())?;
            mem.put_u8(buf as u32 + cwd.len() as u32, 0)
        }
    );
    syscall!(linker, WASIX, "chdir", |host, mem, path: i32, len: i32| {
        let path = mem.slice(path as u32, len as u32)?.to_vec();
        host.fs.chdir(&path)
    });
    syscall!(linker, WASIX, "tty_get", |host, mem, ptr: i32| {
        let tty = |fd: u32| {
            host.fs
                .file(fd, 0)
                .ok()
                .and_then(|f| match f.node() {
                    Node::Stream(s) => Some(rustix::termios::isatty(s.as_fd())),
                    _ => None,
                })
                .unwrap_or(false)
        };
        let (stdin, stdout, stderr) = (tty(0), tty(1), tty(2));
        let (cols, rows) = window_size(host).unwrap_or((80, 25));
        let mut out = [0u8; 24];
        out[0..4].copy_from_slice(&cols.to_le_bytes());
        out[4..8].copy_from_slice(&rows.to_le_bytes());
        out[8..12].copy_from_slice(&(cols * 8).to_le_bytes());
        out[12..16].copy_from_slice(&(rows * 16).to_le_bytes());
        out[16] = stdin as u8;
        out[17] = stdout as u8;
        out[18] = stderr as u8;
        // echo and line buffering: what a terminal in cooked mode does.
        out[19] = stdin as u8;
        out[20] = stdin as u8;
        mem.write(ptr as u32, &out)
    });
    // The host terminal is not the guest's to reconfigure; accept and ignore, as for a pipe.
    syscall!(linker, WASIX, "tty_set", |host, mem, ptr: i32| {
        mem.slice(ptr as u32, 24)?;
        Ok(())
    });
    Ok(())
}

fn window_size(host: &crate::host::Host) -> Option<(u32, u32)> {
    let f = host.fs.file(1, 0).ok()?;
    let Node::Stream(s) = f.node() else {
        return None;
    };
    let ws = rustix::termios::tcgetwinsize(s.as_fd()).ok()?;
    (ws.ws_col > 0).then_some((u32::from(ws.ws_col), u32::from(ws.ws_row)))
}
