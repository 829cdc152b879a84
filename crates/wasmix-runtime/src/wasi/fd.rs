//! fd_* calls.

use wasmix_fs::abi::{fstflags, rights, Advice, Filestat, TimeChange, Whence};
use wasmix_fs::{Errno, Node, OpenFile};
use wasmtime::Result;

use wasmix_process::Trigger;

use super::{host_calls, narrow, Abi, Call, HostCalls};
use crate::host::Host;
use crate::mem::{GuestMem, Out};

/// Writes a `filestat` in the layout of `abi` (preview0 has a 32-bit `nlink`).
pub(crate) fn put_filestat(
    mem: &mut GuestMem,
    ptr: u32,
    abi: Abi,
    st: &Filestat,
) -> Result<(), Errno> {
    let mut out = [0u8; 64];
    out[0..8].copy_from_slice(&st.dev.to_le_bytes());
    out[8..16].copy_from_slice(&st.ino.to_le_bytes());
    out[16] = st.filetype;
    let len = match abi {
        Abi::Preview1 | Abi::Wasix => {
            out[24..32].copy_from_slice(&st.nlink.to_le_bytes());
            out[32..40].copy_from_slice(&st.size.to_le_bytes());
            out[40..48].copy_from_slice(&st.atim.to_le_bytes());
            out[48..56].copy_from_slice(&st.mtim.to_le_bytes());
            out[56..64].copy_from_slice(&st.ctim.to_le_bytes());
            64
        }
        Abi::Preview0 => {
            out[20..24].copy_from_slice(&(st.nlink.min(u32::MAX as u64) as u32).to_le_bytes());
            out[24..32].copy_from_slice(&st.size.to_le_bytes());
            out[32..40].copy_from_slice(&st.atim.to_le_bytes());
            out[40..48].copy_from_slice(&st.mtim.to_le_bytes());
            out[48..56].copy_from_slice(&st.ctim.to_le_bytes());
            56
        }
    };
    mem.write(ptr, &out[..len])
}

/// Decodes `whence`: preview0 numbers them CUR=0, END=1, SET=2.
fn decode_whence(abi: Abi, raw: i32) -> Result<Whence, Errno> {
    Ok(match (abi, raw) {
        (Abi::Preview1 | Abi::Wasix, 0) | (Abi::Preview0, 2) => Whence::Set,
        (Abi::Preview1 | Abi::Wasix, 1) | (Abi::Preview0, 0) => Whence::Cur,
        (Abi::Preview1 | Abi::Wasix, 2) | (Abi::Preview0, 1) => Whence::End,
        _ => return Err(Errno::Inval),
    })
}

pub(crate) fn time_changes(
    atim: i64,
    mtim: i64,
    flags: i32,
) -> Result<(TimeChange, TimeChange), Errno> {
    let flags: u16 = narrow(flags)?;
    if flags & !(fstflags::ATIM | fstflags::ATIM_NOW | fstflags::MTIM | fstflags::MTIM_NOW) != 0 {
        return Err(Errno::Inval);
    }
    Ok((
        TimeChange::decode(atim as u64, flags, fstflags::ATIM, fstflags::ATIM_NOW)?,
        TimeChange::decode(mtim as u64, flags, fstflags::MTIM, fstflags::MTIM_NOW)?,
    ))
}

/// Which way an `fd_read`/`fd_write`-family call moves bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Read,
    Write,
}

