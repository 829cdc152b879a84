//! The host calls: WASI preview1 (`wasi_snapshot_preview1`), preview0 (`wasi_unstable`),
//! WASIX (`wasix_32v1`), wasi-threads (`wasi`) and the stand-ins for rewritten atomics
//! (`wasmix`), grouped by area in the files below.
//!
//! Each call is a named function — `fn fd_write(cx: &mut Call, fd: u32, ..., ret: Out<u32>)
//! -> Result<(), Errno>` — registered from its area's table (`host_calls!`) under its own name.
//! It is a thin adapter: read the guest's arguments through [`GuestMem`], call the file-system
//! or process layer, write results back, return an errno. Parameters arrive as the types the
//! function names ([`Param`]): result slots ([`Out`]) are checked before the body runs. The
//! ABI generations share every function; where layouts or constants differ it asks `cx.abi`.
//! Calls of other shapes (no errno: `proc_exit`, `thread-spawn`, the rewritten atomics, the
//! stack captures) are named functions over the `Caller`, registered with `define_raw`.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use wasmix_fs::Errno;
use wasmtime::{Caller, IntoFunc, Linker, Result, WasmTy};

pub(crate) use crate::abi::{older, Abi, INTERNAL, MODULES, WASI_THREADS};
use crate::host::{split, Host};
use crate::mem::{GuestMem, Out, Value};
use crate::signals;
use crate::snapshot as snapshots;
use crate::stack::prepare::is_capture_point;
use crate::stack::Resumption;

mod args;
mod clock;
mod command;
mod epoll;
mod exec;
mod fd;
mod fdx;
mod join;
mod path;
mod poll;
mod proc;
mod signal;
mod snapshot;
mod sock;
mod spawn;
mod stacks;
mod threads;
mod trace;

/// What one host call works with: the calling thread's state, the guest's memory, and which
/// ABI generation the import module speaks (where layouts or constants differ).
pub(crate) struct Call<'a> {
    pub host: &'a mut Host,
    pub mem: GuestMem<'a>,
    pub abi: Abi,
}

/// A host call's parameter: the wasm value it arrives as, and how it becomes the type the
/// call's function takes (a result slot is checked against memory before the call runs).
pub(crate) trait Param: Sized {
    type Raw: WasmTy + Copy + Into<i64>;
    fn from_raw(raw: Self::Raw, mem: &GuestMem) -> Result<Self, Errno>;
}

impl Param for i32 {
    type Raw = i32;
    fn from_raw(raw: i32, _: &GuestMem) -> Result<i32, Errno> {
        Ok(raw)
    }
}

impl Param for i64 {
    type Raw = i64;
    fn from_raw(raw: i64, _: &GuestMem) -> Result<i64, Errno> {
        Ok(raw)
    }
}

/// Descriptors, guest addresses and lengths: the wasm i32's bits, unsigned.
impl Param for u32 {
    type Raw = i32;
    fn from_raw(raw: i32, _: &GuestMem) -> Result<u32, Errno> {
        Ok(raw as u32)
    }
}

/// Offsets, rights and other 64-bit unsigned values: the wasm i64's bits.
impl Param for u64 {
    type Raw = i64;
    fn from_raw(raw: i64, _: &GuestMem) -> Result<u64, Errno> {
        Ok(raw as u64)
    }
}

impl<T: Value> Param for Out<T> {
    type Raw = i32;
    fn from_raw(raw: i32, mem: &GuestMem) -> Result<Out<T>, Errno> {
        mem.out(raw as u32)
    }
}

/// A named host call: a function taking the [`Call`] and its parameters and answering an
/// errno, which [`HostCalls::define`] wraps into a wasm import.
pub(crate) trait HostFn<Params>: Copy + Send + Sync + 'static {
    /// Wraps the call into `linker` as `name`; `capture` says a snapshot may capture the
    /// calling thread in it (see [`dispatch`]).
    fn define(
        self,
        linker: &mut Linker<Host>,
        abi: Abi,
        name: &str,
        restart: Restart,
        capture: bool,
    ) -> Result<()>;
}

