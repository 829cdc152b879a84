//! Snapshots and restores through the CLI (`wasmix run --journal`), on `journaled.wasm`: four
//! threads blocked in a condition variable (raw atomic waits), an empty pipe's read and a
//! sleep, or computing; a pipe with bytes in flight; a file being written. A restored run
//! must finish with exactly the output and file of a run that was never interrupted.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};

use common::{guest, path_str, run, run_with_stdin, wasmix};

/// `wasmix run --journal JOURNAL [EXTRA...] --dir DATA::/data journaled.wasm out.txt`.
fn args<'a>(journal: &'a str, data: &'a str, extra: &[&'a str], g: &'a str) -> Vec<&'a str> {
    let mut all = vec!["run", "--journal", journal, "--dir", data];
    all.extend_from_slice(extra);
    all.extend_from_slice(&[g, "out.txt"]);
    all
}

/// `wasmix ARGS` with its output piped and `stdin` as given.
fn spawn(args: &[&str], stdin: Stdio) -> Child {
    wasmix()
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wasmix")
}

/// The next line `out` gives.
fn next_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line
}

/// Reads the next line of `child`'s output and checks it is `want`; otherwise ends `child`
/// and fails with how it ended and what it printed on stderr (a run that exited early
/// leaves no other trace).
fn expect_line(child: &mut Child, out: &mut BufReader<ChildStdout>, want: &str) {
    let line = next_line(out);
    if line == want {
        return;
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    panic!("wanted {want:?}, got {line:?}; the run ended with {status}, stderr:\n{stderr}");
}

/// Ctrl-C, as a terminal sends it to the runtime.
fn ctrl_c(child: &Child) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
}

/// Runs cat.wasm journaled with `--snapshot-on TRIGGER`, presses Ctrl-C once it echoed a
/// line (back in its read), and checks SIGINT's default action followed the snapshot.
fn ctrl_c_a_journaled_cat(journal: &Path, trigger: &str) {
    let g = guest("cat.wasm");
    let mut child = spawn(
        &[
            "run",
            "--journal",
            path_str(journal),
            "--snapshot-on",
            trigger,
            path_str(&g),
        ],
        Stdio::piped(),
    );
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"first\n").unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(
        next_line(&mut out),
        "first\n",
        "cat is running and back in its read"
    );
    ctrl_c(&child);
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "SIGINT's default action after the snapshot"
    );
    drop(input);
}

/// Runs cat.wasm journaled with `--snapshot-on first-stdin --stop-after-snapshot`: it stops
/// (exit 75) at its first read of stdin, having read nothing.
fn stop_cat_at_its_first_read(journal: &Path) {
    let g = guest("cat.wasm");
    let stopped = run_with_stdin(
        &[
            "run",
            "--journal",
            path_str(journal),
            "--snapshot-on",
            "first-stdin",
            "--stop-after-snapshot",
            path_str(&g),
        ],
        b"never read\n",
    );
    assert_eq!(stopped.code, 75, "{}", stopped.stderr);
    assert_eq!(stopped.stdout, "", "stopped before reading anything");
}

/// What a journaled.wasm test works with under `dir`: a data directory and its `--dir`
/// mount at /data, the journal's path, and the guest.
fn scene(
    dir: &Path,
) -> (
    std::path::PathBuf,
    String,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let data_dir = dir.join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let data = format!("{}::/data", path_str(&data_dir));
    (data_dir, data, dir.join("j"), guest("journaled.wasm"))
}

/// What a run that is never interrupted prints and writes.
fn uninterrupted(dir: &Path) -> (String, String) {
    let data_dir = dir.join("straight");
    std::fs::create_dir(&data_dir).unwrap();
    let data = format!("{}::/data", path_str(&data_dir));
    let journal = dir.join("straight.journal");
    let g = guest("journaled.wasm");
    let r = run_with_stdin(&args(path_str(&journal), &data, &[], path_str(&g)), b"go\n");
    r.success();
    assert!(r.stdout.starts_with("snapshot: Ok(())\n"), "{}", r.stdout);
    let file = std::fs::read_to_string(data_dir.join("out.txt")).unwrap();
    assert_eq!(file, "before the snapshot\nafter the snapshot\ndone\n");
    (r.stdout, file)
}

