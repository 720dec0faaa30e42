//! The gate's one seam into the fleet: [`Fleet::lookup`] before a scan (an accepted
//! attestation's layer results, or `None`: scan locally) and [`Fleet::publish_after_scan`]
//! after one (in the background; a failure is logged and counted, never returned).
//! Neither can change a verdict by failing: the worst case is a local scan.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::attestation::ImageBinding;
use super::config::FleetKeys;
use super::consume::{Attested, Prefetched, consume, finish, prefetch};
use super::publish::publish;
use crate::digest::Digest;
use crate::metrics::Metrics;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient, RegistryError};
use crate::scan::{LayerResult, ResolvedImage, Scanner};

/// In-process counters (tests and status read them; the metrics endpoint gets the same
/// events through [`Fleet::with_metrics`]).
#[derive(Debug, Default)]
pub struct FleetCounters {
    /// Scans replaced by an attestation.
    pub attested: AtomicU64,
    /// Attestations passed over (each with a logged reason).
    pub ignored: AtomicU64,
    /// Lookups the registry could not answer (then scanned locally).
    pub lookup_failed: AtomicU64,
    pub published: AtomicU64,
    /// Failed publishes by [`super::PublishError::kind`].
    pub publish_failed: Mutex<BTreeMap<&'static str, u64>>,
}

/// `[fleet]` as the daemon runs it.
#[derive(Debug)]
pub struct Fleet {
    keys: FleetKeys,
    pub counters: FleetCounters,
    /// `pullwarden_fleet_publish_total` and `pullwarden_fleet_attestations_ignored_total`.
    metrics: Option<Arc<Metrics>>,
}

/// A lookup's registry half running ahead of the pull ([`Fleet::prefetch`]).
#[derive(Debug)]
pub struct Prefetch(tokio::task::JoinHandle<Result<Prefetched, RegistryError>>);

