//! One layer, one streaming pass: the blob is inflated (and hashed) on one thread
//! while this thread walks the tar headers and routes each entry: package databases
//! and metadata to their analyzers, candidate text files to the secret matcher, ELF
//! files past the Go build-info finder and the cargo-auditable reader, everything else
//! skipped without a copy.

use std::io::BufRead;
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

/// Everything one layer contributes, independent of the layers around it (so it can
/// be cached by layer digest and composed into any image that uses the layer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerResult {
    pub summary: LayerSummary,
    pub os_release: Vec<OsRelease>,
    pub inventory: Vec<InventoryFile>,
    /// `.dist-info` / `.egg-info` directories and `.gemspec` files the OS package
    /// manager claims (dpkg's `info/*.list` files, rpm's file lists).
    #[serde(alias = "dpkg_python_dirs")]
    pub os_python_dirs: Vec<String>,
    pub secrets: Vec<SecretFinding>,
    pub files: Vec<FileFinding>,
    /// Paths deleted from lower layers (`.wh.<name>`), normalized.
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer content is hidden (`.wh..wh..opq`), normalized.
    pub opaque_dirs: Vec<String>,
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
        os_python_dirs: Vec::new(),
        secrets: Vec::new(),
        files: Vec::new(),
        whiteouts: Vec::new(),
        opaque_dirs: Vec::new(),
    };
    let max_bytes = ctx.limits.max_layer_bytes;
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
        let end = walk(chunks, &layer_id, ctx, &mut result);
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
    judge_stream(
        &mut result,
        layer,
        &layer_id,
        walk_end,
        &inflated,
        max_bytes,
    );
    result.summary.uncompressed_bytes = inflated.uncompressed_bytes;
    Ok(result)
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
        Ok(d) if *d == layer.digest.to_string() => {}
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
            if name == ".wh..opq" {
                out.opaque_dirs.push(dir.to_string());
            } else if !name.starts_with(".wh.") && !name.is_empty() {
                let deleted = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                out.whiteouts.push(deleted);
            }
            // Other `.wh..wh.` names are aufs bookkeeping.
            continue;
        }
        match e.kind {
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
                if let Err(err) = regular_file(&mut w, &e, &path, layer_id, ctx, &mut buf, out) {
                    return WalkEnd::Tar(err);
                }
            }
        }
    }
}

fn regular_file<R: BufRead>(
    w: &mut TarWalker<R>,
    e: &super::tar::TarEntry,
    path: &str,
    layer_id: &str,
    ctx: &LayerContext<'_>,
    buf: &mut Vec<u8>,
    out: &mut LayerResult,
) -> Result<(), TarError> {
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
        return Ok(());
    }
    let route = analyzers::route(path);
    let route_cap = match route {
        Some(Route::Jar) => MAX_JAR,
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
    if !collect_route && !secret_candidate && !go_candidate && !rust_candidate && hashers.is_none()
    {
        return Ok(()); // skipped by the next header read, without a copy
    }
    buf.clear();
    let mut first = true;
    let mut collect_secret = secret_candidate && secret_fits;
    let mut big_text = false;
    let mut go: Option<gobin::BuildInfoFinder> = None;
    let mut collect_elf = false;
    w.read_content(|s| {
        if first {
            first = false;
            if is_binary(s) {
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
        if collect_route || collect_secret || collect_elf {
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
    if go.is_some() || rust.is_some() {
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
    if collect_elf && buf.capacity() as u64 > MAX_ANALYZER_FILE {
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
    Ok(())
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
        Route::DpkgFileList => out.os_python_dirs.extend(dpkg::python_dirs_in_list(bytes)),
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
        Route::NpmPackage => push_inventory(
            out,
            path,
            layer_id,
            with_path(npm::parse(bytes).into_iter().collect()),
        ),
        Route::Jar => push_inventory(out, path, layer_id, java::parse(bytes, &shown)),
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
            out.os_python_dirs.extend(db.python_dirs);
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
