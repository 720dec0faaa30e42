//! Reading OSV records from what an operator hands to `db import`: osv.dev's per-ecosystem
//! `all.zip` exports, directories of `*.json` records (walked recursively, symlinks not
//! followed), or single JSON files. Every size is capped before bytes are read.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::osv::MAX_RECORD_BYTES;

/// Most entries read from one archive; osv.dev's largest export has well under 1M.
const MAX_ZIP_ENTRIES: usize = 5_000_000;
const MAX_DIR_DEPTH: usize = 32;

/// What happened to one candidate file inside a source.
pub enum Item<'a> {
    Record {
        name: &'a str,
        bytes: &'a [u8],
    },
    /// A file that could not be read as a record; reason category and detail.
    Unreadable {
        name: &'a str,
        category: &'static str,
        detail: String,
    },
}

/// A whole source that could not be opened (missing path, not a zip archive, …).
#[derive(Debug)]
pub struct SourceFailure {
    pub path: PathBuf,
    pub reason: String,
}

pub fn read_source(path: &Path, sink: &mut dyn FnMut(Item<'_>)) -> Result<(), SourceFailure> {
    let fail = |reason: String| SourceFailure {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if meta.is_dir() {
        walk_dir(path, 0, sink);
        return Ok(());
    }
    let mut file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic).map_err(|e| fail(e.to_string()))?;
    drop(file);
    if n == 4 && &magic == b"PK\x03\x04" {
        read_zip(path, sink).map_err(fail)
    } else {
        let name = path.display().to_string();
        read_file(path, &name, sink);
        Ok(())
    }
}

fn read_file(path: &Path, name: &str, sink: &mut dyn FnMut(Item<'_>)) {
    let result = File::open(path).and_then(|f| {
        let mut buf = Vec::new();
        f.take(MAX_RECORD_BYTES + 1).read_to_end(&mut buf)?;
        Ok(buf)
    });
    match result {
        Ok(buf) if buf.len() as u64 > MAX_RECORD_BYTES => sink(Item::Unreadable {
            name,
            category: "too-large",
            detail: format!("over {MAX_RECORD_BYTES} bytes"),
        }),
        Ok(buf) => sink(Item::Record { name, bytes: &buf }),
        Err(e) => sink(Item::Unreadable {
            name,
            category: "unreadable",
            detail: e.to_string(),
        }),
    }
}

fn walk_dir(dir: &Path, depth: usize, sink: &mut dyn FnMut(Item<'_>)) {
    let name = dir.display().to_string();
    if depth > MAX_DIR_DEPTH {
        sink(Item::Unreadable {
            name: &name,
            category: "too-deep",
            detail: "directory nesting limit".into(),
        });
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            sink(Item::Unreadable {
                name: &name,
                category: "unreadable",
                detail: e.to_string(),
            });
            return;
        }
    };
    // A stable order makes repeated imports of the same tree reproducible.
    entries.sort();
    for p in entries {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk_dir(&p, depth + 1, sink);
        } else if meta.is_file() && p.extension().is_some_and(|e| e == "json") {
            read_file(&p, &p.display().to_string(), sink);
        }
    }
}

fn read_zip(path: &Path, sink: &mut dyn FnMut(Item<'_>)) -> Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| format!("not a readable zip archive: {e}"))?;
    let count = archive.len();
    if count > MAX_ZIP_ENTRIES {
        return Err(format!(
            "{count} entries is more than the {MAX_ZIP_ENTRIES} allowed"
        ));
    }
    let mut buf = Vec::new();
    for i in 0..count {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                sink(Item::Unreadable {
                    name: &format!("{}#{i}", path.display()),
                    category: "bad-zip-entry",
                    detail: e.to_string(),
                });
                continue;
            }
        };
        if entry.is_dir() || !entry.name().ends_with(".json") {
            continue;
        }
        let name = format!("{}:{}", path.display(), entry.name());
        // The declared size can lie; the read below is capped independently.
        if entry.size() > MAX_RECORD_BYTES {
            sink(Item::Unreadable {
                name: &name,
                category: "too-large",
                detail: format!("declares {} bytes", entry.size()),
            });
            continue;
        }
        buf.clear();
        match (&mut entry)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut buf)
        {
            Ok(_) if buf.len() as u64 > MAX_RECORD_BYTES => sink(Item::Unreadable {
                name: &name,
                category: "too-large",
                detail: format!("over {MAX_RECORD_BYTES} bytes"),
            }),
            Ok(_) => sink(Item::Record {
                name: &name,
                bytes: &buf,
            }),
            Err(e) => sink(Item::Unreadable {
                name: &name,
                category: "bad-zip-entry",
                detail: e.to_string(),
            }),
        }
    }
    Ok(())
}
