//! The journal end to end: snapshots written and read back, and every way a file can be
//! damaged — cut at every frame boundary and inside frames, bits flipped anywhere, garbage
//! appended, another module, a newer format — giving recovery or the named error, never a
//! panic.

use std::path::Path;

use wasmix_journal::record::{
    Disposition, Ended, Entry, Fd, Files, Global, Member, Memory, Node, PipeEnd, Process, Resume,
    Thread, Timer,
};
use wasmix_journal::{
    Encoding, Journal, JournalError, JournalWriter, Kind, SyncPolicy, Tail, Verify, HEADER_LEN,
    MAPPABLE, PAGE,
};

const MODULE: [u8; 32] = [0xab; 32];

fn process(pid: u32) -> Process {
    Process {
        pid,
        args: vec![b"prog".to_vec(), b"arg".to_vec()],
        env: vec![b"A=1".to_vec()],
        dispositions: vec![
            Disposition::Default,
            Disposition::Ignore,
            Disposition::Handler(7),
        ],
        pending: 1 << 14,
        timers: vec![Timer {
            signal: 14,
            remaining_ns: 5_000,
            repeat_ns: Some(10_000),
        }],
        signal_callback: Some("__wasm_signal".into()),
        thread_locals: Vec::new(),
    }
}

fn thread(tid: u32) -> Thread {
    Thread {
        tid,
        main: tid == 1,
        mask: 0,
        pending: 0,
        entry: if tid == 1 {
            Entry::Main
        } else {
            Entry::ThreadStart(tid as i32)
        },
        globals: vec![("__stack_pointer".into(), Global::I32(65536))],
        unwind_area: 1 << 20,
        unwind_data: vec![tid as u8; 40],
        stack_pointer: 60_000,
        stack_top: Some(65_536),
        resume: Resume::Restart,
    }
}

fn files() -> Files {
    Files {
        cwd: "/work".into(),
        fds: vec![
            Fd {
                fd: 1,
                node: Node::Stdio(1),
                flags: 0,
                rights_base: u64::MAX,
                rights_inheriting: 0,
                cloexec: false,
                preopen: None,
                shares: None,
            },
            Fd {
                fd: 5,
                node: Node::Pipe {
                    id: 1,
                    end: PipeEnd::Read,
                    buffered: b"queued".to_vec(),
                },
                flags: 0,
                rights_base: 3,
                rights_inheriting: 0,
                cloexec: true,
                preopen: None,
                shares: None,
            },
        ],
    }
}

/// Pseudo-random bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Writes `n` snapshots; the i-th has a raw region of noise and an lz4 region of a pattern.
fn write(path: &Path, n: u64) -> Vec<(u64, u64)> {
    let mut w = JournalWriter::create(path, MODULE, SyncPolicy::Never).unwrap();
    let mut spans = Vec::new();
    for i in 1..=n {
        let mut s = w.snapshot("explicit", 1000 * i, 10 * i).unwrap();
        s.process(&process(1)).unwrap();
        s.thread(&thread(1)).unwrap();
        s.thread(&thread(2)).unwrap();
        s.files(&files()).unwrap();
        s.memory(&Memory {
            index: 0,
            size: 1 << 20,
            shared: true,
        })
        .unwrap();
        let raw = noise(MAPPABLE as usize, i);
        assert_eq!(s.region(0, 0, &raw, None).unwrap(), Encoding::Raw);
        let pattern = vec![i as u8; 70_000];
        assert_eq!(s.region(0, 1 << 16, &pattern, None).unwrap(), Encoding::Lz4);
        let info = s.commit().unwrap();
        spans.push((info.offset, info.offset + info.bytes));
    }
    spans
}

fn check_latest(j: &Journal, seq: u64) {
    let s = j.latest().unwrap();
    assert_eq!(s.begin.seq, seq);
    assert_eq!(s.begin.trigger, "explicit");
    assert_eq!(s.root.process, Some(process(1)));
    assert_eq!(s.root.threads, vec![thread(1), thread(2)]);
    assert_eq!(s.root.files, Some(files()));
    assert!(s.members.is_empty());
    assert_eq!(s.root.regions.len(), 2);
    let raw = s.root.regions[0];
    assert_eq!(raw.encoding, Encoding::Raw);
    assert_eq!(
        raw.data_offset % PAGE,
        0,
        "raw bytes sit on a page of the file"
    );
    let mut out = vec![0u8; raw.len as usize];
    j.read_region(&raw, &mut out).unwrap();
    assert_eq!(out, noise(MAPPABLE as usize, seq));
    let lz = s.root.regions[1];
    assert_eq!(
        (lz.encoding, lz.offset, lz.len),
        (Encoding::Lz4, 1 << 16, 70_000)
    );
    assert!(lz.stored_len < 1000, "a pattern compresses");
    let mut out = vec![0u8; 70_000];
    j.read_region(&lz, &mut out).unwrap();
    assert!(out.iter().all(|b| *b == seq as u8));
}

