//! WASIX processes: identity, spawn, exec, join, signals between processes, signal callbacks.

use std::sync::Arc;
use std::time::Duration;

use wasmix_fs::{normalize, Errno, FileSystem};
use wasmix_process::{Child, Disposition, ExitStatus, JoinError, Signal};
use wasmtime::{Caller, Result};

use super::proc::{signal, signal_errno};
use super::{older, syscall, Abi, HostCalls};
use crate::host::{split, ExitStatus as HostStatus, Host, ProcessEnded};
use crate::mem::GuestMem;
use crate::running::{spawn_process, ChildSpec, ExecNow};
use crate::signals;

const WASIX: Abi = Abi::Wasix;

/// Where a bare command name is looked for when the guest has no `PATH`.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

const JOIN_NON_BLOCKING: u32 = 1;
const JOIN_NOTHING: u8 = 0;
const JOIN_EXIT_NORMAL: u8 = 1;
const JOIN_EXIT_SIGNAL: u8 = 2;

const FD_OP_CLOSE: u8 = 0;
const FD_OP_DUP2: u8 = 1;
const FD_OP_OPEN: u8 = 2;
const FD_OP_CHDIR: u8 = 3;

const STDIO_PIPED: i32 = 0;
const STDIO_NULL: i32 = 2;

/// Bytes of guest memory as text.
fn text(mem: &GuestMem, ptr: u32, len: u32) -> Result<String, Errno> {
    String::from_utf8(mem.slice(ptr, len)?.to_vec()).map_err(|_| Errno::Ilseq)
}

/// A line-feed separated list (the ABI's encoding of argv and environments).
fn lines(mem: &GuestMem, ptr: u32, len: u32) -> Result<Vec<Vec<u8>>, Errno> {
    Ok(mem
        .slice(ptr, len)?
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// An array of `count` pointers to NUL-terminated strings.
fn cstrings(mem: &GuestMem, ptr: u32, count: u32) -> Result<Vec<Vec<u8>>, Errno> {
    let table = mem.slice(ptr, count.checked_mul(4).ok_or(Errno::Fault)?)?;
    let mut out = Vec::new();
    for c in table.chunks_exact(4) {
        let at = u32::from_le_bytes(c.try_into().expect("4 bytes"));
        let mut end = at;
        loop {
            if mem.u8(end)? == 0 {
                break;
            }
            end = end.checked_add(1).ok_or(Errno::Fault)?;
        }
        out.push(mem.slice(at, end - at)?.to_vec());
    }
    Ok(out)
}

/// The value of `key` in an environment list.
fn env_value<'e>(env: &'e [Vec<u8>], key: &str) -> Option<&'e str> {
    env.iter().find_map(|kv| {
        let s = std::str::from_utf8(kv).ok()?;
        s.strip_prefix(key)?.strip_prefix('=')
    })
}

