//! `pullwarden policy test`: every image present on the node judged under a candidate
//! configuration, from stored inventories and stored signature outcomes, beside what
//! the running configuration says of it. The registry is asked only for signature
//! outcomes the store does not hold (a new signer set, a repository never verified),
//! and the report says how many such look-ups were made. Nothing is stored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::PresentImage;
use super::judge::{self, Skip, StoredSignatures};
use crate::config::Policy;
use crate::gate::{PolicyState, ResolvedImage, SignatureSource, VerdictKey, verdict_scope};
use crate::policy::Decision;
use crate::policy::evaluate::Keys;
use crate::reference::Reference;
use crate::report::SignatureReport;
use crate::store::{ImageInventory, SignatureEvidence, VerdictStore};
use crate::vulndb::VulnDb;

/// One present image under the candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageOutcome {
    pub digest: String,
    /// The name shown for the image (a tag where it has one).
    pub reference: String,
    /// Under the candidate: `allow`, `deny`, or `null` when it could not be judged
    /// from the store (the reasons say why).
    pub decision: Option<Decision>,
    /// Under the running configuration, from the stored verdicts (`null`: none).
    pub was: Option<Decision>,
    /// The candidate's deny reasons (prefixed with the policy), or why the image was
    /// not judged.
    pub reasons: Vec<String>,
    /// `decision` differs from `was`.
    pub changed: bool,
}

/// `policy test --json`: `{"images": [...]}` and a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub images: Vec<ImageOutcome>,
    /// Images whose decision would change.
    pub changed: usize,
    /// Images that could not be judged from the store.
    pub skipped: usize,
    /// Signature look-ups sent to the registry (one per image, policy and repository
    /// whose outcome the store did not hold; each is a few HTTP requests).
    pub registry_calls: usize,
    /// The vulnerability database version judged with.
    pub db_version: String,
}

/// Judges `present` under `candidate`; `current` gives `was` from the stored verdicts.
/// `signatures` answers only what the store does not hold. A batch of images at a time:
/// their inputs gathered in order (store reads, registry look-ups), then judged on up to
/// [`super::MAX_WORKERS`] threads sharing one [`crate::vulndb::Matcher`].
pub async fn policy_test(
    store: &VerdictStore,
    present: &[PresentImage],
    current: &PolicyState,
    candidate: &PolicyState,
    db: &VulnDb,
    signatures: Option<&Arc<dyn SignatureSource>>,
) -> Report {
    let now = OffsetDateTime::now_utc();
    let db_version = db.version();
    // Unreadable: every image that needs matching is skipped with this reason.
    let matcher = db
        .matcher()
        .map_err(|e| Skip::Error(format!("reading the vulnerability database: {e}")));
    let workers = super::workers();
    let mut images = Vec::with_capacity(present.len());
    let mut registry_calls = 0;
    for chunk in present.chunks(super::BATCH) {
        let mut gathered = Vec::with_capacity(chunk.len());
        for image in chunk {
            let was = stored_decision(store, image, current, &db_version);
            gathered.push(
                gather(
                    store,
                    image,
                    was,
                    candidate,
                    signatures,
                    &mut registry_calls,
                )
                .await,
            );
        }
        let conclude = |g: &Gathered<'_>| Ok(conclude(g, matcher.as_ref(), &db_version, now));
        let judged = super::map_on_threads(&gathered, workers, &conclude);
        for (g, outcome) in gathered.iter().zip(judged) {
            images.push(outcome.unwrap_or_else(|e| g.outcome(None, vec![e])));
        }
    }
    Report {
        changed: images.iter().filter(|i| i.changed).count(),
        skipped: images.iter().filter(|i| i.decision.is_none()).count(),
        images,
        registry_calls,
        db_version,
    }
}

/// One image's inputs to its judgement under the candidate.
struct Gathered<'a> {
    digest: String,
    /// The name shown for it.
    shown: String,
    was: Option<Decision>,
    /// Known without judging: no policy judges it, its inventory is missing or
    /// unusable, a policy did not load.
    early: Option<ImageOutcome>,
    inventory: Option<ImageInventory>,
    /// Each (name, judging policy) in order, with the fingerprint scope and the
    /// signature outcome; gathering stops after the first that cannot be had.
    checks: Vec<Check<'a>>,
}

struct Check<'a> {
    reference: &'a Reference,
    policy: &'a Policy,
    scope: String,
    signatures: Result<SignatureReport, Skip>,
}

impl Gathered<'_> {
    fn outcome(&self, decision: Option<Decision>, reasons: Vec<String>) -> ImageOutcome {
        ImageOutcome {
            digest: self.digest.clone(),
            reference: self.shown.clone(),
            decision,
            was: self.was,
            reasons,
            changed: decision.is_some() && decision != self.was,
        }
    }
}

