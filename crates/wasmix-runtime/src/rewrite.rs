//! Load-time rewriting of modules.
//!
//! Raw `memory.atomic.wait32/64` and `memory.atomic.notify` become calls of host functions
//! (module `wasmix`), so a thread parked in a wait can be signalled and killed: an
//! engine-level atomic wait ignores epochs and only wakes on a notify of its exact address.
//!
//! A module whose stacks may be captured (it exports asyncify's entry points) gets every
//! mutable global exported, so a captured thread's `__stack_pointer`, `__tls_base` and the rest
//! can be read and set from the host. A global keeps its debug name as export name when it has
//! one not taken (`__stack_pointer`), else `wasmix:global:N`; an unnamed first global that is a
//! mutable i32 is wasm-ld's stack pointer and is exported as `__stack_pointer`.
//!
//! In a module that imports a shared 32-bit memory, `memory.grow` becomes a call of
//! `wasmix.memory_grow`: a shared memory grows without a store, so this is where the
//! runtime's total memory budget sees it (see `budget`).
//!
//! A module whose exported `__wasm_signal` dispatches signals through function pointers (a
//! WASIX libc's) gets those calls guarded: a pointer of 0 or 1 — `SIG_DFL` or `SIG_IGN`,
//! which wasix-libc calls as functions for signals whose default is to be ignored (see
//! `guard_call`) — is not called. The module then exports its entry a second time as
//! [`SIGNAL_MARK`], and the runtime delivers SIGCHLD, SIGURG and SIGWINCH to it too.
//!
//! Each atomic instruction becomes `i64.const offset; call $host`: the host call receives the
//! instruction's operands plus its static offset and checks bounds and alignment as the
//! instruction would. The new imports go at the end of the import section, so only defined
//! functions move (by three); every function index in the module (calls, `ref.func`, exports,
//! elements, start, names) is shifted by the re-encoder.

use std::borrow::Cow;

use wasm_encoder::reencode::Reencode;
use wasm_encoder::{EntityType, Instruction, ValType};
use wasmparser::{Operator, Payload};

use crate::abi::INTERNAL;

/// Bumped when the rewrite changes, so cached compilations of older rewrites are not reused.
pub(crate) const VERSION: u32 = 4;

const WAIT32: &str = "atomic_wait32";
const WAIT64: &str = "atomic_wait64";
const NOTIFY: &str = "atomic_notify";

/// Import (module `wasmix`) `memory.grow` of an imported shared memory becomes.
pub(crate) const MEMORY_GROW: &str = "memory_grow";

/// The signal entry point WASIX libcs export and register.
const SIGNAL_ENTRY: &str = "__wasm_signal";

/// Export (the signal entry point again) of a module whose signal dispatch is guarded.
pub(crate) const SIGNAL_MARK: &str = "wasmix:guarded-signals";

/// How far from the signal entry point calls are guarded: the entry, what it calls (a
/// `__wasm_signal` that forwards to `__wasm_signal_impl`) and what that calls.
const GUARD_DEPTH: usize = 3;

/// The export asyncify-instrumented modules have; its presence means stacks can be captured.
pub(crate) const ASYNCIFY_MARK: &str = "asyncify_start_unwind";

/// What the first pass found.
#[derive(Default)]
struct Survey {
    types: u32,
    imported_funcs: u32,
    imported_globals: u32,
    has_imports: bool,
    has_globals: bool,
    has_exports: bool,
    defined_globals: u32,
    atomics: bool,
    /// The module imports a shared 32-bit memory (as memory 0).
    shared_memory: bool,
    /// Some function grows memory 0.
    grows: bool,
    asyncify: bool,
    /// Defined globals: (index, is a mutable i32).
    mutable_globals: Vec<(u32, bool)>,
    exported_globals: std::collections::HashSet<u32>,
    export_names: std::collections::HashSet<String>,
    global_names: std::collections::HashMap<u32, String>,
    /// Parameter count of each type that is a function type (`None` otherwise).
    type_params: Vec<Option<u32>>,
    /// Types of functions taking one i32 and returning nothing: a C signal handler's.
    handler_types: std::collections::HashSet<u32>,
    /// The type of each defined function.
    defined_types: Vec<u32>,
    /// Per defined function: what it calls directly, and whether it calls a pointer to a
    /// handler-typed function.
    calls: Vec<(Vec<u32>, bool)>,
    /// The function exported as [`SIGNAL_ENTRY`].
    signal_entry: Option<u32>,
}

