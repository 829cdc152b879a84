//! Incremental snapshots through the CLI: a guest (`snapbench pattern`) writes memory at
//! random between snapshots — runs of pages rewritten, pages cleared, single bytes — and a
//! runtime killed after the last one restores to the same memory, whether its snapshots
//! were a full one and increments on it (the default) or all full (`--full-snapshots`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use common::{guest, path_str, run_with_stdin, wasmix};
use wasmix_journal::{Encoding, Journal, Verify};

/// Runs `snapbench pattern SEED ROUNDS 8` journaled into `journal`, kills the runtime after
/// its last snapshot, restores it; the hash the first run printed and the restored one's.
fn kill_and_restore(journal: &Path, seed: u64, rounds: usize, extra: &[&str]) -> (String, String) {
    let g = guest("snapbench.wasm");
    let (seed, rounds) = (seed.to_string(), rounds.to_string());
    let mut argv = vec!["run", "--journal", path_str(journal)];
    argv.extend_from_slice(extra);
    argv.extend([path_str(&g), "pattern", &seed, &rounds, "8"]);
    let mut child = wasmix()
        .args(&argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut hash = String::new();
    out.read_line(&mut hash).unwrap();
    let mut done = String::new();
    out.read_line(&mut done).unwrap();
    assert_eq!(done, "snapshot done\n", "first line: {hash}");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = child.stdin.take().map(|mut i| i.write_all(b"\n"));
    let restored = run_with_stdin(&argv, b"go\n");
    restored.success();
    let again = restored
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
        + "\n";
    (hash, again)
}

/// The base each complete snapshot names, oldest first.
fn bases(journal: &Path) -> Vec<Option<u64>> {
    let j = Journal::open(journal, None, Verify::Full).unwrap();
    j.snapshots()
        .iter()
        .map(|s| j.snapshot(s).unwrap().base)
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]
    /// Over random write patterns: the increments compose to the memory the process had.
    #[test]
    fn a_process_restored_from_increments_has_the_memory_it_had(
        seed in 1u64..u64::MAX,
        rounds in 2usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j");
        let (hash, restored) = kill_and_restore(&journal, seed, rounds, &[]);
        proptest::prop_assert!(hash.starts_with("hash "), "{}", hash);
        proptest::prop_assert_eq!(&restored, &hash);
        let b = bases(&journal);
        proptest::prop_assert_eq!(b[0], None, "the first snapshot is full");
        for (i, base) in b.iter().enumerate().skip(1).take(rounds - 1) {
            proptest::prop_assert_eq!(*base, Some(i as u64), "snapshot {} is an increment", i + 1);
        }
    }
}

/// `--full-snapshots`: no increments, and the same memory.
#[test]
fn full_snapshots_write_the_whole_memory_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("inc");
    let full = dir.path().join("full");
    let (hash, restored) = kill_and_restore(&inc, 42, 3, &[]);
    assert_eq!(restored, hash);
    let (hash_full, restored_full) = kill_and_restore(&full, 42, 3, &["--full-snapshots"]);
    assert_eq!(restored_full, hash_full);
    assert_eq!(hash_full, hash, "one seed, one memory");
    assert!(bases(&full).iter().all(Option::is_none));
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(size(&inc) < size(&full), "increments write less");
    // Pages the guest changed in a byte are stored as their xor with the full snapshot,
    // and the increments' memory, extracted, is the full snapshots' byte for byte.
    let j = Journal::open(&inc, None, Verify::Full).unwrap();
    let xors = j
        .snapshots()
        .iter()
        .flat_map(|s| j.snapshot(s).unwrap().root.regions)
        .filter(|r| r.encoding == Encoding::Xor)
        .count();
    assert!(xors > 0, "no page stored as xor");
    let image = |journal: &Path| {
        let out = journal.with_extension("mem");
        wasmix()
            .args([
                "journal",
                "extract",
                path_str(journal),
                "--memory",
                path_str(&out),
            ])
            .output()
            .unwrap();
        std::fs::read(&out).unwrap()
    };
    let (a, b) = (image(&inc), image(&full));
    assert!(!a.is_empty() && a == b, "the memories differ");
}

/// An increment covers the pages written since its base, not the whole memory: the memory
/// a full snapshot handed over to write tracking (async write protection, where the kernel
/// has it) is handed over with the process held, and the guest waiting in `proc_snapshot`
/// for its snapshot to be durable counts as held. Once that wait did not count: every hold
/// gave up on it, every chunk was handed over unheld, so counted as written whole, and the
/// second snapshot covered all of the memory. The guest has one thread, so a hold waits
/// only for it to reach its wait or an epoch check; to fail here, more than half of the
/// ~10 holds would have to give up (2 ms each).
#[test]
fn an_increment_covers_what_was_written_not_the_whole_memory() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j");
    let (hash, restored) = kill_and_restore(&journal, 42, 2, &[]);
    assert_eq!(restored, hash);
    let j = Journal::open(&journal, None, Verify::Full).unwrap();
    let snapshots = j.snapshots();
    let second = j.snapshot(&snapshots[1]).unwrap();
    assert!(second.base.is_some(), "the second snapshot is an increment");
    let size: u64 = second.root.memories.iter().map(|m| m.size).sum();
    let covered: u64 = second.root.regions.iter().map(|r| r.len).sum();
    assert!(
        covered < size / 2,
        "the increment covers {covered} of {size} bytes"
    );
}
