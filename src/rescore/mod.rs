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
pub(crate) const BATCH: usize = 256;

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
/// [`BATCH`] verdicts), apart for benches. Images are judged on up to [`MAX_WORKERS`]
/// threads sharing one [`crate::vulndb::Matcher`], a batch at a time, while the batch
/// before is committed; verdicts, skips and their order are those of one thread.
pub fn rescore_blocking(
    store: &VerdictStore,
    metrics: &Metrics,
    present: &[PresentImage],
    state: &PolicyState,
    db: &VulnDb,
    now: OffsetDateTime,
) -> Result<Summary, String> {
    let db_version = db.version();
    let matcher = db.matcher().map_err(|e| e.to_string())?;
    let workers = workers();
    let mut summary = Summary {
        images: present.len(),
        ..Default::default()
    };
    let judge_one =
        |image: &PresentImage| judge_image(store, image, state, &matcher, &db_version, now);
    let committed = std::thread::scope(|s| -> Result<Committed, String> {
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<(VerdictKey, Verdict)>>(1);
        let committer = s.spawn(move || -> Result<Committed, String> {
            let mut done = Committed::default();
            for mut made in received {
                commit(store, metrics, &mut made, &mut done)?;
            }
            Ok(done)
        });
        let mut made = Vec::new();
        for chunk in present.chunks(BATCH) {
            for judged in map_on_threads(chunk, workers, &judge_one) {
                let judged = judged?;
                for (digest, skip) in judged.skipped {
                    metrics.record_rescore_skipped(skip.kind());
                    summary.skipped.push((digest, skip.to_string()));
                }
                summary.current += judged.current;
                summary.changed += usize::from(judged.changed);
                made.extend(judged.made);
            }
            if made.len() >= BATCH && batches.send(std::mem::take(&mut made)).is_err() {
                break; // the committer failed: its error is returned below
            }
        }
        if !made.is_empty() {
            let _ = batches.send(made);
        }
        drop(batches);
        committer
            .join()
            .unwrap_or_else(|_| Err("re-judging: the commit thread panicked".into()))
    })?;
    summary.rescored = committed.rescored;
    summary.denied = committed.denied;
    Ok(summary)
}

/// Most threads one re-judging pass judges on (it runs beside the pull path).
pub const MAX_WORKERS: usize = 4;

/// Threads a pass judges on: the CPUs this process may use, at most [`MAX_WORKERS`].
fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WORKERS)
}

/// `f` over `items` on up to `workers` scoped threads, each taking a contiguous share;
/// results in the order of `items`. A worker that panics gives an `Err` for its share.
/// (Handing out items one at a time instead measured 20% slower in `benches/rescore.rs`.)
fn map_on_threads<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: &(impl Fn(&T) -> Result<R, String> + Sync),
) -> Vec<Result<R, String>> {
    if workers <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    std::thread::scope(|s| {
        let shares: Vec<_> = items
            .chunks(items.len().div_ceil(workers))
            .map(|share| {
                (
                    share.len(),
                    s.spawn(move || share.iter().map(f).collect::<Vec<_>>()),
                )
            })
            .collect();
        shares
            .into_iter()
            .flat_map(|(n, h)| {
                h.join().unwrap_or_else(|_| {
                    (0..n)
                        .map(|_| Err("re-judging: a worker thread panicked".to_string()))
                        .collect()
                })
            })
            .collect()
    })
}

/// What re-judging one present image made.
#[derive(Default)]
struct ImageJudged {
    made: Vec<(VerdictKey, Verdict)>,
    /// `(digest, why)` per image, or image × policy, not judged.
    skipped: Vec<(String, Skip)>,
    /// Verdicts already current.
    current: usize,
    /// The image's decision differs from its latest stored verdict.
    changed: bool,
}

