//! One layer, one streaming pass: the blob is inflated (and hashed) on one thread
//! while this thread walks the tar headers and routes each entry: package databases
//! and metadata to their analyzers, candidate text files to the secret matcher, ELF
//! files past the Go build-info finder and the cargo-auditable reader, everything else
//! skipped without a copy.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io::BufRead;
use std::ops::Range;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use serde::{Deserialize, Serialize};

use crate::config::ScanLimits;
use crate::report::{Distro, FileFinding, FileFindingKind, LayerSummary, Package, SecretFinding};

use super::analyzers::{
    self, Route, apk, auditable, composer, dotnet, dpkg, gem, gobin, java, npm, os_release, python,
    rpm,
};
use super::decompress::{InflateEnd, InflateOutcome, inflate_blob};
use super::denylist::Denylist;
use super::mmap::Blob;
use super::paths::{PathSet, PathSetBuilder};
use super::secrets::{SecretMatcher, is_binary, is_noise_path};
use super::tar::{EntryKind, TarError, TarWalker};
use super::{LayerRef, ScanError};

/// Inflated bytes travel between the threads in chunks of this size; QUEUE chunks in
/// flight bound the memory of one layer's pipeline.
const CHUNK: usize = 256 << 10;
const QUEUE: usize = 4;
/// Largest PAX / GNU long-name record read.
const MAX_TAR_METADATA: u64 = 1 << 20;
/// Largest package database / metadata file read into memory.
const MAX_ANALYZER_FILE: u64 = 64 << 20;
/// Largest Java archive opened.
const MAX_JAR: u64 = 256 << 20;
/// Go binaries are megabytes; smaller ELF files are not searched for build info.
const MIN_GO_BINARY: u64 = 256 << 10;
/// ELF files searched for a cargo-auditable `.dep-v0` section. The section is found
/// through the section header table at the end of the file, after the section itself,
/// so a streamed file is kept whole; the upper bound caps that memory (Rust binaries
/// are usually a few MiB; larger ones are not searched).
const MIN_RUST_BINARY: u64 = 16 << 10;
const MAX_RUST_BINARY: u64 = 128 << 20;
/// Findings kept per layer. A layer past these is hostile or absurd; it is denied
/// (LimitExceeded) rather than allowed to grow the report without bound.
const MAX_FILE_FINDINGS: usize = 10_000;
const MAX_SECRET_FINDINGS: usize = 1_000;
/// Hard links whose path needs their content examined (a package database, a metadata
/// file, a text file searched for secrets, a binary with build info), per layer. Real
/// layers have a few hundred at most (uv links every installed distribution from its
/// cache); thousands of links to one file are a way to make the scan do unbounded work.
const MAX_LINK_ANALYSES: usize = 1_024;
/// Packages the links of one layer may declare between them.
const MAX_LINKED_PACKAGES: usize = 100_000;
/// Content read a second time for links whose path needs what their target's own path
/// did not (a link named `var/lib/dpkg/status` to an unremarkable file).
const MAX_LINK_BYTES: u64 = 512 << 20;
/// Files named like package metadata outside their analyzer's directory are kept, up to
/// this size each and this much per layer, for hard links that name them properly later
/// (see [`analyzers::routes_elsewhere`]).
const MAX_RETAINED_FILE: u64 = 4 << 20;
const MAX_RETAINED_BYTES: u64 = 16 << 20;

/// An os-release file found in a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// Normalized path (no leading `/`).
    pub path: String,
    pub distro: Distro,
}

/// A file that declares packages (database, metadata file, binary, archive). Kept
/// even when it declares none: an upper layer's copy replaces the lower one's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryFile {
    /// Normalized path (no leading `/`).
    pub path: String,
    pub packages: Vec<Package>,
}

/// What one dpkg file list or rpm database says the OS package manager installed:
/// Python distributions, gem specifications, npm `package.json` files (normalized).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owned {
    /// The list or database that says so (normalized path): it counts only while it is
    /// in the final image.
    pub by: String,
    /// The dpkg package a file list belongs to: it counts only while dpkg has it.
    pub package: Option<String>,
    pub paths: Vec<String>,
}

/// Everything one layer contributes, independent of the layers around it (so it can
/// be cached by layer digest and composed into any image that uses the layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerResult {
    pub summary: LayerSummary,
    pub os_release: Vec<OsRelease>,
    pub inventory: Vec<InventoryFile>,
    /// Language-package metadata the OS package manager says it installed (dpkg's
    /// `info/*.list` files, rpm's file lists), with the file that says so.
    #[serde(default)]
    pub owned: Vec<Owned>,
    pub secrets: Vec<SecretFinding>,
    pub files: Vec<FileFinding>,
    /// Paths deleted from lower layers (`.wh.<name>`), normalized.
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer content is hidden (`.wh..wh..opq`), normalized.
    pub opaque_dirs: Vec<String>,
    /// Every path this layer puts an entry at: what it replaces in the layers below.
    #[serde(default)]
    pub paths: PathSet,
}

impl LayerResult {
    /// Integrity findings (digest mismatch, truncation, limits) are facts about these
    /// particular bytes, not about the content the digest names: never cache them.
    pub fn cacheable(&self) -> bool {
        !self.files.iter().any(|f| f.kind.is_integrity_failure())
    }
}

pub(crate) struct LayerContext<'a> {
    pub limits: &'a ScanLimits,
    pub denylist: Option<&'a Denylist>,
    pub secrets: &'static SecretMatcher,
}