#[test]
fn a_stopped_process_resumes_every_thread_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (expected_out, expected_file) = uninterrupted(dir.path());
    let (data_dir, data, journal, g) = scene(dir.path());

    let stopped = run(&args(
        path_str(&journal),
        &data,
        &["--stop-after-snapshot"],
        path_str(&g),
    ));
    assert_eq!(stopped.code, 75, "stderr: {}", stopped.stderr);
    assert_eq!(stopped.stdout, "", "it stopped inside proc_snapshot");
    assert!(stopped
        .stderr
        .contains("resume it with: wasmix run --journal"));
    assert_eq!(
        std::fs::read_to_string(data_dir.join("out.txt")).unwrap(),
        "before the snapshot\n"
    );

    let resumed = run_with_stdin(&args(path_str(&journal), &data, &[], path_str(&g)), b"go\n");
    resumed.success();
    assert_eq!(resumed.stdout, expected_out);
    assert_eq!(
        std::fs::read_to_string(data_dir.join("out.txt")).unwrap(),
        expected_file
    );
}

#[test]
fn a_runtime_killed_after_the_snapshot_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (expected_out, expected_file) = uninterrupted(dir.path());
    let (data_dir, data, journal, g) = scene(dir.path());

    // The guest prints its line once the snapshot is committed, then waits for stdin,
    // which never comes: the runtime dies there.
    let mut child = spawn(
        &args(path_str(&journal), &data, &[], path_str(&g)),
        Stdio::piped(),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut child, &mut out, "snapshot: Ok(())\n");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(child.stdin.take());

    let resumed = run_with_stdin(&args(path_str(&journal), &data, &[], path_str(&g)), b"go\n");
    resumed.success();
    assert_eq!(resumed.stdout, expected_out);
    assert_eq!(
        std::fs::read_to_string(data_dir.join("out.txt")).unwrap(),
        expected_file
    );
}

#[test]
fn a_journal_of_another_module_or_a_damaged_one_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let data_dir = dir.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    let data = format!("{}::/data", path_str(&data_dir));
    let g = guest("journaled.wasm");
    let stopped = run(&args(
        path_str(&journal),
        &data,
        &["--stop-after-snapshot"],
        path_str(&g),
    ));
    assert_eq!(stopped.code, 75, "{}", stopped.stderr);

    let hello = guest("hello.wasm");
    run(&["run", "--journal", path_str(&journal), path_str(&hello)])
        .clean_error("written for another module");

    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[70] ^= 0x10; // inside the first frame's header, before the commit
    let damaged = dir.path().join("damaged");
    std::fs::write(&damaged, &bytes).unwrap();
    run(&args(path_str(&damaged), &data, &[], path_str(&g))).clean_error("is corrupt at byte 64");

    std::fs::write(dir.path().join("text"), b"not a journal").unwrap();
    run(&args(
        path_str(&dir.path().join("text")),
        &data,
        &[],
        path_str(&g),
    ))
    .clean_error("is not a wasmix journal");
}

#[test]
fn a_snapshot_needs_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("{}::/data", path_str(dir.path()));
    let g = guest("journaled.wasm");
    let r = run_with_stdin(&["run", "--dir", &data, path_str(&g), "out.txt"], b"go\n");
    r.success();
    assert!(
        r.stdout.starts_with("snapshot: Err(Errno { code: 58"),
        "ENOTSUP without a journal: {}",
        r.stdout
    );
    let _ = std::io::stdout().flush();
}