/// The one body of `fd_read`, `fd_pread`, `fd_write` and `fd_pwrite`: `offset` is the
/// positioned forms' (which leave the file's offset alone and never wait).
fn transfer(
    cx: &mut Call<'_>,
    dir: Direction,
    fd: u32,
    iovs: u32,
    count: u32,
    offset: Option<i64>,
    done: Out<u32>,
) -> Result<(), Errno> {
    let offset = match offset {
        Some(o) => Some(u64::try_from(o).map_err(|_| Errno::Inval)?),
        None => None,
    };
    let needed = match dir {
        Direction::Read => rights::FD_READ,
        Direction::Write => rights::FD_WRITE,
    };
    let at_stdin = [Trigger::FirstStdin, Trigger::Bootstrap];
    if fd == 0 && dir == Direction::Read {
        cx.host.with_file(fd, needed, |_, _| ())?;
        if super::snapshot_at(cx, &at_stdin) {
            // Captured before the read (dispatch unwinds a capture point's EINTR when a
            // snapshot wants the thread): the read runs after the snapshot, or after a
            // restore of it.
            return Err(Errno::Intr);
        }
    }
    let Call { host, mem, .. } = cx;
    let n = host.with_file(fd, needed, |host, file| loop {
        if offset.is_none() {
            crate::blocking::ready(host, file, dir == Direction::Write)?;
        }
        let n = match dir {
            Direction::Read => {
                let mut r = read_into(file, mem, iovs, count, offset);
                if r == Err(Errno::Again) {
                    // A non-blocking read that finds nothing: a busy poller's, past the backoff's
                    // cool-off, waits for the descriptor a while, then tries once more.
                    if let (Some(wait), Some(fd)) =
                        (crate::blocking::idle_poll(host), file.pollable_fd())
                    {
                        crate::blocking::wait_fds(host, &[(fd, false)], Some(wait))?;
                        r = read_into(file, mem, iovs, count, offset);
                    }
                    crate::blocking::polled(host, r.is_ok());
                } else if r.is_ok() && host.idle_poll_at.is_some() {
                    crate::blocking::polled(host, true);
                }
                r
            }
            Direction::Write => write_from(host, file, mem, iovs, count, offset),
        };
        // A socket wasmix opened stays non-blocking on the host: for a blocking guest, EAGAIN
        // means another reader (or writer) was first, so wait again.
        match n {
            Err(Errno::Again) if offset.is_none() && file.waits() => continue,
            n => break n,
        }
    })??;
    done.set(mem, n as u32);
    Ok(())
}

/// Reads into the iovecs in order. Stops after the first short read, so a stream is never
/// waited on once some data has arrived.
fn read_into(
    file: &OpenFile,
    mem: &mut GuestMem,
    iovs: u32,
    count: u32,
    offset: Option<u64>,
) -> Result<usize, Errno> {
    let table = mem.iovec_table(iovs, count)?;
    let may_continue = matches!(file.node(), Node::File(_) | Node::Device(_));
    let mut total = 0usize;
    for i in 0..table.len() {
        let (ptr, len) = table.get(mem, i)?;
        if len == 0 {
            continue;
        }
        let n = mem.fill(ptr, len, |buf| match offset {
            Some(off) => file.pread(buf, off + total as u64),
            None => file.read(buf),
        })?;
        total += n;
        if n < len as usize || !may_continue {
            break;
        }
    }
    Ok(total)
}

/// Writes the iovecs, gathered; a write to a pipe nobody reads raises SIGPIPE on the
/// writing thread, then answers EPIPE if that is survived.
fn write_from(
    host: &Host,
    file: &OpenFile,
    mem: &GuestMem,
    iovs: u32,
    count: u32,
    offset: Option<u64>,
) -> Result<usize, Errno> {
    let written = mem.gather(iovs, count, |bufs| match offset {
        Some(off) => file.pwrite(bufs, off),
        None => file.write(bufs),
    })?;
    if written == Err(Errno::Pipe) {
        let tid = host.thread.tid();
        let _ = host
            .ctx
            .process
            .thread_signal(tid, wasmix_process::Signal::PIPE);
    }
    written
}