/// `BufRead` over the chunks the inflate thread sends; empty buffers go back to it.
struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    recycle: Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        if let (Some(d), Some(s)) = (buf.get_mut(..n), avail.get(..n)) {
            d.copy_from_slice(s);
        }
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(next) => {
                    let old = std::mem::replace(&mut self.cur, next);
                    let _ = self.recycle.send(old);
                    self.pos = 0;
                }
                Err(_) => {
                    self.cur.clear();
                    self.pos = 0;
                    return Ok(&[]);
                }
            }
        }
        Ok(self.cur.get(self.pos..).unwrap_or_default())
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.cur.len());
    }
}

/// How the tar walk ended.
enum WalkEnd {
    /// End-of-archive marker, or a clean EOF at a header boundary.
    Finished,
    Tar(TarError),
    /// A limit stopped the walk; the finding is already recorded.
    Stopped,
}

/// Scans one layer blob. Integrity problems become findings; only failures to get
/// at the bytes at all are errors.
pub(crate) fn scan_layer(
    blob: &Blob,
    layer: &LayerRef,
    ctx: &LayerContext<'_>,
) -> Result<LayerResult, ScanError> {
    let reader = blob.reader().map_err(|source| ScanError::BlobRead {
        digest: layer.digest.to_string(),
        source,
    })?;
    let layer_id = layer.digest.to_string();
    let mut result = LayerResult {
        summary: LayerSummary {
            digest: layer_id.clone(),
            diff_id: layer.diff_id.as_ref().map(|d| d.to_string()),
            media_type: layer.media_type.clone(),
            compressed_bytes: blob.len(),
            uncompressed_bytes: 0,
            entries: 0,
            cached: false,
        },
        os_release: Vec::new(),
        inventory: Vec::new(),
        owned: Vec::new(),
        secrets: Vec::new(),
        files: Vec::new(),
        whiteouts: Vec::new(),
        opaque_dirs: Vec::new(),
        paths: PathSet::default(),
    };
    let max_bytes = ctx.limits.max_layer_bytes;
    let mut index = LayerIndex::default();
    let (walk_end, inflated) = inflate_and_walk(reader, layer, max_bytes, |chunks| {
        walk(chunks, &layer_id, ctx, &mut index, &mut result)
    });
    judge_stream(
        &mut result,
        layer,
        &layer_id,
        walk_end,
        &inflated,
        max_bytes,
    );
    // Hard links whose path needs what their target's path did not: one more pass,
    // reading only up to the last target (the layer's own integrity is already judged).
    let pending = index.live_pending();
    if !pending.is_empty() && !result.files.iter().any(|f| f.kind.is_integrity_failure()) {
        match blob.reader() {
            Ok(reader) => {
                let (end, _) = inflate_and_walk(reader, layer, max_bytes, |chunks| {
                    resolve_links(chunks, &pending, &layer_id, ctx, &mut result)
                });
                if let WalkEnd::Tar(e) = end {
                    result.files.push(finding(
                        FileFindingKind::Malformed,
                        "",
                        &layer_id,
                        format!("tar stream on the second pass for hard links: {e}"),
                    ));
                }
            }
            Err(source) => {
                return Err(ScanError::BlobRead {
                    digest: layer.digest.to_string(),
                    source,
                });
            }
        }
    }
    index.finish(&mut result);
    result.summary.uncompressed_bytes = inflated.uncompressed_bytes;
    Ok(result)
}

/// Inflates the blob on its own thread while `walk` reads the tar stream on this one.
fn inflate_and_walk(
    reader: impl std::io::Read + Send,
    layer: &LayerRef,
    max_bytes: u64,
    walk: impl FnOnce(ChunkReader) -> WalkEnd,
) -> (WalkEnd, InflateOutcome) {
    let (walk_end, inflated) = std::thread::scope(|s| {
        let (tx, rx): (SyncSender<Vec<u8>>, _) = sync_channel(QUEUE);
        let (recycle_tx, recycle_rx) = channel::<Vec<u8>>();
        let media_type = layer.media_type.as_str();
        let digest = &layer.digest;
        let inflater = std::thread::Builder::new()
            .name("pw-inflate".into())
            .spawn_scoped(s, move || {
                inflate_blob(
                    reader,
                    media_type,
                    digest,
                    max_bytes,
                    CHUNK,
                    |buf| tx.send(buf).is_ok(),
                    || {
                        recycle_rx
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(CHUNK))
                    },
                )
            });
        let inflater = match inflater {
            Ok(h) => h,
            Err(e) => return (WalkEnd::Tar(TarError::Io(e.to_string())), None),
        };
        let chunks = ChunkReader {
            rx,
            recycle: recycle_tx,
            cur: Vec::new(),
            pos: 0,
        };
        let end = walk(chunks);
        // `walk` consumed (and dropped) the reader: a still-running inflate thread
        // now sees a closed channel and only finishes hashing the blob.
        (end, inflater.join().ok())
    });
    let inflated = inflated.unwrap_or(InflateOutcome {
        end: InflateEnd::Corrupt("decompression thread failed".into()),
        uncompressed_bytes: 0,
        compressed_bytes: 0,
        blob_digest: Err("decompression thread failed".into()),
    });
    (walk_end, inflated)
}

fn finding(kind: FileFindingKind, path: &str, layer: &str, detail: String) -> FileFinding {
    FileFinding {
        kind,
        path: path.to_string(),
        layer: layer.to_string(),
        detail,
    }
}

