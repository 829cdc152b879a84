//! The program a spawn or exec names: found along a search path and read from the guest's
//! file system, with its argv and environment decoded from the ABI's encodings.

use wasmix_fs::{normalize, Errno, FileSystem};

use crate::host::Host;
use crate::mem::GuestMem;
use crate::program::Program;

/// Where a bare command name is looked for when the guest has no `PATH`.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// How the spawn and exec forms encode argv and environment lists in guest memory.
pub(super) trait Encoding {
    fn decode(mem: &GuestMem, ptr: u32, len: u32) -> Result<Vec<Vec<u8>>, Errno>;
}

/// Entries separated by line feeds (`len` bytes at `ptr`).
pub(super) struct LineFeed;

/// An array of `len` pointers to NUL-terminated strings.
pub(super) struct CStrings;

impl Encoding for LineFeed {
    fn decode(mem: &GuestMem, ptr: u32, len: u32) -> Result<Vec<Vec<u8>>, Errno> {
        lines(mem, ptr, len)
    }
}

impl Encoding for CStrings {
    fn decode(mem: &GuestMem, ptr: u32, count: u32) -> Result<Vec<Vec<u8>>, Errno> {
        cstrings(mem, ptr, count)
    }
}

/// Bytes of guest memory as text.
pub(super) fn text(mem: &GuestMem, ptr: u32, len: u32) -> Result<String, Errno> {
    String::from_utf8(mem.bytes(ptr, len)?.into_owned()).map_err(|_| Errno::Ilseq)
}

/// A line-feed separated list (the ABI's encoding of argv and environments).
pub(super) fn lines(mem: &GuestMem, ptr: u32, len: u32) -> Result<Vec<Vec<u8>>, Errno> {
    Ok(mem
        .bytes(ptr, len)?
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// An array of `count` pointers to NUL-terminated strings.
fn cstrings(mem: &GuestMem, ptr: u32, count: u32) -> Result<Vec<Vec<u8>>, Errno> {
    let table = mem.bytes(ptr, count.checked_mul(4).ok_or(Errno::Fault)?)?;
    let mut out = Vec::new();
    for c in table.chunks_exact(4) {
        let at = u32::from_le_bytes(c.try_into().expect("4 bytes"));
        let mut end = at;
        loop {
            if mem.u8(end)? == 0 {
                break;
            }
            end = end.checked_add(1).ok_or(Errno::Fault)?;
        }
        out.push(mem.bytes(at, end - at)?.into_owned());
    }
    Ok(out)
}

/// The value of `key` in an environment list.
fn env_value<'e>(env: &'e [Vec<u8>], key: &str) -> Option<&'e str> {
    env.iter().find_map(|kv| {
        let s = std::str::from_utf8(kv).ok()?;
        s.strip_prefix(key)?.strip_prefix('=')
    })
}

/// Finds and reads a program: a name with a `/` is a path (relative to the working
/// directory); a bare name is looked up along `search` (a `PATH` value), as a shell does.
fn find_program(
    fs: &FileSystem,
    name: &str,
    search: Option<&str>,
    limit: u64,
) -> Result<(Vec<u8>, String), Errno> {
    if name.is_empty() {
        return Err(Errno::Noent);
    }
    let cwd = fs.cwd();
    if name.contains('/') || search.is_none() {
        let abs = normalize(&cwd, name);
        return Ok((fs.read_file(&abs, limit)?, abs));
    }
    let mut last = Errno::Noent;
    for dir in search.unwrap_or(DEFAULT_PATH).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        // `ls` finds `ls`, else `ls.wasm`: guest programs are usually kept with the suffix.
        for file in [name.to_owned(), format!("{name}.wasm")] {
            let abs = normalize(&cwd, &format!("{dir}/{file}"));
            match fs.read_file(&abs, limit) {
                Ok(bytes) => return Ok((bytes, abs)),
                Err(Errno::Noent | Errno::Notdir) => {}
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// Loads the program `name` for a spawn or exec by the calling process.
pub(super) fn load(host: &Host, name: &str, search: Option<&str>) -> Result<Program, Errno> {
    let limit = host.ctx.runtime.max_module_size();
    let (bytes, abs) = find_program(host.fs(), name, search, limit)?;
    host.ctx
        .runtime
        .load_for_guest(&bytes, &abs)
        .map_err(|_| Errno::Noexec)
}

/// The `PATH` a spawn or exec searches: the one the guest passed, else its environment's.
pub(super) fn search_path(host: &Host, search: bool, path: Option<String>) -> Option<String> {
    if !search {
        return None;
    }
    Some(
        path.filter(|p| !p.is_empty())
            .or_else(|| env_value(&host.ctx.env, "PATH").map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_PATH.to_owned()),
    )
}

/// The argv a program gets: as given, or just its name when the caller gave none.
pub(super) fn argv_or_name(args: Vec<Vec<u8>>, name: &str) -> Vec<Vec<u8>> {
    if args.is_empty() {
        vec![name.as_bytes().to_vec()]
    } else {
        args
    }
}
