//! The policy part of a verdict key.

use crate::config::Policy;
use crate::reference::Reference;

/// The policy part of a verdict key. A signature binds a repository (cosign's
/// `docker-reference`), not only a digest: a verdict that rests on signatures holds only
/// for the repository it was verified for, so the same digest pushed to a second
/// repository is judged there on its own (never allowed, never denied, from the other's
/// verdict). Without a signature requirement the verdict rests on the bytes alone and is
/// shared by every name of the digest.
pub fn verdict_scope(policy: &Policy, fingerprint: &str, reference: &Reference) -> String {
    if policy.signatures.is_some() {
        let name = reference.name();
        format!("{fingerprint}@{}", crate::reference::canonical_host(&name))
    } else {
        fingerprint.to_string()
    }
}