/// Turns how the inflate and the walk ended, and the blob hash, into findings.
fn judge_stream(
    result: &mut LayerResult,
    layer: &LayerRef,
    layer_id: &str,
    walk_end: WalkEnd,
    inflated: &InflateOutcome,
    max_bytes: u64,
) {
    match &inflated.blob_digest {
        Ok(d) if layer.digest == *d => {}
        Ok(d) => result.files.push(finding(
            FileFindingKind::DigestMismatch,
            "",
            layer_id,
            format!("blob content hashes to {d}, not to the digest it is stored under"),
        )),
        Err(e) => result.files.push(finding(
            FileFindingKind::Malformed,
            "",
            layer_id,
            format!("blob could not be read to the end: {e}"),
        )),
    }
    let over_limit = || {
        finding(
            FileFindingKind::LimitExceeded,
            "",
            layer_id,
            format!(
                "layer inflates to more than max_layer_bytes ({max_bytes} bytes): possible decompression bomb"
            ),
        )
    };
    let corrupt = |msg: &str| {
        finding(
            FileFindingKind::Malformed,
            "",
            layer_id,
            format!("compressed stream is corrupt or truncated: {msg}"),
        )
    };
    match (walk_end, &inflated.end) {
        (WalkEnd::Stopped, _) => {}
        (_, InflateEnd::OverLimit { .. }) => result.files.push(over_limit()),
        (WalkEnd::Tar(TarError::Truncated(_)), InflateEnd::Corrupt(m))
        | (WalkEnd::Finished, InflateEnd::Corrupt(m)) => result.files.push(corrupt(m)),
        (WalkEnd::Tar(e), _) => {
            let kind = if e.is_limit() {
                FileFindingKind::LimitExceeded
            } else {
                FileFindingKind::Malformed
            };
            result
                .files
                .push(finding(kind, "", layer_id, format!("tar stream: {e}")));
        }
        (WalkEnd::Finished, InflateEnd::Complete | InflateEnd::Abandoned) => {}
    }
}

/// Normalizes an archive path inside the image root; `None` when `..` climbs out.
pub(crate) fn normalize(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn display(path: &str) -> String {
    format!("/{path}")
}

fn walk(
    chunks: ChunkReader,
    layer_id: &str,
    ctx: &LayerContext<'_>,
    index: &mut LayerIndex,
    out: &mut LayerResult,
) -> WalkEnd {
    let limits = ctx.limits;
    let mut w = TarWalker::new(chunks, limits.max_layer_bytes, MAX_TAR_METADATA);
    let mut buf: Vec<u8> = Vec::new();
    let mut entries: u64 = 0;
    loop {
        let e = match w.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => return WalkEnd::Finished,
            Err(e) => return WalkEnd::Tar(e),
        };
        if out.files.len() > MAX_FILE_FINDINGS || out.secrets.len() > MAX_SECRET_FINDINGS {
            out.files.truncate(MAX_FILE_FINDINGS);
            out.secrets.truncate(MAX_SECRET_FINDINGS);
            out.files.push(finding(
                FileFindingKind::LimitExceeded,
                "",
                layer_id,
                format!(
                    "more than {MAX_FILE_FINDINGS} file findings or {MAX_SECRET_FINDINGS} secrets in one layer"
                ),
            ));
            return WalkEnd::Stopped;
        }
        entries += 1;
        out.summary.entries = entries;
        if entries > limits.max_layer_entries {
            out.files.push(finding(
                FileFindingKind::LimitExceeded,
                "",
                layer_id,
                format!(
                    "layer has more than max_layer_entries ({}) entries",
                    limits.max_layer_entries
                ),
            ));
            return WalkEnd::Stopped;
        }
        if e.path.len() as u64 > limits.max_path_bytes {
            let shown: String = e.path.chars().take(120).collect();
            out.files.push(finding(
                FileFindingKind::LimitExceeded,
                &format!("{shown}…"),
                layer_id,
                format!(
                    "path of {} bytes is over max_path_bytes ({})",
                    e.path.len(),
                    limits.max_path_bytes
                ),
            ));
            continue;
        }
        let Some(path) = normalize(&e.path) else {
            out.files.push(finding(
                FileFindingKind::PathTraversal,
                &e.path,
                layer_id,
                "entry path climbs out of the image root".into(),
            ));
            continue;
        };
        if path.is_empty() {
            continue;
        }
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if let Some(name) = base.strip_prefix(".wh.") {
            if name == ".wh..opq" && dir.is_empty() {
                // overlayfs ignores opacity on a layer's root; containerd's other
                // appliers empty the whole root filesystem. What the image holds then
                // depends on the node's snapshotter: not an image we can vouch for.
                out.files.push(finding(
                    FileFindingKind::Malformed,
                    "/.wh..wh..opq",
                    layer_id,
                    "opaque marker on the layer's root: snapshotters disagree on what it hides"
                        .into(),
                ));
            } else if name == ".wh..opq" {
                out.opaque_dirs.push(dir.to_string());
            } else if !name.starts_with(".wh.") && !name.is_empty() {
                let deleted = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                let h = index.hash(&deleted);
                index.whiteout_at.insert(h, out.whiteouts.len());
                out.whiteouts.push(deleted);
            }
            // Other `.wh..wh.` names are aufs bookkeeping.
            continue;
        }
        // Extraction keeps the last entry of a path: whatever an earlier one declared
        // is not in the image.
        let at = index.hash(&path);
        index.paths.insert(&path, e.kind == EntryKind::Directory);
        index.replace(at, out);
        if e.kind != EntryKind::Directory {
            index.replace_below(&path, out);
        }
        if e.kind == EntryKind::Directory
            && let Some(w) = index.whiteout_at.remove(&at)
        {
            // The applier replaces the whiteout with a plain directory: what the lower
            // layers had below it shows through again (not opaque).
            index.undone_whiteouts.push(w);
        }
        match e.kind {
            EntryKind::Hardlink if normalize(e.link.as_deref().unwrap_or("")).is_some() => {
                let target = normalize(e.link.as_deref().unwrap_or("")).unwrap_or_default();
                if let Err(end) = hard_link(&path, &target, at, layer_id, ctx, index, &mut buf, out)
                {
                    return end;
                }
            }
            EntryKind::Symlink | EntryKind::Hardlink => {
                let target = e.link.as_deref().unwrap_or("");
                let escapes = if e.kind == EntryKind::Hardlink || target.starts_with('/') {
                    // Hardlink targets are archive paths; absolute symlinks resolve
                    // inside the root at run time.
                    e.kind == EntryKind::Hardlink && normalize(target).is_none()
                } else {
                    normalize(&format!("{dir}/{target}")).is_none()
                };
                if escapes {
                    let what = if e.kind == EntryKind::Hardlink {
                        "hardlink"
                    } else {
                        "symlink"
                    };
                    out.files.push(finding(
                        FileFindingKind::PathTraversal,
                        &display(&path),
                        layer_id,
                        format!("{what} to {target:?} points outside the image root"),
                    ));
                }
            }
            EntryKind::CharDevice | EntryKind::BlockDevice => {
                let what = if e.kind == EntryKind::CharDevice {
                    "character"
                } else {
                    "block"
                };
                out.files.push(finding(
                    FileFindingKind::DeviceNode,
                    &display(&path),
                    layer_id,
                    format!("{what} device {},{}", e.dev_major, e.dev_minor),
                ));
            }
            EntryKind::Directory => {
                if e.mode & 0o002 != 0 && e.mode & 0o1000 == 0 {
                    out.files.push(finding(
                        FileFindingKind::WorldWritable,
                        &display(&path),
                        layer_id,
                        format!(
                            "directory mode {:04o} (world-writable, no sticky bit)",
                            e.mode
                        ),
                    ));
                }
            }
            EntryKind::Fifo | EntryKind::Other(_) => {}
            EntryKind::Regular => {
                let before = Outputs::mark(out);
                let keep = analyzers::route(&path).is_none()
                    && analyzers::routes_elsewhere(base)
                    && e.size <= MAX_RETAINED_FILE
                    && index.retained_bytes + e.size <= MAX_RETAINED_BYTES;
                let examined = match regular_file(
                    |f| w.read_content(f),
                    e.mode,
                    e.size,
                    keep,
                    &path,
                    layer_id,
                    ctx,
                    &mut buf,
                    out,
                ) {
                    Ok(x) => x,
                    Err(err) => return WalkEnd::Tar(err),
                };
                if keep && buf.len() as u64 == e.size {
                    index.retained_bytes += e.size;
                    index.retained.insert(entries, buf.clone());
                }
                let outputs = before.since(out);
                let analyzed = outputs
                    .inventory
                    .clone()
                    .any(|i| Some(i) != examined.binary_inventory)
                    || !outputs.os_release.is_empty();
                index.files.insert(
                    at,
                    Held {
                        content: entries,
                        size: e.size,
                        mode: e.mode,
                        route: analyzers::route(&path).filter(|_| analyzed),
                        secrets_searched: examined.secrets_searched,
                        binary: examined.binary,
                        binary_inventory: examined.binary_inventory,
                        outputs: outputs.clone(),
                    },
                );
                index.record(at, &path, outputs);
            }
        }
    }
}

