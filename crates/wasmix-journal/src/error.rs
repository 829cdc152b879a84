//! Every way a journal can fail to open, read or write, each a named error.

use std::path::PathBuf;

/// Why a journal could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with a journal header.
    #[error("{path} is not a wasmix journal (no journal header at its start)")]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
    /// The file's header fails its checksum.
    #[error("journal {path}: its header is damaged (checksum mismatch); the file cannot be used")]
    HeaderCorrupt {
        /// The journal file.
        path: PathBuf,
    },
    /// A newer wasmix wrote it.
    #[error(
        "journal {path} has format version {found}; this wasmix reads up to version {supported} \
         (use a newer wasmix)"
    )]
    NewerFormat {
        /// The journal file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The journal belongs to another module.
    #[error(
        "journal {path} was written for another module (module hash {found}, this one is \
         {expected}); restore it with the module it was taken of"
    )]
    OtherModule {
        /// The journal file.
        path: PathBuf,
        /// Hash of the module given.
        expected: String,
        /// Hash in the journal.
        found: String,
    },
    /// A frame fails a check and intact frames follow it: damage in the middle of the file.
    #[error(
        "journal {path} is corrupt at byte {offset}: {reason}; later snapshots cannot be trusted \
         (`wasmix journal verify` names the damage)"
    )]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// Byte offset of the damaged frame.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A frame of a kind this build does not know.
    #[error(
        "journal {path}: record kind {kind} at byte {offset} is unknown to this wasmix \
         (written by a newer one?)"
    )]
    UnknownKind {
        /// The journal file.
        path: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// The kind number.
        kind: u16,
    },
    /// A frame of a known kind in a layout newer than this build reads.
    #[error(
        "journal {path}: record `{kind}` at byte {offset} has layout version {found}; this \
         wasmix reads up to {supported} (use a newer wasmix)"
    )]
    NewerRecord {
        /// The journal file.
        path: PathBuf,
        /// Byte offset of the frame.
        offset: u64,
        /// The kind's name.
        kind: &'static str,
        /// The version in the file.
        found: u16,
        /// The newest this build reads.
        supported: u16,
    },
    /// An incremental snapshot's base is not in the journal.
    #[error(
        "journal {path}: snapshot {seq} builds on snapshot {base}, which it does not hold \
         (restore an older full snapshot, or start afresh)"
    )]
    MissingBase {
        /// The journal file.
        path: PathBuf,
        /// The incremental snapshot.
        seq: u64,
        /// The snapshot it names as its base.
        base: u64,
    },
    /// The journal holds no complete snapshot to restore.
    #[error("journal {path} holds no complete snapshot")]
    NoSnapshot {
        /// The journal file.
        path: PathBuf,
    },
    /// Another run is writing the journal (or compacting it).
    #[error("journal {path} is in use by another wasmix (one run writes a journal at a time)")]
    InUse {
        /// The journal file.
        path: PathBuf,
    },
    /// Something the writer was asked to record cannot be recorded.
    #[error("journal {path}: cannot record {what}")]
    Unrecordable {
        /// The journal file.
        path: PathBuf,
        /// What, and why not.
        what: String,
    },
}

impl JournalError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(
        path: &std::path::Path,
        offset: u64,
        reason: impl Into<String>,
    ) -> JournalError {
        JournalError::Corrupt {
            path: path.to_owned(),
            offset,
            reason: reason.into(),
        }
    }
}
