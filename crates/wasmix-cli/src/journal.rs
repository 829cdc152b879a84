//! `wasmix journal …`: looking into journals without running anything.

use std::path::Path;

use wasmix_journal::{Journal, JournalError, Kind, Tail, Verify};

/// A byte-count progress bar on stderr if it is a terminal (none otherwise: logs and pipes
/// get the result only).
fn progress_bar(what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    Some(bar)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `verify`: checks every byte (frame headers, payload checksums, snapshot structure).
/// Prints what it found; the error names the first bad offset.
pub fn verify(path: &Path) -> Result<(), JournalError> {
    let bar = progress_bar("verifying");
    let j = Journal::open_watched(path, None, Verify::Full, &mut |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let j = j?;
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
        let root = &s.root;
        let memory: u64 = root.memories.iter().map(|m| m.size).sum();
        let stored: u64 = root.regions.iter().map(|r| r.stored_len).sum();
        let members: Vec<serde_json::Value> = s
            .members
            .iter()
            .map(|(m, image)| {
                serde_json::json!({
                    "pid": m.pid,
                    "parent": m.parent,
                    "module": hex(&m.module),
                    "path": m.path,
                    "ended": m.ended,
                    "threads": image.threads.len(),
                    "memory_bytes": image.memories.iter().map(|m| m.size).sum::<u64>(),
                    "descriptors": image.files.as_ref().map_or(0, |f| f.fds.len()),
                })
            })
            .collect();
        snapshots.push(serde_json::json!({
            "seq": index.seq,
            "trigger": index.begin.trigger,
            "wall_ns": index.begin.wall_ns,
            "offset": index.start,
            "bytes": index.end - index.start,
            "threads": root.threads.len(),
            "pid": root.process.as_ref().map(|p| p.pid),
            "memory_bytes": memory,
            "regions": root.regions.len(),
            "region_bytes_stored": stored,
            "descriptors": root.files.as_ref().map_or(0, |f| f.fds.len()),
            "base": s.base,
            "members": members,
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
        let base = match s["base"].as_u64() {
            Some(b) => format!(", incremental on #{b}"),
            None => String::new(),
        };
        println!(
            "    #{} {} at byte {}: {} bytes, pid {}, {} thread(s), {} bytes of memory in {} region(s){base}, {} descriptor(s)",
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
        for m in s["members"].as_array().into_iter().flatten() {
            let what = match m["ended"].as_object() {
                Some(ended) => format!(
                    "not yet reaped ({})",
                    serde_json::Value::from(ended.clone())
                ),
                None => format!(
                    "{} thread(s), {} bytes of memory, {} descriptor(s)",
                    m["threads"], m["memory_bytes"], m["descriptors"]
                ),
            };
            let path = m["path"].as_str().filter(|p| !p.is_empty());
            println!(
                "      process {} (child of {}{}): {what}",
                m["pid"],
                m["parent"],
                path.map(|p| format!(", {p}")).unwrap_or_default()
            );
        }
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

/// `compact`: keeps the latest complete snapshot only.
pub fn compact(path: &Path) -> Result<(), String> {
    let done = wasmix_journal::compact(path).map_err(|e| e.to_string())?;
    match done.kept {
        Some(seq) if done.chain.len() > 1 => println!(
            "{}: kept snapshot #{seq} and the snapshots it builds on ({}), {} bytes (was {})",
            path.display(),
            done.chain
                .iter()
                .map(|s| format!("#{s}"))
                .collect::<Vec<_>>()
                .join(", "),
            done.after,
            done.before
        ),
        Some(seq) => println!(
            "{}: kept snapshot #{seq}, {} bytes (was {})",
            path.display(),
            done.after,
            done.before
        ),
        None => println!(
            "{}: no complete snapshot, nothing to compact",
            path.display()
        ),
    }
    Ok(())
}

/// The complete snapshot numbered `seq`, or the latest one.
fn pick(j: &Journal, seq: Option<u64>) -> Result<wasmix_journal::SnapshotIndex, String> {
    let all = j.snapshots();
    let found = match seq {
        Some(n) => all.iter().find(|s| s.seq == n),
        None => all.last(),
    };
    found.cloned().ok_or_else(|| match seq {
        Some(n) => format!(
            "{} holds no complete snapshot #{n} (it holds: {})",
            j.path().display(),
            all.iter()
                .map(|s| format!("#{}", s.seq))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!("{} holds no complete snapshot", j.path().display()),
    })
}

/// `export`: every complete snapshot's records as JSON lines, one record a line
/// (`{"snapshot": SEQ, "kind": KIND, "record": {…}}`); memory regions by place and size,
/// without their bytes (see `extract`).
pub fn export(path: &Path, out: &mut impl std::io::Write) -> Result<(), String> {
    let j = Journal::open(path, None, Verify::Frames).map_err(|e| e.to_string())?;
    let mut line = |seq: u64, kind: &str, record: serde_json::Value| {
        let v = serde_json::json!({ "snapshot": seq, "kind": kind, "record": record });
        writeln!(out, "{v}").map_err(|e| format!("cannot write the export: {e}"))
    };
    for index in j.snapshots() {
        let s = j.snapshot(index).map_err(|e| e.to_string())?;
        let seq = index.seq;
        line(seq, "begin", serde_json::json!(s.begin))?;
        if let Some(base) = s.base {
            line(seq, "base", serde_json::json!({ "seq": base }))?;
        }
        export_image(&mut line, seq, &s.root)?;
        for (member, image) in &s.members {
            line(seq, "member", serde_json::json!(member))?;
            export_image(&mut line, seq, image)?;
        }
        line(seq, "commit", serde_json::json!({ "end": index.end }))?;
    }
    Ok(())
}

/// One process's records as export lines.
fn export_image(
    line: &mut impl FnMut(u64, &str, serde_json::Value) -> Result<(), String>,
    seq: u64,
    image: &wasmix_journal::ProcessImage,
) -> Result<(), String> {
    if let Some(p) = &image.process {
        line(seq, "process", serde_json::json!(p))?;
    }
    for t in &image.threads {
        line(seq, "thread", serde_json::json!(t))?;
    }
    if let Some(f) = &image.files {
        line(seq, "files", serde_json::json!(f))?;
    }
    for m in &image.memories {
        line(seq, "memory", serde_json::json!(m))?;
    }
    for r in &image.regions {
        line(
            seq,
            "region",
            serde_json::json!({
                "index": r.index,
                "offset": r.offset,
                "len": r.len,
                "encoding": serde_json::json!(r.encoding),
                "stored_len": r.stored_len,
                "file_offset": r.data_offset,
            }),
        )?;
    }
    Ok(())
}

/// `extract --memory OUT`: a snapshot's linear memory as a file of its size, the pages the
/// snapshot holds written in place and the rest left as holes (zeros).
pub fn extract_memory(
    path: &Path,
    seq: Option<u64>,
    pid: Option<u32>,
    out: &Path,
) -> Result<String, String> {
    use std::os::unix::fs::FileExt;
    let j = Journal::open(path, None, Verify::Frames).map_err(|e| e.to_string())?;
    let index = pick(&j, seq)?;
    // An incremental snapshot's memory is its base's with its regions laid over it; the
    // other processes of a tree are recorded whole.
    let layers = j.layers(&index).map_err(|e| e.to_string())?;
    let s = layers.last().ok_or("no snapshot")?;
    let root_pid = s.root.process.as_ref().map(|p| p.pid);
    let images: Vec<&wasmix_journal::ProcessImage> = match pid {
        None => layers.iter().map(|l| &l.root).collect(),
        Some(p) if Some(p) == root_pid => layers.iter().map(|l| &l.root).collect(),
        Some(p) => match s.members.iter().find(|(m, _)| m.pid == p) {
            Some((m, _)) if m.ended.is_some() => {
                return Err(format!(
                    "process {p} had ended in snapshot #{} (a zombie has no memory)",
                    index.seq
                ))
            }
            Some((_, image)) => vec![image],
            None => {
                let mut all: Vec<String> = root_pid.iter().map(u32::to_string).collect();
                all.extend(s.members.iter().map(|(m, _)| m.pid.to_string()));
                return Err(format!(
                    "snapshot #{} holds no process {p} (it holds: {})",
                    index.seq,
                    all.join(", ")
                ));
            }
        },
    };
    let last = images.last().ok_or("no snapshot")?;
    let memory = last
        .memories
        .iter()
        .find(|m| m.index == 0)
        .ok_or_else(|| format!("snapshot #{} holds no linear memory", index.seq))?;
    let file =
        std::fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    file.set_len(memory.size)
        .map_err(|e| format!("cannot size {}: {e}", out.display()))?;
    let mut buf = Vec::new();
    let mut written = 0u64;
    let regions: Vec<_> = images
        .iter()
        .flat_map(|image| &image.regions)
        .filter(|r| r.index == 0)
        .collect();
    let bar = progress_bar("extracting");
    if let Some(bar) = &bar {
        bar.set_length(regions.iter().map(|r| r.len).sum());
    }
    for r in regions {
        if let Some(bar) = &bar {
            bar.set_position(written);
        }
        buf.resize(r.len as usize, 0);
        j.read_layered(r, images[0], &mut buf)
            .map_err(|e| e.to_string())?;
        file.write_all_at(&buf, r.offset)
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        written += r.len;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    file.sync_all()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(format!(
        "snapshot #{}: {} bytes of memory to {} ({written} bytes held, the rest zeros)",
        index.seq,
        memory.size,
        out.display()
    ))
}