#[test]
fn snapshots_read_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write(&path, 3);
    for verify in [Verify::Full, Verify::Frames] {
        let j = Journal::open(&path, Some(MODULE), verify).unwrap();
        assert_eq!(j.snapshots().len(), 3);
        assert_eq!(j.tail(), &Tail::Clean);
        assert_eq!(j.snapshots()[1].count(Kind::Thread), 2);
        check_latest(&j, 3);
        let first = j.snapshot(&j.snapshots()[0]).unwrap();
        assert_eq!(first.begin.seq, 1);
    }
}

/// `open_watched` reports the walk frame by frame: positions only grow, the total is the
/// file's length, and the last report is the end of the file.
#[test]
fn opening_reports_progress_up_to_the_end_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write(&path, 3);
    let len = std::fs::metadata(&path).unwrap().len();
    let mut seen = Vec::new();
    Journal::open_watched(&path, None, Verify::Full, &mut |done, total| {
        seen.push((done, total))
    })
    .unwrap();
    assert!(seen.len() > 3, "one report per frame: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(seen.iter().all(|(_, total)| *total == len));
    assert_eq!(seen.last().map(|s| s.0), Some(len));
}

#[test]
fn a_reopened_journal_appends_after_its_last_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write(&path, 1);
    let (mut w, j) = JournalWriter::open(&path, MODULE, SyncPolicy::Never, Verify::Full).unwrap();
    assert_eq!(j.snapshots().len(), 1);
    let mut s = w.snapshot("sigint", 5, 6).unwrap();
    assert_eq!(s.seq(), 2);
    s.process(&process(1)).unwrap();
    s.commit().unwrap();
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    assert_eq!(j.snapshots().len(), 2);
    assert_eq!(j.latest().unwrap().begin.trigger, "sigint");
}

/// A snapshot of a process tree: the root's records, then each member's after its Member
/// record; a zombie has none; a base record among a member's records is refused.
#[test]
fn a_tree_snapshot_reads_back_process_by_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let member = |pid, parent, ended| Member {
        pid,
        parent,
        module: MODULE,
        path: String::new(),
        ended,
    };
    let mut w = JournalWriter::create(&path, MODULE, SyncPolicy::Never).unwrap();
    let mut s = w.snapshot("explicit", 1, 2).unwrap();
    s.process(&process(1)).unwrap();
    s.thread(&thread(1)).unwrap();
    s.files(&files()).unwrap();
    s.member(&member(2, 1, None)).unwrap();
    s.process(&process(2)).unwrap();
    s.thread(&thread(2)).unwrap();
    let shared = Files {
        cwd: "/".into(),
        fds: vec![Fd {
            fd: 0,
            node: Node::Inherited { pid: 1, fd: 3 },
            flags: 0,
            rights_base: 0,
            rights_inheriting: 0,
            cloexec: false,
            preopen: None,
            shares: None,
        }],
    };
    s.files(&shared).unwrap();
    s.memory(&Memory {
        index: 0,
        size: 65536,
        shared: false,
    })
    .unwrap();
    s.region(0, 4096, &[7u8; 100], None).unwrap();
    s.member(&member(3, 2, Some(Ended::Exited(7)))).unwrap();
    s.commit().unwrap();
    drop(w);

    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    let snap = j.latest().unwrap();
    assert_eq!(snap.root.process, Some(process(1)));
    assert_eq!(snap.root.threads, vec![thread(1)]);
    assert!(snap.root.regions.is_empty());
    assert_eq!(snap.members.len(), 2);
    let (m, image) = &snap.members[0];
    assert_eq!(m, &member(2, 1, None));
    assert_eq!(image.process, Some(process(2)));
    assert_eq!(image.threads, vec![thread(2)]);
    assert_eq!(image.files, Some(shared));
    assert_eq!(image.regions.len(), 1);
    let mut out = vec![0u8; 100];
    j.read_region(&image.regions[0], &mut out).unwrap();
    assert_eq!(out, vec![7u8; 100]);
    let (zombie, nothing) = &snap.members[1];
    assert_eq!(zombie.ended, Some(Ended::Exited(7)));
    assert_eq!(nothing, &wasmix_journal::ProcessImage::default());

    let mut w = JournalWriter::open(&path, MODULE, SyncPolicy::Never, Verify::Full)
        .unwrap()
        .0;
    let mut s = w.snapshot("explicit", 3, 4).unwrap();
    s.process(&process(1)).unwrap();
    s.member(&member(2, 1, None)).unwrap();
    s.base(1).unwrap();
    s.commit().unwrap();
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    let e = j.snapshot(&j.snapshots()[1]).unwrap_err();
    assert!(
        matches!(&e, JournalError::Corrupt { reason, .. } if reason.contains("base record")),
        "{e}"
    );
}

