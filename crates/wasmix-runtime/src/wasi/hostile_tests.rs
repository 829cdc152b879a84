//! Every host call, called with hostile arguments and memory: each must answer with a WASI errno
//! (or end the process, for proc_exit/proc_raise), never panic or trap otherwise.

use proptest::prelude::*;
use wasmix_fs::{FileSystem, Stdio};
use wasmtime::{Extern, Func, Memory, MemoryType, Store, Val, ValType};

use crate::host::{GuestMemory, Host, ProcessCtx};
use crate::unwind::Unwind;
use crate::{CacheSetting, Runtime, RuntimeConfig};

/// Calls that block until another thread or process acts: with wild arguments they may wait
/// forever, so they are exercised by the guests' integration tests instead.
const BLOCKING: [&str; 7] = [
    "futex_wait",
    "thread_join",
    "thread_sleep",
    "proc_join",
    "poll_oneoff",
    "atomic_wait32",
    "atomic_wait64",
];

/// Calls that may legitimately end the calling thread or its process.
fn may_end(name: &str) -> bool {
    name.starts_with("proc_") || name.starts_with("thread_")
}

struct Harness {
    runtime: Runtime,
    program: crate::Program,
    /// (module, name, param types) of every host call.
    calls: Vec<(String, String, Vec<ValType>)>,
    scratch: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let runtime = Runtime::new(RuntimeConfig {
            cache: CacheSetting::Disabled,
            ..RuntimeConfig::default()
        })
        .unwrap();
        let program = runtime
            .load_bytes(b"(module (memory (export \"memory\") 1 1))", "hostile")
            .unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let mut store = Store::new(runtime.engine(), host(&runtime, &program, &scratch));
        let funcs: Vec<_> = runtime
            .linker()
            .iter(&mut store)
            .filter_map(|(m, n, e)| match e {
                Extern::Func(f) => Some((m.to_owned(), n.to_owned(), f)),
                _ => None,
            })
            .collect();
        let mut calls: Vec<_> = funcs
            .into_iter()
            .filter(|(_, n, _)| !BLOCKING.iter().any(|b| n.starts_with(b)))
            .map(|(m, n, f)| (m, n, f.ty(&store).params().collect()))
            .collect();
        calls.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        finish(&store);
        Harness {
            runtime,
            program,
            calls,
            scratch,
        }
    }

    fn call(&self, index: usize, raw: &[u64], memory: &[u8]) -> Result<(), String> {
        let (module, name, params) = &self.calls[index % self.calls.len()];
        let mut store = Store::new(
            self.runtime.engine(),
            host(&self.runtime, &self.program, &self.scratch),
        );
        let mem = Memory::new(&mut store, MemoryType::new(1, Some(1))).unwrap();
        mem.data_mut(&mut store)[..memory.len()].copy_from_slice(memory);
        store.data_mut().memory = GuestMemory::Own(mem);
        let func: Func = self
            .runtime
            .linker()
            .get(&mut store, module, name)
            .unwrap()
            .into_func()
            .unwrap();
        let args: Vec<Val> = params
            .iter()
            .zip(raw.iter().chain(std::iter::repeat(&0)))
            .map(|(t, v)| match t {
                ValType::I64 => Val::I64(*v as i64),
                _ => Val::I32(*v as i32),
            })
            .collect();
        let mut results = vec![Val::I32(0); func.ty(&store).results().len()];
        let r = match func.call(&mut store, &args, &mut results) {
            Ok(()) => match results.first() {
                None => Ok(()),
                Some(Val::I32(errno)) if (0..=80).contains(errno) => Ok(()),
                // wasi-threads answers a negative errno.
                Some(Val::I32(neg)) if name == "thread-spawn" && *neg < 0 => Ok(()),
                // The atomics stand-ins return counts.
                Some(Val::I32(_)) if module == crate::wasi::INTERNAL => Ok(()),
                Some(other) => Err(format!("{module}::{name}{args:?} returned {other:?}")),
            },
            Err(e)
                if matches!(Unwind::of(&e), Some(Unwind::Exit(_) | Unwind::ThreadExit))
                    && may_end(name) =>
            {
                Ok(())
            }
            // longjmp cannot return an errno: a jmp_buf it refuses ends the process.
            Err(e)
                if name == "stack_restore"
                    && e.downcast_ref::<crate::capture::StackError>().is_some() =>
            {
                Ok(())
            }
            Err(e)
                if module == crate::wasi::INTERNAL
                    && e.downcast_ref::<wasmtime::Trap>().is_some() =>
            {
                Ok(()) // a bad address traps, as the instruction would
            }
            Err(e) => Err(format!("{module}::{name}{args:?} failed: {e:?}")),
        };
        finish(&store);
        r
    }
}

