//! The gate's seams implemented with the real parts: the verdict store (redb), and
//! (below) the registry verifier and the layer scanner.

use crate::gate::{DecisionEvent, GateError, VerdictCache, VerdictKey};
use crate::policy::{Decision, Verdict};
use crate::store::HistoryEvent;
use crate::store::VerdictStore;

impl VerdictCache for VerdictStore {
    fn get(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError> {
        VerdictStore::get(self, key).map_err(|e| GateError::Store(e.to_string()))
    }

    fn put(&self, key: &VerdictKey, v: &Verdict) -> Result<(), GateError> {
        VerdictStore::put(self, key, v).map_err(|e| GateError::Store(e.to_string()))
    }

    fn record(&self, e: &DecisionEvent) {
        let decision = match e.decision.as_str() {
            "allow" => Decision::Allow,
            "deny" => Decision::Deny,
            // Failed evaluations are logged and counted, not kept as decisions.
            _ => return,
        };
        let event = HistoryEvent {
            at: e.at.clone(),
            digest: e.digest.clone(),
            reference: e.reference.clone(),
            policy: e.policy.clone(),
            mode: e.mode.clone(),
            decision,
            deny_kind: None,
            cached: e.how != "evaluated",
        };
        if let Err(err) = VerdictStore::record(self, &event) {
            tracing::warn!(error = %err, "could not append to the decision history");
        }
    }
}

// ------------------------------------------------------------------ signatures

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::config::{Policy, PolicyFiles};
use crate::gate::{ResolvedImage, SignatureSource};
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::SignatureReport;
use crate::verify::{ImageDigests, Verifier, VerifyError};

/// Signatures from the registry, verified with the policy's keys and trust root.
/// Verifiers (parsed keys, trust roots) are built once per policy and dropped on
/// reload, so key rotation takes effect with `pullwarden reload`.
pub struct RegistrySignatures {
    client: RegistryClient,
    /// By policy name, with the file snapshot each was built from: a policy of another
    /// load (a pull that began before a reload) never gets or leaves a verifier of the
    /// wrong keys.
    verifiers: Mutex<HashMap<String, BuiltFrom<Verifier>>>,
}

/// A part built from a policy, with the file snapshot it was built from.
type BuiltFrom<T> = (Arc<PolicyFiles>, Arc<T>);

impl RegistrySignatures {
    pub fn new(client: RegistryClient) -> RegistrySignatures {
        RegistrySignatures {
            client,
            verifiers: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// Forgets loaded keys and trust roots (config reload).
    pub fn reset(&self) {
        self.verifiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn verifier(&self, policy: &Policy) -> Result<Arc<Verifier>, GateError> {
        let Some(sig) = &policy.signatures else {
            return Err(GateError::Policy(format!(
                "policy {} has no signatures section",
                policy.name
            )));
        };
        let mut map = self.verifiers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((files, v)) = map.get(&policy.name)
            && Arc::ptr_eq(files, &policy.files)
        {
            return Ok(v.clone());
        }
        let v = Arc::new(
            Verifier::load_with(sig, &policy.files)
                .map_err(|e| GateError::Policy(e.to_string()))?,
        );
        map.insert(policy.name.clone(), (policy.files.clone(), v.clone()));
        Ok(v)
    }
}

fn creds(auth: Option<&k8s_cri::v1::AuthConfig>) -> Credentials {
    auth.map(Credentials::from).unwrap_or_default()
}

/// The one mapping from verification failures that are not verdicts to gate errors.
fn verify_error(e: VerifyError) -> GateError {
    match e {
        VerifyError::Registry(r) if r.is_outage() => GateError::Registry(r.to_string()),
        VerifyError::Registry(r) => GateError::RegistryContent(r.to_string()),
        VerifyError::NoPlatform { .. } | VerifyError::BadIndex { .. } => {
            GateError::RegistryContent(e.to_string())
        }
        VerifyError::Key { .. } | VerifyError::TrustRoot { .. } => GateError::Policy(e.to_string()),
    }
}

#[async_trait]
impl SignatureSource for RegistrySignatures {
    async fn resolve(
        &self,
        reference: &Reference,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<ResolvedImage, GateError> {
        let digests = crate::verify::resolve_image(&self.client, reference, &creds(auth))
            .await
            .map_err(verify_error)?;
        Ok(match digests.index {
            Some(index) => ResolvedImage {
                digest: index,
                platform_digest: Some(digests.manifest),
            },
            None => ResolvedImage {
                digest: digests.manifest,
                platform_digest: None,
            },
        })
    }

    async fn verify(
        &self,
        policy: &Policy,
        reference: &Reference,
        image: &ResolvedImage,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<SignatureReport, GateError> {
        let verifier = self.verifier(policy)?;
        let subject = match &image.platform_digest {
            Some(platform) => ImageDigests {
                index: Some(image.digest.clone()),
                manifest: platform.clone(),
            },
            None => ImageDigests {
                index: None,
                manifest: image.digest.clone(),
            },
        };
        verifier
            .verify(&self.client, reference, &subject, &creds(auth))
            .await
            .map_err(verify_error)
    }
}

// ------------------------------------------------------------------ layers

use std::path::PathBuf;
use std::time::Duration;

use crate::config::ScanLimits;
use crate::containerd::{Containerd, Target};
use crate::gate::ImageScanner;
use crate::policy::evaluate::JudgedScan;
use crate::report::ScanReport;
use crate::scan::image::{Platform, resolve_image};
use crate::scan::{BlobSource, ContainerdContent, LayerCache, LayerResult, ScanError, Scanner};
use crate::store::LayerStore;
use crate::vulndb::VulnDb;

/// Blobs from containerd's content directory by memory map, and through containerd's
/// content API when the directory cannot be read (another mount namespace, a
/// permission change): slower, never wrong.
struct ContentWithFallback {
    dir: ContainerdContent,
    containerd: Containerd,
    runtime: tokio::runtime::Handle,
    max_blob: u64,
}

impl BlobSource for ContentWithFallback {
    fn open(&self, digest: &crate::digest::Digest) -> Result<crate::scan::mmap::Blob, ScanError> {
        match self.dir.open(digest) {
            Ok(b) => Ok(b),
            Err(dir_err) => {
                tracing::debug!(%digest, error = %dir_err, "content dir unreadable; reading through containerd");
                let bytes = self
                    .runtime
                    .block_on(self.containerd.read_blob(digest, self.max_blob))
                    .map_err(|_| dir_err)?;
                Ok(crate::scan::mmap::Blob::from_bytes(bytes))
            }
        }
    }
}

/// The layer cache kept in the verdict store, JSON per layer result.
struct StoredLayers(LayerStore);

impl LayerCache for StoredLayers {
    fn get(&self, key: &str) -> Option<LayerResult> {
        let raw = self.0.get_raw(key)?;
        serde_json::from_slice(&raw).ok()
    }

    fn put(&self, key: &str, r: &LayerResult) {
        if let Ok(raw) = serde_json::to_vec(r) {
            self.0.put_raw(key, &raw);
        }
    }
}

/// Scans images containerd has stored: layers from its content store under a lease,
/// vulnerabilities from the offline database, judged by the policy.
pub struct LayerScanner {
    containerd: Containerd,
    /// containerd's root; configured, or asked from containerd on first use.
    root: Mutex<Option<PathBuf>>,
    limits: Mutex<ScanLimits>,
    /// By policy name, with the file snapshot its denylist came from (see
    /// `RegistrySignatures::verifiers`).
    scanners: Mutex<HashMap<String, ScannerFor>>,
    layers: LayerStore,
    vulndb: std::sync::RwLock<(Arc<VulnDb>, Option<FileStamp>)>,
    vulndb_path: PathBuf,
}

/// A policy's scanner (`None`: a scan outside any policy) and the snapshot its denylist
/// came from.
type ScannerFor = (Option<Arc<PolicyFiles>>, Arc<Scanner>);

/// What identifies one state of the database file: a `db import` changes it.
type FileStamp = (std::time::SystemTime, u64);

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Leases expire by themselves after this, should we crash mid-scan.
const LEASE_TTL: Duration = Duration::from_secs(15 * 60);

impl LayerScanner {
    pub fn new(
        containerd: Containerd,
        root: Option<PathBuf>,
        limits: ScanLimits,
        layers: LayerStore,
        vulndb_path: PathBuf,
    ) -> Result<LayerScanner, GateError> {
        let stamped = stamp(&vulndb_path);
        let db = VulnDb::open(&vulndb_path).map_err(|e| GateError::Scan(e.to_string()))?;
        Ok(LayerScanner {
            containerd,
            root: Mutex::new(root),
            limits: Mutex::new(limits),
            scanners: Mutex::new(HashMap::new()),
            layers,
            vulndb: std::sync::RwLock::new((Arc::new(db), stamped)),
            vulndb_path,
        })
    }

    /// New limits and denylists (config reload), and the vulnerability database as
    /// it is on disk now (a `db import` since start takes effect).
    /// New limits and a freshly opened database; on an error nothing has changed.
    pub fn reset(&self, limits: ScanLimits) -> Result<(), GateError> {
        let stamped = stamp(&self.vulndb_path);
        let db = VulnDb::open(&self.vulndb_path).map_err(|e| GateError::Scan(e.to_string()))?;
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = limits;
        self.scanners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self.vulndb.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(db), stamped);
        Ok(())
    }

    /// The database, reopened when the file changed since it was opened (a `db import`
    /// beside the running daemon takes effect on the next pull, and its new version
    /// invalidates every cached verdict). A reopen that fails keeps the open one.
    pub fn vulndb(&self) -> Arc<VulnDb> {
        let now = stamp(&self.vulndb_path);
        {
            let cur = self.vulndb.read().unwrap_or_else(|p| p.into_inner());
            if cur.1 == now {
                return cur.0.clone();
            }
        }
        let mut cur = self.vulndb.write().unwrap_or_else(|p| p.into_inner());
        if cur.1 != now {
            match VulnDb::open(&self.vulndb_path) {
                Ok(db) => {
                    tracing::info!(version = %db.version(), "vulnerability database changed on disk; reopened");
                    *cur = (Arc::new(db), now);
                }
                Err(e) => {
                    tracing::error!(error = %e, "vulnerability database changed but cannot be opened; keeping the open one");
                    cur.1 = now;
                }
            }
        }
        cur.0.clone()
    }

    /// One scanner per policy (its denylist); `None` for a scan outside any policy.
    fn scanner_for(&self, policy: Option<&Policy>) -> Result<Arc<Scanner>, GateError> {
        let name = policy.map(|p| p.name.as_str()).unwrap_or("");
        let files = policy.map(|p| p.files.clone());
        let mut map = self.scanners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built_from, s)) = map.get(name) {
            let same = match (built_from, &files) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same {
                return Ok(s.clone());
            }
        }
        // The denylist as read at load (the bytes the policy fingerprint covers).
        let denylist = match policy.and_then(|p| p.scan.denylist.as_deref().map(|d| (p, d))) {
            None => None,
            Some((p, path)) => {
                let bytes = p
                    .files
                    .read(path, crate::config::MAX_DENYLIST_BYTES)
                    .map_err(|r| GateError::Policy(format!("denylist {}: {r}", path.display())))?;
                let text = std::str::from_utf8(&bytes).map_err(|_| {
                    GateError::Policy(format!("denylist {}: is not UTF-8 text", path.display()))
                })?;
                Some(
                    crate::scan::Denylist::parse(text)
                        .map_err(|e| GateError::Policy(format!("{}: {e}", path.display())))?,
                )
            }
        };
        let limits = self
            .limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let s = Arc::new(Scanner::new(&limits, denylist));
        map.insert(name.to_string(), (files, s.clone()));
        Ok(s)
    }

    async fn root(&self) -> Result<PathBuf, GateError> {
        if let Some(r) = self.root.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(r);
        }
        let content = self
            .containerd
            .content_root()
            .await
            .map_err(|e| GateError::Containerd(e.to_string()))?;
        // The content plugin's root is `<root>/io.containerd.content.v1.content`.
        let root = content.parent().map(PathBuf::from).ok_or_else(|| {
            GateError::Containerd(format!("odd content root {}", content.display()))
        })?;
        *self.root.lock().unwrap_or_else(|p| p.into_inner()) = Some(root.clone());
        Ok(root)
    }

    /// The image's report (no judgement): for scans and SBOMs.
    pub async fn report(
        &self,
        policy: Option<&Policy>,
        digest: &crate::digest::Digest,
    ) -> Result<ScanReport, GateError> {
        let scanner = self.scanner_for(policy)?;
        let root = self.root().await?;
        let lease = self
            .containerd
            .lease(std::slice::from_ref(digest), LEASE_TTL)
            .await
            .map_err(|e| GateError::Containerd(e.to_string()))?;
        let src = ContentWithFallback {
            dir: ContainerdContent::new(&root),
            containerd: self.containerd.clone(),
            runtime: tokio::runtime::Handle::current(),
            max_blob: self
                .limits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .max_layer_bytes,
        };
        let cache = StoredLayers(self.layers.clone());
        let digest = digest.clone();
        let db = self.vulndb();
        let scanned = tokio::task::spawn_blocking(move || {
            let image = resolve_image(&src, &digest, &Platform::host())
                .map_err(crate::engine::EngineError::Scan)?;
            crate::engine::report(&scanner, &src, &image.layers, Some(&cache), &db)
        })
        .await;
        lease.release().await;
        scanned
            .map_err(|e| GateError::Internal(e.to_string()))?
            .map_err(|e| GateError::Scan(e.to_string()))
    }
}

#[async_trait]
impl ImageScanner for LayerScanner {
    async fn scan(&self, policy: &Policy, target: &Target) -> Result<JudgedScan, GateError> {
        let report = self.report(Some(policy), &target.digest).await?;
        let today = time::OffsetDateTime::now_utc().date();
        Ok(crate::engine::judge(report, &policy.scan, today))
    }

    fn db_version(&self) -> String {
        self.vulndb().version()
    }
}
