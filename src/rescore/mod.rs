//! Re-judging what is on the node. When a new vulnerability database is imported or the
//! policy is reloaded, every image present in containerd is judged again from the
//! inventory its pull stored ([`crate::store::ImageInventory`]): no layer is read and no
//! registry is asked. The new verdicts are stored like a pull's, marked
//! `how = "rescored"`, recorded in the history and the audit log, and counted in
//! `pullwarden_rescored_total{decision}`. Under `[server] rescore = "enforce"` the
//! gate's ImageStatus flow then reports a newly denied image absent; under `"report"`
//! (the default) it still admits it (see `gate/status.rs`).
//!
//! [`what_if`] is the same judgement under a candidate configuration, for
//! `pullwarden policy test`.

pub mod judge;
pub mod what_if;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::digest::Digest;
use crate::gate::{DecisionEvent, How, PolicyState, VerdictCache, VerdictKey, verdict_scope};
use crate::metrics::Metrics;
use crate::policy::evaluate::{self, Keys};
use crate::policy::{Decision, Verdict};
use crate::reference::Reference;
use crate::store::{SignatureEvidence, VerdictStore};
use crate::vulndb::VulnDb;

pub use judge::{Skip, StoredSignatures, judge};

/// Verdicts written per store commit.
const BATCH: usize = 256;

/// One image present in containerd: every name it has there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentImage {
    pub digest: Digest,
    /// Parsed names (tags and `repo@digest` names); image-id names are left out.
    pub references: Vec<Reference>,
}

/// The images present on the node (containerd's image list; a fake in tests and benches).
#[async_trait]
pub trait PresentImages: Send + Sync {
    async fn present(&self) -> Result<Vec<PresentImage>, String>;
}

#[async_trait]
impl PresentImages for crate::containerd::Containerd {
    async fn present(&self) -> Result<Vec<PresentImage>, String> {
        let names = self.image_names().await.map_err(|e| e.to_string())?;
        Ok(group(names))
    }
}

/// containerd's `(name, target digest)` list grouped by digest. Names that are image ids
/// (`sha256:…`, the CRI plugin's config-digest names) or do not parse are dropped.
pub fn group(names: Vec<(String, Digest)>) -> Vec<PresentImage> {
    let mut by_digest: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    for (name, digest) in names {
        let refs = by_digest.entry(digest).or_default();
        if name.starts_with("sha256:") {
            continue;
        }
        if let Ok(r) = name.parse::<Reference>()
            && !refs.contains(&r)
        {
            refs.push(r);
        }
    }
    by_digest
        .into_iter()
        .map(|(digest, mut references)| {
            // Tags first: they read better in reports than `repo@sha256:…`.
            references.sort_by_key(|r| (r.digest.is_some(), r.to_string()));
            PresentImage { digest, references }
        })
        .collect()
}

/// What set a re-judging off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The daemon started (a database imported while it was down).
    Start,
    /// `db import` changed the vulnerability database file.
    VulnDb,
    /// SIGHUP or `pullwarden reload`.
    Reload,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::VulnDb => "vulnerability database changed",
            Trigger::Reload => "reload",
        }
    }
}

/// What one re-judging did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Images present in containerd (judged, current, skipped, or judged by no policy).
    pub images: usize,
    /// Verdicts made (an image judged under two policies counts twice).
    pub rescored: usize,
    pub denied: usize,
    /// Verdicts already current (same digest, policy and database): left as they are.
    pub current: usize,
    /// Images whose decision changed from their latest stored verdict.
    pub changed: usize,
    /// `(digest, reason)` of images (or image × policy) not judged.
    pub skipped: Vec<(String, String)>,
}

/// Re-judges the images present in containerd from the store; one run at a time.
pub struct Rescorer {
    store: Arc<VerdictStore>,
    present: Arc<dyn PresentImages>,
    metrics: Arc<Metrics>,
    running: tokio::sync::Mutex<()>,
    /// The database version the last run judged with (the watcher compares).
    last_db: std::sync::Mutex<Option<String>>,
}

