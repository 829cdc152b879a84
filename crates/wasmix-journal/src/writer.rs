//! Appending snapshots to a journal.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::JournalError;
use crate::frame::{
    FileHeader, FrameHeader, Kind, FORMAT_VERSION, FRAME_LEN, HEADER_LEN, MAPPABLE, PAGE,
    REGION_HEADER_LEN,
};
use crate::reader::{Journal, Verify};
use crate::record::{self, Begin, Commit, Encoding};
use crate::sparse;

/// When the journal is made durable (fsync).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// When a snapshot commits: its frames first, then the Commit frame, so a Commit on disk
    /// always vouches for durable frames.
    #[default]
    Snapshot,
    /// After every frame.
    Always,
    /// Never (the OS writes back when it likes; a crash may lose recent snapshots).
    Never,
}

impl std::str::FromStr for SyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<SyncPolicy, String> {
        match s {
            "snapshot" => Ok(SyncPolicy::Snapshot),
            "always" => Ok(SyncPolicy::Always),
            "never" => Ok(SyncPolicy::Never),
            other => Err(format!(
                "unknown sync policy `{other}` (snapshot, always or never)"
            )),
        }
    }
}

/// A journal open for appending snapshots.
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    /// Where the next frame goes (the end of the last complete snapshot, or of the header).
    end: u64,
    /// Small frames not written yet: they belong at `end - pending.len()`. An incremental
    /// snapshot is hundreds of one-page regions, and a write call each cost more than the
    /// bytes; they go out together, at the latest when their snapshot commits.
    pending: Vec<u8>,
    sync: SyncPolicy,
    next_seq: u64,
    /// What increments on the last snapshot may be stored as XOR against.
    xor_base: Option<XorBase>,
}

/// The full snapshot at the start of the last committed snapshot's chain, as this writer
/// wrote it: where it holds the root's memory 0. Known only for snapshots written by this
/// writer (a journal opened to append starts without one: its increments are stored plain
/// until the next full snapshot).
struct XorBase {
    /// The last committed snapshot, which the next increment names as its base.
    last: u64,
    /// The full snapshot's regions of memory 0, ascending and apart.
    spans: Vec<Span>,
}

/// A region of a full snapshot's memory 0: `offset..offset + len`, stored raw at file
/// offset `raw_at`, or otherwise (`None`).
#[derive(Clone, Copy, Debug)]
struct Span {
    offset: u64,
    len: u64,
    raw_at: Option<u64>,
}

/// Frames up to this size are gathered in [`JournalWriter::pending`]; larger ones are
/// written at once, without a copy.
const GATHER_FRAME: u64 = 64 << 10;
/// Gathered frames are written once this many bytes are waiting.
const GATHER_LIMIT: usize = 1 << 20;
/// Frames [`SnapshotWriter::regions`] writes with this much data or less are copied into
/// one part of its vectored write.
const GATHER_DATA: usize = 512;
/// Regions of one [`SnapshotWriter::regions`] call tried as deltas before it stops trying
/// unless a quarter of the tries paid.
const DELTA_TRIAL: u32 = 64;

impl JournalWriter {
    /// Creates (or replaces) the journal at `path` for the module hashed `module`.
    pub fn create(
        path: &Path,
        module: [u8; 32],
        sync: SyncPolicy,
    ) -> Result<JournalWriter, JournalError> {
        let io = |e| JournalError::io(path, e);
        // Locked before it is emptied: a journal another run writes is left alone.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        lock(&file, path)?;
        file.set_len(0).map_err(io)?;
        let header = FileHeader {
            version: FORMAT_VERSION,
            module,
        };
        file.write_all_at(&header.encode(), 0).map_err(io)?;
        let writer = JournalWriter {
            file,
            path: path.to_owned(),
            end: HEADER_LEN,
            pending: Vec::new(),
            sync,
            next_seq: 1,
            xor_base: None,
        };
        if sync != SyncPolicy::Never {
            writer.file.sync_all().map_err(io)?;
            sync_dir(path).map_err(io)?;
        }
        Ok(writer)
    }

