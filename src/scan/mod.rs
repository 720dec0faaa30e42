//! Layer scanning: the engine the gate runs on every pull and `pullwarden scan` runs
//! offline. Blobs are mapped from containerd's content store (or read), inflated and
//! hashed in one pass, their tar walked once with entries routed to analyzers, the
//! secret matcher and file checks; layer results are cached and composed per image.

pub mod analyzers;
pub mod cache;
pub mod compose;
pub mod decompress;
pub mod denylist;
pub mod image;
pub mod layer;
pub mod mmap;
pub mod paths;
pub mod purl;
pub mod sbom;
pub mod secrets;
pub mod source;
pub mod tar;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::Digest as _;

use crate::config::ScanLimits;
use crate::digest::Digest;
use crate::report::ScanReport;

pub use cache::{LayerCache, MemoryLayerCache};
pub use compose::compose;
pub use denylist::{Denylist, DenylistError};
pub use image::{DockerArchive, OciLayout, Platform, ResolvedImage, resolve_image};
pub use layer::LayerResult;
pub use mmap::Blob;
pub use source::{BlobSource, ContainerdContent, MemoryBlobs, OciLayoutBlobs};

/// One layer of an image, as the manifest and config describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// Blob digest (compressed bytes, from the manifest).
    pub digest: Digest,
    /// Uncompressed digest from the image config's `rootfs.diff_ids`.
    pub diff_id: Option<Digest>,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("blob {digest} is not in the content store")]
    BlobNotFound { digest: String },
    #[error("cannot read blob {digest}: {source}")]
    BlobRead {
        digest: String,
        source: std::io::Error,
    },
    #[error("{what} {digest} does not hash to its digest")]
    DocumentDigestMismatch { what: &'static str, digest: String },
    #[error("{what} {digest} is not valid: {reason}")]
    BadDocument {
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error("image index {digest} has no manifest for {platform}")]
    NoPlatform { digest: String, platform: String },
    #[error("image index nests deeper than {0} levels")]
    IndexTooDeep(usize),
    #[error("{path}: {reason}")]
    BadLayout { path: String, reason: String },
    #[error("{path}: no image tagged {tag:?} (available: {available})")]
    TagNotFound {
        path: String,
        tag: String,
        available: String,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("layer scan worker failed: {0}")]
    Worker(&'static str),
}

/// Progress of a multi-layer scan (for a terminal progress line).
#[derive(Debug, Clone)]
pub struct Progress {
    pub layer: usize,
    pub layers: usize,
    pub digest: String,
    pub cached: bool,
}

type ProgressHook = Box<dyn Fn(&Progress) + Send + Sync>;

/// The scan engine: limits, the optional denylist and the compiled secret rules.
pub struct Scanner {
    limits: ScanLimits,
    denylist: Option<Denylist>,
    config_hash: String,
    progress: Option<ProgressHook>,
}

impl Scanner {
    /// The limits this scanner enforces.
    pub fn limits(&self) -> &ScanLimits {
        &self.limits
    }

    pub fn new(limits: &ScanLimits, denylist: Option<Denylist>) -> Scanner {
        // The cache key covers everything that changes a layer's result.
        let mut h = sha2::Sha256::new();
        h.update(
            format!(
                "{}|{}|{}|{}",
                limits.max_layer_bytes,
                limits.max_layer_entries,
                limits.max_path_bytes,
                limits.max_secret_file_bytes
            )
            .as_bytes(),
        );
        if let Some(d) = &denylist {
            h.update(d.fingerprint().as_bytes());
        }
        let config_hash = hex::encode(h.finalize()).chars().take(16).collect();
        // Compile the rules now rather than inside the first pull.
        let _ = secrets::SecretMatcher::builtin();
        Scanner {
            limits: limits.clone(),
            denylist,
            config_hash,
            progress: None,
        }
    }

    /// Calls `hook` as each layer finishes.
    pub fn with_progress(mut self, hook: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Box::new(hook));
        self
    }

    /// Hash of everything in the scan config that changes a layer's result (limits,
    /// denylist): 16 hex characters. Fleet attestations carry it; a consumer requires
    /// its own.
    pub fn config_hash(&self) -> &str {
        &self.config_hash
    }

    /// Cache key of a layer: blob digest (verified on every scan, unlike the
    /// config's diffID claim), analyzer-set version, scan config hash.
    pub fn cache_key(&self, layer: &LayerRef) -> String {
        format!(
            "{}|a{}|{}",
            layer.digest,
            analyzers::ANALYZER_SET_VERSION,
            self.config_hash
        )
    }

    /// Scans one layer (no cache).
    pub fn scan_layer(
        &self,
        src: &dyn BlobSource,
        layer: &LayerRef,
    ) -> Result<LayerResult, ScanError> {
        let blob = src.open(&layer.digest)?;
        let ctx = layer::LayerContext {
            limits: &self.limits,
            denylist: self.denylist.as_ref(),
            secrets: secrets::SecretMatcher::builtin(),
        };
        layer::scan_layer(&blob, layer, &ctx)
    }

    /// Scans an image's layers (bottom first), `parallel_layers` at a time, using and
    /// filling `cache`, and composes the image report.
    pub fn scan_layers(
        &self,
        src: &dyn BlobSource,
        layers: &[LayerRef],
        cache: Option<&dyn LayerCache>,
    ) -> Result<ScanReport, ScanError> {
        let results = self.layer_results(src, layers, cache)?;
        Ok(compose(&results))
    }

    /// The per-layer results, in layer order.
    pub fn layer_results(
        &self,
        src: &dyn BlobSource,
        layers: &[LayerRef],
        cache: Option<&dyn LayerCache>,
    ) -> Result<Vec<LayerResult>, ScanError> {
        let slots: Vec<Mutex<Option<Result<LayerResult, ScanError>>>> =
            layers.iter().map(|_| Mutex::new(None)).collect();
        let done = AtomicUsize::new(0);
        let report_progress = |i: usize, cached: bool| {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let (Some(hook), Some(l)) = (&self.progress, layers.get(i)) {
                hook(&Progress {
                    layer: n,
                    layers: layers.len(),
                    digest: l.digest.to_string(),
                    cached,
                });
            }
        };
        let mut todo = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            match cache.and_then(|c| c.get(&self.cache_key(l))) {
                Some(mut r) => {
                    r.summary.cached = true;
                    if let Some(slot) = slots.get(i) {
                        *slot
                            .lock()
                            .map_err(|_| ScanError::Worker("poisoned result slot"))? = Some(Ok(r));
                    }
                    report_progress(i, true);
                }
                None => todo.push(i),
            }
        }
        let next = AtomicUsize::new(0);
        let workers = self.limits.parallel_layers.clamp(1, todo.len().max(1));
        let worker_panicked = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&i) = todo.get(k) else { break };
                            let Some(l) = layers.get(i) else { break };
                            let r = self.scan_layer(src, l);
                            if let (Ok(r), Some(c)) = (&r, cache)
                                && r.cacheable()
                            {
                                c.put(&self.cache_key(l), r);
                            }
                            if let Some(Ok(mut slot)) = slots.get(i).map(|s| s.lock()) {
                                *slot = Some(r);
                            }
                            report_progress(i, false);
                        }
                    })
                })
                .collect();
            // Joined here so a panicking worker becomes an error, not a panic of ours.
            handles
                .into_iter()
                .map(|h| h.join().is_err())
                .fold(false, |a, b| a | b)
        });
        if worker_panicked {
            return Err(ScanError::Worker("a layer scan worker panicked"));
        }
        slots
            .into_iter()
            .map(|s| {
                s.into_inner()
                    .map_err(|_| ScanError::Worker("poisoned result slot"))?
                    .unwrap_or(Err(ScanError::Worker("a layer was not scanned")))
            })
            .collect()
    }
}
