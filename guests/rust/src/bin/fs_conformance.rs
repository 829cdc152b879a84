//! File-system behaviour a WASI preview1 program may rely on, checked through raw calls.
//! Run with a scratch host directory mounted at `/`; names tests to run, or all.

use wasmix_guests::wasi::{self, Fd};
use wasmix_guests::*;

type Test = fn(Fd);

const TESTS: &[(&str, Test)] = &[
    ("preopen_rights", preopen_rights),
    ("rights_shrink", rights_shrink),
    ("truncation_rights", truncation_rights),
    ("dir_fd_ops", dir_fd_ops),
    ("interesting_paths", interesting_paths),
    ("readdir", readdir),
    ("readdir_many", readdir_many),
    ("nofollow", nofollow),
    ("links", links),
    ("rename", rename),
    ("rename_trailing_slashes", rename_trailing_slashes),
    ("append_flag", append_flag),
    ("times", times),
    ("stdio_renumber", stdio_renumber),
    ("renumber", renumber),
    ("pread_pwrite", pread_pwrite),
    ("seek_tell", seek_tell),
    ("truncate_allocate_advise", truncate_allocate_advise),
    ("symlinks", symlinks),
    ("symlink_trailing_slashes", symlink_trailing_slashes),
    ("remove_and_unlink", remove_and_unlink),
    ("open_flags", open_flags),
    ("isatty", isatty),
    ("close_preopen", close_preopen),
];

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let preopened = preopen("/").unwrap_or_else(|| fail("no preopen named `/`"));
    // Scratch directories hang off a copy, so the test that closes the preopen itself (run
    // last) does not pull the floor from under the others.
    let (base, inheriting) = rights_of(preopened);
    let root = ok("copy root", unsafe {
        wasi::path_open(preopened, 0, ".", wasi::OFLAGS_DIRECTORY, base, inheriting, 0)
    });
    for (name, test) in TESTS {
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        let dir_name = format!("{name}.scratch");
        let dir = scratch_dir(root, &dir_name);
        test(dir);
        let _ = unsafe { wasi::fd_close(dir) };
        ok("remove scratch dir", unsafe { wasi::path_remove_directory(root, &dir_name) });
        println!("ok {name}");
    }
}

fn rights_of(fd: Fd) -> (u64, u64) {
    let st = ok("fdstat", unsafe { wasi::fd_fdstat_get(fd) });
    (st.fs_rights_base, st.fs_rights_inheriting)
}

fn preopen_rights(_: Fd) {
    let root = preopen("/").unwrap();
    let (base, inh) = rights_of(root);
    for r in [
        wasi::RIGHTS_PATH_CREATE_DIRECTORY,
        wasi::RIGHTS_PATH_CREATE_FILE,
        wasi::RIGHTS_PATH_OPEN,
        wasi::RIGHTS_FD_READDIR,
        wasi::RIGHTS_PATH_SYMLINK,
        wasi::RIGHTS_PATH_FILESTAT_SET_TIMES,
        wasi::RIGHTS_FD_FILESTAT_SET_TIMES,
    ] {
        check(base & r == r, "preopen lacks a directory right");
    }
    check(inh & wasi::RIGHTS_FD_WRITE != 0 && inh & wasi::RIGHTS_POLL_FD_READWRITE != 0, "inheriting rights");
    ok("reopen same rights", unsafe { wasi::path_open(root, 0, ".", 0, base, inh, 0) });
    ok("reopen no rights", unsafe { wasi::path_open(root, 0, ".", 0, 0, 0, 0) });
    ok("reopen dir read", unsafe { wasi::path_open(root, 0, ".", wasi::OFLAGS_DIRECTORY, wasi::RIGHTS_FD_READ, 0, 0) });
    let rw = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE;
    expect_errno("dir for writing", unsafe { wasi::path_open(root, 0, ".", wasi::OFLAGS_DIRECTORY, rw, 0, 0) }, &[wasi::ERRNO_ISDIR]);
}