#[test]
fn an_abandoned_snapshot_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let spans = write(&path, 1);
    let (mut w, _) = JournalWriter::open(&path, MODULE, SyncPolicy::Never, Verify::Full).unwrap();
    {
        let mut s = w.snapshot("explicit", 0, 0).unwrap();
        s.thread(&thread(1)).unwrap();
        // dropped without commit
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), spans[0].1);
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    assert_eq!((j.snapshots().len(), j.tail()), (1, &Tail::Clean));
}

/// Every cut of the file lands on the last snapshot wholly before the cut, and a writer
/// reopening it cuts the file back to that snapshot's end.
#[test]
fn a_cut_anywhere_recovers_to_the_last_complete_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let spans = write(&full, 3);
    let bytes = std::fs::read(&full).unwrap();
    let path = dir.path().join("cut");
    // Every 8-byte boundary (where frames start and end) and a spread of odd offsets.
    let cuts = (0..bytes.len()).filter(|c| c % 8 == 0 || c % 997 == 3);
    for cut in cuts {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let opened = Journal::open(&path, Some(MODULE), Verify::Full);
        if (cut as u64) < HEADER_LEN {
            assert!(
                matches!(opened, Err(JournalError::NotAJournal { .. })),
                "cut {cut}: {opened:?}"
            );
            continue;
        }
        let j = opened.unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let complete = spans.iter().filter(|s| s.1 <= cut as u64).count();
        assert_eq!(j.snapshots().len(), complete, "cut at {cut}");
        if complete > 0 {
            check_latest(&j, complete as u64);
        } else {
            assert!(matches!(j.latest(), Err(JournalError::NoSnapshot { .. })));
        }
        let keep = spans
            .get(complete.wrapping_sub(1))
            .map_or(HEADER_LEN, |s| s.1);
        assert_eq!(j.recovered_len(), keep);
        assert_eq!(j.tail() == &Tail::Clean, keep == cut as u64, "cut at {cut}");
        if cut % 4096 == 0 {
            let (_w, _) =
                JournalWriter::open(&path, MODULE, SyncPolicy::Never, Verify::Frames).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), keep);
        }
    }
}

#[test]
fn garbage_after_the_last_snapshot_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let spans = write(&path, 2);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(noise(10_000, 99));
    std::fs::write(&path, &bytes).unwrap();
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    assert_eq!(j.snapshots().len(), 2);
    assert!(
        matches!(j.tail(), Tail::Dropped { offset, bytes: 10_000, .. } if *offset == spans[1].1)
    );
}

/// A flipped bit anywhere is caught. Damage with a commit after it is corruption, named at
/// the damaged frame's offset (no crash can produce it: a commit is written only once the
/// frames before it are durable); damage in the last commit itself is a torn tail (that
/// snapshot is lost, the one before survives). Never a panic, never a silently wrong
/// snapshot.
#[test]
fn a_flipped_bit_is_caught_wherever_it_lands() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let spans = write(&full, 2);
    let bytes = std::fs::read(&full).unwrap();
    let path = dir.path().join("flipped");
    let last_commit = spans[1].1 - 32;
    // A prime step: lands in every frame header and at every bit position over the file.
    for at in (0..bytes.len()).step_by(13) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 1 << (at % 8);
        std::fs::write(&path, &damaged).unwrap();
        match Journal::open(&path, Some(MODULE), Verify::Full) {
            Err(JournalError::NotAJournal { .. } | JournalError::HeaderCorrupt { .. }) => {
                assert!((at as u64) < HEADER_LEN, "byte {at}")
            }
            Err(JournalError::Corrupt { offset, .. }) => {
                assert!(offset <= at as u64, "byte {at}: blamed {offset}");
                assert!(
                    (at as u64) < last_commit,
                    "byte {at}: damage in the last commit is a torn tail"
                );
            }
            Ok(j) => {
                assert!(
                    (at as u64) >= last_commit,
                    "byte {at}: damage before a commit must be an error"
                );
                assert_eq!(j.snapshots().len(), 1, "byte {at}");
                check_latest(&j, 1);
            }
            Err(e) => panic!("byte {at}: unexpected {e}"),
        }
    }
}

#[test]
fn another_modules_journal_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write(&path, 1);
    let e = Journal::open(&path, Some([1; 32]), Verify::Full).unwrap_err();
    assert!(matches!(e, JournalError::OtherModule { .. }), "{e}");
    assert!(e.to_string().contains("another module"), "{e}");
    let e = JournalWriter::open(&path, [1; 32], SyncPolicy::Never, Verify::Full).err();
    assert!(matches!(e, Some(JournalError::OtherModule { .. })));
}

