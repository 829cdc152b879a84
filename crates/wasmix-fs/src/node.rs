//! Open file descriptions: what a descriptor refers to, shared between duplicated descriptors
//! and between a forked parent and child (the offset and status flags live here, as in POSIX).

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;

use cap_std::fs::{Dir, File};
use rustix::fs::{OFlags, SeekFrom};

use crate::abi::{fdflags, Filestat, Filetype, Whence};
use crate::errno::{Errno, FsResult};

/// A character device provided by wasmix itself (the guest's `/dev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// Discards writes, reads end of file.
    Null,
    /// Discards writes, reads zeros.
    Zero,
    /// Writes fail with ENOSPC, reads zeros.
    Full,
    /// Reads random bytes.
    Random,
}

impl Device {
    /// Device names as they appear in the guest's `/dev`, in listing order.
    pub const ALL: [(&'static str, Device); 5] = [
        ("null", Device::Null),
        ("zero", Device::Zero),
        ("full", Device::Full),
        ("random", Device::Random),
        ("urandom", Device::Random),
    ];

    /// The device called `name` in `/dev`.
    pub fn by_name(name: &str) -> Option<Device> {
        Device::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
    }

    /// Stable inode numbers so `stat` tells the devices apart.
    pub fn ino(name: &str) -> u64 {
        Device::ALL
            .iter()
            .position(|(n, _)| *n == name)
            .map_or(1, |i| i as u64 + 2)
    }
}

/// A host directory opened beneath a mount, plus the listing `fd_readdir` pages through.
pub struct Directory {
    dir: Dir,
    /// Snapshot taken when a listing starts at cookie 0, so cookies stay stable while paging.
    listing: Mutex<Vec<DirEntry>>,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// File name, no NUL.
    pub name: Vec<u8>,
    /// Inode number, as `stat` reports it.
    pub ino: u64,
    /// Kind of file.
    pub filetype: Filetype,
}

impl Directory {
    pub fn new(dir: Dir) -> Directory {
        Directory {
            dir,
            listing: Mutex::new(Vec::new()),
        }
    }

    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Entries from position `cookie` on, with `.` and `..` first.
    pub fn entries_from(&self, cookie: u64) -> FsResult<Vec<DirEntry>> {
        let mut listing = self.listing.lock().unwrap_or_else(|e| e.into_inner());
        if cookie == 0 || listing.is_empty() {
            *listing = self.read_listing()?;
        }
        let start = usize::try_from(cookie)
            .unwrap_or(usize::MAX)
            .min(listing.len());
        Ok(listing[start..].to_vec())
    }

    fn read_listing(&self) -> FsResult<Vec<DirEntry>> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::DirEntryExt;
        let own = rustix::fs::fstat(&self.dir)?;
        // `..` of a mount root is outside the sandbox: report the root itself, like `/..`.
        let parent = rustix::fs::statat(&self.dir, "..", rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map(|s| s.st_ino)
            .unwrap_or(own.st_ino);
        let mut out = vec![
            DirEntry {
                name: b".".to_vec(),
                ino: own.st_ino,
                filetype: Filetype::Directory,
            },
            DirEntry {
                name: b"..".to_vec(),
                ino: parent,
                filetype: Filetype::Directory,
            },
        ];
        for entry in self.dir.entries()? {
            let entry = entry?;
            let filetype = match entry.file_type() {
                Ok(t) => filetype_of(&t),
                Err(_) => Filetype::Unknown,
            };
            out.push(DirEntry {
                name: entry.file_name().as_bytes().to_vec(),
                ino: entry.ino(),
                filetype,
            });
        }
        Ok(out)
    }
}

pub(crate) fn filetype_of(t: &cap_std::fs::FileType) -> Filetype {
    use cap_std::fs::FileTypeExt;
    if t.is_dir() {
        Filetype::Directory
    } else if t.is_file() {
        Filetype::RegularFile
    } else if t.is_symlink() {
        Filetype::SymbolicLink
    } else if t.is_char_device() {
        Filetype::CharacterDevice
    } else if t.is_block_device() {
        Filetype::BlockDevice
    } else if t.is_socket() {
        Filetype::SocketStream
    } else {
        Filetype::Unknown
    }
}

/// A host descriptor used as a byte stream: inherited stdio, a pipe, a socket.
pub enum HostFd {
    /// One of the runtime's own standard descriptors, never closed by the guest.
    Inherited(BorrowedFd<'static>),
    /// A descriptor this process owns and closes.
    Owned(OwnedFd),
}

impl AsFd for HostFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            HostFd::Inherited(fd) => *fd,
            HostFd::Owned(fd) => fd.as_fd(),
        }
    }
}

