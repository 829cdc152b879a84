//! `wasmix journal …`: looking into journals without running anything.

use std::path::Path;

use wasmix_journal::{Journal, JournalError, Kind, Tail, Verify};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `verify`: checks every byte (frame headers, payload checksums, snapshot structure).
/// Prints what it found; the error names the first bad offset.
pub fn verify(path: &Path) -> Result<(), JournalError> {
    let j = Journal::open(path, None, Verify::Full)?;
    println!(
        "{}: ok, {} complete snapshot(s), {} bytes",
        path.display(),
        j.snapshots().len(),
        j.len()
    );
    if let Tail::Dropped {
        offset,
        bytes,
        reason,
    } = j.tail()
    {
        println!(
            "torn tail: {bytes} bytes from byte {offset} are not part of a snapshot ({reason}); \
             the next run journaling into it cuts them off"
        );
    }
    Ok(())
}

/// `inspect`: the header, frames by kind and every complete snapshot; `json` prints one
/// object whose `snapshots` array has an entry per complete snapshot.
pub fn inspect(path: &Path, json: bool) -> Result<(), JournalError> {
    let j = Journal::open(path, None, Verify::Frames)?;
    let mut snapshots = Vec::new();
    for index in j.snapshots() {
        let s = j.snapshot(index)?;
        let memory: u64 = s.memories.iter().map(|m| m.size).sum();
        let stored: u64 = s.regions.iter().map(|r| r.stored_len).sum();
        snapshots.push(serde_json::json!({
            "seq": index.seq,
            "trigger": index.begin.trigger,
            "wall_ns": index.begin.wall_ns,
            "offset": index.start,
            "bytes": index.end - index.start,
            "threads": s.threads.len(),
            "pid": s.process.as_ref().map(|p| p.pid),
            "memory_bytes": memory,
            "regions": s.regions.len(),
            "region_bytes_stored": stored,
            "descriptors": s.files.as_ref().map_or(0, |f| f.fds.len()),
        }));
    }
    let kinds: serde_json::Map<String, serde_json::Value> = Kind::ALL
        .iter()
        .filter(|k| !matches!(k, Kind::Padding))
        .map(|k| {
            // Every complete snapshot has exactly one commit (not among its counted frames).
            let n: usize = match k {
                Kind::Commit => j.snapshots().len(),
                _ => j.snapshots().iter().map(|s| s.count(*k)).sum(),
            };
            (k.name().to_owned(), n.into())
        })
        .collect();
    let tail = match j.tail() {
        Tail::Clean => serde_json::Value::Null,
        Tail::Dropped {
            offset,
            bytes,
            reason,
        } => serde_json::json!({ "offset": offset, "bytes": bytes, "reason": reason }),
    };
    if json {
        let all = serde_json::json!({
            "path": path.display().to_string(),
            "format_version": j.format_version(),
            "module": hex(&j.module()),
            "bytes": j.len(),
            "records": kinds,
            "snapshots": snapshots,
            "torn_tail": tail,
        });
        println!("{all}");
        return Ok(());
    }
    println!("journal {}", path.display());
    println!("  format version {}", j.format_version());
    println!("  module         {}", hex(&j.module()));
    println!("  size           {} bytes", j.len());
    let counts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  records        {}", counts.join(", "));
    println!("  snapshots      {}", snapshots.len());
    for s in &snapshots {
        println!(
            "    #{} {} at byte {}: {} bytes, pid {}, {} thread(s), {} bytes of memory in {} region(s), {} descriptor(s)",
            s["seq"],
            s["trigger"].as_str().unwrap_or(""),
            s["offset"],
            s["bytes"],
            s["pid"],
            s["threads"],
            s["memory_bytes"],
            s["regions"],
            s["descriptors"]
        );
    }
    if let Tail::Dropped {
        offset,
        bytes,
        reason,
    } = j.tail()
    {
        println!("  torn tail      {bytes} bytes from byte {offset} ({reason})");
    }
    Ok(())
}