    /// Opens the existing journal at `path` for appending: checks it is one of `module`,
    /// recovers it to its last complete snapshot and cuts off whatever follows (a torn
    /// tail). Returns the writer and the journal as it now stands.
    pub fn open(
        path: &Path,
        module: [u8; 32],
        sync: SyncPolicy,
        verify: Verify,
    ) -> Result<(JournalWriter, Journal), JournalError> {
        let io = |e| JournalError::io(path, e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        lock(&file, path)?;
        let journal = Journal::open(path, Some(module), verify)?;
        let end = journal.recovered_len();
        if end < journal.len() {
            file.set_len(end).map_err(io)?;
            if sync != SyncPolicy::Never {
                file.sync_all().map_err(io)?;
            }
        }
        let next_seq = journal.snapshots().last().map_or(1, |s| s.seq + 1);
        let writer = JournalWriter {
            file,
            path: path.to_owned(),
            end,
            pending: Vec::new(),
            sync,
            next_seq,
            xor_base: None,
        };
        Ok((writer, journal))
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the journal.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// Whether the journal holds only its header.
    pub fn is_empty(&self) -> bool {
        self.end == HEADER_LEN
    }

    /// Starts the next snapshot. Dropping the returned writer without committing takes
    /// everything it wrote back out of the file.
    pub fn snapshot(
        &mut self,
        trigger: &str,
        wall_ns: u64,
        monotonic_ns: u64,
    ) -> Result<SnapshotWriter<'_>, JournalError> {
        let seq = self.next_seq;
        let mut s = SnapshotWriter {
            start: self.end,
            journal: self,
            seq,
            frames: 0,
            chain: 0,
            committed: false,
            base: None,
            in_member: false,
            spans: Vec::new(),
        };
        s.structured(
            Kind::Begin,
            &Begin {
                seq,
                trigger: trigger.to_owned(),
                wall_ns,
                monotonic_ns,
            },
        )?;
        Ok(s)
    }

    fn io(&self, e: std::io::Error) -> JournalError {
        JournalError::io(&self.path, e)
    }

    /// Appends one frame: header, payload parts, padding. Returns the payload's CRC.
    fn append(&mut self, kind: Kind, parts: &[&[u8]]) -> Result<u32, JournalError> {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let crc = parts
            .iter()
            .fold(0u32, |crc, p| crc32c::crc32c_append(crc, p));
        let header = FrameHeader {
            kind: kind.number(),
            version: kind.version(),
            len,
            payload_crc: crc,
        };
        let span = header.span().ok_or_else(|| JournalError::Unrecordable {
            path: self.path.clone(),
            what: format!("a {} frame of {len} bytes", kind.name()),
        })?;
        let encoded = header.encode();
        let pad = (span - FRAME_LEN - len) as usize;
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 2);
        all.push(&encoded);
        all.extend_from_slice(parts);
        all.push(&[0u8; 8][..pad]);
        if span <= GATHER_FRAME && self.sync != SyncPolicy::Always {
            // Kept once grown: the buffer is reused, not faulted in anew for every batch.
            self.pending
                .reserve((GATHER_LIMIT + GATHER_FRAME as usize).saturating_sub(self.pending.len()));
            all.iter().for_each(|p| self.pending.extend_from_slice(p));
            self.end += span;
            if self.pending.len() >= GATHER_LIMIT {
                self.flush()?;
            }
        } else {
            // One write for the whole frame (header, parts, alignment zeros).
            self.flush()?;
            write_all_vectored_at(&self.file, &all, self.end).map_err(|e| self.io(e))?;
            self.start_writeback(self.end, span);
            self.end += span;
        }
        if self.sync == SyncPolicy::Always {
            self.file.sync_data().map_err(|e| self.io(e))?;
        }
        Ok(crc)
    }

    /// Pads so the next frame's payload, after `extra` bytes of it, starts on a page.
    fn align_payload(&mut self, extra: u64) -> Result<(), JournalError> {
        self.pad_to((PAGE - (FRAME_LEN + extra) % PAGE) % PAGE)
    }

