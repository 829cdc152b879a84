//! wasmix-fs: the files of a wasmix process.
//!
//! * [`FdTable`] — descriptor numbers to open file descriptions and rights; a plain cloneable
//!   value (fork clones it).
//! * [`FileSystem`] — the live handle a process holds: the table behind a lock and every file
//!   operation a guest can make, in WASI terms. It is the single place where a journal can
//!   observe file effects.
//! * Host directories are mounted through `cap-std`, so no path, `..`, symlink or hard link can
//!   leave a mount. `/dev` nodes are synthesised.
//!
//! Nothing here knows about WebAssembly engines.

#![warn(missing_docs)]

pub mod abi;
pub mod epoll;
mod errno;
mod fs;
mod node;
mod snapshot;
mod socket;
mod table;

pub use errno::{Errno, FsResult};
pub use fs::{normalize, FdCache, FileSystem, FileSystemBuilder, SetupError, Stdio};
pub use node::{Device, DirEntry, HostFd, Node, OpenFile};
pub use snapshot::{Rebuilt, Recorded, RestoreError};
pub use table::{FdEntry, FdTable};
