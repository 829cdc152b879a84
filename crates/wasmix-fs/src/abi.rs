//! WASI preview1 constants shared by the fd table and the syscall layer.
//!
//! The fd table speaks in these terms (rights, fdflags, filetypes) because they are the contract
//! guests rely on; the wire layouts of structs live in the runtime's syscall layer.

/// Capability bits attached to each descriptor (`rights` in WASI).
pub mod rights {
    /// Grants the right to call `fd_datasync`.
    pub const FD_DATASYNC: u64 = 1 << 0;
    /// Grants the right to call `fd_read`.
    pub const FD_READ: u64 = 1 << 1;
    /// Grants the right to call `fd_seek`.
    pub const FD_SEEK: u64 = 1 << 2;
    /// Grants the right to call `fd_fdstat_set_flags`.
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    /// Grants the right to call `fd_sync`.
    pub const FD_SYNC: u64 = 1 << 4;
    /// Grants the right to call `fd_tell`.
    pub const FD_TELL: u64 = 1 << 5;
    /// Grants the right to call `fd_write`.
    pub const FD_WRITE: u64 = 1 << 6;
    /// Grants the right to call `fd_advise`.
    pub const FD_ADVISE: u64 = 1 << 7;
    /// Grants the right to call `fd_allocate`.
    pub const FD_ALLOCATE: u64 = 1 << 8;
    /// Grants the right to call `path_create_directory`.
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    /// Grants the right to call `path_create_file`.
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    /// Grants the right to call `path_link_source`.
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    /// Grants the right to call `path_link_target`.
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    /// Grants the right to call `path_open`.
    pub const PATH_OPEN: u64 = 1 << 13;
    /// Grants the right to call `fd_readdir`.
    pub const FD_READDIR: u64 = 1 << 14;
    /// Grants the right to call `path_readlink`.
    pub const PATH_READLINK: u64 = 1 << 15;
    /// Grants the right to call `path_rename_source`.
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    /// Grants the right to call `path_rename_target`.
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    /// Grants the right to call `path_filestat_get`.
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    /// Grants the right to call `path_filestat_set_size`.
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    /// Grants the right to call `path_filestat_set_times`.
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    /// Grants the right to call `fd_filestat_get`.
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    /// Grants the right to call `fd_filestat_set_size`.
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    /// Grants the right to call `fd_filestat_set_times`.
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    /// Grants the right to call `path_symlink`.
    pub const PATH_SYMLINK: u64 = 1 << 24;
    /// Grants the right to call `path_remove_directory`.
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    /// Grants the right to call `path_unlink_file`.
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    /// Grants the right to wait for readiness in `poll_oneoff`.
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    /// Grants the right to call `sock_shutdown`.
    pub const SOCK_SHUTDOWN: u64 = 1 << 28;
    /// Grants the right to call `sock_accept`.
    pub const SOCK_ACCEPT: u64 = 1 << 29;
    /// WASIX: `sock_connect`.
    pub const SOCK_CONNECT: u64 = 1 << 30;
    /// WASIX: `sock_listen`.
    pub const SOCK_LISTEN: u64 = 1 << 31;
    /// WASIX: `sock_bind`.
    pub const SOCK_BIND: u64 = 1 << 32;
    /// WASIX: `sock_recv`.
    pub const SOCK_RECV: u64 = 1 << 33;
    /// WASIX: `sock_send`.
    pub const SOCK_SEND: u64 = 1 << 34;
    /// WASIX: `sock_addr_local`.
    pub const SOCK_ADDR_LOCAL: u64 = 1 << 35;
    /// WASIX: `sock_addr_peer`.
    pub const SOCK_ADDR_REMOTE: u64 = 1 << 36;
    /// WASIX: `sock_recv_from`.
    pub const SOCK_RECV_FROM: u64 = 1 << 37;
    /// WASIX: `sock_send_to`.
    pub const SOCK_SEND_TO: u64 = 1 << 38;

    /// Every right a regular file can hold.
    pub const FILE_BASE: u64 = FD_DATASYNC
        | FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_TELL
        | FD_WRITE
        | FD_ADVISE
        | FD_ALLOCATE
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_SIZE
        | FD_FILESTAT_SET_TIMES
        | POLL_FD_READWRITE;

    /// Every right a directory can hold (no read/write/seek: those fail on directories).
    pub const DIR_BASE: u64 = FD_DATASYNC
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_ADVISE
        | PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_LINK_SOURCE
        | PATH_LINK_TARGET
        | PATH_OPEN
        | FD_READDIR
        | PATH_READLINK
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_FILESTAT_GET
        | PATH_FILESTAT_SET_SIZE
        | PATH_FILESTAT_SET_TIMES
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_TIMES
        | PATH_SYMLINK
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE
        | POLL_FD_READWRITE;

    /// What descriptors opened beneath a directory may inherit.
    pub const DIR_INHERITING: u64 = FILE_BASE | DIR_BASE;

    /// Rights of a stream (stdio, pipe, character device): no seek, no tell.
    pub const STREAM_BASE: u64 =
        FD_READ | FD_WRITE | FD_FDSTAT_SET_FLAGS | FD_FILESTAT_GET | POLL_FD_READWRITE;

    /// Rights of a socket a guest opened or accepted: a stream's, and every socket call.
    pub const SOCKET_BASE: u64 = STREAM_BASE
        | SOCK_SHUTDOWN
        | SOCK_ACCEPT
        | SOCK_CONNECT
        | SOCK_LISTEN
        | SOCK_BIND
        | SOCK_RECV
        | SOCK_SEND
        | SOCK_ADDR_LOCAL
        | SOCK_ADDR_REMOTE
        | SOCK_RECV_FROM
        | SOCK_SEND_TO;
}