    /// Starts writing `len` bytes at `at` out to disk without waiting: the commit's sync
    /// then waits only for what is still in flight. Only where the commit will sync.
    fn start_writeback(&self, at: u64, len: u64) {
        if self.sync != SyncPolicy::Snapshot {
            return;
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on the journal's own descriptor; a failure only means
        // the commit's sync does all the work, as without this call.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                at as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }

    /// Writes the gathered frames.
    fn flush(&mut self) -> Result<(), JournalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let at = self.end - self.pending.len() as u64;
        let written = self.file.write_all_at(&self.pending, at);
        let len = self.pending.len() as u64;
        self.pending.clear();
        written.map_err(|e| self.io(e))?;
        self.start_writeback(at, len);
        Ok(())
    }

    fn cut(&mut self, at: u64) {
        // Gathered frames past the cut are dropped unwritten; before it (none, as
        // snapshots flush when they commit) they would be written first.
        let gathered_from = self.end - self.pending.len() as u64;
        if at >= gathered_from {
            self.pending.truncate((at - gathered_from) as usize);
            self.end = at;
            if self.flush().is_err() {
                self.end = gathered_from;
            }
        } else {
            self.pending.clear();
            self.end = gathered_from;
        }
        // Best effort: a failure leaves an uncommitted tail, which readers ignore and the
        // next open cuts.
        if self.file.set_len(at).is_ok() {
            self.end = at;
        }
    }
}

/// The snapshot being written; [`SnapshotWriter::commit`] makes it exist.
pub struct SnapshotWriter<'j> {
    journal: &'j mut JournalWriter,
    start: u64,
    seq: u64,
    frames: u32,
    chain: u32,
    committed: bool,
    /// Its Base record's snapshot, if it is an increment.
    base: Option<u64>,
    /// Whether another process's records are being written (after a Member).
    in_member: bool,
    /// A full snapshot's regions of the root's memory 0 so far, in the order written.
    spans: Vec<Span>,
}

/// What a commit wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitInfo {
    /// The snapshot's sequence number.
    pub seq: u64,
    /// Where it starts in the file.
    pub offset: u64,
    /// Bytes it takes.
    pub bytes: u64,
}