/// How a regular file's content was examined at its own path.
#[derive(Debug, Clone, Copy, Default)]
struct Examined {
    secrets_searched: bool,
    binary: bool,
    /// Index of the inventory entry of Go or Rust build info, when one was recorded.
    binary_inventory: Option<usize>,
}

/// Examines one regular file of `size` bytes and `mode` at `path`; `read` streams its
/// content (from the tar walk, or from a buffer for a hard link). `keep`: leave the
/// whole content in `buf` whatever the examination needs.
#[allow(clippy::too_many_arguments)]
fn regular_file(
    read: impl FnOnce(&mut dyn FnMut(&[u8])) -> Result<(), TarError>,
    mode: u32,
    size: u64,
    keep: bool,
    path: &str,
    layer_id: &str,
    ctx: &LayerContext<'_>,
    buf: &mut Vec<u8>,
    out: &mut LayerResult,
) -> Result<Examined, TarError> {
    let e = FileHead { mode, size };
    let shown = display(path);
    for (bit, kind, what) in [
        (0o4000, FileFindingKind::Setuid, "setuid"),
        (0o2000, FileFindingKind::Setgid, "setgid"),
        (0o0002, FileFindingKind::WorldWritable, "world-writable"),
    ] {
        if e.mode & bit != 0 {
            out.files.push(finding(
                kind,
                &shown,
                layer_id,
                format!("{what} file, mode {:04o}", e.mode),
            ));
        }
    }
    if e.size == 0 {
        return Ok(Examined::default());
    }
    let route = analyzers::route(path);
    let route_cap = match route {
        Some(Route::Jar | Route::PythonEgg) => MAX_JAR,
        Some(_) => MAX_ANALYZER_FILE,
        None => 0,
    };
    let collect_route = route.is_some() && e.size <= route_cap;
    if route.is_some() && !collect_route {
        out.files.push(finding(
            FileFindingKind::NotExamined,
            &shown,
            layer_id,
            format!(
                "package metadata file of {} bytes is over the {route_cap} byte analyzer limit",
                e.size
            ),
        ));
    }
    let secret_candidate = !is_noise_path(path);
    let secret_fits = e.size <= ctx.limits.max_secret_file_bytes;
    let go_candidate = e.size >= MIN_GO_BINARY;
    // Executables only (as Trivy does): cargo-auditable writes its list into binaries,
    // and skipping the many non-executable shared libraries of a distro layer keeps the
    // whole-file copy off most ELF bytes.
    let rust_candidate =
        (MIN_RUST_BINARY..=MAX_RUST_BINARY).contains(&e.size) && e.mode & 0o111 != 0;
    let mut hashers = ctx.denylist.map(|d| d.hashers());
    if !collect_route
        && !secret_candidate
        && !go_candidate
        && !rust_candidate
        && hashers.is_none()
        && !keep
    {
        return Ok(Examined::default()); // skipped by the next header read, without a copy
    }
    buf.clear();
    let mut first = true;
    let mut collect_secret = secret_candidate && secret_fits;
    let mut big_text = false;
    let mut go: Option<gobin::BuildInfoFinder> = None;
    let mut collect_elf = false;
    let mut binary = false;
    read(&mut |s: &[u8]| {
        if first {
            first = false;
            if is_binary(s) {
                binary = true;
                collect_secret = false;
                // A slice can end inside the magic; the full check follows on the
                // whole file.
                let elf = b"\x7fELF".starts_with(s.get(..4).unwrap_or(s));
                if go_candidate && elf {
                    go = Some(gobin::BuildInfoFinder::new());
                }
                collect_elf = rust_candidate && elf;
            } else if secret_candidate && !secret_fits {
                big_text = true;
            }
        }
        if collect_route || collect_secret || collect_elf || keep {
            buf.extend_from_slice(s);
        }
        if let Some(g) = &mut go {
            g.feed(s);
        }
        if let Some(h) = &mut hashers {
            h.update(s);
        }
    })?;
    if let Some(route) = route.filter(|_| collect_route) {
        analyze(route, path, buf, layer_id, out);
    }
    if collect_secret {
        for m in ctx.secrets.scan(buf) {
            out.secrets.push(SecretFinding {
                rule: m.rule.to_string(),
                title: m.title.to_string(),
                path: shown.clone(),
                layer: layer_id.to_string(),
                line: m.line,
                redacted: m.redacted,
                deleted_in_final_image: false,
            });
        }
    }
    if big_text {
        out.files.push(finding(
            FileFindingKind::NotExamined,
            &shown,
            layer_id,
            format!(
                "text file of {} bytes is over max_secret_file_bytes ({}): not searched for secrets",
                e.size, ctx.limits.max_secret_file_bytes
            ),
        ));
    }
    let rust = if collect_elf && buf.starts_with(b"\x7fELF") {
        match auditable::parse_elf(buf) {
            Ok(pkgs) => Some(pkgs),
            Err(err) => {
                // A dependency list that could not be read is visible, but not an
                // integrity failure of the image (the ELF runs the same either way);
                // an ELF whose section headers are unreadable has none to read.
                if err.is_in_dependency_list() {
                    out.files.push(finding(
                        FileFindingKind::NotExamined,
                        &shown,
                        layer_id,
                        format!("Rust dependency list not read: {err}"),
                    ));
                }
                Some(Vec::new())
            }
        }
    } else {
        None
    };
    let mut binary_inventory = None;
    if go.is_some() || rust.is_some() {
        binary_inventory = Some(out.inventory.len());
        // Recorded even without packages: a binary an upper layer replaces must take
        // the lower layer's Go or Rust packages with it.
        let mut pkgs = go.map(gobin::BuildInfoFinder::finish).unwrap_or_default();
        pkgs.extend(rust.unwrap_or_default());
        push_inventory(
            out,
            path,
            layer_id,
            pkgs.into_iter().map(|p| (shown.clone(), p)).collect(),
        );
    }
    if collect_elf && !keep && buf.capacity() as u64 > MAX_ANALYZER_FILE {
        // A big binary's buffer is not held for the rest of the layer.
        *buf = Vec::new();
    }
    if let (Some(h), Some(d)) = (hashers, ctx.denylist)
        && let Some(entry) = d.check(h)
    {
        out.files.push(finding(
            FileFindingKind::Denylisted,
            &shown,
            layer_id,
            format!("content {entry} is on the denylist"),
        ));
    }
    Ok(Examined {
        secrets_searched: collect_secret,
        binary,
        binary_inventory,
    })
}

