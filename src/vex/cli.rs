//! VEX for `pullwarden scan`: `--vex FILE` documents and the VEX attached to an image
//! scanned from a registry.
//!
//! Trust: a plain VEX document given with `--vex` is the operator's own input and is
//! applied as such (signer `operator (FILE)`); a DSSE envelope or a sigstore bundle
//! (v0.3, `dsseEnvelope`) given with `--vex`, and every attestation attached to the
//! image, counts only when signed by a signer the policy trusts for VEX
//! ([`VexSigners::for_policy`]: `[policy.vex] keys` and `keyless`, or without that
//! section the policy's image signers, keys and keyless identities).

use std::path::PathBuf;

use anyhow::Context;

use super::signers::VexSigners;
use super::{VexOutcome, VexSource};
use crate::config::Policy;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::ScanReport;

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
    let signers = VexSigners::for_policy(policy)?;
    let d = digest.to_string();
    let mut sources: Vec<VexSource> = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("--vex {}", f.display()))?;
        let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
        let origin = format!("file {}", f.display());
        // A sigstore bundle: its envelope, with the bundle's keyless material.
        let (envelope, keyless) = match json.as_ref().and_then(|v| v.get("dsseEnvelope")) {
            Some(env)
                if json
                    .as_ref()
                    .and_then(|v| v.get("verificationMaterial"))
                    .is_some() =>
            {
                let keyless = match crate::verify::evidence::from_bundle(&bytes, None) {
                    Ok(ev) if ev.certificates.is_empty() => None,
                    other => Some(other),
                };
                (Some(serde_json::to_vec(env)?), keyless)
            }
            _ => (
                json.as_ref()
                    .is_some_and(|v| v.get("payloadType").is_some())
                    .then(|| bytes.clone()),
                None,
            ),
        };
        if let Some(envelope) = envelope {
            match super::attestation::verify_signed(&envelope, keyless.as_ref(), &d, &signers) {
                Ok(v) => sources.push(VexSource {
                    origin,
                    signer: Some(v.signer),
                    untrusted_reason: None,
                    document: v.document,
                }),
                Err(
                    e @ (super::attestation::AttestationError::Untrusted
                    | super::attestation::AttestationError::UntrustedKeyless(_)),
                ) => sources.push(VexSource {
                    origin,
                    signer: None,
                    untrusted_reason: Some(super::registry::untrusted_reason(&e)),
                    document: super::attestation::read_unverified(&envelope, &d)
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
                &signers,
            ))
            .context("VEX attestations")?;
        sources.extend(found);
    }
    Ok(super::apply(report, &d, &sources))
}