fn rights_shrink(dir: Fd) {
    let r = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE | wasi::RIGHTS_FD_SEEK | wasi::RIGHTS_FD_TELL;
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT, r, 0, 0) });
    write_all(fd, b"abcd");
    ok("seek", unsafe { wasi::fd_seek(fd, 0, wasi::WHENCE_SET) });
    let mut buf = [0u8; 4];
    check(read_some(fd, &mut buf) == Ok(4) && &buf == b"abcd", "read back");
    let (base, inh) = rights_of(fd);
    ok("drop rights", unsafe { wasi::fd_fdstat_set_rights(fd, base & !(wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE), inh) });
    let (now, _) = rights_of(fd);
    check(now & wasi::RIGHTS_FD_SEEK != 0 && now & wasi::RIGHTS_FD_READ == 0, "rights dropped");
    expect_errno("read without right", read_some(fd, &mut buf), &[wasi::ERRNO_BADF, wasi::ERRNO_NOTCAPABLE]);
    let iov = wasi::Ciovec { buf: buf.as_ptr(), buf_len: 4 };
    expect_errno("write without right", unsafe { wasi::fd_write(fd, &[iov]) }, &[wasi::ERRNO_BADF, wasi::ERRNO_NOTCAPABLE]);
    expect_errno("regrant", unsafe { wasi::fd_fdstat_set_rights(fd, now | r, inh) }, &[wasi::ERRNO_NOTCAPABLE]);
    ok("close", unsafe { wasi::fd_close(fd) });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn truncation_rights(dir: Fd) {
    touch(dir, "f");
    let (base, inh) = rights_of(dir);
    check(base & wasi::RIGHTS_FD_FILESTAT_SET_SIZE == 0, "directories cannot be truncated");
    let fd = ok("trunc open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_TRUNC, 0, 0, 0) });
    ok("close", unsafe { wasi::fd_close(fd) });
    ok("drop", unsafe { wasi::fd_fdstat_set_rights(dir, base & !wasi::RIGHTS_PATH_FILESTAT_SET_SIZE, inh) });
    expect_errno("trunc without right", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_TRUNC, 0, 0, 0) }, &[wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn dir_fd_ops(dir: Fd) {
    let st = ok("filestat", unsafe { wasi::fd_filestat_get(dir) });
    check(st.filetype == wasi::FILETYPE_DIRECTORY, "directory filetype");
    let root = preopen("/").unwrap();
    expect_errno("prestat name len 0", unsafe { wasi::fd_prestat_dir_name(root, [0u8; 0].as_mut_ptr(), 0) }, &[wasi::ERRNO_INVAL, wasi::ERRNO_NAMETOOLONG]);
    let mut name = [0u8; 8];
    ok("prestat name bigger buffer", unsafe { wasi::fd_prestat_dir_name(root, name.as_mut_ptr(), 8) });
    let bad = [wasi::ERRNO_ISDIR, wasi::ERRNO_BADF, wasi::ERRNO_NOTCAPABLE];
    let mut buf = [0u8; 16];
    let iov = wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: 16 };
    let ciov = wasi::Ciovec { buf: buf.as_ptr(), buf_len: 16 };
    expect_errno("read dir", unsafe { wasi::fd_read(dir, &[iov]) }, &bad);
    expect_errno("pread dir", unsafe { wasi::fd_pread(dir, &[iov], 0) }, &bad);
    expect_errno("write dir", unsafe { wasi::fd_write(dir, &[ciov]) }, &bad);
    expect_errno("pwrite dir", unsafe { wasi::fd_pwrite(dir, &[ciov], 0) }, &bad);
    for w in [wasi::WHENCE_CUR, wasi::WHENCE_SET, wasi::WHENCE_END] {
        expect_errno("seek dir", unsafe { wasi::fd_seek(dir, 0, w) }, &bad);
    }
    expect_errno("tell dir", unsafe { wasi::fd_tell(dir) }, &bad);
    expect_errno("allocate dir", unsafe { wasi::fd_allocate(dir, 0, 1) }, &bad);
    expect_errno("set_size dir", unsafe { wasi::fd_filestat_set_size(dir, 0) }, &[wasi::ERRNO_ISDIR, wasi::ERRNO_INVAL, wasi::ERRNO_BADF, wasi::ERRNO_NOTCAPABLE]);
}

fn interesting_paths(dir: Fd) {
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "d") });
    ok("mkdir nested", unsafe { wasi::path_create_directory(dir, "d/n") });
    touch(dir, "d/n/f");
    let escape = [wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE];
    expect_errno("absolute path", unsafe { wasi::path_open(dir, 0, "/d/n/f", 0, 0, 0, 0) }, &escape);
    let fd = ok("dotdot inside", unsafe { wasi::path_open(dir, 0, "d/.//n/../../d/n/../n///./f", 0, 0, 0, 0) });
    ok("close", unsafe { wasi::fd_close(fd) });
    expect_errno("trailing NUL", unsafe { wasi::path_open(dir, 0, "d/n/f\0", 0, 0, 0, 0) }, &[wasi::ERRNO_INVAL, wasi::ERRNO_ILSEQ, wasi::ERRNO_NOENT]);
    expect_errno("file with slash", unsafe { wasi::path_open(dir, 0, "d/n/f/", 0, 0, 0, 0) }, &[wasi::ERRNO_NOTDIR, wasi::ERRNO_NOENT]);
    expect_errno("file with slashes", unsafe { wasi::path_open(dir, 0, "d/n/f///", 0, 0, 0, 0) }, &[wasi::ERRNO_NOTDIR, wasi::ERRNO_NOENT]);
    for p in ["d/n/", "d/n///"] {
        let fd = ok("dir with slash", unsafe { wasi::path_open(dir, 0, p, 0, 0, 0, 0) });
        ok("close", unsafe { wasi::fd_close(fd) });
    }
    expect_errno("too many ..", unsafe { wasi::path_open(dir, 0, "d/n/../../../x/d/n/f", 0, 0, 0, 0) }, &escape);
    expect_errno("stat absolute", unsafe { wasi::path_filestat_get(dir, 0, "/etc/passwd") }, &escape);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "d/n/f") });
    ok("rmdir", unsafe { wasi::path_remove_directory(dir, "d/n") });
    ok("rmdir", unsafe { wasi::path_remove_directory(dir, "d") });
}

struct Entry {
    next: u64,
    ino: u64,
    kind: wasi::Filetype,
    name: String,
}

