//! One image judged from its stored inventory under one policy: the same evaluation a
//! pull makes ([`crate::policy::evaluate`]), with the scan replaced by the stored
//! composition matched anew against the database, and the signature check by a stored
//! outcome for the same signer set and repository.

use time::OffsetDateTime;

use crate::config::{Mode, Policy};
use crate::gate::How;
use crate::policy::Verdict;
use crate::policy::evaluate::{self, Keys, Subject};
use crate::reference::Reference;
use crate::report::{ScanReport, SignatureReport};
use crate::store::{ImageInventory, SignatureEvidence, VexEvidence};
use crate::vex::VexSource;
use crate::vulndb::Matcher;

/// Why an image was not judged from the store. Each is logged and counted; none is a
/// verdict (the next pull of the image judges it in full).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Pulled before inventories were kept, or never through pullwarden.
    NoInventory,
    /// A record is stored but cannot be trusted (damaged, another layout).
    Unreadable(String),
    /// No stored signature outcome for this policy's signer set and repository.
    NoSignatureEvidence { policy: String, repository: String },
    /// The policy scans but the stored inventory has no scan (its pull was judged by a
    /// policy that did not scan).
    NoScan { policy: String },
    /// The policy cannot be used (a key file that did not load) or matching failed.
    Error(String),
}

impl Skip {
    /// The metric label: a fixed set.
    pub fn kind(&self) -> &'static str {
        match self {
            Skip::NoInventory => "no-inventory",
            Skip::Unreadable(_) => "unreadable-inventory",
            Skip::NoSignatureEvidence { .. } => "no-signature-evidence",
            Skip::NoScan { .. } => "no-scan",
            Skip::Error(_) => "error",
        }
    }
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::NoInventory => f.write_str(
                "no stored inventory (pulled before pullwarden kept inventories, or not through it): judged at its next pull",
            ),
            Skip::Unreadable(why) => write!(f, "stored inventory unusable: {why}"),
            Skip::NoSignatureEvidence { policy, repository } => write!(
                f,
                "policy {policy}: no stored signature outcome for its signers and repository {repository}"
            ),
            Skip::NoScan { policy } => write!(
                f,
                "policy {policy} scans, but the image was pulled under a policy that did not: no stored scan"
            ),
            Skip::Error(why) => f.write_str(why),
        }
    }
}

/// What the store knows about the signatures `policy` requires of `reference`.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredSignatures {
    /// The policy requires none.
    NotRequired,
    /// A stored outcome for the same requirement and repository.
    Stored(SignatureReport),
    /// Nothing stored: only the registry can tell.
    Missing { requirement: String },
}

pub fn stored_signatures(
    inventory: &ImageInventory,
    policy: &Policy,
    reference: &Reference,
) -> Result<StoredSignatures, Skip> {
    match SignatureEvidence::requirement_of(policy).map_err(Skip::Error)? {
        None => Ok(StoredSignatures::NotRequired),
        Some(req) => Ok(
            match inventory.evidence(&req, &SignatureEvidence::repository_of(reference)) {
                Some(e) => StoredSignatures::Stored(e.report.clone()),
                None => StoredSignatures::Missing { requirement: req },
            },
        ),
    }
}

/// The signature report a pull under `policy` without signatures carries.
pub fn not_required() -> SignatureReport {
    SignatureReport {
        required: false,
        satisfied: true,
        ..Default::default()
    }
}

/// The verdict `policy` gives the image `inventory` describes, pulled as `reference`,
/// with `signatures` as the outcome of its signature check, vulnerabilities from `matcher`,
/// as of `now`. Marked [`How::Rescored`]. Like a pull, an enforcing policy whose
/// signature requirement fails judges nothing else, and the VEX the pull looked up
/// (stored with the inventory, for the same VEX signer set) is applied before judging.
/// Without such a lookup (the image had no finding when pulled, the lookup failed, the
/// VEX signers changed) every finding counts: never more permissive than the pull.
pub fn judge(
    inventory: &ImageInventory,
    reference: &Reference,
    policy: &Policy,
    keys: &Keys<'_>,
    signatures: SignatureReport,
    matcher: &Matcher<'_>,
    now: OffsetDateTime,
) -> Result<Verdict, Skip> {
    let name = reference.to_string();
    let subject = Subject {
        reference: &name,
        digest: inventory.digest.clone(),
        platform_digest: inventory.platform_digest.clone(),
    };
    let signature_deny = signatures.required && !signatures.satisfied;
    let scan = if policy.scan.enabled && !(signature_deny && policy.mode == Mode::Enforce) {
        let Some(stored) = &inventory.report else {
            return Err(Skip::NoScan {
                policy: policy.name.clone(),
            });
        };
        let vulnerabilities = matcher
            .matches(stored.os.as_ref(), &stored.packages)
            .map_err(|e| Skip::Error(format!("matching vulnerabilities: {e}")))?;
        // Judging reads the findings, never the packages (the verdict keeps their
        // count, set below): they are not copied.
        let mut report = ScanReport {
            os: stored.os.clone(),
            packages: Vec::new(),
            secrets: stored.secrets.clone(),
            files: stored.files.clone(),
            vulnerabilities,
            layers: stored.layers.clone(),
        };
        let vex = stored_vex(inventory, policy)
            .map(|sources| {
                let digests: Vec<_> = std::iter::once(inventory.digest.clone())
                    .chain(inventory.platform_digest.clone())
                    .collect();
                crate::vex::node::apply_sources(&mut report, &digests, sources)
            })
            .unwrap_or_default();
        let mut judged = crate::engine::judge(report, &policy.scan, now.date());
        judged.vex = vex;
        Some((judged, stored.packages.len()))
    } else {
        None
    };
    let (scan, packages) = match scan {
        Some((judged, packages)) => (Some(judged), Some(packages)),
        None => (None, None),
    };
    let mut v = evaluate::evaluate(policy, &subject, signatures, scan, keys, now);
    if let Some(packages) = packages {
        v.packages = packages;
        v.scan_source = inventory.scan_source.clone();
    }
    v.how = Some(How::Rescored);
    Ok(v)
}

/// The VEX sources a pull of the image looked up for `policy`'s VEX signers, if any.
fn stored_vex<'a>(inventory: &'a ImageInventory, policy: &Policy) -> Option<&'a [VexSource]> {
    let requirement = VexEvidence::requirement_of(policy).ok()?;
    inventory
        .vex_evidence(&requirement)
        .map(|e| e.sources.as_slice())
}

/// The policies that judge ImageStatus for `name` (ImageStatus carries no pod
/// namespace): every policy whose image globs match, up to the first that covers every
/// namespace, without those in `off` mode. The same rule as the gate's ImageStatus flow,
/// so each of them gets a verdict to admit the image by.
pub fn judging_policies<'a>(config: &'a crate::config::Config, name: &str) -> Vec<&'a Policy> {
    let mut matching = Vec::new();
    for p in config.policies.iter().filter(|p| p.matches_image(name)) {
        matching.push(p);
        if p.namespaces.iter().any(|n| n == "*" || n == "**") {
            break;
        }
    }
    matching.retain(|p| p.mode != Mode::Off);
    matching
}
