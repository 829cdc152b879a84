//! Reading a journal: checking it frame by frame, finding its complete snapshots, telling a
//! torn tail from damage in the middle, and decoding a snapshot.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::JournalError;
use crate::frame::{
    FileHeader, FrameHeader, HeaderError, Kind, FRAME_LEN, HEADER_LEN, REGION_HEADER_LEN,
};
use crate::record::{self, Begin, Commit, Encoding};

/// How much of a journal is checked when it is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Every byte: frame headers and every payload's checksum.
    Full,
    /// Frame headers, the structure of every snapshot and the structured records; the bytes
    /// of memory regions are checked when they are read ([`Journal::read_region`]), not when
    /// they are mapped. What a restore uses: its cost does not grow with memory size.
    Frames,
}

/// What follows the last complete snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Nothing: the journal ends with a complete snapshot (or holds none and ends after its
    /// header).
    Clean,
    /// Bytes that are not part of a complete snapshot: an unfinished snapshot or a torn
    /// write. Readers ignore them; a writer cuts them off.
    Dropped {
        /// Where they start.
        offset: u64,
        /// How many.
        bytes: u64,
        /// What was found there.
        reason: String,
    },
}

/// Where one frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FrameRef {
    offset: u64,
    kind: Kind,
    len: u64,
    crc: u32,
}

impl FrameRef {
    fn payload(&self) -> u64 {
        self.offset + FRAME_LEN
    }
}

/// One complete snapshot's place in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotIndex {
    /// Its sequence number.
    pub seq: u64,
    /// Why and when it was taken.
    pub begin: Begin,
    /// Offset of its Begin frame.
    pub start: u64,
    /// Offset just past its Commit frame.
    pub end: u64,
    frames: Vec<FrameRef>,
}

impl SnapshotIndex {
    /// Frames of each kind it holds (padding and Commit excluded).
    pub fn count(&self, kind: Kind) -> usize {
        self.frames.iter().filter(|f| f.kind == kind).count()
    }
}

/// Where a region's bytes are in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionRef {
    /// Which memory.
    pub index: u32,
    /// Guest address of its first byte.
    pub offset: u64,
    /// Bytes of memory it fills.
    pub len: u64,
    /// How they are stored.
    pub encoding: Encoding,
    /// File offset of the stored bytes (page-aligned for [`Encoding::Raw`]).
    pub data_offset: u64,
    /// Bytes stored in the file.
    pub stored_len: u64,
    frame: FrameRef,
}

/// One process of a snapshot, decoded (memory bytes stay in the file: see
/// [`Journal::read_region`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessImage {
    /// The process.
    pub process: Option<record::Process>,
    /// Every thread.
    pub threads: Vec<record::Thread>,
    /// Descriptors and working directory.
    pub files: Option<record::Files>,
    /// Linear memories.
    pub memories: Vec<record::Memory>,
    /// Their bytes.
    pub regions: Vec<RegionRef>,
}

/// A snapshot, decoded: the process the journal is of, and the other processes of its tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Why and when.
    pub begin: Begin,
    /// The snapshot whose memory this one's regions are laid over (an incremental
    /// snapshot; see [`Journal::layers`]); `None`: the regions are the whole memory. Only
    /// the root's memory is incremental: a member's regions are always its whole memory.
    pub base: Option<u64>,
    /// The root process: the one the journal is of.
    pub root: ProcessImage,
    /// Its descendants, each after its parent; a zombie's image is empty.
    pub members: Vec<(record::Member, ProcessImage)>,
}

/// A journal opened for reading, its structure checked.
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    version: u32,
    module: [u8; 32],
    snapshots: Vec<SnapshotIndex>,
    tail: Tail,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("snapshots", &self.snapshots.len())
            .field("tail", &self.tail)
            .finish()
    }
}

/// Damage found while walking the frames.
struct Damage {
    offset: u64,
    reason: String,
    /// Where intact frames could start again: past a frame whose header was intact (its
    /// length can be trusted), else just past the damaged header.
    resume: u64,
}

