//! path_* calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmix_fs::Errno;
use wasmix_process::WaitError;
use wasmtime::Result;

use super::fd::{put_filestat, time_changes};
use super::{host_calls, narrow, Abi, Call, HostCalls};
use crate::mem::Out;

/// `lookupflags`: bit 0 follows a final symlink.
fn follows(flags: i32) -> bool {
    flags & 1 != 0
}

pub(super) fn add(calls: &mut HostCalls, abi: Abi) -> Result<()> {
    host_calls!(
        calls,
        abi,
        [
            path_create_directory,
            path_remove_directory,
            path_unlink_file,
            path_filestat_get,
            path_filestat_set_times,
            path_link,
            path_open,
            path_readlink,
            path_rename,
            path_symlink,
        ]
    );
    if abi == Abi::Wasix {
        host_calls!(calls, abi, [path_open2]);
    }
    Ok(())
}

fn path_create_directory(cx: &mut Call<'_>, fd: u32, p: u32, len: u32) -> Result<(), Errno> {
    cx.host.fs().create_dir(fd, &cx.mem.bytes(p, len)?)
}

fn path_remove_directory(cx: &mut Call<'_>, fd: u32, p: u32, len: u32) -> Result<(), Errno> {
    cx.host.fs().remove_dir(fd, &cx.mem.bytes(p, len)?)
}

fn path_unlink_file(cx: &mut Call<'_>, fd: u32, p: u32, len: u32) -> Result<(), Errno> {
    cx.host.fs().unlink(fd, &cx.mem.bytes(p, len)?)
}

fn path_filestat_get(
    cx: &mut Call<'_>,
    fd: u32,
    flags: i32,
    p: u32,
    len: u32,
    ret: u32,
) -> Result<(), Errno> {
    let st = cx
        .host
        .fs()
        .path_filestat(fd, follows(flags), &cx.mem.bytes(p, len)?)?;
    put_filestat(&mut cx.mem, ret, cx.abi, &st)
}

#[allow(clippy::too_many_arguments)]
fn path_filestat_set_times(
    cx: &mut Call<'_>,
    fd: u32,
    flags: i32,
    p: u32,
    len: u32,
    atim: i64,
    mtim: i64,
    fst: i32,
) -> Result<(), Errno> {
    let (a, m) = time_changes(atim, mtim, fst)?;
    let path = cx.mem.bytes(p, len)?;
    cx.host.fs().path_set_times(fd, follows(flags), &path, a, m)
}

#[allow(clippy::too_many_arguments)]
fn path_link(
    cx: &mut Call<'_>,
    old_fd: u32,
    flags: i32,
    old: u32,
    old_len: u32,
    new_fd: u32,
    new: u32,
    new_len: u32,
) -> Result<(), Errno> {
    let old = cx.mem.bytes(old, old_len)?;
    let new = cx.mem.bytes(new, new_len)?;
    cx.host
        .fs()
        .link(old_fd, follows(flags), &old, new_fd, &new)
}

#[allow(clippy::too_many_arguments)]
fn path_open(
    cx: &mut Call<'_>,
    fd: u32,
    dirflags: i32,
    p: u32,
    len: u32,
    oflags: i32,
    base: u64,
    inheriting: u64,
    fdflags: i32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    path_open2(
        cx, fd, dirflags, p, len, oflags, base, inheriting, fdflags, 0, ret,
    )
}

/// WASIX `path_open` with `fdflagsext` (bit 0: close-on-exec). The new descriptor goes to
/// `ret`, checked before anything is opened, so a bad pointer leaks no descriptor.
#[allow(clippy::too_many_arguments)]
fn path_open2(
    cx: &mut Call<'_>,
    fd: u32,
    dirflags: i32,
    p: u32,
    len: u32,
    oflags: i32,
    base: u64,
    inheriting: u64,
    fdflags: i32,
    fdflagsext: i32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    let oflags: u16 = narrow(oflags)?;
    let fdflags: u16 = narrow(fdflags)?;
    if oflags & !0xf != 0 || fdflags & !wasmix_fs::abi::fdflags::ALL != 0 {
        return Err(Errno::Inval);
    }
    let path = cx.mem.bytes(p, len)?;
    let fs = Arc::clone(cx.host.fs());
    // A FIFO opened for writing waits for a reader (Again from the file system, which never
    // blocks): here, where a signal or a kill ends the wait.
    let mut pause = Duration::from_millis(1);
    let new = loop {
        match fs.open(
            fd,
            follows(dirflags),
            &path,
            oflags,
            base,
            inheriting,
            fdflags,
        ) {
            Err(Errno::Again) if fdflags & wasmix_fs::abi::fdflags::NONBLOCK == 0 => {
                if pause == Duration::from_millis(1) {
                    tracing::debug!(
                        "path_open: `{}` is a FIFO with no reader yet; waiting for one",
                        String::from_utf8_lossy(&path)
                    );
                }
                let until = Instant::now() + pause;
                match cx.host.thread.wait_for(Some(until), None, || None::<()>) {
                    Err(WaitError::TimedOut) | Ok(()) => {}
                    // An open is no capture point: a snapshot waits for it (its watchdog
                    // gives up after its timeout); the next round of the loop sees a kill.
                    Err(WaitError::Checkpoint) => std::thread::sleep(pause),
                    // A signal or a kill: the open has done nothing yet.
                    Err(_) => return Err(Errno::Intr),
                }
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => break other?,
        }
    };
    if fdflagsext & 1 != 0 {
        fs.set_cloexec(new, true)?;
    }
    drop(path);
    ret.set(&mut cx.mem, new);
    Ok(())
}

fn path_readlink(
    cx: &mut Call<'_>,
    fd: u32,
    p: u32,
    len: u32,
    buf: u32,
    buf_len: u32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    let target = cx.host.fs().readlink(fd, &cx.mem.bytes(p, len)?)?;
    let n = target.len().min(buf_len as usize);
    cx.mem.write(buf, &target[..n])?;
    ret.set(&mut cx.mem, n as u32);
    Ok(())
}

fn path_rename(
    cx: &mut Call<'_>,
    fd: u32,
    old: u32,
    old_len: u32,
    new_fd: u32,
    new: u32,
    new_len: u32,
) -> Result<(), Errno> {
    let old = cx.mem.bytes(old, old_len)?;
    let new = cx.mem.bytes(new, new_len)?;
    cx.host.fs().rename(fd, &old, new_fd, &new)
}

fn path_symlink(
    cx: &mut Call<'_>,
    old: u32,
    old_len: u32,
    fd: u32,
    new: u32,
    new_len: u32,
) -> Result<(), Errno> {
    let old = cx.mem.bytes(old, old_len)?;
    let new = cx.mem.bytes(new, new_len)?;
    cx.host.fs().symlink(&old, fd, &new)
}
