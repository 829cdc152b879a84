//! WASI errno values and the mapping from host errors.

use std::io;

/// A WASI error number (the numbering is the same in preview0 and preview1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Errno {
    /// Argument list too long (E2BIG).
    TooBig = 1,
    /// Permission denied (EACCES).
    Acces = 2,
    /// Address already in use (EADDRINUSE).
    Addrinuse = 3,
    /// Cannot assign requested address (EADDRNOTAVAIL).
    Addrnotavail = 4,
    /// Address family not supported by protocol (EAFNOSUPPORT).
    Afnosupport = 5,
    /// Resource temporarily unavailable (EAGAIN).
    Again = 6,
    /// Operation already in progress (EALREADY).
    Already = 7,
    /// Bad file descriptor (EBADF).
    Badf = 8,
    /// Bad message (EBADMSG).
    Badmsg = 9,
    /// Device or resource busy (EBUSY).
    Busy = 10,
    /// Operation canceled (ECANCELED).
    Canceled = 11,
    /// No child processes (ECHILD).
    Child = 12,
    /// Software caused connection abort (ECONNABORTED).
    Connaborted = 13,
    /// Connection refused (ECONNREFUSED).
    Connrefused = 14,
    /// Connection reset by peer (ECONNRESET).
    Connreset = 15,
    /// Resource deadlock avoided (EDEADLK).
    Deadlk = 16,
    /// Destination address required (EDESTADDRREQ).
    Destaddrreq = 17,
    /// Numerical argument out of domain (EDOM).
    Dom = 18,
    /// Disk quota exceeded (EDQUOT).
    Dquot = 19,
    /// File exists (EEXIST).
    Exist = 20,
    /// Bad address (EFAULT).
    Fault = 21,
    /// File too large (EFBIG).
    Fbig = 22,
    /// No route to host (EHOSTUNREACH).
    Hostunreach = 23,
    /// Identifier removed (EIDRM).
    Idrm = 24,
    /// Invalid or incomplete multibyte or wide character (EILSEQ).
    Ilseq = 25,
    /// Operation now in progress (EINPROGRESS).
    Inprogress = 26,
    /// Interrupted system call (EINTR).
    Intr = 27,
    /// Invalid argument (EINVAL).
    Inval = 28,
    /// Input/output error (EIO).
    Io = 29,
    /// Transport endpoint is already connected (EISCONN).
    Isconn = 30,
    /// Is a directory (EISDIR).
    Isdir = 31,
    /// Too many levels of symbolic links (ELOOP).
    Loop = 32,
    /// Too many open files (EMFILE).
    Mfile = 33,
    /// Too many links (EMLINK).
    Mlink = 34,
    /// Message too long (EMSGSIZE).
    Msgsize = 35,
    /// Multihop attempted (EMULTIHOP).
    Multihop = 36,
    /// File name too long (ENAMETOOLONG).
    Nametoolong = 37,
    /// Network is down (ENETDOWN).
    Netdown = 38,
    /// Network dropped connection on reset (ENETRESET).
    Netreset = 39,
    /// Network is unreachable (ENETUNREACH).
    Netunreach = 40,
    /// Too many open files in system (ENFILE).
    Nfile = 41,
    /// No buffer space available (ENOBUFS).
    Nobufs = 42,
    /// No such device (ENODEV).
    Nodev = 43,
    /// No such file or directory (ENOENT).
    Noent = 44,
    /// Exec format error (ENOEXEC).
    Noexec = 45,
    /// No locks available (ENOLCK).
    Nolck = 46,
    /// Link has been severed (ENOLINK).
    Nolink = 47,
    /// Cannot allocate memory (ENOMEM).
    Nomem = 48,
    /// No message of desired type (ENOMSG).
    Nomsg = 49,
    /// Protocol not available (ENOPROTOOPT).
    Noprotoopt = 50,
    /// No space left on device (ENOSPC).
    Nospc = 51,
    /// Function not implemented (ENOSYS).
    Nosys = 52,
    /// Transport endpoint is not connected (ENOTCONN).
    Notconn = 53,
    /// Not a directory (ENOTDIR).
    Notdir = 54,
    /// Directory not empty (ENOTEMPTY).
    Notempty = 55,
    /// State not recoverable (ENOTRECOVERABLE).
    Notrecoverable = 56,
    /// Socket operation on non-socket (ENOTSOCK).
    Notsock = 57,
    /// Operation not supported (EOPNOTSUPP).
    Notsup = 58,
    /// Inappropriate ioctl for device (ENOTTY).
    Notty = 59,
    /// No such device or address (ENXIO).
    Nxio = 60,
    /// Value too large for defined data type (EOVERFLOW).
    Overflow = 61,
    /// Owner died (EOWNERDEAD).
    Ownerdead = 62,
    /// Operation not permitted (EPERM).
    Perm = 63,
    /// Broken pipe (EPIPE).
    Pipe = 64,
    /// Protocol error (EPROTO).
    Proto = 65,
    /// Protocol not supported (EPROTONOSUPPORT).
    Protonosupport = 66,
    /// Protocol wrong type for socket (EPROTOTYPE).
    Prototype = 67,
    /// Numerical result out of range (ERANGE).
    Range = 68,
    /// Read-only file system (EROFS).
    Rofs = 69,
    /// Illegal seek (ESPIPE).
    Spipe = 70,
    /// No such process (ESRCH).
    Srch = 71,
    /// Stale file handle (ESTALE).
    Stale = 72,
    /// Connection timed out (ETIMEDOUT).
    Timedout = 73,
    /// Text file busy (ETXTBSY).
    Txtbsy = 74,
    /// Invalid cross-device link (EXDEV).
    Xdev = 75,
    /// Extension: the descriptor lacks a right the operation needs (ENOTCAPABLE).
    Notcapable = 76,
}

