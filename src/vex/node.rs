//! VEX on the node: the attestations attached to an image just pulled, fetched with
//! the pull's own registry client and credentials, verified with the signers the
//! image's policy trusts for VEX ([`VexSigners`], built once per policy load:
//! `[policy.vex] keys` and `keyless`, else the policy's image signers), and applied to
//! the scan report before it is judged.
//!
//! Failing safe: a registry error or a timeout while looking for VEX means no VEX is
//! applied (the findings all count, so the verdict is never more permissive than
//! without VEX); it is logged and counted (`pullwarden_vex_lookups_total{result="error"}`),
//! never a failed pull.

use std::time::Duration;

use super::signers::VexSigners;
use super::{VexOutcome, VexSource};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::ScanReport;

/// How long the whole lookup (every digest, every attestation) may take before the
/// pull goes on without VEX.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The outcome of looking for VEX for one pull: the `result` label of
/// `pullwarden_vex_lookups_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// At least one VEX attestation was found (trusted or not).
    Found,
    /// The registry has no VEX attestation for the image.
    None,
    /// The policy trusts no VEX signer (no key, no keyless identity): nothing was asked
    /// of the registry.
    NoSigners,
    /// The registry failed or timed out, or a VEX key or trust root could not be read:
    /// no VEX applied.
    Error,
}

impl Lookup {
    /// The metric label: `found`, `none`, `no_signers`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Found => "found",
            Lookup::None => "none",
            Lookup::NoSigners => "no_signers",
            Lookup::Error => "error",
        }
    }
}

/// What looking up VEX for one pull gave: the outcome of applying it, how the lookup
/// went, and the sources found (`None`: the lookup failed; kept with the image's
/// inventory so that re-judging applies the same VEX).
pub struct Applied {
    pub outcome: VexOutcome,
    pub lookup: Lookup,
    pub sources: Option<Vec<VexSource>>,
}

/// Looks up the VEX attached to the image (`digests`: the manifest digest the pull
/// resolved, and the platform manifest's when it differs) and applies it to `report`.
/// Never fails: on any error `report` is left as it was and the outcome is empty.
pub async fn apply_attached(
    client: &RegistryClient,
    signers: &VexSigners,
    reference: &Reference,
    digests: &[Digest],
    creds: &Credentials,
    report: &mut ScanReport,
) -> Applied {
    let applied = |outcome, lookup, sources| Applied {
        outcome,
        lookup,
        sources,
    };
    if signers.is_empty() {
        return applied(VexOutcome::default(), Lookup::NoSigners, Some(Vec::new()));
    }
    let lookup = async {
        let mut sources: Vec<VexSource> = Vec::new();
        for d in digests {
            sources
                .extend(super::registry::attached_vex(client, reference, d, creds, signers).await?);
        }
        Ok::<_, crate::registry::RegistryError>(sources)
    };
    let sources = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(image = %reference, error = %e, "looking for VEX attestations failed; no VEX applied");
            return applied(VexOutcome::default(), Lookup::Error, None);
        }
        Err(_) => {
            tracing::warn!(image = %reference, timeout = ?LOOKUP_TIMEOUT, "looking for VEX attestations timed out; no VEX applied");
            return applied(VexOutcome::default(), Lookup::Error, None);
        }
    };
    if sources.is_empty() {
        return applied(VexOutcome::default(), Lookup::None, Some(sources));
    }
    let outcome = apply_sources(report, digests, &sources);
    for s in &outcome.suppressed {
        tracing::info!(image = %reference, vulnerability = %s.id, package = %s.package, status = %s.status, signer = %s.signer, "finding suppressed by VEX");
    }
    applied(outcome, Lookup::Found, Some(sources))
}

/// Applies `sources` (found for the image whose manifest digests are `digests`: the
/// one pulled first, the platform manifest's second) to `report`: a pull with what it
/// just fetched, a re-judge with what the pull stored.
pub fn apply_sources(
    report: &mut ScanReport,
    digests: &[Digest],
    sources: &[VexSource],
) -> VexOutcome {
    let names: Vec<String> = digests.iter().map(ToString::to_string).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    super::apply_any(report, &names, sources)
}
