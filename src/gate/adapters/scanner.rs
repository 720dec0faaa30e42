//! containerd's stored images scanned as the gate's [`ImageScanner`]: layers from its
//! content store under a lease, vulnerabilities from the offline database, judged by
//! the policy.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::containerd::{Containerd, Target};
use crate::digest::Digest;
use crate::fleet::{Fleet, ImageBinding, Prefetch, ScanSource};
use crate::gate::{GateError, ImageScanner};
use crate::policy::evaluate::JudgedScan;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::ScanReport;
use crate::scan::image::{Platform, resolve_image};
use crate::scan::{BlobSource, ContainerdContent, LayerCache, LayerResult, ScanError, Scanner};
use crate::snapshot::LoadedPolicy;
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
    layers: LayerStore,
    vulndb: std::sync::RwLock<(Arc<VulnDb>, Option<FileStamp>)>,
    vulndb_path: PathBuf,
    /// `[fleet]`: scan attestations looked up before a scan and published after one,
    /// through this registry client.
    fleet: std::sync::RwLock<Option<(Arc<Fleet>, RegistryClient)>>,
    /// The registry client pulls are verified with: VEX attached to a pulled image is
    /// fetched through it (`None`: no VEX is looked up).
    vex_registry: std::sync::RwLock<Option<RegistryClient>>,
    /// Scan attestation lookups started while containerd pulls, by platform manifest.
    prefetched: Mutex<Vec<(Digest, std::time::Instant, Prefetch)>>,
}

