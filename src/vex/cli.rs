//! VEX for `pullwarden scan`: `--vex FILE` documents and the VEX attached to an image
//! scanned from a registry.
//!
//! Trust: a plain VEX document given with `--vex` is the operator's own input and is
//! applied as such (signer `operator (FILE)`); a DSSE envelope given with `--vex`, and
//! every attestation attached to the image, counts only when signed by a key the
//! policy trusts for VEX: `[policy.vex] keys`, or without that section the keys the
//! policy trusts for the image itself (`[policy.signatures] keys`).

use std::path::PathBuf;

use anyhow::Context;

use super::{VexOutcome, VexSource};
use crate::config::Policy;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::ScanReport;
use crate::verify::keys::TrustedKey;

/// The keys trusted for VEX under `policy`: `[policy.vex] keys`, or without that
/// section the keys the policy trusts for the image (`[policy.signatures] keys`).
pub fn vex_keys(policy: Option<&Policy>) -> anyhow::Result<Vec<TrustedKey>> {
    let mut keys = Vec::new();
    let paths = match policy {
        Some(Policy { vex: Some(v), .. }) => v.keys.as_slice(),
        Some(p) => p
            .signatures
            .as_ref()
            .map(|s| s.keys.as_slice())
            .unwrap_or_default(),
        None => &[],
    };
    for path in paths {
        // The bytes read at load when the config was checked (as the verifier uses
        // them), else the file as it is now.
        let bytes = match policy.and_then(|p| p.files.get(path)) {
            Some(b) => Ok(b.to_vec()),
            None => crate::verify::keys::read_key_file(path),
        };
        let key = bytes
            .map_err(crate::verify::Rejection::from)
            .and_then(|b| TrustedKey::from_file_bytes(&path.display().to_string(), &b));
        keys.push(key.map_err(|e| anyhow::anyhow!("VEX signer key {}: {e}", path.display()))?);
    }
    Ok(keys)
}

/// Reads `files`, fetches what the registry has attached to `digest` (when the image
/// came from one) and applies it all to `report`. A file that cannot be read or parsed
/// is an error (the operator asked for it); a registry failure is an error too.
pub fn apply_for_scan(
    files: &[PathBuf],
    policy: Option<&Policy>,
    attached: Option<&(RegistryClient, Reference)>,
    digest: &Digest,
    report: &mut ScanReport,
) -> anyhow::Result<VexOutcome> {
    let keys = vex_keys(policy)?;
    let d = digest.to_string();
    let mut sources: Vec<VexSource> = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("--vex {}", f.display()))?;
        let is_envelope = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .is_some_and(|v| v.get("payloadType").is_some());
        let origin = format!("file {}", f.display());
        if is_envelope {
            match super::attestation::verify(&bytes, &d, &keys) {
                Ok(v) => sources.push(VexSource {
                    origin,
                    signer: Some(v.signer),
                    untrusted_reason: None,
                    document: v.document,
                }),
                Err(super::attestation::AttestationError::Untrusted) => sources.push(VexSource {
                    origin,
                    signer: None,
                    untrusted_reason: Some(
                        "attestation not signed by a signer trusted for VEX".into(),
                    ),
                    document: super::attestation::read_unverified(&bytes, &d)
                        .with_context(|| format!("--vex {}", f.display()))?,
                }),
                Err(e) => return Err(e).with_context(|| format!("--vex {}", f.display())),
            }
        } else {
            let document =
                super::parse(&bytes).with_context(|| format!("--vex {}", f.display()))?;
            sources.push(VexSource {
                signer: Some(format!("operator ({})", f.display())),
                origin,
                untrusted_reason: None,
                document,
            });
        }
    }
    if let Some((client, reference)) = attached {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let found = runtime
            .block_on(super::registry::attached_vex(
                client,
                reference,
                digest,
                &Credentials::default(),
                &keys,
            ))
            .context("VEX attestations")?;
        sources.extend(found);
    }
    Ok(super::apply(report, &d, &sources))
}
