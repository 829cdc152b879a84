//! A thread's cached descriptor lookup (`FileSystem::file_cached`) answers as an uncached
//! lookup would: after a dup onto the cached number, a close, a change of rights, and for
//! another file system (a forked child's) with the same numbers.

use std::io::IoSlice;

use wasmix_fs::abi::rights;
use wasmix_fs::{Errno, FdCache, FileSystem};

fn write(fs: &FileSystem, cache: &mut FdCache, fd: u32, bytes: &[u8]) {
    let file = fs.file_cached(cache, fd, rights::FD_WRITE).unwrap();
    assert_eq!(file.write(&[IoSlice::new(bytes)]).unwrap(), bytes.len());
}

fn read(fs: &FileSystem, fd: u32) -> Vec<u8> {
    let mut buf = [0u8; 16];
    let n = fs
        .file(fd, rights::FD_READ)
        .unwrap()
        .read(&mut buf)
        .unwrap();
    buf[..n].to_vec()
}

#[test]
fn a_cached_lookup_follows_every_change_of_the_table() {
    let fs = FileSystem::new();
    let (r1, w1) = fs.pipe().unwrap();
    let (r2, w2) = fs.pipe().unwrap();
    let mut cache = FdCache::default();

    write(&fs, &mut cache, w1, b"a");
    write(&fs, &mut cache, w1, b"b");
    assert_eq!(read(&fs, r1), b"ab");

    // The number now names the second pipe.
    fs.dup_onto(w2, w1).unwrap();
    write(&fs, &mut cache, w1, b"c");
    assert_eq!(read(&fs, r2), b"c");

    // Rights the cached entry lacks are refused as before.
    assert_eq!(
        fs.file_cached(&mut cache, w1, rights::FD_READ).err(),
        Some(Errno::Badf)
    );

    fs.close(w1).unwrap();
    assert_eq!(
        fs.file_cached(&mut cache, w1, rights::FD_WRITE).err(),
        Some(Errno::Badf)
    );
}

#[test]
fn a_lookup_cached_in_one_file_system_is_not_used_for_another() {
    let parent = FileSystem::new();
    let (r1, w1) = parent.pipe().unwrap();
    let child = parent.fork();
    // One change each since the fork: the two tables are at the same version, and the
    // child's w1 now names the read end.
    child.dup_onto(r1, w1).unwrap();
    let mut cache = FdCache::default();
    write(&parent, &mut cache, w1, b"p");
    assert_eq!(
        child.file_cached(&mut cache, w1, rights::FD_WRITE).err(),
        Some(Errno::Badf)
    );
    assert_eq!(read(&parent, r1), b"p");
}
