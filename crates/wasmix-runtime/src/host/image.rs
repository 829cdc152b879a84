//! A program made ready to run as one process: its imports checked, and, for a threaded
//! program, the process's shared memory that every thread's instance imports.
//!
//! Imports are resolved per instance by the module's declared type, not by name alone: real
//! WASIX binaries use several generations of a call under one name, so a host call may be
//! registered under `name` and, for an older signature, `name@N` (N = parameter count).

use std::sync::{Arc, OnceLock};

use wasmtime::{
    ExternType, Func, Instance, InstancePre, MemoryType, MemoryTypeBuilder, SharedMemory, Store,
    Val,
};

use super::Host;
use crate::abi::{self, Abi};
use crate::budget::{Charge, OverBudget};
use crate::error::RunError;
use crate::program::Program;
use crate::Runtime;

/// What every thread of one process instantiates. A clone shares the memory (a vfork child).
#[derive(Clone)]
pub(crate) struct Image {
    program: Program,
    preloads: Vec<(String, Program)>,
    shared: Option<SharedMemory>,
    /// What the shared memory holds of the runtime's total memory budget (shared with a
    /// vfork child, which uses the same memory).
    charge: Arc<Charge>,
    /// For a threaded program, imports resolved once (with the first thread's store) so later
    /// threads only instantiate.
    pre: OnceLock<InstancePre<Host>>,
}

impl Image {
    /// Checks `program`'s imports against the host calls (and `preloads`, each linked under
    /// its name); a shared memory import gets a fresh memory of its declared type.
    pub fn new(
        runtime: &Runtime,
        program: &Program,
        preloads: Vec<(String, Program)>,
    ) -> Result<Image, RunError> {
        let mut shared = None;
        let charge = Arc::new(Charge::new(runtime.memory_budget().cloned()));
        for import in program.module().imports() {
            match import.ty() {
                // The interruption checks' flag table (`checks`): the runtime's.
                ExternType::Memory(_) if is_flag_table(&import) => {}
                ExternType::Memory(ty) => {
                    if !ty.is_shared() {
                        return Err(RunError::Link(format!(
                            "`{}` imports memory `{}::{}`, which is not shared; wasmix provides \
                             only shared memories",
                            program.name(),
                            import.module(),
                            import.name()
                        )));
                    }
                    if shared.is_some() {
                        return Err(RunError::Link(format!(
                            "`{}` imports more than one memory",
                            program.name()
                        )));
                    }
                    let ty = limited(&ty, runtime.max_memory())
                        .map_err(|e| RunError::Setup(format!("`{}` {e}", program.name())))?;
                    charge
                        .take(ty.minimum().saturating_mul(PAGE))
                        .map_err(|e| over_budget(program, e))?;
                    let mem = SharedMemory::new(runtime.engine(), ty).map_err(|e| {
                        RunError::Setup(format!("cannot create the shared memory: {e}"))
                    })?;
                    shared = Some(mem);
                }
                ExternType::Func(ty) => {
                    let (module, name) = (import.module(), import.name());
                    if preloads.iter().any(|(n, _)| n == module) {
                        continue;
                    }
                    let candidates = abi::candidates(name, ty.params().len());
                    if !candidates.iter().any(|n| runtime.provides(module, n)) {
                        if module != Abi::Wasix.module() {
                            return Err(unprovided(program, module, name));
                        }
                        // Real WASIX binaries import more than they call: the rest answers
                        // ENOSYS when called, as a kernel does for a syscall it lacks.
                        tracing::warn!(
                            "`{}` imports `{module}::{name}`, which wasmix does not implement; \
                             calls to it answer ENOSYS",
                            program.name()
                        );
                    }
                }
                _ => {
                    return Err(RunError::Link(format!(
                        "`{}` imports `{}::{}`, which is not a function or memory; wasmix \
                         provides neither tables nor globals",
                        program.name(),
                        import.module(),
                        import.name()
                    )))
                }
            }
        }
        // A memory of its own: the store's limiter keeps it under the limit as it grows, but
        // one that needs more to start is refused here, by name.
        for export in program.module().exports() {
            if let ExternType::Memory(ty) = export.ty() {
                limited(&ty, runtime.max_memory())
                    .map_err(|e| RunError::Setup(format!("`{}` {e}", program.name())))?;
                // The store's limiter takes the charge at instantiation; a start that cannot
                // fit is refused here, where it can be named.
                let probe = Charge::new(runtime.memory_budget().cloned());
                probe
                    .take(ty.minimum().saturating_mul(PAGE))
                    .map_err(|e| over_budget(program, e))?;
            }
        }
        Ok(Image {
            program: program.clone(),
            preloads,
            shared,
            charge,
            pre: OnceLock::new(),
        })
    }