#[test]
fn a_newer_format_or_record_layout_is_refused_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write(&path, 1);
    let bytes = std::fs::read(&path).unwrap();

    // Format version 2 with a valid header checksum.
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    let sum = crc(&newer[..60]);
    newer[60..64].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, &newer).unwrap();
    let e = Journal::open(&path, None, Verify::Full).unwrap_err();
    assert!(
        matches!(
            e,
            JournalError::NewerFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("version 2"));

    // The first frame (Begin) claiming layout version 9, with a valid frame checksum.
    let mut newer = bytes.clone();
    let f = HEADER_LEN as usize;
    newer[f + 6..f + 8].copy_from_slice(&9u16.to_le_bytes());
    let sum = crc(&newer[f..f + 20]);
    newer[f + 20..f + 24].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, &newer).unwrap();
    let e = Journal::open(&path, None, Verify::Full).unwrap_err();
    assert!(
        matches!(
            e,
            JournalError::NewerRecord {
                kind: "begin",
                found: 9,
                supported: 1,
                ..
            }
        ),
        "{e}"
    );

    // An unknown kind number.
    let mut unknown = bytes;
    unknown[f + 4..f + 6].copy_from_slice(&77u16.to_le_bytes());
    let sum = crc(&unknown[f..f + 20]);
    unknown[f + 20..f + 24].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, &unknown).unwrap();
    let e = Journal::open(&path, None, Verify::Full).unwrap_err();
    assert!(
        matches!(e, JournalError::UnknownKind { kind: 77, .. }),
        "{e}"
    );
}

#[test]
fn files_that_are_not_journals_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let e = Journal::open(&path, None, Verify::Full).unwrap_err();
    assert!(matches!(e, JournalError::NotAJournal { .. }), "{e}");
    let e = Journal::open(&dir.path().join("missing"), None, Verify::Full).unwrap_err();
    assert!(matches!(e, JournalError::Io { .. }), "{e}");
    assert!(e.to_string().contains("missing"));
}

/// CRC32C, the journal's checksum, for forging valid-looking headers in tests.
fn crc(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn compaction_keeps_the_latest_snapshot_on_its_pages_and_appending_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write(&path, 4);
    let before = std::fs::metadata(&path).unwrap().len();
    let done = wasmix_journal::compact(&path).unwrap();
    assert_eq!(done.kept, Some(4));
    assert_eq!(done.before, before);
    assert!(done.after < before / 2, "{done:?}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), done.after);
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    assert_eq!(j.snapshots().len(), 1);
    check_latest(&j, 4);
    drop(j);
    // A run journaling into it goes on from there.
    let (mut w, _) = JournalWriter::open(&path, MODULE, SyncPolicy::Never, Verify::Full).unwrap();
    let mut s = w.snapshot("explicit", 1, 1).unwrap();
    s.process(&process(1)).unwrap();
    assert_eq!(s.seq(), 5);
    s.commit().unwrap();
    drop(w);
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    assert_eq!(
        j.snapshots().iter().map(|s| s.seq).collect::<Vec<_>>(),
        [4, 5]
    );
    assert!(!dir.path().join("j.compact").exists());
}

#[test]
fn one_run_writes_a_journal_at_a_time_and_compaction_waits_its_turn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write(&path, 2);
    let (held, _) = JournalWriter::open(&path, MODULE, SyncPolicy::Never, Verify::Full).unwrap();
    let second = JournalWriter::open(&path, MODULE, SyncPolicy::Never, Verify::Full);
    assert!(matches!(second, Err(JournalError::InUse { .. })));
    assert!(matches!(
        JournalWriter::create(&path, MODULE, SyncPolicy::Never),
        Err(JournalError::InUse { .. })
    ));
    assert!(matches!(
        wasmix_journal::compact(&path),
        Err(JournalError::InUse { .. })
    ));
    drop(held);
    // Nothing was lost to the refused attempts.
    assert_eq!(
        Journal::open(&path, Some(MODULE), Verify::Full)
            .unwrap()
            .snapshots()
            .len(),
        2
    );
    assert_eq!(wasmix_journal::compact(&path).unwrap().kept, Some(2));
}

#[test]
fn a_damaged_journal_is_not_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    write(&path, 3);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 3;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    assert!(wasmix_journal::compact(&path).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
}

/// One memory of `PAGES` pages, written as a full snapshot then increments, each given as
/// the pages it changes (page, fill byte; 0 = zeroed).
const PAGES: usize = 64;

/// Writes `layers[0]` as a full snapshot (zero pages left out) and each later one as an
/// increment on the one before; returns the memory after each.
fn write_layers(path: &Path, layers: &[Vec<(usize, u8)>]) -> Vec<Vec<u8>> {
    let mut w = JournalWriter::create(path, MODULE, SyncPolicy::Never).unwrap();
    let mut memory = vec![0u8; PAGES * PAGE as usize];
    let mut states = Vec::new();
    for (i, changes) in layers.iter().enumerate() {
        let mut s = w.snapshot("periodic", 1, 1).unwrap();
        s.process(&process(1)).unwrap();
        if i > 0 {
            s.base(i as u64).unwrap();
        }
        s.memory(&Memory {
            index: 0,
            size: memory.len() as u64,
            shared: false,
        })
        .unwrap();
        for (p, fill) in changes {
            memory[p * PAGE as usize..(p + 1) * PAGE as usize].fill(*fill);
        }
        let pages: Vec<usize> = if i == 0 {
            (0..PAGES).collect()
        } else {
            let mut ps: Vec<usize> = changes.iter().map(|c| c.0).collect();
            ps.sort_unstable();
            ps.dedup();
            ps
        };
        for p in pages {
            let at = p * PAGE as usize;
            let bytes = &memory[at..at + PAGE as usize];
            if bytes.iter().all(|b| *b == 0) {
                if i > 0 {
                    s.zeros(0, at as u64, PAGE).unwrap();
                }
            } else {
                s.region(0, at as u64, bytes, None).unwrap();
            }
        }
        s.commit().unwrap();
        states.push(memory.clone());
    }
    states
}

