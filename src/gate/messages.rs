//! The error shapes the kubelet sees for a verdict (DESIGN.md, fixed; a failed
//! evaluation's are [`super::GateError::status`]). The same verdict always produces the
//! same text: reasons are stable and the first one leads.

use crate::digest::Digest;
use crate::policy::{DenyKind, Verdict};

fn reason(v: &Verdict) -> String {
    match v.reasons.as_slice() {
        [] => "denied".to_string(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// The answer to a denied pull.
pub fn deny(requested: &str, v: &Verdict) -> (tonic::Code, String) {
    let head = format!(
        "pullwarden: image {requested} ({}) denied by policy {}: {}",
        v.digest,
        v.policy,
        reason(v)
    );
    match v.deny_kind {
        Some(DenyKind::Signature) => (
            tonic::Code::Unknown,
            format!("SignatureValidationFailed: {head}"),
        ),
        Some(DenyKind::Registry) => (tonic::Code::Unknown, format!("RegistryUnavailable: {head}")),
        Some(DenyKind::Infrastructure) => (tonic::Code::Unavailable, head),
        Some(DenyKind::Scan) | None => (
            tonic::Code::PermissionDenied,
            format!(
                "{head}; run \"pullwarden explain {}\" on the node",
                v.digest
            ),
        ),
    }
}

/// The tag moved between verification and pull: never trust it, evaluate next time.
pub fn moved(requested: &str, verified: &Digest, stored: &Digest) -> (tonic::Code, String) {
    (
        tonic::Code::Unavailable,
        format!(
            "pullwarden: image {requested} changed during the pull (verified {verified}, containerd stored {stored}); the next pull evaluates it again"
        ),
    )
}
