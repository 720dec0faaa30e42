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
use crate::gate::{PolicyState, ResolvedImage, SignatureSource, VerdictKey, verdict_scope};
use crate::policy::Decision;
use crate::policy::evaluate::Keys;
use crate::store::{SignatureEvidence, VerdictStore};
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
/// `signatures` answers only what the store does not hold.
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
    let mut images = Vec::with_capacity(present.len());
    let mut registry_calls = 0;
    for image in present {
        let digest = image.digest.to_string();
        let shown = image
            .references
            .first()
            .map(|r| r.to_string())
            .unwrap_or_else(|| digest.clone());
        let was = stored_decision(store, image, current, &db_version);
        if !image
            .references
            .iter()
            .any(|r| !judge::judging_policies(&candidate.config, &r.to_string()).is_empty())
        {
            images.push(ImageOutcome {
                digest,
                reference: shown,
                decision: Some(Decision::Allow),
                was,
                reasons: vec!["no policy of the candidate judges this image".into()],
                changed: was.is_some_and(|w| w != Decision::Allow),
            });
            continue;
        }
        let inventory = match store.inventory(&digest) {
            Ok(Some(Ok(inv))) => Ok(inv),
            Ok(Some(Err(e))) => Err(Skip::Unreadable(e.to_string())),
            Ok(None) => Err(Skip::NoInventory),
            Err(e) => Err(Skip::Error(e.to_string())),
        };
        let inventory = match inventory {
            Ok(i) => i,
            Err(s) => {
                images.push(ImageOutcome {
                    digest,
                    reference: shown,
                    decision: None,
                    was,
                    reasons: vec![s.to_string()],
                    changed: false,
                });
                continue;
            }
        };
        let mut decision: Option<Decision> = Some(Decision::Allow);
        let mut reasons = Vec::new();
        let mut judged_any = false;
        'names: for reference in &image.references {
            for policy in judge::judging_policies(&candidate.config, &reference.to_string()) {
                let fp = match candidate.fingerprint(&policy.name) {
                    Ok(fp) => fp,
                    Err(e) => {
                        decision = None;
                        reasons = vec![e.to_string()];
                        break 'names;
                    }
                };
                let sig = match judge::stored_signatures(&inventory, policy, reference) {
                    Ok(StoredSignatures::NotRequired) => Ok(judge::not_required()),
                    Ok(StoredSignatures::Stored(r)) => Ok(r),
                    Ok(StoredSignatures::Missing { .. }) => match signatures {
                        Some(source) => {
                            registry_calls += 1;
                            let resolved = ResolvedImage {
                                digest: inventory.digest.clone(),
                                platform_digest: inventory.platform_digest.clone(),
                            };
                            match candidate.policy(&policy.name) {
                                Ok(loaded) => {
                                    source.verify(&loaded, reference, &resolved, None).await
                                }
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
                let scope = verdict_scope(policy, fp, reference);
                let keys = Keys {
                    policy_fingerprint: &scope,
                    db_version: &db_version,
                };
                let verdict = sig
                    .and_then(|s| judge::judge(&inventory, reference, policy, &keys, s, db, now));
                match verdict {
                    Ok(v) => {
                        judged_any = true;
                        if v.decision == Decision::Deny {
                            decision = Some(Decision::Deny);
                            // Two names of one image usually deny for the same reasons.
                            for r in &v.reasons {
                                let r = format!("{}: {r}", policy.name);
                                if !reasons.contains(&r) {
                                    reasons.push(r);
                                }
                            }
                        }
                    }
                    Err(s) => {
                        decision = None;
                        reasons = vec![s.to_string()];
                        break 'names;
                    }
                }
            }
        }
        if decision.is_some() && !judged_any {
            decision = None;
            reasons.push("no name of the image could be judged".into());
        }
        let changed = decision.is_some() && decision != was;
        images.push(ImageOutcome {
            digest,
            reference: shown,
            decision,
            was,
            reasons,
            changed,
        });
    }
    Report {
        changed: images.iter().filter(|i| i.changed).count(),
        skipped: images.iter().filter(|i| i.decision.is_none()).count(),
        images,
        registry_calls,
        db_version,
    }
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