/// `len` bytes of text: lz4 halves them.
fn text(len: usize) -> Vec<u8> {
    b"the quick brown fox jumps over the lazy dog; "
        .iter()
        .cycle()
        .take(len)
        .copied()
        .collect()
}

/// The memory snapshot `seq` composes to.
fn compose(j: &Journal, seq: u64) -> Vec<u8> {
    let index = j.snapshots().iter().find(|s| s.seq == seq).unwrap();
    let mut memory = vec![0xAAu8; PAGES * PAGE as usize];
    memory.fill(0);
    for layer in j.layers(index).unwrap() {
        for r in &layer.root.regions {
            let at = r.offset as usize;
            j.read_region(r, &mut memory[at..at + r.len as usize])
                .unwrap();
        }
    }
    memory
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// Increments composed over their base give the memory as it was at each snapshot,
    /// whatever pages each rewrites or clears.
    #[test]
    fn increments_compose_to_the_memory_at_each_snapshot(
        layers in proptest::collection::vec(
            proptest::collection::vec((0..PAGES, proptest::prelude::any::<u8>()), 0..20),
            1..6,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let states = write_layers(&path, &layers);
        let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
        for (i, state) in states.iter().enumerate() {
            let seq = i as u64 + 1;
            let chain: Vec<u64> = j
                .chain(j.snapshots().iter().find(|s| s.seq == seq).unwrap())
                .unwrap()
                .iter()
                .map(|s| s.seq)
                .collect();
            proptest::prop_assert_eq!(chain, (1..=seq).collect::<Vec<_>>());
            proptest::prop_assert!(compose(&j, seq) == *state, "snapshot {}", seq);
        }
    }
}

/// Compaction keeps an incremental snapshot's whole chain (and it still composes); a base
/// that is missing is a named error, not a wrong memory.
#[test]
fn compaction_keeps_the_chain_and_a_missing_base_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let layers = vec![vec![(1, 1), (2, 2)], vec![(2, 0), (3, 3)], vec![(1, 9)]];
    let states = write_layers(&path, &layers);
    let done = wasmix_journal::compact(&path).unwrap();
    assert_eq!(done.kept, Some(3));
    assert_eq!(done.chain, [1, 2, 3]);
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    assert_eq!(j.latest().unwrap().base, Some(2));
    assert_eq!(compose(&j, 3), states[2]);
    drop(j);

    // An increment naming a base the journal does not hold.
    let lone = dir.path().join("lone");
    let mut w = JournalWriter::create(&lone, MODULE, SyncPolicy::Never).unwrap();
    let mut s = w.snapshot("periodic", 1, 1).unwrap();
    s.base(7).unwrap();
    s.commit().unwrap();
    drop(w);
    let j = Journal::open(&lone, Some(MODULE), Verify::Full).unwrap();
    let err = j.layers(&j.snapshots()[0]).unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::MissingBase {
                seq: 1,
                base: 7,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("builds on snapshot 7"), "{err}");
}

/// An increment's many one-page regions are gathered and written together (past a MiB of
/// them, in several writes): they read back byte for byte, random pages raw and others
/// compressed; a snapshot abandoned after some of its gathered frames went out leaves
/// nothing behind.
#[test]
fn many_small_regions_read_back_and_an_abandoned_batch_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let page = PAGE as usize;
    let text = text(page);
    let content = |p: usize| -> Vec<u8> {
        if p.is_multiple_of(3) {
            text.clone()
        } else {
            noise(page, p as u64 + 7)
        }
    };
    let mut w = JournalWriter::create(&path, MODULE, SyncPolicy::Snapshot).unwrap();
    let mut s = w.snapshot("explicit", 0, 0).unwrap();
    s.process(&process(1)).unwrap();
    s.memory(&Memory {
        index: 0,
        size: 1200 * PAGE,
        shared: true,
    })
    .unwrap();
    for p in 0..600usize {
        let want = if p.is_multiple_of(3) {
            Encoding::Lz4
        } else {
            Encoding::Raw
        };
        let at = (2 * p * page) as u64;
        assert_eq!(
            s.region(0, at, &content(p), None).unwrap(),
            want,
            "page {p}"
        );
    }
    let end = s.commit().unwrap();
    let committed = end.offset + end.bytes;
    {
        let mut s = w.snapshot("explicit", 0, 0).unwrap();
        for p in 0..600 {
            s.region(0, (2 * p * page) as u64, &noise(page, 99), None)
                .unwrap();
        }
        // dropped without commit, after more than a MiB of frames went to the file
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), committed);
    drop(w);
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    assert_eq!((j.snapshots().len(), j.tail()), (1, &Tail::Clean));
    let s = j.latest().unwrap();
    assert_eq!(s.root.regions.len(), 600);
    for (p, r) in s.root.regions.iter().enumerate() {
        let mut out = vec![0u8; page];
        j.read_region(r, &mut out).unwrap();
        assert_eq!(out, content(p), "page {p}");
        assert_eq!(r.offset, (2 * p * page) as u64);
    }
}

