//! Sequences of host calls with wild arguments and memory, in one process over a real fd
//! table and a mounted folder. Checked: the host never panics (a panic is a crash to
//! libFuzzer), every call answers an errno (or ends the thread or process, for the calls that
//! may), no call makes the host allocate more than BOUND at once, and nothing outside the
//! mount is created or changed.
//!
//! Input: `L` (one byte) and `L * 16` bytes of the guest's memory, then records of 12
//! bytes: the call (u16, modulo how many there are) and ten argument bytes, each a small
//! number (below 0x80) or one of the edge values (0x80 and up).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use wasmix_runtime::FuzzHarness;

/// Most a single host call may allocate at once, beyond what was held before it.
const BOUND: usize = 64 << 20;

struct Counting;
static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as the caller vouches for `layout`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = HELD.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as the caller vouches.
        unsafe { System.dealloc(p, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const EDGES: [u64; 16] = [
    0,
    1,
    3,
    4,
    0xffff,
    0x1_0000,
    0xffff_fff0,
    u32::MAX as u64,
    u64::MAX,
    i64::MAX as u64,
    0x8000,
    0xfff8,
    1 << 20,
    1 << 31,
    0x7fff_ffff,
    64,
];

thread_local! {
    static SCRATCH: tempfile::TempDir = tempfile::tempdir().unwrap();
    static HARNESS: FuzzHarness = SCRATCH.with(|d| {
        std::fs::create_dir(d.path().join("mount")).unwrap();
        std::fs::write(d.path().join("sentinel.txt"), "outside\n").unwrap();
        FuzzHarness::new(d.path().join("mount"))
    });
}

fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&l, rest)) = data.split_first() else {
        return;
    };
    let mem_len = (usize::from(l) * 16).min(rest.len());
    let (memory, records) = rest.split_at(mem_len);
    let calls: Vec<(usize, Vec<u64>)> = records
        .chunks_exact(12)
        .take(64)
        .map(|r| {
            let index = usize::from(u16::from_le_bytes([r[0], r[1]]));
            let args = r[2..]
                .iter()
                .map(|b| {
                    if *b < 0x80 {
                        u64::from(*b)
                    } else {
                        EDGES[usize::from(b & 15)]
                    }
                })
                .collect();
            (index, args)
        })
        .collect();
    HARNESS.with(|h| {
        let mut before = HELD.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let r = h.sequence(memory, calls, |name| {
            let peak = PEAK.load(Ordering::Relaxed);
            assert!(
                peak.saturating_sub(before) <= BOUND,
                "{name} made the host hold {} MiB more at once",
                (peak - before) >> 20
            );
            before = HELD.load(Ordering::Relaxed);
            PEAK.store(before, Ordering::Relaxed);
        });
        if let Err(e) = r {
            panic!("{e}");
        }
    });
    SCRATCH.with(|d| {
        assert_eq!(
            listing(d.path()),
            ["mount", "sentinel.txt"],
            "something appeared outside the mount"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("sentinel.txt")).unwrap(),
            "outside\n"
        );
    });
});