fn list(fd: Fd, cookie: u64) -> (Vec<Entry>, bool) {
    let mut buf = [0u8; 256];
    let used = ok("readdir", unsafe { wasi::fd_readdir(fd, buf.as_mut_ptr(), buf.len(), cookie) });
    let mut out = Vec::new();
    let mut at = 0;
    while at + 24 <= used {
        let next = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
        let ino = u64::from_le_bytes(buf[at + 8..at + 16].try_into().unwrap());
        let len = u32::from_le_bytes(buf[at + 16..at + 20].try_into().unwrap()) as usize;
        let kind = buf[at + 20];
        if at + 24 + len > used {
            break;
        }
        let name = String::from_utf8(buf[at + 24..at + 24 + len].to_vec()).unwrap();
        out.push(Entry { next, ino, kind: match kind { 3 => wasi::FILETYPE_DIRECTORY, 4 => wasi::FILETYPE_REGULAR_FILE, _ => wasi::FILETYPE_UNKNOWN }, name });
        at += 24 + len;
    }
    (out, used < buf.len())
}

fn readdir(dir: Fd) {
    let st = ok("stat", unsafe { wasi::fd_filestat_get(dir) });
    let (mut entries, eof) = list(dir, 0);
    check(eof, "small listing fits");
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    check(entries.len() == 2 && entries[0].name == "." && entries[1].name == "..", "empty dir lists . and ..");
    check(entries[0].ino == st.ino && entries[0].kind == wasi::FILETYPE_DIRECTORY, ". is the directory");
    let fd = ok("create", unsafe { wasi::path_open(dir, 0, "file", wasi::OFLAGS_CREAT, wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_FILESTAT_GET, 0, 0) });
    let fst = ok("stat file", unsafe { wasi::fd_filestat_get(fd) });
    ok("close", unsafe { wasi::fd_close(fd) });
    let (entries, _) = list(dir, 0);
    check(entries.len() == 3, "three entries");
    let file = entries.iter().find(|e| e.name == "file").unwrap_or_else(|| fail("file listed"));
    check(file.ino == fst.ino && file.kind == wasi::FILETYPE_REGULAR_FILE, "file entry");
    let (rest, _) = list(dir, entries[1].next);
    check(rest.len() == 1 && rest[0].name == entries[2].name, "cookie resumes");
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "file") });
}

fn readdir_many(dir: Fd) {
    for i in 0..300 {
        touch(dir, &format!("file.{i}"));
    }
    let (mut total, mut cookie) = (0, 0);
    loop {
        let (entries, eof) = list(dir, cookie);
        total += entries.len();
        if eof {
            break;
        }
        cookie = entries.last().unwrap().next;
    }
    check(total == 302, "every entry seen exactly once");
    for i in 0..300 {
        ok("unlink", unsafe { wasi::path_unlink_file(dir, &format!("file.{i}")) });
    }
}

fn nofollow(dir: Fd) {
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "target") });
    ok("symlink", unsafe { wasi::path_symlink("target", dir, "link") });
    expect_errno("nofollow dir", unsafe { wasi::path_open(dir, 0, "link", wasi::OFLAGS_DIRECTORY, 0, 0, 0) }, &[wasi::ERRNO_LOOP, wasi::ERRNO_NOTDIR]);
    expect_errno("nofollow", unsafe { wasi::path_open(dir, 0, "link", 0, 0, 0, 0) }, &[wasi::ERRNO_LOOP, wasi::ERRNO_ACCES]);
    let fd = ok("follow", unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "link", wasi::OFLAGS_DIRECTORY, 0, 0, 0) });
    ok("close", unsafe { wasi::fd_close(fd) });
    ok("unlink link", unsafe { wasi::path_unlink_file(dir, "link") });
    ok("rmdir", unsafe { wasi::path_remove_directory(dir, "target") });
    touch(dir, "target");
    ok("symlink", unsafe { wasi::path_symlink("target", dir, "link") });
    expect_errno("nofollow file", unsafe { wasi::path_open(dir, 0, "link", 0, 0, 0, 0) }, &[wasi::ERRNO_LOOP]);
    expect_errno("file as dir", unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "link", wasi::OFLAGS_DIRECTORY, 0, 0, 0) }, &[wasi::ERRNO_NOTDIR]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "target") });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "link") });
}