/// A prefetched lookup no pull collected within this long (the pull failed) is dropped.
const PREFETCH_TTL: Duration = Duration::from_secs(120);

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
        layers: LayerStore,
        vulndb_path: PathBuf,
    ) -> Result<LayerScanner, GateError> {
        let stamped = stamp(&vulndb_path);
        let db = VulnDb::open(&vulndb_path).map_err(GateError::VulnDb)?;
        Ok(LayerScanner {
            containerd,
            root: Mutex::new(root),
            layers,
            vulndb: std::sync::RwLock::new((Arc::new(db), stamped)),
            vulndb_path,
            fleet: std::sync::RwLock::new(None),
            vex_registry: std::sync::RwLock::new(None),
            prefetched: Mutex::new(Vec::new()),
        })
    }

    /// The registry client through which VEX attached to pulled images is fetched
    /// (the one signatures are verified with); `None` turns VEX on the node off.
    pub fn set_vex_registry(&self, client: Option<RegistryClient>) {
        *self.vex_registry.write().unwrap_or_else(|p| p.into_inner()) = client;
    }

    /// Looks up the VEX attached to the pulled image (`digests`: the digest pulled and
    /// the platform manifest's) and applies it to `report` before it is judged. Never
    /// fails (see [`crate::vex::node`]); without a registry client, or with no
    /// vulnerability in `report`, nothing is looked up (`None`).
    pub async fn apply_vex(
        &self,
        policy: &LoadedPolicy,
        reference: &Reference,
        digests: &[Digest],
        creds: &Credentials,
        report: &mut ScanReport,
    ) -> Option<crate::vex::node::Applied> {
        let client = self
            .vex_registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // VEX can only suppress findings: an image with none costs no registry call.
        let client = client.filter(|_| !report.vulnerabilities.is_empty())?;
        let signers = match policy.vex_signers() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(policy = %policy.name, error = %e, "VEX signers unreadable; no VEX applied");
                return Some(crate::vex::node::Applied {
                    outcome: crate::vex::VexOutcome::default(),
                    lookup: crate::vex::node::Lookup::Error,
                    sources: None,
                });
            }
        };
        Some(
            crate::vex::node::apply_attached(&client, &signers, reference, digests, creds, report)
                .await,
        )
    }

    /// Starts looking for scan attestations of `subject` (the platform manifest the
    /// registry resolved), for the scan of the pull that follows to collect.
    fn prefetch_attestations(&self, reference: &Reference, subject: &Digest, creds: &Credentials) {
        let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some((fleet, client)) = fleet else {
            return;
        };
        // `None` when the fleet trusts no key: nothing is looked up.
        let Some(p) = fleet.prefetch(client, reference.clone(), creds.clone(), subject.clone())
        else {
            return;
        };
        let mut pending = self.prefetched.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|(_, at, _)| at.elapsed() < PREFETCH_TTL);
        pending.push((subject.clone(), std::time::Instant::now(), p));
    }

    /// The lookup [`LayerScanner::prefetch_attestations`] started for `subject`, if any.
    fn take_prefetched(&self, subject: &Digest) -> Option<Prefetch> {
        let mut pending = self.prefetched.lock().unwrap_or_else(|p| p.into_inner());
        let i = pending.iter().position(|(d, _, _)| d == subject)?;
        Some(pending.swap_remove(i).2)
    }

    /// Sets (or, with `None`, clears) the fleet: from the next pull on.
    pub fn set_fleet(&self, fleet: Option<(Arc<Fleet>, RegistryClient)>) {
        *self.fleet.write().unwrap_or_else(|p| p.into_inner()) = fleet;
    }

    /// The report of a pulled image, and where its layer results came from: an accepted
    /// scan attestation (no layer byte read), else a local scan — which is then
    /// published in the background when `[fleet] publish` is on. Without a fleet this
    /// is [`LayerScanner::report`].
    pub async fn report_pulled(
        &self,
        scanner: Arc<Scanner>,
        digest: &Digest,
        reference: &Reference,
        creds: &Credentials,
    ) -> Result<(ScanReport, ScanSource), GateError> {
        let (report, source, _) = self
            .report_pulled_resolved(scanner, digest, reference, creds)
            .await?;
        Ok((report, source))
    }

    /// [`LayerScanner::report_pulled`], and the platform manifest digest it resolved.
    async fn report_pulled_resolved(
        &self,
        scanner: Arc<Scanner>,
        digest: &Digest,
        reference: &Reference,
        creds: &Credentials,
    ) -> Result<(ScanReport, ScanSource, Digest), GateError> {
        let fleet = self.fleet.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some((fleet, client)) = fleet.filter(|(f, _)| f.consumes() || f.publishes()) else {
            let (report, platform) = self.report_resolved(scanner, digest).await?;
            return Ok((report, ScanSource::local(), platform));
        };
        let (lease, src) = self
            .leased_content(digest, scanner.limits().max_layer_bytes)
            .await?;
        let src = Arc::new(src);
        let result: Result<(Vec<LayerResult>, ScanSource, Digest), GateError> = async {
            // Manifests and config only: no layer byte is read to bind an attestation.
            let (s, d) = (src.clone(), digest.clone());
            let resolved =
                tokio::task::spawn_blocking(move || resolve_image(&*s, &d, &Platform::host()))
                    .await
                    .map_err(GateError::Task)?
                    .map_err(GateError::Scan)?;
            let binding = ImageBinding::of(&resolved, reference, &scanner);
            let prefetched = self.take_prefetched(&binding.manifest);
            if let Some(a) = fleet
                .lookup(&client, reference, creds, &binding, prefetched)
                .await
            {
                let source = a.scan_source();
                return Ok((a.verified.layers, source, resolved.manifest_digest));
            }
            let cache = StoredLayers(self.layers.clone());
            let (s, layers, sc) = (src.clone(), resolved.layers.clone(), scanner.clone());
            let results =
                tokio::task::spawn_blocking(move || sc.layer_results(&*s, &layers, Some(&cache)))
                    .await
                    .map_err(GateError::Task)?
                    .map_err(GateError::Scan)?;
            fleet.publish_after_scan(
                client.clone(),
                reference.clone(),
                creds.clone(),
                binding,
                results.clone(),
            );
            Ok((results, ScanSource::local(), resolved.manifest_digest))
        }
        .await;
        lease.release().await;
        let (results, source, platform) = result?;
        let report = crate::engine::from_layers(&results, &self.vulndb())?;
        Ok((report, source, platform))
    }

    /// The vulnerability database as it is on disk now (config reload: a `db import`
    /// since start takes effect); on an error nothing has changed. Limits and
    /// denylists come with each pull's policy snapshot.
    pub fn reset(&self) -> Result<(), GateError> {
        let stamped = stamp(&self.vulndb_path);
        let db = VulnDb::open(&self.vulndb_path).map_err(GateError::VulnDb)?;
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

    /// The image's blobs in containerd's content store, under a lease taken on `digest`
    /// so that nothing is garbage-collected while they are read, none read past
    /// `max_blob` bytes. The caller releases the lease.
    async fn leased_content(
        &self,
        digest: &crate::digest::Digest,
        max_blob: u64,
    ) -> Result<(crate::containerd::Lease, ContentWithFallback), GateError> {
        let root = self.root().await?;
        let lease = self
            .containerd
            .lease(std::slice::from_ref(digest), LEASE_TTL)
            .await
            .map_err(GateError::Containerd)?;
        let src = ContentWithFallback {
            dir: ContainerdContent::new(&root),
            containerd: self.containerd.clone(),
            runtime: tokio::runtime::Handle::current(),
            max_blob,
        };
        Ok((lease, src))
    }

    async fn root(&self) -> Result<PathBuf, GateError> {
        if let Some(r) = self.root.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(r);
        }
        let content = self
            .containerd
            .content_root()
            .await
            .map_err(GateError::Containerd)?;
        // The content plugin's root is `<root>/io.containerd.content.v1.content`.
        let root = content.parent().map(PathBuf::from).ok_or_else(|| {
            GateError::Containerd(crate::containerd::ContainerdError::Malformed {
                what: "content store root",
                reason: content.display().to_string(),
            })
        })?;
        *self.root.lock().unwrap_or_else(|p| p.into_inner()) = Some(root.clone());
        Ok(root)
    }

    /// The image's report (no judgement): for scans and SBOMs.
    /// `scanner` is the policy's (its limits and denylist), from the policy snapshot.
    pub async fn report(
        &self,
        scanner: Arc<Scanner>,
        digest: &crate::digest::Digest,
    ) -> Result<ScanReport, GateError> {
        Ok(self.report_resolved(scanner, digest).await?.0)
    }

    /// [`LayerScanner::report`], and the platform manifest digest it resolved.
    async fn report_resolved(
        &self,
        scanner: Arc<Scanner>,
        digest: &crate::digest::Digest,
    ) -> Result<(ScanReport, Digest), GateError> {
        let (lease, src) = self
            .leased_content(digest, scanner.limits().max_layer_bytes)
            .await?;
        let cache = StoredLayers(self.layers.clone());
        let digest = digest.clone();
        let db = self.vulndb();
        let scanned = tokio::task::spawn_blocking(move || {
            let image = resolve_image(&src, &digest, &Platform::host())
                .map_err(crate::engine::EngineError::Scan)?;
            crate::engine::report(&scanner, &src, &image.layers, Some(&cache), &db)
                .map(|r| (r, image.manifest_digest))
        })
        .await;
        lease.release().await;
        Ok(scanned.map_err(GateError::Task)??)
    }
}

