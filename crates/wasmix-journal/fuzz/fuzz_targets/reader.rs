//! The journal reader on hostile files: whatever the bytes, opening, decoding every snapshot
//! and reading every region ends in a value or a named error — no panic, no allocation beyond
//! what the file holds, no hang.
//!
//! Input: a first byte chooses the file. Even: the input itself is the file. Odd: a valid
//! journal of two snapshots (a full one and an increment holding an xor region), with the rest of the input applied to it as (offset, xor)
//! pairs and a final length — so the fuzzer works near valid journals, where the interesting
//! decisions (torn tail or corruption, which snapshot survives) are made.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wasmix_journal::record::{Entry, Memory, Process, Resume, Thread};
use wasmix_journal::{Journal, JournalWriter, SyncPolicy, Verify};

fn valid() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("seed");
        let mut w = JournalWriter::create(&path, [3; 32], SyncPolicy::Never).expect("create");
        for seq in 0..2u8 {
            let mut s = w.snapshot("explicit", 1, 2).expect("begin");
            s.process(&Process {
                pid: 1,
                args: vec![b"a".to_vec()],
                env: Vec::new(),
                dispositions: Vec::new(),
                pending: 0,
                timers: Vec::new(),
                signal_callback: None,
                thread_locals: Vec::new(),
            })
            .expect("process");
            s.thread(&Thread {
                tid: 1,
                main: true,
                mask: 0,
                pending: 0,
                entry: Entry::Main,
                globals: Vec::new(),
                unwind_area: 0,
                unwind_data: vec![seq; 16],
                stack_pointer: 0,
                stack_top: None,
                resume: Resume::Restart,
            })
            .expect("thread");
            if seq == 1 {
                s.base(1).expect("base");
            }
            s.memory(&Memory { index: 0, size: 65536, shared: false }).expect("memory");
            let mut noise: Vec<u8> =
                (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
            // The second snapshot, an increment, holds the page poked: an xor region.
            noise[7] ^= seq;
            s.regions(0, &[(0, &noise)]).expect("raw or xor region");
            s.region(0, 8192, &[seq; 5000], None).expect("lz4 region");
            s.commit().expect("commit");
        }
        std::fs::read(&path).expect("read seed")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let file: Vec<u8> = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut bytes = valid().to_vec();
        let mut pairs = rest.chunks_exact(3);
        for p in &mut pairs {
            let at = usize::from(u16::from_le_bytes([p[0], p[1]])) % bytes.len();
            bytes[at] ^= p[2];
        }
        if let [a, b] = pairs.remainder() {
            let keep = usize::from(u16::from_le_bytes([*a, *b])) % (bytes.len() + 1);
            bytes.truncate(keep);
        }
        bytes
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("j");
    std::fs::write(&path, &file).expect("write");
    for verify in [Verify::Full, Verify::Frames] {
        let Ok(journal) = Journal::open(&path, None, verify) else { continue };
        for index in journal.snapshots() {
            let Ok(snapshot) = journal.snapshot(index) else { continue };
            let layers = journal.layers(index).ok();
            for r in &snapshot.root.regions {
                // A region's length was checked against the file when it was read.
                if r.len <= 1 << 20 {
                    let mut out = vec![0u8; r.len as usize];
                    let _ = journal.read_region(r, &mut out);
                    if let Some(full) = layers.as_ref().and_then(|l| l.first()) {
                        let _ = journal.read_layered(r, &full.root, &mut out);
                    }
                }
            }
        }
    }
});