/// What a call does when a signal interrupted it (EINTR) and its handler has run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Return EINTR to the guest.
    Never,
    /// Run the call again (SA_RESTART): reads, writes, joins.
    AfterHandler,
    /// Run again only if the call left a sleep to resume (`poll_oneoff` on clocks only keeps
    /// its original deadlines); a poll that watches descriptors returns EINTR.
    Sleep,
}

macro_rules! host_fn {
    ($($p:ident $raw:ident),*) => {
        impl<F, $($p: Param),*> HostFn<($($p,)*)> for F
        where
            F: Fn(&mut Call<'_>, $($p),*) -> Result<(), Errno> + Copy + Send + Sync + 'static,
        {
            #[allow(non_snake_case)]
            fn define(
                self,
                linker: &mut Linker<Host>,
                abi: Abi,
                name: &str,
                restart: Restart,
                capture: bool,
            ) -> Result<()> {
                let traced_name: std::sync::Arc<str> = name.into();
                linker.func_wrap(
                    abi.module(),
                    name,
                    move |mut caller: Caller<'_, Host>, $($raw: $p::Raw),*| -> Result<i32> {
                        let traced = trace::enabled().then(|| {
                            let args = [$(Into::<i64>::into($raw)),*];
                            let t = trace::start(&mut caller, &traced_name, &args);
                            (args, t)
                        });
                        let r = dispatch(&mut caller, abi, restart, capture, |cx| {
                            $(let $raw = $p::from_raw($raw, &cx.mem)?;)*
                            self(cx, $($raw),*)
                        });
                        if let (Some((args, t)), Ok(code)) = (traced, &r) {
                            trace::finish(&mut caller, &traced_name, &args, t, *code);
                        }
                        r
                    },
                )?;
                Ok(())
            }
        }
    };
}

host_fn!();
host_fn!(A a);
host_fn!(A a, B b);
host_fn!(A a, B b, C c);
host_fn!(A a, B b, C c, D d);
host_fn!(A a, B b, C c, D d, E e);
host_fn!(A a, B b, C c, D d, E e, G g);
host_fn!(A a, B b, C c, D d, E e, G g, H h);
host_fn!(A a, B b, C c, D d, E e, G g, H h, I i);
host_fn!(A a, B b, C c, D d, E e, G g, H h, I i, J j);
host_fn!(A a, B b, C c, D d, E e, G g, H h, I i, J j, K k);
host_fn!(A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l);
host_fn!(A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l, M m);
host_fn!(A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l, M m, N n);
host_fn!(A a, B b, C c, D d, E e, G g, H h, I i, J j, K k, L l, M m, N n, O o);

