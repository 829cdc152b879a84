//! WASIX descriptor calls: pipes, dup, eventfd, close-on-exec, the working directory, the tty.

use std::os::fd::AsFd;

use wasmix_fs::{Errno, Node};
use wasmtime::Result;

use super::{host_calls, narrow, Abi, Call, HostCalls};
use crate::host::Host;
use crate::mem::Out;

/// `fdflagsext`: close-on-exec.
const FDFLAGSEXT_CLOEXEC: u16 = 1;
/// `eventfdflags`: semaphore mode.
const EVENTFD_SEMAPHORE: u16 = 1;

pub(super) fn add(calls: &mut HostCalls) -> Result<()> {
    host_calls!(
        calls,
        Abi::Wasix,
        [
            fd_pipe,
            fd_dup,
            fd_dup2,
            fd_event,
            fd_fdflags_get,
            fd_fdflags_set,
            getcwd,
            chdir,
            tty_get,
            tty_set,
        ]
    );
    Ok(())
}

/// Both ends read and write (Wasmer's `fd_pipe` made a pair of two-way channels:
/// `lib/wasi/src/state/pipe.rs`, `WasiPipe::new`, at 06474c1); programs that use it one way
/// write the second and read the first.
fn fd_pipe(cx: &mut Call<'_>, ret_first: Out<u32>, ret_second: Out<u32>) -> Result<(), Errno> {
    let (first, second) = cx.host.fs().duplex_pipe()?;
    ret_first.set(&mut cx.mem, first);
    ret_second.set(&mut cx.mem, second);
    Ok(())
}

fn fd_dup(cx: &mut Call<'_>, fd: u32, ret: Out<u32>) -> Result<(), Errno> {
    let new = cx.host.fs().dup(fd, 0, false)?;
    ret.set(&mut cx.mem, new);
    Ok(())
}

fn fd_dup2(cx: &mut Call<'_>, fd: u32, min: u32, cloexec: i32, ret: Out<u32>) -> Result<(), Errno> {
    let new = cx.host.fs().dup(fd, min, cloexec & 1 != 0)?;
    ret.set(&mut cx.mem, new);
    Ok(())
}

fn fd_event(cx: &mut Call<'_>, initial: u64, flags: i32, ret: Out<u32>) -> Result<(), Errno> {
    let flags: u16 = narrow(flags)?;
    let fd = cx
        .host
        .fs()
        .event(initial, flags & EVENTFD_SEMAPHORE != 0)?;
    ret.set(&mut cx.mem, fd);
    Ok(())
}

fn fd_fdflags_get(cx: &mut Call<'_>, fd: u32, ret: Out<u16>) -> Result<(), Errno> {
    let cloexec = cx.host.fs().cloexec(fd)?;
    ret.set(&mut cx.mem, if cloexec { FDFLAGSEXT_CLOEXEC } else { 0 });
    Ok(())
}

fn fd_fdflags_set(cx: &mut Call<'_>, fd: u32, flags: i32) -> Result<(), Errno> {
    let flags: u16 = narrow(flags)?;
    if flags & !FDFLAGSEXT_CLOEXEC != 0 {
        return Err(Errno::Inval);
    }
    cx.host.fs().set_cloexec(fd, flags != 0)
}

/// The working directory, NUL-terminated; `*len_ptr` is the room on entry and the size
/// needed on return (EOVERFLOW when the room is short).
fn getcwd(cx: &mut Call<'_>, buf: u32, len_ptr: u32) -> Result<(), Errno> {
    let cwd = cx.host.fs().cwd();
    let room = cx.mem.u32(len_ptr)?;
    let need = cwd.len() as u32 + 1;
    cx.mem.put_u32(len_ptr, need)?;
    if room < need {
        return Err(Errno::Overflow);
    }
    cx.mem.write(buf, cwd.as_bytes())?;
    cx.mem.put_u8(buf + cwd.len() as u32, 0)
}

fn chdir(cx: &mut Call<'_>, path: u32, len: u32) -> Result<(), Errno> {
    let path = cx.mem.bytes(path, len)?;
    cx.host.fs().chdir(&path)
}

fn tty_get(cx: &mut Call<'_>, ret: Out<[u8; 24]>) -> Result<(), Errno> {
    let fs = cx.host.fs();
    let tty = |fd: u32| {
        fs.file(fd, 0)
            .ok()
            .and_then(|f| match f.node() {
                Node::Stream(s) => Some(rustix::termios::isatty(s.as_fd())),
                _ => None,
            })
            .unwrap_or(false)
    };
    let (stdin, stdout, stderr) = (tty(0), tty(1), tty(2));
    let (cols, rows) = window_size(cx.host).unwrap_or((80, 25));
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
    ret.set(&mut cx.mem, out);
    Ok(())
}

/// The host terminal is not the guest's to reconfigure; accept and ignore, as for a pipe.
fn tty_set(cx: &mut Call<'_>, ptr: u32) -> Result<(), Errno> {
    cx.mem.check(ptr, 24)
}

fn window_size(host: &Host) -> Option<(u32, u32)> {
    let f = host.fs().file(1, 0).ok()?;
    let Node::Stream(s) = f.node() else {
        return None;
    };
    let ws = rustix::termios::tcgetwinsize(s.as_fd()).ok()?;
    (ws.ws_col > 0).then_some((u32::from(ws.ws_col), u32::from(ws.ws_row)))
}