pub(super) fn add(calls: &mut HostCalls, abi: Abi) -> Result<()> {
    host_calls!(
        calls,
        abi,
        [
            fd_advise,
            fd_allocate,
            fd_close,
            fd_datasync,
            fd_sync,
            fd_fdstat_get,
            fd_fdstat_set_flags,
            fd_fdstat_set_rights,
            fd_filestat_get,
            fd_filestat_set_size,
            fd_filestat_set_times,
            fd_pread,
            fd_read(AfterHandler),
            fd_pwrite,
            fd_write(AfterHandler),
            fd_prestat_get,
            fd_prestat_dir_name,
            fd_readdir,
            fd_renumber,
            fd_seek,
            fd_tell,
        ]
    );
    Ok(())
}

fn fd_advise(cx: &mut Call<'_>, fd: u32, offset: u64, len: u64, advice: i32) -> Result<(), Errno> {
    let advice = Advice::from_raw(narrow(advice)?).ok_or(Errno::Inval)?;
    cx.host.fs().advise(fd, offset, len, advice)
}

fn fd_allocate(cx: &mut Call<'_>, fd: u32, offset: u64, len: u64) -> Result<(), Errno> {
    cx.host.fs().allocate(fd, offset, len)
}

fn fd_close(cx: &mut Call<'_>, fd: u32) -> Result<(), Errno> {
    cx.host.fs().close(fd)
}

fn fd_datasync(cx: &mut Call<'_>, fd: u32) -> Result<(), Errno> {
    cx.host.fs().datasync(fd)
}

fn fd_sync(cx: &mut Call<'_>, fd: u32) -> Result<(), Errno> {
    cx.host.fs().sync(fd)
}

fn fd_fdstat_get(cx: &mut Call<'_>, fd: u32, ret: Out<[u8; 24]>) -> Result<(), Errno> {
    let st = cx.host.fs().fdstat(fd)?;
    let (mut filetype, mut rights) = (st.filetype, st.rights_base);
    // WASIX programs see descriptors 0-2 as Wasmer showed them: character devices that
    // cannot seek (lib/wasi/src/state/mod.rs, `WasiFs::fdstat`, at commit
    // 2c8da56e99f69f7f80bf9e243465dc23483d6ede), which their libc's isatty() takes for a
    // terminal, so it line-buffers stdout even into a pipe. Preview1 programs see the truth.
    if fd <= 2 && cx.host.ctx.image.program().speaks_wasix() {
        filetype = wasmix_fs::abi::Filetype::CharacterDevice;
        rights &= !(wasmix_fs::abi::rights::FD_SEEK | wasmix_fs::abi::rights::FD_TELL);
    }
    let mut out = [0u8; 24];
    out[0] = filetype as u8;
    out[2..4].copy_from_slice(&st.flags.to_le_bytes());
    out[8..16].copy_from_slice(&rights.to_le_bytes());
    out[16..24].copy_from_slice(&st.rights_inheriting.to_le_bytes());
    ret.set(&mut cx.mem, out);
    Ok(())
}

fn fd_fdstat_set_flags(cx: &mut Call<'_>, fd: u32, flags: i32) -> Result<(), Errno> {
    cx.host.fs().set_flags(fd, narrow(flags)?)
}

fn fd_fdstat_set_rights(
    cx: &mut Call<'_>,
    fd: u32,
    base: u64,
    inheriting: u64,
) -> Result<(), Errno> {
    cx.host.fs().restrict_rights(fd, base, inheriting)
}

fn fd_filestat_get(cx: &mut Call<'_>, fd: u32, ret: u32) -> Result<(), Errno> {
    let st = cx.host.fs().filestat(fd)?;
    put_filestat(&mut cx.mem, ret, cx.abi, &st)
}

fn fd_filestat_set_size(cx: &mut Call<'_>, fd: u32, size: u64) -> Result<(), Errno> {
    cx.host.fs().set_size(fd, size)
}

fn fd_filestat_set_times(
    cx: &mut Call<'_>,
    fd: u32,
    atim: i64,
    mtim: i64,
    flags: i32,
) -> Result<(), Errno> {
    let (a, m) = time_changes(atim, mtim, flags)?;
    cx.host.fs().set_times(fd, a, m)
}