/// What an open file description refers to.
pub enum Node {
    /// A regular file beneath a mount.
    File(File),
    /// A directory beneath a mount.
    Dir(Directory),
    /// A byte stream: stdio, a socket, a FIFO.
    Stream(HostFd),
    /// A synthetic `/dev` node.
    Device(Device),
    /// The synthetic `/dev` directory holding the [`Device`]s.
    DevDir,
    /// An epoll instance.
    Epoll(crate::epoll::Epoll),
}

/// An open file description.
pub struct OpenFile {
    node: Node,
    /// The preopen it was opened beneath and its path there (files and directories), so a
    /// snapshot can name it and a restore open it again.
    path: Option<(String, String)>,
    /// For an end of a two-way pipe: the pipe's id and whether this is its first end, so a
    /// snapshot can pair the ends again.
    duplex: Option<(u64, bool)>,
    /// Status flags (`fdflags`) as the guest last set them.
    flags: AtomicU16,
    /// Whether I/O may wait indefinitely, found out on first use.
    may_block: std::sync::OnceLock<bool>,
    /// The host descriptor stays non-blocking whatever the guest's flags say (a socket
    /// wasmix opened: a blocking guest's call waits beside its interrupt, then retries).
    host_nonblocking: bool,
}

impl OpenFile {
    /// A description of `node` opened with `fdflags` `flags`.
    pub fn new(node: Node, flags: u16) -> OpenFile {
        OpenFile {
            node,
            path: None,
            duplex: None,
            flags: AtomicU16::new(flags),
            may_block: std::sync::OnceLock::new(),
            host_nonblocking: false,
        }
    }

    /// A socket wasmix opened (host descriptor already non-blocking), with guest `fdflags`
    /// `flags`.
    pub fn socket(fd: OwnedFd, flags: u16) -> OpenFile {
        let mut file = OpenFile::new(Node::Stream(HostFd::Owned(fd)), flags);
        file.host_nonblocking = true;
        file
    }

    /// Whether it is a socket wasmix opened or accepted for the guest.
    pub fn opened_socket(&self) -> bool {
        self.host_nonblocking
    }

    /// An epoll instance.
    pub fn epoll(epoll: crate::epoll::Epoll) -> OpenFile {
        OpenFile::new(Node::Epoll(epoll), 0)
    }

    /// The epoll instance it is, if it is one.
    pub fn as_epoll(&self) -> Option<&crate::epoll::Epoll> {
        match &self.node {
            Node::Epoll(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the guest's calls on it wait (it is a blocking stream): then an EAGAIN from
    /// the host, which another reader took the data from first, means wait again.
    pub fn waits(&self) -> bool {
        self.flags() & fdflags::NONBLOCK == 0 && self.may_block()
    }

    /// Whether a read or write here can wait indefinitely: pipes, sockets and terminals can;
    /// files, directories, `/dev/null`-like devices and our synthetic nodes cannot.
    pub fn may_block(&self) -> bool {
        *self.may_block.get_or_init(|| match &self.node {
            Node::Stream(s) => match rustix::fs::fstat(s.as_fd()) {
                Ok(st) => match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                    rustix::fs::FileType::Fifo | rustix::fs::FileType::Socket => true,
                    rustix::fs::FileType::CharacterDevice => rustix::termios::isatty(s.as_fd()),
                    rustix::fs::FileType::RegularFile | rustix::fs::FileType::Directory => false,
                    _ => true,
                },
                Err(_) => true,
            },
            _ => false,
        })
    }

    /// The same description, remembering it was opened as `path` (relative, `.` for the
    /// directory itself) beneath the preopen named `mount`.
    pub fn with_path(mut self, mount: impl Into<String>, path: impl Into<String>) -> OpenFile {
        self.path = Some((mount.into(), path.into()));
        self
    }

    /// The same description, as end `first` (or the second) of the two-way pipe `id`.
    pub fn with_duplex(mut self, id: u64, first: bool) -> OpenFile {
        self.duplex = Some((id, first));
        self
    }

    /// The two-way pipe it is an end of (its id, and whether it is the first end).
    pub fn duplex(&self) -> Option<(u64, bool)> {
        self.duplex
    }

    /// The preopen it was opened beneath and its path there, if it was opened by a path.
    pub fn path(&self) -> Option<(&str, &str)> {
        self.path.as_ref().map(|(m, p)| (m.as_str(), p.as_str()))
    }

    /// What it refers to.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Its current `fdflags`.
    pub fn flags(&self) -> u16 {
        self.flags.load(Ordering::Relaxed)
    }

    fn host_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.node {
            Node::File(f) => Some(f.as_fd()),
            Node::Dir(d) => Some(d.dir.as_fd()),
            Node::Stream(s) => Some(s.as_fd()),
            Node::Epoll(e) => Some(e.as_fd()),
            Node::Device(_) | Node::DevDir => None,
        }
    }

    /// The host descriptor to wait on in `poll`, if readiness is not immediate.
    pub fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.node {
            Node::Stream(s) => Some(s.as_fd()),
            Node::Epoll(e) => Some(e.as_fd()),
            _ => None,
        }
    }