impl Prefetch {
    /// Its outcome; `None` when the task did not finish (cancelled, panicked): then
    /// the lookup is made afresh.
    async fn take(mut self) -> Option<Result<Prefetched, RegistryError>> {
        (&mut self.0).await.ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ImageBinding {
    /// The binding of an image containerd stored (`resolved`: from its content store,
    /// manifests and config only), pulled as `reference`, scanned by `scanner`.
    pub fn of(resolved: &ResolvedImage, reference: &Reference, scanner: &Scanner) -> ImageBinding {
        let index = (resolved.digest != resolved.manifest_digest).then(|| resolved.digest.clone());
        ImageBinding {
            manifest: resolved.manifest_digest.clone(),
            index,
            name: reference.name(),
            layers: resolved.layers.clone(),
            analyzer_set: crate::scan::analyzers::ANALYZER_SET_VERSION,
            scan_config: scanner.config_hash().to_string(),
        }
    }
}

impl Fleet {
    pub fn new(keys: FleetKeys) -> Fleet {
        Fleet {
            keys,
            counters: FleetCounters::default(),
            metrics: None,
        }
    }

    /// Also counts publishes and ignored attestations in `metrics` (they outlive a
    /// config reload, which builds a new `Fleet`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Fleet {
        self.metrics = Some(metrics);
        self
    }

    /// Whether lookups are made at all (some key is trusted).
    pub fn consumes(&self) -> bool {
        self.keys.consumes()
    }

    /// Whether scans are published (`publish = true` and a key).
    pub fn publishes(&self) -> bool {
        self.keys.signer.is_some()
    }

    /// Starts the registry half of a lookup for `subject` (the platform manifest the
    /// registry resolved) on a background task, for [`Fleet::lookup`] to finish once
    /// containerd has pulled: its round trips overlap the pull. `None` when nothing is
    /// looked up. Dropping the handle cancels the task.
    pub fn prefetch(
        &self,
        client: RegistryClient,
        reference: Reference,
        creds: Credentials,
        subject: Digest,
    ) -> Option<Prefetch> {
        if !self.consumes() {
            return None;
        }
        let limits = self.keys.limits;
        let task =
            tokio::spawn(
                async move { prefetch(&client, &reference, &creds, &subject, limits).await },
            );
        Some(Prefetch(task))
    }

    /// An accepted attestation for `image`, or `None` (no trusted key, none found, every
    /// one ignored — each reason logged — or the registry unavailable): scan locally.
    /// `prefetched`: what [`Fleet::prefetch`] started for this pull, if anything; the
    /// time waited for it is `pullwarden_fleet_lookup_wait_seconds`.
    pub async fn lookup(
        &self,
        client: &RegistryClient,
        reference: &Reference,
        creds: &Credentials,
        image: &ImageBinding,
        prefetched: Option<Prefetch>,
    ) -> Option<Attested> {
        if !self.consumes() {
            return None;
        }
        let started = std::time::Instant::now();
        let fetched: Option<Result<Prefetched, RegistryError>> = match prefetched {
            Some(p) => p.take().await,
            None => None,
        };
        let now = OffsetDateTime::now_utc();
        let (trust, limits) = (&self.keys.trust, self.keys.limits);
        let found = match fetched {
            Some(Ok(f)) => finish(f, client, reference, creds, image, trust, limits, now).await,
            Some(Err(e)) => Err(e),
            None => consume(client, reference, creds, image, trust, limits, now).await,
        };
        if let Some(m) = &self.metrics {
            m.observe_fleet_lookup_wait(started.elapsed().as_secs_f64());
        }
        let lookup = match found {
            Ok(l) => l,
            Err(e) => {
                self.counters.lookup_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(digest = %image.manifest, error = %e, "scan attestations could not be looked up; scanning locally");
                return None;
            }
        };
        for i in &lookup.ignored {
            self.counters
                .ignored
                .fetch_add(i.reason.count(), Ordering::Relaxed);
            if let Some(m) = &self.metrics {
                m.record_attestations_ignored(i.reason.label(), i.reason.count());
            }
            tracing::info!(
                digest = %image.manifest,
                artifact = i.artifact.as_ref().map(Digest::to_string).unwrap_or_default(),
                reason = %i.reason,
                "scan attestation ignored"
            );
        }
        if let Some(a) = &lookup.attested {
            self.counters.attested.fetch_add(1, Ordering::Relaxed);
            tracing::info!(digest = %image.manifest, artifact = %a.artifact, signer = %a.verified.signer, "layer scan replaced by a scan attestation");
        }
        lookup.attested
    }

    /// Publishes the local scan of `image` on a background task, when publishing is
    /// configured. The outcome is logged and counted; the caller never waits for it.
    pub fn publish_after_scan(
        self: &Arc<Self>,
        client: RegistryClient,
        reference: Reference,
        creds: Credentials,
        image: ImageBinding,
        results: Vec<LayerResult>,
    ) {
        let Some(signer) = self.keys.signer.clone() else {
            return;
        };
        let fleet = self.clone();
        tokio::spawn(async move {
            let r = publish(
                &client,
                &reference,
                &creds,
                &image,
                &results,
                &signer,
                OffsetDateTime::now_utc(),
            )
            .await;
            fleet.record_publish(&image.manifest, r);
        });
    }

    /// Counts and logs one publish outcome (also for callers that await `publish`).
    pub fn record_publish(
        &self,
        digest: &Digest,
        r: Result<super::Published, super::PublishError>,
    ) {
        match r {
            Ok(p) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &self.metrics {
                    m.record_fleet_publish("ok");
                }
                tracing::info!(%digest, artifact = %p.manifest, via = p.via, "scan attestation published");
            }
            Err(e) => {
                if let Ok(mut m) = self.counters.publish_failed.lock() {
                    *m.entry(e.kind()).or_default() += 1;
                }
                if let Some(m) = &self.metrics {
                    m.record_fleet_publish(e.kind());
                }
                tracing::warn!(%digest, kind = e.kind(), error = %e, "scan attestation not published (the verdict is unaffected)");
            }
        }
    }
}