fn links(dir: Fd) {
    let r = wasi::RIGHTS_FD_READ | wasi::RIGHTS_PATH_LINK_SOURCE | wasi::RIGHTS_PATH_LINK_TARGET
        | wasi::RIGHTS_FD_FILESTAT_GET | wasi::RIGHTS_PATH_OPEN | wasi::RIGHTS_PATH_UNLINK_FILE;
    let file = ok("create", unsafe { wasi::path_open(dir, 0, "file", wasi::OFLAGS_CREAT, r, r, 0) });
    ok("link", unsafe { wasi::path_link(dir, 0, "file", dir, "link") });
    let link = ok("open link", unsafe { wasi::path_open(dir, 0, "link", 0, r, r, 0) });
    let (a, b) = (ok("stat", unsafe { wasi::fd_filestat_get(file) }), ok("stat", unsafe { wasi::fd_filestat_get(link) }));
    check(a.ino == b.ino && a.dev == b.dev && a.nlink == 2 && b.nlink == 2, "hard link shares the inode");
    check(rights_of(file) == rights_of(link), "same rights through both names");
    ok("close", unsafe { wasi::fd_close(link) });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "link") });
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "sub") });
    let sub = ok("open sub", unsafe { wasi::path_open(dir, 0, "sub", wasi::OFLAGS_DIRECTORY, r, r, 0) });
    ok("link across", unsafe { wasi::path_link(dir, 0, "file", sub, "link") });
    let link = ok("open", unsafe { wasi::path_open(sub, 0, "link", 0, r, r, 0) });
    check(rights_of(file) == rights_of(link), "same rights across directories");
    ok("close", unsafe { wasi::fd_close(link) });
    ok("unlink", unsafe { wasi::path_unlink_file(sub, "link") });
    ok("close", unsafe { wasi::fd_close(sub) });
    touch(dir, "exists");
    expect_errno("link onto file", unsafe { wasi::path_link(dir, 0, "file", dir, "exists") }, &[wasi::ERRNO_EXIST]);
    expect_errno("link onto self", unsafe { wasi::path_link(dir, 0, "file", dir, "file") }, &[wasi::ERRNO_EXIST]);
    expect_errno("link onto dir", unsafe { wasi::path_link(dir, 0, "file", dir, "sub") }, &[wasi::ERRNO_EXIST]);
    expect_errno("link a dir", unsafe { wasi::path_link(dir, 0, "sub", dir, "dirlink") }, &[wasi::ERRNO_PERM, wasi::ERRNO_ACCES]);
    expect_errno("link with slash", unsafe { wasi::path_link(dir, 0, "file", dir, "new/") }, &[wasi::ERRNO_NOENT]);
    ok("dangling symlink", unsafe { wasi::path_symlink("nowhere", dir, "dangling") });
    ok("link the symlink", unsafe { wasi::path_link(dir, 0, "dangling", dir, "dlink") });
    expect_errno("follow dangling", unsafe { wasi::path_link(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "dangling", dir, "x") }, &[wasi::ERRNO_INVAL, wasi::ERRNO_NOENT]);
    expect_errno("onto dangling", unsafe { wasi::path_link(dir, 0, "file", dir, "dangling") }, &[wasi::ERRNO_EXIST]);
    // A hard link can never point outside the mount: the source path is resolved inside it.
    expect_errno("link from outside", unsafe { wasi::path_link(dir, 0, "../../../../etc/passwd", dir, "pw") }, &[wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE]);
    for n in ["dangling", "dlink", "exists", "file"] {
        ok("unlink", unsafe { wasi::path_unlink_file(dir, n) });
    }
    ok("close", unsafe { wasi::fd_close(file) });
    ok("rmdir", unsafe { wasi::path_remove_directory(dir, "sub") });
}

fn rename(dir: Fd) {
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "a") });
    ok("rename dir", unsafe { wasi::path_rename(dir, "a", dir, "b") });
    expect_errno("old gone", unsafe { wasi::path_open(dir, 0, "a", wasi::OFLAGS_DIRECTORY, 0, 0, 0) }, &[wasi::ERRNO_NOENT]);
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "a") });
    ok("rename onto empty dir", unsafe { wasi::path_rename(dir, "a", dir, "b") });
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "a") });
    touch(dir, "b/f");
    expect_errno("onto non-empty dir", unsafe { wasi::path_rename(dir, "a", dir, "b") }, &[wasi::ERRNO_NOTEMPTY]);
    expect_errno("dir onto file", unsafe { wasi::path_rename(dir, "a", dir, "b/f") }, &[wasi::ERRNO_NOTDIR]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "b/f") });
    ok("rmdir", unsafe { wasi::path_remove_directory(dir, "b") });
    touch(dir, "f");
    touch(dir, "g");
    ok("rename file over file", unsafe { wasi::path_rename(dir, "f", dir, "g") });
    expect_errno("old gone", unsafe { wasi::path_open(dir, 0, "f", 0, 0, 0, 0) }, &[wasi::ERRNO_NOENT]);
    expect_errno("file onto dir", unsafe { wasi::path_rename(dir, "g", dir, "a") }, &[wasi::ERRNO_ISDIR]);
    expect_errno("rename out of mount", unsafe { wasi::path_rename(dir, "g", dir, "../../../g") }, &[wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "g") });
    ok("rmdir", unsafe { wasi::path_remove_directory(dir, "a") });
}