impl SnapshotWriter<'_> {
    /// The journal's path (for messages).
    pub fn path(&self) -> &Path {
        &self.journal.path
    }

    /// Its sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn counted(&mut self, crc: u32) {
        self.frames += 1;
        self.chain = crc32c::crc32c_append(self.chain, &crc.to_le_bytes());
    }

    fn structured<T: Serialize>(&mut self, kind: Kind, value: &T) -> Result<(), JournalError> {
        let bytes = postcard::to_allocvec(value).map_err(|e| JournalError::Unrecordable {
            path: self.journal.path.clone(),
            what: format!("a {} record: {e}", kind.name()),
        })?;
        let crc = self.journal.append(kind, &[&bytes])?;
        self.counted(crc);
        Ok(())
    }

    /// Records the process.
    pub fn process(&mut self, p: &record::Process) -> Result<(), JournalError> {
        self.structured(Kind::Process, p)
    }

    /// Records one thread.
    pub fn thread(&mut self, t: &record::Thread) -> Result<(), JournalError> {
        self.structured(Kind::Thread, t)
    }

    /// Records the descriptor table.
    pub fn files(&mut self, f: &record::Files) -> Result<(), JournalError> {
        self.structured(Kind::Files, f)
    }

    /// Records a linear memory's shape (its bytes follow as regions).
    pub fn memory(&mut self, m: &record::Memory) -> Result<(), JournalError> {
        self.structured(Kind::Memory, m)
    }

    /// Starts the records of another process of the tree (a descendant of the root, after
    /// its parent): what follows, up to the next member, is its. Written after the root's
    /// records.
    pub fn member(&mut self, m: &record::Member) -> Result<(), JournalError> {
        self.in_member = true;
        self.structured(Kind::Member, m)
    }

    /// Makes this an incremental snapshot: its memory is snapshot `seq`'s (which must be a
    /// complete snapshot of this journal) with this one's regions laid over it. Written
    /// before any region.
    pub fn base(&mut self, seq: u64) -> Result<(), JournalError> {
        self.structured(Kind::Base, &record::Base { seq })?;
        self.base = Some(seq);
        Ok(())
    }

    /// Notes a region written at `frame` (where its frame starts), if it is one of a full
    /// snapshot's root memory 0, for the increments on it.
    fn note(&mut self, index: u32, encoding: Encoding, offset: u64, len: u64, frame: u64) {
        if self.base.is_some() || self.in_member || index != 0 {
            return;
        }
        let raw_at = (encoding == Encoding::Raw).then_some(frame + FRAME_LEN + REGION_HEADER_LEN);
        self.spans.push(Span {
            offset,
            len,
            raw_at,
        });
    }

    /// `bytes` of memory `index` at `offset` XOR the full snapshot's there, as an lz4 block
    /// ([`sparse::encode`]), if this is an increment whose chain's full snapshot this writer wrote, that snapshot
    /// holds those bytes raw or not at all, and the result is at most half their size.
    fn delta(
        &self,
        index: u32,
        offset: u64,
        bytes: &[u8],
        scratch: &mut Scratch,
    ) -> Option<Vec<u8>> {
        let base = self.journal.xor_base.as_ref()?;
        if self.in_member || index != 0 || self.base != Some(base.last) {
            return None;
        }
        let end = offset.checked_add(bytes.len() as u64)?;
        // The full snapshot's bytes, read straight into place (zeros where it holds none),
        // then xor'd with the region's.
        let delta = &mut scratch.delta;
        delta.clear();
        delta.resize(bytes.len(), 0);
        let first = base.spans.partition_point(|s| s.offset + s.len <= offset);
        for s in base.spans[first..].iter().take_while(|s| s.offset < end) {
            let raw_at = s.raw_at?;
            let from = s.offset.max(offset);
            let to = (s.offset + s.len).min(end);
            self.journal
                .file
                .read_exact_at(
                    &mut delta[(from - offset) as usize..(to - offset) as usize],
                    raw_at + (from - s.offset),
                )
                .ok()?;
        }
        // Mostly unchanged bytes make mostly zero words; with fewer than half zero the
        // block could not be half the size, so it is not encoded.
        sparse::xor_into(delta, bytes, &mut scratch.nonzero);
        if scratch.nonzero.len() * 16 > bytes.len() {
            return None;
        }
        // A page changed in a word or two encodes to ~40 bytes.
        let mut packed = Vec::with_capacity(64);
        sparse::encode(delta, &scratch.nonzero, &mut packed);
        (packed.len() * 2 <= bytes.len()).then_some(packed)
    }

    /// Records that `len` bytes of memory `index` at guest `offset` are zeros (an
    /// incremental snapshot's pages that were cleared since its base); nothing is stored.
    pub fn zeros(&mut self, index: u32, offset: u64, len: u64) -> Result<(), JournalError> {
        let head = region_header(index, Encoding::Zero, offset, len);
        let at = self.journal.end;
        let crc = self.journal.append(Kind::Region, &[&head])?;
        self.counted(crc);
        self.note(index, Encoding::Zero, offset, len, at);
        Ok(())
    }

    /// Records `bytes` of memory `index` at guest `offset`, as `encoding` says: raw (on a
    /// page of the file, mappable), or lz4-compressed. With `None` it is compressed when a
    /// sample of it compresses to half or less. Returns the encoding used.
    pub fn region(
        &mut self,
        index: u32,
        offset: u64,
        bytes: &[u8],
        encoding: Option<Encoding>,
    ) -> Result<Encoding, JournalError> {
        let (encoding, mut compressed) = match encoding {
            Some(e) => (e, None),
            None => choose(bytes),
        };
        let data: &[u8] = match encoding {
            Encoding::Raw => bytes,
            Encoding::Lz4 => compressed.get_or_insert_with(|| lz4_flex::block::compress(bytes)),
            Encoding::Zero => {
                if bytes.iter().any(|b| *b != 0) {
                    return Err(JournalError::Unrecordable {
                        path: self.journal.path.clone(),
                        what: "a region of non-zero bytes as zeros".into(),
                    });
                }
                &[]
            }
            Encoding::Xor => {
                return Err(JournalError::Unrecordable {
                    path: self.journal.path.clone(),
                    what: "a region as xor by request (regions() chooses it)".into(),
                })
            }
        };
        let head = region_header(index, encoding, offset, bytes.len() as u64);
        if encoding == Encoding::Raw && bytes.len() as u64 >= MAPPABLE {
            self.journal.align_payload(REGION_HEADER_LEN)?;
        }
        let at = self.journal.end;
        let crc = self.journal.append(Kind::Region, &[&head, data])?;
        self.counted(crc);
        self.note(index, encoding, offset, bytes.len() as u64, at);
        Ok(encoding)
    }

    /// Records several regions of memory `index`, each `(guest offset, bytes)`, as
    /// [`SnapshotWriter::region`] with no encoding given would, one after the other — or, in
    /// an increment whose chain's full snapshot this writer wrote, as the XOR with that
    /// snapshot's bytes ([`Encoding::Xor`]) where that compresses to half or less (pages
    /// changed in a few bytes). Regions stored raw go out from the caller's buffers in one
    /// vectored write with their headers, not gathered: an increment is hundreds of
    /// scattered pages, whose copies into a buffer cost more than their write.
    pub fn regions(&mut self, index: u32, regions: &[(u64, &[u8])]) -> Result<(), JournalError> {
        if self.journal.sync == SyncPolicy::Always {
            for (offset, bytes) in regions {
                self.region(index, *offset, bytes, None)?;
            }
            return Ok(());
        }
        let mut frames: Vec<Frame<'_>> = Vec::with_capacity(regions.len());
        let mut compressed: Vec<Vec<u8>> = Vec::new();
        let mut encodings = Vec::with_capacity(regions.len());
        let mut scratch = Scratch::default();
        // Deltas are tried while they pay often enough: pages rewritten whole (a
        // decompressed image, a sorted array) would cost a read and an xor each for nothing.
        let (mut tries, mut wins) = (0u32, 0u32);
        for (offset, bytes) in regions {
            if tries < DELTA_TRIAL || wins * 4 >= tries {
                tries += 1;
                if let Some(packed) = self.delta(index, *offset, bytes, &mut scratch) {
                    wins += 1;
                    compressed.push(packed);
                    encodings.push(Some(Encoding::Xor));
                    continue;
                }
            }
            if bytes.len() as u64 >= MAPPABLE {
                // Mappable: placed on a page of the file, by itself.
                encodings.push(None);
                continue;
            }
            let (encoding, packed) = choose(bytes);
            if encoding == Encoding::Lz4 {
                compressed.push(packed.unwrap_or_else(|| lz4_flex::block::compress(bytes)));
            }
            encodings.push(Some(encoding));
        }
        let mut packed = compressed.iter();
        for ((offset, bytes), encoding) in regions.iter().zip(&encodings) {
            let Some(encoding) = encoding else {
                self.write_frames(index, &mut frames)?;
                self.region(index, *offset, bytes, None)?;
                continue;
            };
            let data: &[u8] = match encoding {
                Encoding::Lz4 | Encoding::Xor => packed.next().map_or(&[], Vec::as_slice),
                _ => bytes,
            };
            frames.push(Frame::new(
                region_header(index, *encoding, *offset, bytes.len() as u64),
                data,
                (*offset, bytes.len() as u64, *encoding),
            ));
        }
        self.write_frames(index, &mut frames)
    }

    /// Writes `frames` (Region frames) in one vectored write, and empties it.
    fn write_frames(
        &mut self,
        index: u32,
        frames: &mut Vec<Frame<'_>>,
    ) -> Result<(), JournalError> {
        if frames.is_empty() {
            return Ok(());
        }
        // Frames with little data (an xor region is tens of bytes) are copied together
        // into one buffer: a part of the vectored write each would cost more.
        let small = |f: &Frame<'_>| f.data.len() <= GATHER_DATA;
        let mut gathered = Vec::new();
        for f in frames.iter().filter(|f| small(f)) {
            gathered.extend_from_slice(&f.frame);
            gathered.extend_from_slice(&f.head);
            gathered.extend_from_slice(f.data);
            gathered.extend_from_slice(&[0u8; 8][..f.pad]);
        }
        let mut parts: Vec<&[u8]> = Vec::with_capacity(frames.len() * 4);
        let mut span = 0;
        // Where the next small frame's bytes start in `gathered`, and where the run of
        // small frames the last part holds starts (none after a large frame).
        let mut at = 0;
        let mut run: Option<usize> = None;
        for f in frames.iter() {
            if small(f) {
                let end = at + f.span as usize;
                match run {
                    Some(start) => {
                        if let Some(last) = parts.last_mut() {
                            *last = &gathered[start..end];
                        }
                    }
                    None => {
                        parts.push(&gathered[at..end]);
                        run = Some(at);
                    }
                }
                at = end;
            } else {
                parts.extend_from_slice(&[&f.frame, &f.head, f.data, &[0u8; 8][..f.pad]]);
                run = None;
            }
            span += f.span;
        }
        let journal = &mut *self.journal;
        journal.flush()?;
        let start = journal.end;
        write_all_vectored_at(&journal.file, &parts, start).map_err(|e| journal.io(e))?;
        journal.start_writeback(start, span);
        journal.end += span;
        let written: Vec<(u32, (u64, u64, Encoding), u64)> = frames
            .iter()
            .scan(start, |at, f| {
                let here = *at;
                *at += f.span;
                Some((f.crc, f.region, here))
            })
            .collect();
        frames.clear();
        for (crc, (offset, len, encoding), at) in written {
            self.counted(crc);
            self.note(index, encoding, offset, len, at);
        }
        Ok(())
    }

    /// Ends the snapshot: with the default policy its frames are made durable, then the
    /// Commit is written and made durable. The snapshot exists from here on.
    pub fn commit(mut self) -> Result<CommitInfo, JournalError> {
        self.journal.flush()?;
        if self.journal.sync == SyncPolicy::Snapshot {
            self.journal
                .file
                .sync_data()
                .map_err(|e| self.journal.io(e))?;
        }
        let commit = Commit {
            seq: self.seq,
            frames: self.frames,
            chain: self.chain,
        };
        let bytes = postcard::to_allocvec(&commit).map_err(|e| JournalError::Unrecordable {
            path: self.journal.path.clone(),
            what: format!("a commit record: {e}"),
        })?;
        self.journal.append(Kind::Commit, &[&bytes])?;
        self.journal.flush()?;
        if self.journal.sync == SyncPolicy::Snapshot {
            self.journal
                .file
                .sync_data()
                .map_err(|e| self.journal.io(e))?;
        }
        self.committed = true;
        self.journal.next_seq = self.seq + 1;
        self.journal.xor_base = match (self.base, self.journal.xor_base.take()) {
            (None, _) => {
                let spans = std::mem::take(&mut self.spans);
                let apart = spans
                    .windows(2)
                    .all(|w| w[0].offset + w[0].len <= w[1].offset);
                apart.then_some(XorBase {
                    last: self.seq,
                    spans,
                })
            }
            (Some(b), Some(base)) if b == base.last => Some(XorBase {
                last: self.seq,
                ..base
            }),
            _ => None,
        };
        Ok(CommitInfo {
            seq: self.seq,
            offset: self.start,
            bytes: self.journal.end - self.start,
        })
    }
}

