//! The live file system of one process: the fd table behind a lock, and every file operation a
//! guest can make. Each method is one WASI call's semantics in host terms; the syscall layer only
//! moves bytes in and out of guest memory.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

use crate::abi::{fdflags, oflags, rights, Advice, Fdstat, Filestat, Filetype, TimeChange, Whence};
use crate::errno::{Errno, FsResult};
use crate::node::{
    metadata_to_filestat, synthetic_dev_stat, Device, DirEntry, Directory, HostFd, Node, OpenFile,
};
use crate::table::{FdEntry, FdTable};

/// Where a standard stream of the guest goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The runtime's own stream of the same number.
    #[default]
    Inherit,
    /// Reads see end of file, writes are discarded.
    Null,
    /// A host file or pipe end the embedder opened.
    File(OwnedFd),
}

/// Errors setting up a file system, before the guest runs.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The host directory could not be opened.
    #[error("cannot open host directory `{path}` for --dir: {source}")]
    Mount {
        /// The host path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// More mounts than the fd table can hold.
    #[error("too many --dir mounts (at most {limit})")]
    TooManyMounts {
        /// The most mounts a process can have.
        limit: usize,
    },
    /// The host path is not a directory.
    #[error("`{path}` given to --dir is not a directory")]
    NotADirectory {
        /// The host path.
        path: PathBuf,
    },
}

/// The file system a guest process sees.
pub struct FileSystem {
    table: Mutex<FdTable>,
    /// Which file system this is, for [`FdCache`]s (never reused).
    id: u64,
    /// Bumped by every change to the table (see [`FileSystem::table_mut`]): a cached lookup
    /// made at the same version still holds.
    version: AtomicU64,
    /// The working directory, an absolute guest path (WASIX `getcwd`/`chdir`).
    cwd: Mutex<String>,
    /// The synthetic `/dev` is served inside the mount at `/` (no preopen of its own).
    dev_in_root: bool,
}

/// The fd table behind a lock, read-only: changes go through [`FileSystem::table_mut`], so
/// none can slip past the version that [`FdCache`]s check.
pub(crate) struct TableRead<'a>(MutexGuard<'a, FdTable>);

impl std::ops::Deref for TableRead<'_> {
    type Target = FdTable;
    fn deref(&self) -> &FdTable {
        &self.0
    }
}

/// One thread's last descriptor lookup (see [`FileSystem::file_cached`]); plain state,
/// owned by the thread.
#[derive(Default)]
pub struct FdCache {
    entry: Option<Cached>,
}

impl FdCache {
    /// The file of the last lookup.
    pub fn file(&self) -> Option<&OpenFile> {
        self.entry.as_ref().map(|c| &*c.file)
    }
}

struct Cached {
    fs: u64,
    version: u64,
    fd: u32,
    rights: u64,
    file: Arc<OpenFile>,
}

impl Default for FileSystem {
    fn default() -> Self {
        FileSystem::new()
    }
}

/// Mounts that fit in a fresh fd table beside stdio and `/dev` (so `build` cannot run out of
/// descriptors).
const MAX_MOUNTS: usize = FdTable::DEFAULT_LIMIT - 4;

/// Builds the initial fd table: stdio on 0–2, then preopened directories in order.
pub struct FileSystemBuilder {
    stdio: [Stdio; 3],
    mounts: Vec<(Dir, String)>,
    dev: bool,
}

impl Default for FileSystemBuilder {
    fn default() -> Self {
        FileSystemBuilder {
            stdio: Default::default(),
            mounts: Vec::new(),
            dev: true,
        }
    }
}

impl FileSystemBuilder {
    /// Sets where stream `n` (0 = stdin, 1 = stdout, 2 = stderr) goes.
    pub fn stdio(mut self, n: usize, stdio: Stdio) -> Self {
        self.stdio[n] = stdio;
        self
    }

    /// Mounts host directory `host` at `guest` (a preopen).
    pub fn mount(mut self, host: &Path, guest: &str) -> Result<Self, SetupError> {
        if self.mounts.len() >= MAX_MOUNTS {
            return Err(SetupError::TooManyMounts { limit: MAX_MOUNTS });
        }
        let dir = Dir::open_ambient_dir(host, cap_std::ambient_authority()).map_err(|source| {
            if source.raw_os_error() == Some(libc::ENOTDIR) {
                SetupError::NotADirectory {
                    path: host.to_owned(),
                }
            } else {
                SetupError::Mount {
                    path: host.to_owned(),
                    source,
                }
            }
        })?;
        self.mounts.push((dir, guest.to_owned()));
        Ok(self)
    }

    /// Whether to provide the synthetic `/dev` (null, zero, full, random, urandom). On by
    /// default, where the guest has a file system to find it in: served inside a mount at
    /// `/`, else as a preopen after the mounts; with no mount at all there is none (so
    /// descriptor 3 is free, as under wasmtime); skipped when a mount claims `/dev`.
    pub fn dev(mut self, enabled: bool) -> Self {
        self.dev = enabled;
        self
    }

