//! VEX attached to an image in its registry: cosign's attestation tag
//! `sha256-<hex>.att` (an OCI manifest whose layers are DSSE envelopes, media type
//! `application/vnd.dsse.envelope.v1+json`, each with a `predicateType` annotation), and
//! sigstore bundles (v0.3, `dsseEnvelope`) among the image's referrers (the OCI 1.1 API,
//! or the `sha256-<hex>` fallback index). Each attestation whose predicate is VEX
//! becomes a [`VexSource`]: trusted when a signature verifies with a key trusted for
//! VEX, or keylessly (the `.att` layer's `dev.sigstore.cosign/certificate`, `chain` and
//! `bundle` annotations; the bundle's `verificationMaterial`) as an identity trusted
//! for VEX; otherwise kept with the reason (so the report can say what was not applied).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::{Value, json};

use super::VexSource;
use super::attestation::{self, AttestationError, VEX_PREDICATE_TYPES};
use super::signers::VexSigners;
use crate::digest::Digest;
use crate::oci;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient, RegistryError};
use crate::verify::Rejection;
use crate::verify::evidence::{self, Evidence};

/// cosign's layer media type for an attestation.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The sigstore bundle artifact type (v0.3).
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Most attestation layers or referrers examined per image.
const MAX_ATTESTATIONS: usize = 32;

/// The VEX attestations attached to `digest`, verified with `signers`. A registry error is
/// returned (the caller decides, per `on_error`); malformed or untrusted attestations
/// are sources without a signer.
pub async fn attached_vex(
    client: &RegistryClient,
    reference: &Reference,
    digest: &Digest,
    creds: &Credentials,
    signers: &VexSigners,
) -> Result<Vec<VexSource>, RegistryError> {
    let mut out = Vec::new();
    let d = digest.to_string();
    let tag = format!("sha256-{}.att", digest.hex());
    if let Some(m) = client.manifest_by_tag(reference, &tag, creds).await? {
        let manifest = oci::parse_manifest(&m.bytes)
            .inspect_err(|e| tracing::warn!(image = %reference, tag = %tag, error = %e, "attestation manifest unreadable; its VEX not applied"))
            .ok();
        let layers = manifest.iter().flat_map(|m| m.layers());
        for layer in layers.take(MAX_ATTESTATIONS) {
            let annotations = layer.annotations().as_ref();
            let predicate = annotations
                .and_then(|a| a.get("predicateType"))
                .map(String::as_str);
            if layer.media_type().to_string() != DSSE_MEDIA_TYPE
                || !predicate.is_some_and(|p| VEX_PREDICATE_TYPES.contains(&p))
            {
                continue;
            }
            let Ok(ld) = oci::descriptor_digest("attestation layer", layer) else {
                continue;
            };
            let envelope = client.blob(reference, &ld, creds).await?;
            let keyless = layer_keyless(&envelope, annotations);
            out.extend(source(
                &envelope,
                keyless.as_ref(),
                &d,
                signers,
                format!("attestation {ld} ({tag})"),
            ));
        }
    }
    // Sigstore bundles among the referrers (API, else the fallback tag's index).
    let index = match client
        .referrers(reference, digest, Some(BUNDLE_ARTIFACT_TYPE), creds)
        .await?
    {
        Some(b) => Some(b),
        None => client
            .manifest_by_tag(reference, &format!("sha256-{}", digest.hex()), creds)
            .await?
            .map(|m| m.bytes),
    };
    let index = index.as_deref().and_then(|b| {
        oci::parse_index(b)
            .inspect_err(|e| tracing::warn!(image = %reference, error = %e, "referrers index unreadable; no sigstore bundle VEX applied"))
            .ok()
    });
    for m in index
        .iter()
        .flat_map(|i| i.manifests())
        .filter(|m| {
            m.artifact_type()
                .as_ref()
                .is_some_and(|t| t.to_string() == BUNDLE_ARTIFACT_TYPE)
        })
        .take(MAX_ATTESTATIONS)
    {
        let Ok(md) = oci::descriptor_digest("referrer", m) else {
            continue;
        };
        let manifest = client.manifest_by_digest(reference, &md, creds).await?;
        let Some(ld) = oci::parse_manifest(&manifest.bytes)
            .ok()
            .and_then(|m| m.layers().first().cloned())
            .and_then(|l| oci::descriptor_digest("bundle layer", &l).ok())
        else {
            continue;
        };
        let bundle = client.blob(reference, &ld, creds).await?;
        let Some(envelope) = bundle_envelope(&bundle) else {
            continue; // a message-signature bundle (an image signature), not an attestation
        };
        let keyless = match evidence::from_bundle(&bundle, None) {
            Ok(ev) if ev.certificates.is_empty() => None, // key-signed
            other => Some(other),
        };
        out.extend(source(
            &envelope,
            keyless.as_ref(),
            &d,
            signers,
            format!("sigstore bundle {md}"),
        ));
    }
    Ok(out)
}