impl Drop for SnapshotWriter<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let start = self.start;
            self.journal.cut(start);
        }
    }
}

/// Writes `parts` one after the other at `at`, in as few calls as the kernel allows.
fn write_all_vectored_at(file: &File, parts: &[&[u8]], mut at: u64) -> std::io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    let mut first = 0;
    while first < parts.len() {
        let slices: Vec<std::io::IoSlice<'_>> = parts[first..]
            .iter()
            .take(512)
            .map(|p| std::io::IoSlice::new(p))
            .collect();
        let mut n = match rustix::io::pwritev(file, &slices, at) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        at += n as u64;
        // Past what was written: whole parts, then the rest of a part cut short.
        while n > 0 {
            let p = parts[first];
            if n >= p.len() {
                n -= p.len();
                first += 1;
            } else {
                parts[first] = &p[n..];
                n = 0;
            }
        }
    }
    Ok(())
}

/// A Region frame ready to be written: its header and payload header, and the caller's
/// bytes.
struct Frame<'a> {
    frame: [u8; FRAME_LEN as usize],
    head: [u8; REGION_HEADER_LEN as usize],
    data: &'a [u8],
    pad: usize,
    span: u64,
    crc: u32,
    /// Guest offset, length and encoding of the region.
    region: (u64, u64, Encoding),
}