impl Rescorer {
    pub fn new(
        store: Arc<VerdictStore>,
        present: Arc<dyn PresentImages>,
        metrics: Arc<Metrics>,
    ) -> Rescorer {
        Rescorer {
            store,
            present,
            metrics,
            running: tokio::sync::Mutex::new(()),
            last_db: std::sync::Mutex::new(None),
        }
    }

    /// The database version the last run used (`None`: no run yet).
    pub fn last_db_version(&self) -> Option<String> {
        self.last_db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Judges every present image under `state` with `db`, for every policy that could
    /// answer its ImageStatus, where no verdict under the current key exists yet. The
    /// listing of containerd is the only call outside the store; an error there ends
    /// the run with nothing changed.
    pub async fn run(
        &self,
        state: Arc<PolicyState>,
        db: Arc<VulnDb>,
        trigger: Trigger,
    ) -> Result<Summary, String> {
        let _one = self.running.lock().await;
        // A config under which no policy judges anything (none, or all `mode = "off"`)
        // has nothing to re-judge: containerd is not asked.
        if state
            .config
            .policies
            .iter()
            .all(|p| p.mode == crate::config::Mode::Off)
        {
            *self.last_db.lock().unwrap_or_else(|p| p.into_inner()) = Some(db.version());
            return Ok(Summary::default());
        }
        let present = self.present.present().await?;
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let db_version = db.version();
        let summary = tokio::task::spawn_blocking(move || {
            rescore_blocking(
                &store,
                &metrics,
                &present,
                &state,
                &db,
                OffsetDateTime::now_utc(),
            )
        })
        .await
        .map_err(|e| format!("re-judging task failed: {e}"))??;
        *self.last_db.lock().unwrap_or_else(|p| p.into_inner()) = Some(db_version.clone());
        for (digest, reason) in &summary.skipped {
            tracing::warn!(%digest, reason = %reason, "not re-judged");
        }
        tracing::info!(
            trigger = trigger.as_str(),
            db_version = %db_version,
            images = summary.images,
            rescored = summary.rescored,
            denied = summary.denied,
            changed = summary.changed,
            current = summary.current,
            skipped = summary.skipped.len(),
            "re-judged the images on the node from their stored inventories"
        );
        Ok(summary)
    }
}

/// The blocking part of [`Rescorer::run`] (store reads, matching, one commit per
/// [`BATCH`] verdicts), apart for benches.
pub fn rescore_blocking(
    store: &VerdictStore,
    metrics: &Metrics,
    present: &[PresentImage],
    state: &PolicyState,
    db: &VulnDb,
    now: OffsetDateTime,
) -> Result<Summary, String> {
    let db_version = db.version();
    let mut summary = Summary {
        images: present.len(),
        ..Default::default()
    };
    let mut made: Vec<(VerdictKey, Verdict)> = Vec::new();
    for image in present {
        let digest = image.digest.to_string();
        let skip = |summary: &mut Summary, s: Skip| {
            metrics.record_rescore_skipped(s.kind());
            summary.skipped.push((digest.clone(), s.to_string()));
        };
        // Images no policy judges (ImageStatus relays them as they are) need no verdict.
        if !image
            .references
            .iter()
            .any(|r| !judge::judging_policies(&state.config, &r.to_string()).is_empty())
        {
            continue;
        }
        let inventory = match store.inventory(&digest) {
            Ok(Some(Ok(inv))) => inv,
            Ok(Some(Err(e))) => {
                skip(&mut summary, Skip::Unreadable(e.to_string()));
                continue;
            }
            Ok(None) => {
                skip(&mut summary, Skip::NoInventory);
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        let was = store.latest(&digest).ok().flatten().map(|v| v.decision);
        let mut keys_done: Vec<VerdictKey> = Vec::new();
        let mut worst: Option<Decision> = None;
        for reference in &image.references {
            for policy in judge::judging_policies(&state.config, &reference.to_string()) {
                let fp = match state.fingerprint(&policy.name) {
                    Ok(fp) => fp,
                    Err(e) => {
                        skip(&mut summary, Skip::Error(e.to_string()));
                        continue;
                    }
                };
                let key = VerdictKey {
                    digest: digest.clone(),
                    policy_fingerprint: verdict_scope(policy, fp, reference),
                    db_version: db_version.clone(),
                };
                if keys_done.contains(&key) {
                    continue;
                }
                keys_done.push(key.clone());
                if matches!(store.get(&key), Ok(Some(_))) {
                    summary.current += 1;
                    continue;
                }
                let signatures = match judge::stored_signatures(&inventory, policy, reference) {
                    Ok(StoredSignatures::NotRequired) => judge::not_required(),
                    Ok(StoredSignatures::Stored(r)) => r,
                    Ok(StoredSignatures::Missing { .. }) => {
                        skip(
                            &mut summary,
                            Skip::NoSignatureEvidence {
                                policy: policy.name.clone(),
                                repository: SignatureEvidence::repository_of(reference),
                            },
                        );
                        continue;
                    }
                    Err(s) => {
                        skip(&mut summary, s);
                        continue;
                    }
                };
                let keys = Keys {
                    policy_fingerprint: &key.policy_fingerprint,
                    db_version: &db_version,
                };
                match judge::judge(&inventory, reference, policy, &keys, signatures, db, now) {
                    Ok(v) => {
                        worst = Some(match (worst, v.decision) {
                            (Some(Decision::Deny), _) | (_, Decision::Deny) => Decision::Deny,
                            _ => Decision::Allow,
                        });
                        made.push((key, v));
                    }
                    Err(s) => skip(&mut summary, s),
                }
            }
        }
        if let (Some(w), Some(was)) = (worst, was)
            && w != was
        {
            summary.changed += 1;
        }
        if made.len() >= BATCH {
            commit(store, metrics, &mut made, &mut summary)?;
        }
    }
    commit(store, metrics, &mut made, &mut summary)?;
    Ok(summary)
}

/// Stores `made` in one commit, then records each (history, audit log, metrics).
fn commit(
    store: &VerdictStore,
    metrics: &Metrics,
    made: &mut Vec<(VerdictKey, Verdict)>,
    summary: &mut Summary,
) -> Result<(), String> {
    if made.is_empty() {
        return Ok(());
    }
    store.put_many(made).map_err(|e| e.to_string())?;
    for (_, v) in made.drain(..) {
        summary.rescored += 1;
        if v.decision == Decision::Deny {
            summary.denied += 1;
        }
        metrics.record_rescored(v.decision.as_str());
        crate::gate::audit_decision(&v.reference, &v, How::Rescored);
        VerdictCache::record(
            store,
            &DecisionEvent {
                at: evaluate::rfc3339(OffsetDateTime::now_utc()),
                reference: v.reference.clone(),
                digest: Some(v.digest.clone()),
                policy: v.policy.clone(),
                mode: v.mode,
                decision: Some(v.decision),
                how: How::Rescored,
                reasons: v.reasons.clone(),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_images_are_grouped_by_digest_without_id_names() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let names = vec![
            (format!("127.0.0.1:5000/app@{a}"), a.clone()),
            ("127.0.0.1:5000/app:v1".to_string(), a.clone()),
            (a.to_string(), a.clone()),
            ("127.0.0.1:5000/other:v2".to_string(), b.clone()),
        ];
        let g = group(names);
        assert_eq!(g.len(), 2);
        let first = g.iter().find(|p| p.digest == a).unwrap();
        assert_eq!(
            first
                .references
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
            vec![
                "127.0.0.1:5000/app:v1".to_string(),
                format!("127.0.0.1:5000/app@{a}")
            ]
        );
    }
}
