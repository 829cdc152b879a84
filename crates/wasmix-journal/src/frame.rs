//! The bytes of the file header and of a frame: encoding, and checking what was read.

/// The journal format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Bytes of the file header.
pub const HEADER_LEN: u64 = 64;

/// Bytes of a frame header.
pub(crate) const FRAME_LEN: u64 = 24;

/// The page size raw memory regions are aligned to in the file.
pub const PAGE: u64 = 4096;

/// Raw regions this long or longer start on a page of the file, so a restore can map them;
/// shorter ones are copied (a mapping each would cost more than it saves, and increments
/// are made of many small ones), so they are written where they fall.
pub const MAPPABLE: u64 = 64 << 10;

/// Bytes of a Region payload's own header, before the memory bytes.
pub(crate) const REGION_HEADER_LEN: u64 = 32;

const MAGIC: &[u8; 8] = b"WASMIXJ\n";
const SYNC: u32 = 0x574A_5852;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Zeros that align what follows; skipped.
    Padding,
    /// A snapshot starts.
    Begin,
    /// The process: pid, args, env, signals, timers.
    Process,
    /// One thread's captured state.
    Thread,
    /// The descriptor table.
    Files,
    /// A linear memory's size and type.
    Memory,
    /// Bytes of a linear memory.
    Region,
    /// The snapshot is complete.
    Commit,
    /// The snapshot's memory is an earlier snapshot's with its own regions laid over it
    /// (an incremental snapshot).
    Base,
    /// The records that follow, up to the next Member, are another process of the tree.
    Member,
}

impl Kind {
    /// Every kind, by number.
    pub const ALL: [Kind; 10] = [
        Kind::Padding,
        Kind::Begin,
        Kind::Process,
        Kind::Thread,
        Kind::Files,
        Kind::Memory,
        Kind::Region,
        Kind::Commit,
        Kind::Base,
        Kind::Member,
    ];

    /// Its number in a frame.
    pub fn number(self) -> u16 {
        Kind::ALL.iter().position(|k| *k == self).unwrap_or(0) as u16
    }

    /// The kind numbered `n`, if this build knows it.
    pub fn from_number(n: u16) -> Option<Kind> {
        Kind::ALL.get(usize::from(n)).copied()
    }

    /// The newest payload layout of this kind this build reads (and the one it writes).
    pub fn version(self) -> u16 {
        match self {
            // 2: a descriptor can be one end of a two-way pipe (`record::Node::DuplexPipe`);
            // 3: a socket (`record::Node::Socket`); 4: a description another process of
            // the tree recorded (`record::Node::Inherited`). Older records read the same,
            // and a reader of an older version refuses a newer one by name.
            Kind::Files => 4,
            // 2: encoding 3, an increment's bytes XOR its full snapshot's
            // (`record::Encoding::Xor`).
            Kind::Region => 2,
            _ => 1,
        }
    }

    /// Its name, for messages and tools.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Padding => "padding",
            Kind::Begin => "begin",
            Kind::Process => "process",
            Kind::Thread => "thread",
            Kind::Files => "files",
            Kind::Memory => "memory",
            Kind::Region => "region",
            Kind::Commit => "commit",
            Kind::Base => "base",
            Kind::Member => "member",
        }
    }
}

/// The file header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub version: u32,
    pub module: [u8; 32],
}

/// Why a file header was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeaderError {
    NotAJournal,
    Corrupt,
    Newer(u32),
}

impl FileHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[16..48].copy_from_slice(&self.module);
        let crc = crc32c::crc32c(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<FileHeader, HeaderError> {
        if bytes.len() < HEADER_LEN as usize || &bytes[0..8] != MAGIC {
            return Err(HeaderError::NotAJournal);
        }
        if crc32c::crc32c(&bytes[..60]) != le32(&bytes[60..64]) {
            return Err(HeaderError::Corrupt);
        }
        let version = le32(&bytes[8..12]);
        if version > FORMAT_VERSION || version == 0 {
            return Err(HeaderError::Newer(version));
        }
        let mut module = [0u8; 32];
        module.copy_from_slice(&bytes[16..48]);
        Ok(FileHeader { version, module })
    }
}

