//! Interruption checks put into a module's code at load, in place of the engine's epoch
//! checks: how a signal, a kill, a stop or a timeout reaches a thread that runs wasm without
//! making host calls.
//!
//! A check reads one word — the thread's flag: a slot of the runtime's flag table, one shared
//! one-page memory every instance imports as `wasmix.interrupt_flags`, at the offset the
//! instance's added global [`SLOT_GLOBAL`] holds — and calls `wasmix.interrupt` when it is
//! not zero:
//!
//! ```text
//!   global.get $slot             ;; the added global: this thread's slot (offset in bytes)
//!   i32.load (memory $flags)     ;; the imported flag table
//!   if                           ;; hinted unlikely: the call is laid out of line
//!     call $wasmix.interrupt     ;; lowers the flag, acts on what raised it
//!   end
//! ```
//!
//! Another thread raises the flag with a plain store into the table (`Interrupt::raise`);
//! the table lives as long as the runtime and never grows, so a slot's address holds, and a
//! new thread costs a slot, not a mapping (a memory of its own would: every 32-bit memory
//! gets the engine's 4 GiB reservation, and mapping and unmapping it cost a thread spawn
//! 60-95 µs here). The branch is hinted unlikely in a `metadata.code.branch_hint` section,
//! which the engine reads when `Config::wasm_branch_hinting` is on: the hot path is two
//! loads, a test and a jump not taken. Wasmtime's epoch check
//! keeps two values live through every loop (the epoch pointer and the deadline) and sits
//! at every function entry; on the suite's interpreter loop it cost 1.46x of wasmtime
//! without checks, these 1.20x, in the same run (2026-12-02, `docs/BENCHMARKS.md`).
//!
//! Where checks go, so that the code run between two of them is bounded:
//! - at every loop header: every backward jump passes one;
//! - at the entry of every function that calls anything (directly, through a table or a
//!   reference, or as a tail call) or is larger than [`LEAF_SIZE`]: every recursion, and
//!   every re-entry from the host, passes one per call;
//! - in a long function, before the instruction that would take the code since the last
//!   check past [`BUDGET`], counting a call of an unchecked leaf as the leaf's size (a
//!   check is stack-neutral, so it may go between any two instructions).
//!
//! A small leaf (no calls, at most [`LEAF_SIZE`] instructions) needs no check: it ends
//! within its size, or loops, passing a loop header's check.
//!
//! The new imports go last among the imports, so defined functions move by one and defined
//! memories by one (the flag table is the last imported memory); the slot global goes last
//! among the globals, so no global moves. The instance's slot is 0 until the runtime sets
//! it, and slot 0 is never raised: a start function cannot be interrupted. The branch-hint
//! section is
//! appended after the others (wasmtime reads it wherever it is; hints are advisory). A
//! module's own branch hints are dropped, as are its DWARF sections: code offsets change.

use wasm_encoder::reencode::Reencode;
use wasm_encoder::{EntityType, Instruction, SectionId};
use wasmparser::{Operator, Payload};

use crate::abi::INTERNAL;

/// Bumped when the rewrite changes, so cached compilations of older rewrites are not reused.
pub(crate) const VERSION: u32 = 3;

/// Import (module `wasmix`) a check calls when the flag is up.
pub(crate) const INTERRUPT: &str = "interrupt";

/// Import (module `wasmix`) of the runtime's flag table.
pub(crate) const FLAGS: &str = "interrupt_flags";

/// Export name of the added global holding the instance's slot in the flag table.
pub(crate) const SLOT_GLOBAL: &str = "wasmix:interrupt-slot";

/// Export name of the module's start function, which the runtime calls once the instance's
/// slot is set (the start section is dropped: run during instantiation, before the slot is
/// set, a start function that loops forever could be reached by nothing).
pub(crate) const START: &str = "wasmix:start";

/// Most instructions between two checks (a call of an unchecked leaf counts its size).
const BUDGET: u32 = 10_000;

/// Largest function that needs no check at its entry, if it calls nothing.
const LEAF_SIZE: u32 = 1_000;

/// Name of the branch-hint custom section.
const HINTS: &str = "metadata.code.branch_hint";