    /// Opens the fd table: 0–2 stdio, then the mounts in order, then `/dev` (see
    /// [`FileSystemBuilder::dev`]).
    pub fn build(self) -> FileSystem {
        let mut table = FdTable::new();
        for (n, stdio) in self.stdio.into_iter().enumerate() {
            let (node, base) = match stdio {
                Stdio::Inherit => {
                    // SAFETY: 0, 1 and 2 stay open for the life of the runtime process; the
                    // guest closing its copy only drops the table entry.
                    let fd = unsafe { BorrowedFd::borrow_raw(n as i32) };
                    (Node::Stream(HostFd::Inherited(fd)), stream_rights(fd, n))
                }
                Stdio::Null => (
                    Node::Device(Device::Null),
                    stdio_direction(n) | stream_common(),
                ),
                Stdio::File(fd) => {
                    let base = stream_rights(fd.as_fd(), n);
                    (Node::Stream(HostFd::Owned(fd)), base)
                }
            };
            table
                .insert(FdEntry::new(OpenFile::new(node, 0), base, 0))
                .expect("stdio fits: the table is empty");
        }
        let claims_dev = self
            .mounts
            .iter()
            .any(|(_, g)| g.trim_end_matches('/') == "/dev");
        let dev = self.dev && !claims_dev && !self.mounts.is_empty();
        let dev_in_root = dev
            && self
                .mounts
                .iter()
                .any(|(_, g)| g.trim_end_matches('/').is_empty());
        for (dir, guest) in self.mounts {
            let entry = FdEntry::new(
                OpenFile::new(Node::Dir(Directory::new(dir)), 0).with_path(guest.clone(), "."),
                rights::DIR_BASE,
                rights::DIR_INHERITING,
            );
            table
                .insert(entry.preopened(guest))
                .expect("mount() keeps room for every preopen");
        }
        if dev && !dev_in_root {
            // O_CREAT and O_TRUNC open an existing node as on Linux (`> /dev/null`); the
            // nodes themselves cannot be created, truncated or removed.
            let entry = FdEntry::new(
                OpenFile::new(Node::DevDir, 0),
                rights::PATH_OPEN
                    | rights::PATH_CREATE_FILE
                    | rights::PATH_FILESTAT_SET_SIZE
                    | rights::FD_READDIR
                    | rights::PATH_FILESTAT_GET
                    | rights::FD_FILESTAT_GET,
                rights::STREAM_BASE,
            );
            table
                .insert(entry.preopened("/dev"))
                .expect("mount() keeps room for every preopen");
        }
        FileSystem::with_table(table, "/".into(), dev_in_root)
    }
}

fn stdio_direction(n: usize) -> u64 {
    if n == 0 {
        rights::FD_READ
    } else {
        rights::FD_WRITE
    }
}

fn stream_common() -> u64 {
    rights::FD_FDSTAT_SET_FLAGS | rights::FD_FILESTAT_GET | rights::POLL_FD_READWRITE
}

fn stream_rights(fd: BorrowedFd<'_>, n: usize) -> u64 {
    let base = stdio_direction(n) | stream_common();
    // A redirected regular file may seek; a terminal or pipe may not (isatty relies on it).
    match rustix::fs::fstat(fd) {
        Ok(st) if Filetype::from_mode(st.st_mode) == Filetype::RegularFile => {
            base | rights::FD_SEEK | rights::FD_TELL
        }
        _ => base,
    }
}

/// `path` made absolute against `cwd`, with `.` and `..` folded (`..` stops at `/`).
pub fn normalize(cwd: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{cwd}/{path}")
    };
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// A validated guest path.
/// `path` beneath `dir` (both relative to one preopen), `.` and `..` folded; `.` for the
/// preopen itself. (cap-std has already refused paths that leave the preopen.)
pub(crate) fn join_relative(dir: &str, path: &str) -> String {
    let joined = normalize(&normalize("/", dir), path);
    match joined.trim_start_matches('/') {
        "" => ".".to_owned(),
        rel => rel.to_owned(),
    }
}

/// A guest's path as a host path. WASI paths are UTF-8 strings: other bytes are EILSEQ, as
/// wasmtime answers (so no file with a name the guest's own string types cannot hold is
/// ever made on the host).
fn guest_path(path: &[u8]) -> FsResult<&Path> {
    if path.contains(&0) {
        return Err(Errno::Inval);
    }
    let text = std::str::from_utf8(path).map_err(|_| Errno::Ilseq)?;
    Ok(Path::new(text))
}

/// `d/` names the directory `d` for mkdir and rmdir, as in POSIX; cap-std would take the
/// empty last component for `.`.
fn without_trailing_slashes(path: &[u8]) -> &[u8] {
    let end = path
        .iter()
        .rposition(|b| *b != b'/')
        .map_or(path.len().min(1), |i| i + 1);
    &path[..end]
}

fn has_trailing_slash(path: &[u8]) -> bool {
    path.last() == Some(&b'/')
}

fn system_time(ns: u64) -> cap_std::time::SystemTime {
    cap_std::time::SystemTime::from_std(UNIX_EPOCH + Duration::from_nanos(ns))
}

fn time_spec(change: TimeChange) -> Option<cap_fs_ext::SystemTimeSpec> {
    match change {
        TimeChange::Keep => None,
        TimeChange::Now => Some(cap_fs_ext::SystemTimeSpec::SymbolicNow),
        TimeChange::At(ns) => Some(cap_fs_ext::SystemTimeSpec::Absolute(system_time(ns))),
    }
}

fn timespec(change: TimeChange) -> rustix::fs::Timespec {
    match change {
        TimeChange::Keep => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_OMIT,
        },
        TimeChange::Now => rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        },
        TimeChange::At(ns) => rustix::fs::Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as _,
        },
    }
}

/// What a path operation resolves against.
enum Base {
    Host(Arc<OpenFile>),
    Dev,
}

impl FileSystem {
    /// Inherited stdio, no mounts, the synthetic `/dev`.
    pub fn new() -> FileSystem {
        FileSystemBuilder::default().build()
    }

    /// Starts describing a file system.
    pub fn builder() -> FileSystemBuilder {
        FileSystemBuilder::default()
    }

    /// A copy of the fd table sharing every open file description (what fork hands a child).
    pub fn fork(&self) -> FileSystem {
        FileSystem::with_table(self.table().clone(), self.cwd(), self.dev_in_root)
    }

    /// What a new program image starts with (spawn, and exec in place): the same descriptions
    /// and working directory, less close-on-exec descriptors.
    pub fn for_exec(&self) -> FileSystem {
        let forked = self.fork();
        forked.table_mut().close_on_exec();
        forked
    }

    /// Drops close-on-exec descriptors in place (exec keeps the process's table).
    pub fn close_on_exec(&self) {
        self.table_mut().close_on_exec();
    }

