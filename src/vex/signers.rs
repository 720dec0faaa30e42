//! Who may suppress a policy's findings with VEX: `[policy.vex] keys` and `keyless`
//! identities (checked against `[policy.vex] trusted_root`, else the policy's
//! `[policy.signatures] trusted_root`), or, without a `[policy.vex]` section, every
//! signer the policy trusts for the image itself (its keys and keyless identities).
//! A keyless VEX signature is checked exactly as a keyless image signature is
//! ([`crate::verify::verify_keyless`]); only the identity list differs.

use std::path::Path;

use crate::config::{KeylessIdentity, Policy};
use crate::verify::evidence::Evidence;
use crate::verify::keyless::{self, TrustMaterial};
use crate::verify::keys::TrustedKey;
use crate::verify::{FileRejection, Rejection};

/// The signers trusted for VEX under one policy, with their trust material loaded.
#[derive(Debug, Clone, Default)]
pub struct VexSigners {
    pub keys: Vec<TrustedKey>,
    pub keyless: Vec<KeylessIdentity>,
    /// The trust root the keyless identities are checked against (`None` when there
    /// are no keyless identities).
    pub trust: Option<TrustMaterial>,
}

impl VexSigners {
    /// The VEX signers of `policy` (none without a policy). Key and trust-root bytes
    /// are those read at load when the config was checked (as the verifier uses them),
    /// else the files as they are now. Errors name the file and why it is unusable.
    /// The daemon builds them once per policy load ([`crate::snapshot::LoadedPolicy`]).
    pub fn for_policy(policy: Option<&Policy>) -> anyhow::Result<VexSigners> {
        let Some(policy) = policy else {
            return Ok(VexSigners::default());
        };
        VexSigners::from_files(policy, |path, limit| match policy.files.get(path) {
            Some(b) => Ok(b.to_vec()),
            None => crate::verify::keys::read_config_file(path, limit),
        })
    }

    /// The VEX signers of `policy`, their key and trust-root files read through
    /// `bytes(path, size limit)`.
    pub fn from_files(
        policy: &Policy,
        bytes: impl Fn(&Path, u64) -> Result<Vec<u8>, FileRejection>,
    ) -> anyhow::Result<VexSigners> {
        let sigs = policy.signatures.as_ref();
        let (paths, keyless, root) = match &policy.vex {
            Some(v) => (v.keys.as_slice(), v.keyless.as_slice(), v.trust_root(sigs)),
            None => (
                sigs.map(|s| s.keys.as_slice()).unwrap_or_default(),
                sigs.map(|s| s.keyless.as_slice()).unwrap_or_default(),
                sigs.and_then(|s| s.trusted_root.as_deref()),
            ),
        };
        let mut keys = Vec::new();
        for path in paths {
            let key = bytes(path, crate::verify::keys::MAX_KEY_FILE_BYTES)
                .map_err(Rejection::from)
                .and_then(|b| TrustedKey::from_file_bytes(&path.display().to_string(), &b));
            keys.push(key.map_err(|e| anyhow::anyhow!("VEX signer key {}: {e}", path.display()))?);
        }
        let trust = match root {
            Some(path) if !keyless.is_empty() => Some(
                bytes(path, crate::config::MAX_TRUST_ROOT_BYTES)
                    .map_err(Rejection::from)
                    .and_then(|b| TrustMaterial::from_json(&b))
                    .map_err(|e| {
                        anyhow::anyhow!("VEX signers' trusted root {}: {e}", path.display())
                    })?,
            ),
            _ => None,
        };
        Ok(VexSigners {
            keys,
            keyless: keyless.to_vec(),
            trust,
        })
    }

    /// No key and no keyless identity: nothing can suppress a finding.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.keyless.is_empty()
    }

    /// The report name of the keyless signer of `ev` (`keyless issuer=<issuer>
    /// subject=<subject>`, as the certificate says) when the signature, its Rekor entry
    /// and timestamps, and the certificate chain verify against the trust root and the
    /// certificate matches an identity trusted for VEX; otherwise why not (the
    /// identity mismatches of every configured identity, `; `-separated). What the
    /// signed statement is about is the caller's to check.
    pub fn keyless_signer(&self, ev: &Evidence) -> Result<String, Rejection> {
        if self.keyless.is_empty() {
            return Err(Rejection::Signature(
                "keyless signature, but the policy trusts no keyless identity for VEX".into(),
            ));
        }
        let trust = self.trust.as_ref().ok_or_else(|| {
            Rejection::Signature("keyless signature, but the policy has no trusted_root".into())
        })?;
        let cert = crate::verify::verify_keyless(trust, ev)?;
        let mut mismatches = Vec::new();
        for id in &self.keyless {
            match keyless::match_identity(id, &cert) {
                Ok(()) => {
                    let text = |s: &Option<String>| {
                        s.as_deref()
                            .unwrap_or("")
                            .chars()
                            .take(256)
                            .collect::<String>()
                    };
                    return Ok(format!(
                        "keyless issuer={} subject={}",
                        text(&cert.issuer),
                        text(&cert.subject)
                    ));
                }
                Err(e) => mismatches.push(e.to_string()),
            }
        }
        mismatches.dedup();
        Err(Rejection::Certificate(mismatches.join("; ")))
    }
}