/// What the rewrite needs to know before it starts.
#[derive(Default)]
struct Survey {
    types: u32,
    imported_funcs: u32,
    imported_memories: u32,
    imported_globals: u32,
    defined_globals: u32,
    has_imports: bool,
    has_globals: bool,
    has_exports: bool,
    /// The start function, if any.
    start: Option<u32>,
    /// Per defined function: its size in instructions if it is a small leaf (no check at
    /// its entry; a call of it costs that much), else `None`.
    leaves: Vec<Option<u32>>,
    exports_flag: bool,
}

fn survey(wasm: &[u8]) -> wasmparser::Result<Survey> {
    let mut s = Survey::default();
    for payload in crate::exnref::parser().parse_all(wasm) {
        match payload? {
            Payload::TypeSection(r) => {
                for group in r {
                    s.types += group?.types().len() as u32;
                }
            }
            Payload::ImportSection(r) => {
                s.has_imports = true;
                for import in r.into_imports() {
                    match import?.ty {
                        wasmparser::TypeRef::Func(_) => s.imported_funcs += 1,
                        wasmparser::TypeRef::Memory(_) => s.imported_memories += 1,
                        wasmparser::TypeRef::Global(_) => s.imported_globals += 1,
                        _ => {}
                    }
                }
            }
            Payload::GlobalSection(r) => {
                s.has_globals = true;
                s.defined_globals = r.count();
            }
            Payload::StartSection { func, .. } => s.start = Some(func),
            Payload::ExportSection(r) => {
                s.has_exports = true;
                for e in r {
                    let name = e?.name;
                    s.exports_flag |= name == SLOT_GLOBAL || name == START;
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader()?;
                let mut size = 0u32;
                let mut calls = false;
                while !ops.eof() {
                    calls |= is_call(&ops.read()?);
                    size = size.saturating_add(1);
                }
                s.leaves.push((!calls && size <= LEAF_SIZE).then_some(size));
            }
            _ => {}
        }
    }
    Ok(s)
}

fn is_call(op: &Operator<'_>) -> bool {
    matches!(
        op,
        Operator::Call { .. }
            | Operator::CallIndirect { .. }
            | Operator::CallRef { .. }
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. }
    )
}

/// `wasm` with interruption checks (see the module doc); a module with no code comes back
/// as it is.
pub(crate) fn insert(wasm: &[u8]) -> Result<Vec<u8>, String> {
    let s = survey(wasm).map_err(|e| e.to_string())?;
    if s.leaves.is_empty() {
        return Ok(wasm.to_vec());
    }
    if s.exports_flag {
        return Err(format!(
            "the module already exports `{SLOT_GLOBAL}` or `{START}`, names wasmix uses for \
             itself"
        ));
    }
    let mut r = Rewriter {
        check_type: s.types,
        imported_funcs: s.imported_funcs,
        flag_memory: s.imported_memories,
        slot: s.imported_globals + s.defined_globals,
        has_imports: s.has_imports,
        has_globals: s.has_globals,
        has_exports: s.has_exports,
        start: s.start,
        leaves: s.leaves,
        next_body: 0,
        import_added: false,
        global_added: false,
        export_added: false,
        hints: Vec::new(),
    };
    let mut module = wasm_encoder::Module::new();
    r.parse_core_module(&mut module, crate::exnref::parser(), wasm)
        .map_err(|e| format!("{e:?}"))?;
    let mut hints = wasm_encoder::BranchHints::new();
    for (func, offsets) in &r.hints {
        hints.function_hints(
            *func,
            offsets.iter().map(|&o| wasm_encoder::BranchHint {
                branch_func_offset: o,
                branch_hint_value: 0,
            }),
        );
    }
    module.section(&hints);
    without_start(&module.finish()).map_err(|e| e.to_string())
}

/// `wasm` without its start section (the runtime calls the start function, see [`START`]).
fn without_start(wasm: &[u8]) -> wasmparser::Result<Vec<u8>> {
    let mut out = wasm_encoder::Module::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        if matches!(payload, Payload::StartSection { .. }) {
            continue;
        }
        if let Some((id, range)) = payload.as_section() {
            out.section(&wasm_encoder::RawSection {
                id,
                data: &wasm[range],
            });
        }
    }
    Ok(out.finish())
}

