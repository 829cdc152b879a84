//! WASIX `proc_spawn*`: a child process running a program, with posix_spawn's file actions
//! and signal dispositions (or, in the oldest form, piped or nulled stdio).

use wasmix_fs::{normalize, Errno, FileSystem};
use wasmix_process::{Disposition, Signal};
use wasmtime::Result;

use super::command::{argv_or_name, lines, load, search_path, text, CStrings, Encoding, LineFeed};
use super::signal::signal;
use super::{host_calls, Abi, Call, HostCalls, Restart};
use crate::mem::{GuestMem, Out};
use crate::spawn::{spawn_process, ChildSpec};

const FD_OP_CLOSE: u8 = 0;
const FD_OP_DUP2: u8 = 1;
const FD_OP_OPEN: u8 = 2;
const FD_OP_CHDIR: u8 = 3;

const STDIO_PIPED: i32 = 0;
const STDIO_NULL: i32 = 2;

pub(super) fn add(calls: &mut HostCalls) -> Result<()> {
    host_calls!(calls, Abi::Wasix, [proc_spawn]);
    let (wasix, never) = (Abi::Wasix, Restart::Never);
    calls.define(wasix, "proc_spawn2", proc_spawn_encoded::<LineFeed>, never)?;
    calls.define(wasix, "proc_spawn3", proc_spawn_encoded::<CStrings>, never)?;
    Ok(())
}

/// Applies posix_spawn file actions (56-byte records) to a child's file system.
fn apply_fd_ops(fs: &FileSystem, mem: &GuestMem, ptr: u32, count: u32) -> Result<(), Errno> {
    for i in 0..count {
        let at = ptr
            .checked_add(i.checked_mul(56).ok_or(Errno::Fault)?)
            .ok_or(Errno::Fault)?;
        let cmd = mem.u8(at)?;
        let fd = mem.u32(at + 4)?;
        let src = mem.u32(at + 8)?;
        match cmd {
            FD_OP_CLOSE => {
                let _ = fs.close(fd);
            }
            FD_OP_DUP2 => fs.dup_onto(src, fd)?,
            FD_OP_OPEN | FD_OP_CHDIR => {
                let path = text(mem, mem.u32(at + 12)?, mem.u32(at + 16)?)?;
                let abs = normalize(&fs.cwd(), &path);
                if cmd == FD_OP_CHDIR {
                    fs.chdir(abs.as_bytes())?;
                    continue;
                }
                let (dirfd, rel) = fs.resolve(&abs)?;
                let follow = mem.u32(at + 20)? & 1 != 0;
                let opened = fs.open(
                    dirfd,
                    follow,
                    rel.as_bytes(),
                    mem.u16(at + 24)?,
                    mem.u64(at + 32)?,
                    mem.u64(at + 40)?,
                    mem.u16(at + 48)?,
                )?;
                if opened != fd {
                    fs.dup_onto(opened, fd)?;
                    fs.close(opened)?;
                }
            }
            _ => return Err(Errno::Notsup),
        }
    }
    Ok(())
}

/// `(sig, disposition)` byte pairs: 0 default, 1 ignore.
fn dispositions(mem: &GuestMem, ptr: u32, count: u32) -> Result<Vec<(Signal, Disposition)>, Errno> {
    let raw = mem.bytes(ptr, count.checked_mul(2).ok_or(Errno::Fault)?)?;
    raw.chunks_exact(2)
        .map(|p| {
            let sig = signal(i32::from(p[0]))?.ok_or(Errno::Inval)?;
            let d = match p[1] {
                0 => Disposition::Default,
                1 => Disposition::Ignore,
                _ => return Err(Errno::Inval),
            };
            Ok((sig, d))
        })
        .collect()
}