    /// A file system with no descriptors, at `/`, serving `/dev` as `like` does (what a
    /// restore fills in).
    pub(crate) fn empty(like: &FileSystem) -> FileSystem {
        FileSystem::with_table(FdTable::new(), "/".into(), like.dev_in_root)
    }

    fn with_table(table: FdTable, cwd: String, dev_in_root: bool) -> FileSystem {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        FileSystem {
            table: Mutex::new(table),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(0),
            cwd: Mutex::new(cwd),
            dev_in_root,
        }
    }

    pub(crate) fn set_cwd(&self, cwd: String) {
        *self.cwd.lock().unwrap_or_else(|e| e.into_inner()) = cwd;
    }

    /// The table, to read.
    pub(crate) fn table(&self) -> TableRead<'_> {
        TableRead(self.table.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The table, to change: cached lookups made before no longer hold (the version moves
    /// before the change can be seen, as the lock is held until it is made).
    pub(crate) fn table_mut(&self) -> MutexGuard<'_, FdTable> {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        self.version.fetch_add(1, Ordering::AcqRel);
        table
    }

    /// The open file behind `fd` if it holds `required` rights.
    pub fn file(&self, fd: u32, required: u64) -> FsResult<Arc<OpenFile>> {
        Ok(Arc::clone(self.table().get(fd)?.require(required)?))
    }

    /// Like [`FileSystem::file`], answered from `cache` while the table has not changed since
    /// `cache` was filled (by this thread, from this file system): a read or write of the
    /// same descriptor again and again then takes no lock and no reference count.
    pub fn file_cached<'c>(
        &self,
        cache: &'c mut FdCache,
        fd: u32,
        required: u64,
    ) -> FsResult<&'c Arc<OpenFile>> {
        let version = self.version.load(Ordering::Acquire);
        let hit = cache.entry.as_ref().is_some_and(|c| {
            c.fs == self.id && c.version == version && c.fd == fd && c.rights & required == required
        });
        if !hit {
            let table = self.table();
            let entry = table.get(fd)?;
            let file = Arc::clone(entry.require(required)?);
            cache.entry = Some(Cached {
                fs: self.id,
                // Read under the lock: no change can be under way.
                version: self.version.load(Ordering::Acquire),
                fd,
                rights: entry.rights_base(),
                file,
            });
        }
        Ok(&cache.entry.as_ref().expect("filled above").file)
    }

    fn dir(&self, fd: u32, required: u64) -> FsResult<(Base, u64)> {
        let table = self.table();
        let entry = table.get(fd)?;
        let file = entry.require_dir(required)?;
        let base = match file.node() {
            Node::DevDir => Base::Dev,
            _ => Base::Host(Arc::clone(file)),
        };
        Ok((base, entry.rights_inheriting()))
    }

    /// Like [`FileSystem::dir`] for `path` under it, with `/dev/...` under a root mount
    /// served by the synthetic `/dev` (the part of `path` after `dev` returned with it).
    fn dir_at<'p>(
        &self,
        fd: u32,
        required: u64,
        path: &'p [u8],
    ) -> FsResult<(Base, u64, &'p [u8])> {
        let (base, inheriting) = self.dir(fd, required)?;
        match self.root_dev(fd, path) {
            Some(rest) => Ok((Base::Dev, inheriting & rights::STREAM_BASE, rest)),
            None => Ok((base, inheriting, path)),
        }
    }

    /// Where `/dev` is served inside the root mount and `fd` is that mount: the rest of a
    /// `path` that starts with `dev`, else `None`.
    fn root_dev<'p>(&self, fd: u32, path: &'p [u8]) -> Option<&'p [u8]> {
        if !self.dev_in_root {
            return None;
        }
        let table = self.table();
        let root = table
            .get(fd)
            .ok()?
            .preopen()?
            .trim_end_matches('/')
            .is_empty();
        if !root {
            return None;
        }
        let mut rest = path;
        while let Some(r) = rest.strip_prefix(b"/").or_else(|| rest.strip_prefix(b"./")) {
            rest = r;
        }
        match rest.strip_prefix(b"dev") {
            // A path that climbs back out (`dev/../etc`) is the mount's to resolve.
            Some(after)
                if (after.is_empty() || after[0] == b'/')
                    && !after.split(|b| *b == b'/').any(|c| c == b"..") =>
            {
                Some(after)
            }
            _ => None,
        }
    }

    /// A host directory to change something under `path` in; the synthetic `/dev` inside a
    /// root mount is read-only.
    fn host_dir_at(&self, fd: u32, required: u64, path: &[u8]) -> FsResult<Arc<OpenFile>> {
        if self.root_dev(fd, path).is_some() {
            return Err(Errno::Perm);
        }
        self.host_dir(fd, required)
    }

    fn host_dir(&self, fd: u32, required: u64) -> FsResult<Arc<OpenFile>> {
        match self.dir(fd, required)?.0 {
            Base::Host(f) => Ok(f),
            // The synthetic /dev is read-only.
            Base::Dev => Err(Errno::Perm),
        }
    }

    // ---- descriptors -------------------------------------------------------------------------

    /// `fd_close`: drops the descriptor; the open file closes with its last descriptor.
    pub fn close(&self, fd: u32) -> FsResult<()> {
        self.table_mut().remove(fd).map(drop)
    }

    /// `fd_renumber`: moves `from` onto `to` (both must be open).
    pub fn renumber(&self, from: u32, to: u32) -> FsResult<()> {
        self.table_mut().renumber(from, to)
    }

    /// Installs a new open file at the lowest free number.
    pub fn insert(&self, file: OpenFile, base: u64, inheriting: u64) -> FsResult<u32> {
        self.table_mut()
            .insert(FdEntry::new(file, base, inheriting))
    }

    /// Installs a new open file at exactly `fd`, closing what was there.
    pub fn insert_at(&self, fd: u32, file: OpenFile, base: u64, inheriting: u64) -> FsResult<()> {
        self.table_mut()
            .insert_at(fd, FdEntry::new(file, base, inheriting))
            .map(drop)
    }

    /// Reads a whole regular file by absolute guest path (a program to spawn or exec) without
    /// touching the fd table.
    ///
    /// Opened without blocking (a FIFO there must not hold the caller until some writer
    /// comes), and only a regular file of at most `limit` bytes is read (EACCES, as execve
    /// answers for anything else; EFBIG past the limit), so what a spawn costs the host does
    /// not follow what a guest put in its directory.
    pub fn read_file(&self, abs: &str, limit: u64) -> FsResult<Vec<u8>> {
        use std::io::Read;
        let (fd, rel) = self.resolve(abs)?;
        let dir = match self.dir(fd, 0)?.0 {
            Base::Host(f) => f,
            Base::Dev => return Err(Errno::Acces),
        };
        let Node::Dir(d) = dir.node() else {
            return Err(Errno::Notdir);
        };
        let mut opts = OpenOptions::new();
        opts.read(true).custom_flags(libc::O_NONBLOCK);
        let file = d.dir().open_with(&rel, &opts)?;
        let md = file.metadata()?;
        if !md.is_file() {
            return Err(Errno::Acces);
        }
        if md.len() > limit {
            return Err(Errno::Fbig);
        }
        let mut bytes = Vec::with_capacity(md.len() as usize);
        // The file may grow meanwhile: read no more than the limit allows.
        file.take(limit + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > limit {
            return Err(Errno::Fbig);
        }
        Ok(bytes)
    }

    /// Stdio for a spawned program that should see nothing: `/dev/null` at `fd`.
    pub fn insert_null(&self, fd: u32) -> FsResult<()> {
        self.insert_at(
            fd,
            OpenFile::new(Node::Device(Device::Null), 0),
            rights::FD_READ | rights::FD_WRITE | stream_common(),
            0,
        )
    }

    /// `dup` / `F_DUPFD[_CLOEXEC]`: a new descriptor, the lowest free one not below `min`,
    /// for the same open file description.
    pub fn dup(&self, fd: u32, min: u32, cloexec: bool) -> FsResult<u32> {
        let mut table = self.table_mut();
        let entry = table.get(fd)?.duplicate(cloexec);
        table.insert_from(min, entry)
    }

    /// `dup2`: `to` becomes a copy of `from`, closing what it held; `to` need not be open.
    pub fn dup_onto(&self, from: u32, to: u32) -> FsResult<()> {
        self.table_mut().duplicate_onto(from, to)
    }

    /// Whether `fd` is close-on-exec.
    pub fn cloexec(&self, fd: u32) -> FsResult<bool> {
        Ok(self.table().get(fd)?.cloexec())
    }

    /// Sets close-on-exec on `fd`.
    pub fn set_cloexec(&self, fd: u32, cloexec: bool) -> FsResult<()> {
        self.table_mut().set_cloexec(fd, cloexec)
    }

    /// `pipe`: a host pipe; returns (read end, write end). EOF once every write end is closed,
    /// EPIPE once every read end is.
    pub fn pipe(&self) -> FsResult<(u32, u32)> {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let common = stream_common();
        let mut table = self.table_mut();
        let rfd = table.insert(FdEntry::new(
            OpenFile::new(Node::Stream(HostFd::Owned(r)), 0),
            rights::FD_READ | common,
            0,
        ))?;
        let wfd = table.insert(FdEntry::new(
            OpenFile::new(Node::Stream(HostFd::Owned(w)), 0),
            rights::FD_WRITE | common,
            0,
        ));
        match wfd {
            Ok(wfd) => Ok((rfd, wfd)),
            Err(e) => {
                let _ = table.remove(rfd);
                Err(e)
            }
        }
    }

    /// WASIX `fd_pipe`: a pipe whose two ends both read and write, each reading what the
    /// other wrote (as Wasmer's was; a program using it one way sees an ordinary pipe). A
    /// host socket pair underneath; EOF at one end once the other is closed everywhere.
    pub fn duplex_pipe(&self) -> FsResult<(u32, u32)> {
        let (a, b, id) = duplex_ends()?;
        let both = rights::FD_READ | rights::FD_WRITE | stream_common();
        let mut table = self.table_mut();
        let end = |fd, first| {
            FdEntry::new(
                OpenFile::new(Node::Stream(HostFd::Owned(fd)), 0).with_duplex(id, first),
                both,
                0,
            )
        };
        let first = table.insert(end(a, true))?;
        match table.insert(end(b, false)) {
            Ok(second) => Ok((first, second)),
            Err(e) => {
                let _ = table.remove(first);
                Err(e)
            }
        }
    }

    /// `eventfd`: a host event counter readable and writable as 8-byte values.
    pub fn event(&self, initial: u64, semaphore: bool) -> FsResult<u32> {
        let mut flags = rustix::event::EventfdFlags::CLOEXEC;
        if semaphore {
            flags |= rustix::event::EventfdFlags::SEMAPHORE;
        }
        let initial = u32::try_from(initial).map_err(|_| Errno::Inval)?;
        let fd = rustix::event::eventfd(initial, flags)?;
        self.insert(
            OpenFile::new(Node::Stream(HostFd::Owned(fd)), 0),
            rights::FD_READ | rights::FD_WRITE | stream_common(),
            0,
        )
    }

    // ---- working directory -------------------------------------------------------------------

    /// The working directory (an absolute guest path).
    pub fn cwd(&self) -> String {
        self.cwd.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `chdir`: `path` (absolute, or relative to the working directory) must name a directory
    /// inside a preopen.
    pub fn chdir(&self, path: &[u8]) -> FsResult<()> {
        let path = std::str::from_utf8(path).map_err(|_| Errno::Inval)?;
        if path.is_empty() {
            return Err(Errno::Noent);
        }
        let abs = normalize(&self.cwd(), path);
        let (fd, rel) = self.resolve(&abs)?;
        let st = self.path_filestat(fd, true, rel.as_bytes())?;
        if st.filetype != Filetype::Directory as u8 {
            return Err(Errno::Notdir);
        }
        *self.cwd.lock().unwrap_or_else(|e| e.into_inner()) = abs;
        Ok(())
    }

    /// The preopen holding absolute guest path `abs` (the longest matching mount), and the
    /// path relative to it. ENOENT when no preopen covers it.
    pub fn resolve(&self, abs: &str) -> FsResult<(u32, String)> {
        let table = self.table();
        let mut best: Option<(u32, usize)> = None;
        for fd in table.fds() {
            let Some(mount) = table.get(fd)?.preopen() else {
                continue;
            };
            let mount = mount.trim_end_matches('/');
            let covers = abs == mount
                || mount.is_empty()
                || (abs.starts_with(mount) && abs.as_bytes().get(mount.len()) == Some(&b'/'));
            if covers && best.is_none_or(|(_, len)| mount.len() > len) {
                best = Some((fd, mount.len()));
            }
        }
        let (fd, len) = best.ok_or(Errno::Noent)?;
        let rel = abs[len..].trim_start_matches('/');
        Ok((
            fd,
            if rel.is_empty() {
                ".".into()
            } else {
                rel.into()
            },
        ))
    }

    /// Where a unix socket named by guest path `path` (absolute, or relative to the working
    /// directory) lives: its directory, opened on the host within its mount (so no `..` or
    /// symlink leads out of it), and its name there. A socket is bound or connected through
    /// the directory's descriptor (`/proc/self/fd/N/NAME`).
    pub fn socket_dir(&self, path: &str) -> FsResult<(OwnedFd, String)> {
        let abs = normalize(&self.cwd(), path);
        let (mount, rel) = self.resolve(&abs)?;
        let (parent, name) = match rel.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => (".", rel.as_str()),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(Errno::Inval);
        }
        let dir = self.host_dir_at(mount, rights::PATH_OPEN, rel.as_bytes())?;
        let dir = as_dir(&dir)?;
        let parent = if parent == "." {
            dir.try_clone()?
        } else {
            dir.open_dir(parent)?
        };
        Ok((parent.into_std_file().into(), name.to_owned()))
    }

    /// `fd_fdstat_get`.
    pub fn fdstat(&self, fd: u32) -> FsResult<Fdstat> {
        let entry = self.table().get(fd)?.clone();
        Ok(Fdstat {
            filetype: entry.file().filetype()?,
            flags: entry.file().flags(),
            rights_base: entry.rights_base(),
            rights_inheriting: entry.rights_inheriting(),
        })
    }

    /// `fd_fdstat_set_flags`: APPEND and NONBLOCK can change; the sync flags cannot (ENOTSUP).
    pub fn set_flags(&self, fd: u32, flags: u16) -> FsResult<()> {
        if flags & !fdflags::ALL != 0 {
            return Err(Errno::Inval);
        }
        self.file(fd, rights::FD_FDSTAT_SET_FLAGS)?.set_flags(flags)
    }

    /// `fd_fdstat_set_rights`: rights can only shrink.
    pub fn restrict_rights(&self, fd: u32, base: u64, inheriting: u64) -> FsResult<()> {
        self.table_mut().restrict_rights(fd, base, inheriting)
    }

    /// The guest path of a preopened directory.
    pub fn prestat(&self, fd: u32) -> FsResult<String> {
        self.table()
            .get(fd)?
            .preopen()
            .map(str::to_owned)
            .ok_or(Errno::Badf)
    }

    /// `fd_filestat_get`.
    pub fn filestat(&self, fd: u32) -> FsResult<Filestat> {
        self.file(fd, rights::FD_FILESTAT_GET)?.filestat()
    }

    /// `fd_filestat_set_size`.
    pub fn set_size(&self, fd: u32, size: u64) -> FsResult<()> {
        let file = self.file(fd, rights::FD_FILESTAT_SET_SIZE)?;
        Ok(rustix::fs::ftruncate(file.host()?, size)?)
    }

    /// `fd_filestat_set_times`.
    pub fn set_times(&self, fd: u32, atim: TimeChange, mtim: TimeChange) -> FsResult<()> {
        let file = self.file(fd, rights::FD_FILESTAT_SET_TIMES)?;
        match file.node() {
            Node::Device(_) | Node::DevDir => Ok(()),
            _ => {
                let times = rustix::fs::Timestamps {
                    last_access: timespec(atim),
                    last_modification: timespec(mtim),
                };
                Ok(rustix::fs::futimens(file.host()?, &times)?)
            }
        }
    }

    /// `fd_read` into one buffer.
    pub fn read(&self, fd: u32, buf: &mut [u8]) -> FsResult<usize> {
        self.file(fd, rights::FD_READ)?.read(buf)
    }

    /// `fd_pread` into one buffer; the offset does not move.
    pub fn pread(&self, fd: u32, buf: &mut [u8], offset: u64) -> FsResult<usize> {
        self.file(fd, rights::FD_READ)?.pread(buf, offset)
    }

    /// `fd_write`, gathering `bufs`.
    pub fn write(&self, fd: u32, bufs: &[IoSlice<'_>]) -> FsResult<usize> {
        self.file(fd, rights::FD_WRITE)?.write(bufs)
    }

    /// `fd_pwrite`; the offset does not move.
    pub fn pwrite(&self, fd: u32, bufs: &[IoSlice<'_>], offset: u64) -> FsResult<usize> {
        self.file(fd, rights::FD_WRITE)?.pwrite(bufs, offset)
    }

    /// `fd_seek`: needs FD_SEEK, or FD_TELL for a pure position query.
    pub fn seek(&self, fd: u32, offset: i64, whence: Whence) -> FsResult<u64> {
        let needed = if offset == 0 && whence == Whence::Cur {
            rights::FD_TELL
        } else {
            rights::FD_SEEK
        };
        let file = {
            let table = self.table();
            let entry = table.get(fd)?;
            // A query of the position is allowed with either right.
            if needed == rights::FD_TELL && entry.rights_base() & rights::FD_SEEK != 0 {
                Arc::clone(entry.file())
            } else {
                Arc::clone(entry.require(needed)?)
            }
        };
        file.seek(offset, whence)
    }

    /// `fd_tell`.
    pub fn tell(&self, fd: u32) -> FsResult<u64> {
        self.seek(fd, 0, Whence::Cur)
    }

    /// `fd_sync`.
    pub fn sync(&self, fd: u32) -> FsResult<()> {
        let file = self.file(fd, rights::FD_SYNC)?;
        match file.node() {
            Node::File(_) | Node::Dir(_) => Ok(rustix::fs::fsync(file.host()?)?),
            _ => Ok(()),
        }
    }

    /// `fd_datasync`.
    pub fn datasync(&self, fd: u32) -> FsResult<()> {
        let file = self.file(fd, rights::FD_DATASYNC)?;
        match file.node() {
            Node::File(_) | Node::Dir(_) => Ok(rustix::fs::fdatasync(file.host()?)?),
            _ => Ok(()),
        }
    }

    /// `fd_advise`.
    pub fn advise(&self, fd: u32, offset: u64, len: u64, advice: Advice) -> FsResult<()> {
        let file = self.file(fd, rights::FD_ADVISE)?;
        let Node::File(f) = file.node() else {
            return match file.node() {
                Node::Stream(_) => Err(Errno::Spipe),
                _ => Ok(()),
            };
        };
        let advice = match advice {
            Advice::Normal => rustix::fs::Advice::Normal,
            Advice::Sequential => rustix::fs::Advice::Sequential,
            Advice::Random => rustix::fs::Advice::Random,
            Advice::WillNeed => rustix::fs::Advice::WillNeed,
            Advice::DontNeed => rustix::fs::Advice::DontNeed,
            Advice::NoReuse => rustix::fs::Advice::NoReuse,
        };
        Ok(rustix::fs::fadvise(
            f,
            offset,
            std::num::NonZeroU64::new(len),
            advice,
        )?)
    }

    /// `fd_allocate`: extends the file to at least `offset + len`, like `posix_fallocate`.
    pub fn allocate(&self, fd: u32, offset: u64, len: u64) -> FsResult<()> {
        let file = self.file(fd, rights::FD_ALLOCATE)?;
        let Node::File(f) = file.node() else {
            return Err(Errno::Badf);
        };
        if len == 0 {
            return Err(Errno::Inval);
        }
        offset
            .checked_add(len)
            .filter(|end| *end <= i64::MAX as u64)
            .ok_or(Errno::Fbig)?;
        Ok(rustix::fs::fallocate(
            f,
            rustix::fs::FallocateFlags::empty(),
            offset,
            len,
        )?)
    }

    /// Directory entries of `fd` from `cookie` on; entry *i* has cookie *i* + 1 as `d_next`.
    pub fn readdir(&self, fd: u32, cookie: u64) -> FsResult<Vec<DirEntry>> {
        let file = self.file(fd, rights::FD_READDIR)?;
        match file.node() {
            Node::Dir(d) => d.entries_from(cookie),
            Node::DevDir => {
                let mut all = vec![
                    DirEntry {
                        name: b".".to_vec(),
                        ino: 1,
                        filetype: Filetype::Directory,
                    },
                    DirEntry {
                        name: b"..".to_vec(),
                        ino: 1,
                        filetype: Filetype::Directory,
                    },
                ];
                all.extend(Device::ALL.iter().map(|(name, _)| DirEntry {
                    name: name.as_bytes().to_vec(),
                    ino: Device::ino(name),
                    filetype: Filetype::CharacterDevice,
                }));
                let start = usize::try_from(cookie).unwrap_or(usize::MAX).min(all.len());
                Ok(all.split_off(start))
            }
            _ => Err(Errno::Notdir),
        }
    }

    // ---- paths -------------------------------------------------------------------------------

    /// `path_open`. Rights of the new descriptor are those asked for, narrowed to what the
    /// directory lets its children inherit and to what the kind of file supports.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        &self,
        dirfd: u32,
        follow: bool,
        path: &[u8],
        oflags: u16,
        want_base: u64,
        want_inheriting: u64,
        fdflags: u16,
    ) -> FsResult<u32> {
        let mut required = rights::PATH_OPEN;
        if oflags & oflags::CREAT != 0 {
            required |= rights::PATH_CREATE_FILE;
        }
        if oflags & oflags::TRUNC != 0 {
            required |= rights::PATH_FILESTAT_SET_SIZE;
        }
        let (base, dir_inheriting, path) = self.dir_at(dirfd, required, path)?;
        let path_str = guest_path(path)?;
        let inheriting = want_inheriting & dir_inheriting;

        let (node, kind_rights, guest) = match base {
            Base::Dev => {
                let (node, rights) = open_dev(path, oflags)?;
                (node, rights, None)
            }
            Base::Host(dir_file) => {
                let Node::Dir(dir) = dir_file.node() else {
                    return Err(Errno::Notdir);
                };
                let (node, rights) =
                    open_host(dir.dir(), path_str, follow, oflags, want_base, fdflags)?;
                let guest = dir_file.path().map(|(m, d)| {
                    (
                        m.to_owned(),
                        join_relative(d, &String::from_utf8_lossy(path)),
                    )
                });
                (node, rights, guest)
            }
        };
        let base_rights = want_base & dir_inheriting & kind_rights;
        let mut file = OpenFile::new(node, fdflags);
        if let Some((mount, rel)) = guest {
            file = file.with_path(mount, rel);
        }
        self.table_mut()
            .insert(FdEntry::new(file, base_rights, inheriting))
    }

    /// `path_create_directory`.
    pub fn create_dir(&self, dirfd: u32, path: &[u8]) -> FsResult<()> {
        let dir = self.host_dir_at(dirfd, rights::PATH_CREATE_DIRECTORY, path)?;
        Ok(as_dir(&dir)?.create_dir(guest_path(without_trailing_slashes(path))?)?)
    }

    /// `path_remove_directory`.
    pub fn remove_dir(&self, dirfd: u32, path: &[u8]) -> FsResult<()> {
        let dir = self.host_dir_at(dirfd, rights::PATH_REMOVE_DIRECTORY, path)?;
        Ok(as_dir(&dir)?.remove_dir(guest_path(without_trailing_slashes(path))?)?)
    }

    /// `path_unlink_file`: removes a file or symlink; EISDIR for a directory.
    pub fn unlink(&self, dirfd: u32, path: &[u8]) -> FsResult<()> {
        let dir = self.host_dir_at(dirfd, rights::PATH_UNLINK_FILE, path)?;
        let d = as_dir(&dir)?;
        let p = guest_path(path)?;
        match d.remove_file(p) {
            Ok(()) => Ok(()),
            // Linux says EISDIR for unlink(dir); trailing slashes on a non-directory ENOTDIR.
            Err(e) => {
                let errno = Errno::from(e);
                if errno == Errno::Perm || errno == Errno::Acces {
                    if let Ok(md) = d.symlink_metadata(p) {
                        if md.is_dir() {
                            return Err(Errno::Isdir);
                        }
                    }
                }
                Err(errno)
            }
        }
    }

    /// `path_rename`.
    pub fn rename(&self, from_fd: u32, from: &[u8], to_fd: u32, to: &[u8]) -> FsResult<()> {
        let src = self.host_dir_at(from_fd, rights::PATH_RENAME_SOURCE, from)?;
        let dst = self.host_dir_at(to_fd, rights::PATH_RENAME_TARGET, to)?;
        let (from, to) = (guest_path(from)?, guest_path(to)?);
        Ok(as_dir(&src)?.rename(from, as_dir(&dst)?, to)?)
    }

    /// `path_link`: a hard link; both paths stay inside their mounts.
    pub fn link(
        &self,
        from_fd: u32,
        follow: bool,
        from: &[u8],
        to_fd: u32,
        to: &[u8],
    ) -> FsResult<()> {
        let src = self.host_dir_at(from_fd, rights::PATH_LINK_SOURCE, from)?;
        let dst = self.host_dir_at(to_fd, rights::PATH_LINK_TARGET, to)?;
        let (from_p, to_p) = (guest_path(from)?, guest_path(to)?);
        let src_dir = as_dir(&src)?;
        let resolved;
        let from_p = if follow {
            // linkat(AT_SYMLINK_FOLLOW): link whatever the source finally names, inside the mount.
            src_dir.metadata(from_p)?;
            resolved = src_dir.canonicalize(from_p)?;
            resolved.as_path()
        } else {
            from_p
        };
        Ok(src_dir.hard_link(from_p, as_dir(&dst)?, to_p)?)
    }

    /// `path_symlink`: absolute targets are refused (EPERM).
    pub fn symlink(&self, target: &[u8], dirfd: u32, path: &[u8]) -> FsResult<()> {
        let dir = self.host_dir_at(dirfd, rights::PATH_SYMLINK, path)?;
        let (target, link) = (guest_path(target)?, guest_path(path)?);
        if target.is_absolute() {
            // Absolute targets would name host paths outside every mount.
            return Err(Errno::Perm);
        }
        Ok(as_dir(&dir)?.symlink(target, link)?)
    }

    /// `path_readlink`: the link's contents, whole.
    pub fn readlink(&self, dirfd: u32, path: &[u8]) -> FsResult<Vec<u8>> {
        let dir = self.host_dir_at(dirfd, rights::PATH_READLINK, path)?;
        let target = as_dir(&dir)?.read_link_contents(guest_path(path)?)?;
        Ok(target.into_os_string().into_vec_bytes())
    }

    /// `path_filestat_get`.
    pub fn path_filestat(&self, dirfd: u32, follow: bool, path: &[u8]) -> FsResult<Filestat> {
        let (base, _, path) = self.dir_at(dirfd, rights::PATH_FILESTAT_GET, path)?;
        let p = guest_path(path)?;
        match base {
            Base::Dev => dev_lookup(path).map(|name| match name {
                None => {
                    let mut st = synthetic_dev_stat(".");
                    st.ino = 1;
                    st.filetype = Filetype::Directory as u8;
                    st
                }
                Some(name) => synthetic_dev_stat(name),
            }),
            Base::Host(dir) => {
                let d = as_dir(&dir)?;
                let md = if follow {
                    d.metadata(p)?
                } else {
                    d.symlink_metadata(p)?
                };
                if has_trailing_slash(path) && !md.is_dir() {
                    return Err(Errno::Notdir);
                }
                Ok(metadata_to_filestat(&md))
            }
        }
    }

    /// `path_filestat_set_times`; without `follow` a final symlink itself changes.
    pub fn path_set_times(
        &self,
        dirfd: u32,
        follow: bool,
        path: &[u8],
        atim: TimeChange,
        mtim: TimeChange,
    ) -> FsResult<()> {
        let dir = self.host_dir_at(dirfd, rights::PATH_FILESTAT_SET_TIMES, path)?;
        let d = as_dir(&dir)?;
        let p = guest_path(path)?;
        if follow {
            Ok(d.set_times(p, time_spec(atim), time_spec(mtim))?)
        } else {
            Ok(d.set_symlink_times(p, time_spec(atim), time_spec(mtim))?)
        }
    }
}

trait IntoVecBytes {
    fn into_vec_bytes(self) -> Vec<u8>;
}

impl IntoVecBytes for std::ffi::OsString {
    fn into_vec_bytes(self) -> Vec<u8> {
        use std::os::unix::ffi::OsStringExt;
        self.into_vec()
    }
}

fn as_dir(file: &OpenFile) -> FsResult<&Dir> {
    match file.node() {
        Node::Dir(d) => Ok(d.dir()),
        _ => Err(Errno::Notdir),
    }
}

/// Resolves a path inside the synthetic /dev: `None` is the directory itself.
fn dev_lookup(path: &[u8]) -> FsResult<Option<&'static str>> {
    let trimmed: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    match trimmed.as_slice() {
        [] => Ok(None),
        [name] => {
            let name = std::str::from_utf8(name).map_err(|_| Errno::Noent)?;
            let found = Device::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or(Errno::Noent)?;
            if has_trailing_slash(path) {
                return Err(Errno::Notdir);
            }
            Ok(Some(found.0))
        }
        [first, ..] if *first == b".." => Err(Errno::Perm),
        _ => Err(Errno::Noent),
    }
}