struct Rewriter {
    /// Index of the added `[] -> []` type (the import's).
    check_type: u32,
    imported_funcs: u32,
    /// Index of the imported flag table (defined memories come after it).
    flag_memory: u32,
    /// Index of the added slot global.
    slot: u32,
    has_imports: bool,
    has_globals: bool,
    has_exports: bool,
    /// The start function (original index), exported as [`START`] instead.
    start: Option<u32>,
    /// As in [`Survey::leaves`].
    leaves: Vec<Option<u32>>,
    /// Index among defined functions of the body that comes next.
    next_body: u32,
    import_added: bool,
    global_added: bool,
    export_added: bool,
    /// Per function (new index): the body offsets of its checks' `if`s.
    hints: Vec<(u32, Vec<u32>)>,
}

impl Rewriter {
    fn interrupt_func(&self) -> u32 {
        self.imported_funcs
    }

    fn add_imports(&mut self, imports: &mut wasm_encoder::ImportSection) {
        imports.import(INTERNAL, INTERRUPT, EntityType::Function(self.check_type));
        imports.import(INTERNAL, FLAGS, EntityType::Memory(flags_type()));
        self.import_added = true;
    }

    fn add_global(&mut self, globals: &mut wasm_encoder::GlobalSection) {
        globals.global(
            wasm_encoder::GlobalType {
                val_type: wasm_encoder::ValType::I32,
                mutable: true,
                shared: false,
            },
            &wasm_encoder::ConstExpr::i32_const(0),
        );
        self.global_added = true;
    }

    fn add_exports(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
    ) -> Result<(), wasm_encoder::reencode::Error<std::convert::Infallible>> {
        exports.export(SLOT_GLOBAL, wasm_encoder::ExportKind::Global, self.slot);
        if let Some(start) = self.start {
            let start = self.function_index(start)?;
            exports.export(START, wasm_encoder::ExportKind::Func, start);
        }
        self.export_added = true;
        Ok(())
    }

    /// Emits a check into `f`, noting its `if` for the hint section.
    fn check(&self, f: &mut wasm_encoder::Function, hints: &mut Vec<u32>) {
        f.instruction(&Instruction::GlobalGet(self.slot));
        f.instruction(&Instruction::I32Load(wasm_encoder::MemArg {
            offset: 0,
            align: 2,
            memory_index: self.flag_memory,
        }));
        hints.push(f.byte_len() as u32);
        f.instruction(&Instruction::If(wasm_encoder::BlockType::Empty));
        f.instruction(&Instruction::Call(self.interrupt_func()));
        f.instruction(&Instruction::End);
    }

    /// What running `op` may cost in instructions before the next check.
    fn cost(&self, op: &Operator<'_>) -> u32 {
        let leaf = |func: u32| {
            func.checked_sub(self.imported_funcs)
                .and_then(|d| self.leaves.get(d as usize).copied().flatten())
        };
        match op {
            Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                1 + leaf(*function_index).unwrap_or(0)
            }
            // Any small leaf may be behind a pointer.
            Operator::CallIndirect { .. }
            | Operator::CallRef { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. } => 1 + LEAF_SIZE,
            _ => 1,
        }
    }
}

/// The flag table's type: one shared page, never grown.
pub(crate) fn flags_type() -> wasm_encoder::MemoryType {
    wasm_encoder::MemoryType {
        minimum: 1,
        maximum: Some(1),
        memory64: false,
        shared: true,
        page_size_log2: None,
    }
}

impl Reencode for Rewriter {
    type Error = std::convert::Infallible;

    // The module is not validated yet: an index out of range must stay out of range (a
    // wrapping shift would make `call 4294967295` a valid `call 0`).
    fn function_index(
        &mut self,
        func: u32,
    ) -> Result<u32, wasm_encoder::reencode::Error<Self::Error>> {
        Ok(if func >= self.imported_funcs {
            func.saturating_add(1)
        } else {
            func
        })
    }

