//! WASI preview1 (`wasi_snapshot_preview1`) and preview0 (`wasi_unstable`) host calls.
//!
//! Each call is a thin adapter: read the guest's arguments through [`GuestMem`], call the
//! file-system or process layer, write results back, return an errno. The two ABI generations
//! share every adapter; where their layouts or constants differ the adapter asks [`Abi`].

use wasmtime::Linker;
use wasmtime::Result;

use crate::host::Host;

mod args;
mod clock;
mod fd;
mod path;
mod poll;
mod proc;
mod sock;

/// Which generation of the WASI ABI an import module speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Abi {
    Preview0,
    Preview1,
}

impl Abi {
    pub fn module(self) -> &'static str {
        match self {
            Abi::Preview0 => "wasi_unstable",
            Abi::Preview1 => "wasi_snapshot_preview1",
        }
    }
}

/// Import modules wasmix provides in full; an unknown name in one of them is an error at load.
pub(crate) const MODULES: [Abi; 2] = [Abi::Preview1, Abi::Preview0];

/// Defines one host call: runs `$body` (which yields `Result<(), Errno>`) with `$host` (the
/// process state) and `$mem` (the guest memory), returning the errno to the guest.
macro_rules! syscall {
    ($linker:expr, $abi:expr, $name:literal, |$host:ident, $mem:ident $(, $arg:ident : $ty:ty)*| $body:block) => {{
        #[allow(unused_variables, unused_mut)]
        $linker.func_wrap(
            $abi.module(),
            $name,
            move |mut caller: wasmtime::Caller<'_, $crate::host::Host>, $($arg: $ty),*| -> wasmtime::Result<i32> {
                let memory = caller.data().memory;
                let (bytes, $host): (&mut [u8], &mut $crate::host::Host) = match memory {
                    Some(m) => m.data_and_store_mut(&mut caller),
                    None => (&mut [], caller.data_mut()),
                };
                let mut $mem = $crate::mem::GuestMem::new(bytes);
                // A closure so the body can use `?` on errnos.
                #[allow(clippy::redundant_closure_call)]
                let result: Result<(), wasmix_fs::Errno> = (|| $body)();
                Ok(match result {
                    Ok(()) => 0,
                    Err(e) => i32::from(e.raw()),
                })
            },
        )?;
    }};
}
pub(crate) use syscall;

/// Adds both WASI generations to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> Result<()> {
    for abi in MODULES {
        args::add(linker, abi)?;
        clock::add(linker, abi)?;
        fd::add(linker, abi)?;
        path::add(linker, abi)?;
        poll::add(linker, abi)?;
        proc::add(linker, abi)?;
        sock::add(linker, abi)?;
    }
    Ok(())
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