/// The two header fields the examination of a file's content needs.
struct FileHead {
    mode: u32,
    size: u64,
}

fn push_inventory(out: &mut LayerResult, path: &str, layer_id: &str, pkgs: Vec<(String, Package)>) {
    let packages = pkgs
        .into_iter()
        .map(|(p, mut pkg)| {
            pkg.layer = layer_id.to_string();
            pkg.path = p;
            pkg
        })
        .collect();
    out.inventory.push(InventoryFile {
        path: path.to_string(),
        packages,
    });
}

fn analyze(route: Route, path: &str, bytes: &[u8], layer_id: &str, out: &mut LayerResult) {
    let shown = display(path);
    let with_path = |v: Vec<Package>| {
        v.into_iter()
            .map(|p| (shown.clone(), p))
            .collect::<Vec<_>>()
    };
    match route {
        Route::OsRelease => {
            if let Some(distro) = os_release::parse(bytes) {
                out.os_release.push(OsRelease {
                    path: path.to_string(),
                    distro,
                });
            }
        }
        Route::DpkgStatus => push_inventory(
            out,
            path,
            layer_id,
            with_path(dpkg::parse_status(bytes, true)),
        ),
        Route::DpkgStatusD => push_inventory(
            out,
            path,
            layer_id,
            with_path(dpkg::parse_status(bytes, false)),
        ),
        Route::DpkgFileList => {
            // `info/<package>.list` or `info/<package>:<arch>.list`.
            let base = path.rsplit('/').next().unwrap_or(path);
            let name = base.strip_suffix(".list").unwrap_or(base);
            let name = name.split(':').next().unwrap_or(name);
            out.owned.push(Owned {
                by: path.to_string(),
                package: Some(name.to_string()),
                paths: dpkg::python_dirs_in_list(bytes),
            });
        }
        Route::ApkInstalled => push_inventory(out, path, layer_id, with_path(apk::parse(bytes))),
        Route::RpmSqlite => rpm_inventory(out, path, layer_id, rpm::parse_sqlite(bytes)),
        Route::RpmBdb => rpm_inventory(out, path, layer_id, rpm::parse_bdb(bytes)),
        Route::RpmNdb => rpm_inventory(out, path, layer_id, rpm::parse_ndb(bytes)),
        Route::PythonMetadata => push_inventory(
            out,
            path,
            layer_id,
            with_path(python::parse(bytes).into_iter().collect()),
        ),
        Route::PythonEgg => {
            // An egg whose zip central directory is over the limits is not opened.
            let pkg = python::parse_egg_checked(bytes).unwrap_or_else(|why| {
                out.files.push(finding(
                    FileFindingKind::NotExamined,
                    &shown,
                    layer_id,
                    format!("zipped egg not opened: {why}"),
                ));
                None
            });
            push_inventory(out, path, layer_id, with_path(pkg.into_iter().collect()))
        }
        Route::NpmPackage => push_inventory(
            out,
            path,
            layer_id,
            with_path(npm::parse(bytes).into_iter().collect()),
        ),
        Route::Jar => {
            // Archives (this one or nested ones) whose zip central directory is over
            // the limits are not opened; each is named.
            let parsed = java::parse_all(bytes, &shown);
            for (archive, why) in parsed.refused {
                out.files.push(finding(
                    FileFindingKind::NotExamined,
                    &archive,
                    layer_id,
                    format!("java archive not opened: {why}"),
                ));
            }
            push_inventory(out, path, layer_id, parsed.packages)
        }
        Route::Gemspec => push_inventory(
            out,
            path,
            layer_id,
            with_path(gem::parse(bytes).into_iter().collect()),
        ),
        Route::ComposerInstalled => {
            push_inventory(out, path, layer_id, with_path(composer::parse(bytes)))
        }
        Route::DotnetDeps => push_inventory(out, path, layer_id, with_path(dotnet::parse(bytes))),
    }
}

