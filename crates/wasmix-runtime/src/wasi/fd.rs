//! fd_* calls.

use std::io::IoSlice;

use super::HostCalls;
use wasmix_fs::abi::{fstflags, Advice, Filestat, TimeChange, Whence};
use wasmix_fs::{Errno, Node, OpenFile};
use wasmtime::Result;

use super::{narrow, syscall, Abi};
use crate::mem::GuestMem;

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
fn whence(abi: Abi, raw: i32) -> Result<Whence, Errno> {
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

/// Reads into the iovecs in order. Stops after the first short read, so a stream is never
/// waited on once some data has arrived.
fn read_into(
    file: &OpenFile,
    mem: &mut GuestMem,
    iovs: u32,
    count: u32,
    offset: Option<u64>,
) -> Result<usize, Errno> {
    let list = mem.iovecs(iovs, count)?;
    let may_continue = matches!(file.node(), Node::File(_) | Node::Device(_));
    let mut total = 0usize;
    for (ptr, len) in list.into_iter().filter(|(_, l)| *l > 0) {
        let buf = mem.slice_mut(ptr, len)?;
        let n = match offset {
            Some(off) => file.pread(buf, off + total as u64)?,
            None => file.read(buf)?,
        };
        total += n;
        if n < len as usize || !may_continue {
            break;
        }
    }
    Ok(total)
}

fn gather<'m>(mem: &'m GuestMem, iovs: u32, count: u32) -> Result<Vec<IoSlice<'m>>, Errno> {
    let list = mem.iovecs(iovs, count)?;
    list.into_iter()
        .map(|(p, l)| mem.slice(p, l).map(IoSlice::new))
        .collect()
}