#[async_trait]
impl ImageScanner for LayerScanner {
    async fn scan(&self, policy: &LoadedPolicy, target: &Target) -> Result<JudgedScan, GateError> {
        let report = self.report(policy.scanner()?, &target.digest).await?;
        let today = time::OffsetDateTime::now_utc().date();
        Ok(crate::engine::judge(report, &policy.scan, today))
    }

    async fn scan_pulled(
        &self,
        policy: &LoadedPolicy,
        target: &Target,
        reference: &Reference,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<(JudgedScan, ScanSource), GateError> {
        let creds = auth.map(Credentials::from).unwrap_or_default();
        let (mut report, source, platform) = self
            .report_pulled_resolved(policy.scanner()?, &target.digest, reference, &creds)
            .await?;
        // VEX applies between matching and judging, for a local and an attested scan
        // alike: a suppressed finding is not judged.
        let mut digests = vec![target.digest.clone()];
        if platform != target.digest {
            digests.push(platform);
        }
        let applied = self
            .apply_vex(policy, reference, &digests, &creds, &mut report)
            .await;
        let today = time::OffsetDateTime::now_utc().date();
        let mut judged = crate::engine::judge(report, &policy.scan, today);
        if let Some(a) = applied {
            judged.vex = a.outcome;
            judged.vex_lookup = Some(a.lookup.as_str());
            judged.vex_sources = a.sources;
        }
        Ok((judged, source))
    }

    fn prefetch(
        &self,
        // The gate calls this only for a policy that scans.
        _policy: &LoadedPolicy,
        reference: &Reference,
        image: &crate::gate::ResolvedImage,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) {
        let creds = auth.map(Credentials::from).unwrap_or_default();
        let subject = image.platform_digest.as_ref().unwrap_or(&image.digest);
        self.prefetch_attestations(reference, subject, &creds);
    }

    fn db_version(&self) -> String {
        self.vulndb().version()
    }
}