fn open_dev(path: &[u8], oflags: u16) -> FsResult<(Node, u64)> {
    match dev_lookup(path)? {
        None => Ok((
            Node::DevDir,
            rights::PATH_OPEN
                | rights::FD_READDIR
                | rights::FD_FILESTAT_GET
                | rights::PATH_FILESTAT_GET,
        )),
        Some(_) if oflags & oflags::DIRECTORY != 0 => Err(Errno::Notdir),
        Some(_) if oflags & oflags::CREAT != 0 && oflags & oflags::EXCL != 0 => Err(Errno::Exist),
        Some(name) => {
            let dev = Device::by_name(name).ok_or(Errno::Noent)?;
            Ok((
                Node::Device(dev),
                rights::STREAM_BASE | rights::FD_SEEK | rights::FD_TELL,
            ))
        }
    }
}

/// Whether `path` under `dir` is a FIFO now.
fn is_fifo(dir: &Dir, path: &Path) -> bool {
    use cap_fs_ext::FileTypeExt;
    dir.metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

/// Opens `path` under `dir` as WASI asks. Never blocks: a FIFO opened for writing with no
/// reader answers [`Errno::Again`] unless the guest asked for O_NONBLOCK (then ENXIO, as
/// Linux); the caller waits for a reader and asks again.
pub(crate) fn open_host(
    dir: &Dir,
    path: &Path,
    follow: bool,
    oflags: u16,
    want_base: u64,
    fdflags: u16,
) -> FsResult<(Node, u64)> {
    let creat = oflags & oflags::CREAT != 0;
    let directory = oflags & oflags::DIRECTORY != 0;
    let trunc = oflags & oflags::TRUNC != 0;
    let append = fdflags & fdflags::APPEND != 0;
    if directory && (creat || trunc) {
        return Err(Errno::Inval);
    }
    let wants_write =
        want_base & (rights::FD_WRITE | rights::FD_ALLOCATE | rights::FD_FILESTAT_SET_SIZE) != 0;
    // Asking to write a directory is EISDIR from the kernel, as POSIX wants.
    let write = wants_write || append || trunc;
    let read = directory || want_base & (rights::FD_READ | rights::FD_READDIR) != 0 || !write;

    let mut opts = OpenOptions::new();
    opts.read(read).write(write).append(append);
    // Creation flags go in as raw flags: std-style options refuse O_CREAT on a descriptor
    // opened read-only, which POSIX (and WASI, where rights decide access) allows.
    let mut custom = 0;
    if creat {
        custom |= libc::O_CREAT;
        if oflags & oflags::EXCL != 0 {
            custom |= libc::O_EXCL;
        }
    }
    if trunc {
        custom |= libc::O_TRUNC;
    }
    opts.follow(if follow {
        FollowSymlinks::Yes
    } else {
        FollowSymlinks::No
    });
    opts.maybe_dir(true);
    if directory {
        custom |= libc::O_DIRECTORY;
    }
    // Always without blocking: open(2) of a FIFO waits for its other end, outside anything
    // a signal or a kill could end. Cleared again below unless the guest asked for it.
    let guest_nonblock = fdflags & fdflags::NONBLOCK != 0;
    custom |= libc::O_NONBLOCK;
    if fdflags & fdflags::DSYNC != 0 {
        custom |= libc::O_DSYNC;
    }
    if fdflags & fdflags::SYNC != 0 {
        custom |= libc::O_SYNC;
    }
    if fdflags & fdflags::RSYNC != 0 {
        custom |= libc::O_RSYNC;
    }
    opts.custom_flags(custom);
    opts.mode(0o666);

    let file = match dir.open_with(path, &opts) {
        Ok(f) => f,
        // A FIFO opened for writing with no reader yet: blocking, the open would wait for
        // one. Again tells the caller to wait (interruptibly) and try again.
        Err(e)
            if e.raw_os_error() == Some(libc::ENXIO) && !guest_nonblock && is_fifo(dir, path) =>
        {
            return Err(Errno::Again);
        }
        // Opening a directory for writing is EISDIR on Linux already; a symlink with
        // O_NOFOLLOW is ELOOP. Both come through unchanged.
        Err(e) => return Err(Errno::from(e)),
    };
    if !guest_nonblock {
        let flags = rustix::fs::fcntl_getfl(&file)?;
        rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    }
    let st = rustix::fs::fstat(&file)?;
    match Filetype::from_mode(st.st_mode) {
        Filetype::Directory => {
            let dir = Dir::from_std_file(file.into_std());
            Ok((Node::Dir(Directory::new(dir)), rights::DIR_BASE))
        }
        _ if directory => Err(Errno::Notdir),
        Filetype::RegularFile => {
            if has_trailing_slash(path.as_os_str().as_bytes()) {
                return Err(Errno::Notdir);
            }
            Ok((Node::File(file), rights::FILE_BASE))
        }
        // FIFOs, sockets and devices reached through a mount behave as streams.
        _ => {
            let fd: OwnedFd = file.into_std().into();
            Ok((Node::Stream(HostFd::Owned(fd)), rights::STREAM_BASE))
        }
    }
}

/// The two ends of a new two-way pipe (a host socket pair) and the id that names it: the
/// first end's inode, unique while it is open.
pub(crate) fn duplex_ends() -> FsResult<(OwnedFd, OwnedFd, u64)> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let id = rustix::fs::fstat(&a)?.st_ino;
    Ok((a, b, id))
}
