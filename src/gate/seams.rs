//! The gate's seams: one small trait per outside part, so the pull flow can be tested
//! with fakes and run with the real registry, scanner, store and containerd.

use async_trait::async_trait;

use super::error::GateError;
use crate::config::Mode;
use crate::containerd::Target;
use crate::digest::Digest;
use crate::policy::evaluate::JudgedScan;
use crate::policy::{Decision, Verdict};
use crate::reference::Reference;
use crate::report::SignatureReport;
use crate::snapshot::LoadedPolicy;

/// What the registry says a reference is, before anything is pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The digest the reference resolves to (an index for multi-platform images).
    pub digest: Digest,
    /// The manifest for this node's platform when `digest` is an index.
    pub platform_digest: Option<Digest>,
}

/// Registry side: resolve references and verify signatures, with the pull's own
/// credentials (the CRI `AuthConfig`).
#[async_trait]
pub trait SignatureSource: Send + Sync {
    async fn resolve(
        &self,
        reference: &Reference,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<ResolvedImage, GateError>;

    /// `Err` only for infrastructure failures; a failed verification is a report.
    async fn verify(
        &self,
        policy: &LoadedPolicy,
        reference: &Reference,
        image: &ResolvedImage,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<SignatureReport, GateError>;
}

/// Scans an image that containerd has stored, and judges it against the policy.
#[async_trait]
pub trait ImageScanner: Send + Sync {
    async fn scan(&self, policy: &LoadedPolicy, target: &Target) -> Result<JudgedScan, GateError>;

    /// The scan of an image just pulled as `reference` with `auth`, and where its layer
    /// results came from (a fleet attestation, or a local scan). The default scans.
    async fn scan_pulled(
        &self,
        policy: &LoadedPolicy,
        target: &Target,
        _reference: &Reference,
        _auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<(JudgedScan, crate::fleet::ScanSource), GateError> {
        Ok((
            self.scan(policy, target).await?,
            crate::fleet::ScanSource::local(),
        ))
    }

    /// Called as the pull is forwarded to containerd, before [`ImageScanner::scan_pulled`]:
    /// work that needs only the registry (a fleet attestation lookup) can start here
    /// and overlap the pull. Never fails; the default does nothing.
    fn prefetch(
        &self,
        _policy: &LoadedPolicy,
        _reference: &Reference,
        _image: &ResolvedImage,
        _auth: Option<&k8s_cri::v1::AuthConfig>,
    ) {
    }

    /// Version of the vulnerability database the scan matches against (part of the key).
    fn db_version(&self) -> String;
}

/// The verdict cache key (the store's own).
pub use crate::store::VerdictKey;

pub use crate::policy::verdict::How;

/// One decision event for the history and the audit log. Its JSON spells a missing
/// digest `""` and a failed evaluation's decision `"error"`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DecisionEvent {
    /// RFC 3339 UTC.
    pub at: String,
    pub reference: String,
    /// The judged digest; `None` when the evaluation failed before one was known.
    #[serde(serialize_with = "digest_or_empty")]
    pub digest: Option<Digest>,
    pub policy: String,
    pub mode: Mode,
    /// `None`: the evaluation failed ([`How::Error`]).
    #[serde(serialize_with = "decision_or_error")]
    pub decision: Option<Decision>,
    pub how: How,
    #[serde(default)]
    pub reasons: Vec<String>,
}

fn digest_or_empty<S: serde::Serializer>(d: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serde::Serialize::serialize(d, s),
        None => s.serialize_str(""),
    }
}

fn decision_or_error<S: serde::Serializer>(d: &Option<Decision>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serde::Serialize::serialize(d, s),
        None => s.serialize_str("error"),
    }
}

/// Where verdicts live. Synchronous: `get` must be quick (it runs on the async thread);
/// `put` may block (it runs on the blocking pool).
pub trait VerdictCache: Send + Sync {
    fn get(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError>;
    fn put(&self, key: &VerdictKey, verdict: &Verdict) -> Result<(), GateError>;
    /// `put`, and the image's inventory for re-judging it later
    /// ([`crate::store::ImageInventory`]), in one write. The default keeps only the
    /// verdict (a cache with nowhere to keep inventories).
    fn put_with_inventory(
        &self,
        key: &VerdictKey,
        verdict: &Verdict,
        _inventory: &crate::store::ImageInventory,
    ) -> Result<(), GateError> {
        self.put(key, verdict)
    }
    fn record(&self, event: &DecisionEvent);
}

/// containerd operations the flow needs beyond forwarding CRI calls.
#[async_trait]
pub trait ImageStore: Send + Sync {
    async fn target(&self, name: &str) -> Result<Option<Target>, GateError>;
}