fn rename_trailing_slashes(dir: Fd) {
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "s") });
    ok("src slash", unsafe { wasi::path_rename(dir, "s/", dir, "t") });
    ok("dst slash", unsafe { wasi::path_rename(dir, "t", dir, "s/") });
    ok("both", unsafe { wasi::path_rename(dir, "s/", dir, "t/") });
    ok("none", unsafe { wasi::path_rename(dir, "t", dir, "s") });
    ok("rmdir", unsafe { wasi::path_remove_directory(dir, "s") });
    touch(dir, "f");
    expect_errno("file with slash", unsafe { wasi::path_rename(dir, "f/", dir, "g") }, &[wasi::ERRNO_NOTDIR]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn append_flag(dir: Fd) {
    let r = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE | wasi::RIGHTS_FD_SEEK | wasi::RIGHTS_FD_TELL | wasi::RIGHTS_FD_FDSTAT_SET_FLAGS;
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT, r, 0, wasi::FDFLAGS_APPEND) });
    check(ok("fdstat", unsafe { wasi::fd_fdstat_get(fd) }).fs_flags & wasi::FDFLAGS_APPEND != 0, "append reported");
    write_all(fd, &[0u8; 100]);
    ok("seek", unsafe { wasi::fd_seek(fd, 0, wasi::WHENCE_SET) });
    write_all(fd, &[1u8; 100]);
    check(ok("tell", unsafe { wasi::fd_tell(fd) }) == 200, "append wrote at the end");
    ok("clear flags", unsafe { wasi::fd_fdstat_set_flags(fd, 0) });
    ok("seek", unsafe { wasi::fd_seek(fd, 0, wasi::WHENCE_SET) });
    write_all(fd, &[2u8; 100]);
    let mut buf = [9u8; 100];
    ok("seek", unsafe { wasi::fd_seek(fd, 0, wasi::WHENCE_SET) });
    check(read_some(fd, &mut buf) == Ok(100) && buf == [2u8; 100], "overwrote the start");
    ok("close", unsafe { wasi::fd_close(fd) });
    check(ok("stat", unsafe { wasi::path_filestat_get(dir, 0, "f") }).size == 200, "size 200");
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn times(dir: Fd) {
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT, wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_FILESTAT_SET_TIMES | wasi::RIGHTS_FD_FILESTAT_GET, 0, 0) });
    for flags in [wasi::FSTFLAGS_MTIM | wasi::FSTFLAGS_MTIM_NOW, wasi::FSTFLAGS_ATIM | wasi::FSTFLAGS_ATIM_NOW] {
        expect_errno("both set and now", unsafe { wasi::fd_filestat_set_times(fd, 100, 200, flags) }, &[wasi::ERRNO_INVAL]);
    }
    ok("set both", unsafe { wasi::fd_filestat_set_times(fd, 1_000_000_123, 2_000_000_456, wasi::FSTFLAGS_ATIM | wasi::FSTFLAGS_MTIM) });
    let st = ok("stat", unsafe { wasi::fd_filestat_get(fd) });
    check(st.atim == 1_000_000_123 && st.mtim == 2_000_000_456, "fd times set");
    let st = ok("pstat", unsafe { wasi::path_filestat_get(dir, 0, "f") });
    let new = st.mtim - 100;
    ok("path set mtim", unsafe { wasi::path_filestat_set_times(dir, 0, "f", 0, new, wasi::FSTFLAGS_MTIM) });
    let st2 = ok("pstat", unsafe { wasi::path_filestat_get(dir, 0, "f") });
    check(st2.mtim == new && st2.atim == st.atim, "only mtim changed");
    expect_errno("path both", unsafe { wasi::path_filestat_set_times(dir, 0, "f", 0, 1, wasi::FSTFLAGS_MTIM | wasi::FSTFLAGS_MTIM_NOW) }, &[wasi::ERRNO_INVAL]);
    ok("now", unsafe { wasi::fd_filestat_set_times(fd, 0, 0, wasi::FSTFLAGS_MTIM_NOW) });
    check(ok("stat", unsafe { wasi::fd_filestat_get(fd) }).mtim > new, "mtim now");
    ok("close", unsafe { wasi::fd_close(fd) });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn stdio_renumber(dir: Fd) {
    for from in [0u32, 1, 2] {
        let to = ok("open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT, 0, 0, 0) });
        ok("renumber", unsafe { wasi::fd_renumber(from, to) });
        ok("target open", unsafe { wasi::fd_fdstat_get(to) });
        expect_errno("source closed", unsafe { wasi::fd_fdstat_get(from) }, &[wasi::ERRNO_BADF]);
        // Put the stream back: the lowest free number is `from` again, so a placeholder lands
        // there and the stream can be renumbered onto it.
        let placeholder = ok("placeholder", unsafe { wasi::path_open(dir, 0, "f", 0, 0, 0, 0) });
        check(placeholder == from, "descriptors are allocated lowest-first");
        ok("renumber back", unsafe { wasi::fd_renumber(to, from) });
        ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
    }
}

fn renumber(dir: Fd) {
    let a = ok("open a", unsafe { wasi::path_open(dir, 0, "a", wasi::OFLAGS_CREAT, wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_FILESTAT_GET, 0, 0) });
    let b = ok("open b", unsafe { wasi::path_open(dir, 0, "b", wasi::OFLAGS_CREAT, wasi::RIGHTS_FD_WRITE, 0, 0) });
    let sa = ok("stat", unsafe { wasi::fd_filestat_get(a) });
    ok("renumber", unsafe { wasi::fd_renumber(a, b) });
    expect_errno("a closed", unsafe { wasi::fd_close(a) }, &[wasi::ERRNO_BADF]);
    check(ok("stat", unsafe { wasi::fd_filestat_get(b) }).ino == sa.ino, "b is now a");
    check(rights_of(b).0 & wasi::RIGHTS_FD_READ != 0, "rights moved along");
    expect_errno("to closed fd", unsafe { wasi::fd_renumber(b, 1234) }, &[wasi::ERRNO_BADF]);
    expect_errno("from closed fd", unsafe { wasi::fd_renumber(1234, b) }, &[wasi::ERRNO_BADF]);
    ok("close", unsafe { wasi::fd_close(b) });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "a") });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "b") });
}

