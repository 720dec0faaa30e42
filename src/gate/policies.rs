//! The policies in force, with their fingerprints, and the policy part of a verdict key.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::{GateError, PolicyError};
use crate::config::{Config, Policy};
use crate::reference::Reference;

type FingerprintError = Arc<dyn std::error::Error + Send + Sync>;

/// The policies in force with their fingerprints; replaced whole on reload.
pub struct PolicyState {
    pub config: Arc<Config>,
    fingerprints: HashMap<String, Result<String, FingerprintError>>,
}

impl PolicyState {
    /// Fingerprints every policy now (reading key files), so a pull never pays for it.
    pub fn new<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
        config: Arc<Config>,
        fingerprint: impl Fn(&Policy) -> Result<String, E>,
    ) -> PolicyState {
        let fingerprints = config
            .policies
            .iter()
            .map(|p| {
                let print = fingerprint(p).map_err(|e| FingerprintError::from(e.into()));
                (p.name.clone(), print)
            })
            .collect();
        PolicyState {
            config,
            fingerprints,
        }
    }

    pub fn fingerprint(&self, policy: &str) -> Result<&str, GateError> {
        match self.fingerprints.get(policy) {
            Some(Ok(f)) => Ok(f),
            Some(Err(e)) => Err(GateError::Policy(PolicyError::Fingerprint(e.clone()))),
            None => Err(GateError::Policy(PolicyError::NotLoaded(
                policy.to_string(),
            ))),
        }
    }
}

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
