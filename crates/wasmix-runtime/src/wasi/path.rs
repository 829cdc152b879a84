//! path_* calls.

use super::HostCalls;
use wasmix_fs::Errno;
use wasmtime::Result;

use super::fd::{put_filestat, time_changes};
use super::{narrow, syscall, Abi};

/// `lookupflags`: bit 0 follows a final symlink.
fn follows(flags: i32) -> bool {
    flags & 1 != 0
}

/// `path_open` and WASIX `path_open2` (which adds close-on-exec): the new descriptor.
#[allow(clippy::too_many_arguments)]
fn open(
    host: &mut crate::host::Host,
    fd: i32,
    dirflags: i32,
    path: &[u8],
    oflags: i32,
    base: i64,
    inheriting: i64,
    fdflags: i32,
    cloexec: bool,
) -> Result<u32, Errno> {
    let oflags: u16 = narrow(oflags)?;
    let fdflags: u16 = narrow(fdflags)?;
    if oflags & !0xf != 0 || fdflags & !wasmix_fs::abi::fdflags::ALL != 0 {
        return Err(Errno::Inval);
    }
    let new = host.fs.open(
        fd as u32,
        follows(dirflags),
        path,
        oflags,
        base as u64,
        inheriting as u64,
        fdflags,
    )?;
    if cloexec {
        host.fs.set_cloexec(new, true)?;
    }
    Ok(new)
}

/// Writes a new descriptor to the guest, closing it again if the guest's pointer is bad.
fn hand_back(
    host: &crate::host::Host,
    mem: &mut crate::mem::GuestMem,
    ret: i32,
    new: u32,
) -> Result<(), Errno> {
    mem.put_u32(ret as u32, new).inspect_err(|_| {
        let _ = host.fs.close(new);
    })
}

pub(super) fn add(linker: &mut HostCalls<'_>, abi: Abi) -> Result<()> {
    syscall!(
        linker,
        abi,
        "path_create_directory",
        |host, mem, fd: i32, p: i32, len: i32| {
            host.fs
                .create_dir(fd as u32, mem.slice(p as u32, len as u32)?)
        }
    );
    syscall!(
        linker,
        abi,
        "path_remove_directory",
        |host, mem, fd: i32, p: i32, len: i32| {
            host.fs
                .remove_dir(fd as u32, mem.slice(p as u32, len as u32)?)
        }
    );
    syscall!(
        linker,
        abi,
        "path_unlink_file",
        |host, mem, fd: i32, p: i32, len: i32| {
            host.fs.unlink(fd as u32, mem.slice(p as u32, len as u32)?)
        }
    );
    syscall!(
        linker,
        abi,
        "path_filestat_get",
        |host, mem, fd: i32, flags: i32, p: i32, len: i32, ret: i32| {
            let st = host.fs.path_filestat(
                fd as u32,
                follows(flags),
                mem.slice(p as u32, len as u32)?,
            )?;
            put_filestat(&mut mem, ret as u32, abi, &st)
        }
    );
    syscall!(
        linker,
        abi,
        "path_filestat_set_times",
        |host, mem, fd: i32, flags: i32, p: i32, len: i32, atim: i64, mtim: i64, fst: i32| {
            let (a, m) = time_changes(atim, mtim, fst)?;
            host.fs.path_set_times(
                fd as u32,
                follows(flags),
                mem.slice(p as u32, len as u32)?,
                a,
                m,
            )
        }
    );
    syscall!(
        linker,
        abi,
        "path_link",
        |host,
         mem,
         old_fd: i32,
         flags: i32,
         old: i32,
         old_len: i32,
         new_fd: i32,
         new: i32,
         new_len: i32| {
            let old = mem.slice(old as u32, old_len as u32)?;
            let new = mem.slice(new as u32, new_len as u32)?;
            host.fs
                .link(old_fd as u32, follows(flags), old, new_fd as u32, new)
        }
    );
    syscall!(
        linker,
        abi,
        "path_open",
        |host,
         mem,
         fd: i32,
         dirflags: i32,
         p: i32,
         len: i32,
         oflags: i32,
         base: i64,
         inheriting: i64,
         fdflags: i32,
         ret: i32| {
            let path = mem.slice(p as u32, len as u32)?;
            let new = open(
                host, fd, dirflags, path, oflags, base, inheriting, fdflags, false,
            )?;
            hand_back(host, &mut mem, ret, new)
        }
    );
    syscall!(
        linker,
        abi,
        "path_readlink",
        |host, mem, fd: i32, p: i32, len: i32, buf: i32, buf_len: i32, ret: i32| {
            let target = host
                .fs
                .readlink(fd as u32, mem.slice(p as u32, len as u32)?)?;
            let n = target.len().min(buf_len as u32 as usize);
            mem.write(buf as u32, &target[..n])?;
            mem.put_u32(ret as u32, n as u32)
        }
    );
    syscall!(
        linker,
        abi,
        "path_rename",
        |host, mem, fd: i32, old: i32, old_len: i32, new_fd: i32, new: i32, new_len: i32| {
            let old = mem.slice(old as u32, old_len as u32)?;
            let new = mem.slice(new as u32, new_len as u32)?;
            host.fs.rename(fd as u32, old, new_fd as u32, new)
        }
    );
    syscall!(
        linker,
        abi,
        "path_symlink",
        |host, mem, old: i32, old_len: i32, fd: i32, new: i32, new_len: i32| {
            let old = mem.slice(old as u32, old_len as u32)?;
            let new = mem.slice(new as u32, new_len as u32)?;
            host.fs.symlink(old, fd as u32, new)
        }
    );
    if abi == Abi::Wasix {
        syscall!(
            linker,
            abi,
            "path_open2",
            |host,
             mem,
             fd: i32,
             dirflags: i32,
             p: i32,
             len: i32,
             oflags: i32,
             base: i64,
             inheriting: i64,
             fdflags: i32,
             fdflagsext: i32,
             ret: i32| {
                let path = mem.slice(p as u32, len as u32)?;
                let new = open(
                    host,
                    fd,
                    dirflags,
                    path,
                    oflags,
                    base,
                    inheriting,
                    fdflags,
                    fdflagsext & 1 != 0,
                )?;
                hand_back(host, &mut mem, ret, new)
            }
        );
    }
    Ok(())
}
