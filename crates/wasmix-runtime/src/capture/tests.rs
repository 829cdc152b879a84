//! The mechanism end to end on a tiny module: capture in one instance, serialise the snapshot,
//! resume it in a fresh instance over a fresh memory (what restoring a journal does).

use std::sync::Arc;

use wasmix_fs::FileSystem;
use wasmtime::Store;

use super::{finish_unwind, rewind};
use crate::host::{Host, ProcessCtx};
use crate::stack::Entry;
use crate::stack::{Restore, Resumption, ThreadSnapshot};
use crate::unwind::Unwind;
use crate::{CacheSetting, Runtime, RuntimeConfig};

/// `inner` keeps 40 on its shadow stack, checkpoints, then exits with that value plus what
/// the checkpoint call returned: only a rewind that restores the stack bytes gives 40 + n.
const GUEST: &str = r#"(module
  (import "wasix_32v1" "stack_checkpoint" (func $cp (param i32 i32) (result i32)))
  (import "wasix_32v1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 2)
  (global $__stack_pointer (mut i32) (i32.const 65536))
  (func $inner (param $x i32) (result i32)
    (local $sp i32)
    (global.set $__stack_pointer
      (local.tee $sp (i32.sub (global.get $__stack_pointer) (i32.const 16))))
    (i32.store (local.get $sp) (i32.mul (local.get $x) (i32.const 10)))
    (drop (call $cp (i32.const 1024) (i32.add (local.get $sp) (i32.const 8))))
    (i32.add (i32.load (local.get $sp)) (i32.load (i32.add (local.get $sp) (i32.const 8)))))
  (func (export "_start") (call $exit (call $inner (i32.const 4)))))"#;

fn store(runtime: &Runtime, program: &crate::Program) -> Store<Host> {
    let host = ProcessCtx::for_test(runtime, program, FileSystem::new());
    let ctx = Arc::clone(&host.ctx);
    let mut store = Store::new(runtime.engine(), host);
    crate::signals::arm(&mut store);
    ctx.instantiate(&mut store, false).unwrap();
    store
}

fn start(store: &mut Store<Host>) -> wasmtime::Result<()> {
    let instance = store.data().instance.unwrap();
    let f = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
    f.call(&mut *store, ())
}

fn exit_code(r: wasmtime::Result<()>) -> i32 {
    match Unwind::of(&r.unwrap_err()) {
        Some(Unwind::Exit(crate::ExitStatus::Exited(c))) => *c,
        other => panic!("not an exit: {other:?}"),
    }
}

#[test]
fn a_captured_thread_resumes_in_a_fresh_instance() {
    let runtime = Runtime::new(RuntimeConfig {
        cache: CacheSetting::Disabled,
        ..RuntimeConfig::default()
    })
    .unwrap();
    // Uninstrumented: loading runs wasm-opt's asyncify pass on it.
    let program = runtime.load_bytes(GUEST.as_bytes(), "capture").unwrap();
    assert!(program.captures_stacks());

    let mut first = store(&runtime, &program);
    // What `stack_checkpoint` does on its first call, minus the checkpoint table.
    first.data_mut().stack.set_entry(Entry::Main);
    first.data_mut().stack.set_stack_top(Some(65536));
    start(&mut first).unwrap();
    let (_, snapshot) = finish_unwind(&mut first)
        .unwrap()
        .expect("the thread unwound");
    assert_eq!(snapshot.stack_pointer(), 65536 - 16);
    assert_eq!(&snapshot.stack()[..4], &40u32.to_le_bytes());

    let bytes = postcard::to_allocvec(&snapshot).unwrap();
    let snapshot: ThreadSnapshot = postcard::from_bytes(&bytes).unwrap();

    // A fresh instance: its memory has the data page zeroed and no stack contents.
    let mut second = store(&runtime, &program);
    let grown = match second.data().memory.clone() {
        crate::host::GuestMemory::Own(m) => m.grow(&mut second, 1).unwrap(),
        _ => unreachable!(),
    };
    assert_eq!(grown * 65536, u64::from(snapshot.unwind_area()));
    rewind(
        &mut second,
        &snapshot,
        Resumption::Return(Ok(5)),
        Restore::Everything,
    )
    .unwrap();
    assert_eq!(exit_code(start(&mut second)), 45);

    // Without the stack bytes the resumed frame reads zeros.
    let mut third = store(&runtime, &program);
    if let crate::host::GuestMemory::Own(m) = third.data().memory.clone() {
        m.grow(&mut third, 1).unwrap();
    }
    rewind(
        &mut third,
        &snapshot,
        Resumption::Return(Ok(5)),
        Restore::Globals,
    )
    .unwrap();
    assert_eq!(exit_code(start(&mut third)), 5);
}