/// Crash consistency: the runtime is killed (SIGKILL) at random moments while the guest takes
/// snapshot after snapshot; after every kill the journal opens on a complete snapshot, and
/// the next run restores from it and goes on — until a run finishes with exactly the output
/// of a run that was never interrupted. Bounded in rounds and time.
#[test]
fn killed_at_random_moments_every_restore_lands_on_a_complete_snapshot() {
    use wasmix_journal::{Journal, Verify};
    const ROUNDS: u32 = 200;
    let budget = std::time::Duration::from_secs(90);
    let g = guest("snapshots.wasm");
    let expected = run(&["run", path_str(&g), "40"]);
    expected.success();
    let dir = tempfile::tempdir().unwrap();
    // Instrumented and compiled once, before the kills start (a run killed while it
    // instruments the module would never get as far as a snapshot).
    let warm = dir.path().join("warm");
    run(&["run", "--journal", path_str(&warm), path_str(&g), "1"]).success();
    let journal = dir.path().join("j");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let started = std::time::Instant::now();
    let (mut rounds, mut snapshots_seen) = (0, 0);
    while rounds < ROUNDS && started.elapsed() < budget {
        rounds += 1;
        let mut child = wasmix()
            .args(["run", "--journal", path_str(&journal), path_str(&g), "40"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Fault injection, not synchronisation: anywhere from start-up to mid-run.
        std::thread::sleep(std::time::Duration::from_micros(next() % 120_000));
        let _ = child.kill();
        child.wait().unwrap();
        if !journal.exists() {
            continue; // killed before it created the journal
        }
        let j = Journal::open(&journal, None, Verify::Full).unwrap_or_else(|e| {
            panic!("round {rounds} (seed {seed}): the journal does not open: {e}")
        });
        if let Some(last) = j.snapshots().last() {
            snapshots_seen = snapshots_seen.max(last.seq);
            j.latest().unwrap_or_else(|e| {
                panic!("round {rounds} (seed {seed}): the last snapshot does not decode: {e}")
            });
        }
    }
    assert!(rounds >= 20, "only {rounds} rounds in {budget:?}");
    assert!(
        snapshots_seen > 0,
        "no run lived long enough to take a snapshot"
    );
    let finished = run(&["run", "--journal", path_str(&journal), path_str(&g), "40"]);
    finished.success();
    assert_eq!(
        finished.stdout, expected.stdout,
        "seed {seed}, {rounds} rounds, snapshots up to {snapshots_seen}"
    );
}

/// A thread whose loop makes host calls (the clock) is reached too: the call that notices the
/// snapshot raises its safe-point flag before taking its interrupt (the first cut lost the
/// request there, and such a thread never parked).
#[test]
fn a_thread_looping_over_host_calls_is_captured() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let g = guest("snapbench.wasm");
    let mut child = spawn(
        &[
            "run",
            "--journal",
            path_str(&journal),
            path_str(&g),
            "memory",
            "1",
        ],
        Stdio::null(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the snapshot never completed: a thread was not captured");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pause_ns "));
}

/// `--snapshot-on sigint`: Ctrl-C takes a snapshot, then acts as usual (here: ends the
/// process, 130); the restored process is back in its read of stdin.
#[test]
fn ctrl_c_takes_a_snapshot_then_the_signal_acts() {
    use wasmix_journal::{Journal, Verify};
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let g = guest("cat.wasm");
    ctrl_c_a_journaled_cat(&journal, "sigint");

    let j = Journal::open(&journal, None, Verify::Full).unwrap();
    let snap = j.latest().unwrap();
    assert_eq!(snap.begin.trigger, "sigint");

    let resumed = run_with_stdin(
        &["run", "--journal", path_str(&journal), path_str(&g)],
        b"second\n",
    );
    resumed.success();
    assert_eq!(resumed.stdout, "second\n");
}

/// A process with a child is snapshotted with its child (the tree; see `trees.rs`):
/// proc_snapshot succeeds, and both go on.
#[test]
fn a_process_with_a_child_is_snapshotted_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let bin = format!("{}::/bin", path_str(guest("child.wasm").parent().unwrap()));
    let g = guest("spawner.wasm");
    let r = run(&[
        "run",
        "--journal",
        path_str(&journal),
        "--dir",
        &bin,
        path_str(&g),
        "snapshot-with-child",
    ]);
    r.success();
    assert!(
        r.stdout.contains("snapshot with a child: ok")
            && r.stdout.contains("join errno=0 status=Exited(3)"),
        "{}",
        r.stdout
    );
    let info = run(&["journal", "inspect", "--json", path_str(&journal)]);
    info.success();
    assert!(info.stdout.contains("\"members\":[{"), "{}", info.stdout);
}