/// Finds and reads a program: a name with a `/` is a path (relative to the working
/// directory); a bare name is looked up along `search` (a `PATH` value), as a shell does.
fn find_program(
    fs: &FileSystem,
    name: &str,
    search: Option<&str>,
) -> Result<(Vec<u8>, String), Errno> {
    if name.is_empty() {
        return Err(Errno::Noent);
    }
    let cwd = fs.cwd();
    if name.contains('/') || search.is_none() {
        let abs = normalize(&cwd, name);
        return Ok((fs.read_file(&abs)?, abs));
    }
    let mut last = Errno::Noent;
    for dir in search.unwrap_or(DEFAULT_PATH).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        // `ls` finds `ls`, else `ls.wasm`: guest programs are usually kept with the suffix.
        for file in [name.to_owned(), format!("{name}.wasm")] {
            let abs = normalize(&cwd, &format!("{dir}/{file}"));
            match fs.read_file(&abs) {
                Ok(bytes) => return Ok((bytes, abs)),
                Err(Errno::Noent | Errno::Notdir) => {}
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// Loads the program `name` for a spawn or exec by the calling process.
fn load(host: &Host, name: &str, search: Option<&str>) -> Result<crate::program::Program, Errno> {
    let (bytes, abs) = find_program(&host.fs, name, search)?;
    host.ctx
        .runtime
        .load_for_guest(&bytes, &abs)
        .map_err(|_| Errno::Noexec)
}

/// The `PATH` a spawn or exec searches: the one the guest passed, else its environment's.
fn search_path(host: &Host, search: bool, path: Option<String>) -> Option<String> {
    if !search {
        return None;
    }
    Some(
        path.filter(|p| !p.is_empty())
            .or_else(|| env_value(&host.ctx.env, "PATH").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_PATH.to_owned()),
    )
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
    let raw = mem.slice(ptr, count.checked_mul(2).ok_or(Errno::Fault)?)?;
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

/// Writes a `join_status`: tag, then the exit code (u16) or code and signal.
fn put_status(mem: &mut GuestMem, ptr: u32, status: Option<ExitStatus>) -> Result<(), Errno> {
    let mut out = [0u8; 6];
    match status {
        None => out[0] = JOIN_NOTHING,
        Some(ExitStatus::Exited(code)) => {
            out[0] = JOIN_EXIT_NORMAL;
            out[2..4].copy_from_slice(&(code as u16).to_le_bytes());
        }
        Some(ExitStatus::Signaled(sig)) => {
            out[0] = JOIN_EXIT_SIGNAL;
            out[2..4].copy_from_slice(&(128 + u16::from(sig.number())).to_le_bytes());
            out[4] = sig.number();
        }
    }
    mem.write(ptr, &out)
}

fn join_errno(e: JoinError) -> Errno {
    match e {
        JoinError::NoChild => Errno::Child,
        JoinError::Interrupted | JoinError::Killed => Errno::Intr,
    }
}

/// Reads an `option<pid>` (tag byte, pid at offset 4).
fn which_child(mem: &GuestMem, ptr: u32) -> Result<Child, Errno> {
    match mem.u8(ptr)? {
        0 => Ok(Child::Any),
        1 => Ok(Child::Pid(mem.u32(ptr + 4)?)),
        _ => Err(Errno::Inval),
    }
}

fn put_pid(mem: &mut GuestMem, ptr: u32, pid: Option<u32>) -> Result<(), Errno> {
    let mut out = [0u8; 8];
    if let Some(pid) = pid {
        out[0] = 1;
        out[4..8].copy_from_slice(&pid.to_le_bytes());
    }
    mem.write(ptr, &out)
}

/// Replaces the calling process's program. Returns the errno when the program cannot be
/// loaded; on success unwinds the guest with [`ExecNow`].
fn exec(
    caller: &mut Caller<'_, Host>,
    prepare: impl FnOnce(
        &Host,
        &GuestMem,
    )
        -> Result<(String, Vec<Vec<u8>>, Option<Vec<Vec<u8>>>, Option<String>), Errno>,
) -> Result<Errno> {
    let outcome = {
        let (bytes, host) = split(caller);
        let mem = GuestMem::new(bytes);
        (|| {
            let (name, args, env, search) = prepare(host, &mem)?;
            let program = load(host, &name, search.as_deref())?;
            let env = env.unwrap_or_else(|| host.ctx.env.clone());
            let args = argv_or_name(args, &name);
            let next = host.ctx.exec(&program, args, env)?;
            host.fs.close_on_exec();
            let process = &host.ctx.process;
            process.set_dispositions(&process.dispositions_for_exec());
            host.pending_exec = Some(Arc::new(next));
            Ok(())
        })()
    };
    match outcome {
        Ok(()) => Err(ExecNow.into()),
        Err(e) => {
            signals::deliver(&mut *caller)?;
            Ok(e)
        }
    }
}

/// exec forms that cannot return: a failure ends the process with the errno as exit code.
fn exec_or_exit(e: Errno) -> Result<()> {
    Err(ProcessEnded(HostStatus::Exited(i32::from(e.raw()))).into())
}

pub(super) fn add(linker: &mut HostCalls<'_>) -> Result<()> {
    syscall!(linker, WASIX, "proc_id", |host, mem, ret: i32| {
        mem.put_u32(ret as u32, host.ctx.process.pid())
    });
    syscall!(
        linker,
        WASIX,
        "proc_parent",
        |host, mem, pid: i32, ret: i32| {
            let me = &host.ctx.process;
            let ppid = if pid as u32 == me.pid() {
                me.ppid()
            } else {
                host.ctx
                    .runtime
                    .control()
                    .lookup(pid as u32)
                    .ok_or(Errno::Srch)?
                    .ppid()
            };
            mem.put_u32(ret as u32, ppid)
        }
    );
    syscall!(restart linker, WASIX.module(), "proc_join", |host, mem, pid_ptr: i32, flags: i32, status_ptr: i32| {
        mem.slice(status_ptr as u32, 6)?;
        let which = which_child(&mem, pid_ptr as u32)?;
        let nohang = flags as u32 & JOIN_NON_BLOCKING != 0;
        let process = Arc::clone(&host.ctx.process);
        match process.join_child(which, nohang, Some(&host.thread)) {
            Ok(Some((pid, status))) => {
                put_pid(&mut mem, pid_ptr as u32, Some(pid))?;
                put_status(&mut mem, status_ptr as u32, Some(status))
            }
            Ok(None) => {
                // Nothing finished yet: some(0) tells older libcs "still running".
                put_pid(&mut mem, pid_ptr as u32, Some(0))?;
                put_status(&mut mem, status_ptr as u32, None)
            }
            Err(e) => {
                put_status(&mut mem, status_ptr as u32, None)?;
                Err(join_errno(e))
            }
        }
    });
    syscall!(restart linker, WASIX.module(), &older("proc_join", 2), |host, mem, pid_ptr: i32, code_ptr: i32| {
        mem.slice(code_ptr as u32, 4)?;
        let which = which_child(&mem, pid_ptr as u32)?;
        let process = Arc::clone(&host.ctx.process);
        let (pid, status) = process
            .join_child(which, false, Some(&host.thread))
            .map_err(join_errno)?
            .ok_or(Errno::Child)?;
        put_pid(&mut mem, pid_ptr as u32, Some(pid))?;
        mem.put_u32(code_ptr as u32, status.code() as u32)
    });
    syscall!(
        linker,
        WASIX,
        "proc_signal",
        |host, mem, pid: i32, sig: i32| {
            let target = host
                .ctx
                .runtime
                .control()
                .lookup(pid as u32)
                .ok_or(Errno::Srch)?;
            match signal(sig)? {
                Some(sig) => target.signal(sig).map_err(signal_errno),
                None => Ok(()), // kill(pid, 0): existence check
            }
        }
    );
    syscall!(
        linker,
        WASIX,
        "proc_raise_interval",
        |host, mem, sig: i32, interval_ms: i64, repeat: i32| {
            let sig = signal(sig)?.ok_or(Errno::Inval)?;
            let interval = (interval_ms > 0).then(|| Duration::from_millis(interval_ms as u64));
            host.ctx
                .process
                .signal_interval(sig, interval, repeat & 1 != 0);
            Ok(())
        }
    );
    linker.func_wrap(
        WASIX.module(),
        "callback_signal",
        |mut caller: Caller<'_, Host>, ptr: i32, len: i32| -> Result<()> {
            {
                let (bytes, host) = split(&mut caller);
                let mem = GuestMem::new(bytes);
                if let Ok(name) = text(&mem, ptr as u32, len as u32) {
                    let name = name.trim_end_matches('\0').to_owned();
                    host.signal_entry = None;
                    host.ctx.set_signal_callback(name);
                }
            }
            signals::deliver(&mut caller)
        },
    )?;
    syscall!(
        linker,
        WASIX,
        "proc_signals_sizes_get",
        |host, mem, ret: i32| {
            let n = ignored(host).len();
            mem.put_u32(ret as u32, n as u32)
        }
    );
    syscall!(linker, WASIX, "proc_signals_get", |host, mem, buf: i32| {
        let pairs: Vec<u8> = ignored(host).iter().flat_map(|s| [s.number(), 1]).collect();
        mem.write(buf as u32, &pairs)
    });

    // ---- spawn ------------------------------------------------------------------------------
    // The two current forms differ only in how argv and the environment are encoded.
    type Decode = fn(&GuestMem, u32, u32) -> Result<Vec<Vec<u8>>, Errno>;
    for (name, decode) in [("proc_spawn2", lines as Decode), ("proc_spawn3", cstrings)] {
        syscall!(
            linker,
            WASIX,
            name,
            |host,
             mem,
             name: i32,
             name_len: i32,
             args: i32,
             args_len: i32,
             envs: i32,
             envs_len: i32,
             ops: i32,
             ops_len: i32,
             sigs: i32,
             sigs_len: i32,
             search: i32,
             path: i32,
             path_len: i32,
             ret: i32| {
                let args = decode(&mem, args as u32, args_len as u32)?;
                let env = decode(&mem, envs as u32, envs_len as u32)?;
                spawn_common(
                    host, &mut mem, name, name_len, args, env, ops, ops_len, sigs, sigs_len,
                    search, path, path_len, ret,
                )
            }
        );
    }
    syscall!(
        linker,
        WASIX,
        "proc_spawn",
        |host,
         mem,
         name: i32,
         name_len: i32,
         _chroot: i32,
         args: i32,
         args_len: i32,
         _preopen: i32,
         _preopen_len: i32,
         stdin: i32,
         stdout: i32,
         stderr: i32,
         wd: i32,
         wd_len: i32,
         ret: i32| {
            mem.slice(ret as u32, 28)?;
            let name = text(&mem, name as u32, name_len as u32)?;
            let args = lines(&mem, args as u32, args_len as u32)?;
            let wd = text(&mem, wd as u32, wd_len as u32)?;
            let search = search_path(host, true, None);
            let program = load(host, &name, search.as_deref())?;
            let mut pipes = [None; 3];
            for (n, mode) in [stdin, stdout, stderr].into_iter().enumerate() {
                if mode == STDIO_PIPED {
                    let (r, w) = host.fs.pipe()?;
                    // (the child's end, the parent's end)
                    pipes[n] = Some(if n == 0 { (r, w) } else { (w, r) });
                }
            }
            let child_fs = host.fs.fork();
            let mut handles = [None; 3];
            for (n, mode) in [stdin, stdout, stderr].into_iter().enumerate() {
                if let Some((child_end, parent_end)) = pipes[n] {
                    child_fs.dup_onto(child_end, n as u32)?;
                    child_fs.close(child_end)?;
                    child_fs.close(parent_end)?;
                    host.fs.close(child_end)?;
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
            mem.write(ret as u32, &out)
        }
    );

    // ---- exec -------------------------------------------------------------------------------
    linker.func_wrap(
        WASIX.module(),
        "proc_exec",
        |mut caller: Caller<'_, Host>,
         name: i32,
         name_len: i32,
         args: i32,
         args_len: i32|
         -> Result<()> {
            let e = exec(&mut caller, |host, mem| {
                let name = text(mem, name as u32, name_len as u32)?;
                let args = lines(mem, args as u32, args_len as u32)?;
                Ok((name, args, None, search_path(host, true, None)))
            })?;
            exec_or_exit(e)
        },
    )?;
    linker.func_wrap(
        WASIX.module(),
        "proc_exec2",
        |mut caller: Caller<'_, Host>,
         name: i32,
         name_len: i32,
         args: i32,
         args_len: i32,
         envs: i32,
         envs_len: i32|
         -> Result<()> {
            let e = exec(&mut caller, |host, mem| {
                let name = text(mem, name as u32, name_len as u32)?;
                let args = lines(mem, args as u32, args_len as u32)?;
                let env = lines(mem, envs as u32, envs_len as u32)?;
                Ok((name, args, Some(env), search_path(host, true, None)))
            })?;
            exec_or_exit(e)
        },
    )?;
    for (name, decode) in [("proc_exec3", lines as Decode), ("proc_exec4", cstrings)] {
        linker.func_wrap(
            WASIX.module(),
            name,
            move |mut caller: Caller<'_, Host>,
                  name: i32,
                  name_len: i32,
                  args: i32,
                  args_len: i32,
                  envs: i32,
                  envs_len: i32,
                  search: i32,
                  path: i32,
                  path_len: i32|
                  -> Result<i32> {
                let e = exec(&mut caller, |host, mem| {
                    let name = text(mem, name as u32, name_len as u32)?;
                    let args = decode(mem, args as u32, args_len as u32)?;
                    let env = decode(mem, envs as u32, envs_len as u32)?;
                    let path = text(mem, path as u32, path_len as u32).ok();
                    Ok((
                        name,
                        args,
                        Some(env),
                        search_path(host, search & 1 != 0, path),
                    ))
                })?;
                Ok(i32::from(e.raw()))
            },
        )?;
    }
    // Journal snapshots of a running process come with the journal.
    syscall!(linker, WASIX, "proc_snapshot", |host, mem| {
        Err(Errno::Notsup)
    });
    Ok(())
}

/// The argv a program gets: as given, or just its name when the caller gave none.
fn argv_or_name(args: Vec<Vec<u8>>, name: &str) -> Vec<Vec<u8>> {
    if args.is_empty() {
        vec![name.as_bytes().to_vec()]
    } else {
        args
    }
}

/// Signals the calling process ignores (what a spawned or exec'd program inherits).
fn ignored(host: &Host) -> Vec<Signal> {
    host.ctx
        .process
        .dispositions()
        .iter()
        .enumerate()
        .filter(|(_, d)| **d == Disposition::Ignore)
        .filter_map(|(i, _)| Signal::new(i as u8))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn spawn_common(
    host: &mut Host,
    mem: &mut GuestMem,
    name: i32,
    name_len: i32,
    args: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    ops: i32,
    ops_len: i32,
    sigs: i32,
    sigs_len: i32,
    search: i32,
    path: i32,
    path_len: i32,
    ret: i32,
) -> Result<(), Errno> {
    mem.slice(ret as u32, 4)?;
    let name = text(mem, name as u32, name_len as u32)?;
    let path = text(mem, path as u32, path_len as u32).ok();
    let dispositions = dispositions(mem, sigs as u32, sigs_len as u32)?;
    let child_fs = host.fs.fork();
    apply_fd_ops(&child_fs, mem, ops as u32, ops_len as u32)?;
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
    mem.put_u32(ret as u32, pid)
}