/// Runs one host call's body: with the guest's memory and the thread's state, then acting on
/// pending signals before the call returns, and restarting it as `restart` says.
///
/// A call that is a `capture` point (one a thread can block in) lets a snapshot capture the
/// thread: when one is wanted before the body runs, or the body gave up waiting for it
/// (EINTR), the thread unwinds; rewound, the call runs again from its start. A body that did
/// something returns normally, and the thread is captured at its next capture point.
fn dispatch(
    caller: &mut Caller<'_, Host>,
    abi: Abi,
    restart: Restart,
    capture: bool,
    mut body: impl FnMut(&mut Call<'_>) -> Result<(), Errno>,
) -> Result<i32> {
    if capture {
        if caller.data().stack.rewinding() {
            if let Some(Resumption::Return(outcome)) = crate::capture::resumed(caller)? {
                return Ok(errno(outcome.map(drop)));
            }
        } else if snapshots::wanted(caller.data()) {
            return snapshots::unwind(caller, Resumption::Restart);
        }
    }
    loop {
        let result = {
            let (mem, host) = split(caller);
            body(&mut Call { host, mem, abi })
        };
        let intr = result == Err(Errno::Intr);
        if capture && intr && snapshots::wanted(caller.data()) {
            return snapshots::unwind(caller, Resumption::Restart);
        }
        if caller.data().interrupt.is_raised() {
            signals::deliver(&mut *caller)?;
            if restart == Restart::AfterHandler && intr {
                continue;
            }
        }
        if restart == Restart::Sleep {
            if intr && caller.data().pending.has_sleep() {
                continue;
            }
            caller.data_mut().pending.take_sleep();
        }
        return Ok(errno(result));
    }
}

/// Once-only snapshot triggers met at a call (`first-stdin` at the first read of stdin;
/// `bootstrap` there, at the first sleep or poll, or at the first socket wait: where a
/// program is done starting): asks for a snapshot for the first of `triggers` that is on
/// and has not fired, and marks them all fired. A `true` answer means the call should
/// return EINTR before doing anything: it is a capture point, so dispatch unwinds the
/// thread for the snapshot and the call runs after it (or after a restore of it).
pub(crate) fn snapshot_at(cx: &mut Call<'_>, triggers: &[wasmix_process::Trigger]) -> bool {
    let Some(journal) = cx.host.ctx.journal().cloned() else {
        return false;
    };
    // Every listed trigger that is on fires now; the first of them names the snapshot.
    let fired: Vec<_> = triggers.iter().filter(|t| journal.fire_once(**t)).collect();
    let Some(&&trigger) = fired.first() else {
        return false;
    };
    let ctx = std::sync::Arc::clone(&cx.host.ctx);
    match snapshots::request(&ctx, trigger, Some(cx.mem.len())) {
        // Unless the round already ended (cancelled), so the call never reports a stray EINTR.
        Ok(_) => snapshots::wanted(cx.host),
        Err(e) => {
            tracing::warn!("no {} snapshot: {e}", snapshots::trigger_name(trigger));
            false
        }
    }
}

/// What the guest sees of a call's result.
pub(crate) fn errno(result: Result<(), Errno>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => i32::from(e.raw()),
    }
}

/// Puts one host call into a linker.
type Definer = Box<dyn Fn(&mut Linker<Host>) -> Result<()> + Send + Sync>;

/// The table being filled: every host call by `(module, name)`, defined into a linker only
/// when a program imports it (see [`HostLinker`]).
pub(crate) struct HostCalls {
    calls: HashMap<(String, String), Definer>,
}

impl HostCalls {
    /// Registers the named call `f` as `name` of `abi`'s module.
    pub fn define<P>(
        &mut self,
        abi: Abi,
        name: &str,
        f: impl HostFn<P>,
        restart: Restart,
    ) -> Result<()> {
        // An older generation (`name@N`) is the same call for capturing.
        let plain = name.split('@').next().unwrap_or(name);
        let capture = is_capture_point(plain);
        let owned = name.to_owned();
        self.insert(
            abi.module(),
            name,
            Box::new(move |linker| f.define(linker, abi, &owned, restart, capture)),
        )
    }

    /// Registers a call of another shape (one that never returns, or answers other than an
    /// errno) as `module::name`.
    pub fn define_raw<Params, Args>(
        &mut self,
        module: &str,
        name: &str,
        func: impl IntoFunc<Host, Params, Args> + Clone + 'static,
    ) -> Result<()> {
        let (m, n) = (module.to_owned(), name.to_owned());
        self.insert(
            module,
            name,
            Box::new(move |linker| linker.func_wrap(&m, &n, func.clone()).map(drop)),
        )
    }

    fn insert(&mut self, module: &str, name: &str, definer: Definer) -> Result<()> {
        let key = (module.to_owned(), name.to_owned());
        if self.calls.insert(key, definer).is_some() {
            return Err(wasmtime::Error::msg(format!(
                "host call `{module}::{name}` defined twice"
            )));
        }
        Ok(())
    }
}

/// Every host call, and a linker that holds those programs have imported so far. Defining
/// all of them up front (hundreds, over four ABI generations) took ~0.7 ms of every start,
/// and every program's linker was a copy of all of them; a program imports a few dozen.
pub(crate) struct HostLinker {
    calls: HashMap<(String, String), Definer>,
    defined: Mutex<Defined>,
}

/// The shared linker, and the names defined in it so far.
struct Defined {
    linker: Linker<Host>,
    names: HashSet<(String, String)>,
}