/// A real interpreter (Rhai: parser, tree-walking evaluator, dynamic values) snapshotted by
/// Ctrl-C mid-computation and killed; the restored run finishes the computation with the
/// result of a run never interrupted, without starting over.
#[test]
fn an_interpreter_resumes_mid_computation() {
    let g = guest("script.wasm");
    let expected = run(&["run", path_str(&g), "60000"]);
    expected.success();
    let (first, result) = expected.stdout.split_once('\n').unwrap();
    assert_eq!(first, "computing");

    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let mut child = spawn(
        &[
            "run",
            "--journal",
            path_str(&journal),
            "--snapshot-on",
            "sigint",
            path_str(&g),
            "60000",
        ],
        Stdio::null(),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut child, &mut out, "computing\n");
    ctrl_c(&child);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    if status.code() == Some(0) {
        // It finished before Ctrl-C reached it: nothing left to resume (a slow machine).
        assert_eq!(rest, result);
        return;
    }
    assert_eq!(status.code(), Some(130));
    assert_eq!(rest, "", "killed before the result");

    let resumed = run(&[
        "run",
        "--journal",
        path_str(&journal),
        path_str(&g),
        "60000",
    ]);
    resumed.success();
    assert_eq!(
        resumed.stdout, result,
        "the restored run goes on, it does not start over"
    );
}

/// An interval timer and the signal handler come back with a restored process: its alarms
/// keep firing after the restore.
#[test]
fn interval_timers_and_handlers_survive_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let g = guest("sigs.wasm");
    let stopped = run(&[
        "run",
        "--journal",
        path_str(&journal),
        "--stop-after-snapshot",
        path_str(&g),
        "snapshot-timer",
    ]);
    assert_eq!(stopped.code, 75, "{}", stopped.stderr);
    let resumed = run(&[
        "run",
        "--journal",
        path_str(&journal),
        path_str(&g),
        "snapshot-timer",
    ]);
    resumed.success();
    assert_eq!(
        resumed.stdout,
        "snapshot Ok(()); alarms kept coming: true\n"
    );
}

/// A restore needs the files the snapshot had open: one that is gone is named, and so is a
/// mount the run no longer gives.
#[test]
fn a_restore_names_a_missing_file_or_mount() {
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, data, journal, g) = scene(dir.path());
    let stopped = run(&args(
        path_str(&journal),
        &data,
        &["--stop-after-snapshot"],
        path_str(&g),
    ));
    assert_eq!(stopped.code, 75, "{}", stopped.stderr);

    let elsewhere = format!("{}::/elsewhere", path_str(dir.path()));
    run(&[
        "run",
        "--journal",
        path_str(&journal),
        "--dir",
        &elsewhere,
        path_str(&g),
        "out.txt",
    ])
    .clean_error("the snapshot had `/data` mounted");

    std::fs::remove_file(data_dir.join("out.txt")).unwrap();
    run(&args(path_str(&journal), &data, &[], path_str(&g))).clean_error("out.txt");
}

/// A thread blocked in a call a snapshot cannot capture (opening a FIFO nobody reads: an
/// open is no capture point) does not hold a snapshot forever: it fails after
/// `--snapshot-timeout`, naming the thread, and the program goes on.
#[test]
fn a_thread_that_never_parks_fails_the_snapshot_by_name() {
    // Ctrl-C comes after the guest said `opening`: usually it is in its open by then, and the
    // snapshot fails by name. Under load it may still be on its way there, at a safe point:
    // then the snapshot is taken and SIGINT ends it (130) — also right, but not what this
    // test is about, so it tries again.
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        common::mkfifo(&data.join("fifo"));
        let journal = dir.path().join("j");
        let g = guest("limits.wasm");
        let mut child = spawn(
            &[
                "run",
                "--journal",
                path_str(&journal),
                "--snapshot-on",
                "sigint",
                "--snapshot-timeout",
                "0.5",
                "--dir",
                &format!("{}::/data", data.display()),
                path_str(&g),
                "open-fifo",
                "/data/fifo",
            ],
            Stdio::null(),
        );
        let mut out = BufReader::new(child.stdout.take().unwrap());
        expect_line(&mut child, &mut out, "opening\n");
        ctrl_c(&child);
        let err = child.stderr.take().unwrap();
        let mut said = String::new();
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if l.contains("sigint snapshot failed") {
                said = l;
                break;
            }
        }
        // Then SIGINT acts (its default: the end), even on a thread still in its open.
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130));
        if said.is_empty() {
            continue; // captured before its open: the snapshot was taken
        }
        assert!(said.contains("did not reach a safe point"), "{said}");
        assert!(said.contains("[1]"), "the blocked thread is named: {said}");
        return;
    }
    panic!("Ctrl-C never found the guest in its open in 20 tries");
}