    fn memory_index(
        &mut self,
        memory: u32,
    ) -> Result<u32, wasm_encoder::reencode::Error<Self::Error>> {
        Ok(if memory >= self.flag_memory {
            memory.saturating_add(1)
        } else {
            memory
        })
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        wasm_encoder::reencode::utils::parse_type_section(self, types, section)?;
        types.ty().function([], []);
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        wasm_encoder::reencode::utils::parse_import_section(self, imports, section)?;
        self.add_imports(imports);
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        wasm_encoder::reencode::utils::parse_global_section(self, globals, section)?;
        self.add_global(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        wasm_encoder::reencode::utils::parse_export_section(self, exports, section)?;
        self.add_exports(exports)
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        // A module without imports gets an import section right after its types.
        let past_imports = !matches!(before, Some(SectionId::Type | SectionId::Import));
        if !self.has_imports && !self.import_added && past_imports {
            let mut imports = wasm_encoder::ImportSection::new();
            self.add_imports(&mut imports);
            module.section(&imports);
        }
        // The global section sits just before exports; a module without one gets one there.
        let past_globals = matches!(
            before,
            Some(SectionId::Export | SectionId::Start | SectionId::Element)
                | Some(SectionId::DataCount | SectionId::Code | SectionId::Data)
                | None
        );
        if !self.has_globals && !self.global_added && past_globals {
            let mut globals = wasm_encoder::GlobalSection::new();
            self.add_global(&mut globals);
            module.section(&globals);
        }
        // A module without exports gets one for the flag before its start, elements, code.
        if matches!(
            before,
            Some(SectionId::Start | SectionId::Element | SectionId::DataCount)
                | Some(SectionId::Code | SectionId::Data)
                | None
        ) && !self.has_exports
            && !self.export_added
        {
            let mut exports = wasm_encoder::ExportSection::new();
            self.add_exports(&mut exports)?;
            module.section(&exports);
        }
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        if section.name().starts_with(".debug") || section.name() == HINTS {
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
        let mut locals = Vec::new();
        for pair in func.get_locals_reader()? {
            let (n, ty) = pair?;
            locals.push((n, self.val_type(ty)?));
        }
        let mut f = wasm_encoder::Function::new(locals);
        let mut hints = Vec::new();
        if self.leaves.get(this as usize).copied().flatten().is_none() {
            self.check(&mut f, &mut hints);
        }
        let mut since = 0u32;
        let mut ops = func.get_operators_reader()?;
        while !ops.eof() {
            let op = ops.read()?;
            let cost = self.cost(&op);
            if since.saturating_add(cost) > BUDGET {
                self.check(&mut f, &mut hints);
                since = 0;
            }
            since = since.saturating_add(cost);
            let is_loop = matches!(op, Operator::Loop { .. });
            f.instruction(&self.instruction(op)?);
            if is_loop {
                self.check(&mut f, &mut hints);
                since = 0;
            }
        }
        code.function(&f);
        if !hints.is_empty() {
            let index = self.function_index(self.imported_funcs + this)?;
            self.hints.push((index, hints));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(wat: &str) -> Vec<u8> {
        let wasm = wat::parse_str(wat).unwrap();
        let out = insert(&wasm).unwrap();
        wasmparser::Validator::new().validate_all(&out).unwrap();
        out
    }

    /// Per defined function (new index): the offsets its hints name, each checked to be an
    /// `if` in that function's body.
    fn hints(wasm: &[u8]) -> Vec<(u32, Vec<u32>)> {
        let mut bodies = Vec::new();
        let mut imported = 0;
        let mut out = Vec::new();
        for p in wasmparser::Parser::new(0).parse_all(wasm) {
            match p.unwrap() {
                Payload::ImportSection(r) => {
                    for i in r.into_imports() {
                        if let wasmparser::TypeRef::Func(_) = i.unwrap().ty {
                            imported += 1;
                        }
                    }
                }
                Payload::CodeSectionEntry(b) => {
                    let r = b.get_binary_reader();
                    bodies.push(
                        wasm[r.original_position()..r.original_position() + r.bytes_remaining()]
                            .to_vec(),
                    );
                }
                Payload::CustomSection(c) => {
                    if let wasmparser::KnownCustom::BranchHints(r) = c.as_known() {
                        for f in r {
                            let f = f.unwrap();
                            let offsets: Vec<u32> = f
                                .hints
                                .into_iter()
                                .map(|h| {
                                    let h = h.unwrap();
                                    assert!(!h.taken);
                                    h.func_offset
                                })
                                .collect();
                            out.push((f.func, offsets));
                        }
                    }
                }
                _ => {}
            }
        }
        for (func, offsets) in &out {
            let body = &bodies[(func - imported) as usize];
            for &o in offsets {
                assert_eq!(
                    body[o as usize], 0x04,
                    "hint at {o} of function {func} is no `if`"
                );
            }
        }
        out
    }

    fn checks_in(wasm: &[u8], func: u32) -> usize {
        hints(wasm)
            .into_iter()
            .find(|(f, _)| *f == func)
            .map_or(0, |(_, o)| o.len())
    }

    #[test]
    fn loops_and_calling_functions_get_checks_and_small_leaves_do_not() {
        let out = rewrite(
            r#"(module
                (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                (memory (export "memory") 1)
                (func $leaf (param i32) (result i32) local.get 0 i32.const 1 i32.add)
                (func $spin (param i32)
                    (loop $l local.get 0 i32.const 1 i32.sub local.tee 0 br_if $l))
                (func $fib (param i32) (result i32)
                    local.get 0 i32.const 2 i32.lt_u
                    if (result i32) local.get 0
                    else
                        local.get 0 i32.const 1 i32.sub call $fib
                        local.get 0 i32.const 2 i32.sub call $fib i32.add
                    end)
                (func (export "_start") i32.const 30 call $fib call $leaf call $exit))"#,
        );
        // Imports: proc_exit, then wasmix.interrupt; defined functions start at 2.
        assert_eq!(checks_in(&out, 2), 0, "a small leaf runs no check");
        assert_eq!(
            checks_in(&out, 3),
            1,
            "a leaf with a loop checks at its header"
        );
        assert_eq!(
            checks_in(&out, 4),
            1,
            "a recursive function checks at its entry"
        );
        assert_eq!(checks_in(&out, 5), 1, "a caller checks at its entry");
    }

    #[test]
    fn a_long_function_calling_leaves_checks_between_them() {
        let leaf_body = "local.get 0 i32.const 1 i32.add local.set 0 ".repeat(200);
        let calls = "call $leaf ".repeat(30);
        let out = rewrite(&format!(
            r#"(module
                (func $leaf (local i32) {leaf_body})
                (func (export "f") {calls}))"#
        ));
        // Each call costs the leaf's ~800 instructions: 30 of them need two more checks
        // past the entry's, within the budget.
        let n = checks_in(&out, 2);
        assert!(n >= 3, "{n} checks");
        assert_eq!(checks_in(&out, 1), 0);
    }

    #[test]
    fn a_large_leaf_checks_at_its_entry() {
        let body = "local.get 0 i32.const 1 i32.add local.set 0 ".repeat(300);
        let out = rewrite(&format!(
            r#"(module (func (export "f") (local i32) {body}))"#
        ));
        assert_eq!(checks_in(&out, 1), 1);
    }

    #[test]
    fn a_module_without_imports_globals_or_exports_gets_them_in_order() {
        let out = rewrite("(module (func (loop br 0)) (start 0))");
        let mut names = Vec::new();
        for p in wasmparser::Parser::new(0).parse_all(&out) {
            match p.unwrap() {
                Payload::ImportSection(r) => {
                    for i in r.into_imports() {
                        let i = i.unwrap();
                        names.push(format!("{}.{}", i.module, i.name));
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        names.push(e.unwrap().name.to_owned());
                    }
                }
                _ => {}
            }
        }
        assert_eq!(
            names,
            [
                "wasmix.interrupt",
                "wasmix.interrupt_flags",
                SLOT_GLOBAL,
                START
            ]
        );
        assert_eq!(checks_in(&out, 1), 1);
    }

    #[test]
    fn the_start_function_is_exported_for_the_runtime_instead_of_run_at_instantiation() {
        let out = rewrite(
            r#"(module (import "m" "f" (func)) (func $s call 0) (start $s) (func (export "g")))"#,
        );
        let mut start = None;
        let mut exported = None;
        for p in wasmparser::Parser::new(0).parse_all(&out) {
            match p.unwrap() {
                Payload::StartSection { func, .. } => start = Some(func),
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e.unwrap();
                        if e.name == START {
                            exported = Some(e.index);
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(start, None);
        // Imports: m.f, wasmix.interrupt; $s moved from 1 to 2.
        assert_eq!(exported, Some(2));
    }

    #[test]
    fn an_index_out_of_range_stays_out_of_range() {
        let wasm = wat::parse_str(
            r#"(module (memory 1) (func call 4294967295 i32.const 0 i32.load 4294967295 drop))"#,
        )
        .unwrap();
        let out = insert(&wasm).unwrap();
        assert!(wasmparser::Validator::new().validate_all(&out).is_err());
    }

    #[test]
    fn a_module_that_exports_the_slot_name_is_refused() {
        let wasm = wat::parse_str(format!(
            r#"(module (global (export "{SLOT_GLOBAL}") i32 (i32.const 0)) (func))"#
        ))
        .unwrap();
        let e = insert(&wasm).unwrap_err();
        assert!(e.contains(SLOT_GLOBAL), "{e}");
    }

    /// The program's own memory moves past the imported flag table: its loads and stores
    /// still reach it. A raised slot reaches the host from a loop; lowered, it lets it run.
    #[test]
    fn a_raised_flag_reaches_the_host_from_a_loop_and_lowered_lets_it_run() {
        let out = rewrite(
            r#"(module
                (memory (export "memory") 1)
                (func (export "count") (param i32) (result i32)
                    (loop $l
                        i32.const 8 i32.const 8 i32.load i32.const 1 i32.add i32.store
                        i32.const 8 i32.load local.get 0 i32.lt_u br_if $l)
                    i32.const 8 i32.load
                    i32.const 8 i32.const 0 i32.store))"#,
        );
        let mut config = wasmtime::Config::new();
        config.wasm_branch_hinting(true);
        config.wasm_threads(true);
        config.shared_memory(true);
        let engine = wasmtime::Engine::new(&config).unwrap();
        let module = wasmtime::Module::new(&engine, &out).unwrap();
        let flags =
            wasmtime::SharedMemory::new(&engine, wasmtime::MemoryType::shared(1, 1)).unwrap();
        let word = |v: u32| {
            // SAFETY: the test's own table; word 1 is aligned and in bounds.
            unsafe {
                &*flags.data()[4..]
                    .as_ptr()
                    .cast::<std::sync::atomic::AtomicU32>()
            }
            .store(v, std::sync::atomic::Ordering::SeqCst)
        };
        let mut store = wasmtime::Store::new(&engine, (0u32, flags.clone()));
        let mut linker = wasmtime::Linker::new(&engine);
        linker
            .define(&store, INTERNAL, FLAGS, flags.clone())
            .unwrap();
        linker
            .func_wrap(
                INTERNAL,
                INTERRUPT,
                |mut cx: wasmtime::Caller<'_, (u32, wasmtime::SharedMemory)>| {
                    cx.data_mut().0 += 1;
                    let flags = cx.data().1.clone();
                    // SAFETY: as above.
                    unsafe {
                        &*flags.data()[4..]
                            .as_ptr()
                            .cast::<std::sync::atomic::AtomicU32>()
                    }
                    .store(0, std::sync::atomic::Ordering::SeqCst);
                },
            )
            .unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let slot = instance.get_global(&mut store, SLOT_GLOBAL).unwrap();
        slot.set(&mut store, wasmtime::Val::I32(4)).unwrap();
        let count = instance
            .get_typed_func::<u32, u32>(&mut store, "count")
            .unwrap();
        assert_eq!(count.call(&mut store, 1000).unwrap(), 1000);
        assert_eq!(store.data().0, 0, "no call while the flag is down");
        word(1);
        assert_eq!(count.call(&mut store, 1000).unwrap(), 1000);
        assert_eq!(store.data().0, 1, "one call, which lowered it");
    }
}