/// A snapshot being read: its Begin, the frames so far, their CRC chain.
struct Open {
    begin: Begin,
    start: u64,
    frames: Vec<FrameRef>,
    chain: u32,
}

impl Journal {
    /// Opens the journal at `path`; with `module`, refuses one written for another module.
    pub fn open(
        path: &Path,
        module: Option<[u8; 32]>,
        verify: Verify,
    ) -> Result<Journal, JournalError> {
        Journal::open_watched(path, module, verify, &mut |_, _| {})
    }

    /// Like [`Journal::open`], telling `progress` how far the walk over the frames has come
    /// (bytes checked, bytes in the file) after each frame: for a progress bar.
    pub fn open_watched(
        path: &Path,
        module: Option<[u8; 32]>,
        verify: Verify,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Journal, JournalError> {
        let io = |e| JournalError::io(path, e);
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut head = [0u8; HEADER_LEN as usize];
        let got = read_up_to(&file, &mut head, 0).map_err(io)?;
        let header = FileHeader::decode(&head[..got]).map_err(|e| match e {
            HeaderError::NotAJournal => JournalError::NotAJournal {
                path: path.to_owned(),
            },
            HeaderError::Corrupt => JournalError::HeaderCorrupt {
                path: path.to_owned(),
            },
            HeaderError::Newer(found) => JournalError::NewerFormat {
                path: path.to_owned(),
                found,
                supported: crate::FORMAT_VERSION,
            },
        })?;
        if let Some(expected) = module {
            if expected != header.module {
                return Err(JournalError::OtherModule {
                    path: path.to_owned(),
                    expected: hex(&expected),
                    found: hex(&header.module),
                });
            }
        }
        let mut journal = Journal {
            path: path.to_owned(),
            file,
            len,
            version: header.version,
            module: header.module,
            snapshots: Vec::new(),
            tail: Tail::Clean,
        };
        journal.walk(verify, progress)?;
        Ok(journal)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file (a restore maps raw regions from it).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds no complete snapshot.
    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty()
    }

    /// The format version the file was written in.
    pub fn format_version(&self) -> u32 {
        self.version
    }

    /// The module hash the journal is of.
    pub fn module(&self) -> [u8; 32] {
        self.module
    }

    /// The complete snapshots, oldest first.
    pub fn snapshots(&self) -> &[SnapshotIndex] {
        &self.snapshots
    }

    /// What follows the last complete snapshot.
    pub fn tail(&self) -> &Tail {
        &self.tail
    }

    /// Bytes up to the end of the last complete snapshot: what a writer keeps.
    pub fn recovered_len(&self) -> u64 {
        self.snapshots.last().map_or(HEADER_LEN, |s| s.end)
    }

    /// The newest complete snapshot, decoded.
    pub fn latest(&self) -> Result<Snapshot, JournalError> {
        let index = self
            .snapshots
            .last()
            .ok_or_else(|| JournalError::NoSnapshot {
                path: self.path.clone(),
            })?;
        self.snapshot(index)
    }

    /// Decodes the snapshot at `index`.
    pub fn snapshot(&self, index: &SnapshotIndex) -> Result<Snapshot, JournalError> {
        let mut s = Snapshot {
            begin: index.begin.clone(),
            base: None,
            root: ProcessImage::default(),
            members: Vec::new(),
        };
        for f in &index.frames {
            if f.kind == Kind::Member {
                s.members.push((self.decode(f)?, ProcessImage::default()));
                continue;
            }
            let in_member = !s.members.is_empty();
            let image = match s.members.last_mut() {
                Some((_, image)) => image,
                None => &mut s.root,
            };
            match f.kind {
                Kind::Padding | Kind::Begin | Kind::Commit | Kind::Member => {}
                Kind::Base if in_member => {
                    return Err(JournalError::corrupt(
                        &self.path,
                        f.offset,
                        "a base record among another process's records",
                    ))
                }
                Kind::Base => s.base = Some(self.decode::<record::Base>(f)?.seq),
                Kind::Process => image.process = Some(self.decode(f)?),
                Kind::Thread => image.threads.push(self.decode(f)?),
                Kind::Files => image.files = Some(self.decode(f)?),
                Kind::Memory => image.memories.push(self.decode(f)?),
                Kind::Region => {
                    let r = self.region_ref(f)?;
                    if r.encoding == Encoding::Xor && (in_member || s.base.is_none()) {
                        return Err(JournalError::corrupt(
                            &self.path,
                            f.offset,
                            "an xor region outside an increment's root process (it has no \
                             full snapshot to be read over)",
                        ));
                    }
                    image.regions.push(r);
                }
            }
        }
        Ok(s)
    }

    /// The snapshots `index`'s memory is made of, oldest first: itself if it is a full
    /// snapshot, else the full snapshot its chain of bases starts at, each increment, and
    /// itself last. A base that is missing (or not older) is a named error.
    pub fn chain(&self, index: &SnapshotIndex) -> Result<Vec<SnapshotIndex>, JournalError> {
        let mut chain = vec![index.clone()];
        loop {
            let newest = chain.last().expect("starts with one");
            let Some(f) = newest.frames.iter().find(|f| f.kind == Kind::Base) else {
                break;
            };
            let base = self.decode::<record::Base>(f)?.seq;
            let found = (base < newest.seq)
                .then(|| self.snapshots.iter().find(|s| s.seq == base))
                .flatten();
            let Some(found) = found else {
                return Err(JournalError::MissingBase {
                    path: self.path.clone(),
                    seq: newest.seq,
                    base,
                });
            };
            chain.push(found.clone());
        }
        chain.reverse();
        Ok(chain)
    }

    /// [`Journal::chain`], decoded: lay their regions over each other in this order to get
    /// the memory of `index`.
    pub fn layers(&self, index: &SnapshotIndex) -> Result<Vec<Snapshot>, JournalError> {
        self.chain(index)?
            .iter()
            .map(|s| self.snapshot(s))
            .collect()
    }

    /// Reads region `r` of a snapshot into `out` (exactly `r.len` bytes, checked) as the
    /// memory holds them. `full` is the root's image in the first of that snapshot's
    /// [`Journal::layers`] (a full snapshot's own). An [`Encoding::Xor`] region's stored
    /// delta is applied to `full`'s bytes there; any other region reads as
    /// [`Journal::read_region`] reads it.
    pub fn read_layered(
        &self,
        r: &RegionRef,
        full: &ProcessImage,
        out: &mut [u8],
    ) -> Result<(), JournalError> {
        if r.encoding != Encoding::Xor {
            return self.read_region(r, out);
        }
        let corrupt = |why: &str| JournalError::corrupt(&self.path, r.frame.offset, why);
        self.read_region(r, out)?;
        let end = r.offset + r.len;
        // A full snapshot's regions ascend and do not overlap (the writer makes them so).
        let first = full.regions.partition_point(|b| {
            b.index < r.index || (b.index == r.index && b.offset + b.len <= r.offset)
        });
        let mut scratch = Vec::new();
        for b in full.regions[first..]
            .iter()
            .take_while(|b| b.index == r.index && b.offset < end)
        {
            let from = b.offset.max(r.offset);
            let to = (b.offset + b.len).min(end);
            if to <= from {
                // Only where the full snapshot's regions do not ascend (a damaged journal).
                continue;
            }
            let mine = &mut out[(from - r.offset) as usize..(to - r.offset) as usize];
            match b.encoding {
                Encoding::Zero => continue,
                Encoding::Raw => {
                    scratch.resize(mine.len(), 0);
                    self.read_exact(&mut scratch, b.data_offset + (from - b.offset))?;
                }
                Encoding::Lz4 => {
                    scratch.resize(b.len as usize, 0);
                    self.read_region(b, &mut scratch)?;
                    scratch.drain(..(from - b.offset) as usize);
                    scratch.truncate(mine.len());
                }
                Encoding::Xor => {
                    return Err(corrupt("an xor region over a full snapshot's xor region"))
                }
            }
            mine.iter_mut().zip(&scratch).for_each(|(m, b)| *m ^= b);
        }
        Ok(())
    }

    /// Reads region `r`'s bytes into `out` (exactly `r.len` bytes), checking them; of an
    /// [`Encoding::Xor`] region, the delta ([`Journal::read_layered`] applies it).
    pub fn read_region(&self, r: &RegionRef, out: &mut [u8]) -> Result<(), JournalError> {
        let corrupt = |why: &str| JournalError::corrupt(&self.path, r.frame.offset, why);
        if out.len() as u64 != r.len {
            return Err(JournalError::Unrecordable {
                path: self.path.clone(),
                what: format!("a read of a {}-byte region into {} bytes", r.len, out.len()),
            });
        }
        let mut head = [0u8; REGION_HEADER_LEN as usize];
        self.read_exact(&mut head, r.frame.payload())?;
        let head_crc = crc32c::crc32c(&head);
        match r.encoding {
            Encoding::Raw => {
                self.read_exact(out, r.data_offset)?;
                if crc32c::crc32c_append(head_crc, out) != r.frame.crc {
                    return Err(corrupt("the region's bytes fail their checksum"));
                }
            }
            Encoding::Lz4 | Encoding::Xor => {
                let mut stored = vec![0u8; r.stored_len as usize];
                self.read_exact(&mut stored, r.data_offset)?;
                if crc32c::crc32c_append(head_crc, &stored) != r.frame.crc {
                    return Err(corrupt("the region's bytes fail their checksum"));
                }
                let n = lz4_flex::block::decompress_into(&stored, out)
                    .map_err(|e| corrupt(&format!("the region does not decompress: {e}")))?;
                if n != out.len() {
                    return Err(corrupt("the region decompresses to another length"));
                }
            }
            Encoding::Zero => {
                if head_crc != r.frame.crc {
                    return Err(corrupt("the region fails its checksum"));
                }
                out.fill(0);
            }
        }
        Ok(())
    }

    fn read_exact(&self, buf: &mut [u8], at: u64) -> Result<(), JournalError> {
        self.file
            .read_exact_at(buf, at)
            .map_err(|e| JournalError::io(&self.path, e))
    }

    fn payload(&self, f: &FrameRef) -> Result<Vec<u8>, JournalError> {
        // `len` was checked against the file's size when the frame was walked.
        let mut buf = vec![0u8; f.len as usize];
        self.read_exact(&mut buf, f.payload())?;
        if crc32c::crc32c(&buf) != f.crc {
            return Err(JournalError::corrupt(
                &self.path,
                f.offset,
                format!("the {} record fails its checksum", f.kind.name()),
            ));
        }
        Ok(buf)
    }

    fn decode<T: DeserializeOwned>(&self, f: &FrameRef) -> Result<T, JournalError> {
        let bytes = self.payload(f)?;
        postcard::from_bytes(&bytes).map_err(|e| {
            JournalError::corrupt(
                &self.path,
                f.offset,
                format!("the {} record does not decode: {e}", f.kind.name()),
            )
        })
    }

    fn region_ref(&self, f: &FrameRef) -> Result<RegionRef, JournalError> {
        let corrupt = |why: &str| JournalError::corrupt(&self.path, f.offset, why);
        if f.len < REGION_HEADER_LEN {
            return Err(corrupt("the region record is shorter than its header"));
        }
        let mut head = [0u8; REGION_HEADER_LEN as usize];
        self.read_exact(&mut head, f.payload())?;
        let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap_or_default());
        let encoding =
            Encoding::from_number(head[4]).ok_or_else(|| corrupt("unknown region encoding"))?;
        let r = RegionRef {
            index: u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
            offset: u64_at(8),
            len: u64_at(16),
            encoding,
            data_offset: f.payload() + REGION_HEADER_LEN,
            stored_len: f.len - REGION_HEADER_LEN,
            frame: *f,
        };
        if r.offset.checked_add(r.len).is_none() {
            return Err(corrupt("the region's range overflows"));
        }
        if encoding == Encoding::Zero && r.stored_len != 0 {
            return Err(corrupt("a zero region stores bytes"));
        }
        if encoding == Encoding::Raw && r.stored_len != r.len {
            return Err(corrupt("a raw region's length disagrees with its bytes"));
        }
        if matches!(encoding, Encoding::Lz4 | Encoding::Xor)
            && r.len > r.stored_len.saturating_mul(255).saturating_add(16)
        {
            // lz4 cannot expand more than ~255x: a larger claim is a lie that would make a
            // reader allocate what the file never held.
            return Err(corrupt("an lz4 region claims more bytes than it can hold"));
        }
        Ok(r)
    }