/// `regions` writes what `region` called for each would, byte for byte: raw and compressed
/// frames from one vectored write, and a region large enough to be mapped placed on a page
/// of the file between them; a snapshot dropped after it leaves nothing.
#[test]
fn regions_written_together_are_the_frames_written_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let page = PAGE as usize;
    let text = text(page);
    let big = noise(MAPPABLE as usize + page, 5);
    let mut contents: Vec<Vec<u8>> = (0..40u64).map(|p| noise(page, p)).collect();
    contents[3] = text.clone();
    contents[17] = big;
    contents[30] = noise(100, 1); // shorter than a page: compressed or not, as `choose` says
    let regions: Vec<(u64, &[u8])> = contents
        .iter()
        .enumerate()
        .map(|(p, c)| ((p * 40 * page) as u64, c.as_slice()))
        .collect();
    let write = |path: &Path, together: bool| {
        let mut w = JournalWriter::create(path, MODULE, SyncPolicy::Snapshot).unwrap();
        let mut s = w.snapshot("explicit", 0, 0).unwrap();
        s.process(&process(1)).unwrap();
        s.memory(&Memory {
            index: 0,
            size: 1600 * PAGE,
            shared: false,
        })
        .unwrap();
        if together {
            s.regions(0, &regions).unwrap();
        } else {
            for (at, bytes) in &regions {
                s.region(0, *at, bytes, None).unwrap();
            }
        }
        let info = s.commit().unwrap();
        {
            let mut s = w.snapshot("explicit", 0, 0).unwrap();
            s.regions(0, &regions).unwrap();
        }
        info
    };
    let (one, all) = (dir.path().join("one"), dir.path().join("all"));
    let info = write(&one, false);
    assert_eq!(write(&all, true), info);
    let bytes = std::fs::read(&all).unwrap();
    assert_eq!(bytes, std::fs::read(&one).unwrap());
    assert_eq!(
        bytes.len() as u64,
        info.offset + info.bytes,
        "the dropped one is gone"
    );
    let j = Journal::open(&all, Some(MODULE), Verify::Full).unwrap();
    let s = j.latest().unwrap();
    assert_eq!(s.root.regions.len(), contents.len());
    for (r, want) in s.root.regions.iter().zip(&contents) {
        let mut out = vec![0u8; want.len()];
        j.read_region(r, &mut out).unwrap();
        assert!(out == *want, "region at {}", r.offset);
    }
    let encodings: Vec<Encoding> = s.root.regions.iter().map(|r| r.encoding).collect();
    assert_eq!(encodings[3], Encoding::Lz4);
    assert_eq!(encodings[4], Encoding::Raw);
}

/// The memory snapshot `seq` composes to, an increment's xor regions read over its chain's
/// full snapshot.
fn compose_layered(j: &Journal, seq: u64) -> Vec<u8> {
    let index = j.snapshots().iter().find(|s| s.seq == seq).unwrap();
    let mut memory = vec![0u8; PAGES * PAGE as usize];
    let layers = j.layers(index).unwrap();
    for layer in &layers {
        for r in &layer.root.regions {
            let at = r.offset as usize;
            j.read_layered(r, &layers[0].root, &mut memory[at..at + r.len as usize])
                .unwrap();
        }
    }
    memory
}

/// What an increment does to a page.
#[derive(Clone, Copy, Debug)]
enum Change {
    /// A few bytes rewritten (at `at`, `n` of them).
    Poke { at: usize, n: usize, value: u8 },
    /// Rewritten whole with noise.
    Noise(u64),
    /// Cleared.
    Zero,
}

