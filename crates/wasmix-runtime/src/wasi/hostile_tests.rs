//! Every host call, called with hostile arguments and memory: each must answer with a WASI errno
//! (or end the process, for proc_exit/proc_raise), never panic or trap otherwise.

use proptest::prelude::*;
use wasmtime::{Memory, MemoryType, Store, Val};

use super::harness::{finish, host, Harness};
use crate::host::{GuestMemory, Host};

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
    static SCRATCH: tempfile::TempDir = tempfile::tempdir().unwrap();
    static HARNESS: Harness = SCRATCH.with(|d| Harness::new(d.path().to_owned()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_call_with_wild_arguments_answers_an_errno(
        index in 0usize..300,
        args in proptest::collection::vec(arg(), 14),
    ) {
        let r = HARNESS.with(|h| h.call_once(index, &args, &[]));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    #[test]
    fn any_call_with_garbage_memory_answers_an_errno(
        index in 0usize..300,
        args in proptest::collection::vec(prop_oneof![0u64..4096, arg()], 14),
        memory in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let r = HARNESS.with(|h| h.call_once(index, &args, &memory));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Sequences in one process: what a call leaves (descriptors opened, renumbered or
    /// closed, files made) meets the next, as the fuzz target does at length.
    #[test]
    fn a_sequence_of_wild_calls_in_one_process_answers_errnos(
        calls in proptest::collection::vec(
            (0usize..300, proptest::collection::vec(prop_oneof![0u64..64, arg()], 10)),
            1..24,
        ),
        memory in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        let r = HARNESS.with(|h| {
            prop_assert!(!h.is_empty() && h.len() > 100);
            Ok(h.sequence(&memory, calls, |_| {}))
        })?;
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
        let h = &h;
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
                .host_calls()
                .all()
                .unwrap()
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
        assert!(!h.scratch.join("f").exists(), "nothing was created either");
        finish(&mut store);
    });
}

/// `proc_fork_env` swaps the calling thread to a new child; the harness's end of a sequence
/// must end that child and the parent it stands in for, or every sequence leaves processes
/// behind until the control plane is full (the fuzz target hit its process limit so).
#[test]
fn a_sequence_of_proc_fork_env_leaves_no_process_behind() {
    HARNESS.with(|h| {
        let index = h
            .calls
            .iter()
            .position(|c| c.0 == "wasix_32v1" && c.1 == "proc_fork_env")
            .expect("proc_fork_env is covered");
        let before = h.runtime.control().process_count();
        let calls = (0..5).map(|_| (index, vec![64]));
        h.sequence(&[0; 128], calls, |_| {}).unwrap();
        assert_eq!(h.runtime.control().process_count(), before);
    });
}

/// Once a process is ending (a thread an earlier call spawned trapped on its wild start
/// pointer, say), any host call of its other threads ends the thread: the harness takes that
/// as the end of the sequence, not a failure (the fuzz target reported `args_sizes_get ...
/// failed: thread ended` so).
#[test]
fn a_call_in_an_ending_process_ends_the_sequence() {
    HARNESS.with(|h| {
        let index = h
            .calls
            .iter()
            .position(|c| c.0 == "wasi_unstable" && c.1 == "args_sizes_get")
            .expect("args_sizes_get is covered");
        let mut store = h.process(&[0; 64]);
        let process = std::sync::Arc::clone(&store.data().ctx.process);
        process.exit(wasmix_process::ExitStatus::Exited(1));
        assert_eq!(h.call_in(&mut store, index, &[0, 8]), Ok(false));
        finish(&mut store);
    });
}