/// Descriptor flags (`fdflags`).
pub mod fdflags {
    /// Writes go to the end of the file.
    pub const APPEND: u16 = 1 << 0;
    /// Writes wait until data is durable.
    pub const DSYNC: u16 = 1 << 1;
    /// Operations fail with EAGAIN instead of blocking.
    pub const NONBLOCK: u16 = 1 << 2;
    /// Reads wait for pending writes to be durable.
    pub const RSYNC: u16 = 1 << 3;
    /// Writes wait until data and metadata are durable.
    pub const SYNC: u16 = 1 << 4;
    /// Every defined flag.
    pub const ALL: u16 = APPEND | DSYNC | NONBLOCK | RSYNC | SYNC;
}

/// Flags of `path_open` (`oflags`).
pub mod oflags {
    /// Create the file if it does not exist.
    pub const CREAT: u16 = 1 << 0;
    /// Fail unless the path is a directory.
    pub const DIRECTORY: u16 = 1 << 1;
    /// With CREAT, fail if the file exists.
    pub const EXCL: u16 = 1 << 2;
    /// Truncate the file to length 0.
    pub const TRUNC: u16 = 1 << 3;
}

/// Which timestamps `*_filestat_set_times` changes (`fstflags`).
pub mod fstflags {
    /// Set the access time to the given value.
    pub const ATIM: u16 = 1 << 0;
    /// Set the access time to now.
    pub const ATIM_NOW: u16 = 1 << 1;
    /// Set the modification time to the given value.
    pub const MTIM: u16 = 1 << 2;
    /// Set the modification time to now.
    pub const MTIM_NOW: u16 = 1 << 3;
}

/// The type of a file as WASI reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Filetype {
    /// Not one of the kinds below (pipes, for instance).
    Unknown = 0,
    /// A block device.
    BlockDevice = 1,
    /// A character device (terminals, /dev/null).
    CharacterDevice = 2,
    /// A directory.
    Directory = 3,
    /// A regular file.
    RegularFile = 4,
    /// A datagram socket.
    SocketDgram = 5,
    /// A stream socket.
    SocketStream = 6,
    /// A symbolic link.
    SymbolicLink = 7,
}

impl Filetype {
    /// Classifies a host `st_mode`.
    pub fn from_mode(mode: u32) -> Filetype {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Filetype::RegularFile,
            libc::S_IFDIR => Filetype::Directory,
            libc::S_IFLNK => Filetype::SymbolicLink,
            libc::S_IFCHR => Filetype::CharacterDevice,
            libc::S_IFBLK => Filetype::BlockDevice,
            libc::S_IFSOCK => Filetype::SocketStream,
            _ => Filetype::Unknown,
        }
    }
}

/// `filestat`, independent of its wire layout (which differs between preview0 and preview1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filestat {
    /// Device holding the file.
    pub dev: u64,
    /// Inode number, unique on `dev`.
    pub ino: u64,
    /// A [`Filetype`] as its raw number.
    pub filetype: u8,
    /// Number of hard links.
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Last access, nanoseconds since the epoch.
    pub atim: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtim: u64,
    /// Last status change, nanoseconds since the epoch.
    pub ctim: u64,
}

/// `fdstat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fdstat {
    /// What kind of file the descriptor refers to.
    pub filetype: Filetype,
    /// Its `fdflags`.
    pub flags: u16,
    /// Rights that apply to the descriptor itself.
    pub rights_base: u64,
    /// Rights that descriptors opened beneath it may hold.
    pub rights_inheriting: u64,
}

/// `whence` of `fd_seek`, after the ABI-specific numbering has been decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whence {
    /// From the start of the file.
    Set,
    /// From the current offset.
    Cur,
    /// From the end of the file.
    End,
}

/// `advice` of `fd_advise`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advice {
    /// No particular access pattern.
    Normal,
    /// Sequential access.
    Sequential,
    /// Random access.
    Random,
    /// The data will be needed soon.
    WillNeed,
    /// The data will not be needed soon.
    DontNeed,
    /// The data will be accessed once.
    NoReuse,
}

impl Advice {
    /// Decodes the raw `advice` value; `None` for an unknown one (EINVAL).
    pub fn from_raw(raw: u8) -> Option<Advice> {
        Some(match raw {
            0 => Advice::Normal,
            1 => Advice::Sequential,
            2 => Advice::Random,
            3 => Advice::WillNeed,
            4 => Advice::DontNeed,
            5 => Advice::NoReuse,
            _ => return None,
        })
    }
}

/// A timestamp change requested by `*_filestat_set_times`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeChange {
    /// Leave the timestamp as it is.
    Keep,
    /// Set it to the current time.
    Now,
    /// Nanoseconds since the Unix epoch.
    At(u64),
}

impl TimeChange {
    /// Decodes one of the two (value, set-flag, now-flag) triples of `fstflags`.
    pub fn decode(value: u64, flags: u16, set: u16, now: u16) -> Result<TimeChange, crate::Errno> {
        match (flags & set != 0, flags & now != 0) {
            (true, true) => Err(crate::Errno::Inval),
            (true, false) => Ok(TimeChange::At(value)),
            (false, true) => Ok(TimeChange::Now),
            (false, false) => Ok(TimeChange::Keep),
        }
    }
}