fn pread_pwrite(dir: Fd) {
    let r = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE | wasi::RIGHTS_FD_SEEK | wasi::RIGHTS_FD_TELL | wasi::RIGHTS_FD_FILESTAT_GET | wasi::RIGHTS_FD_SYNC | wasi::RIGHTS_FD_DATASYNC;
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT, r, 0, 0) });
    let data = b"0123456789";
    let c = wasi::Ciovec { buf: data.as_ptr(), buf_len: 10 };
    check(ok("pwrite", unsafe { wasi::fd_pwrite(fd, &[c], 5) }) == 10, "pwrite count");
    check(ok("tell", unsafe { wasi::fd_tell(fd) }) == 0, "pwrite leaves offset");
    let mut buf = [0u8; 4];
    let i = wasi::Iovec { buf: buf.as_mut_ptr(), buf_len: 4 };
    check(ok("pread", unsafe { wasi::fd_pread(fd, &[i], 7) }) == 4 && &buf == b"2345", "pread");
    check(ok("pread eof", unsafe { wasi::fd_pread(fd, &[i], 100) }) == 0, "pread past end");
    let mut two = [[0u8; 3]; 2];
    let iovs = [wasi::Iovec { buf: two[0].as_mut_ptr(), buf_len: 3 }, wasi::Iovec { buf: two[1].as_mut_ptr(), buf_len: 3 }];
    check(ok("preadv", unsafe { wasi::fd_pread(fd, &iovs, 5) }) == 6 && &two[0] == b"012" && &two[1] == b"345", "vectored pread");
    check(ok("size", unsafe { wasi::fd_filestat_get(fd) }).size == 15, "size after pwrite");
    ok("fd_sync", unsafe { wasi::fd_sync(fd) });
    ok("fd_datasync", unsafe { wasi::fd_datasync(fd) });
    ok("fd_sync dir", unsafe { wasi::fd_sync(dir) }.or_else(|e| if e == wasi::ERRNO_BADF { Ok(()) } else { Err(e) }));
    let ro = ok("open ro", unsafe { wasi::path_open(dir, 0, "f", 0, wasi::RIGHTS_FD_READ, 0, 0) });
    expect_errno("sync without right", unsafe { wasi::fd_sync(ro) }, &[wasi::ERRNO_BADF, wasi::ERRNO_NOTCAPABLE]);
    ok("close", unsafe { wasi::fd_close(ro) });
    ok("close", unsafe { wasi::fd_close(fd) });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn seek_tell(dir: Fd) {
    let r = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE | wasi::RIGHTS_FD_SEEK | wasi::RIGHTS_FD_TELL;
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT, r, 0, 0) });
    write_all(fd, &[7u8; 100]);
    check(ok("tell", unsafe { wasi::fd_tell(fd) }) == 100, "tell after write");
    check(ok("seek cur", unsafe { wasi::fd_seek(fd, -50, wasi::WHENCE_CUR) }) == 50, "relative seek");
    check(ok("seek end", unsafe { wasi::fd_seek(fd, -1, wasi::WHENCE_END) }) == 99, "seek from end");
    check(ok("seek past end", unsafe { wasi::fd_seek(fd, 1000, wasi::WHENCE_SET) }) == 1000, "seek past the end is allowed");
    expect_errno("negative", unsafe { wasi::fd_seek(fd, -2000, wasi::WHENCE_CUR) }, &[wasi::ERRNO_INVAL]);
    let raw = unsafe { wasi::wasi_snapshot_preview1::fd_seek(fd as i32, 0, 7, 0) };
    check(raw == wasi::ERRNO_INVAL.raw() as i32, "bad whence is EINVAL");
    ok("close", unsafe { wasi::fd_close(fd) });
    expect_errno("seek closed", unsafe { wasi::fd_seek(fd, 0, wasi::WHENCE_SET) }, &[wasi::ERRNO_BADF]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn truncate_allocate_advise(dir: Fd) {
    let r = wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_WRITE | wasi::RIGHTS_FD_FILESTAT_GET | wasi::RIGHTS_FD_FILESTAT_SET_SIZE | wasi::RIGHTS_FD_ALLOCATE | wasi::RIGHTS_FD_ADVISE;
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT, r, 0, 0) });
    ok("set size", unsafe { wasi::fd_filestat_set_size(fd, 1000) });
    check(ok("stat", unsafe { wasi::fd_filestat_get(fd) }).size == 1000, "grown");
    ok("set size", unsafe { wasi::fd_filestat_set_size(fd, 10) });
    check(ok("stat", unsafe { wasi::fd_filestat_get(fd) }).size == 10, "shrunk");
    match unsafe { wasi::fd_allocate(fd, 0, 4096) } {
        Ok(()) => check(ok("stat", unsafe { wasi::fd_filestat_get(fd) }).size == 4096, "allocate extends"),
        Err(e) => check(e == wasi::ERRNO_NOTSUP, "allocate"),
    }
    ok("advise", unsafe { wasi::fd_advise(fd, 0, 100, wasi::ADVICE_SEQUENTIAL) });
    ok("advise", unsafe { wasi::fd_advise(fd, 0, 0, wasi::ADVICE_DONTNEED) });
    let raw = unsafe { wasi::wasi_snapshot_preview1::fd_advise(fd as i32, 0, 0, 99) };
    check(raw == wasi::ERRNO_INVAL.raw() as i32, "bad advice is EINVAL");
    ok("close", unsafe { wasi::fd_close(fd) });
    let ro = ok("open ro", unsafe { wasi::path_open(dir, 0, "f", 0, wasi::RIGHTS_FD_READ, 0, 0) });
    expect_errno("truncate read-only", unsafe { wasi::fd_filestat_set_size(ro, 0) }, &[wasi::ERRNO_BADF, wasi::ERRNO_NOTCAPABLE]);
    ok("close", unsafe { wasi::fd_close(ro) });
    let t = ok("trunc", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_TRUNC, wasi::RIGHTS_FD_FILESTAT_GET, 0, 0) });
    check(ok("stat", unsafe { wasi::fd_filestat_get(t) }).size == 0, "O_TRUNC empties");
    ok("close", unsafe { wasi::fd_close(t) });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn symlinks(dir: Fd) {
    ok("symlink loop", unsafe { wasi::path_symlink("loop", dir, "loop") });
    expect_errno("open loop", unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "loop", 0, 0, 0, 0) }, &[wasi::ERRNO_LOOP]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "loop") });
    ok("dangling", unsafe { wasi::path_symlink("target", dir, "dangling") });
    expect_errno("open dangling", unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "dangling", 0, 0, 0, 0) }, &[wasi::ERRNO_NOENT]);
    expect_errno("open dangling dir", unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "dangling", wasi::OFLAGS_DIRECTORY, 0, 0, 0) }, &[wasi::ERRNO_NOENT]);
    let lst = ok("lstat", unsafe { wasi::path_filestat_get(dir, 0, "dangling") });
    check(lst.filetype == wasi::FILETYPE_SYMBOLIC_LINK, "lstat sees the link");
    expect_errno("stat dangling", unsafe { wasi::path_filestat_get(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "dangling") }, &[wasi::ERRNO_NOENT]);
    let mut buf = [0u8; 64];
    let n = ok("readlink", unsafe { wasi::path_readlink(dir, "dangling", buf.as_mut_ptr(), buf.len()) });
    check(&buf[..n] == b"target", "readlink contents");
    let n = ok("readlink short", unsafe { wasi::path_readlink(dir, "dangling", buf.as_mut_ptr(), 3) });
    check(n == 3 && &buf[..3] == b"tar", "readlink truncates");
    touch(dir, "f");
    expect_errno("readlink on a file", unsafe { wasi::path_readlink(dir, "f", buf.as_mut_ptr(), buf.len()) }, &[wasi::ERRNO_INVAL]);
    ok("set link times", unsafe { wasi::path_filestat_set_times(dir, 0, "dangling", 0, 5_000_000_000, wasi::FSTFLAGS_MTIM) });
    check(ok("lstat", unsafe { wasi::path_filestat_get(dir, 0, "dangling") }).mtim == 5_000_000_000, "nofollow set_times touches the link");
    // Symlinks may not lead out of the mount, absolutely or by `..`.
    expect_errno("absolute symlink", unsafe { wasi::path_symlink("/etc/passwd", dir, "abs") }, &[wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE]);
    ok("relative escaping symlink", unsafe { wasi::path_symlink("../../../../../../etc/passwd", dir, "esc") });
    expect_errno("follow escaping symlink", unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "esc", 0, wasi::RIGHTS_FD_READ, 0, 0) }, &[wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE]);
    ok("chain a", unsafe { wasi::path_symlink("b", dir, "a") });
    ok("chain b", unsafe { wasi::path_symlink("esc", dir, "b") });
    expect_errno("follow chain out", unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "a", 0, wasi::RIGHTS_FD_READ, 0, 0) }, &[wasi::ERRNO_PERM, wasi::ERRNO_NOTCAPABLE]);
    ok("chain c", unsafe { wasi::path_symlink("f", dir, "c") });
    let fd = ok("follow chain in", unsafe { wasi::path_open(dir, wasi::LOOKUPFLAGS_SYMLINK_FOLLOW, "c", 0, wasi::RIGHTS_FD_READ, 0, 0) });
    ok("close", unsafe { wasi::fd_close(fd) });
    for n in ["dangling", "f", "esc", "a", "b", "c"] {
        ok("unlink", unsafe { wasi::path_unlink_file(dir, n) });
    }
}