/// `wasmix journal inspect|verify`: what a journal holds, human-readable and as JSON; an
/// intact journal verifies, damage is named by its byte offset, a torn tail is reported.
#[test]
fn journal_tools_show_and_check_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let g = guest("snapshots.wasm");
    run(&["run", "--journal", path_str(&journal), path_str(&g), "3"]).success();

    let human = run(&["journal", "inspect", path_str(&journal)]);
    human.success();
    assert!(
        human.stdout.contains("snapshots      3"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("#3 explicit"), "{}", human.stdout);

    let json = run(&["journal", "inspect", "--json", path_str(&journal)]);
    json.success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let snaps = v["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 3);
    assert_eq!(snaps[2]["seq"], 3);
    assert_eq!(snaps[0]["threads"], 1);
    assert!(snaps[0]["memory_bytes"].as_u64().unwrap() >= 512 * 1024);
    assert_eq!(v["records"]["commit"], 3);
    assert!(v["torn_tail"].is_null());

    let ok = run(&["journal", "verify", path_str(&journal)]);
    ok.success();
    assert!(
        ok.stdout.contains("ok, 3 complete snapshot(s)"),
        "{}",
        ok.stdout
    );

    let mut bytes = std::fs::read(&journal).unwrap();
    let len = bytes.len();
    let torn = dir.path().join("torn");
    std::fs::write(&torn, &bytes[..len - 100]).unwrap();
    let r = run(&["journal", "verify", path_str(&torn)]);
    r.success();
    assert!(
        r.stdout.contains("ok, 2 complete snapshot(s)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("torn tail"), "{}", r.stdout);

    bytes[len / 3] ^= 0x01;
    let damaged = dir.path().join("damaged");
    std::fs::write(&damaged, &bytes).unwrap();
    run(&["journal", "verify", path_str(&damaged)]).clean_error("is corrupt at byte");
    run(&["journal", "inspect", path_str(&dir.path().join("missing"))]).clean_error("missing");
}

/// The memory is written while the process runs on (write-protected, see the runtime's
/// `wpcopy`): a thread that keeps swapping pairs of a permutation meanwhile must not leave
/// a restored run with pages from different instants.
#[test]
fn memory_written_while_a_thread_rewrites_it_restores_as_one_instant() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let g = guest("snapbench.wasm");
    let argv = [
        "run",
        "--journal",
        path_str(&journal),
        path_str(&g),
        "swaps",
        "32",
    ];
    let mut child = spawn(&argv, Stdio::piped());
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut child, &mut out, "snapshot done\n");
    // The swapper ran on while the snapshots were written; the runtime dies now.
    child.kill().unwrap();
    child.wait().unwrap();
    drop(child.stdin.take());
    let resumed = run_with_stdin(&argv, b"go\n");
    resumed.success();
    assert_eq!(resumed.stdout, "snapshot done\npermutation intact\n");
}

/// `journal export` lists every record of a snapshot as a JSON line; `journal extract`
/// writes its memory out, where the guest's own bytes are found; a damaged journal or a
/// snapshot that is not there is a named error.
#[test]
fn journal_export_and_extract_show_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = path_str(&journal);
    let g = guest("snapbench.wasm");
    // Fills 1 MiB with a known sequence, then snapshots and stops.
    let stopped = run(&[
        "run",
        "--journal",
        j,
        "--stop-after-snapshot",
        path_str(&g),
        "durable",
        "1",
    ]);
    assert_eq!(stopped.code, 75, "{}", stopped.stderr);

    let export = run(&["journal", "export", j]);
    export.success();
    let lines: Vec<serde_json::Value> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"begin"));
    assert_eq!(kinds.last(), Some(&"commit"));
    assert!(kinds.contains(&"process") && kinds.contains(&"files"));
    let threads: Vec<_> = lines.iter().filter(|l| l["kind"] == "thread").collect();
    assert_eq!(
        threads
            .iter()
            .filter(|t| t["record"]["main"] == true)
            .count(),
        1,
        "one main thread among {threads:?}"
    );
    assert!(lines.iter().all(|l| l["snapshot"] == 1));
    let size = lines.iter().find(|l| l["kind"] == "memory").unwrap()["record"]["size"]
        .as_u64()
        .unwrap();

    let image = dir.path().join("memory.img");
    let extract = run(&["journal", "extract", "--memory", path_str(&image), j]);
    extract.success();
    let bytes = std::fs::read(&image).unwrap();
    assert_eq!(bytes.len() as u64, size);
    // snapbench's first xorshift value, as the guest computes it.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    let first = x.to_le_bytes();
    assert!(
        bytes.windows(8).any(|w| w == first),
        "the guest's bytes are in the image"
    );

    run(&[
        "journal",
        "extract",
        "--snapshot",
        "9",
        "--memory",
        path_str(&image),
        j,
    ])
    .clean_error("holds no complete snapshot #9 (it holds: #1)");
    let mut damaged = std::fs::read(&journal).unwrap();
    damaged[100] ^= 0xff;
    std::fs::write(&journal, &damaged).unwrap();
    let bad = run(&["journal", "export", j]);
    assert_ne!(bad.code, 0);
    assert!(!bad.stderr.contains("panicked"), "{}", bad.stderr);
}