/// The oldest form: name, argv (line-feed separated), stdio modes and a working directory;
/// the result is `{pid, stdin, stdout, stderr}` with an `option<fd>` for each piped stream.
#[allow(clippy::too_many_arguments)]
fn proc_spawn(
    cx: &mut Call<'_>,
    name: u32,
    name_len: u32,
    _chroot: i32,
    args: u32,
    args_len: u32,
    _preopen: u32,
    _preopen_len: u32,
    stdin: i32,
    stdout: i32,
    stderr: i32,
    wd: u32,
    wd_len: u32,
    ret: Out<[u8; 28]>,
) -> Result<(), Errno> {
    let (mem, host) = (&mut cx.mem, &mut *cx.host);
    let name = text(mem, name, name_len)?;
    let args = lines(mem, args, args_len)?;
    let wd = text(mem, wd, wd_len)?;
    let search = search_path(host, true, None);
    let program = load(host, &name, search.as_deref())?;
    let fs = host.fs();
    let mut pipes = [None; 3];
    for (n, mode) in [stdin, stdout, stderr].into_iter().enumerate() {
        if mode == STDIO_PIPED {
            let (r, w) = fs.pipe()?;
            // (the child's end, the parent's end)
            pipes[n] = Some(if n == 0 { (r, w) } else { (w, r) });
        }
    }
    let child_fs = fs.fork();
    let mut handles = [None; 3];
    for (n, mode) in [stdin, stdout, stderr].into_iter().enumerate() {
        if let Some((child_end, parent_end)) = pipes[n] {
            child_fs.dup_onto(child_end, n as u32)?;
            child_fs.close(child_end)?;
            child_fs.close(parent_end)?;
            fs.close(child_end)?;
            handles[n] = Some(parent_end);
        } else if mode == STDIO_NULL {
            child_fs.insert_null(n as u32)?;
        }
    }
    if !wd.is_empty() && wd != "." {
        child_fs.chdir(wd.as_bytes())?;
    }
    child_fs.close_on_exec();
    let args = argv_or_name(args, &name);
    let pid = spawn_process(
        &host.ctx,
        ChildSpec {
            program,
            args,
            env: host.ctx.env.clone(),
            fs: child_fs,
            dispositions: Vec::new(),
        },
    )?;
    let mut out = [0u8; 28];
    out[0..4].copy_from_slice(&pid.to_le_bytes());
    for (n, h) in handles.iter().enumerate() {
        if let Some(fd) = h {
            out[4 + 8 * n] = 1;
            out[8 + 8 * n..12 + 8 * n].copy_from_slice(&fd.to_le_bytes());
        }
    }
    ret.set(mem, out);
    Ok(())
}

/// `proc_spawn2` (`E` = [`LineFeed`]) and `proc_spawn3` (`E` = [`CStrings`]), which differ
/// only in how argv and the environment are encoded: posix_spawn's file actions and signal
/// dispositions, an optional search along `path` (or `PATH`).
#[allow(clippy::too_many_arguments)]
fn proc_spawn_encoded<E: Encoding>(
    cx: &mut Call<'_>,
    name: u32,
    name_len: u32,
    args: u32,
    args_len: u32,
    envs: u32,
    envs_len: u32,
    ops: u32,
    ops_len: u32,
    sigs: u32,
    sigs_len: u32,
    search: i32,
    path: u32,
    path_len: u32,
    ret: Out<u32>,
) -> Result<(), Errno> {
    let (mem, host) = (&mut cx.mem, &mut *cx.host);
    let args = E::decode(mem, args, args_len)?;
    let env = E::decode(mem, envs, envs_len)?;
    let name = text(mem, name, name_len)?;
    let path = text(mem, path, path_len).ok();
    let dispositions = dispositions(mem, sigs, sigs_len)?;
    let child_fs = host.fs().fork();
    apply_fd_ops(&child_fs, mem, ops, ops_len)?;
    child_fs.close_on_exec();
    let search = search_path(host, search & 1 != 0, path);
    let program = load(host, &name, search.as_deref())?;
    let args = argv_or_name(args, &name);
    let pid = spawn_process(
        &host.ctx,
        ChildSpec {
            program,
            args,
            env,
            fs: child_fs,
            dispositions,
        },
    )?;
    ret.set(mem, pid);
    Ok(())
}
