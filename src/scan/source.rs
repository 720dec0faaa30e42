//! Where blobs come from: containerd's content store (mapped), an OCI image layout
//! directory, or memory (bytes fed from containerd's content API, tests).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::digest::Digest;

use super::ScanError;
use super::mmap::Blob;

/// A content-addressed blob store.
pub trait BlobSource: Send + Sync {
    fn open(&self, digest: &Digest) -> Result<Blob, ScanError>;
}

/// containerd's content store under its root directory. Only committed blobs
/// (`blobs/<alg>/<hex>`) are ever opened, never `ingest/`.
#[derive(Debug, Clone)]
pub struct ContainerdContent {
    blobs: PathBuf,
}

impl ContainerdContent {
    /// `root`: containerd's root (`--root`, e.g. `/var/lib/containerd`).
    pub fn new(root: impl AsRef<Path>) -> Self {
        ContainerdContent {
            blobs: root.as_ref().join("io.containerd.content.v1.content/blobs"),
        }
    }

    /// The committed blob file of `digest` (the digest's hex is validated, so this
    /// cannot name anything outside `blobs/`).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }
}

impl BlobSource for ContainerdContent {
    #[allow(unsafe_code)]
    fn open(&self, digest: &Digest) -> Result<Blob, ScanError> {
        let path = self.blob_path(digest);
        // SAFETY: `blob_path` names a committed blob under `blobs/` (the digest's hex is
        // validated, never `ingest/`): containerd renamed it there complete and never
        // writes it again, and the caller holds a lease while it reads (see `map_committed`).
        match unsafe { Blob::map_committed(&path) } {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ScanError::BlobNotFound {
                digest: digest.to_string(),
            }),
            // Mapping can fail where reading works (exotic filesystems, address
            // space limits): fall back to buffered reads.
            Err(_) => Blob::file(&path).map_err(|source| ScanError::BlobRead {
                digest: digest.to_string(),
                source,
            }),
        }
    }
}

/// An OCI image layout directory (`blobs/<alg>/<hex>`), read with buffered I/O: the
/// files belong to the user and could change while we read, so they are not mapped.
#[derive(Debug, Clone)]
pub struct OciLayoutBlobs {
    pub dir: PathBuf,
}

impl BlobSource for OciLayoutBlobs {
    fn open(&self, digest: &Digest) -> Result<Blob, ScanError> {
        let path = self
            .dir
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex());
        Blob::file(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ScanError::BlobNotFound {
                    digest: digest.to_string(),
                }
            } else {
                ScanError::BlobRead {
                    digest: digest.to_string(),
                    source,
                }
            }
        })
    }
}

/// Blobs held in memory (fed from containerd's content API when the content
/// directory is unreadable; tests).
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: RwLock<HashMap<Digest, Arc<[u8]>>>,
}

impl MemoryBlobs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `bytes` under `digest` as given (not re-hashed here: the scan verifies).
    pub fn insert(&self, digest: Digest, bytes: impl Into<Arc<[u8]>>) {
        if let Ok(mut m) = self.blobs.write() {
            m.insert(digest, bytes.into());
        }
    }

    /// Stores `bytes` under their own sha256, returning it.
    pub fn add(&self, bytes: &[u8]) -> Digest {
        let d = Digest::sha256_of(bytes);
        self.insert(d.clone(), bytes.to_vec());
        d
    }
}

impl BlobSource for MemoryBlobs {
    fn open(&self, digest: &Digest) -> Result<Blob, ScanError> {
        self.blobs
            .read()
            .ok()
            .and_then(|m| m.get(digest).cloned())
            .map(Blob::Bytes)
            .ok_or_else(|| ScanError::BlobNotFound {
                digest: digest.to_string(),
            })
    }
}