fn symlink_trailing_slashes(dir: Fd) {
    expect_errno("dangling with slash", unsafe { wasi::path_symlink("source", dir, "target/") }, &[wasi::ERRNO_NOENT]);
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "target") });
    expect_errno("onto dir/", unsafe { wasi::path_symlink("source", dir, "target/") }, &[wasi::ERRNO_EXIST]);
    expect_errno("onto dir", unsafe { wasi::path_symlink("source", dir, "target") }, &[wasi::ERRNO_EXIST]);
    ok("rmdir", unsafe { wasi::path_remove_directory(dir, "target") });
    touch(dir, "target");
    expect_errno("onto file/", unsafe { wasi::path_symlink("source", dir, "target/") }, &[wasi::ERRNO_NOTDIR, wasi::ERRNO_EXIST]);
    expect_errno("onto file", unsafe { wasi::path_symlink("source", dir, "target") }, &[wasi::ERRNO_EXIST]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "target") });
}

fn remove_and_unlink(dir: Fd) {
    ok("mkdir", unsafe { wasi::path_create_directory(dir, "d") });
    expect_errno("mkdir again", unsafe { wasi::path_create_directory(dir, "d") }, &[wasi::ERRNO_EXIST]);
    touch(dir, "d/f");
    expect_errno("rmdir non-empty", unsafe { wasi::path_remove_directory(dir, "d") }, &[wasi::ERRNO_NOTEMPTY]);
    expect_errno("rmdir a file", unsafe { wasi::path_remove_directory(dir, "d/f") }, &[wasi::ERRNO_NOTDIR]);
    expect_errno("rmdir file/", unsafe { wasi::path_remove_directory(dir, "d/f/") }, &[wasi::ERRNO_NOTDIR]);
    expect_errno("unlink file/", unsafe { wasi::path_unlink_file(dir, "d/f/") }, &[wasi::ERRNO_NOTDIR]);
    expect_errno("unlink a dir", unsafe { wasi::path_unlink_file(dir, "d") }, &[wasi::ERRNO_ISDIR]);
    expect_errno("unlink a dir/", unsafe { wasi::path_unlink_file(dir, "d/") }, &[wasi::ERRNO_ISDIR]);
    expect_errno("unlink missing", unsafe { wasi::path_unlink_file(dir, "nope") }, &[wasi::ERRNO_NOENT]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "d/f") });
    ok("rmdir with slash", unsafe { wasi::path_remove_directory(dir, "d/") });
    expect_errno("rmdir missing", unsafe { wasi::path_remove_directory(dir, "d") }, &[wasi::ERRNO_NOENT]);
    expect_errno("mkdir under file", unsafe { wasi::path_create_directory(dir, "nofile/x") }, &[wasi::ERRNO_NOENT]);
}