impl<'a> Frame<'a> {
    fn new(
        head: [u8; REGION_HEADER_LEN as usize],
        data: &'a [u8],
        region: (u64, u64, Encoding),
    ) -> Frame<'a> {
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head), data);
        let header = FrameHeader {
            kind: Kind::Region.number(),
            version: Kind::Region.version(),
            len: REGION_HEADER_LEN + data.len() as u64,
            payload_crc: crc,
        };
        // A region under MAPPABLE bytes: far from any limit.
        let span = header.span().unwrap_or(u64::MAX);
        Frame {
            frame: header.encode(),
            head,
            data,
            pad: (span - FRAME_LEN - header.len) as usize,
            span,
            crc,
            region,
        }
    }
}

/// Buffers [`SnapshotWriter::regions`] reuses from region to region.
#[derive(Default)]
struct Scratch {
    /// The full snapshot's bytes under the region, then their xor with the region's.
    delta: Vec<u8>,
    /// The delta's non-zero eight-byte words.
    nonzero: Vec<u32>,
}

/// A Region payload's header (see the crate doc).
fn region_header(
    index: u32,
    encoding: Encoding,
    offset: u64,
    len: u64,
) -> [u8; REGION_HEADER_LEN as usize] {
    let mut head = [0u8; REGION_HEADER_LEN as usize];
    head[0..4].copy_from_slice(&index.to_le_bytes());
    head[4] = encoding.number();
    head[8..16].copy_from_slice(&offset.to_le_bytes());
    head[16..24].copy_from_slice(&len.to_le_bytes());
    head
}

