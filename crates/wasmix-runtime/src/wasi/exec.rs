//! WASIX `proc_exec*`: replacing the calling process's program. The two older forms cannot
//! return (a failure ends the process with the errno as its exit code); the two newer ones
//! answer an errno.

use std::sync::Arc;

use wasmix_fs::Errno;
use wasmix_process::ExitStatus;
use wasmtime::{Caller, Result};

use super::command::{argv_or_name, load, search_path, text, CStrings, Encoding, LineFeed};
use super::{Abi, HostCalls};
use crate::fork::{self, ChildEnd};
use crate::host::{split, Host};
use crate::signals;
use crate::unwind::Unwind;

pub(super) fn add(calls: &mut HostCalls) -> Result<()> {
    let wasix = Abi::Wasix.module();
    calls.define_raw(wasix, "proc_exec", proc_exec)?;
    calls.define_raw(wasix, "proc_exec2", proc_exec2)?;
    calls.define_raw(wasix, "proc_exec3", proc_exec_encoded::<LineFeed>)?;
    calls.define_raw(wasix, "proc_exec4", proc_exec_encoded::<CStrings>)?;
    Ok(())
}

/// What an exec form passes: (address, length) pairs; the environment is the caller's when
/// absent; `search` looks a bare name up along `path` (or `PATH`).
struct ExecRequest {
    name: (i32, i32),
    args: (i32, i32),
    envs: Option<(i32, i32)>,
    search: bool,
    path: Option<(i32, i32)>,
}

fn proc_exec(
    mut caller: Caller<'_, Host>,
    name: i32,
    name_len: i32,
    args: i32,
    args_len: i32,
) -> Result<()> {
    let req = ExecRequest {
        name: (name, name_len),
        args: (args, args_len),
        envs: None,
        search: true,
        path: None,
    };
    exec_or_exit(&mut caller, req)
}

fn proc_exec2(
    mut caller: Caller<'_, Host>,
    name: i32,
    name_len: i32,
    args: i32,
    args_len: i32,
    envs: i32,
    envs_len: i32,
) -> Result<()> {
    let req = ExecRequest {
        name: (name, name_len),
        args: (args, args_len),
        envs: Some((envs, envs_len)),
        search: true,
        path: None,
    };
    exec_or_exit(&mut caller, req)
}

/// `proc_exec3` (`E` = [`LineFeed`]) and `proc_exec4` (`E` = [`CStrings`]): with an
/// environment and an optional search along `path`; they answer an errno on failure.
#[allow(clippy::too_many_arguments)]
fn proc_exec_encoded<E: Encoding>(
    mut caller: Caller<'_, Host>,
    name: i32,
    name_len: i32,
    args: i32,
    args_len: i32,
    envs: i32,
    envs_len: i32,
    search: i32,
    path: i32,
    path_len: i32,
) -> Result<i32> {
    let req = ExecRequest {
        name: (name, name_len),
        args: (args, args_len),
        envs: Some((envs, envs_len)),
        search: search & 1 != 0,
        path: Some((path, path_len)),
    };
    Ok(exec::<E>(&mut caller, req)?.map_or(0, |e| i32::from(e.raw())))
}

/// The forms that cannot return: a failure ends the process with the errno as exit code (a
/// `proc_fork_env` child's successful exec returns, in the parent).
fn exec_or_exit(caller: &mut Caller<'_, Host>, req: ExecRequest) -> Result<()> {
    match exec::<LineFeed>(caller, req)? {
        None => Ok(()),
        Some(e) => Err(Unwind::Exit(ExitStatus::Exited(i32::from(e.raw()))).into()),
    }
}

/// Replaces the calling process's program. Returns the errno when the program cannot be
/// loaded; on success unwinds the guest ([`Unwind::Exec`]) for the run loop to start it —
/// or, in a child made by `proc_fork_env`, starts it on a thread of its own and returns
/// `None`, in the parent.
fn exec<E: Encoding>(caller: &mut Caller<'_, Host>, req: ExecRequest) -> Result<Option<Errno>> {
    let outcome = {
        let (mem, host) = split(caller);
        (|| {
            let u = |(p, l): (i32, i32)| (p as u32, l as u32);
            let name = text(&mem, u(req.name).0, u(req.name).1)?;
            let args = E::decode(&mem, u(req.args).0, u(req.args).1)?;
            let env = match req.envs.map(u) {
                Some((p, l)) => E::decode(&mem, p, l)?,
                None => host.ctx.env.clone(),
            };
            let path = req.path.map(u).and_then(|(p, l)| text(&mem, p, l).ok());
            let search = search_path(host, req.search, path);
            let program = load(host, &name, search.as_deref())?;
            let args = argv_or_name(args, &name);
            let next = host.ctx.exec(&program, args, env)?;
            host.fs().close_on_exec();
            let process = &host.ctx.process;
            process.set_dispositions(&process.dispositions_for_exec());
            host.ctx.sync_host_signals();
            let next = Arc::new(next);
            let start = crate::running::start_thread;
            if fork::end_env_child(host, ChildEnd::Exec(Arc::clone(&next)), start) {
                return Ok(true);
            }
            host.pending.set_exec(next);
            Ok(false)
        })()
    };
    match outcome {
        Ok(true) => Ok(None),
        Ok(false) => Err(Unwind::Exec.into()),
        Err(e) => {
            signals::deliver(&mut *caller)?;
            Ok(Some(e))
        }
    }
}
