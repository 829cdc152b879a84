//! WASI preview1 (`wasi_snapshot_preview1`) and preview0 (`wasi_unstable`) host calls.
//!
//! Each call is a thin adapter: read the guest's arguments through [`GuestMem`], call the
//! file-system or process layer, write results back, return an errno. The two ABI generations
//! share every adapter; where their layouts or constants differ the adapter asks [`Abi`].

use std::collections::HashSet;

use wasmtime::{IntoFunc, Linker, Result};

use crate::host::Host;

mod args;
mod clock;
mod fd;
mod fdx;
mod path;
mod poll;
mod proc;
mod procs;
mod sock;
mod stacks;
mod threads;

/// Which generation of the WASI ABI an import module speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abi {
    Preview0,
    Preview1,
    /// `wasix_32v1`: preview1's layouts plus the WASIX calls.
    Wasix,
}

impl Abi {
    pub fn module(self) -> &'static str {
        match self {
            Abi::Preview0 => "wasi_unstable",
            Abi::Preview1 => "wasi_snapshot_preview1",
            Abi::Wasix => "wasix_32v1",
        }
    }
}

/// Import modules wasmix provides in full; an unknown name in one of them is an error at load.
pub(crate) const MODULES: [Abi; 3] = [Abi::Preview1, Abi::Preview0, Abi::Wasix];

/// The wasi-threads proposal's module (`thread-spawn`).
pub(crate) const WASI_THREADS: &str = "wasi";

/// The module of the host calls that stand in for rewritten atomic instructions.
pub(crate) const INTERNAL: &str = "wasmix";

/// Whether `module` is one wasmix provides (for error messages).
pub(crate) fn is_provided_module(module: &str) -> bool {
    MODULES.iter().any(|abi| abi.module() == module) || module == WASI_THREADS
}

/// The names a host call may be registered under for an import of `name` with `params`
/// parameters: the current form first, then the older generation of the same name.
pub(crate) fn candidates(_module: &str, name: &str, params: usize) -> [String; 2] {
    [name.to_owned(), older(name, params)]
}

/// The registration name of the generation of `name` that takes `params` parameters.
pub(crate) fn older(name: &str, params: usize) -> String {
    format!("{name}@{params}")
}

/// The linker being filled, with a record of every name defined (imports are checked against
/// it before a store exists).
pub(crate) struct HostCalls<'a> {
    linker: &'a mut Linker<Host>,
    names: HashSet<(String, String)>,
}

impl HostCalls<'_> {
    pub fn func_wrap<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        func: impl IntoFunc<Host, Params, Args>,
    ) -> Result<&mut Self> {
        self.linker.func_wrap(module, name, func)?;
        self.names.insert((module.to_owned(), name.to_owned()));
        Ok(self)
    }
}

/// Defines one host call: runs `$body` (which yields `Result<(), Errno>`) with `$host` (the
/// thread's state) and `$mem` (the guest memory), returning the errno to the guest. Pending
/// signals are acted on before the call returns. With `restart`, a body that ends in EINTR is
/// run again after the signal's handler (SA_RESTART).
macro_rules! syscall {
    (restart $linker:expr, $module:expr, $name:expr, |$host:ident, $mem:ident $(, $arg:ident : $ty:ty)*| $body:block) => {
        $crate::wasi::syscall!(@define true, $linker, $module, $name, |$host, $mem $(, $arg: $ty)*| $body)
    };
    ($linker:expr, $abi:expr, $name:expr, |$host:ident, $mem:ident $(, $arg:ident : $ty:ty)*| $body:block) => {
        $crate::wasi::syscall!(@define false, $linker, $abi.module(), $name, |$host, $mem $(, $arg: $ty)*| $body)
    };
    (@define $restart:expr, $linker:expr, $module:expr, $name:expr, |$host:ident, $mem:ident $(, $arg:ident : $ty:ty)*| $body:block) => {{
        #[allow(unused_variables, unused_mut)]
        $linker.func_wrap(
            $module,
            $name,
            move |mut caller: wasmtime::Caller<'_, $crate::host::Host>, $($arg: $ty),*| -> wasmtime::Result<i32> {
                loop {
                    let result: Result<(), wasmix_fs::Errno> = {
                        let (bytes, $host) = $crate::host::split(&mut caller);
                        let mut $mem = $crate::mem::GuestMem::new(bytes);
                        // A closure so the body can use `?` on errnos.
                        #[allow(clippy::redundant_closure_call)]
                        (|| $body)()
                    };
                    if caller.data().interrupt.is_raised() {
                        $crate::signals::deliver(&mut caller)?;
                        if $restart && result == Err(wasmix_fs::Errno::Intr) {
                            continue;
                        }
                    }
                    return Ok(match result {
                        Ok(()) => 0,
                        Err(e) => i32::from(e.raw()),
                    });
                }
            },
        )?;
    }};
}
pub(crate) use syscall;

/// Adds every host call: both WASI generations, WASIX, wasi-threads, and the stand-ins for
/// rewritten atomics. Returns the names defined.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> Result<HashSet<(String, String)>> {
    let mut calls = HostCalls {
        linker,
        names: HashSet::new(),
    };
    for abi in MODULES {
        args::add(&mut calls, abi)?;
        clock::add(&mut calls, abi)?;
        fd::add(&mut calls, abi)?;
        path::add(&mut calls, abi)?;
        poll::add(&mut calls, abi)?;
        proc::add(&mut calls, abi)?;
        sock::add(&mut calls, abi)?;
    }
    fdx::add(&mut calls)?;
    threads::add(&mut calls)?;
    procs::add(&mut calls)?;
    stacks::add(&mut calls)?;
    Ok(calls.names)
}

/// Narrows a guest-supplied integer that the ABI declares as a smaller type.
pub(crate) fn narrow<T: TryFrom<i32>>(v: i32) -> Result<T, wasmix_fs::Errno> {
    T::try_from(v).map_err(|_| wasmix_fs::Errno::Inval)
}

/// Rights of a listening socket handed to the guest.
pub(crate) fn sock_listener_rights() -> u64 {
    use wasmix_fs::abi::rights;
    rights::SOCK_ACCEPT
        | rights::POLL_FD_READWRITE
        | rights::FD_FILESTAT_GET
        | rights::FD_FDSTAT_SET_FLAGS
}

/// Rights an accepted connection may inherit.
pub(crate) fn sock_connection_rights() -> u64 {
    sock::SOCKET_RIGHTS
}

#[cfg(test)]
mod hostile_tests;