/// Raw, unless a sample of `bytes` compresses to half or less; with the compressed bytes
/// when the sample was all of them. Regions whose spread-out bytes take most values (random
/// or already compressed data, which lz4 cannot halve) are taken raw without a trial: an
/// increment is hundreds of one-page regions, and a trial each cost more than writing them.
fn choose(bytes: &[u8]) -> (Encoding, Option<Vec<u8>>) {
    const SAMPLE: usize = 64 * 1024;
    if bytes.len() < 4096 {
        return (Encoding::Lz4, None);
    }
    if looks_random(bytes) {
        return (Encoding::Raw, None);
    }
    let sample = &bytes[..bytes.len().min(SAMPLE)];
    let packed = lz4_flex::block::compress(sample);
    if packed.len() * 2 > sample.len() {
        (Encoding::Raw, None)
    } else if sample.len() == bytes.len() {
        (Encoding::Lz4, Some(packed))
    } else {
        (Encoding::Lz4, None)
    }
}

/// Whether 256 bytes taken across `bytes` (at least 256 long) hold more than 128 distinct
/// values: uniform random bytes hold ~162, text and typical heap data far fewer.
fn looks_random(bytes: &[u8]) -> bool {
    const TAKEN: usize = 256;
    let step = bytes.len() / TAKEN;
    let mut seen = [false; 256];
    let mut distinct = 0;
    for i in 0..TAKEN {
        let b = bytes[i * step] as usize;
        distinct += usize::from(!seen[b]);
        seen[b] = true;
    }
    distinct > 128
}

/// Makes a new file's directory entry durable.
/// Takes the journal's lock for as long as `file` is open: one run writes a journal at a
/// time (a second one, or a compaction, would lose the first one's records).
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => JournalError::InUse {
            path: path.to_owned(),
        },
        std::fs::TryLockError::Error(e) => JournalError::io(path, e),
    })
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// What [`compact`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// The snapshot kept (the latest complete one), if any.
    pub kept: Option<u64>,
    /// Every snapshot kept, oldest first: the latest and those its memory builds on.
    pub chain: Vec<u64>,
    /// Bytes before and after.
    pub before: u64,
    /// Bytes after.
    pub after: u64,
}

impl JournalWriter {
    /// Pads with a Padding frame so the journal's end is `at` modulo [`PAGE`] (what copying
    /// a snapshot from that place needs to keep its raw regions on pages).
    fn pad_to(&mut self, at: u64) -> Result<(), JournalError> {
        let mut gap = (at % PAGE + PAGE - self.end % PAGE) % PAGE;
        if gap == 0 {
            return Ok(());
        }
        if gap < FRAME_LEN {
            gap += PAGE;
        }
        let zeros = vec![0u8; (gap - FRAME_LEN) as usize];
        self.append(Kind::Padding, &[&zeros])?;
        Ok(())
    }
}

