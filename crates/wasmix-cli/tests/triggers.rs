//! Snapshot triggers through the CLI (`--snapshot-on …`), each with a real guest
//! (`guests/rust/src/bin/triggers.rs`): where the snapshot is taken, what it is recorded
//! as, and what a restore of it does. The triggers of the checkpoint work (explicit,
//! first-stdin, bootstrap, periodic, sigint, first-sigint) are in `journal.rs`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{guest, path_str, run, wasmix};
use wasmix_journal::{Journal, Verify};

/// The triggers of `journal`'s complete snapshots, oldest first.
fn triggers(journal: &Path) -> Vec<String> {
    let j = Journal::open(journal, None, Verify::Frames).unwrap();
    j.snapshots()
        .iter()
        .map(|s| s.begin.trigger.clone())
        .collect()
}

/// Polls (bounded) until `journal` holds `n` complete snapshots; their triggers.
fn wait_for_snapshots(journal: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = Journal::open(journal, None, Verify::Frames)
            .map(|j| {
                j.snapshots()
                    .iter()
                    .map(|s| s.begin.trigger.clone())
                    .collect()
            })
            .unwrap_or_else(|_| Vec::new());
        if found.len() >= n {
            return found;
        }
        assert!(Instant::now() < deadline, "only {found:?} after 60 s");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

fn spawn(args: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = wasmix()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmix");
    let out = BufReader::new(child.stdout.take().unwrap());
    (child, out)
}

fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line
}

fn kill(child: &Child, sig: rustix::process::Signal) {
    rustix::process::kill_process(rustix::process::Pid::from_child(child), sig).unwrap();
}

/// `triggers.wasm signals` journaled into `journal` with `flags`, once it says `ready`.
fn signals_guest(journal: &Path, flags: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let g = guest("triggers.wasm");
    let mut args = vec!["run", "--journal", path_str(journal)];
    args.extend_from_slice(flags);
    args.extend([path_str(&g), "signals"]);
    let (child, mut out) = spawn(&args);
    assert_eq!(next_line(&mut out), "ready\n");
    (child, out)
}

/// A run of `triggers.wasm` that restores from `journal`.
fn restored(journal: &Path) -> common::Run {
    let g = guest("triggers.wasm");
    run(&["run", "--journal", path_str(journal), path_str(&g)])
}

/// Runs `triggers.wasm MODE` journaled into a new journal with `--snapshot-on TRIGGER
/// --stop-after-snapshot` (and `extra`); checks it stopped after saying `first`.
fn stop_at(journal: &Path, trigger: &str, mode: &str, extra: &[&str], first: &str) {
    let g = guest("triggers.wasm");
    let mut args = vec![
        "run",
        "--journal",
        path_str(journal),
        "--snapshot-on",
        trigger,
        "--stop-after-snapshot",
    ];
    args.extend_from_slice(extra);
    args.extend([path_str(&g), mode]);
    let r = run(&args);
    assert_eq!(r.code, 75, "stopped after the snapshot: {}", r.stderr);
    assert_eq!(r.stdout, first);
    assert_eq!(triggers(journal), [trigger]);
}

/// `first-environ`: taken before the program first looks at its environment, so a restore
/// gives it the new run's.
#[test]
fn first_environ_snapshots_before_the_environment_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let g = guest("triggers.wasm");
    let old = ["--env", "GREETING=old"];
    stop_at(&journal, "first-environ", "environ", &old, "started\n");
    let j = path_str(&journal);
    let r = run(&["run", "--journal", j, "--env", "GREETING=new", path_str(&g)]);
    r.success();
    assert_eq!(r.stdout, "GREETING=new\n");
}

/// `non-deterministic`: taken before the first clock call; the restore reads the clock
/// afresh (a time after the restore began), not the one the first run would have seen.
#[test]
fn non_deterministic_snapshots_before_the_first_clock_call() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    stop_at(&journal, "non-deterministic", "clock", &[], "started\n");
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let r = restored(&journal);
    r.success();
    let t: u128 = r
        .stdout
        .strip_prefix("time ")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(t >= before, "the clock was read after the restore began");
}

/// `non-deterministic` before a random call: two restores of one snapshot draw different
/// bytes (each makes the call itself).
#[test]
fn non_deterministic_snapshots_before_the_first_random_call() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let g = guest("triggers.wasm");
    stop_at(&journal, "non-deterministic", "random", &[], "started\n");
    let draws: Vec<String> = (0..2)
        .map(|i| {
            let own = dir.path().join(format!("r{i}"));
            let r = run(&[
                "run",
                "--journal",
                path_str(&own),
                "--restore-from",
                path_str(&journal),
                path_str(&g),
            ]);
            r.success();
            assert!(r.stdout.starts_with("random "), "{}", r.stdout);
            r.stdout
        })
        .collect();
    assert_ne!(draws[0], draws[1]);
}

