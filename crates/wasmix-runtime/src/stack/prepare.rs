//! Making a module's stacks capturable: a module that calls fork or setjmp but was not
//! asyncify-instrumented by its toolchain is instrumented here, with binaryen's `wasm-opt`,
//! restricted to the imports that unwind. For snapshots ([`Instrumentation::Snapshots`])
//! every call a thread can block in, and a safe point at every loop header, become places
//! its stack can be captured.

use std::path::{Path, PathBuf};
use std::process::Command;

use wasmparser::{Payload, TypeRef};

use crate::abi::Abi;
use crate::rewrite::ASYNCIFY_MARK;

/// WASIX calls that capture the calling thread's stack by unwinding it. (`stack_restore` and a
/// vfork child's exit leave the stack by a trap instead, so they need no instrumentation.)
pub(crate) const UNWINDING_CALLS: [&str; 2] = ["proc_fork", "stack_checkpoint"];

/// How much of a module is instrumented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Instrumentation {
    /// The calls that capture (fork, setjmp), when the module makes them.
    Captures,
    /// Everything a snapshot needs: every blocking call and a safe point in every loop.
    Snapshots,
}

/// Calls a thread can block in (or that take a snapshot), in every WASI module that has
/// them: where a snapshot captures a thread that is waiting.
pub(crate) const BLOCKING_CALLS: [&str; 8] = [
    "fd_read",
    "fd_write",
    "fd_pread",
    "fd_pwrite",
    "poll_oneoff",
    "sock_recv",
    "sock_send",
    "sock_accept",
];

/// WASIX-only calls that block or take a snapshot.
pub(crate) const WASIX_BLOCKING_CALLS: [&str; 10] = [
    "thread_sleep",
    "thread_join",
    "futex_wait",
    "proc_join",
    "proc_snapshot",
    "sock_accept_v2",
    "sock_recv_from",
    "sock_send_to",
    "epoll_wait",
    "sock_listen",
];

/// WASIX calls that add a process to the tree: a snapshot under way captures the caller
/// before it spawns, so the tree the snapshot found stays the tree it records.
pub(crate) const TREE_CALLS: [&str; 3] = ["proc_spawn", "proc_spawn2", "proc_spawn3"];

/// Calls that do not block but before which a snapshot trigger fires (`first-environ`,
/// `non-deterministic`), in every WASI module: the snapshot captures the caller there, so a
/// restore makes the call afresh.
pub(crate) const TRIGGER_CALLS: [&str; 4] = [
    "environ_sizes_get",
    "environ_get",
    "clock_time_get",
    "random_get",
];

/// Whether `name` (of a WASI module) is a place a snapshot can capture the calling thread.
pub(crate) fn is_capture_point(name: &str) -> bool {
    BLOCKING_CALLS.contains(&name)
        || WASIX_BLOCKING_CALLS.contains(&name)
        || TRIGGER_CALLS.contains(&name)
        || TREE_CALLS.contains(&name)
}

/// The imports asyncify instruments for `how`, as `module.name`.
pub(crate) fn unwinding_imports(how: Instrumentation) -> Vec<String> {
    let mut out: Vec<String> = UNWINDING_CALLS
        .iter()
        .map(|c| format!("{}.{c}", Abi::Wasix.module()))
        .collect();
    if how == Instrumentation::Snapshots {
        for abi in crate::abi::MODULES {
            for c in BLOCKING_CALLS.iter().chain(&TRIGGER_CALLS) {
                out.push(format!("{}.{c}", abi.module()));
            }
        }
        for c in WASIX_BLOCKING_CALLS.iter().chain(&TREE_CALLS) {
            out.push(format!("{}.{c}", Abi::Wasix.module()));
        }
        for c in ["atomic_wait32", "atomic_wait64", crate::rewrite::SAFEPOINT] {
            out.push(format!("{}.{c}", crate::abi::INTERNAL));
        }
    }
    out
}

fn asyncify_args(how: Instrumentation) -> Vec<String> {
    let imports = unwinding_imports(how);
    vec![
        "-O2".into(),
        "--asyncify".into(),
        format!("--pass-arg=asyncify-imports@{}", imports.join(",")),
        // Keep the name section: backtraces, and finding `__stack_pointer`.
        "-g".into(),
    ]
    .into_iter()
    .chain(FEATURES.iter().map(|f| format!("--enable-{f}")))
    .collect()
}