    /// The same program for a forked child: a fresh shared memory of the same type (limited
    /// as the parent's is), if the program has one (the fork fills it in).
    pub fn for_fork(&self, runtime: &Runtime) -> Result<Image, wasmix_fs::Errno> {
        let charge = Arc::new(Charge::new(runtime.memory_budget().cloned()));
        let shared = match &self.shared {
            Some(m) => {
                let ty = m.ty();
                charge
                    .take(ty.minimum().saturating_mul(PAGE))
                    .map_err(|_| wasmix_fs::Errno::Nomem)?;
                Some(SharedMemory::new(runtime.engine(), ty).map_err(|_| wasmix_fs::Errno::Nomem)?)
            }
            None => None,
        };
        Ok(Image {
            program: self.program.clone(),
            preloads: self.preloads.clone(),
            shared,
            charge,
            pre: OnceLock::new(),
        })
    }

    /// Grows the shared memory by `pages`, charged to the total budget first: the size it
    /// had in pages, or `None` past the budget or the memory's maximum (nothing changed).
    pub fn grow_shared(&self, pages: u64) -> Option<u64> {
        let shared = self.shared.as_ref()?;
        let bytes = pages.checked_mul(PAGE)?;
        self.charge.take(bytes).ok()?;
        match shared.grow(pages) {
            Ok(old) => Some(old),
            Err(_) => {
                self.charge.give_back(bytes);
                None
            }
        }
    }

    /// The program.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The process's shared memory, if the program imports one (it can then run threads).
    pub fn shared_memory(&self) -> Option<&SharedMemory> {
        self.shared.as_ref()
    }

    /// Instantiates the program (after its preloads) in `store`; `slot`: the offset of the
    /// thread's interruption flag, which each instance's checks then read (`checks`), set
    /// before the instance's start function runs.
    pub fn instantiate(
        &self,
        runtime: &Runtime,
        store: &mut Store<Host>,
        slot: Option<i32>,
    ) -> Result<Instance, wasmtime::Error> {
        // With the slot set, the start function the checks rewrite held back runs.
        let set_slot = |store: &mut Store<Host>, instance: Instance| {
            if let (Some(offset), Some(global)) = (
                slot,
                instance.get_global(&mut *store, crate::checks::SLOT_GLOBAL),
            ) {
                global.set(&mut *store, wasmtime::Val::I32(offset))?;
            }
            if let Ok(start) = instance.get_typed_func::<(), ()>(&mut *store, crate::checks::START)
            {
                start.call(&mut *store, ())?;
            }
            Ok::<_, wasmtime::Error>(instance)
        };
        if let (Some(shared), true) = (&self.shared, self.preloads.is_empty()) {
            if self.pre.get().is_none() {
                let pre = self.prepare(runtime, store, shared)?;
                let _ = self.pre.set(pre);
            }
            if let Some(pre) = self.pre.get() {
                let instance = pre.instantiate(&mut *store)?;
                return set_slot(store, instance);
            }
        }
        let mut preloaded: Vec<(&str, Instance)> = Vec::new();
        for (name, helper) in &self.preloads {
            let imports = self.resolve(runtime, store, helper, &preloaded)?;
            let inst = Instance::new(&mut *store, helper.module(), &imports)?;
            preloaded.push((name, set_slot(store, inst)?));
        }
        let imports = self.resolve(runtime, store, &self.program, &preloaded)?;
        let instance = Instance::new(&mut *store, self.program.module(), &imports)?;
        set_slot(store, instance)
    }

