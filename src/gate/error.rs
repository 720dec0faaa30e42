//! What can fail around a decision, with the typed error of the part that failed, and
//! the one mapping from those failures to what the kubelet is answered (DESIGN.md's
//! error shapes) and to the metric that counts them. Matches have no `_` arm: a new
//! variant does not compile without a decision on each.

use std::sync::Arc;

use crate::containerd::ContainerdError;
use crate::cri::CriError;
use crate::registry::RegistryError;
use crate::scan::ScanError;
pub use crate::snapshot::PolicyError;
use crate::store::StoreError;
use crate::verify::VerifyError;
use crate::vulndb::VulnDbError;

/// Failures of the parts around the decision. None of them is ever cached as allow.
/// Shared by every caller of one evaluation through an `Arc`.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The registry could not be reached, timed out or failed with a 5xx: an outage, the
    /// one registry failure `on_error = "allow"` lets through (→ `RegistryUnavailable:`).
    /// Holds only errors for which [`RegistryError::is_outage`] holds.
    #[error("{0}")]
    Registry(#[source] RegistryError),
    /// The registry answered, but with what cannot be used: a missing or malformed
    /// manifest, an index without this node's platform, content that does not match its
    /// digest, a refusal (→ `RegistryUnavailable:`). What an image or its registry serves
    /// is never an outage: it never fails open.
    #[error("{0}")]
    RegistryContent(#[source] VerifyError),
    /// containerd's API failed (→ `UNAVAILABLE`).
    #[error("containerd: {0}")]
    Containerd(#[source] ContainerdError),
    /// containerd's CRI failed: unreachable, broken mid-call, a removal refused or
    /// timed out (→ `UNAVAILABLE`).
    #[error("containerd: {0}")]
    Cri(#[source] CriError),
    /// The verdict store failed.
    #[error("verdict store: {0}")]
    Store(#[source] StoreError),
    /// Reading the image's own content failed (a blob missing from the store, …).
    #[error("scan: {0}")]
    Scan(#[source] ScanError),
    /// The vulnerability database could not be opened or read.
    #[error("scan: {0}")]
    VulnDb(#[source] VulnDbError),
    /// The policy's key files, trust root or denylist could not be loaded.
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    /// A task of ours panicked or was cancelled.
    #[error("internal error: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// containerd answered the pull, then did not have the image: no outage, never
    /// fails open.
    #[error("internal error: {name} missing from containerd right after its pull")]
    Vanished { name: String },
    /// containerd reset the call's stream: its own answer, relayed as a reset with the
    /// same code (never turned into an evaluation failure).
    #[error("containerd reset the call ({0:?})")]
    Reset(h2::Reason),
}

impl From<CriError> for GateError {
    /// A reset stays containerd's answer ([`GateError::Reset`]); the rest is a failure.
    fn from(e: CriError) -> GateError {
        match e.reset() {
            Some(reason) => GateError::Reset(reason),
            None => GateError::Cri(e),
        }
    }
}

impl From<VerifyError> for GateError {
    /// The one mapping from verification failures that are not verdicts.
    fn from(e: VerifyError) -> GateError {
        match e {
            VerifyError::Registry(r) if r.is_outage() => GateError::Registry(r),
            VerifyError::Registry(_)
            | VerifyError::NoPlatform { .. }
            | VerifyError::BadIndex { .. } => GateError::RegistryContent(e),
            VerifyError::Key { .. } | VerifyError::TrustRoot { .. } => {
                GateError::Policy(PolicyError::Keys(Arc::new(e)))
            }
        }
    }
}

impl GateError {
    /// Whether this is an outage that `on_error = "allow"` may let through: the registry
    /// unreachable, timing out or failing with a 5xx, or containerd down. What the image
    /// or its registry serves, our own broken configuration, the store and the scan never
    /// are.
    pub fn is_outage(&self) -> bool {
        match self {
            GateError::Registry(_) | GateError::Containerd(_) | GateError::Cri(_) => true,
            GateError::RegistryContent(_)
            | GateError::Reset(_)
            | GateError::Store(_)
            | GateError::Scan(_)
            | GateError::VulnDb(_)
            | GateError::Policy(_)
            | GateError::Task(_)
            | GateError::Vanished { .. } => false,
        }
    }

    /// The `kind` label of `pullwarden_errors_total`.
    pub fn metric_kind(&self) -> &'static str {
        match self {
            GateError::Registry(_) | GateError::RegistryContent(_) => "registry",
            GateError::Containerd(_) | GateError::Cri(_) | GateError::Reset(_) => "containerd",
            GateError::Store(_) => "store",
            GateError::Scan(_) | GateError::VulnDb(_) => "scan",
            GateError::Policy(_) => "policy",
            GateError::Task(_) | GateError::Vanished { .. } => "internal",
        }
    }

    /// The answer when the evaluation of `requested` (empty: ImageStatus, which names no
    /// image in the message) failed under `on_error = "deny"` (DESIGN.md): the registry
    /// at fault → `UNKNOWN` + `RegistryUnavailable:`, anything else → `UNAVAILABLE`.
    pub fn status(&self, requested: &str) -> (tonic::Code, String) {
        let what = if requested.is_empty() {
            String::new()
        } else {
            format!("image {requested}: ")
        };
        match self {
            GateError::Registry(e) => (
                tonic::Code::Unknown,
                format!("RegistryUnavailable: pullwarden: {what}registry unavailable: {e}"),
            ),
            GateError::RegistryContent(e) => (
                tonic::Code::Unknown,
                format!("RegistryUnavailable: pullwarden: {what}registry answered unusably: {e}"),
            ),
            GateError::Containerd(_)
            | GateError::Cri(_)
            | GateError::Store(_)
            | GateError::Scan(_)
            | GateError::VulnDb(_)
            | GateError::Policy(_)
            | GateError::Task(_)
            | GateError::Vanished { .. }
            | GateError::Reset(_) => (
                tonic::Code::Unavailable,
                format!("pullwarden: {what}cannot be evaluated: {self}"),
            ),
        }
    }
}

impl From<crate::engine::EngineError> for GateError {
    fn from(e: crate::engine::EngineError) -> Self {
        match e {
            crate::engine::EngineError::Scan(e) => GateError::Scan(e),
            crate::engine::EngineError::Match(e) => GateError::VulnDb(e),
        }
    }
}