fn open_flags(dir: Fd) {
    expect_errno("missing", unsafe { wasi::path_open(dir, 0, "missing", 0, 0, 0, 0) }, &[wasi::ERRNO_NOENT]);
    touch(dir, "f");
    expect_errno("excl existing", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT | wasi::OFLAGS_EXCL, 0, 0, 0) }, &[wasi::ERRNO_EXIST]);
    expect_errno("file as dir", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_DIRECTORY, 0, 0, 0) }, &[wasi::ERRNO_NOTDIR]);
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, "f", 0, wasi::RIGHTS_FD_READ, 0, 0) });
    expect_errno("file as dirfd", unsafe { wasi::path_open(fd, 0, "x", 0, 0, 0, 0) }, &[wasi::ERRNO_NOTDIR]);
    ok("close", unsafe { wasi::fd_close(fd) });
    let nb = ok("nonblock", unsafe { wasi::path_open(dir, 0, "f", 0, wasi::RIGHTS_FD_READ, 0, wasi::FDFLAGS_NONBLOCK) });
    check(ok("fdstat", unsafe { wasi::fd_fdstat_get(nb) }).fs_flags & wasi::FDFLAGS_NONBLOCK != 0, "nonblock reported");
    ok("close", unsafe { wasi::fd_close(nb) });
    let nbdir = ok("nonblock dir", unsafe { wasi::path_open(dir, 0, ".", 0, 0, 0, wasi::FDFLAGS_NONBLOCK) });
    ok("close", unsafe { wasi::fd_close(nbdir) });
    let w = ok("write-only", unsafe { wasi::path_open(dir, 0, "f", 0, wasi::RIGHTS_FD_WRITE, 0, 0) });
    let mut buf = [0u8; 4];
    expect_errno("read write-only", read_some(w, &mut buf), &[wasi::ERRNO_BADF, wasi::ERRNO_NOTCAPABLE]);
    ok("close", unsafe { wasi::fd_close(w) });
    expect_errno("close twice", unsafe { wasi::fd_close(w) }, &[wasi::ERRNO_BADF]);
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
    let created = ok("create excl", unsafe { wasi::path_open(dir, 0, "new", wasi::OFLAGS_CREAT | wasi::OFLAGS_EXCL, 0, 0, 0) });
    ok("close", unsafe { wasi::fd_close(created) });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "new") });
}

fn isatty(dir: Fd) {
    let fd = ok("open", unsafe { wasi::path_open(dir, 0, "f", wasi::OFLAGS_CREAT, wasi::RIGHTS_FD_READ | wasi::RIGHTS_FD_SEEK | wasi::RIGHTS_FD_TELL, 0, 0) });
    let st = ok("fdstat", unsafe { wasi::fd_fdstat_get(fd) });
    check(st.fs_filetype == wasi::FILETYPE_REGULAR_FILE, "regular file type");
    check(st.fs_rights_base & (wasi::RIGHTS_FD_SEEK | wasi::RIGHTS_FD_TELL) != 0, "a file is not a tty");
    ok("close", unsafe { wasi::fd_close(fd) });
    ok("unlink", unsafe { wasi::path_unlink_file(dir, "f") });
}

fn close_preopen(_: Fd) {
    let root = preopen("/").unwrap();
    let copy = ok("reopen root", unsafe { wasi::path_open(root, 0, ".", wasi::OFLAGS_DIRECTORY, DIR_RIGHTS, FILE_RIGHTS, 0) });
    ok("close preopen", unsafe { wasi::fd_close(root) });
    expect_errno("closed preopen", unsafe { wasi::fd_fdstat_get(root) }, &[wasi::ERRNO_BADF]);
    expect_errno("no longer a preopen", unsafe { wasi::fd_prestat_get(root) }.map(|_| ()), &[wasi::ERRNO_BADF]);
    check(ok("copy stays open", unsafe { wasi::fd_fdstat_get(copy) }).fs_filetype == wasi::FILETYPE_DIRECTORY, "copy is a dir");
    ok("close copy", unsafe { wasi::fd_close(copy) });
}