/// A full snapshot of noise, text and zero pages, written by `regions` (runs of pages) or
/// `region` (page by page), then increments of `changes` written by `regions`, the way
/// the runtime writes them; returns the memory after each snapshot.
fn write_changes(path: &Path, together: bool, layers: &[Vec<(usize, Change)>]) -> Vec<Vec<u8>> {
    let page = PAGE as usize;
    let mut w = JournalWriter::create(path, MODULE, SyncPolicy::Snapshot).unwrap();
    let mut memory = vec![0u8; PAGES * page];
    for p in 0..PAGES {
        match p % 4 {
            0 | 1 => memory[p * page..(p + 1) * page].copy_from_slice(&noise(page, p as u64)),
            2 => memory[p * page..(p + 1) * page].copy_from_slice(&text(page)),
            _ => {}
        }
    }
    let mut s = w.snapshot("periodic", 1, 1).unwrap();
    s.process(&process(1)).unwrap();
    s.memory(&Memory {
        index: 0,
        size: memory.len() as u64,
        shared: false,
    })
    .unwrap();
    let pages: Vec<(u64, &[u8])> = memory
        .chunks(page)
        .enumerate()
        .filter(|(_, b)| b.iter().any(|x| *x != 0))
        .map(|(p, b)| ((p * page) as u64, b))
        .collect();
    if together {
        s.regions(0, &pages).unwrap();
    } else {
        for (at, bytes) in &pages {
            s.region(0, *at, bytes, None).unwrap();
        }
    }
    s.commit().unwrap();
    let mut states = vec![memory.clone()];
    for (i, changes) in layers.iter().enumerate() {
        for (p, c) in changes {
            let bytes = &mut memory[p * page..(p + 1) * page];
            match *c {
                Change::Poke { at, n, value } => bytes[at..(at + n).min(page)].fill(value),
                Change::Noise(seed) => bytes.copy_from_slice(&noise(page, seed)),
                Change::Zero => bytes.fill(0),
            }
        }
        let mut s = w.snapshot("periodic", 1, 1).unwrap();
        s.process(&process(1)).unwrap();
        s.base(i as u64 + 1).unwrap();
        s.memory(&Memory {
            index: 0,
            size: memory.len() as u64,
            shared: false,
        })
        .unwrap();
        let mut touched: Vec<usize> = changes.iter().map(|c| c.0).collect();
        touched.sort_unstable();
        touched.dedup();
        let mut regions = Vec::new();
        for p in touched {
            let bytes = &memory[p * page..(p + 1) * page];
            if bytes.iter().all(|b| *b == 0) {
                s.zeros(0, (p * page) as u64, PAGE).unwrap();
            } else {
                regions.push(((p * page) as u64, bytes));
            }
        }
        s.regions(0, &regions).unwrap();
        s.commit().unwrap();
        states.push(memory.clone());
    }
    states
}

fn change() -> impl proptest::strategy::Strategy<Value = Change> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..PAGE as usize, 1..64usize, any::<u8>()).prop_map(|(at, n, value)| Change::Poke { at, n, value }),
        1 => any::<u64>().prop_map(Change::Noise),
        1 => Just(Change::Zero),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// Increments whose pages changed in a few bytes are stored as their xor with the full
    /// snapshot; composed over their chain they give the memory as it was at each snapshot,
    /// whatever each increment pokes, rewrites or clears, over noise, text or zero pages.
    #[test]
    fn xor_increments_compose_to_the_memory_at_each_snapshot(
        together in proptest::prelude::any::<bool>(),
        layers in proptest::collection::vec(
            proptest::collection::vec((0..PAGES, change()), 0..20),
            1..6,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let states = write_changes(&path, together, &layers);
        let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
        for (i, state) in states.iter().enumerate() {
            proptest::prop_assert!(compose_layered(&j, i as u64 + 1) == *state, "snapshot {}", i + 1);
        }
    }
}