/// `journal compact` keeps the latest snapshot, which restores; what a crash in the middle
/// of one can leave (a stray copy beside the journal) harms nothing.
#[test]
fn a_compacted_journal_restores_its_latest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (expected_out, expected_file) = uninterrupted(dir.path());
    let (data_dir, data, journal, g) = scene(dir.path());
    let stopped = run(&args(
        path_str(&journal),
        &data,
        &["--stop-after-snapshot"],
        path_str(&g),
    ));
    assert_eq!(stopped.code, 75, "{}", stopped.stderr);
    // A crash during an earlier compaction left a partial copy.
    let stray = dir.path().join("j.compact");
    std::fs::write(&stray, b"partial").unwrap();
    let c = run(&["journal", "compact", path_str(&journal)]);
    c.success();
    assert!(c.stdout.contains("kept snapshot #1"), "{}", c.stdout);
    assert!(!stray.exists(), "the copy replaced the journal");
    run(&["journal", "verify", path_str(&journal)]).success();
    let resumed = run_with_stdin(&args(path_str(&journal), &data, &[], path_str(&g)), b"go\n");
    resumed.success();
    assert_eq!(resumed.stdout, expected_out);
    assert_eq!(
        std::fs::read_to_string(data_dir.join("out.txt")).unwrap(),
        expected_file
    );
}

/// Two runs journaling into one file would interleave their records; the second is refused
/// by name while the first runs.
#[test]
fn a_journal_in_use_is_refused_to_a_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data, journal, g) = scene(dir.path());
    let mut first = spawn(
        &args(path_str(&journal), &data, &[], path_str(&g)),
        Stdio::piped(),
    );
    let mut out = BufReader::new(first.stdout.take().unwrap());
    expect_line(&mut first, &mut out, "snapshot: Ok(())\n");
    let second = run(&args(path_str(&journal), &data, &[], path_str(&g)));
    assert_ne!(second.code, 0);
    assert!(
        second.stderr.contains("is in use by another wasmix"),
        "{}",
        second.stderr
    );
    run(&["journal", "compact", path_str(&journal)]).clean_error("is in use by another wasmix");
    first.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(first.wait().unwrap().success());
}

/// `--snapshot-on first-stdin`: the snapshot is taken where the program first reads stdin,
/// before the read — restoring it starts the program there, reading the new run's input
/// (instant start). A restored run is past its first read and takes no second snapshot.
#[test]
fn first_stdin_snapshots_before_the_first_read_and_a_restore_reads_new_input() {
    use wasmix_journal::{Journal, Verify};
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = path_str(&journal);
    let g = guest("cat.wasm");
    stop_cat_at_its_first_read(&journal);
    let snap = Journal::open(&journal, None, Verify::Full)
        .unwrap()
        .latest()
        .unwrap();
    assert_eq!(snap.begin.trigger, "first-stdin");
    for input in ["one run\n", "another run\n"] {
        let r = run_with_stdin(
            &[
                "run",
                "--journal",
                j,
                "--snapshot-on",
                "first-stdin",
                path_str(&g),
            ],
            input.as_bytes(),
        );
        r.success();
        assert_eq!(r.stdout, input);
    }
    let all = Journal::open(&journal, None, Verify::Full).unwrap();
    assert_eq!(
        all.snapshots().len(),
        1,
        "restores took no second first-stdin snapshot"
    );
}