impl Survey {
    /// The defined functions within [`GUARD_DEPTH`] direct calls of the signal entry point,
    /// if one of them calls a handler-typed pointer (a dispatcher to per-signal handlers) and
    /// the module is not guarded already.
    fn signal_dispatch(&self) -> Option<std::collections::HashSet<u32>> {
        let entry = self.signal_entry?;
        if self.export_names.contains(SIGNAL_MARK) {
            return None;
        }
        let mut reached = std::collections::HashSet::from([entry]);
        let mut frontier = vec![entry];
        for _ in 1..GUARD_DEPTH {
            let mut next = Vec::new();
            for f in frontier {
                let Some((callees, _)) = self.defined(f) else {
                    continue;
                };
                for &c in callees {
                    if self.defined(c).is_some() && reached.insert(c) {
                        next.push(c);
                    }
                }
            }
            frontier = next;
        }
        reached
            .iter()
            .any(|&f| self.defined(f).is_some_and(|(_, indirect)| *indirect))
            .then_some(reached)
    }

    fn defined(&self, func: u32) -> Option<&(Vec<u32>, bool)> {
        self.calls
            .get(func.checked_sub(self.imported_funcs)? as usize)
    }
    /// Export names for the mutable globals that have none.
    fn global_exports(&self) -> Vec<(u32, String)> {
        if !self.asyncify {
            return Vec::new();
        }
        let mut taken = self.export_names.clone();
        let mut out = Vec::new();
        for &(index, is_i32) in &self.mutable_globals {
            if self.exported_globals.contains(&index) {
                continue;
            }
            let named = self.global_names.get(&index).cloned().or_else(|| {
                (index == 0 && is_i32 && self.global_names.is_empty())
                    .then(|| "__stack_pointer".to_owned())
            });
            let name = match named {
                Some(n) if !taken.contains(&n) => n,
                _ => format!("wasmix:global:{index}"),
            };
            taken.insert(name.clone());
            out.push((index, name));
        }
        out
    }
}