/// A page poked in a few bytes is stored as tens of bytes of xor over a raw page of the full
/// snapshot, or over none (zeros); over a compressed page, or rewritten whole, it is stored
/// as before. A journal opened again knows no full snapshot to xor over until it writes one.
#[test]
fn a_page_changed_in_a_few_bytes_is_stored_as_its_xor_with_the_full_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let poke = Change::Poke {
        at: 100,
        n: 8,
        value: 7,
    };
    // Pages 0 (noise, raw), 2 (text, lz4), 3 (zeros), 5 (noise) in the full snapshot.
    let layers = vec![
        vec![(0, poke), (2, poke), (3, poke), (5, Change::Noise(99))],
        vec![(0, poke), (4, Change::Zero)],
    ];
    let states = write_changes(&path, true, &layers);
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    let encodings = |seq: u64| -> Vec<(u64, Encoding, u64)> {
        let index = j.snapshots().iter().find(|s| s.seq == seq).unwrap();
        let mut out = j
            .snapshot(index)
            .unwrap()
            .root
            .regions
            .iter()
            .map(|r| (r.offset / PAGE, r.encoding, r.stored_len))
            .collect::<Vec<_>>();
        out.sort_by_key(|r| r.0);
        out
    };
    let two = encodings(2);
    assert_eq!(two.len(), 4, "{two:?}");
    assert_eq!(two[0].1, Encoding::Xor, "{two:?}");
    assert!(two[0].2 < 64, "a few bytes stored: {two:?}");
    assert_eq!(two[1].1, Encoding::Lz4, "over a compressed page: {two:?}");
    assert_eq!(two[2].1, Encoding::Xor, "over zeros: {two:?}");
    assert_eq!(two[3].1, Encoding::Raw, "rewritten whole: {two:?}");
    let three = encodings(3);
    assert_eq!((three[0].0, three[0].1), (0, Encoding::Xor), "{three:?}");
    assert_eq!((three[1].0, three[1].1), (4, Encoding::Zero), "{three:?}");
    for (i, state) in states.iter().enumerate() {
        assert!(
            compose_layered(&j, i as u64 + 1) == *state,
            "snapshot {}",
            i + 1
        );
    }
    // Read alone, an xor region is its delta: the poked bytes against the full snapshot's.
    let index = j.snapshots().iter().find(|s| s.seq == 2).unwrap();
    let delta_region = j.snapshot(index).unwrap().root.regions[0];
    assert_eq!(
        (delta_region.offset, delta_region.encoding),
        (0, Encoding::Xor)
    );
    let mut delta = vec![0u8; PAGE as usize];
    j.read_region(&delta_region, &mut delta).unwrap();
    let page = PAGE as usize;
    let want: Vec<u8> = states[1][..page]
        .iter()
        .zip(&states[0][..page])
        .map(|(a, b)| a ^ b)
        .collect();
    assert!(delta == want);
    drop(j);

    // Appending after a reopen: the full snapshot's layout is not known, so plain pages.
    let (mut w, _) =
        JournalWriter::open(&path, MODULE, SyncPolicy::Snapshot, Verify::Frames).unwrap();
    let mut memory = states[2].clone();
    memory[200..208].fill(1);
    let mut s = w.snapshot("periodic", 1, 1).unwrap();
    s.base(3).unwrap();
    s.regions(0, &[(0, &memory[..page])]).unwrap();
    s.commit().unwrap();
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    let latest = j.latest().unwrap();
    assert_eq!(latest.root.regions[0].encoding, Encoding::Raw);
    assert!(compose_layered(&j, 4)[..page] == memory[..page]);
    drop((j, w));

    // Compaction keeps the chain, xor regions and the full snapshot under them alike.
    assert_eq!(wasmix_journal::compact(&path).unwrap().chain, [1, 2, 3, 4]);
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    assert!(compose_layered(&j, 3) == states[2]);
}

/// Once most tries of a batch fail (pages rewritten whole), the rest of it is not tried as
/// deltas; the next batch tries again.
#[test]
fn deltas_stop_being_tried_in_a_batch_where_they_do_not_pay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j");
    let page = PAGE as usize;
    let pages = 128;
    let mut memory: Vec<u8> = (0..pages).flat_map(|p| noise(page, p as u64)).collect();
    let mut w = JournalWriter::create(&path, MODULE, SyncPolicy::Never).unwrap();
    let mut s = w.snapshot("periodic", 1, 1).unwrap();
    s.memory(&Memory {
        index: 0,
        size: memory.len() as u64,
        shared: false,
    })
    .unwrap();
    s.regions(0, &[(0, &memory)]).unwrap();
    s.commit().unwrap();
    // 100 pages rewritten whole, then one poked.
    for p in 0..100 {
        memory[p * page..(p + 1) * page].copy_from_slice(&noise(page, 1000 + p as u64));
    }
    memory[120 * page + 9] ^= 1;
    let batch = |memory: &[u8], ps: &[usize]| -> Vec<(u64, Vec<u8>)> {
        ps.iter()
            .map(|p| ((p * page) as u64, memory[p * page..(p + 1) * page].to_vec()))
            .collect()
    };
    let first: Vec<usize> = (0..100).chain([120]).collect();
    let regions = batch(&memory, &first);
    let as_refs: Vec<(u64, &[u8])> = regions.iter().map(|(a, b)| (*a, b.as_slice())).collect();
    let mut s = w.snapshot("periodic", 1, 1).unwrap();
    s.base(1).unwrap();
    s.regions(0, &as_refs).unwrap();
    s.commit().unwrap();
    // The next batch: only the poked page, again.
    memory[120 * page + 10] ^= 1;
    let regions = batch(&memory, &[120]);
    let as_refs: Vec<(u64, &[u8])> = regions.iter().map(|(a, b)| (*a, b.as_slice())).collect();
    let mut s = w.snapshot("periodic", 1, 1).unwrap();
    s.base(2).unwrap();
    s.regions(0, &as_refs).unwrap();
    s.commit().unwrap();
    let j = Journal::open(&path, Some(MODULE), Verify::Full).unwrap();
    let snaps: Vec<_> = j
        .snapshots()
        .iter()
        .map(|i| j.snapshot(i).unwrap())
        .collect();
    let two: Vec<Encoding> = snaps[1].root.regions.iter().map(|r| r.encoding).collect();
    assert!(two.iter().all(|e| *e == Encoding::Raw), "{two:?}");
    assert_eq!(snaps[2].root.regions[0].encoding, Encoding::Xor);
    let layers = j.layers(&j.snapshots()[2]).unwrap();
    let mut got = vec![0u8; memory.len()];
    for l in &layers {
        for r in &l.root.regions {
            let at = r.offset as usize;
            j.read_layered(r, &layers[0].root, &mut got[at..at + r.len as usize])
                .unwrap();
        }
    }
    assert!(got == memory);
}
