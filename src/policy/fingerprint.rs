//! The policy fingerprint: a hash of everything a verdict depends on besides the image
//! and the vulnerability database — the effective policy, the bytes of every key file,
//! trust root and denylist it names, and the scan limits that can change an outcome.
//! A cached verdict is reused only under the same fingerprint.

use std::path::{Path, PathBuf};

use crate::config::{Policy, ScanLimits};

/// Bumped when what goes into the hash changes, so old cached verdicts stop matching.
const FINGERPRINT_DOMAIN: &[u8] = b"pullwarden policy fingerprint v1\0";

#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("policy {policy}: cannot read {what} {}: {source}", path.display())]
    ReadFile {
        policy: String,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy {policy}: cannot serialize the effective policy: {source}")]
    Serialize {
        policy: String,
        source: serde_json::Error,
    },
}

/// One file a policy names, as read at load: `what` is "key file", "trusted root" or
/// "denylist"; `bytes` are exactly what the verifier or the scanner was built from.
#[derive(Debug, Clone, Copy)]
pub struct PolicyFile<'a> {
    pub what: &'static str,
    pub path: &'a Path,
    pub bytes: &'a [u8],
}

/// Hex BLAKE3 (64 characters) of the canonical policy (serde JSON of `config::Policy`:
/// field order fixed, maps ordered), the outcome-relevant scan limits, and `files` —
/// each path with its contents, in the order given (the policy's key files, its
/// trusted root, its denylist). Pure: the caller reads the files once and builds the
/// verifier and the scanner from the same bytes (the policy snapshot).
pub fn fingerprint(
    policy: &Policy,
    limits: &ScanLimits,
    files: &[PolicyFile<'_>],
) -> Result<String, FingerprintError> {
    let mut h = blake3::Hasher::new();
    h.update(FINGERPRINT_DOMAIN);
    let json = serde_json::to_vec(policy).map_err(|source| FingerprintError::Serialize {
        policy: policy.name.clone(),
        source,
    })?;
    field(&mut h, b"policy", &json);
    // Limits that decide whether a layer is a bomb or a file is searched change
    // verdicts; cache size and parallelism do not, so they stay out.
    let limits = [
        limits.max_layer_bytes,
        limits.max_layer_entries,
        limits.max_path_bytes,
        limits.max_secret_file_bytes,
    ];
    let limit_bytes: Vec<u8> = limits.iter().flat_map(|l| l.to_le_bytes()).collect();
    field(&mut h, b"limits", &limit_bytes);
    for f in files {
        field(
            &mut h,
            f.what.as_bytes(),
            f.path.as_os_str().as_encoded_bytes(),
        );
        field(&mut h, b"contents", f.bytes);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Length-prefixed, so no two different inputs can concatenate to the same stream.
fn field(h: &mut blake3::Hasher, tag: &[u8], bytes: &[u8]) {
    h.update(&(tag.len() as u64).to_le_bytes());
    h.update(tag);
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policy() -> (Policy, ScanLimits) {
        let c = Config::parse(
            "[[policy]]\nname = \"prod\"\nimages = [\"**\"]\n[policy.scan]\ndenylist = \"/d\"\n",
        )
        .unwrap();
        (c.policies[0].clone(), c.scan.clone())
    }

    #[test]
    fn hashes_the_bytes_it_is_given() {
        let (p, limits) = policy();
        let print = |bytes: &[u8]| {
            let f = PolicyFile {
                what: "denylist",
                path: Path::new("/d"),
                bytes,
            };
            fingerprint(&p, &limits, &[f]).unwrap()
        };
        let a = print(b"sha256:aa\n");
        assert_eq!(a, print(b"sha256:aa\n"));
        assert_eq!(a.len(), 64);
        assert_ne!(a, print(b"sha256:bb\n"));
        assert_ne!(a, fingerprint(&p, &limits, &[]).unwrap());
    }
}