fn survey(wasm: &[u8]) -> wasmparser::Result<Survey> {
    let mut s = Survey::default();
    for payload in crate::exnref::parser().parse_all(wasm) {
        match payload? {
            Payload::GlobalSection(r) => {
                s.has_globals = true;
                s.defined_globals = r.count();
                for (i, g) in r.into_iter().enumerate() {
                    let ty = g?.ty;
                    if ty.mutable {
                        let index = s.imported_globals + i as u32;
                        s.mutable_globals
                            .push((index, ty.content_type == wasmparser::ValType::I32));
                    }
                }
            }
            Payload::ExportSection(r) => {
                s.has_exports = true;
                for e in r {
                    let e = e?;
                    s.export_names.insert(e.name.to_owned());
                    if e.name == ASYNCIFY_MARK {
                        s.asyncify = true;
                    }
                    if e.name == SIGNAL_ENTRY && e.kind == wasmparser::ExternalKind::Func {
                        s.signal_entry = Some(e.index);
                    }
                    if e.kind == wasmparser::ExternalKind::Global {
                        s.exported_globals.insert(e.index);
                    }
                }
            }
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                    for n in names {
                        let Ok(wasmparser::Name::Global(map)) = n else {
                            continue;
                        };
                        for naming in map {
                            let naming = naming?;
                            s.global_names.insert(naming.index, naming.name.to_owned());
                        }
                    }
                }
            }
            Payload::TypeSection(r) => {
                for group in r {
                    for ty in group?.types() {
                        let params = match &ty.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => {
                                if f.params() == [wasmparser::ValType::I32]
                                    && f.results().is_empty()
                                {
                                    s.handler_types.insert(s.types);
                                }
                                Some(f.params().len() as u32)
                            }
                            _ => None,
                        };
                        s.type_params.push(params);
                        s.types += 1;
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for ty in r {
                    s.defined_types.push(ty?);
                }
            }
            Payload::ImportSection(r) => {
                s.has_imports = true;
                for import in r.into_imports() {
                    match import?.ty {
                        wasmparser::TypeRef::Func(_) => s.imported_funcs += 1,
                        wasmparser::TypeRef::Global(_) => s.imported_globals += 1,
                        wasmparser::TypeRef::Memory(m) => {
                            s.shared_memory = m.shared && !m.memory64;
                        }
                        _ => {}
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader()?;
                let (mut callees, mut indirect) = (Vec::new(), false);
                while !ops.eof() {
                    match ops.read()? {
                        Operator::MemoryAtomicWait32 { .. }
                        | Operator::MemoryAtomicWait64 { .. }
                        | Operator::MemoryAtomicNotify { .. } => s.atomics = true,
                        Operator::MemoryGrow { mem: 0 } => s.grows = true,
                        Operator::Call { function_index } => callees.push(function_index),
                        Operator::CallIndirect { type_index, .. } => {
                            indirect |= s.handler_types.contains(&type_index);
                        }
                        _ => {}
                    }
                }
                s.calls.push((callees, indirect));
            }
            _ => {}
        }
    }
    Ok(s)
}

/// `wasm` with its raw atomic waits and notifies turned into host calls and, when its stacks
/// can be captured, its mutable globals exported; unchanged (borrowed) when neither applies.
/// Debug sections are dropped from a module whose code changed: their code offsets no longer
/// hold (the name section, which backtraces use, is kept and remapped).
pub(crate) fn instrument(wasm: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    let s = survey(wasm).map_err(|e| e.to_string())?;
    let global_exports = s.global_exports();
    let grows = s.grows && s.shared_memory;
    let signals = s.signal_dispatch();
    if !s.atomics && !grows && global_exports.is_empty() && signals.is_none() {
        return Ok(Cow::Borrowed(wasm));
    }
    let how = Rewrites {
        atomics: s.atomics,
        grow: grows,
        safepoint: None,
        signals,
    };
    rewrite(wasm, &s, how, global_exports).map(Cow::Owned)
}

/// What one pass of the re-encoder changes.
struct Rewrites {
    /// Raw atomic waits and notifies become host calls (three imports).
    atomics: bool,
    /// `memory.grow` of the shared memory becomes a host call (one import).
    grow: bool,
    /// Every loop header gets a safe point reading this global (one import).
    safepoint: Option<u32>,
    /// Handler-typed pointer calls in these functions (the signal dispatch) are guarded.
    signals: Option<std::collections::HashSet<u32>>,
}

/// Import (module `wasmix`) a safe point calls.
pub(crate) const SAFEPOINT: &str = "safepoint";

/// Export name of the global that asks loops to call the safe point.
pub(crate) const SAFEPOINT_FLAG: &str = "wasmix:safepoint";

/// `wasm` with a safe point at every loop header: `global.get $flag; if; call
/// $wasmix.safepoint; end`. The flag is a new mutable i32 global, exported as
/// [`SAFEPOINT_FLAG`], which the host raises (from the epoch callback, on the thread's own
/// store) when it needs the thread at a safe point; the call goes last among the imports, so
/// only defined functions shift (by one). Asyncify, run afterwards with the safe point among
/// its imports, makes that call a place the thread's stack can be captured — so a thread in
/// a compute loop can be snapshotted within one iteration.
pub(crate) fn safepoints(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let s = survey(wasm).map_err(|e| e.to_string())?;
    if !s.has_exports {
        return Err("the module exports nothing (no `_start` to run)".into());
    }
    let flag = s.imported_globals + s.defined_globals;
    let how = Rewrites {
        atomics: false,
        grow: false,
        safepoint: Some(flag),
        signals: None,
    };
    rewrite(wasm, &s, how, Vec::new())
}

/// Re-encodes `wasm` as `how` says, with `global_exports` added.
fn rewrite(
    wasm: &[u8],
    s: &Survey,
    how: Rewrites,
    global_exports: Vec<(u32, String)>,
) -> Result<Vec<u8>, String> {
    let Rewrites {
        atomics,
        grow,
        safepoint,
        signals,
    } = how;
    let added_funcs =
        if atomics { 3 } else { 0 } + u32::from(safepoint.is_some()) + u32::from(grow);
    let mut r = Rewriter {
        first_type: s.types,
        imported_funcs: s.imported_funcs,
        has_imports: s.has_imports,
        has_globals: s.has_globals,
        atomics,
        grow,
        safepoint,
        signals: signals.map(|dispatch| SignalGuard {
            dispatch,
            handler_types: s.handler_types.clone(),
            entry: s.signal_entry.unwrap_or(0),
        }),
        type_params: s.type_params.clone(),
        defined_types: s.defined_types.clone(),
        next_body: s.imported_funcs,
        added_funcs,
        imports_added: added_funcs == 0,
        flag_added: safepoint.is_none(),
        global_exports,
    };
    let mut module = wasm_encoder::Module::new();
    r.parse_core_module(&mut module, crate::exnref::parser(), wasm)
        .map_err(|e| format!("{e:?}"))?;
    Ok(module.finish())
}

struct Rewriter {
    first_type: u32,
    imported_funcs: u32,
    has_imports: bool,
    has_globals: bool,
    /// Whether atomics are rewritten (and the three host imports added).
    atomics: bool,
    /// Whether `memory.grow` is rewritten (and its import added, after the safe point's).
    grow: bool,
    /// The safe-point flag's global index, when loops get safe points.
    safepoint: Option<u32>,
    /// Functions imported on top of the module's own (defined functions shift by this).
    added_funcs: u32,
    /// Whether the new imports have been emitted (or none are needed).
    imports_added: bool,
    /// Whether the safe-point flag global has been emitted (or none is needed).
    flag_added: bool,
    /// Globals to add to the export section (which a module with asyncify always has).
    global_exports: Vec<(u32, String)>,
    /// The signal dispatch to guard, if any.
    signals: Option<SignalGuard>,
    /// Parameter count of each function type.
    type_params: Vec<Option<u32>>,
    /// The type of each defined function.
    defined_types: Vec<u32>,
    /// The (original) index of the function whose body comes next.
    next_body: u32,
}

/// What guarding a module's signal dispatch needs.
struct SignalGuard {
    /// The functions whose handler-typed pointer calls are guarded.
    dispatch: std::collections::HashSet<u32>,
    /// Types of handler functions.
    handler_types: std::collections::HashSet<u32>,
    /// The signal entry point (exported again as [`SIGNAL_MARK`]).
    entry: u32,
}

impl Rewriter {
    /// Index of atomics host function `k` (0 wait32, 1 wait64, 2 notify).
    fn host_func(&self, k: u32) -> u32 {
        self.imported_funcs + k
    }

    /// Index of the safe-point import (after the atomics ones).
    fn safepoint_func(&self) -> u32 {
        self.imported_funcs + if self.atomics { 3 } else { 0 }
    }

    /// Index of the memory-grow import (after the safe point's).
    fn grow_func(&self) -> u32 {
        self.safepoint_func() + u32::from(self.safepoint.is_some())
    }

    fn add_imports(&mut self, imports: &mut wasm_encoder::ImportSection) {
        let mut ty = self.first_type;
        if self.atomics {
            for name in [WAIT32, WAIT64, NOTIFY] {
                imports.import(INTERNAL, name, EntityType::Function(ty));
                ty += 1;
            }
        }
        if self.safepoint.is_some() {
            imports.import(INTERNAL, SAFEPOINT, EntityType::Function(ty));
            ty += 1;
        }
        if self.grow {
            imports.import(INTERNAL, MEMORY_GROW, EntityType::Function(ty));
        }
        self.imports_added = true;
    }

    fn add_flag(&mut self, globals: &mut wasm_encoder::GlobalSection) {
        globals.global(
            wasm_encoder::GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &wasm_encoder::ConstExpr::i32_const(0),
        );
        self.flag_added = true;
    }
}

impl Reencode for Rewriter {
    type Error = std::convert::Infallible;

    // The module is not validated yet: an index out of range must stay out of range (a
    // wrapping shift would make `call 4294967295` a valid call of an import).
    fn function_index(
        &mut self,
        func: u32,
    ) -> Result<u32, wasm_encoder::reencode::Error<Self::Error>> {
        Ok(if func >= self.imported_funcs {
            func.saturating_add(self.added_funcs)
        } else {
            func
        })
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        wasm_encoder::reencode::utils::parse_type_section(self, types, section)?;
        use ValType::{I32, I64};
        if self.atomics {
            types.ty().function([I32, I32, I64, I64], [I32]);
            types.ty().function([I32, I64, I64, I64], [I32]);
            types.ty().function([I32, I32, I64], [I32]);
        }
        if self.safepoint.is_some() {
            types.ty().function([], []);
        }
        if self.grow {
            types.ty().function([I32], [I32]);
        }
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        wasm_encoder::reencode::utils::parse_import_section(self, imports, section)?;
        if !self.imports_added {
            self.add_imports(imports);
        }
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        wasm_encoder::reencode::utils::parse_global_section(self, globals, section)?;
        if !self.flag_added {
            self.add_flag(globals);
        }
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        wasm_encoder::reencode::utils::parse_export_section(self, exports, section)?;
        for (index, name) in &self.global_exports {
            exports.export(name, wasm_encoder::ExportKind::Global, *index);
        }
        if let Some(flag) = self.safepoint {
            exports.export(SAFEPOINT_FLAG, wasm_encoder::ExportKind::Global, flag);
        }
        if let Some(entry) = self.signals.as_ref().map(|g| g.entry) {
            let entry = self.function_index(entry)?;
            exports.export(SIGNAL_MARK, wasm_encoder::ExportKind::Func, entry);
        }
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<wasm_encoder::SectionId>,
        before: Option<wasm_encoder::SectionId>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        use wasm_encoder::SectionId;
        // A module without imports gets an import section right after its types.
        let past_types = !matches!(before, Some(SectionId::Type));
        if !self.has_imports && !self.imports_added && past_types {
            let mut imports = wasm_encoder::ImportSection::new();
            self.add_imports(&mut imports);
            module.section(&imports);
        }
        // The global section sits just before exports; a module without one gets one there.
        if !self.has_globals && !self.flag_added && matches!(before, Some(SectionId::Export)) {
            let mut globals = wasm_encoder::GlobalSection::new();
            self.add_flag(&mut globals);
            module.section(&globals);
        }
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        if section.name().starts_with(".debug") {
            return Ok(());
        }
        wasm_encoder::reencode::utils::parse_custom_section(self, module, section)
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        let this = self.next_body;
        self.next_body += 1;
        let dispatches = self
            .signals
            .as_ref()
            .is_some_and(|g| g.dispatch.contains(&this));
        // A dispatching function gets one more local: the pointer its guard tests.
        let params = self
            .defined_types
            .get((this - self.imported_funcs) as usize)
            .and_then(|&t| self.type_params.get(t as usize).copied().flatten())
            .unwrap_or(0);
        let mut locals = Vec::new();
        let mut pointer = params;
        for pair in func.get_locals_reader()? {
            let (n, ty) = pair?;
            locals.push((n, self.val_type(ty)?));
            pointer += n;
        }
        if dispatches {
            locals.push((1, ValType::I32));
        }
        let mut f = wasm_encoder::Function::new(locals);
        let mut ops = func.get_operators_reader()?;
        // An `i32.const 0` or `1` not yet written: it may be SIG_DFL/SIG_IGN about to be called.
        let mut held: Option<i32> = None;
        while !ops.eof() {
            let op = ops.read()?;
            if let Some(g) = &self.signals {
                if let Operator::CallIndirect {
                    type_index,
                    table_index,
                } = op
                {
                    if g.handler_types.contains(&type_index) {
                        if held.take().is_some() {
                            // `SIG_IGN(sig)`: nothing to call; the signal number goes.
                            f.instruction(&Instruction::Drop);
                            continue;
                        }
                        if dispatches {
                            guard_call(&mut f, pointer, type_index, table_index);
                            continue;
                        }
                    }
                }
                if let Some(v) = held.take() {
                    f.instruction(&Instruction::I32Const(v));
                }
                if let Operator::I32Const { value: v @ (0 | 1) } = op {
                    held = Some(v);
                    continue;
                }
            }
            let host = match &op {
                Operator::MemoryAtomicWait32 { memarg } if self.atomics && memarg.memory == 0 => {
                    Some((0, memarg.offset))
                }
                Operator::MemoryAtomicWait64 { memarg } if self.atomics && memarg.memory == 0 => {
                    Some((1, memarg.offset))
                }
                Operator::MemoryAtomicNotify { memarg } if self.atomics && memarg.memory == 0 => {
                    Some((2, memarg.offset))
                }
                Operator::MemoryGrow { mem: 0 } if self.grow => {
                    f.instruction(&Instruction::Call(self.grow_func()));
                    continue;
                }
                _ => None,
            };
            let is_loop = matches!(op, Operator::Loop { .. });
            match host {
                Some((k, offset)) => {
                    f.instruction(&Instruction::I64Const(offset as i64));
                    f.instruction(&Instruction::Call(self.host_func(k)));
                }
                None => {
                    f.instruction(&self.instruction(op)?);
                }
            }
            if let (true, Some(flag)) = (is_loop, self.safepoint) {
                f.instruction(&Instruction::GlobalGet(flag));
                f.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
                f.instruction(&Instruction::Call(self.safepoint_func()));
                f.instruction(&Instruction::End);
            }
        }
        code.function(&f);
        Ok(())
    }
}

/// A handler-typed pointer call whose pointer may be `SIG_DFL` (0) or `SIG_IGN` (1): every
/// wasix-libc calls the handler it finds for a signal (`ksa.handler(sig)`), and its default
/// for a signal to be ignored is `SIG_IGN(sig)` (`libc-top-half/musl/src/signal/sigaction.c`,
/// `__wasm_signal_impl` and `__default_handler`, wasix-org/wasix-libc @ 478df188): pointer 1
/// is the table's first real function, so that would call whatever sits there. Guarded, only
/// a real pointer is called (`local` holds it meanwhile):
/// `local.set p; local.get p; i32.const 1; i32.gt_u; if (type t) local.get p; call_indirect
/// t; else drop; end`.
fn guard_call(f: &mut wasm_encoder::Function, local: u32, ty: u32, table: u32) {
    f.instruction(&Instruction::LocalSet(local));
    f.instruction(&Instruction::LocalGet(local));
    f.instruction(&Instruction::I32Const(1));
    f.instruction(&Instruction::I32GtU);
    f.instruction(&Instruction::If(wasm_encoder::BlockType::FunctionType(ty)));
    f.instruction(&Instruction::LocalGet(local));
    f.instruction(&Instruction::CallIndirect {
        type_index: ty,
        table_index: table,
    });
    f.instruction(&Instruction::Else);
    f.instruction(&Instruction::Drop);
    f.instruction(&Instruction::End);
}

/// A plain round trip, for tests: re-encoding must not change a module without atomics.
#[cfg(test)]
fn roundtrip(wasm: &[u8]) -> Vec<u8> {
    let mut module = wasm_encoder::Module::new();
    wasm_encoder::reencode::RoundtripReencoder
        .parse_core_module(&mut module, wasmparser::Parser::new(0), wasm)
        .unwrap();
    module.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_out_of_range_stays_out_of_range() {
        let wasm = wat::parse_str(
            r#"(module (memory 1) (func call 4294967295
                i32.const 0 i32.const 0 memory.atomic.notify drop))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap();
        assert!(matches!(out, Cow::Owned(_)));
        assert!(wasmparser::Validator::new().validate_all(&out).is_err());
    }

    fn imports_of(wasm: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in wasmparser::Parser::new(0).parse_all(wasm) {
            if let Payload::ImportSection(r) = p.unwrap() {
                for i in r.into_imports() {
                    let i = i.unwrap();
                    out.push((i.module.to_owned(), i.name.to_owned()));
                }
            }
        }
        out
    }

    /// wasix-libc's dispatch (see `guard_call`): the handler pointer call two calls from the
    /// entry is guarded, `SIG_IGN(sig)` in the default handler (reached only by pointer)
    /// becomes a drop, the entry is exported again as the mark; a second pass changes nothing.
    #[test]
    fn a_libc_signal_dispatch_is_guarded_and_marked() {
        let wasm = wat::parse_str(
            r#"(module
                (type $h (func (param i32)))
                (memory 1)
                (table 3 funcref)
                (elem (i32.const 1) $first $default)
                (func $first (type $h))
                (func $default (type $h) (call_indirect (type $h) (local.get 0) (i32.const 1)))
                (func $impl (param i32) (local i64)
                    (call_indirect (type $h) (local.get 0) (i32.load (local.get 0))))
                (func (export "__wasm_signal") (param i32) (call $impl (local.get 0)))
                (func (export "_start")))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap().into_owned();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out)
            .expect("rewritten module validates");
        let printed = wasmprinter_like(&out);
        assert!(
            !printed.contains("I32Const { value: 1 }\nCallIndirect"),
            "{printed}"
        );
        // $impl: param 0, the i64 local 1, the pointer in new local 2.
        assert!(
            printed.contains(
                "LocalSet { local_index: 2 }\nLocalGet { local_index: 2 }\nI32Const { value: 1 }\nI32GtU\nIf { blockty: FuncType(0) }\nLocalGet { local_index: 2 }\nCallIndirect { type_index: 0, table_index: 0 }\nElse\nDrop\nEnd"
            ),
            "{printed}"
        );
        let exports: Vec<(String, u32)> = wasmparser::Parser::new(0)
            .parse_all(&out)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(r) => Some(
                    r.into_iter()
                        .map(|e| e.unwrap())
                        .map(|e| (e.name.to_owned(), e.index))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(
            exports.contains(&(SIGNAL_MARK.to_owned(), 3)),
            "{exports:?}"
        );
        assert!(matches!(instrument(&out).unwrap(), Cow::Borrowed(_)));
    }

    /// A signal callback that calls no handler pointers (a program's own) is not a dispatcher.
    #[test]
    fn a_plain_signal_callback_is_left_alone() {
        let wasm = wat::parse_str(
            r#"(module
                (type $h (func (param i32)))
                (table 2 funcref)
                (elem (i32.const 1) $f)
                (func $f (type $h))
                (func (export "__wasm_signal") (param i32) (call $f (local.get 0)))
                (func (export "_start") (call_indirect (type $h) (i32.const 0) (i32.const 1))))"#,
        )
        .unwrap();
        assert!(matches!(instrument(&wasm).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn growth_of_an_imported_shared_memory_becomes_a_host_call() {
        let wasm = wat::parse_str(
            r#"(module
                (import "env" "memory" (memory 1 10 shared))
                (func $grow (export "_start") (drop (memory.grow (i32.const 2))) (call $other))
                (func $other))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap().into_owned();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out)
            .expect("rewritten module validates");
        assert_eq!(imports_of(&out)[1], (INTERNAL.into(), MEMORY_GROW.into()));
        let printed = wasmprinter_like(&out);
        assert!(!printed.contains("MemoryGrow"), "{printed}");
        assert!(
            printed.contains("I32Const { value: 2 }\nCall { function_index: 0 }"),
            "{printed}"
        );
        assert!(
            printed.contains("Call { function_index: 2 }"),
            "$other moved: {printed}"
        );
        // Rewritten once: a second pass finds nothing to do.
        assert!(matches!(instrument(&out).unwrap(), Cow::Borrowed(_)));

        // An own memory grows through the store's limiter: left as it is.
        let own = wat::parse_str(
            r#"(module (memory 1) (func (export "_start") (drop (memory.grow (i32.const 1)))))"#,
        )
        .unwrap();
        assert!(matches!(instrument(&own).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn every_loop_gets_a_safe_point_and_indices_shift() {
        let wasm = wat::parse_str(
            r#"(module
                (import "x" "f" (func $imp))
                (memory (export "memory") 1)
                (func $a (export "_start")
                    (loop $l (call $b) (br_if $l (i32.const 0)))
                    (block (loop (br 1))))
                (func $b (call $imp)))"#,
        )
        .unwrap();
        let out = safepoints(&wasm).unwrap();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out)
            .expect("rewritten module validates");
        assert_eq!(
            imports_of(&out),
            [
                ("x".into(), "f".into()),
                (INTERNAL.into(), SAFEPOINT.into())
            ]
        );
        let printed = wasmprinter_like(&out);
        // Global 0 is the new flag; the safe point is function 1; $b moved from 2 to 3.
        assert_eq!(
            printed
                .matches("GlobalGet { global_index: 0 }\nIf { blockty: Empty }\nCall { function_index: 1 }")
                .count(),
            2,
            "{printed}"
        );
        assert!(printed.contains("Call { function_index: 3 }"), "{printed}");
        let exports: Vec<String> = wasmparser::Parser::new(0)
            .parse_all(&out)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(r) => Some(
                    r.into_iter()
                        .map(|e| e.unwrap().name.to_owned())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(exports.contains(&SAFEPOINT_FLAG.to_owned()), "{exports:?}");
    }

    #[test]
    fn modules_without_atomics_are_left_alone() {
        let wasm = wat::parse_str("(module (func (export \"f\")))").unwrap();
        assert!(matches!(instrument(&wasm).unwrap(), Cow::Borrowed(_)));
        assert_eq!(roundtrip(&wasm), wasm);
    }

    #[test]
    fn waits_become_calls_and_indices_shift() {
        let wasm = wat::parse_str(
            r#"(module
                (import "env" "memory" (memory 1 1 shared))
                (import "x" "f" (func $imp))
                (func $a (export "a") (param i32) (result i32)
                    (call $b)
                    (memory.atomic.wait32 offset=8 (local.get 0) (i32.const 0) (i64.const -1)))
                (func $b (call $imp) (drop (memory.atomic.notify (i32.const 0) (i32.const 1))))
                (elem declare func $b)
                (func (drop (ref.func $b)))
                (start $b))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap().into_owned();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out)
            .expect("rewritten module validates");
        let imports = imports_of(&out);
        assert_eq!(imports.len(), 5);
        assert_eq!(imports[2], (INTERNAL.into(), WAIT32.into()));
        let printed = wasmprinter_like(&out);
        assert!(!printed.contains("MemoryAtomic"), "{printed}");
        // One imported function before ours: wait32 is 1, notify 3; $b moved from 2 to 5.
        assert!(
            printed.contains("I64Const { value: 8 }\nCall { function_index: 1 }"),
            "{printed}"
        );
        assert!(printed.contains("Call { function_index: 3 }"), "{printed}");
        assert!(printed.contains("Call { function_index: 5 }"), "{printed}");
        assert!(
            printed.contains("RefFunc { function_index: 5 }"),
            "{printed}"
        );
    }

    /// The operators of every body, debug-printed.
    fn wasmprinter_like(wasm: &[u8]) -> String {
        let mut s = String::new();
        for p in wasmparser::Parser::new(0).parse_all(wasm) {
            if let Payload::CodeSectionEntry(body) = p.unwrap() {
                let mut ops = body.get_operators_reader().unwrap();
                while !ops.eof() {
                    s.push_str(&format!("{:?}\n", ops.read().unwrap()));
                }
            }
        }
        s
    }

    #[test]
    fn a_module_without_imports_gets_an_import_section() {
        let wasm = wat::parse_str(
            r#"(module (memory 1 1 shared)
                (func (export "w") (result i32)
                  (memory.atomic.wait64 (i32.const 0) (i64.const 0) (i64.const 0))))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap().into_owned();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&out)
            .expect("rewritten module validates");
        assert_eq!(imports_of(&out).len(), 3);
    }

    fn exports_of(wasm: &[u8]) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for p in wasmparser::Parser::new(0).parse_all(wasm) {
            if let Payload::ExportSection(r) = p.unwrap() {
                for e in r {
                    let e = e.unwrap();
                    if e.kind == wasmparser::ExternalKind::Global {
                        out.push((e.name.to_owned(), e.index));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_capturable_module_gets_its_mutable_globals_exported() {
        let wasm = wat::parse_str(
            r#"(module
                (global $__stack_pointer (mut i32) (i32.const 1024))
                (global $fixed i32 (i32.const 5))
                (global $__tls_base (mut i32) (i32.const 0))
                (global $other (mut i64) (i64.const 0))
                (global $taken (export "taken") (mut i32) (i32.const 0))
                (func (export "asyncify_start_unwind") (param i32)))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap().into_owned();
        wasmparser::Validator::new()
            .validate_all(&out)
            .expect("rewritten module validates");
        let mut exports = exports_of(&out);
        exports.sort();
        assert_eq!(
            exports,
            [
                ("__stack_pointer".to_owned(), 0),
                ("__tls_base".to_owned(), 2),
                ("other".to_owned(), 3),
                ("taken".to_owned(), 4)
            ]
        );
        // Without asyncify nothing changes.
        let plain = wat::parse_str("(module (global (mut i32) (i32.const 0)))").unwrap();
        assert!(matches!(instrument(&plain).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn an_unnamed_first_mutable_i32_is_the_stack_pointer() {
        let wasm = wat::parse_str(
            r#"(module (global (mut i32) (i32.const 1024))
                (func (export "asyncify_start_unwind") (param i32)))"#,
        )
        .unwrap();
        let out = instrument(&wasm).unwrap().into_owned();
        assert_eq!(exports_of(&out), [("__stack_pointer".to_owned(), 0)]);
    }
}