    /// The WASI file type.
    pub fn filetype(&self) -> FsResult<Filetype> {
        if self.duplex.is_some() {
            // A two-way pipe is a socket pair underneath; it reads as any pipe does.
            return Ok(Filetype::Unknown);
        }
        Ok(match &self.node {
            Node::File(_) | Node::Stream(_) => {
                let st = rustix::fs::fstat(self.host_fd().ok_or(Errno::Badf)?)?;
                let t = Filetype::from_mode(st.st_mode);
                if t == Filetype::SocketStream {
                    socket_type(self.host_fd().ok_or(Errno::Badf)?)
                } else {
                    t
                }
            }
            Node::Dir(_) | Node::DevDir => Filetype::Directory,
            Node::Device(_) => Filetype::CharacterDevice,
            Node::Epoll(_) => Filetype::Unknown,
        })
    }

    /// Whether path operations can start here.
    pub fn is_dir(&self) -> bool {
        matches!(self.node, Node::Dir(_) | Node::DevDir)
    }

    /// `fstat`.
    pub fn filestat(&self) -> FsResult<Filestat> {
        match &self.node {
            Node::Device(d) => {
                let name = Device::ALL
                    .iter()
                    .find(|(_, x)| x == d)
                    .map_or("null", |(n, _)| n);
                Ok(device_stat(Device::ino(name)))
            }
            Node::DevDir => Ok(Filestat {
                dev: DEV_ID,
                ino: 1,
                filetype: Filetype::Directory as u8,
                nlink: 2,
                ..Filestat::default()
            }),
            _ => {
                let fd = self.host_fd().ok_or(Errno::Badf)?;
                let mut st = stat_to_filestat(&rustix::fs::fstat(fd)?);
                if self.duplex.is_some() {
                    st.filetype = Filetype::Unknown as u8;
                } else if st.filetype == Filetype::SocketStream as u8 {
                    st.filetype = socket_type(fd) as u8;
                }
                Ok(st)
            }
        }
    }

    /// Reads at the shared offset.
    pub fn read(&self, buf: &mut [u8]) -> FsResult<usize> {
        match &self.node {
            Node::Device(Device::Null) => Ok(0),
            Node::Device(Device::Zero | Device::Full) => {
                buf.fill(0);
                Ok(buf.len())
            }
            Node::Device(Device::Random) => {
                getrandom::fill(buf).map_err(|_| Errno::Io)?;
                Ok(buf.len())
            }
            Node::Dir(_) | Node::DevDir => Err(Errno::Isdir),
            _ => Ok(rustix::io::read(self.host_fd().ok_or(Errno::Badf)?, buf)?),
        }
    }

    /// Reads at `offset` (ESPIPE on streams).
    pub fn pread(&self, buf: &mut [u8], offset: u64) -> FsResult<usize> {
        match &self.node {
            Node::File(f) => Ok(rustix::io::pread(f, buf, offset)?),
            Node::Stream(_) => Err(Errno::Spipe),
            _ => self.read(buf),
        }
    }