    /// Walks every frame, collecting complete snapshots, until the end of the file or the
    /// first damage; then decides whether the damage is a torn tail or corruption.
    fn walk(
        &mut self,
        verify: Verify,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), JournalError> {
        let mut pos = HEADER_LEN;
        let mut open: Option<Open> = None;
        let damage = loop {
            if pos == self.len {
                break None;
            }
            match self.frame_at(pos, verify)? {
                Err(d) => break Some(d),
                Ok(f) => {
                    let span = FRAME_LEN + crate::frame::padded(f.len).unwrap_or(u64::MAX);
                    self.step(&mut open, f)?;
                    pos += span;
                    progress(pos, self.len);
                }
            }
        };
        let kept = self.recovered_len();
        self.tail = match damage {
            None if open.is_none() => Tail::Clean,
            None => Tail::Dropped {
                offset: kept,
                bytes: self.len - kept,
                reason: "an unfinished snapshot (no commit)".into(),
            },
            Some(d) => {
                // Frames of an unfinished snapshot may reach the disk out of order (nothing
                // orders them before its commit), so intact frames after damage are still a
                // torn tail — unless a commit follows: then a snapshot that exists is behind
                // the damage.
                if let Some(next) = self.find_commit(d.resume)? {
                    return Err(JournalError::corrupt(
                        &self.path,
                        d.offset,
                        format!("{} (a snapshot's commit follows at byte {next})", d.reason),
                    ));
                }
                Tail::Dropped {
                    offset: kept,
                    bytes: self.len - kept,
                    reason: format!("{} at byte {}", d.reason, d.offset),
                }
            }
        };
        Ok(())
    }