impl Errno {
    /// The raw number a guest sees.
    pub fn raw(self) -> u16 {
        self as u16
    }

    /// The errno a WASI number names (`None` for 0, success, and numbers past the last).
    pub fn from_raw(raw: u16) -> Option<Errno> {
        Some(match raw {
            1 => Errno::TooBig,
            2 => Errno::Acces,
            3 => Errno::Addrinuse,
            4 => Errno::Addrnotavail,
            5 => Errno::Afnosupport,
            6 => Errno::Again,
            7 => Errno::Already,
            8 => Errno::Badf,
            9 => Errno::Badmsg,
            10 => Errno::Busy,
            11 => Errno::Canceled,
            12 => Errno::Child,
            13 => Errno::Connaborted,
            14 => Errno::Connrefused,
            15 => Errno::Connreset,
            16 => Errno::Deadlk,
            17 => Errno::Destaddrreq,
            18 => Errno::Dom,
            19 => Errno::Dquot,
            20 => Errno::Exist,
            21 => Errno::Fault,
            22 => Errno::Fbig,
            23 => Errno::Hostunreach,
            24 => Errno::Idrm,
            25 => Errno::Ilseq,
            26 => Errno::Inprogress,
            27 => Errno::Intr,
            28 => Errno::Inval,
            29 => Errno::Io,
            30 => Errno::Isconn,
            31 => Errno::Isdir,
            32 => Errno::Loop,
            33 => Errno::Mfile,
            34 => Errno::Mlink,
            35 => Errno::Msgsize,
            36 => Errno::Multihop,
            37 => Errno::Nametoolong,
            38 => Errno::Netdown,
            39 => Errno::Netreset,
            40 => Errno::Netunreach,
            41 => Errno::Nfile,
            42 => Errno::Nobufs,
            43 => Errno::Nodev,
            44 => Errno::Noent,
            45 => Errno::Noexec,
            46 => Errno::Nolck,
            47 => Errno::Nolink,
            48 => Errno::Nomem,
            49 => Errno::Nomsg,
            50 => Errno::Noprotoopt,
            51 => Errno::Nospc,
            52 => Errno::Nosys,
            53 => Errno::Notconn,
            54 => Errno::Notdir,
            55 => Errno::Notempty,
            56 => Errno::Notrecoverable,
            57 => Errno::Notsock,
            58 => Errno::Notsup,
            59 => Errno::Notty,
            60 => Errno::Nxio,
            61 => Errno::Overflow,
            62 => Errno::Ownerdead,
            63 => Errno::Perm,
            64 => Errno::Pipe,
            65 => Errno::Proto,
            66 => Errno::Protonosupport,
            67 => Errno::Prototype,
            68 => Errno::Range,
            69 => Errno::Rofs,
            70 => Errno::Spipe,
            71 => Errno::Srch,
            72 => Errno::Stale,
            73 => Errno::Timedout,
            74 => Errno::Txtbsy,
            75 => Errno::Xdev,
            76 => Errno::Notcapable,
            _ => return None,
        })
    }