/// `--snapshot-on periodic --snapshot-period 50ms`: snapshots come on their own while the
/// process runs (here blocked in reads, futexes and a sleep), and it finishes as usual.
#[test]
fn periodic_snapshots_come_while_the_process_runs() {
    use wasmix_journal::{Journal, Verify};
    let dir = tempfile::tempdir().unwrap();
    let (expected_out, _) = uninterrupted(dir.path());
    let (_, data, journal, g) = scene(dir.path());
    let extra = ["--snapshot-on", "periodic", "--snapshot-period", "50ms"];
    let mut child = spawn(
        &args(path_str(&journal), &data, &extra, path_str(&g)),
        Stdio::piped(),
    );
    let mut out = BufReader::new(child.stdout.take().unwrap());
    expect_line(&mut child, &mut out, "snapshot: Ok(())\n");
    // Wait (bounded) until two periodic snapshots are complete in the journal.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let periodic = Journal::open(&journal, None, Verify::Frames)
            .map(|j| {
                j.snapshots()
                    .iter()
                    .filter(|s| s.begin.trigger == "periodic")
                    .count()
            })
            .unwrap_or(0);
        if periodic >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no periodic snapshots"
        );
        std::thread::park_timeout(std::time::Duration::from_millis(20));
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(format!("snapshot: Ok(())\n{rest}"), expected_out);
}

/// `--snapshot-on first-sigint`: Ctrl-C takes a snapshot, recorded as first-sigint, then
/// acts as usual.
#[test]
fn first_ctrl_c_takes_a_snapshot_recorded_as_first_sigint() {
    use wasmix_journal::{Journal, Verify};
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    ctrl_c_a_journaled_cat(&journal, "first-sigint");
    let snap = Journal::open(&journal, None, Verify::Full)
        .unwrap()
        .latest()
        .unwrap();
    assert_eq!(snap.begin.trigger, "first-sigint");
}

/// `--restore-from`: runs start from one journal at once (only reading it), each recording
/// into a new journal of its own; an existing one is not overwritten.
#[test]
fn several_runs_restore_from_one_journal_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = path_str(&journal);
    let g = guest("cat.wasm");
    stop_cat_at_its_first_read(&journal);
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let own = dir.path().join(format!("j{i}"));
            let (g, j) = (g.clone(), j.to_owned());
            std::thread::spawn(move || {
                let input = format!("run {i}\n");
                let r = run_with_stdin(
                    &[
                        "run",
                        "--journal",
                        path_str(&own),
                        "--restore-from",
                        &j,
                        path_str(&g),
                    ],
                    input.as_bytes(),
                );
                (input, r)
            })
        })
        .collect();
    for handle in runs {
        let (input, r) = handle.join().unwrap();
        r.success();
        assert_eq!(r.stdout, input);
    }
    let again = run(&[
        "run",
        "--journal",
        path_str(&dir.path().join("j0")),
        "--restore-from",
        j,
        path_str(&g),
    ]);
    assert_ne!(again.code, 0);
    assert!(
        again.stderr.contains("records into a new one"),
        "{}",
        again.stderr
    );
}

/// `--snapshot-on bootstrap`: the snapshot comes where the program first waits — here its
/// first sleep, taken before it; the restore sleeps and ends as the program would have.
#[test]
fn bootstrap_snapshots_at_the_first_sleep() {
    use wasmix_journal::{Journal, Verify};
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let j = path_str(&journal);
    let g = guest("child.wasm");
    let stopped = run(&[
        "run",
        "--journal",
        j,
        "--snapshot-on",
        "bootstrap",
        "--stop-after-snapshot",
        path_str(&g),
        "sleep",
        "10",
    ]);
    assert_eq!(stopped.code, 75, "{}", stopped.stderr);
    let snap = Journal::open(&journal, None, Verify::Full)
        .unwrap()
        .latest()
        .unwrap();
    assert_eq!(snap.begin.trigger, "bootstrap");
    run(&["run", "--journal", j, path_str(&g)]).success();
}