/// Judges one image under every policy that answers ImageStatus for one of its names.
/// `Err`: the store could not be read (the pass ends).
fn judge_image(
    store: &VerdictStore,
    image: &PresentImage,
    state: &PolicyState,
    matcher: &crate::vulndb::Matcher<'_>,
    db_version: &str,
    now: OffsetDateTime,
) -> Result<ImageJudged, String> {
    let digest = image.digest.to_string();
    let mut out = ImageJudged::default();
    let skip = |out: &mut ImageJudged, s: Skip| out.skipped.push((digest.clone(), s));
    // Images no policy judges (ImageStatus relays them as they are) need no verdict.
    if !image
        .references
        .iter()
        .any(|r| !judge::judging_policies(&state.config, &r.to_string()).is_empty())
    {
        return Ok(out);
    }
    let inventory = match store.inventory(&digest) {
        Ok(Some(Ok(inv))) => inv,
        Ok(Some(Err(e))) => {
            skip(&mut out, Skip::Unreadable(e.to_string()));
            return Ok(out);
        }
        Ok(None) => {
            skip(&mut out, Skip::NoInventory);
            return Ok(out);
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
                    skip(&mut out, Skip::Error(e.to_string()));
                    continue;
                }
            };
            let key = VerdictKey {
                digest: digest.clone(),
                policy_fingerprint: verdict_scope(policy, fp, reference),
                db_version: db_version.to_string(),
            };
            if keys_done.contains(&key) {
                continue;
            }
            keys_done.push(key.clone());
            if matches!(store.get(&key), Ok(Some(_))) {
                out.current += 1;
                continue;
            }
            let signatures = match judge::stored_signatures(&inventory, policy, reference) {
                Ok(StoredSignatures::NotRequired) => judge::not_required(),
                Ok(StoredSignatures::Stored(r)) => r,
                Ok(StoredSignatures::Missing { .. }) => {
                    skip(
                        &mut out,
                        Skip::NoSignatureEvidence {
                            policy: policy.name.clone(),
                            repository: SignatureEvidence::repository_of(reference),
                        },
                    );
                    continue;
                }
                Err(s) => {
                    skip(&mut out, s);
                    continue;
                }
            };
            let keys = Keys {
                policy_fingerprint: &key.policy_fingerprint,
                db_version,
            };
            match judge::judge(
                &inventory, reference, policy, &keys, signatures, matcher, now,
            ) {
                Ok(v) => {
                    worst = Some(match (worst, v.decision) {
                        (Some(Decision::Deny), _) | (_, Decision::Deny) => Decision::Deny,
                        _ => Decision::Allow,
                    });
                    out.made.push((key, v));
                }
                Err(s) => skip(&mut out, s),
            }
        }
    }
    out.changed = matches!((worst, was), (Some(w), Some(was)) if w != was);
    Ok(out)
}

/// Verdicts committed by a pass.
#[derive(Default)]
struct Committed {
    rescored: usize,
    denied: usize,
}

/// Stores `made` in one commit, then records each (history, audit log, metrics).
fn commit(
    store: &VerdictStore,
    metrics: &Metrics,
    made: &mut Vec<(VerdictKey, Verdict)>,
    done: &mut Committed,
) -> Result<(), String> {
    if made.is_empty() {
        return Ok(());
    }
    store.put_many(made).map_err(|e| e.to_string())?;
    for (_, v) in made.drain(..) {
        done.rescored += 1;
        if v.decision == Decision::Deny {
            done.denied += 1;
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

    /// Shares run on their own threads; results come back in the order of the items,
    /// and a share whose thread panics answers an error for each of its items.
    #[test]
    fn work_on_threads_keeps_order_and_turns_a_panic_into_errors() {
        let items: Vec<u32> = (0..103).collect();
        let out = map_on_threads(&items, 4, &|i: &u32| Ok(i * 2));
        let want: Vec<Result<u32, String>> = items.iter().map(|i| Ok(i * 2)).collect();
        assert_eq!(out, want);
        assert_eq!(map_on_threads(&items, 1, &|i: &u32| Ok(*i)).len(), 103);
        let out = map_on_threads(&items, 4, &|i: &u32| {
            assert!(*i != 30, "worker fault");
            Ok(*i)
        });
        assert_eq!(out.len(), 103);
        // 103 items in shares of 26: the second share (26..52) holds the fault.
        assert!(out[..26].iter().all(Result::is_ok));
        assert!(
            out[26..52]
                .iter()
                .all(|r| r.as_ref().is_err_and(|e| e.contains("panicked")))
        );
        assert!(out[52..].iter().all(Result::is_ok));
    }
}