pub(super) fn add(linker: &mut HostCalls<'_>, abi: Abi) -> Result<()> {
    syscall!(
        linker,
        abi,
        "fd_advise",
        |host, mem, fd: i32, offset: i64, len: i64, advice: i32| {
            let advice = Advice::from_raw(narrow(advice)?).ok_or(Errno::Inval)?;
            host.fs.advise(fd as u32, offset as u64, len as u64, advice)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_allocate",
        |host, mem, fd: i32, offset: i64, len: i64| {
            host.fs.allocate(fd as u32, offset as u64, len as u64)
        }
    );
    syscall!(linker, abi, "fd_close", |host, mem, fd: i32| {
        host.fs.close(fd as u32)
    });
    syscall!(linker, abi, "fd_datasync", |host, mem, fd: i32| {
        host.fs.datasync(fd as u32)
    });
    syscall!(linker, abi, "fd_sync", |host, mem, fd: i32| {
        host.fs.sync(fd as u32)
    });
    syscall!(
        linker,
        abi,
        "fd_fdstat_get",
        |host, mem, fd: i32, ret: i32| {
            let st = host.fs.fdstat(fd as u32)?;
            let mut out = [0u8; 24];
            out[0] = st.filetype as u8;
            out[2..4].copy_from_slice(&st.flags.to_le_bytes());
            out[8..16].copy_from_slice(&st.rights_base.to_le_bytes());
            out[16..24].copy_from_slice(&st.rights_inheriting.to_le_bytes());
            mem.write(ret as u32, &out)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_fdstat_set_flags",
        |host, mem, fd: i32, flags: i32| { host.fs.set_flags(fd as u32, narrow(flags)?) }
    );
    syscall!(
        linker,
        abi,
        "fd_fdstat_set_rights",
        |host, mem, fd: i32, base: i64, inheriting: i64| {
            host.fs
                .restrict_rights(fd as u32, base as u64, inheriting as u64)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_filestat_get",
        |host, mem, fd: i32, ret: i32| {
            let st = host.fs.filestat(fd as u32)?;
            put_filestat(&mut mem, ret as u32, abi, &st)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_filestat_set_size",
        |host, mem, fd: i32, size: i64| { host.fs.set_size(fd as u32, size as u64) }
    );
    syscall!(
        linker,
        abi,
        "fd_filestat_set_times",
        |host, mem, fd: i32, atim: i64, mtim: i64, flags: i32| {
            let (a, m) = time_changes(atim, mtim, flags)?;
            host.fs.set_times(fd as u32, a, m)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_pread",
        |host, mem, fd: i32, iovs: i32, count: i32, offset: i64, ret: i32| {
            if offset < 0 {
                return Err(Errno::Inval);
            }
            let file = host.fs.file(fd as u32, wasmix_fs::abi::rights::FD_READ)?;
            let n = read_into(
                &file,
                &mut mem,
                iovs as u32,
                count as u32,
                Some(offset as u64),
            )?;
            mem.put_u32(ret as u32, n as u32)
        }
    );
    syscall!(
        restart linker,
        abi.module(),
        "fd_read",
        |host, mem, fd: i32, iovs: i32, count: i32, ret: i32| {
            let file = host.fs.file(fd as u32, wasmix_fs::abi::rights::FD_READ)?;
            crate::blocking::ready(host, &file, false)?;
            let n = read_into(&file, &mut mem, iovs as u32, count as u32, None)?;
            mem.put_u32(ret as u32, n as u32)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_pwrite",
        |host, mem, fd: i32, iovs: i32, count: i32, offset: i64, ret: i32| {
            if offset < 0 {
                return Err(Errno::Inval);
            }
            let n = {
                let bufs = gather(&mem, iovs as u32, count as u32)?;
                host.fs.pwrite(fd as u32, &bufs, offset as u64)?
            };
            mem.put_u32(ret as u32, n as u32)
        }
    );
    syscall!(
        restart linker,
        abi.module(),
        "fd_write",
        |host, mem, fd: i32, iovs: i32, count: i32, ret: i32| {
            let n = {
                let bufs = gather(&mem, iovs as u32, count as u32)?;
                let file = host.fs.file(fd as u32, wasmix_fs::abi::rights::FD_WRITE)?;
                crate::blocking::ready(host, &file, true)?;
                match file.write(&bufs) {
                    Err(Errno::Pipe) => {
                        // Writing to a pipe nobody reads: SIGPIPE, then EPIPE if it is survived.
                        let tid = host.thread.tid();
                        let _ = host.ctx.process.thread_signal(tid, wasmix_process::Signal::PIPE);
                        return Err(Errno::Pipe);
                    }
                    other => other?,
                }
            };
            mem.put_u32(ret as u32, n as u32)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_prestat_get",
        |host, mem, fd: i32, ret: i32| {
            let name = host.fs.prestat(fd as u32)?;
            mem.put_u8(ret as u32, 0)?;
            mem.put_u32((ret as u32).wrapping_add(4), name.len() as u32)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_prestat_dir_name",
        |host, mem, fd: i32, buf: i32, len: i32| {
            let name = host.fs.prestat(fd as u32)?;
            if (len as u32 as usize) < name.len() {
                return Err(Errno::Nametoolong);
            }
            mem.write(buf as u32, name.as_bytes())
        }
    );
    syscall!(
        linker,
        abi,
        "fd_readdir",
        |host, mem, fd: i32, buf: i32, len: i32, cookie: i64, ret: i32| {
            let entries = host.fs.readdir(fd as u32, cookie as u64)?;
            let out = mem.slice_mut(buf as u32, len as u32)?;
            let mut used = 0usize;
            for (i, e) in entries.iter().enumerate() {
                let mut head = [0u8; 24];
                let next = cookie as u64 + i as u64 + 1;
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
            mem.put_u32(ret as u32, used as u32)
        }
    );
    syscall!(
        linker,
        abi,
        "fd_renumber",
        |host, mem, from: i32, to: i32| { host.fs.renumber(from as u32, to as u32) }
    );
    syscall!(
        linker,
        abi,
        "fd_seek",
        |host, mem, fd: i32, offset: i64, raw_whence: i32, ret: i32| {
            let pos = host.fs.seek(fd as u32, offset, whence(abi, raw_whence)?)?;
            mem.put_u64(ret as u32, pos)
        }
    );
    syscall!(linker, abi, "fd_tell", |host, mem, fd: i32, ret: i32| {
        let pos = host.fs.tell(fd as u32)?;
        mem.put_u64(ret as u32, pos)
    });
    Ok(())
}
