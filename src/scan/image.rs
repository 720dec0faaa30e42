//! From an image to its layers: index → platform manifest → config → diff IDs →
//! `LayerRef`s, over any `BlobSource` (containerd's content store holds manifests and
//! configs as blobs too). Also opens OCI layouts and `docker save` archives.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::digest::Digest;
use crate::oci::{self, Document, OciError};

use super::mmap::Blob;
use super::source::{BlobSource, OciLayoutBlobs};
use super::tar::{EntryKind, TarWalker};
use super::{LayerRef, ScanError};

/// Manifests and indexes larger than this are refused.
const MAX_MANIFEST: u64 = 4 << 20;
/// Image configs carry history and can be large, but not this large.
const MAX_CONFIG: u64 = 32 << 20;
const MAX_INDEX_DEPTH: usize = 2;

pub use crate::platform::Platform;

/// A single-platform image, resolved to its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The digest asked for (an index or a manifest).
    pub digest: Digest,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub os: String,
    pub architecture: String,
    pub layers: Vec<LayerRef>,
}

fn parse_digest(what: &'static str, owner: &Digest, s: &str) -> Result<Digest, ScanError> {
    s.parse()
        .map_err(|e: crate::digest::DigestError| ScanError::BadDocument {
            what,
            digest: owner.to_string(),
            reason: e.to_string(),
        })
}

/// Reads a small document blob and checks it hashes to its digest.
fn read_document(
    src: &dyn BlobSource,
    what: &'static str,
    d: &Digest,
    max: u64,
) -> Result<Vec<u8>, ScanError> {
    let bytes = src
        .open(d)?
        .read_all(max)
        .map_err(|source| ScanError::BlobRead {
            digest: d.to_string(),
            source,
        })?;
    if !d.matches(&bytes) {
        return Err(ScanError::DocumentDigestMismatch {
            what,
            digest: d.to_string(),
        });
    }
    Ok(bytes)
}

/// Resolves `digest` (an index or a manifest) to the layers of the image for
/// `platform`. Every document read is checked against its digest.
pub fn resolve_image(
    src: &dyn BlobSource,
    digest: &Digest,
    platform: &Platform,
) -> Result<ResolvedImage, ScanError> {
    let mut current = digest.clone();
    for _ in 0..=MAX_INDEX_DEPTH {
        let bytes = read_document(src, "manifest", &current, MAX_MANIFEST)?;
        let bad = |what: &'static str, d: &Digest, e: OciError| ScanError::BadDocument {
            what,
            digest: d.to_string(),
            reason: e.to_string(),
        };
        let manifest = match oci::parse_document(&bytes)
            .map_err(|e| bad("manifest", &current, e))?
        {
            Document::Index(index) => {
                current = oci::select_manifest_digest(&index, platform).map_err(|e| match e {
                    OciError::NoPlatform { .. } => ScanError::NoPlatform {
                        digest: current.to_string(),
                        platform: platform.to_string(),
                    },
                    e => bad("index", &current, e),
                })?;
                continue;
            }
            Document::Manifest(m) => m,
        };
        let config_digest = oci::descriptor_digest("config descriptor", manifest.config())
            .map_err(|e| bad("manifest", &current, e))?;
        let config_bytes = read_document(src, "config", &config_digest, MAX_CONFIG)?;
        let cfg =
            oci::parse_image_config(&config_bytes).map_err(|e| bad("config", &config_digest, e))?;
        let layers = manifest.layers();
        let diff_ids = cfg.rootfs().diff_ids();
        if diff_ids.len() != layers.len() {
            return Err(ScanError::BadDocument {
                what: "config",
                digest: config_digest.to_string(),
                reason: format!("{} diff_ids for {} layers", diff_ids.len(), layers.len()),
            });
        }
        let mut refs = Vec::with_capacity(layers.len());
        for (l, diff) in layers.iter().zip(diff_ids) {
            refs.push(LayerRef {
                digest: oci::descriptor_digest("layer descriptor", l)
                    .map_err(|e| bad("manifest", &current, e))?,
                diff_id: Some(parse_digest("config", &config_digest, diff)?),
                media_type: l.media_type().to_string(),
                size: l.size(),
            });
        }
        return Ok(ResolvedImage {
            digest: digest.clone(),
            manifest_digest: current,
            config_digest,
            os: cfg.os().to_string(),
            architecture: cfg.architecture().to_string(),
            layers: refs,
        });
    }
    Err(ScanError::IndexTooDeep(MAX_INDEX_DEPTH))
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct OciLayout {
    pub blobs: OciLayoutBlobs,
}

impl OciLayout {
    pub fn open(dir: &Path) -> Result<OciLayout, ScanError> {
        let marker = dir.join("oci-layout");
        if !marker.is_file() {
            return Err(ScanError::BadLayout {
                path: dir.display().to_string(),
                reason: "not an OCI image layout (no oci-layout file)".into(),
            });
        }
        Ok(OciLayout {
            blobs: OciLayoutBlobs {
                dir: dir.to_path_buf(),
            },
        })
    }

