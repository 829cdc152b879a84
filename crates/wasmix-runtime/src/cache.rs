//! On-disk cache of compiled modules.
//!
//! An entry is keyed by the module's bytes and the engine's compatibility fingerprint, and is
//! two files: `KEY.cwasm` (wasmtime's serialized module) and `KEY.sum` (the blake3 of it).
//! Both are written to a temporary name and renamed into place, so concurrent runs only ever see
//! whole files; an entry whose checksum does not match is ignored and rebuilt.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use wasmtime::{Engine, Module};

pub struct ModuleCache {
    dir: PathBuf,
    /// Mixed into every key so artifacts from another engine configuration never match.
    engine_tag: [u8; 8],
}

impl ModuleCache {
    pub fn new(engine: &Engine, dir: PathBuf) -> ModuleCache {
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        env!("CARGO_PKG_VERSION").hash(&mut h);
        crate::rewrite::VERSION.hash(&mut h);
        crate::checks::VERSION.hash(&mut h);
        crate::exnref::VERSION.hash(&mut h);
        // What is instrumented is part of the artifact: a new capture point is a new key.
        crate::stack::prepare::unwinding_imports(crate::stack::prepare::Instrumentation::Snapshots)
            .hash(&mut h);
        ModuleCache {
            dir,
            engine_tag: h.finish().to_le_bytes(),
        }
    }

    /// The default location: `$WASMIX_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmix`, else
    /// `~/.cache/wasmix`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(d) = std::env::var_os("WASMIX_CACHE_DIR").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(d));
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(d).join("wasmix"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("wasmix"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn key(&self, wasm: &[u8], variant: &str) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&self.engine_tag);
        h.update(variant.as_bytes());
        h.update(&[0]);
        h.update(wasm);
        h.finalize().to_hex().to_string()
    }

    /// A module compiled from `wasm` as `variant` (how it is instrumented) says: from the
    /// cache when a sound entry exists, else compiled by `compile` and stored (storing is best
    /// effort; failures are logged, not fatal).
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        variant: &str,
        compile: impl FnOnce() -> wasmtime::Result<Module>,
    ) -> wasmtime::Result<Module> {
        let key = self.key(wasm, variant);
        let artifact = self.dir.join(format!("{key}.cwasm"));
        let sum = self.dir.join(format!("{key}.sum"));
        if let Some(module) = load(engine, &artifact, &sum) {
            return Ok(module);
        }
        let module = compile()?;
        if let Err(e) = self.store(&module, &artifact, &sum) {
            tracing::warn!(
                "could not write module cache entry in {}: {e}",
                self.dir.display()
            );
        }
        Ok(module)
    }

    fn store(&self, module: &Module, artifact: &Path, sum: &Path) -> wasmtime::Result<()> {
        let bytes = module.serialize()?;
        fs::create_dir_all(&self.dir)?;
        write_atomically(&self.dir, artifact, &bytes)?;
        write_atomically(&self.dir, sum, blake3::hash(&bytes).to_hex().as_bytes())?;
        Ok(())
    }
}

fn load(engine: &Engine, artifact: &Path, sum: &Path) -> Option<Module> {
    let expected = fs::read(sum).ok()?;
    let file = fs::File::open(artifact).ok()?;
    // Checked where it lies, mapped rather than read: a copy costs more than the check
    // (page faults on a fresh buffer), and wasmtime maps the same pages again below.
    if !sum_matches(&file, &expected) {
        tracing::debug!("ignoring corrupt cache entry {}", artifact.display());
        return None;
    }
    // SAFETY: the file holds exactly what `Module::serialize` produced for this engine
    // configuration (checked by the blake3 sum written after it; entries are replaced by
    // rename, never rewritten in place); wasmtime still verifies the header and engine
    // compatibility itself.
    match unsafe { Module::deserialize_open_file(engine, file.try_clone().ok()?) } {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::debug!("ignoring unusable cache entry {}: {e}", artifact.display());
            None
        }
    }
}

/// Whether the blake3 sum of `file`'s contents is `expected` (hex).
fn sum_matches(file: &fs::File, expected: &[u8]) -> bool {
    let Ok(len) = file.metadata().map(|m| m.len() as usize) else {
        return false;
    };
    if len == 0 {
        return blake3::hash(&[]).to_hex().as_bytes() == expected;
    }
    // SAFETY: a private read-only mapping of a whole regular file, unmapped before return;
    // the slice does not outlive it.
    unsafe {
        let Ok(at) = rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ,
            rustix::mm::MapFlags::PRIVATE,
            file,
            0,
        ) else {
            return false;
        };
        let bytes = std::slice::from_raw_parts(at.cast::<u8>(), len);
        let matches = blake3::hash(bytes).to_hex().as_bytes() == expected;
        let _ = rustix::mm::munmap(at, len);
        matches
    }
}

fn write_atomically(dir: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(module (func (export "f") (result i32) i32.const 7))"#;

    fn engine() -> Engine {
        Engine::default()
    }

    #[test]
    fn second_load_comes_from_disk_and_corruption_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ModuleCache::new(&engine, dir.path().to_owned());
        let wasm = wat::parse_str(WAT).unwrap();
        let mut compiled = 0;
        let get = |compiled: &mut i32| {
            cache
                .get_or_compile(&engine, &wasm, "", || {
                    *compiled += 1;
                    Module::new(&engine, &wasm)
                })
                .unwrap()
        };
        get(&mut compiled);
        get(&mut compiled);
        assert_eq!(compiled, 1, "second load must hit the cache");

        let artifact = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .unwrap();
        let mut bytes = fs::read(&artifact).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(&artifact, &bytes).unwrap();
        let m = get(&mut compiled);
        assert_eq!(compiled, 2, "a corrupt entry must be rebuilt");
        assert!(m.get_export("f").is_some());
        get(&mut compiled);
        assert_eq!(compiled, 2, "the rebuilt entry must be used again");
    }

    #[test]
    fn truncated_entry_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let cache = ModuleCache::new(&engine, dir.path().to_owned());
        let wasm = wat::parse_str(WAT).unwrap();
        cache
            .get_or_compile(&engine, &wasm, "", || Module::new(&engine, &wasm))
            .unwrap();
        for e in fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "cwasm") {
                fs::write(&p, b"\x7fELF").unwrap();
            }
        }
        let mut compiled = false;
        cache
            .get_or_compile(&engine, &wasm, "", || {
                compiled = true;
                Module::new(&engine, &wasm)
            })
            .unwrap();
        assert!(compiled);
    }
}