/// A fresh process (its own pid, files and signal state) for one call.
fn host(runtime: &Runtime, program: &crate::Program, scratch: &tempfile::TempDir) -> Host {
    let fs = FileSystem::builder()
        .stdio(0, Stdio::Null)
        .stdio(1, Stdio::Null)
        .stdio(2, Stdio::Null)
        .mount(scratch.path(), "/")
        .unwrap()
        .build();
    ProcessCtx::for_test(runtime, program, fs)
}

/// Ends the call's process so the control plane does not fill up.
fn finish(store: &Store<Host>) {
    let h = store.data();
    h.ctx.process.exit(wasmix_process::ExitStatus::Exited(0));
    h.ctx.process.thread_exited(h.thread.tid());
}

/// Values that sit on the edges of a 64 KiB memory and of the integer types.
fn arg() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(3),
        Just(4),
        Just(0xffff),
        Just(0x1_0000),
        Just(0xffff_fff0),
        Just(u32::MAX as u64),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        0u64..0x1_0000,
        any::<u64>(),
    ]
}

thread_local! {
    static HARNESS: Harness = Harness::new();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_call_with_wild_arguments_answers_an_errno(
        index in 0usize..300,
        args in proptest::collection::vec(arg(), 14),
    ) {
        let r = HARNESS.with(|h| h.call(index, &args, &[]));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    #[test]
    fn any_call_with_garbage_memory_answers_an_errno(
        index in 0usize..300,
        args in proptest::collection::vec(prop_oneof![0u64..4096, arg()], 14),
        memory in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let r = HARNESS.with(|h| h.call(index, &args, &memory));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn harness_covers_both_wasi_generations() {
    HARNESS.with(|h| {
        let p1 = h
            .calls
            .iter()
            .filter(|c| c.0 == "wasi_snapshot_preview1")
            .count();
        let p0 = h.calls.iter().filter(|c| c.0 == "wasi_unstable").count();
        assert_eq!(
            p1, 45,
            "every preview1 function is defined (poll_oneoff is blocking)"
        );
        assert_eq!(
            p0, 44,
            "every preview0 function is defined (no sock_accept; poll_oneoff is blocking)"
        );
        let wasix = h.calls.iter().filter(|c| c.0 == "wasix_32v1").count();
        assert!(wasix > 80, "WASIX calls are covered too ({wasix})");
    });
}

/// A result slot outside memory is refused before the call acts: a read that would have
/// consumed pipe data (and then failed to report it) leaves the data for the next read, and
/// an open that would have made a descriptor makes none.
#[test]
fn a_bad_result_pointer_is_refused_before_anything_happens() {
    HARNESS.with(|h| {
        let mut store = Store::new(h.runtime.engine(), host(&h.runtime, &h.program, &h.scratch));
        let mem = Memory::new(&mut store, MemoryType::new(1, Some(1))).unwrap();
        store.data_mut().memory = GuestMemory::Own(mem);
        let fs = std::sync::Arc::clone(store.data().fs());
        let (r, w) = fs.pipe().unwrap();
        fs.write(w, &[std::io::IoSlice::new(b"abc")]).unwrap();
        // One iovec at 0: 8 bytes at 16.
        mem.data_mut(&mut store)[0..8].copy_from_slice(&[16, 0, 0, 0, 8, 0, 0, 0]);
        let call = |store: &mut Store<Host>, name: &str, args: &[Val]| -> i32 {
            let f = h
                .runtime
                .linker()
                .get(&mut *store, "wasi_snapshot_preview1", name)
                .unwrap()
                .into_func()
                .unwrap();
            let mut out = [Val::I32(-1)];
            f.call(&mut *store, args, &mut out).unwrap();
            out[0].unwrap_i32()
        };
        let efault = i32::from(wasmix_fs::Errno::Fault.raw());
        let bad = Val::I32(0x1_0000 - 2);
        let read = [Val::I32(r as i32), Val::I32(0), Val::I32(1), bad];
        assert_eq!(call(&mut store, "fd_read", &read), efault);
        let mut buf = [0u8; 8];
        assert_eq!(
            fs.read(r, &mut buf),
            Ok(3),
            "the bytes are still in the pipe"
        );
        assert_eq!(&buf[..3], b"abc");

        let before = fs.fdstat(r + 2);
        mem.data_mut(&mut store)[32..33].copy_from_slice(b"f");
        let open = [
            Val::I32(3),
            Val::I32(0),
            Val::I32(32),
            Val::I32(1),
            Val::I32(1), // O_CREAT
            Val::I64(-1),
            Val::I64(-1),
            Val::I32(0),
            bad,
        ];
        assert_eq!(call(&mut store, "path_open", &open), efault);
        assert_eq!(
            fs.fdstat(r + 2).is_ok(),
            before.is_ok(),
            "no descriptor was made"
        );
        assert!(
            !h.scratch.path().join("f").exists(),
            "nothing was created either"
        );
        finish(&store);
    });
}