/// An rpm database's packages and owned Python directories; an unreadable database
/// (or header) is a Malformed finding: the image's package list is not known.
fn rpm_inventory(
    out: &mut LayerResult,
    path: &str,
    layer_id: &str,
    parsed: Result<rpm::RpmDb, rpm::RpmDbError>,
) {
    let shown = display(path);
    let packages = match parsed {
        Ok(db) => {
            if let Some(e) = &db.first_error {
                out.files.push(finding(
                    FileFindingKind::Malformed,
                    &shown,
                    layer_id,
                    format!(
                        "rpm database: {} package header(s) unreadable, first: {e}",
                        db.bad_headers
                    ),
                ));
            }
            out.owned.push(Owned {
                by: path.to_string(),
                package: None,
                paths: db.python_dirs,
            });
            db.packages
        }
        Err(e) => {
            out.files.push(finding(
                FileFindingKind::Malformed,
                &shown,
                layer_id,
                format!("rpm database cannot be read: {e}"),
            ));
            Vec::new()
        }
    };
    // Recorded even when empty: this copy replaces a lower layer's.
    let packages = packages.into_iter().map(|p| (shown.clone(), p)).collect();
    push_inventory(out, path, layer_id, packages);
}

// ------------------------------------------------------------------ hard links, last entry wins

/// What one entry contributed to the layer result: ranges of `inventory`, `os_release`
/// and `secrets`.
#[derive(Debug, Clone, Default)]
struct Outputs {
    inventory: Range<usize>,
    os_release: Range<usize>,
    secrets: Range<usize>,
}

/// The lengths of the result's lists before an entry is examined.
struct Mark {
    inventory: usize,
    os_release: usize,
    secrets: usize,
}

impl Outputs {
    fn mark(out: &LayerResult) -> Mark {
        Mark {
            inventory: out.inventory.len(),
            os_release: out.os_release.len(),
            secrets: out.secrets.len(),
        }
    }

    fn declares(&self) -> bool {
        !self.inventory.is_empty() || !self.os_release.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.declares() && self.secrets.is_empty()
    }
}

impl Mark {
    fn since(self, out: &LayerResult) -> Outputs {
        Outputs {
            inventory: self.inventory..out.inventory.len(),
            os_release: self.os_release..out.os_release.len(),
            secrets: self.secrets..out.secrets.len(),
        }
    }
}

/// The regular file a path of this layer holds (itself, or through hard links).
#[derive(Debug, Clone)]
struct Held {
    /// Entry number (1-based, in archive order) of the regular file with the bytes.
    content: u64,
    size: u64,
    mode: u32,
    /// The analyzer the bytes went to at their own path, when it declared something.
    route: Option<Route>,
    secrets_searched: bool,
    binary: bool,
    /// The inventory entry of the Go or Rust build info found in the bytes.
    binary_inventory: Option<usize>,
    outputs: Outputs,
}

/// A hard link whose content is read again after the walk.
#[derive(Debug, Clone)]
struct PendingLink {
    content: u64,
    path: String,
    mode: u32,
    size: u64,
    /// A later entry of the layer replaced the link: nothing to examine.
    replaced: bool,
}

/// What the walk remembers of one layer to resolve hard links (a link names an earlier
/// entry of the same layer) and to keep only the last entry of a path. Per entry a
/// few tens of bytes, keyed by a keyed 64-bit hash of the path; never file contents.
#[derive(Default)]
struct LayerIndex {
    hasher: std::collections::hash_map::RandomState,
    files: HashMap<u64, Held>,
    outputs: HashMap<u64, Outputs>,
    pending: Vec<PendingLink>,
    pending_at: HashMap<u64, usize>,
    replaced_inventory: Vec<Range<usize>>,
    replaced_os_release: Vec<Range<usize>>,
    link_analyses: usize,
    linked_packages: usize,
    link_bytes: u64,
    /// Content of files named like package metadata outside their analyzer's
    /// directory, by entry number (bounded by `MAX_RETAINED_BYTES`).
    retained: HashMap<u64, Vec<u8>>,
    retained_bytes: u64,
    /// Paths whose entries declared something, for [`LayerIndex::replace_below`].
    output_paths: std::collections::BTreeMap<String, u64>,
    prefix: String,
    /// Paths this layer's whiteouts delete, by path hash → index in `whiteouts`.
    whiteout_at: HashMap<u64, usize>,
    /// Whiteouts a later directory entry of the same layer undid.
    undone_whiteouts: Vec<usize>,
    paths: PathSetBuilder,
}