    /// The frame at `pos`, or the damage found there. Errors only for I/O and for intact
    /// frames this build cannot read (unknown kinds, newer layouts).
    fn frame_at(&self, pos: u64, verify: Verify) -> Result<Result<FrameRef, Damage>, JournalError> {
        let damaged = |reason: &str, resume: u64| {
            Ok(Err(Damage {
                offset: pos,
                reason: reason.into(),
                resume,
            }))
        };
        let mut hb = [0u8; FRAME_LEN as usize];
        let got =
            read_up_to(&self.file, &mut hb, pos).map_err(|e| JournalError::io(&self.path, e))?;
        if got < FRAME_LEN as usize {
            return damaged("a frame header cut short", pos + 8);
        }
        let Some(h) = FrameHeader::decode(&hb) else {
            return damaged("a frame header that fails its checksum", pos + 8);
        };
        let Some(end) = h.span().and_then(|s| pos.checked_add(s)) else {
            return damaged("a frame longer than any file", self.len);
        };
        if end > self.len {
            // The header is intact, so its length is right: the rest was never written.
            return damaged("a frame cut short by the end of the file", self.len);
        }
        let Some(kind) = Kind::from_number(h.kind) else {
            return Err(JournalError::UnknownKind {
                path: self.path.clone(),
                offset: pos,
                kind: h.kind,
            });
        };
        if h.version > kind.version() || h.version == 0 {
            return Err(JournalError::NewerRecord {
                path: self.path.clone(),
                offset: pos,
                kind: kind.name(),
                found: h.version,
                supported: kind.version(),
            });
        }
        let f = FrameRef {
            offset: pos,
            kind,
            len: h.len,
            crc: h.payload_crc,
        };
        let check = verify == Verify::Full || kind != Kind::Region;
        if check && self.payload_crc(&f)? != h.payload_crc {
            return damaged("a payload that fails its checksum", end);
        }
        // The alignment bytes after the payload are no checksum's: they must be zeros.
        let mut pad = [0u8; 8];
        let pad_len = (end - f.payload() - f.len) as usize;
        self.read_exact(&mut pad[..pad_len], f.payload() + f.len)?;
        if pad[..pad_len].iter().any(|b| *b != 0) {
            return damaged("alignment bytes that are not zero", end);
        }
        Ok(Ok(f))
    }