/// Features wasm-opt must accept beyond those a module's `target_features` section names:
/// without the section (hand-written, or stripped by `wasm-strip` or `wasm-opt
/// --strip-target-features`) it reads the module as MVP wasm (binaryen 108) and rejects it.
/// Mutable globals are needed by every module wasmix instruments (the rewrite exports its
/// mutable globals and adds an exported flag); the rest are what LLVM's generic CPU emits
/// (sign-ext and mutable globals since LLVM 16, review D125729; multivalue and reference
/// types since LLVM 19, llvm-project fb6e024; bulk memory and non-trapping float-to-int
/// since LLVM 20), all of which the engine runs.
const FEATURES: [&str; 6] = [
    "mutable-globals",
    "sign-ext",
    "nontrapping-float-to-int",
    "bulk-memory",
    "multivalue",
    "reference-types",
];

/// Whether `wasm` exports asyncify's entry points.
pub(crate) fn has_asyncify(wasm: &[u8]) -> Result<bool, String> {
    for payload in crate::exnref::parser().parse_all(wasm) {
        if let Payload::ExportSection(r) = payload.map_err(|e| e.to_string())? {
            for e in r {
                if e.map_err(|e| e.to_string())?.name == ASYNCIFY_MARK {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

/// For a module its toolchain asyncify-instrumented: the places a snapshot would capture a
/// thread that the instrumentation does not cover, as `module.name` of the import, or
/// `memory.atomic.wait` (raw waits become capture points only when wasmix instruments).
/// Empty when every call to a capture point can unwind.
///
/// A toolchain lists the imports asyncify makes unwinding points (binaryen's
/// `asyncify-imports`); one that listed only fork and setjmp leaves a blocking call such as
/// `fd_read` plain, and unwinding from there would run on through frames that do not stop
/// for it. binaryen follows every call that can unwind with a test of its state global for
/// "unwinding" (`global.get $state; i32.const 1; i32.eq`) before the next call; a plain
/// call has none. The state global is the one the exported `asyncify_get_state` reads.
/// (binaryen `src/passes/Asyncify.cpp` at ea1db73886a53d331fac0e1cc3a7a7795633c2c2: its
/// header sketches the transformed code, `bar(x); if (unwinding) { ...; return; }` after
/// every call that can unwind, with `__asyncify_state` 1 for unwinding, and
/// `makePossibleUnwind` builds that test with `makeStateCheck(State::Unwinding)`, an
/// `i32.eq` of the global and the constant.)
pub(crate) fn asyncify_gaps(wasm: &[u8]) -> Result<Vec<String>, String> {
    use wasmparser::{ExternalKind, Operator};
    let err = |e: wasmparser::BinaryReaderError| e.to_string();
    let mut imported = 0u32;
    let mut capture: std::collections::HashMap<u32, String> = Default::default();
    let mut get_state = None;
    let mut bodies = Vec::new();
    for payload in crate::exnref::parser().parse_all(wasm) {
        match payload.map_err(err)? {
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import.map_err(err)?;
                    if let TypeRef::Func(_) = import.ty {
                        let wasi = crate::abi::MODULES
                            .iter()
                            .any(|a| a.module() == import.module);
                        if wasi && is_capture_point(import.name) {
                            capture.insert(imported, format!("{}.{}", import.module, import.name));
                        }
                        imported += 1;
                    }
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(err)?;
                    if e.name == "asyncify_get_state" && e.kind == ExternalKind::Func {
                        get_state = Some(e.index);
                    }
                }
            }
            Payload::CodeSectionEntry(body) => bodies.push(body),
            _ => {}
        }
    }
    let Some(get_state) = get_state.and_then(|f| f.checked_sub(imported)) else {
        return Err("it exports no `asyncify_get_state` function to find its state by".into());
    };
    let state = {
        let body = bodies
            .get(get_state as usize)
            .ok_or("its `asyncify_get_state` has no body")?;
        let mut ops = body.get_operators_reader().map_err(err)?;
        match ops.read().map_err(err)? {
            Operator::GlobalGet { global_index } => global_index,
            _ => return Err("its `asyncify_get_state` does not read a global".into()),
        }
    };
    let mut gaps = std::collections::BTreeSet::new();
    for body in &bodies {
        // The capture point called last whose unwinding test has not been seen yet, and how
        // much of the test has.
        let mut open: Option<&String> = None;
        let mut seen = 0;
        let mut ops = body.get_operators_reader().map_err(err)?;
        while !ops.eof() {
            let op = ops.read().map_err(err)?;
            seen = match (&op, seen) {
                (Operator::GlobalGet { global_index }, _) if *global_index == state => 1,
                (Operator::I32Const { value: 1 }, 1) => 2,
                (Operator::I32Eq | Operator::I32Ne, 2) => {
                    open = None;
                    0
                }
                _ => 0,
            };
            match op {
                Operator::Call { function_index } | Operator::ReturnCall { function_index } => {
                    if let Some(name) = open.take() {
                        gaps.insert(name.clone());
                    }
                    open = capture.get(&function_index);
                }
                Operator::CallIndirect { .. }
                | Operator::ReturnCallIndirect { .. }
                | Operator::CallRef { .. }
                | Operator::ReturnCallRef { .. } => {
                    if let Some(name) = open.take() {
                        gaps.insert(name.clone());
                    }
                }
                Operator::MemoryAtomicWait32 { .. } | Operator::MemoryAtomicWait64 { .. } => {
                    gaps.insert("memory.atomic.wait".to_owned());
                }
                _ => {}
            }
        }
        if let Some(name) = open {
            gaps.insert(name.clone());
        }
    }
    Ok(gaps.into_iter().collect())
}

/// The unwinding calls `wasm` imports, when it lacks asyncify's exports; empty when it needs
/// nothing done.
pub(crate) fn missing_asyncify(wasm: &[u8]) -> Result<Vec<String>, String> {
    let mut calls = Vec::new();
    for payload in crate::exnref::parser().parse_all(wasm) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if import.module == Abi::Wasix.module()
                        && matches!(import.ty, TypeRef::Func(_))
                        && UNWINDING_CALLS.contains(&import.name)
                    {
                        calls.push(import.name.to_owned());
                    }
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    if e.map_err(|e| e.to_string())?.name == ASYNCIFY_MARK {
                        return Ok(Vec::new());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(calls)
}

/// Checks the types of an instrumented module's asyncify entry points, which wasmix calls.
pub(crate) fn check_exports(module: &wasmtime::Module) -> Result<(), String> {
    use wasmtime::{ExternType, ValType};
    for (name, takes_pointer) in [
        ("asyncify_start_unwind", true),
        ("asyncify_stop_unwind", false),
        ("asyncify_start_rewind", true),
        ("asyncify_stop_rewind", false),
    ] {
        let shape = if takes_pointer {
            "(i32) -> ()"
        } else {
            "() -> ()"
        };
        let ok = match module.get_export(name) {
            Some(ExternType::Func(f)) => {
                let params: Vec<ValType> = f.params().collect();
                f.results().len() == 0
                    && match params.as_slice() {
                        [ValType::I32] => takes_pointer,
                        [] => !takes_pointer,
                        _ => false,
                    }
            }
            _ => false,
        };
        if !ok {
            return Err(format!(
                "its asyncify entry point `{name}` is missing or not a function {shape}; \
                 instrument it with binaryen's asyncify pass"
            ));
        }
    }
    Ok(())
}

/// Why a module could not be instrumented.
#[derive(Debug, thiserror::Error)]
#[error(
    "it calls {calls}, which must capture the calling stack, but it is not \
     asyncify-instrumented, and wasmix could not instrument it: {reason}. Install binaryen's wasm-opt (Debian: `apt install \
     binaryen`; or point WASMIX_WASM_OPT at one), or instrument the module beforehand: \
     `wasm-opt {args} IN.wasm -o OUT.wasm`"
)]
pub(crate) struct NeedsAsyncify {
    calls: String,
    reason: String,
    args: String,
}

/// `wasm` instrumented by `wasm-opt` (`$WASMIX_WASM_OPT`, else the one on `PATH`) for
/// `how`; `calls` name what needs it, for the error message.
pub(crate) fn asyncify(
    wasm: &[u8],
    calls: &[String],
    how: Instrumentation,
) -> Result<Vec<u8>, NeedsAsyncify> {
    let tool = std::env::var_os("WASMIX_WASM_OPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("wasm-opt"));
    asyncify_with(&tool, wasm, calls, how)
}

fn asyncify_with(
    tool: &Path,
    wasm: &[u8],
    calls: &[String],
    how: Instrumentation,
) -> Result<Vec<u8>, NeedsAsyncify> {
    let fail = |reason: String| NeedsAsyncify {
        calls: calls.join(" and "),
        reason,
        args: asyncify_args(how).join(" "),
    };
    let dir = tempfile::tempdir().map_err(|e| fail(format!("no temporary directory: {e}")))?;
    let (input, output) = (dir.path().join("in.wasm"), dir.path().join("out.wasm"));
    std::fs::write(&input, wasm).map_err(|e| fail(format!("cannot write {input:?}: {e}")))?;
    // Exception instructions (the legacy encoding: the standard one is translated to after
    // asyncify) must be enabled to be read at all.
    let exceptions = crate::exnref::uses_legacy(wasm);
    let run = Command::new(tool)
        .arg(&input)
        .args(asyncify_args(how))
        .args(exceptions.then_some("--enable-exception-handling"))
        .arg("-o")
        .arg(&output)
        .output()
        .map_err(|e| fail(format!("cannot run `{}`: {e}", tool.display())))?;
    if !run.status.success() {
        let said = String::from_utf8_lossy(&run.stderr);
        let hint = if exceptions {
            " (older binaryens, such as Debian 12's version 108, cannot instrument code that \
             uses exceptions; version 132 can, e.g. from npm's `binaryen` package)"
        } else {
            ""
        };
        return Err(fail(format!(
            "`{}` failed ({}){hint}: {}",
            tool.display(),
            run.status,
            said.trim()
        )));
    }
    std::fs::read(&output).map_err(|e| fail(format!("cannot read {output:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_modules_importing_unwinding_calls_without_asyncify_need_it() {
        let plain = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        assert!(missing_asyncify(&plain).unwrap().is_empty());
        let fork = wat::parse_str(
            r#"(module (import "wasix_32v1" "proc_fork" (func (param i32 i32) (result i32))))"#,
        )
        .unwrap();
        assert_eq!(
            missing_asyncify(&fork).unwrap(),
            vec!["proc_fork".to_owned()]
        );
        let ready = wat::parse_str(
            r#"(module (import "wasix_32v1" "proc_fork" (func (param i32 i32) (result i32)))
                 (func (export "asyncify_start_unwind") (param i32)))"#,
        )
        .unwrap();
        assert!(missing_asyncify(&ready).unwrap().is_empty());
    }

    const READS_AND_FORKS: &str = r#"(module
        (import "wasi_snapshot_preview1" "fd_read"
            (func $fd_read (param i32 i32 i32 i32) (result i32)))
        (import "wasix_32v1" "proc_fork" (func $fork (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start") (local i32)
            (local.set 0 (call $fd_read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 16)))
            (drop (call $fork (local.get 0) (i32.const 0)))
            (drop (call $fd_read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 16)))))"#;

    /// A toolchain that listed only fork for asyncify (as `guests/build.sh` builds
    /// `forker.wasm`) leaves `fd_read` a call that cannot unwind; wasmix's own instrumentation
    /// for snapshots covers it. Both through binaryen's real output (the `wasm-opt` that
    /// scripts/setup.sh installs, Debian's version 108), which the shape `asyncify_gaps` looks
    /// for is taken from (see its doc for the upstream source).
    #[test]
    fn a_toolchains_asyncify_is_checked_for_every_capture_point() {
        let wasm = wat::parse_str(READS_AND_FORKS).unwrap();
        let fork_only = asyncify(&wasm, &["proc_fork".into()], Instrumentation::Captures).unwrap();
        assert_eq!(
            asyncify_gaps(&fork_only).unwrap(),
            vec!["wasi_snapshot_preview1.fd_read".to_owned()]
        );
        let everywhere =
            asyncify(&wasm, &["snapshots".into()], Instrumentation::Snapshots).unwrap();
        assert_eq!(asyncify_gaps(&everywhere).unwrap(), Vec::<String>::new());
    }

    /// By hand, the shape binaryen gives a covered call: `fd_read` followed by the test for
    /// unwinding is no gap, a raw atomic wait (which only wasmix's own instrumentation makes
    /// a capture point) is; without `asyncify_get_state` nothing can be checked.
    #[test]
    fn raw_atomic_waits_and_a_missing_state_getter_are_gaps() {
        let waits = wat::parse_str(
            r#"(module
                (import "wasi_snapshot_preview1" "fd_read"
                    (func $fd_read (param i32 i32 i32 i32) (result i32)))
                (global $state (mut i32) (i32.const 0))
                (memory (export "memory") 1 1 shared)
                (func (export "asyncify_get_state") (result i32) global.get $state)
                (func (export "_start")
                    (drop (call $fd_read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 16)))
                    (if (i32.eq (global.get $state) (i32.const 1)) (then return))
                    (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))))"#,
        )
        .unwrap();
        assert_eq!(
            asyncify_gaps(&waits).unwrap(),
            vec!["memory.atomic.wait".to_owned()]
        );
        let no_getter =
            wat::parse_str(r#"(module (func (export "asyncify_start_unwind") (param i32)))"#)
                .unwrap();
        let e = asyncify_gaps(&no_getter).unwrap_err();
        assert!(e.contains("asyncify_get_state"), "{e}");
    }

    /// `wat` writes no `target_features` section, as `wasm-strip` leaves a module: wasm-opt
    /// must still take the exported mutable global the rewrite makes of every module, and
    /// the instructions LLVM emits by default (sign-ext, bulk memory here).
    #[test]
    fn a_module_without_a_features_section_is_instrumented() {
        let wasm = wat::parse_str(
            r#"(module (memory 1)
                (global (export "g") (mut i32) (i32.const 0))
                (func (export "_start")
                    (global.set 0 (i32.extend8_s (i32.const 255)))
                    (memory.fill (i32.const 0) (i32.const 0) (i32.const 16))))"#,
        )
        .unwrap();
        let out = asyncify(&wasm, &["proc_fork".into()], Instrumentation::Captures)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(has_asyncify(&out).unwrap());
    }

    #[test]
    fn a_missing_tool_is_a_clear_error() {
        let tool = Path::new("/nonexistent/wasm-opt");
        let e = asyncify_with(
            tool,
            b"\0asm\x01\0\0\0",
            &["proc_fork".into()],
            Instrumentation::Captures,
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("cannot run `/nonexistent/wasm-opt`"), "{msg}");
        assert!(msg.contains("--asyncify"), "{msg}");
    }

    #[test]
    fn exception_code_is_read_with_exceptions_enabled_and_a_failure_says_which_binaryen() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let args = dir.path().join("args");
        let tool = dir.path().join("wasm-opt");
        std::fs::write(
            &tool,
            format!("#!/bin/sh\necho \"$@\" > {}\nexit 1\n", args.display()),
        )
        .unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let legacy = wat::parse_str(
            r#"(module (tag $e) (func (export "_start") try throw $e catch_all end))"#,
        )
        .unwrap();
        let e = asyncify_with(
            &tool,
            &legacy,
            &["proc_fork".into()],
            Instrumentation::Captures,
        )
        .unwrap_err();
        let said = std::fs::read_to_string(&args).unwrap();
        assert!(said.contains("--enable-exception-handling"), "{said}");
        assert!(e.to_string().contains("version 132 can"), "{e}");
        let plain = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        let e = asyncify_with(
            &tool,
            &plain,
            &["proc_fork".into()],
            Instrumentation::Captures,
        )
        .unwrap_err();
        let said = std::fs::read_to_string(&args).unwrap();
        assert!(!said.contains("--enable-exception-handling"), "{said}");
        assert!(!e.to_string().contains("version 132"), "{e}");
    }
}