    /// A linker for this program alone: its memory defined, and each import whose current
    /// form does not match its declared type pointed at the generation that does.
    fn prepare(
        &self,
        runtime: &Runtime,
        store: &mut Store<Host>,
        shared: &SharedMemory,
    ) -> Result<InstancePre<Host>, wasmtime::Error> {
        let base = host_linker(runtime, &self.program, &[])?;
        let mut linker = base.clone();
        linker.allow_shadowing(true);
        for import in self.program.module().imports() {
            let (module, name) = (import.module(), import.name());
            match import.ty() {
                ExternType::Memory(_) if is_flag_table(&import) => {
                    if let Some(t) = runtime.check_flags() {
                        linker.define(&*store, module, name, t.memory().clone())?;
                    }
                }
                ExternType::Memory(_) => {
                    linker.define(&*store, module, name, shared.clone())?;
                }
                ExternType::Func(ty) => {
                    let chosen = abi::candidates(name, ty.params().len())
                        .into_iter()
                        .find(|n| {
                            base.get(&mut *store, module, n)
                                .ok()
                                .and_then(|e| e.into_func())
                                .is_some_and(|f| f.ty(&*store).matches(&ty))
                        });
                    if chosen.is_none() && module == Abi::Wasix.module() {
                        linker.func_new(module, name, ty.clone(), not_implemented(name, &ty))?;
                        continue;
                    }
                    let chosen = chosen.ok_or_else(|| {
                            wasmtime::Error::msg(format!(
                                "`{}` imports `{module}::{name}` with a signature wasmix does not provide",
                                self.program.name()
                            ))
                        })?;
                    if chosen != name {
                        linker.alias(module, &chosen, module, name)?;
                    }
                }
                _ => {}
            }
        }
        linker.instantiate_pre(self.program.module())
    }

    fn resolve(
        &self,
        runtime: &Runtime,
        store: &mut Store<Host>,
        program: &Program,
        preloaded: &[(&str, Instance)],
    ) -> Result<Vec<wasmtime::Extern>, wasmtime::Error> {
        let preloads: Vec<&str> = preloaded.iter().map(|(n, _)| *n).collect();
        let base = host_linker(runtime, program, &preloads)?;
        let mut out = Vec::new();
        for import in program.module().imports() {
            let (module, name) = (import.module(), import.name());
            let ext = match import.ty() {
                ExternType::Memory(_) if is_flag_table(&import) => {
                    runtime.check_flags().map(|t| t.memory().clone().into())
                }
                ExternType::Memory(_) => self.shared.as_ref().map(|m| m.clone().into()),
                ExternType::Func(ty) => {
                    if let Some((_, inst)) = preloaded.iter().find(|(n, _)| *n == module) {
                        inst.get_export(&mut *store, name)
                    } else {
                        let mut found = None;
                        for n in abi::candidates(name, ty.params().len()) {
                            let Ok(e) = base.get(&mut *store, module, &n) else {
                                continue;
                            };
                            if e.clone()
                                .into_func()
                                .is_some_and(|f| f.ty(&*store).matches(&ty))
                            {
                                found = Some(e);
                                break;
                            }
                        }
                        found.or_else(|| {
                            (module == Abi::Wasix.module())
                                .then(|| {
                                    Func::new(&mut *store, ty.clone(), not_implemented(name, &ty))
                                })
                                .map(Into::into)
                        })
                    }
                }
                _ => None,
            };
            let ext = ext.ok_or_else(|| {
                wasmtime::Error::msg(format!(
                    "`{}` imports `{module}::{name}` with a signature wasmix does not provide",
                    program.name()
                ))
            })?;
            out.push(ext);
        }
        Ok(out)
    }
}