    /// Maps a host `errno` value.
    pub fn from_host(code: i32) -> Errno {
        use Errno::*;
        match code {
            libc::E2BIG => TooBig,
            libc::EACCES => Acces,
            libc::EADDRINUSE => Addrinuse,
            libc::EADDRNOTAVAIL => Addrnotavail,
            libc::EAFNOSUPPORT => Afnosupport,
            libc::EAGAIN => Again,
            libc::EALREADY => Already,
            libc::EBADF => Badf,
            libc::EBADMSG => Badmsg,
            libc::EBUSY => Busy,
            libc::ECANCELED => Canceled,
            libc::ECHILD => Child,
            libc::ECONNABORTED => Connaborted,
            libc::ECONNREFUSED => Connrefused,
            libc::ECONNRESET => Connreset,
            libc::EDEADLK => Deadlk,
            libc::EDESTADDRREQ => Destaddrreq,
            libc::EDOM => Dom,
            libc::EDQUOT => Dquot,
            libc::EEXIST => Exist,
            libc::EFAULT => Fault,
            libc::EFBIG => Fbig,
            libc::EHOSTUNREACH => Hostunreach,
            libc::EIDRM => Idrm,
            libc::EILSEQ => Ilseq,
            libc::EINPROGRESS => Inprogress,
            libc::EINTR => Intr,
            libc::EINVAL => Inval,
            libc::EIO => Io,
            libc::EISCONN => Isconn,
            libc::EISDIR => Isdir,
            libc::ELOOP => Loop,
            libc::EMFILE => Mfile,
            libc::EMLINK => Mlink,
            libc::EMSGSIZE => Msgsize,
            libc::EMULTIHOP => Multihop,
            libc::ENAMETOOLONG => Nametoolong,
            libc::ENETDOWN => Netdown,
            libc::ENETRESET => Netreset,
            libc::ENETUNREACH => Netunreach,
            libc::ENFILE => Nfile,
            libc::ENOBUFS => Nobufs,
            libc::ENODEV => Nodev,
            libc::ENOENT => Noent,
            libc::ENOEXEC => Noexec,
            libc::ENOLCK => Nolck,
            libc::ENOLINK => Nolink,
            libc::ENOMEM => Nomem,
            libc::ENOMSG => Nomsg,
            libc::ENOPROTOOPT => Noprotoopt,
            libc::ENOSPC => Nospc,
            libc::ENOSYS => Nosys,
            libc::ENOTCONN => Notconn,
            libc::ENOTDIR => Notdir,
            libc::ENOTEMPTY => Notempty,
            libc::ENOTRECOVERABLE => Notrecoverable,
            libc::ENOTSOCK => Notsock,
            libc::EOPNOTSUPP => Notsup,
            libc::ENOTTY => Notty,
            libc::ENXIO => Nxio,
            libc::EOVERFLOW => Overflow,
            libc::EOWNERDEAD => Ownerdead,
            libc::EPERM => Perm,
            libc::EPIPE => Pipe,
            libc::EPROTO => Proto,
            libc::EPROTONOSUPPORT => Protonosupport,
            libc::EPROTOTYPE => Prototype,
            libc::ERANGE => Range,
            libc::EROFS => Rofs,
            libc::ESPIPE => Spipe,
            libc::ESRCH => Srch,
            libc::ESTALE => Stale,
            libc::ETIMEDOUT => Timedout,
            libc::ETXTBSY => Txtbsy,
            libc::EXDEV => Xdev,
            _ => Io,
        }
    }
}

impl From<io::Error> for Errno {
    fn from(err: io::Error) -> Errno {
        if let Some(code) = err.raw_os_error() {
            return Errno::from_host(code);
        }
        // cap-std reports sandbox escapes (absolute paths, `..` above the mount, absolute
        // symlinks) as PermissionDenied without an OS code.
        match err.kind() {
            io::ErrorKind::PermissionDenied => Errno::Perm,
            io::ErrorKind::NotFound => Errno::Noent,
            io::ErrorKind::AlreadyExists => Errno::Exist,
            io::ErrorKind::InvalidInput => Errno::Inval,
            io::ErrorKind::WouldBlock => Errno::Again,
            io::ErrorKind::Interrupted => Errno::Intr,
            io::ErrorKind::Unsupported => Errno::Notsup,
            io::ErrorKind::BrokenPipe => Errno::Pipe,
            io::ErrorKind::NotADirectory => Errno::Notdir,
            io::ErrorKind::IsADirectory => Errno::Isdir,
            io::ErrorKind::DirectoryNotEmpty => Errno::Notempty,
            _ => Errno::Io,
        }
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(err: rustix::io::Errno) -> Errno {
        Errno::from_host(err.raw_os_error())
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?} (wasi errno {})", self.raw())
    }
}

impl std::error::Error for Errno {}

/// Result of a file-system operation.
pub type FsResult<T> = Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wasi_number_names_its_errno_and_back() {
        for raw in 1..=76u16 {
            assert_eq!(Errno::from_raw(raw).map(Errno::raw), Some(raw));
        }
        assert_eq!(Errno::from_raw(0), None);
        assert_eq!(Errno::from_raw(77), None);
    }

    #[test]
    fn host_codes_map_to_wasi_numbers() {
        assert_eq!(Errno::from_host(libc::ENOENT).raw(), 44);
        assert_eq!(Errno::from_host(libc::EBADF).raw(), 8);
        assert_eq!(Errno::from_host(9999), Errno::Io);
    }

    #[test]
    fn sandbox_escape_is_eperm() {
        let err = io::Error::new(io::ErrorKind::PermissionDenied, "a path led outside");
        assert_eq!(Errno::from(err), Errno::Perm);
    }
}
