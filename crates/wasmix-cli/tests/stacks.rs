//! Captured stacks through the CLI: fork (in a loop, with pipes, nested, from a threaded
//! process, then exec), vfork (exec, exit), setjmp/longjmp (across frames, after fork, refused
//! when forged or stale), instrumentation of modules that lack asyncify, and bad input.

mod common;

use common::{guest, path_str, run, Run};

fn guest_run(name: &str, args: &[&str], extra: &[&str]) -> Run {
    common::run_guest_with_bin(name, args, extra)
}

fn lines(r: &Run) -> Vec<&str> {
    r.stdout.lines().collect()
}

#[test]
fn fork_gives_the_child_a_copy_of_memory_and_the_parent_its_pid() {
    let r = guest_run("forker.wasm", &["basic"], &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "child: ppid is parent true, new pid true, saw 7",
            "parent: child Exited(3), mine still 7"
        ]
    );
}

#[test]
fn fork_in_a_loop_and_nested() {
    let r = guest_run("forker.wasm", &["loop", "60"], &[]);
    r.success();
    assert_eq!(lines(&r), ["forked 60 children, 60 exited as told"]);
    let r = guest_run("forker.wasm", &["nested"], &[]);
    r.success();
    assert_eq!(lines(&r), ["nested: Exited(5)"]);
}

#[test]
fn a_forked_child_shares_open_pipes() {
    let r = guest_run("forker.wasm", &["pipe"], &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "hello through the pipe (pid matches: true)",
            "pipe child Exited(0)"
        ]
    );
}

#[test]
fn fork_from_a_multithreaded_process_keeps_only_the_forking_thread() {
    let r = guest_run("fork_threads.wasm", &[], &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "child: sees the worker's progress 1, runs alone",
            "parent: worker finished (2), child Exited(9)"
        ]
    );
}

#[test]
fn a_forked_child_keeps_signal_handlers_and_gets_its_own_signals() {
    let r = guest_run("forker.wasm", &["signal"], &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "child: handler ran for signal 10",
            "parent: child Exited(0), own handler idle true"
        ]
    );
}

#[test]
fn fork_then_exec() {
    let r = guest_run("forker.wasm", &["fork-exec"], &[]);
    r.success();
    assert_eq!(
        lines(&r),
        ["exec'd after fork", "fork-exec child Exited(0)"]
    );
}

#[test]
fn vfork_then_exec_resumes_the_parent() {
    let r = guest_run("forker.wasm", &["vfork-exec"], &[]);
    r.success();
    assert_eq!(lines(&r), ["parent resumed, child Exited(7)"]);
}

#[test]
fn a_vfork_child_borrows_the_parents_memory_until_it_exits() {
    let r = guest_run("forker.wasm", &["vfork-exit"], &[]);
    r.success();
    assert_eq!(
        lines(&r),
        ["parent resumed, sees 41 written by the child, child Exited(5)"]
    );
}

#[test]
fn fork_at_the_process_limit_fails_with_eagain() {
    let r = guest_run("forker.wasm", &["limit"], &["--max-processes", "5"]);
    r.success();
    // errno 6 is EAGAIN; the root process counts towards the limit.
    assert_eq!(lines(&r), ["fork failed with errno 6 after 4 children"]);
}

/// Under `--max-total-memory`, each fork's copy of the memory is charged to the run: forks
/// fail with ENOMEM (48) once the children's memories would pass it, not at the process limit.
#[test]
fn fork_past_the_total_memory_limit_fails_with_enomem() {
    let r = guest_run("forker.wasm", &["limit"], &["--max-total-memory", "16"]);
    r.success();
    let line = lines(&r).join("\n");
    let children: usize = line
        .strip_prefix("fork failed with errno 48 after ")
        .and_then(|s| s.strip_suffix(" children"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((1..16).contains(&children), "{line}");
}

#[test]
fn longjmp_across_frames_and_repeatedly() {
    let r = guest_run("stacks.wasm", &["jump"], &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "setjmp returned 7 through 6 frames, counter 2",
            "jumped back 3 times, sum 6",
            "longjmp with 0 makes setjmp return 1"
        ]
    );
}

#[test]
fn longjmp_after_fork_in_the_child() {
    let r = guest_run("stacks.wasm", &["fork"], &[]);
    r.success();
    assert_eq!(
        lines(&r),
        ["child resumed setjmp with 9", "parent: child exit 0"]
    );
}

#[test]
fn forged_stale_and_unset_jmp_bufs_are_refused() {
    for (scenario, why) in [
        ("forged", "was altered since setjmp filled it in"),
        ("stale", "has returned"),
        ("never-set", "no setjmp on this thread filled in"),
    ] {
        let r = guest_run("stacks.wasm", &[scenario], &[]);
        assert_eq!(r.code, 134, "{scenario}: {}", r.stderr);
        assert!(r.stderr.contains("longjmp refused"), "{}", r.stderr);
        assert!(r.stderr.contains(why), "{scenario}: {}", r.stderr);
        assert!(!r.stdout.contains("unreachable"), "{}", r.stdout);
    }
}

#[test]
fn a_module_without_asyncify_is_instrumented_at_load() {
    // Built by cargo without the asyncify pass: wasmix runs wasm-opt itself.
    let r = guest_run("forker_plain.wasm", &["basic"], &["--no-cache"]);
    r.success();
    assert_eq!(lines(&r).len(), 2, "{}", r.stdout);
}

#[test]
fn without_wasm_opt_an_uninstrumented_fork_is_a_clear_error() {
    let g = guest("forker_plain.wasm");
    let out = common::wasmix()
        .env("WASMIX_WASM_OPT", "/nonexistent/wasm-opt")
        .args(["run", "--no-cache", path_str(&g), "basic"])
        .output()
        .unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    r.clean_error("not asyncify-instrumented");
    assert!(r.stderr.contains("apt install binaryen"), "{}", r.stderr);
    assert!(r.stderr.contains("wasm-opt -O2 --asyncify"), "{}", r.stderr);
}

#[test]
fn corrupt_asyncify_state_ends_the_process_with_a_clear_error() {
    let r = guest_run("asyncify_corrupt.wat", &[], &[]);
    assert_eq!(r.code, 134, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the asyncify state is corrupt: its data pointer left the data area"),
        "{}",
        r.stderr
    );
}

#[test]
fn fork_of_a_memory64_answers_enotsup() {
    let r = guest_run("fork_memory64.wat", &[], &[]);
    assert_eq!(r.code, 58, "{}", r.stderr);
}

#[test]
fn mistyped_asyncify_exports_are_refused_at_load() {
    let g = guest("asyncify_mistyped.wat");
    run(&["run", path_str(&g)])
        .clean_error("`asyncify_start_unwind` is missing or not a function (i32) -> ()");
}