/// Rewrites the journal at `path` to hold only its latest complete snapshot — with the
/// snapshots its memory builds on, if it is incremental — which is all a restore needs. The
/// whole journal is verified first (nothing is compacted out of damaged bytes); the copy
/// goes to a file beside it, is made durable, and replaces the journal in one rename — a
/// crash at any moment leaves either the old journal or the new one, whole (and at worst a
/// stray `.compact` file, replaced by the next compaction).
pub fn compact(path: &Path) -> Result<Compacted, JournalError> {
    // Held until the new journal has replaced the old: no run writes meanwhile.
    let held = File::open(path).map_err(|e| JournalError::io(path, e))?;
    lock(&held, path)?;
    let journal = Journal::open(path, None, Verify::Full)?;
    let before = journal.len();
    let Some(last) = journal.snapshots().last().cloned() else {
        return Ok(Compacted {
            kept: None,
            chain: Vec::new(),
            before,
            after: before,
        });
    };
    let chain = journal.chain(&last)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".compact");
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut out = JournalWriter::create(&tmp, journal.module(), SyncPolicy::Never)?;
    let io_in = |e| JournalError::io(path, e);
    let mut buf = vec![0u8; 1 << 20];
    for kept in &chain {
        out.pad_to(kept.start)?;
        out.flush()?;
        // The snapshot's frames, byte for byte: checksums cover no file offsets, and the
        // padding above keeps every raw region on a page.
        let mut at = kept.start;
        while at < kept.end {
            let n = ((kept.end - at) as usize).min(buf.len());
            journal
                .file()
                .read_exact_at(&mut buf[..n], at)
                .map_err(io_in)?;
            out.file
                .write_all_at(&buf[..n], out.end)
                .map_err(|e| out.io(e))?;
            out.end += n as u64;
            at += n as u64;
        }
    }
    out.file.sync_all().map_err(|e| out.io(e))?;
    let after = out.end;
    drop(out);
    // The copy must read back as these snapshots before it replaces anything.
    let seqs: Vec<u64> = chain.iter().map(|s| s.seq).collect();
    let check = Journal::open(&tmp, Some(journal.module()), Verify::Full)?;
    let back: Vec<u64> = check.snapshots().iter().map(|s| s.seq).collect();
    if back != seqs || check.latest().is_err() {
        return Err(JournalError::Unrecordable {
            path: tmp,
            what: "the compacted copy (it does not read back as the kept snapshots)".into(),
        });
    }
    std::fs::rename(&tmp, path).map_err(io_in)?;
    sync_dir(path).map_err(io_in)?;
    drop(held);
    Ok(Compacted {
        kept: Some(last.seq),
        chain: seqs,
        before,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal whose snapshot holds an xor region where no full snapshot is under it:
    /// `member` puts it among another process's records of an increment, else in a full
    /// snapshot's root.
    fn misplaced_xor(path: &Path, member: bool) {
        let mut w = JournalWriter::create(path, [1; 32], SyncPolicy::Never).unwrap();
        let page = vec![5u8; PAGE as usize];
        let mut s = w.snapshot("explicit", 0, 0).unwrap();
        s.region(0, 0, &page, None).unwrap();
        s.commit().unwrap();
        let mut s = w.snapshot("explicit", 0, 0).unwrap();
        if member {
            s.base(1).unwrap();
            s.member(&record::Member {
                pid: 2,
                parent: 1,
                module: [1; 32],
                path: String::new(),
                ended: None,
            })
            .unwrap();
        }
        let packed = lz4_flex::block::compress(&page);
        let head = region_header(0, Encoding::Xor, 0, PAGE);
        let crc = s.journal.append(Kind::Region, &[&head, &packed]).unwrap();
        s.counted(crc);
        s.commit().unwrap();
    }

    #[test]
    fn an_xor_region_with_no_full_snapshot_under_it_is_named_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        for member in [false, true] {
            let path = dir.path().join(format!("j{member}"));
            misplaced_xor(&path, member);
            let j = Journal::open(&path, None, Verify::Full).unwrap();
            let err = j.latest().unwrap_err();
            assert!(
                matches!(err, JournalError::Corrupt { .. })
                    && err
                        .to_string()
                        .contains("an xor region outside an increment's root"),
                "{err}"
            );
        }
    }

    #[test]
    fn an_xor_region_over_a_full_snapshot_whose_regions_do_not_ascend_reads_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let noise: Vec<u8> = (0..PAGE as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        // Every order of five regions under an xor region over the middle one.
        let mut orders = vec![vec![]];
        for n in 0..5u64 {
            orders = orders
                .into_iter()
                .flat_map(|o: Vec<u64>| {
                    (0..=o.len()).map(move |i| {
                        let mut o = o.clone();
                        o.insert(i, n);
                        o
                    })
                })
                .collect();
        }
        assert_eq!(orders.len(), 120);
        for order in orders {
            let mut w = JournalWriter::create(&path, [1; 32], SyncPolicy::Never).unwrap();
            let mut s = w.snapshot("explicit", 0, 0).unwrap();
            for p in &order {
                s.region(0, p * PAGE, &noise, Some(Encoding::Raw)).unwrap();
            }
            s.commit().unwrap();
            let mut s = w.snapshot("explicit", 0, 0).unwrap();
            s.base(1).unwrap();
            let packed = lz4_flex::block::compress(&noise);
            let head = region_header(0, Encoding::Xor, 2 * PAGE, PAGE);
            let crc = s.journal.append(Kind::Region, &[&head, &packed]).unwrap();
            s.counted(crc);
            s.commit().unwrap();
            drop(w);
            let j = Journal::open(&path, None, Verify::Full).unwrap();
            let layers = j.layers(&j.snapshots()[1]).unwrap();
            let r = layers[1].root.regions[0];
            let mut out = vec![0u8; r.len as usize];
            let _ = j.read_layered(&r, &layers[0].root, &mut out);
        }
    }

    #[test]
    fn a_region_is_not_written_as_xor_by_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            JournalWriter::create(&dir.path().join("j"), [1; 32], SyncPolicy::Never).unwrap();
        let mut s = w.snapshot("explicit", 0, 0).unwrap();
        let err = s.region(0, 0, &[1; 64], Some(Encoding::Xor)).unwrap_err();
        assert!(matches!(err, JournalError::Unrecordable { .. }), "{err}");
    }
}
