//! wasmix-journal: the crash-safe journal a process's snapshots are written to and restored
//! from. Plain data and files only: no engine, no runtime types.
//!
//! # On-disk layout
//!
//! ```text
//! journal := file-header frame*
//!
//! file header (64 bytes, at offset 0)
//! ┌────┬──────────────────────────────────────────────────────────────┐
//! │  0 │ magic        8 bytes  "WASMIXJ\n"                            │
//! │  8 │ version      u32 LE   format version (FORMAT_VERSION = 1)    │
//! │ 12 │ flags        u32 LE   0                                      │
//! │ 16 │ module       32 bytes BLAKE3 of the module the journal is of │
//! │ 48 │ reserved     12 bytes 0                                      │
//! │ 60 │ header crc   u32 LE   CRC32C of bytes 0..60                  │
//! └────┴──────────────────────────────────────────────────────────────┘
//!
//! frame (starts at a multiple of 8)
//! ┌────┬──────────────────────────────────────────────────────────────┐
//! │  0 │ sync         u32 LE   0x574A_5852 ("RXJW")                   │
//! │  4 │ kind         u16 LE   record kind (see `Kind`)               │
//! │  6 │ kind version u16 LE   layout version of that kind's payload  │
//! │  8 │ length       u64 LE   payload bytes                          │
//! │ 16 │ payload crc  u32 LE   CRC32C of the payload                  │
//! │ 20 │ frame crc    u32 LE   CRC32C of bytes 0..20                  │
//! │ 24 │ payload      length bytes, then zeros up to a multiple of 8  │
//! └────┴──────────────────────────────────────────────────────────────┘
//!
//! snapshot := Begin (records | Base)* (Member records*)* Commit
//! records  := Process | Thread | Files | Memory | Region | Padding
//! ```
//!
//! The records before the first Member are the root's: the process the journal is of. A
//! snapshot of a process tree then has a Member per other live or unreaped process, each
//! after its parent, followed by that process's own records (none for a zombie). Open file
//! descriptions that processes share are recorded once, at the first process holding them;
//! the others name it (`record::Node::Inherited`).
//!
//! Payloads of the structured kinds (Begin, Process, Thread, Files, Base, Memory, Member,
//! Commit)
//! are postcard encodings of the types in [`record`]. A Region payload is a 32-byte header
//! (memory index u32, encoding u8, 3 reserved, guest offset u64, length u64, 8 reserved) and
//! the bytes: raw, lz4-compressed, none for a zero region, or lz4-compressed XOR with the
//! chain's full snapshot (encoding 0, 1, 2, 3; the last since Region layout 2). A raw
//! region of [`MAPPABLE`] bytes or more starts on a 4096-byte boundary of the file (a
//! Padding frame before it makes it so), so a restore can map it copy-on-write instead of
//! reading it; smaller ones are copied, and written where they fall.
//!
//! # Incremental snapshots
//!
//! A snapshot with a Base record holds only the memory pages written since snapshot
//! `Base.seq` (an earlier one of the same journal, itself full or incremental); pages
//! cleared since are zero regions. Its memory is its chain's regions laid over each other,
//! oldest first ([`Journal::chain`], [`Journal::layers`]); everything else (process,
//! threads, files) is its own. A base that is not there is [`JournalError::MissingBase`];
//! [`compact`] keeps the whole chain of the latest snapshot.
//!
//! ```text
//!   #1 full ◄── #2 Base{1}: pages written since #1 ◄── #3 Base{2}: since #2
//!   memory(#3) = regions(#1), then regions(#2), then regions(#3)
//!   an xor region of #2 or #3 at R:  memory[R] = bytes(#1)[R] XOR lz4⁻¹(stored)
//! ```
//!
//! A page changed in a few bytes is stored as its XOR with the chain's full snapshot there
//! (zeros where that holds none), lz4-compressed: tens of bytes instead of 4096, so the
//! increment's write and sync follow the bytes changed. The writer chooses it
//! ([`SnapshotWriter::regions`]) where that compresses to half or less and the full
//! snapshot holds those bytes raw — written by the same writer, so a reopened journal's
//! increments are plain until its next full snapshot; [`Journal::read_layered`] reads it.
//! An xor region anywhere but an increment's root process is corruption.
//!
//! # Crash safety
//!
//! A snapshot exists once its Commit frame is in the file: the Commit names the snapshot's
//! sequence number, how many frames it closes, and a CRC32C over their payload CRCs, so it
//! vouches for every frame of its snapshot. With [`SyncPolicy::Snapshot`] (the default) the
//! snapshot's frames are made durable before the Commit is written, and the Commit itself
//! before the snapshot is reported taken.
//!
//! Reading stops at the first frame that is short or fails a check (its own checksum, its
//! payload's, zero alignment bytes, the commit's count and chain). If no intact Commit frame
//! follows anywhere in the rest of the file, that is a torn tail (a crash mid-append — the
//! frames of an unfinished snapshot may reach the disk in any order — or garbage appended):
//! the journal recovers to its last complete snapshot, and a writer that opens it cuts the
//! tail off. If a Commit does follow, a snapshot that exists lies behind the damage: an error
//! naming the byte offset, never a guess. Lengths are checked against the file
//! before anything is allocated, so a corrupt journal cannot make the reader allocate more
//! than the file holds.

#![warn(missing_docs)]

mod error;
mod frame;
mod reader;
pub mod record;
mod sparse;
mod writer;

pub use error::JournalError;
pub use frame::{Kind, FORMAT_VERSION, HEADER_LEN, MAPPABLE, PAGE};
pub use reader::{Journal, ProcessImage, RegionRef, Snapshot, SnapshotIndex, Tail, Verify};
pub use record::Encoding;
pub use writer::{compact, CommitInfo, Compacted, JournalWriter, SnapshotWriter, SyncPolicy};