    /// Writes at the shared offset (or the end, with APPEND).
    pub fn write(&self, bufs: &[IoSlice<'_>]) -> FsResult<usize> {
        let total = bufs.iter().map(|b| b.len()).sum();
        match &self.node {
            Node::Device(Device::Full) => Err(Errno::Nospc),
            Node::Device(_) => Ok(total),
            Node::Dir(_) | Node::DevDir => Err(Errno::Isdir),
            _ => {
                let fd = self.host_fd().ok_or(Errno::Badf)?;
                Ok(match bufs {
                    [one] => rustix::io::write(fd, one)?,
                    _ => rustix::io::writev(fd, bufs)?,
                })
            }
        }
    }

    /// Writes at `offset` (ESPIPE on streams).
    pub fn pwrite(&self, bufs: &[IoSlice<'_>], offset: u64) -> FsResult<usize> {
        match &self.node {
            Node::File(f) => Ok(rustix::io::pwritev(f, bufs, offset)?),
            Node::Stream(_) => Err(Errno::Spipe),
            _ => self.write(bufs),
        }
    }

    /// Moves the shared offset.
    pub fn seek(&self, offset: i64, whence: Whence) -> FsResult<u64> {
        match &self.node {
            Node::File(f) => {
                let pos = match whence {
                    Whence::Set => {
                        SeekFrom::Start(u64::try_from(offset).map_err(|_| Errno::Inval)?)
                    }
                    Whence::Cur => SeekFrom::Current(offset),
                    Whence::End => SeekFrom::End(offset),
                };
                Ok(rustix::fs::seek(f, pos)?)
            }
            Node::Device(_) => Ok(0),
            Node::Stream(_) | Node::Epoll(_) => Err(Errno::Spipe),
            Node::Dir(_) | Node::DevDir => Err(Errno::Isdir),
        }
    }

    /// Changes the status flags; only APPEND and NONBLOCK can change after open (as on Linux).
    pub fn set_flags(&self, flags: u16) -> FsResult<()> {
        let changeable = fdflags::APPEND | fdflags::NONBLOCK;
        let current = self.flags();
        if (flags ^ current) & !changeable != 0 {
            return Err(Errno::Notsup);
        }
        if let Some(fd) = self.host_fd() {
            let mut host = rustix::fs::fcntl_getfl(fd)?;
            host.set(OFlags::APPEND, flags & fdflags::APPEND != 0);
            host.set(
                OFlags::NONBLOCK,
                self.host_nonblocking || flags & fdflags::NONBLOCK != 0,
            );
            rustix::fs::fcntl_setfl(fd, host)?;
        }
        self.flags.store(flags, Ordering::Relaxed);
        Ok(())
    }

    /// The host descriptor behind it (EINVAL for synthetic nodes).
    pub fn host(&self) -> FsResult<BorrowedFd<'_>> {
        self.host_fd().ok_or(Errno::Inval)
    }

    /// Bytes that can be read without blocking, where that is cheap to know.
    pub fn readable_bytes(&self) -> u64 {
        match &self.node {
            Node::File(f) => {
                let size = rustix::fs::fstat(f).map(|s| s.st_size as u64).unwrap_or(0);
                let pos = rustix::fs::seek(f, SeekFrom::Current(0)).unwrap_or(0);
                size.saturating_sub(pos)
            }
            _ => 0,
        }
    }
}

/// The device number reported for wasmix's synthetic nodes.
const DEV_ID: u64 = 0x7761_736d;

fn device_stat(ino: u64) -> Filestat {
    Filestat {
        dev: DEV_ID,
        ino,
        filetype: Filetype::CharacterDevice as u8,
        nlink: 1,
        ..Filestat::default()
    }
}

fn socket_type(fd: BorrowedFd<'_>) -> Filetype {
    match rustix::net::sockopt::socket_type(fd) {
        Ok(rustix::net::SocketType::DGRAM) => Filetype::SocketDgram,
        _ => Filetype::SocketStream,
    }
}

fn ts(sec: i64, nsec: i64) -> u64 {
    (sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec.max(0) as u64)
}

pub(crate) fn stat_to_filestat(st: &rustix::fs::Stat) -> Filestat {
    Filestat {
        dev: st.st_dev,
        ino: st.st_ino,
        filetype: Filetype::from_mode(st.st_mode) as u8,
        nlink: st.st_nlink,
        size: st.st_size as u64,
        atim: ts(st.st_atime, st.st_atime_nsec as i64),
        mtim: ts(st.st_mtime, st.st_mtime_nsec as i64),
        ctim: ts(st.st_ctime, st.st_ctime_nsec as i64),
    }
}

pub(crate) fn metadata_to_filestat(md: &cap_std::fs::Metadata) -> Filestat {
    use cap_std::fs::MetadataExt;
    Filestat {
        dev: md.dev(),
        ino: md.ino(),
        filetype: filetype_of(&md.file_type()) as u8,
        nlink: md.nlink(),
        size: md.size(),
        atim: ts(md.atime(), md.atime_nsec()),
        mtim: ts(md.mtime(), md.mtime_nsec()),
        ctim: ts(md.ctime(), md.ctime_nsec()),
    }
}

pub(crate) fn synthetic_dev_stat(name: &str) -> Filestat {
    device_stat(Device::ino(name))
}
