//! WASIX through the CLI: processes (spawn, join, exec, pipes, signals between processes),
//! threads, futexes and raw atomic waits, signal handlers (synchronous, from timers into
//! compute loops), Ctrl-C forwarding and limits.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{guest, path_str, run, wasmix, Run};

/// `spawner SCENARIO` with the guest directory as `/bin`.
fn spawner(scenario: &str, extra: &[&str]) -> Run {
    common::run_guest_with_bin("spawner.wasm", &[scenario], extra)
}

fn lines(r: &Run) -> Vec<&str> {
    r.stdout.lines().collect()
}

#[test]
fn spawn_by_path_lookup_and_join_exit_code() {
    let r = spawner("exit", &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "join errno=0 same_pid=true status=Exited(7)",
            "join again errno=12"
        ],
        "{}",
        r.stderr
    );
}

#[test]
fn pipes_carry_a_childs_output_and_input() {
    let r = spawner("pipe", &[]);
    r.success();
    assert_eq!(lines(&r), ["hello through a pipe", "status=Exited(0)"]);
    let r = spawner("stdin", &[]);
    r.success();
    assert_eq!(lines(&r), ["round trip", "status=Exited(0)"]);
}

#[test]
fn children_get_their_argv_and_environment() {
    let r = spawner("env", &[]);
    r.success();
    assert_eq!(lines(&r), ["hi there", "my-argv0"]);
}

#[test]
fn sigkill_ends_a_computing_child_within_100ms() {
    let r = spawner("kill", &[]);
    r.success();
    assert_eq!(lines(&r), ["status=Signaled(9)", "kill_ms_under_1000=true"]);
}

#[test]
fn sigkill_ends_a_child_whose_threads_sit_in_raw_atomic_waits() {
    let r = spawner("kill-parked", &[]);
    r.success();
    assert_eq!(lines(&r), ["status=Signaled(9)", "kill_ms_under_1000=true"]);
}

#[test]
fn join_reports_exit_versus_signal() {
    let r = spawner("raise", &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "status=Signaled(15) out=\"\"",
            "status=Exited(0) out=\"survived\""
        ]
    );
}

#[test]
fn join_nohang_any_and_no_children() {
    let r = spawner("nohang", &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "nohang errno=0 pid=0 status=Nothing",
            "any errno=0 same_pid=true status=Exited(0)",
            "no children errno=12"
        ]
    );
}

#[test]
fn exec_keeps_the_pid_and_a_failed_exec_reports_enoent() {
    let r = spawner("exec", &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "pid kept=true",
            "status=Exited(0)",
            "exec failed errno=44",
            "status=Exited(3)"
        ]
    );
}

#[test]
fn children_inherit_fds_except_close_on_exec() {
    let r = spawner("cloexec", &[]);
    r.success();
    let l = lines(&r);
    assert_eq!(l[0], "dup2 gave 9 and 10");
    let open: Vec<&str> = l[1].trim_start_matches("open ").split(',').collect();
    assert!(open.contains(&"9"), "{l:?}");
    assert!(!open.contains(&"10"), "close-on-exec fd leaked: {l:?}");
}

#[test]
fn spawn_applies_signal_dispositions_in_order() {
    let r = spawner("dispositions", &[]);
    r.success();
    assert_eq!(lines(&r), ["ignored [10]"]);
}

#[test]
fn spawn_errors_are_errnos() {
    let r = spawner("missing", &[]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "spawn missing errno=Some(44)",
            "spawn bad dup2 errno=Some(8)"
        ]
    );
}

#[test]
fn max_processes_makes_a_spawn_loop_fail_with_eagain() {
    let r = spawner("limit", &["--max-processes", "4"]);
    r.success();
    assert_eq!(lines(&r), ["spawned 3 then errno=6", "reaped all"]);
}

/// With limits far above what the host can map, a guest spawning sleeping children gets
/// EAGAIN once the mappings run short — it crashed the runtime at ~6,100 children before
/// ("failed to set up alternative stack guard page", abort): vm.max_map_count.
#[test]
fn thousands_of_idle_children_end_in_eagain_not_a_host_crash() {
    let bin = format!("{}::/bin", path_str(guest("child.wasm").parent().unwrap()));
    let r = run(&[
        "run",
        "--max-processes",
        "100000",
        "--max-threads",
        "100000",
        "--dir",
        &bin,
        path_str(&guest("spawner.wasm")),
        "limit",
        "600000",
        "kill",
    ]);
    r.success();
    let first = r.stdout.lines().next().unwrap_or_default();
    let spawned: usize = first
        .strip_prefix("spawned ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}\n{}", r.stdout, r.stderr));
    assert!(first.ends_with("then errno=6"), "{first}");
    assert!(spawned > 1000, "{first}");
    assert_eq!(r.stdout.lines().nth(1), Some("reaped all"));
}