    fn payload_crc(&self, f: &FrameRef) -> Result<u32, JournalError> {
        const CHUNK: u64 = 1 << 20;
        let mut buf = vec![0u8; f.len.min(CHUNK) as usize];
        let (mut crc, mut done) = (0u32, 0u64);
        while done < f.len {
            let n = (f.len - done).min(CHUNK) as usize;
            self.read_exact(&mut buf[..n], f.payload() + done)?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            done += n as u64;
        }
        Ok(crc)
    }

    /// Folds frame `f` into the snapshot structure.
    fn step(&mut self, open: &mut Option<Open>, f: FrameRef) -> Result<(), JournalError> {
        let corrupt = |why: String| JournalError::corrupt(&self.path, f.offset, why);
        match f.kind {
            Kind::Padding => {}
            Kind::Begin => {
                // An unfinished snapshot followed by a new one: the first never existed.
                let begin: Begin = self.decode(&f)?;
                *open = Some(Open {
                    begin,
                    start: f.offset,
                    frames: vec![f],
                    chain: crc32c::crc32c_append(0, &f.crc.to_le_bytes()),
                });
            }
            Kind::Commit => {
                let commit: Commit = self.decode(&f)?;
                let Some(o) = open.take() else {
                    return Err(corrupt("a commit outside any snapshot".into()));
                };
                if commit.seq != o.begin.seq
                    || commit.frames as usize != o.frames.len()
                    || commit.chain != o.chain
                {
                    return Err(corrupt(format!(
                        "the commit of snapshot {} does not match its frames",
                        o.begin.seq
                    )));
                }
                if let Some(last) = self.snapshots.last() {
                    if commit.seq <= last.seq {
                        return Err(corrupt(format!(
                            "snapshot {} follows snapshot {}",
                            commit.seq, last.seq
                        )));
                    }
                }
                self.snapshots.push(SnapshotIndex {
                    seq: o.begin.seq,
                    begin: o.begin,
                    start: o.start,
                    end: f.offset + FRAME_LEN + crate::frame::padded(f.len).unwrap_or(0),
                    frames: o.frames,
                });
            }
            _ => {
                let Some(o) = open.as_mut() else {
                    return Err(corrupt(format!(
                        "a {} record outside any snapshot",
                        f.kind.name()
                    )));
                };
                o.frames.push(f);
                o.chain = crc32c::crc32c_append(o.chain, &f.crc.to_le_bytes());
            }
        }
        Ok(())
    }

    /// The first offset at or after `from` (on the 8-byte grid) holding an intact Commit
    /// frame header.
    fn find_commit(&self, from: u64) -> Result<Option<u64>, JournalError> {
        const CHUNK: usize = 1 << 20;
        let mut at = (from + 7) & !7;
        let mut buf = vec![0u8; CHUNK + FRAME_LEN as usize];
        while at + FRAME_LEN <= self.len {
            let got = read_up_to(&self.file, &mut buf, at)
                .map_err(|e| JournalError::io(&self.path, e))?;
            let mut i = 0usize;
            while i + FRAME_LEN as usize <= got {
                let commit =
                    FrameHeader::decode(&buf[i..]).is_some_and(|h| h.kind == Kind::Commit.number());
                if commit {
                    return Ok(Some(at + i as u64));
                }
                i += 8;
            }
            if got < buf.len() {
                break;
            }
            at += CHUNK as u64;
        }
        Ok(None)
    }
}

/// Reads as much of `buf` as the file has at `at`.
fn read_up_to(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