/// A linker holding every host call `program` may import under each of its imports' names
/// (the generations `abi::candidates` lists), but those of the `preloaded` modules.
fn host_linker(
    runtime: &Runtime,
    program: &Program,
    preloaded: &[&str],
) -> Result<wasmtime::Linker<Host>, wasmtime::Error> {
    let mut names = Vec::new();
    for import in program.module().imports() {
        if let ExternType::Func(ty) = import.ty() {
            if !preloaded.contains(&import.module()) {
                for n in abi::candidates(import.name(), ty.params().len()) {
                    names.push((import.module(), n));
                }
            }
        }
    }
    runtime
        .host_calls()
        .with(names.iter().map(|(m, n)| (*m, n.as_str())))
}

/// A host call wasmix lacks: ENOSYS for calls that return an errno, a trap naming the call for
/// any other shape.
fn not_implemented(
    name: &str,
    ty: &wasmtime::FuncType,
) -> impl Fn(wasmtime::Caller<'_, Host>, &[Val], &mut [Val]) -> wasmtime::Result<()>
       + Send
       + Sync
       + 'static {
    let name = name.to_owned();
    let errno = ty.results().len() == 1 && ty.results().all(|r| r.is_i32());
    move |_, _, results| match results {
        [r] if errno => {
            *r = Val::I32(i32::from(wasmix_fs::Errno::Nosys.raw()));
            Ok(())
        }
        _ => Err(wasmtime::Error::msg(format!(
            "the guest called `{name}`, which wasmix does not implement"
        ))),
    }
}

fn unprovided(program: &Program, module: &str, name: &str) -> RunError {
    RunError::Link(if abi::is_provided_module(module) {
        format!(
            "`{}` imports `{module}::{name}`, which is not a function of {module} that wasmix provides",
            program.name()
        )
    } else {
        format!(
            "`{}` imports `{module}::{name}`, but nothing provides module `{module}` (link one with --preload {module}=FILE)",
            program.name()
        )
    })
}

/// A shared memory's type with its maximum lowered to `limit` bytes (the per-process memory
/// limit): the engine then refuses growth past it as past any maximum. A minimum above the
/// limit is an error naming both.
fn limited(ty: &MemoryType, limit: Option<u64>) -> Result<MemoryType, String> {
    let Some(limit) = limit else {
        return Ok(ty.clone());
    };
    let page = ty.page_size();
    let pages = limit / page;
    if ty.minimum() > pages {
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        return Err(format!(
            "needs {:.1} MiB of memory to start; the limit is {:.1} MiB (--max-memory)",
            mib(ty.minimum().saturating_mul(page)),
            mib(limit)
        ));
    }
    let max = ty.maximum().map_or(pages, |m| m.min(pages));
    MemoryTypeBuilder::new()
        .shared(ty.is_shared())
        .memory64(ty.is_64())
        .page_size_log2(ty.page_size_log2())
        .min(ty.minimum())
        .max(Some(max))
        .build()
        .map_err(|e| format!("cannot limit its memory: {e}"))
}

/// Bytes in a page of 32-bit linear memory.
const PAGE: u64 = 65536;

fn over_budget(program: &Program, e: OverBudget) -> RunError {
    RunError::OutOfMemory(format!(
        "`{}` needs {} bytes of memory to start: {e}",
        program.name(),
        e.asked
    ))
}

/// The errno a guest's spawn or exec sees when its program cannot be made an image: ENOMEM
/// when its memory does not fit the total limit, else ENOEXEC.
pub(crate) fn image_errno(e: RunError) -> wasmix_fs::Errno {
    match e {
        RunError::OutOfMemory(_) => wasmix_fs::Errno::Nomem,
        _ => wasmix_fs::Errno::Noexec,
    }
}

/// Whether `import` is the interruption checks' flag table, which the runtime provides.
fn is_flag_table(import: &wasmtime::ImportType<'_>) -> bool {
    import.module() == crate::abi::INTERNAL && import.name() == crate::checks::FLAGS
}