impl HostLinker {
    /// The table of every host call, for `engine`; none defined yet.
    pub fn new(engine: &wasmtime::Engine) -> Result<HostLinker> {
        let mut calls = HostCalls {
            calls: HashMap::new(),
        };
        add_all(&mut calls)?;
        Ok(HostLinker {
            calls: calls.calls,
            defined: Mutex::new(Defined {
                linker: Linker::new(engine),
                names: HashSet::new(),
            }),
        })
    }

    /// Whether a host call `module::name` exists.
    pub fn provides(&self, module: &str, name: &str) -> bool {
        self.calls
            .contains_key(&(module.to_owned(), name.to_owned()))
    }

    /// A linker holding (at least) each of `names` that exists; each is defined once, the
    /// first time a program needs it.
    pub fn with<'n>(
        &self,
        names: impl IntoIterator<Item = (&'n str, &'n str)>,
    ) -> Result<Linker<Host>> {
        let mut defined = self.lock();
        for (module, name) in names {
            let key = (module.to_owned(), name.to_owned());
            if defined.names.contains(&key) {
                continue;
            }
            if let Some(define) = self.calls.get(&key) {
                define(&mut defined.linker)?;
                defined.names.insert(key);
            }
        }
        Ok(defined.linker.clone())
    }

    /// A linker holding every host call (for tests that call them all).
    #[cfg(any(test, fuzzing))]
    pub fn all(&self) -> Result<Linker<Host>> {
        self.with(self.calls.keys().map(|(m, n)| (m.as_str(), n.as_str())))
    }

    fn lock(&self) -> MutexGuard<'_, Defined> {
        self.defined.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Registers named host calls of one ABI, each under its function's name, with how it is
/// restarted after a signal (default: never):
/// `host_calls!(calls, abi, [fd_close, fd_read(AfterHandler), ...])`.
macro_rules! host_calls {
    ($calls:expr, $abi:expr, [$($name:ident $(($restart:ident))?),* $(,)?]) => {
        $(
            $calls.define(
                $abi,
                stringify!($name),
                $name,
                $crate::wasi::host_calls!(@restart $($restart)?),
            )?;
        )*
    };
    (@restart) => { $crate::wasi::Restart::Never };
    (@restart $restart:ident) => { $crate::wasi::Restart::$restart };
}
pub(crate) use host_calls;

/// Registers every host call: both WASI generations, WASIX, wasi-threads, and the stand-ins
/// for rewritten atomics.
fn add_all(calls: &mut HostCalls) -> Result<()> {
    for abi in MODULES {
        args::add(calls, abi)?;
        clock::add(calls, abi)?;
        fd::add(calls, abi)?;
        path::add(calls, abi)?;
        poll::add(calls, abi)?;
        proc::add(calls, abi)?;
        signal::add(calls, abi)?;
        sock::add(calls, abi)?;
    }
    fdx::add(calls)?;
    sock::add_wasix(calls)?;
    epoll::add(calls)?;
    threads::add(calls)?;
    proc::add_wasix(calls)?;
    signal::add_wasix(calls)?;
    spawn::add(calls)?;
    exec::add(calls)?;
    join::add(calls)?;
    stacks::add(calls)?;
    snapshot::add(calls)?;
    calls.define_raw(INTERNAL, crate::rewrite::MEMORY_GROW, memory_grow)?;
    calls.define_raw(INTERNAL, crate::checks::INTERRUPT, interrupt)?;
    Ok(())
}

/// An interruption check found the thread's flag word set (see `checks`): acts on what is
/// pending, then lowers the word unless something new came meanwhile.
fn interrupt(mut caller: wasmtime::Caller<'_, Host>) -> Result<()> {
    crate::signals::deliver(&mut caller)?;
    caller.data().interrupt.settle();
    Ok(())
}

/// `memory.grow` of an imported shared memory, as the load-time rewrite calls it: the size
/// in pages it had, or -1 past its maximum or the runtime's total memory budget.
fn memory_grow(mut caller: wasmtime::Caller<'_, Host>, pages: i32) -> i32 {
    crate::host::grow_memory(&mut caller, u64::from(pages as u32)).map_or(-1, |old| old as i32)
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

#[cfg(any(test, fuzzing))]
pub(crate) mod harness;
#[cfg(test)]
mod hostile_tests;