/// The DSSE envelope of a sigstore bundle, as a standalone envelope document.
fn bundle_envelope(bundle: &[u8]) -> Option<Vec<u8>> {
    let b: Value = serde_json::from_slice(bundle).ok()?;
    let env = b.get("dsseEnvelope")?;
    serde_json::to_vec(env).ok()
}

/// The keyless material of an `.att` layer, from its `annotations`: `None` when it
/// carries no certificate annotation (a key-signed attestation). At most the first 64
/// annotations in name order are read.
fn layer_keyless(
    envelope: &[u8],
    annotations: Option<&HashMap<String, String>>,
) -> Option<Result<Evidence, Rejection>> {
    let sorted: BTreeMap<&String, &String> = annotations.into_iter().flatten().collect();
    let annotations: BTreeMap<String, String> = sorted
        .into_iter()
        .take(64)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations
        .get(evidence::ANN_CERTIFICATE)
        .is_some_and(|c| !c.is_empty())
        .then(|| evidence::from_dsse_layer(envelope, &annotations))
}

/// A source from one envelope: trusted when it verifies; a VEX document that does not
/// verify is kept untrusted with the reason; anything that is not VEX for this image
/// is dropped.
fn source(
    envelope: &[u8],
    keyless: Option<&Result<Evidence, Rejection>>,
    digest: &str,
    signers: &VexSigners,
    origin: String,
) -> Option<VexSource> {
    match attestation::verify_signed(envelope, keyless, digest, signers) {
        Ok(v) => Some(VexSource {
            origin,
            signer: Some(v.signer),
            untrusted_reason: None,
            document: v.document,
        }),
        Err(e @ (AttestationError::Untrusted | AttestationError::UntrustedKeyless(_))) => {
            let document = attestation::read_unverified(envelope, digest).ok()?;
            Some(VexSource {
                origin,
                signer: None,
                untrusted_reason: Some(untrusted_reason(&e)),
                document,
            })
        }
        Err(_) => None,
    }
}

/// The report's reason for an attestation that is not trusted.
pub(super) fn untrusted_reason(e: &AttestationError) -> String {
    match e {
        AttestationError::UntrustedKeyless(r) => {
            format!("attestation signed keylessly, not by a signer trusted for VEX: {r}")
        }
        _ => "attestation not signed by a signer trusted for VEX".into(),
    }
}

/// Attaches a DSSE `envelope` to `digest` as `cosign attest` does: appended as a layer
/// (with its `predicateType` annotation) to the `sha256-<hex>.att` manifest.
pub async fn push_attestation(
    client: &RegistryClient,
    reference: &Reference,
    digest: &Digest,
    envelope: &[u8],
    predicate_type: &str,
    creds: &Credentials,
) -> Result<Digest, RegistryError> {
    let annotations = serde_json::Map::new();
    push_attestation_annotated(
        client,
        reference,
        digest,
        envelope,
        predicate_type,
        &annotations,
        creds,
    )
    .await
}

/// [`push_attestation`] with more layer annotations, as `cosign attest` keyless adds
/// them (`dev.sigstore.cosign/certificate`, `…/chain`, `…/bundle`).
pub async fn push_attestation_annotated(
    client: &RegistryClient,
    reference: &Reference,
    digest: &Digest,
    envelope: &[u8],
    predicate_type: &str,
    annotations: &serde_json::Map<String, Value>,
    creds: &Credentials,
) -> Result<Digest, RegistryError> {
    let tag = format!("sha256-{}.att", digest.hex());
    let mut layers = match client.manifest_by_tag(reference, &tag, creds).await? {
        Some(m) => serde_json::from_slice::<Value>(&m.bytes)
            .ok()
            .and_then(|v| v.get("layers").cloned())
            .and_then(|l| l.as_array().cloned())
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let blob = Bytes::copy_from_slice(envelope);
    let ld = client.push_blob(reference, &blob, creds).await?;
    let mut annotations = annotations.clone();
    annotations.insert("predicateType".into(), predicate_type.into());
    layers.push(json!({
        "mediaType": DSSE_MEDIA_TYPE,
        "size": blob.len(),
        "digest": ld.to_string(),
        "annotations": annotations,
    }));
    let config = Bytes::from_static(b"{}");
    let cd = client.push_blob(reference, &config, creds).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": cd.to_string()},
        "layers": layers,
    });
    let body = Bytes::from(serde_json::to_vec(&manifest).unwrap_or_default());
    client
        .push_manifest(
            reference,
            &tag,
            "application/vnd.oci.image.manifest.v1+json",
            &body,
            creds,
        )
        .await
}