impl LayerIndex {
    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    fn record(&mut self, at: u64, path: &str, outputs: Outputs) {
        if !outputs.is_empty() {
            self.outputs.insert(at, outputs);
            self.output_paths.insert(path.to_string(), at);
        }
    }

    /// A non-directory entry at `path`: extraction removes a directory there with
    /// everything below it, so what this layer's earlier entries below it declared is
    /// gone too.
    fn replace_below(&mut self, path: &str, out: &mut LayerResult) {
        if self.output_paths.is_empty() {
            return;
        }
        // Every key that starts with `path/`, found from `path/` on; the prefix lives in
        // a reused buffer so the walk allocates nothing per entry.
        let mut prefix = std::mem::take(&mut self.prefix);
        prefix.clear();
        prefix.push_str(path);
        prefix.push('/');
        let below: Vec<u64> = self
            .output_paths
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix.as_str()))
            .map(|(_, h)| *h)
            .collect();
        self.prefix = prefix;
        for h in below {
            self.replace(h, out);
        }
    }

    /// A new entry at path `at`: what an earlier entry there declared is gone from the
    /// image (its secrets still ship in the layer's bytes).
    fn replace(&mut self, at: u64, out: &mut LayerResult) {
        self.files.remove(&at);
        if let Some(i) = self.pending_at.remove(&at)
            && let Some(p) = self.pending.get_mut(i)
        {
            p.replaced = true;
        }
        if let Some(o) = self.outputs.remove(&at) {
            self.replaced_inventory.push(o.inventory);
            self.replaced_os_release.push(o.os_release);
            for s in out.secrets.get_mut(o.secrets).unwrap_or_default() {
                s.deleted_in_final_image = true;
            }
        }
    }

    fn live_pending(&self) -> Vec<PendingLink> {
        self.pending
            .iter()
            .filter(|p| !p.replaced)
            .cloned()
            .collect()
    }

    /// Drops what replaced entries declared and whiteouts the layer itself undid, and
    /// stores the layer's paths.
    fn finish(self, out: &mut LayerResult) {
        fn keep_unmarked<T>(list: &mut Vec<T>, marked: impl Iterator<Item = Range<usize>>) {
            let mut drop = vec![false; list.len()];
            for r in marked {
                for d in drop.get_mut(r).unwrap_or_default() {
                    *d = true;
                }
            }
            let mut i = 0;
            list.retain(|_| {
                i += 1;
                !drop.get(i - 1).copied().unwrap_or(false)
            });
        }
        keep_unmarked(&mut out.inventory, self.replaced_inventory.into_iter());
        keep_unmarked(&mut out.os_release, self.replaced_os_release.into_iter());
        keep_unmarked(
            &mut out.whiteouts,
            self.undone_whiteouts.into_iter().map(|i| i..i + 1),
        );
        out.paths = self.paths.finish();
    }
}