#[test]
fn process_ids() {
    let r = spawner("ids", &[]);
    r.success();
    assert_eq!(lines(&r), ["pid=1 ppid=0"]);
}

fn threads(scenario: &str, extra: &[&str]) -> Run {
    let g = guest("threads.wasm");
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.push(path_str(&g));
    args.push(scenario);
    run(&args)
}

#[test]
fn threads_share_memory_locks_condvars_and_thread_locals() {
    let r = threads("basic", &[]);
    r.success();
    let l = lines(&r);
    assert_eq!(
        &l[..5],
        [
            "mutex sum 16000",
            "atomic sum 16000",
            "thread-locals each true",
            "main thread-local 0",
            "condvar rounds 500"
        ]
    );
}

#[test]
fn exit_in_a_thread_ends_the_process_with_its_code() {
    let r = threads("exit-in-thread", &[]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn a_trap_in_a_thread_ends_the_process_and_the_join_returns() {
    let r = threads("trap-in-thread", &[]);
    assert_eq!(r.code, 134, "{}", r.stderr);
    assert!(r.stderr.contains("wasm backtrace"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn returning_from_main_ends_blocked_threads() {
    let r = threads("main-returns", &[]);
    r.success();
    assert_eq!(lines(&r), ["main done"]);
}

#[test]
fn max_threads_makes_thread_spawn_fail() {
    let r = threads("spawn-many", &["--max-threads", "8"]);
    r.success();
    assert_eq!(
        lines(&r),
        ["spawned 7 then: operation would block", "joined all"]
    );
}

#[test]
fn raw_atomic_waits_keep_their_semantics() {
    run(&["run", path_str(&guest("atomics.wat"))]).success();
    let r = run(&["run", path_str(&guest("atomics_misaligned.wat"))]);
    assert_eq!(r.code, 134);
    assert!(r.stderr.contains("unaligned atomic"), "{}", r.stderr);
}

fn sigs(scenario: &str) -> Run {
    run(&["run", path_str(&guest("sigs.wasm")), scenario])
}

#[test]
fn handlers_run_before_raise_and_signal_calls_return() {
    let r = sigs("handler");
    r.success();
    assert_eq!(
        lines(&r),
        [
            "after raise: usr1=1",
            "after thread_signal: usr2=1",
            "after proc_signal: term=1",
            "kill 0 (existence) errno=0",
            "bad signal errno=28"
        ]
    );
}

#[test]
fn interval_timer_signals_reach_a_pure_compute_loop() {
    let r = sigs("interval");
    r.success();
    assert_eq!(lines(&r), ["alarms in a compute loop: true (true)"]);
}

#[test]
fn one_shot_timer_fires_once_and_sleeps_resume() {
    let r = sigs("oneshot");
    r.success();
    assert_eq!(lines(&r), ["one-shot alarms: 1"]);
}

#[test]
fn default_actions_end_the_process_with_128_plus_signal() {
    assert_eq!(sigs("default-alarm").code, 128 + 14);
    assert_eq!(sigs("sigpipe-default").code, 128 + 13);
}

#[test]
fn writing_to_a_pipe_without_readers_raises_sigpipe_then_epipe() {
    let r = sigs("sigpipe");
    r.success();
    assert_eq!(lines(&r), ["write errno=Some(64) sigpipe=1"]);
}

#[test]
fn fd_calls_dup_eventfd_cwd_and_tty() {
    let scratch = tempfile::tempdir().unwrap();
    let mount = format!("{}::/", scratch.path().display());
    let r = run(&["run", "--dir", &mount, path_str(&guest("fdx.wasm"))]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "dup: via dup",
            "eof after last writer: true",
            "dup2 min 20 -> 20, cloexec=1",
            "dup of a closed fd: errno 8",
            "eventfd sum 7",
            "cwd /",
            "cwd /sub/deeper",
            "cwd /sub",
            "chdir to a file: errno 54",
            "chdir to nothing: errno 44",
            "tty cols>0 true stdin_tty 0 stdout_tty 0",
            "fdx done"
        ]
    );
}

/// Starts `wasmix run GUEST SCENARIO` with piped stdio and waits for its `ready` line.
fn started(
    guest_name: &str,
    scenario: &str,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = wasmix()
        .args(["run", path_str(&guest(guest_name)), scenario])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmix");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.trim() == "ready" || line.trim() == "parked",
        "guest did not start: {line:?}"
    );
    (child, out)
}

fn send(child: &std::process::Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

#[test]
fn ctrl_c_runs_the_guest_handler_and_the_blocked_read_goes_on() {
    let (mut child, mut out) = started("sigs.wasm", "wait-int");
    send(&child, rustix::process::Signal::INT);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got SIGINT\n");
    child.stdin.take().unwrap().write_all(b"bye\n").unwrap();
    out.read_line(&mut line).unwrap();
    assert!(line.ends_with("read 4 bytes after 1 SIGINT\n"), "{line}");
    assert!(child.wait().unwrap().success());
}

/// A host signal the guest leaves at its default ends wasmix as it ends a native program:
/// by the signal itself (a shell reports 128+signal), acted on by the kernel.
fn ended_by(status: std::process::ExitStatus, sig: i32) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(sig)
}

#[test]
fn ctrl_c_without_a_handler_ends_the_guest_by_sigint() {
    for scenario in ["wait-default", "spin-default"] {
        let (mut child, _out) = started("sigs.wasm", scenario);
        // `wait` would close stdin, and an EOF could end the read before the signal does.
        let _stdin = child.stdin.take();
        send(&child, rustix::process::Signal::INT);
        let status = child.wait().unwrap();
        assert!(ended_by(status, libc::SIGINT), "{scenario}: {status:?}");
    }
}

#[test]
fn sigterm_ends_a_guest_whose_threads_are_parked() {
    let (mut child, _out) = started("threads.wasm", "parked");
    send(&child, rustix::process::Signal::TERM);
    let status = child.wait().unwrap();
    assert!(ended_by(status, libc::SIGTERM), "{status:?}");
}

#[test]
fn wasix_thread_spawn_v2_join_exit_and_futex_timeout() {
    run(&["run", path_str(&guest("wasix_threads.wat"))]).success();
}

#[test]
fn wasix_from_c_handlers_pipes_and_timers() {
    let r = run(&["run", path_str(&guest("wasix_c.wasm"))]);
    r.success();
    assert_eq!(
        lines(&r),
        [
            "usr1 handled 1",
            "pipe says piped, then eof 1",
            "pid 1",
            "alarms 1"
        ]
    );
}

#[test]
fn sigkill_ends_children_blocked_in_sleep_pipe_read_and_join() {
    let r = spawner("kill-blocked", &[]);
    r.success();
    let l: Vec<&str> = lines(&r).into_iter().filter(|l| *l != "ready").collect();
    assert_eq!(
        l,
        [
            "sleep -> Signaled(9)",
            "cat -> Signaled(9)",
            "wait-child -> Signaled(9)"
        ]
    );
}

#[test]
fn ctrl_c_goes_to_the_child_the_guest_waits_for() {
    let bin = format!("{}::/bin", path_str(guest("child.wasm").parent().unwrap()));
    let mut child = wasmix()
        .args([
            "run",
            "--dir",
            &bin,
            path_str(&guest("spawner.wasm")),
            "wait-child",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmix");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // A Ctrl-C that lands before the guest is in its join runs the guest's (empty) handler;
    // repeat until one reaches the child.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = loop {
        send(&child, rustix::process::Signal::INT);
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(line) => break line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(e) => panic!("no output: {e}"),
        }
    };
    assert_eq!(line, "child status=Signaled(2)\n");
    assert!(child.wait().unwrap().success(), "the parent survives");
}

#[test]
fn older_abi_generations_spawn_with_piped_stdio_and_two_argument_join() {
    let bin = format!("{}::/bin", path_str(guest("child.wasm").parent().unwrap()));
    let r = run(&["run", "--dir", &bin, path_str(&guest("old_abi.wat"))]);
    r.success();
    assert_eq!(r.stdout, "old-abi\n");
}

#[test]
fn unimplemented_wasix_calls_answer_enosys_and_path_open2_sets_cloexec() {
    let scratch = tempfile::tempdir().unwrap();
    let mount = format!("{}::/", scratch.path().display());
    let r = run(&[
        "run",
        "--dir",
        &mount,
        path_str(&guest("wasix_unimplemented.wat")),
    ]);
    r.success();
    assert!(scratch.path().join("made").exists());
}

#[test]
fn the_2023_thread_spawn_form_with_host_thread_locals() {
    run(&["run", path_str(&guest("wasix_threads_2023.wat"))]).success();
}

/// Wasmer showed descriptors 0-2 to every program as character devices that cannot seek
/// (lib/wasi/src/state/mod.rs, `WasiFs::fdstat`, commit
/// 2c8da56e99f69f7f80bf9e243465dc23483d6ede); WASIX libcs take that for a terminal and
/// line-buffer stdout even into a pipe. WASIX programs get that view; preview1 programs the
/// real file types (the WASI testsuite checks them).
#[test]
fn wasix_programs_see_stdio_as_wasmer_showed_it_preview1_programs_see_the_truth() {
    let wasix = run(&["run", path_str(&guest("stdio_wasix.wat"))]);
    wasix.success();
    assert_eq!(
        wasix.stdout, "2- 2- 2-\n",
        "stdin null, stdout and stderr pipes"
    );
    let preview1 = run(&["run", path_str(&guest("stdio_preview1.wat"))]);
    preview1.success();
    let fields: Vec<&str> = preview1.stdout.split_whitespace().collect();
    assert_eq!(fields[0], "2-", "stdin is /dev/null, a character device");
    assert_ne!(fields[1], "2-", "stdout is a pipe, not a terminal");
}

/// A 2022 libc's raise() signals thread 0 before its thread-local storage is set up; Wasmer
/// numbered the main thread 0 (lib/wasi/src/state/thread.rs @ c95b4fee), so the handler
/// runs on the main thread instead of the call failing with ESRCH.
#[test]
fn a_signal_to_thread_0_reaches_the_main_thread() {
    let r = run(&["run", path_str(&guest("signal_thread0.wat"))]);
    r.success();
    assert_eq!(r.stdout, "handled 10\n");
}

/// A spawn of something that is not a program file is refused before it is read: a FIFO no
/// one writes (its open hung the host, past Ctrl-C) answers EACCES as execve does, and a
/// 16 GiB sparse file EFBIG at once (it was read whole: >5 GB of host memory).
#[test]
fn spawning_a_fifo_or_a_huge_file_fails_at_once() {
    let scratch = tempfile::tempdir().unwrap();
    let fifo = scratch.path().join("fifo");
    common::mkfifo(&fifo);
    let huge = std::fs::File::create(scratch.path().join("huge.wasm")).unwrap();
    huge.set_len(16 << 30).unwrap();
    let mount = format!("{}::/t", path_str(scratch.path()));
    let r = common::run_guest_with_bin(
        "spawner.wasm",
        &["spawn-path", "/t/fifo", "/t/huge.wasm"],
        &["--dir", &mount],
    );
    r.success();
    assert_eq!(
        lines(&r),
        ["/t/fifo errno=Some(2)", "/t/huge.wasm errno=Some(22)"]
    );
}

/// SIGTERM to a root waiting in proc_join for computing children ends the run at once: the
/// root leaves SIGTERM at its default, so the kernel ends wasmix in the sender's kill(2),
/// and no thread of ours must first get a CPU among the children (bench/kill.sh times it
/// with 1,023 children).
#[test]
fn sigterm_ends_a_root_with_computing_children() {
    let g = guest("forker.wasm");
    let mut child = wasmix()
        .args(["run", path_str(&g), "tree", "64"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "tree ready\n");
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = child.wait().unwrap();
    assert!(ended_by(status, libc::SIGTERM), "{status:?}");
}

/// WASIX `fd_pipe` carries bytes both ways, as the 2022 toolchain's programs expect (the
/// guest cites Wasmer's source of that time): a write at either end is read at the other,
/// and closing one end is the other's end of file.
#[test]
fn fd_pipe_reads_and_writes_at_both_ends() {
    let r = run(&["run", path_str(&guest("pipe_2022.wat"))]);
    r.success();
    assert_eq!(r.stdout, "ping\npong\neof\n");
}

/// SIGCHLD reaches a WASIX libc's signal dispatch (the guest is shaped as wasix-libc's, cited
/// there): left at SIG_DFL or set to SIG_IGN it does nothing — the libc's own `SIG_IGN(sig)`
/// call is made harmless at load instead of calling the table's first function — and a real
/// handler runs.
#[test]
fn sigchld_reaches_a_libc_dispatch_and_sig_ign_is_never_called() {
    let r = run(&["run", path_str(&guest("sigchld_2022.wat"))]);
    assert_eq!(r.stdout, "got SIGCHLD\ndone\n", "{}", r.stderr);
    assert_eq!(r.code, 0);
}

/// Programs using the standard exception-handling encoding (`try_table`, `throw_ref`) and
/// the GC proposal's struct and array types load and run (the engine refused both before).
#[test]
fn exception_handling_and_gc_programs_run() {
    let r = run(&["run", path_str(&guest("exceptions.wat"))]);
    r.success();
    assert_eq!(r.stdout, "caught 42\nrethrown 7\n");
    let r = run(&["run", path_str(&guest("gc_arrays.wat"))]);
    r.success();
    assert_eq!(r.stdout, "sum 5050\n");
}

/// A module in the legacy exception-handling encoding is translated at load and runs:
/// handlers, `rethrow` and a `delegate` to the caller behave as before translation.
#[test]
fn a_legacy_exception_handling_module_is_translated_and_runs() {
    let r = run(&["run", path_str(&guest("legacy_eh.wat"))]);
    r.success();
    assert_eq!(r.stdout, "caught 3\ncaught 4\n");
}

/// A legacy module the translation cannot take is refused by name, with why and the two ways
/// to a module wasmix runs.
#[test]
fn an_untranslatable_legacy_module_is_refused_with_what_to_do() {
    let r = run(&["run", path_str(&guest("legacy_eh_params.wat"))]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("legacy exception-handling"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("block parameters"), "{}", r.stderr);
    assert!(r.stderr.contains("--translate-to-exnref"), "{}", r.stderr);
    assert!(
        r.stderr.contains("-wasm-use-legacy-eh=false"),
        "{}",
        r.stderr
    );
}

/// C++ exceptions as clang-16 builds them (`-fwasm-exceptions`, the legacy encoding): a throw
/// caught frames up with destructors run on the way, handlers chosen by type, a rethrow.
#[test]
fn cxx_exceptions_are_thrown_and_caught() {
    let r = run(&["run", path_str(&guest("cxx_exceptions.wasm"))]);
    r.success();
    assert_eq!(
        r.stdout,
        "unwound inner\nunwound outer\ncaught Oops 7\nby type: 42 9 -1\nrethrown 107\n"
    );
}

/// setjmp/longjmp done with exceptions (`-mllvm -wasm-enable-sjlj`): back across frames, a
/// 0 value read as 1, past an inner setjmp to an outer one, and in a loop.
#[test]
fn setjmp_and_longjmp_by_exceptions() {
    let r = run(&["run", path_str(&guest("sjlj_vfork.wasm")), "jumps"]);
    r.success();
    assert_eq!(r.stdout, "back 42\nzero became 1\nouter 7\nloop sum 33\n");
}

/// `proc_fork_env`, the vfork of wasix-libc's exception-handling build (`vfork.c` in
/// wasix-org/wasix-libc @ d4297b59: setjmp, `proc_fork_env`, and a longjmp back once the
/// child's `proc_exit2` or `proc_exec3` has returned): the child borrows the parent's memory
/// and exits with its own code; an exec'd child runs the new program; a failed exec returns.
#[test]
fn proc_fork_env_vforks_for_exit_and_exec() {
    let r = run(&["run", path_str(&guest("sjlj_vfork.wasm")), "vfork-exit"]);
    r.success();
    assert_eq!(r.stdout, "child made, shared=1, same pid=1, exit 3\n");
    let r = common::run_guest_with_bin("sjlj_vfork.wasm", &["vfork-exec", "/bin/child.wasm"], &[]);
    r.success();
    assert_eq!(
        r.stdout,
        "exec'd child exit 5\nexec failed errno=44\nfailed exec's child exit 127\n"
    );
}

/// A `proc_fork_env` child killed before it can _exit or exec took the parent's stack with
/// it: the parent ends with an error saying so instead of running on a stack that is gone.
#[test]
fn a_killed_proc_fork_env_child_ends_its_parent_with_a_clear_error() {
    let r = run(&["run", path_str(&guest("sjlj_vfork.wasm")), "vfork-killed"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stdout.contains("parent resumed"), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("the vfork child 2 ended without _exit or exec"),
        "{}",
        r.stderr
    );
}