/// A frame header as read from the file, before its payload is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub kind: u16,
    pub version: u16,
    pub len: u64,
    pub payload_crc: u32,
}

impl FrameHeader {
    #[cfg(test)]
    pub fn new(kind: Kind, payload: &[u8]) -> FrameHeader {
        FrameHeader {
            kind: kind.number(),
            version: kind.version(),
            len: payload.len() as u64,
            payload_crc: crc32c::crc32c(payload),
        }
    }

    pub fn encode(&self) -> [u8; FRAME_LEN as usize] {
        let mut out = [0u8; FRAME_LEN as usize];
        out[0..4].copy_from_slice(&SYNC.to_le_bytes());
        out[4..6].copy_from_slice(&self.kind.to_le_bytes());
        out[6..8].copy_from_slice(&self.version.to_le_bytes());
        out[8..16].copy_from_slice(&self.len.to_le_bytes());
        out[16..20].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32c::crc32c(&out[..20]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// The header in `bytes`, if they hold an intact one (sync word and its own checksum).
    pub fn decode(bytes: &[u8]) -> Option<FrameHeader> {
        if bytes.len() < FRAME_LEN as usize || le32(&bytes[0..4]) != SYNC {
            return None;
        }
        if crc32c::crc32c(&bytes[..20]) != le32(&bytes[20..24]) {
            return None;
        }
        Some(FrameHeader {
            kind: u16::from_le_bytes([bytes[4], bytes[5]]),
            version: u16::from_le_bytes([bytes[6], bytes[7]]),
            len: u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default()),
            payload_crc: le32(&bytes[16..20]),
        })
    }

    /// Bytes the whole frame takes, padding included (`None` if it cannot fit any file).
    pub fn span(&self) -> Option<u64> {
        FRAME_LEN.checked_add(padded(self.len)?)
    }
}

/// `len` rounded up to a multiple of 8.
pub(crate) fn padded(len: u64) -> Option<u64> {
    Some(len.checked_add(7)? & !7)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_refuse_damage() {
        let h = FileHeader {
            version: FORMAT_VERSION,
            module: [7; 32],
        };
        let mut bytes = h.encode();
        assert_eq!(FileHeader::decode(&bytes), Ok(h));
        bytes[20] ^= 1;
        assert_eq!(FileHeader::decode(&bytes), Err(HeaderError::Corrupt));
        assert_eq!(
            FileHeader::decode(b"#!/bin/sh\n"),
            Err(HeaderError::NotAJournal)
        );
        let newer = FileHeader {
            version: FORMAT_VERSION + 1,
            module: [0; 32],
        };
        assert_eq!(
            FileHeader::decode(&newer.encode()),
            Err(HeaderError::Newer(FORMAT_VERSION + 1))
        );

        let f = FrameHeader::new(Kind::Thread, b"payload");
        let mut fb = f.encode();
        assert_eq!(FrameHeader::decode(&fb), Some(f));
        assert_eq!(f.span(), Some(24 + 8));
        fb[9] ^= 0x40;
        assert_eq!(FrameHeader::decode(&fb), None, "a flipped length is caught");
    }

    #[test]
    fn kinds_are_numbered_in_order() {
        for (n, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(k.number() as usize, n);
            assert_eq!(Kind::from_number(n as u16), Some(*k));
        }
        // On-disk numbers never change: later kinds only append.
        assert_eq!(Kind::Commit.number(), 7);
        assert_eq!(Kind::Base.number(), 8);
        assert_eq!(Kind::Member.number(), 9);
        assert_eq!(Kind::from_number(10), None);
    }
}