/// A hard link at `path` to `target` (an archive path, normalized). Its content is the
/// target's: what the target's own examination found is carried over when it covers
/// what `path` needs; otherwise the link is examined on a second pass. A target that is
/// not an earlier file of this layer is not followed (a finding that denies).
#[allow(clippy::too_many_arguments)]
fn hard_link(
    path: &str,
    target: &str,
    at: u64,
    layer_id: &str,
    ctx: &LayerContext<'_>,
    index: &mut LayerIndex,
    buf: &mut Vec<u8>,
    out: &mut LayerResult,
) -> Result<(), WalkEnd> {
    let Some(held) = index.files.get(&index.hash(target)).cloned() else {
        out.files.push(finding(
            FileFindingKind::Malformed,
            &display(path),
            layer_id,
            format!(
                "hard link to {}, which is not an earlier file of this layer: not followed",
                display(target)
            ),
        ));
        return Ok(());
    };
    let route = analyzers::route(path);
    let route_cap = match route {
        Some(Route::Jar | Route::PythonEgg) => MAX_JAR,
        _ => MAX_ANALYZER_FILE,
    };
    if route.is_some() && held.size > route_cap {
        out.files.push(finding(
            FileFindingKind::NotExamined,
            &display(path),
            layer_id,
            format!(
                "package metadata file of {} bytes (a hard link to {}) is over the {route_cap} byte analyzer limit",
                held.size,
                display(target)
            ),
        ));
    }
    let route = route.filter(|_| held.size <= route_cap);
    let wants_secrets = held.size > 0
        && !held.binary
        && !is_noise_path(path)
        && held.size <= ctx.limits.max_secret_file_bytes;
    let binary_packages = held.binary_inventory.is_some();
    if held.size == 0 || (route.is_none() && !wants_secrets && !binary_packages) {
        // Nothing at this path is examined by content: it holds the target's bytes (a
        // link to this link resolves to the same examination).
        index.files.insert(at, held);
        return Ok(());
    }
    index.link_analyses += 1;
    if index.link_analyses > MAX_LINK_ANALYSES {
        out.files.push(finding(
            FileFindingKind::LimitExceeded,
            &display(path),
            layer_id,
            format!("more than {MAX_LINK_ANALYSES} hard links to examine in one layer"),
        ));
        return Err(WalkEnd::Stopped);
    }
    let covered =
        (route.is_none() || route == held.route) && (!wants_secrets || held.secrets_searched);
    if covered {
        let before = Outputs::mark(out);
        let shown = display(path);
        // The analyzer's records when this path routes where the target's did; the
        // Go/Rust build info of a binary wherever it is linked.
        let wanted = |i: usize| {
            if Some(i) == held.binary_inventory {
                binary_packages
            } else {
                route.is_some()
            }
        };
        {
            for i in held.outputs.inventory.clone().filter(|i| wanted(*i)) {
                let Some(mut f) = out.inventory.get(i).cloned() else {
                    continue;
                };
                index.linked_packages += f.packages.len();
                f.path = path.to_string();
                for p in &mut f.packages {
                    p.path = shown.clone();
                }
                out.inventory.push(f);
            }
            for i in held.outputs.os_release.clone().filter(|_| route.is_some()) {
                if let Some(mut o) = out.os_release.get(i).cloned() {
                    o.path = path.to_string();
                    out.os_release.push(o);
                }
            }
        }
        if wants_secrets {
            for i in held.outputs.secrets.clone() {
                if let Some(mut s) = out.secrets.get(i).cloned() {
                    s.path = shown.clone();
                    s.deleted_in_final_image = false;
                    out.secrets.push(s);
                }
            }
        }
        if index.linked_packages > MAX_LINKED_PACKAGES {
            out.files.push(too_many_linked_packages(&shown, layer_id));
            return Err(WalkEnd::Stopped);
        }
        index.files.insert(at, held);
        index.record(at, path, before.since(out));
        return Ok(());
    }
    if let Some(bytes) = index.retained.remove(&held.content) {
        // Kept in this pass (named like package metadata): examined here and now.
        let before = Outputs::mark(out);
        let examined = regular_file(
            |f| {
                f(&bytes);
                Ok(())
            },
            held.mode,
            bytes.len() as u64,
            false,
            path,
            layer_id,
            ctx,
            buf,
            out,
        );
        index.retained.insert(held.content, bytes);
        if let Err(e) = examined {
            return Err(WalkEnd::Tar(e));
        }
        let outputs = before.since(out);
        index.linked_packages += out
            .inventory
            .get(outputs.inventory.clone())
            .unwrap_or_default()
            .iter()
            .map(|f| f.packages.len())
            .sum::<usize>();
        if index.linked_packages > MAX_LINKED_PACKAGES {
            out.files
                .push(too_many_linked_packages(&display(path), layer_id));
            return Err(WalkEnd::Stopped);
        }
        index.files.insert(at, held);
        index.record(at, path, outputs);
        return Ok(());
    }
    index.link_bytes += held.size;
    if index.link_bytes > MAX_LINK_BYTES {
        out.files.push(finding(
            FileFindingKind::LimitExceeded,
            &display(path),
            layer_id,
            format!("hard links in one layer need more than {MAX_LINK_BYTES} bytes read again"),
        ));
        return Err(WalkEnd::Stopped);
    }
    index.pending_at.insert(at, index.pending.len());
    index.pending.push(PendingLink {
        content: held.content,
        path: path.to_string(),
        mode: held.mode,
        size: held.size,
        replaced: false,
    });
    index.files.insert(at, held);
    Ok(())
}

/// The finding that stops a layer whose hard links declare too many packages.
fn too_many_linked_packages(path: &str, layer_id: &str) -> FileFinding {
    finding(
        FileFindingKind::LimitExceeded,
        path,
        layer_id,
        format!("hard links in one layer declare more than {MAX_LINKED_PACKAGES} packages"),
    )
}

/// The second pass: reads the content of each pending link's target (entries counted as
/// in the first pass) and examines it at the link's path.
fn resolve_links(
    chunks: ChunkReader,
    pending: &[PendingLink],
    layer_id: &str,
    ctx: &LayerContext<'_>,
    out: &mut LayerResult,
) -> WalkEnd {
    let mut by_content: HashMap<u64, Vec<&PendingLink>> = HashMap::new();
    for p in pending {
        by_content.entry(p.content).or_default().push(p);
    }
    let last = by_content.keys().copied().max().unwrap_or(0);
    let mut w = TarWalker::new(chunks, ctx.limits.max_layer_bytes, MAX_TAR_METADATA);
    let mut content = Vec::new();
    let mut buf = Vec::new();
    let mut entry: u64 = 0;
    let packages_before: usize = out.inventory.iter().map(|f| f.packages.len()).sum();
    while entry < last {
        match w.next_entry() {
            Ok(Some(_)) => entry += 1,
            Ok(None) => return WalkEnd::Finished,
            Err(e) => return WalkEnd::Tar(e),
        }
        let Some(links) = by_content.get(&entry) else {
            continue;
        };
        content.clear();
        if let Err(e) = w.read_content(|s| content.extend_from_slice(s)) {
            return WalkEnd::Tar(e);
        }
        for link in links {
            let bytes = content.as_slice();
            if let Err(e) = regular_file(
                |f| {
                    f(bytes);
                    Ok(())
                },
                link.mode,
                link.size.min(bytes.len() as u64),
                false,
                &link.path,
                layer_id,
                ctx,
                &mut buf,
                out,
            ) {
                return WalkEnd::Tar(e);
            }
            let packages: usize = out.inventory.iter().map(|f| f.packages.len()).sum();
            if packages - packages_before > MAX_LINKED_PACKAGES {
                out.files
                    .push(too_many_linked_packages(&display(&link.path), layer_id));
                return WalkEnd::Stopped;
            }
        }
    }
    WalkEnd::Finished
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_inside_the_root() {
        assert_eq!(normalize("./etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(
            normalize("/etc//x/../passwd").as_deref(),
            Some("etc/passwd")
        );
        assert_eq!(normalize("../etc/passwd"), None);
        assert_eq!(normalize("a/../../b"), None);
        assert_eq!(normalize("./").as_deref(), Some(""));
    }
}