fn fd_pread(
    cx: &mut Call<'_>,
    fd: u32,
    iovs: u32,
    count: u32,
    offset: i64,
    ret: Out<u32>,
) -> Result<(), Errno> {
    transfer(cx, Direction::Read, fd, iovs, count, Some(offset), ret)
}

fn fd_read(cx: &mut Call<'_>, fd: u32, iovs: u32, count: u32, ret: Out<u32>) -> Result<(), Errno> {
    transfer(cx, Direction::Read, fd, iovs, count, None, ret)
}

fn fd_pwrite(
    cx: &mut Call<'_>,
    fd: u32,
    iovs: u32,
    count: u32,
    offset: i64,
    ret: Out<u32>,
) -> Result<(), Errno> {
    transfer(cx, Direction::Write, fd, iovs, count, Some(offset), ret)
}

fn fd_write(cx: &mut Call<'_>, fd: u32, iovs: u32, count: u32, ret: Out<u32>) -> Result<(), Errno> {
    transfer(cx, Direction::Write, fd, iovs, count, None, ret)
}

fn fd_prestat_get(cx: &mut Call<'_>, fd: u32, ret: Out<[u8; 8]>) -> Result<(), Errno> {
    let name = cx.host.fs().prestat(fd)?;
    // `prestat`: tag 0 (a directory), then the name's length at offset 4.
    let mut out = [0u8; 8];
    out[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
    ret.set(&mut cx.mem, out);
    Ok(())
}

fn fd_prestat_dir_name(cx: &mut Call<'_>, fd: u32, buf: u32, len: u32) -> Result<(), Errno> {
    let name = cx.host.fs().prestat(fd)?;
    if (len as usize) < name.len() {
        return Err(Errno::Nametoolong);
    }
    cx.mem.write(buf, name.as_bytes())
}

fn fd_readdir(
    cx: &mut Call<'_>,
    fd: u32,
    buf: u32,
    len: u32,
    cookie: u64,
    ret: Out<u32>,
) -> Result<(), Errno> {
    let entries = cx.host.fs().readdir(fd, cookie)?;
    let used = cx.mem.fill(buf, len, |out| {
        let mut used = 0usize;
        for (i, e) in entries.iter().enumerate() {
            let mut head = [0u8; 24];
            let next = cookie + i as u64 + 1;
            head[0..8].copy_from_slice(&next.to_le_bytes());
            head[8..16].copy_from_slice(&e.ino.to_le_bytes());
            head[16..20].copy_from_slice(&(e.name.len() as u32).to_le_bytes());
            head[20] = e.filetype as u8;
            for part in [&head[..], &e.name[..]] {
                let n = part.len().min(out.len() - used);
                out[used..used + n].copy_from_slice(&part[..n]);
                used += n;
            }
            if used == out.len() {
                break;
            }
        }
        Ok::<usize, Errno>(used)
    })?;
    ret.set(&mut cx.mem, used as u32);
    Ok(())
}

fn fd_renumber(cx: &mut Call<'_>, from: u32, to: u32) -> Result<(), Errno> {
    cx.host.fs().renumber(from, to)
}

fn fd_seek(
    cx: &mut Call<'_>,
    fd: u32,
    offset: i64,
    whence: i32,
    ret: Out<u64>,
) -> Result<(), Errno> {
    let pos = cx
        .host
        .fs()
        .seek(fd, offset, decode_whence(cx.abi, whence)?)?;
    ret.set(&mut cx.mem, pos);
    Ok(())
}

fn fd_tell(cx: &mut Call<'_>, fd: u32, ret: Out<u64>) -> Result<(), Errno> {
    let pos = cx.host.fs().tell(fd)?;
    ret.set(&mut cx.mem, pos);
    Ok(())
}