/// The store's inventory of `image` and, per name and candidate policy, its signature
/// outcome: stored, else asked of `signatures` (counted in `registry_calls`).
async fn gather<'a>(
    store: &VerdictStore,
    image: &'a PresentImage,
    was: Option<Decision>,
    candidate: &'a PolicyState,
    signatures: Option<&Arc<dyn SignatureSource>>,
    registry_calls: &mut usize,
) -> Gathered<'a> {
    let digest = image.digest.to_string();
    let mut g = Gathered {
        shown: image
            .references
            .first()
            .map(|r| r.to_string())
            .unwrap_or_else(|| digest.clone()),
        digest,
        was,
        early: None,
        inventory: None,
        checks: Vec::new(),
    };
    if !image
        .references
        .iter()
        .any(|r| !judge::judging_policies(&candidate.config, &r.to_string()).is_empty())
    {
        let mut allowed = g.outcome(
            Some(Decision::Allow),
            vec!["no policy of the candidate judges this image".into()],
        );
        // Unjudged under both: no change, unless a stored verdict said otherwise.
        allowed.changed = was.is_some_and(|w| w != Decision::Allow);
        g.early = Some(allowed);
        return g;
    }
    let inventory = match store.inventory(&g.digest) {
        Ok(Some(Ok(inv))) => inv,
        Ok(Some(Err(e))) => return g.early_skip(Skip::Unreadable(e.to_string()).to_string()),
        Ok(None) => return g.early_skip(Skip::NoInventory.to_string()),
        Err(e) => return g.early_skip(e.to_string()),
    };
    for reference in &image.references {
        for policy in judge::judging_policies(&candidate.config, &reference.to_string()) {
            let fp = match candidate.fingerprint(&policy.name) {
                Ok(fp) => fp,
                Err(e) => return g.early_skip(e.to_string()),
            };
            let sig = match judge::stored_signatures(&inventory, policy, reference) {
                Ok(StoredSignatures::NotRequired) => Ok(judge::not_required()),
                Ok(StoredSignatures::Stored(r)) => Ok(r),
                Ok(StoredSignatures::Missing { .. }) => match signatures {
                    Some(source) => {
                        *registry_calls += 1;
                        let resolved = ResolvedImage {
                            digest: inventory.digest.clone(),
                            platform_digest: inventory.platform_digest.clone(),
                        };
                        match candidate.policy(&policy.name) {
                            Ok(loaded) => source.verify(&loaded, reference, &resolved, None).await,
                            Err(e) => Err(e.into()),
                        }
                        .map_err(|e| {
                            Skip::Error(format!(
                                "policy {}: checking signatures at the registry: {e}",
                                policy.name
                            ))
                        })
                    }
                    None => Err(Skip::NoSignatureEvidence {
                        policy: policy.name.clone(),
                        repository: SignatureEvidence::repository_of(reference),
                    }),
                },
                Err(s) => Err(s),
            };
            let failed = sig.is_err();
            g.checks.push(Check {
                reference,
                policy,
                scope: verdict_scope(policy, fp, reference),
                signatures: sig,
            });
            if failed {
                g.inventory = Some(inventory);
                return g;
            }
        }
    }
    g.inventory = Some(inventory);
    g
}

impl Gathered<'_> {
    /// Not judged, for `why`.
    fn early_skip(mut self, why: String) -> Self {
        self.early = Some(self.outcome(None, vec![why]));
        self
    }
}

/// The candidate's judgement of a gathered image: deny when any check denies (its
/// reasons prefixed with the policy, each once), not judged at the first check that
/// cannot be judged.
fn conclude(
    g: &Gathered<'_>,
    matcher: Result<&crate::vulndb::Matcher<'_>, &Skip>,
    db_version: &str,
    now: OffsetDateTime,
) -> ImageOutcome {
    if let Some(early) = &g.early {
        return early.clone();
    }
    let Some(inventory) = &g.inventory else {
        return g.outcome(None, vec!["no stored inventory".into()]);
    };
    let mut decision = Some(Decision::Allow);
    let mut reasons: Vec<String> = Vec::new();
    let mut judged_any = false;
    for c in &g.checks {
        let keys = Keys {
            policy_fingerprint: &c.scope,
            db_version,
        };
        let verdict = c.signatures.clone().and_then(|s| {
            let matcher = matcher.map_err(Skip::clone)?;
            judge::judge(inventory, c.reference, c.policy, &keys, s, matcher, now)
        });
        match verdict {
            Ok(v) => {
                judged_any = true;
                if v.decision == Decision::Deny {
                    decision = Some(Decision::Deny);
                    // Two names of one image usually deny for the same reasons.
                    for r in &v.reasons {
                        let r = format!("{}: {r}", c.policy.name);
                        if !reasons.contains(&r) {
                            reasons.push(r);
                        }
                    }
                }
            }
            Err(s) => return g.outcome(None, vec![s.to_string()]),
        }
    }
    if !judged_any {
        decision = None;
        reasons.push("no name of the image could be judged".into());
    }
    g.outcome(decision, reasons)
}

/// What the running configuration's stored verdicts say of `image`: deny when any
/// judging policy's verdict denies, allow when all found allow, `None` when none is
/// stored under the current keys (the latest verdict of any key then stands in).
fn stored_decision(
    store: &VerdictStore,
    image: &PresentImage,
    current: &PolicyState,
    db_version: &str,
) -> Option<Decision> {
    let digest = image.digest.to_string();
    let mut found: Option<Decision> = None;
    for reference in &image.references {
        for policy in judge::judging_policies(&current.config, &reference.to_string()) {
            let Ok(fp) = current.fingerprint(&policy.name) else {
                continue;
            };
            let key = VerdictKey {
                digest: digest.clone(),
                policy_fingerprint: verdict_scope(policy, fp, reference),
                db_version: db_version.to_string(),
            };
            if let Ok(Some(v)) = store.get(&key) {
                found = Some(match (found, v.decision) {
                    (Some(Decision::Deny), _) | (_, Decision::Deny) => Decision::Deny,
                    _ => Decision::Allow,
                });
            }
        }
    }
    found.or_else(|| store.latest(&digest).ok().flatten().map(|v| v.decision))
}