/// `sigstop`: a process that stops itself is snapshotted first; with
/// `--stop-after-snapshot` that suspends it to the journal, and the restore goes on.
#[test]
fn sigstop_suspends_a_process_to_its_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    stop_at(&journal, "sigstop", "stop", &[], "stopping\n");
    let r = restored(&journal);
    r.success();
    assert_eq!(r.stdout, "continued\n");
}

/// `sigalrm`, `sigterm`, `sigtstp`, `sigint` sent to the runtime: each snapshot is committed
/// before the guest's handler sees its signal, and the process goes on.
#[test]
fn signal_triggers_snapshot_before_the_handler_runs() {
    use rustix::process::Signal;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let (mut child, mut out) = signals_guest(
        &journal,
        &["--snapshot-on", "sigalrm,sigterm,sigtstp,sigint"],
    );
    for (sig, n, name) in [
        (Signal::ALARM, 14, "sigalrm"),
        (Signal::TERM, 15, "sigterm"),
        (Signal::TSTP, 19, "sigtstp"),
        (Signal::INT, 2, "sigint"),
    ] {
        kill(&child, sig);
        assert_eq!(next_line(&mut out), format!("got signal {n}\n"));
        let all = triggers(&journal);
        assert_eq!(all.last().map(String::as_str), Some(name), "{all:?}");
    }
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"after\n").unwrap();
    assert_eq!(next_line(&mut out), "line after\n");
    drop(input);
    assert!(child.wait().unwrap().success());
    assert_eq!(
        triggers(&journal),
        ["sigalrm", "sigterm", "sigtstp", "sigint"]
    );
}

/// Two triggering signals back to back: the second waits for the first one's snapshot
/// instead of disturbing it, then gets its own; both reach the handler.
#[test]
fn a_signal_during_a_snapshot_waits_its_turn() {
    use rustix::process::Signal;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let (mut child, mut out) = signals_guest(&journal, &["--snapshot-on", "sigalrm,sigtstp"]);
    kill(&child, Signal::ALARM);
    kill(&child, Signal::TSTP);
    let mut got = [next_line(&mut out), next_line(&mut out)];
    got.sort();
    assert_eq!(got, ["got signal 14\n", "got signal 19\n"]);
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // Two signals pending in the runtime at once reach it in no set order.
    let mut all = triggers(&journal);
    all.sort();
    assert_eq!(all, ["sigalrm", "sigtstp"]);
}

/// `sigalrm` from the program's own timer with `--stop-after-snapshot`: the restored process
/// gets the alarm it was about to get.
#[test]
fn a_process_restored_from_a_sigalrm_snapshot_gets_its_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    stop_at(&journal, "sigalrm", "alarm", &[], "armed\n");
    let r = restored(&journal);
    r.success();
    assert_eq!(r.stdout, "got signal 14\n");
}

/// `idle`: a snapshot once every thread has been blocked for `--snapshot-idle`, and no
/// second one until the program has woken up and gone quiet again.
#[test]
fn idle_snapshots_once_per_quiet_spell() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let (mut child, mut out) = signals_guest(
        &journal,
        &["--snapshot-on", "idle", "--snapshot-idle", "20ms"],
    );
    assert_eq!(wait_for_snapshots(&journal, 1), ["idle"]);
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"wake\n").unwrap();
    assert_eq!(next_line(&mut out), "line wake\n");
    assert_eq!(wait_for_snapshots(&journal, 2), ["idle", "idle"]);
    drop(input);
    assert!(child.wait().unwrap().success());
    assert_eq!(
        triggers(&journal),
        ["idle", "idle"],
        "one snapshot per quiet spell, however long it lasts"
    );
}

/// Trigger names are checked: an unknown one is named with the list.
#[test]
fn an_unknown_trigger_is_named() {
    let g = guest("triggers.wasm");
    let r = run(&[
        "run",
        "--journal",
        "/nonexistent/j",
        "--snapshot-on",
        "lunch",
        path_str(&g),
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`lunch` is not a snapshot trigger"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("non-deterministic"), "{}", r.stderr);
    assert!(r.stderr.contains("first-listen"), "{}", r.stderr);
}