    /// The image tagged `tag` (`org.opencontainers.image.ref.name`), or the only one.
    pub fn resolve(
        &self,
        tag: Option<&str>,
        platform: &Platform,
    ) -> Result<ResolvedImage, ScanError> {
        let dir = &self.blobs.dir;
        let index_path = dir.join("index.json");
        let io = |source| ScanError::Io {
            path: index_path.display().to_string(),
            source,
        };
        let f = std::fs::File::open(&index_path).map_err(io)?;
        let mut bytes = Vec::new();
        f.take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let index = oci::parse_index(&bytes).map_err(|e| ScanError::BadLayout {
            path: index_path.display().to_string(),
            reason: e.to_string(),
        })?;
        let name = |e: &oci::Descriptor| {
            e.annotations()
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                .cloned()
        };
        let entry = match tag {
            Some(t) => index
                .manifests()
                .iter()
                .find(|e| name(e).as_deref() == Some(t)),
            None if index.manifests().len() == 1 => index.manifests().first(),
            None => None,
        };
        let Some(entry) = entry else {
            let available: Vec<String> = index.manifests().iter().filter_map(name).collect();
            return Err(ScanError::TagNotFound {
                path: dir.display().to_string(),
                tag: tag.unwrap_or("").to_string(),
                available: if available.is_empty() {
                    "none".into()
                } else {
                    available.join(", ")
                },
            });
        };
        let digest =
            oci::descriptor_digest("index entry", entry).map_err(|e| ScanError::BadLayout {
                path: index_path.display().to_string(),
                reason: e.to_string(),
            })?;
        resolve_image(&self.blobs, &digest, platform)
    }
}

/// A `docker save` archive: `manifest.json`, the config, and layer tars, found by
/// one pass over the outer tar; layers are then read as byte ranges of the file.
#[derive(Debug, Clone)]
pub struct DockerArchive {
    path: PathBuf,
    by_digest: HashMap<Digest, (u64, u64)>,
}

impl DockerArchive {
    pub fn open(path: &Path) -> Result<(DockerArchive, ResolvedImage), ScanError> {
        let io = |source| ScanError::Io {
            path: path.display().to_string(),
            source,
        };
        let bad = |reason: String| ScanError::BadLayout {
            path: path.display().to_string(),
            reason,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        let mut w = TarWalker::new(BufReader::with_capacity(1 << 20, f), u64::MAX >> 1, 1 << 20);
        let mut members: HashMap<String, (u64, u64)> = HashMap::new();
        let mut small: HashMap<String, Vec<u8>> = HashMap::new();
        while let Some(e) = w.next_entry().map_err(|e| bad(format!("outer tar: {e}")))? {
            if e.kind != EntryKind::Regular {
                continue;
            }
            let name = e.path.trim_start_matches("./").to_string();
            members.insert(name.clone(), (w.position(), e.size));
            if name.ends_with(".json") && e.size <= MAX_CONFIG {
                let mut b = Vec::with_capacity(usize::try_from(e.size).unwrap_or(0));
                w.read_content(|s| b.extend_from_slice(s))
                    .map_err(|e| bad(format!("outer tar: {e}")))?;
                small.insert(name, b);
            }
        }
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "Layers")]
            layers: Vec<String>,
        }
        let manifest = small
            .get("manifest.json")
            .ok_or_else(|| bad("no manifest.json".into()))?;
        let entries: Vec<Entry> =
            serde_json::from_slice(manifest).map_err(|e| bad(format!("manifest.json: {e}")))?;
        let entry = entries
            .first()
            .ok_or_else(|| bad("manifest.json lists no image".into()))?;
        let config_bytes = small
            .get(&entry.config)
            .ok_or_else(|| bad(format!("config {} is not in the archive", entry.config)))?;
        let config_digest = Digest::sha256_of(config_bytes);
        let cfg = oci::parse_image_config(config_bytes).map_err(|e| bad(format!("config: {e}")))?;
        let diff_ids = cfg.rootfs().diff_ids();
        if diff_ids.len() != entry.layers.len() {
            return Err(bad(format!(
                "config has {} diff_ids for {} layers",
                diff_ids.len(),
                entry.layers.len()
            )));
        }
        let mut by_digest = HashMap::new();
        let mut layers = Vec::new();
        for (member, diff) in entry.layers.iter().zip(diff_ids) {
            let diff_id: Digest = diff
                .parse()
                .map_err(|e| bad(format!("config diff_id: {e}")))?;
            let range = *members
                .get(member)
                .ok_or_else(|| bad(format!("layer {member} is not in the archive")))?;
            // Newer docker names layers by blob digest; older ones store the
            // uncompressed tar, whose digest is the diffID (checked while scanning).
            let digest = member
                .strip_prefix("blobs/sha256/")
                .and_then(|h| format!("sha256:{h}").parse().ok())
                .unwrap_or_else(|| diff_id.clone());
            by_digest.insert(digest.clone(), range);
            layers.push(LayerRef {
                digest,
                diff_id: Some(diff_id),
                media_type: String::new(),
                size: range.1,
            });
        }
        let image = ResolvedImage {
            digest: config_digest.clone(),
            manifest_digest: config_digest.clone(),
            config_digest,
            os: cfg.os().to_string(),
            architecture: cfg.architecture().to_string(),
            layers,
        };
        Ok((
            DockerArchive {
                path: path.to_path_buf(),
                by_digest,
            },
            image,
        ))
    }
}

impl BlobSource for DockerArchive {
    fn open(&self, digest: &Digest) -> Result<Blob, ScanError> {
        let (offset, len) = *self
            .by_digest
            .get(digest)
            .ok_or_else(|| ScanError::BlobNotFound {
                digest: digest.to_string(),
            })?;
        Ok(Blob::File {
            path: self.path.clone(),
            offset,
            len,
        })
    }
}
