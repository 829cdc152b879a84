//! Every host call, called with hostile arguments and memory: each must answer with a WASI errno
//! (or end the process, for proc_exit/proc_raise), never panic or trap otherwise.

use std::sync::Arc;

use proptest::prelude::*;
use wasmix_fs::{FileSystem, Stdio};
use wasmtime::{Engine, Extern, Func, Linker, Memory, MemoryType, Store, Val, ValType};

use crate::host::{Host, ProcessEnded};

struct Harness {
    engine: Engine,
    linker: Linker<Host>,
    /// (module, name, param types) of every host call.
    calls: Vec<(String, String, Vec<ValType>)>,
    scratch: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let engine = Engine::default();
        let mut linker = Linker::new(&engine);
        super::add_to_linker(&mut linker).unwrap();
        let mut store = Store::new(&engine, host(None, FileSystem::new()));
        let funcs: Vec<_> = linker
            .iter(&mut store)
            .filter_map(|(m, n, e)| match e {
                Extern::Func(f) => Some((m.to_owned(), n.to_owned(), f)),
                _ => None,
            })
            .collect();
        let mut calls: Vec<_> = funcs
            .into_iter()
            .map(|(m, n, f)| (m, n, f.ty(&store).params().collect()))
            .collect();
        calls.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        Harness {
            engine,
            linker,
            calls,
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    fn call(&self, index: usize, raw: &[u64], memory: &[u8]) -> Result<(), String> {
        let (module, name, params) = &self.calls[index % self.calls.len()];
        let fs = FileSystem::builder()
            .stdio(0, Stdio::Null)
            .stdio(1, Stdio::Null)
            .stdio(2, Stdio::Null)
            .mount(self.scratch.path(), "/")
            .unwrap()
            .build();
        let mut store = Store::new(&self.engine, host(None, fs));
        let mem = Memory::new(&mut store, MemoryType::new(1, Some(1))).unwrap();
        mem.data_mut(&mut store)[..memory.len()].copy_from_slice(memory);
        store.data_mut().memory = Some(mem);
        let func: Func = self
            .linker
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
        match func.call(&mut store, &args, &mut results) {
            Ok(()) => match results.first() {
                None => Ok(()),
                Some(Val::I32(errno)) if (0..=76).contains(errno) => Ok(()),
                Some(other) => Err(format!("{module}::{name}{args:?} returned {other:?}")),
            },
            Err(e) if e.downcast_ref::<ProcessEnded>().is_some() && name.starts_with("proc_") => {
                Ok(())
            }
            Err(e) => Err(format!("{module}::{name}{args:?} failed: {e:?}")),
        }
    }
}

fn host(memory: Option<Memory>, fs: FileSystem) -> Host {
    Host {
        fs: Arc::new(fs),
        args: vec![b"prog".to_vec()],
        env: vec![b"A=1".to_vec()],
        memory,
    }
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

fn is_poll(index: usize) -> bool {
    HARNESS.with(|h| h.calls[index % h.calls.len()].1 == "poll_oneoff")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_call_with_wild_arguments_answers_an_errno(
        index in 0usize..200,
        args in proptest::collection::vec(arg(), 9),
    ) {
        let r = HARNESS.with(|h| h.call(index, &args, &[]));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    #[test]
    fn any_call_with_garbage_memory_answers_an_errno(
        index in 0usize..200,
        args in proptest::collection::vec(prop_oneof![0u64..4096, arg()], 9),
        memory in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        // Garbage subscriptions could ask poll_oneoff to sleep for years.
        prop_assume!(!is_poll(index));
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
        assert_eq!(p1, 46, "every preview1 function is defined");
        assert_eq!(
            p0, 45,
            "every preview0 function is defined (no sock_accept)"
        );
    });
}
