//! Finds the signatures attached to one manifest digest: the OCI 1.1 referrers API
//! (or, where the registry lacks it, the `sha256-<hex>` fallback tag index) for
//! sigstore bundles, and the legacy cosign `sha256-<hex>.sig` tag. Network failures
//! are errors; bad content is a finding with a reason, so one hostile artifact cannot
//! hide the valid signatures next to it.

use crate::verify::Rejection;
use std::collections::BTreeMap;

use bytes::Bytes;

use super::evidence::{self, BUNDLE_MEDIA_PREFIX, Evidence};
use super::payload::SIMPLE_SIGNING_MEDIA_TYPE;
use crate::digest::Digest;
use crate::oci::{self, Descriptor};
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient, RegistryError};

/// Signatures examined per location at most: layers of a legacy `.sig` manifest (cosign
/// appends one per signing, so a busy image's grows without end) and bundle artifacts
/// among the referrers (a hostile index can list millions). Past the cap the rest is
/// reported as not examined — never silently dropped — and counts for nothing, so an
/// image whose only valid signature lies beyond it is denied with that reason.
pub const MAX_SIGNATURES: usize = 1024;
/// Signature content (payloads, bundles) fetched per location at most, in bytes; past it
/// the rest is reported as not examined, like the count cap.
pub const MAX_SIGNATURE_BYTES: usize = 32 << 20;
/// Fetches in flight per location.
const FETCH_BATCH: usize = 16;
/// Layers looked at in one bundle manifest (a bundle and perhaps a payload).
pub const MAX_LAYERS: usize = 16;

pub const SOURCE_REFERRERS: &str = "referrers";
pub const SOURCE_REFERRERS_TAG: &str = "referrers-tag";
pub const SOURCE_LEGACY: &str = "legacy-tag";

/// A signature found somewhere, parsed or not.
#[derive(Debug, Clone)]
pub struct Found {
    pub subject: Digest,
    pub source: &'static str,
    /// Digest of the signature manifest, layer or bundle.
    pub artifact: Option<String>,
    pub evidence: Result<Evidence, Rejection>,
}

/// Turns a registry error on an artifact into a finding (bad content) or passes it up
/// (infrastructure).
fn content_or_fail(e: RegistryError) -> Result<String, RegistryError> {
    if e.is_bad_content() || matches!(e, RegistryError::NotFound { .. }) {
        Ok(reason_of(&e))
    } else {
        Err(e)
    }
}

/// A stable, URL-free reason for a content error.
fn reason_of(e: &RegistryError) -> String {
    match e {
        RegistryError::TooLarge { limit, .. } => format!("larger than the {limit}-byte limit"),
        RegistryError::Malformed { reason, .. } => format!("malformed: {reason}"),
        RegistryError::DigestMismatch { actual, .. } => {
            format!("content does not match its digest (got {actual})")
        }
        RegistryError::NotFound { .. } => "referenced content is missing from the registry".into(),
        other => other.to_string(),
    }
}

pub async fn discover(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    creds: &Credentials,
) -> Result<Vec<Found>, RegistryError> {
    let (bundles, legacy) = futures::join!(
        discover_bundles(client, reference, subject, creds),
        discover_legacy(client, reference, subject, creds)
    );
    let mut out = bundles?;
    out.extend(legacy?);
    Ok(out)
}

async fn discover_bundles(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    creds: &Credentials,
) -> Result<Vec<Found>, RegistryError> {
    let found = |source, artifact: Option<String>, evidence| Found {
        subject: subject.clone(),
        source,
        artifact,
        evidence,
    };
    // Both asked at once (one round trip instead of two on registries without the
    // API); the tag only counts when the API is absent.
    let tag = subject.tag_form();
    let (api, fallback) = futures::join!(
        client.referrers(reference, subject, None, creds),
        client.manifest_by_tag(reference, &tag, creds)
    );
    let (source, index) = match api {
        Ok(Some(b)) => (SOURCE_REFERRERS, b),
        Ok(None) => match fallback {
            Ok(Some(m)) => (SOURCE_REFERRERS_TAG, m.bytes),
            Ok(None) => return Ok(Vec::new()),
            Err(e) => {
                let reason = content_or_fail(e)?;
                return Ok(vec![found(
                    SOURCE_REFERRERS_TAG,
                    None,
                    Err(Rejection::Evidence(format!("referrers index {reason}"))),
                )]);
            }
        },
        Err(e) => {
            let reason = content_or_fail(e)?;
            return Ok(vec![found(
                SOURCE_REFERRERS,
                None,
                Err(Rejection::Evidence(format!("referrers index {reason}"))),
            )]);
        }
    };
    let index = match oci::parse_index(&index) {
        Ok(i) => i,
        Err(_) => {
            return Ok(vec![found(
                source,
                None,
                Err(Rejection::Evidence(
                    "referrers index is not an OCI index".into(),
                )),
            )]);
        }
    };
    let bundles: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| {
            d.artifact_type()
                .as_ref()
                .is_some_and(|t| t.as_ref().starts_with(BUNDLE_MEDIA_PREFIX))
        })
        .collect();
    let (mut out, examined) = examine(&bundles, |desc| async move {
        let ev = bundle_artifact(client, reference, subject, desc, creds).await?;
        let size = ev.as_ref().map(evidence_bytes).unwrap_or(0);
        Ok((found(source, Some(desc.digest().to_string()), ev), size))
    })
    .await?;
    if let Some(reason) = not_examined(bundles.len(), examined, "signature bundles") {
        out.push(found(source, None, Err(Rejection::Evidence(reason))));
    }
    Ok(out)
}

/// Runs `fetch` over `items` in order, `FETCH_BATCH` at a time, until all are done, the
/// count cap or the byte budget is reached. Returns the findings and how many items
/// were examined.
async fn examine<'a, T, F, Fut>(
    items: &'a [T],
    fetch: F,
) -> Result<(Vec<Found>, usize), RegistryError>
where
    F: Fn(&'a T) -> Fut,
    Fut: std::future::Future<Output = Result<(Found, usize), RegistryError>>,
{
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let capped = &items[..items.len().min(MAX_SIGNATURES)];
    for chunk in capped.chunks(FETCH_BATCH) {
        if bytes > MAX_SIGNATURE_BYTES {
            break;
        }
        for r in futures::future::join_all(chunk.iter().map(&fetch)).await {
            let (f, size) = r?;
            bytes = bytes.saturating_add(size);
            out.push(f);
        }
    }
    let examined = out.len();
    Ok((out, examined))
}

/// The reason reported when not every signature of a location was examined.
fn not_examined(total: usize, examined: usize, what: &str) -> Option<String> {
    (examined < total).then(|| {
        format!(
            "{total} {what} found; only the first {examined} were examined (at most {MAX_SIGNATURES} and {MAX_SIGNATURE_BYTES} bytes per location): the rest count for nothing"
        )
    })
}

/// What a signature weighs against the byte budget.
fn evidence_bytes(ev: &Evidence) -> usize {
    ev.payload.len() + ev.signature.len() + ev.certificates.iter().map(Vec::len).sum::<usize>()
}

async fn bundle_artifact(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    desc: &Descriptor,
    creds: &Credentials,
) -> Result<Result<Evidence, Rejection>, RegistryError> {
    let Ok(digest) = oci::descriptor_digest("bundle descriptor", desc) else {
        return Ok(Err(Rejection::Evidence(
            "descriptor has an invalid digest".into(),
        )));
    };
    let manifest = match client.manifest_by_digest(reference, &digest, creds).await {
        Ok(m) => m,
        Err(e) => {
            return Ok(Err(Rejection::Evidence(format!(
                "bundle manifest {}",
                content_or_fail(e)?
            ))));
        }
    };
    let Ok(m) = oci::parse_manifest(&manifest.bytes) else {
        return Ok(Err(Rejection::Evidence(
            "bundle manifest is not an OCI manifest".into(),
        )));
    };
    // The manifest must say it belongs to this digest: an index entry alone is only the
    // registry's word (and the fallback tag is writable by anyone who can push).
    match m.subject() {
        Some(s) if *subject == s.digest().as_ref() => {}
        Some(s) => {
            return Ok(Err(Rejection::Evidence(format!(
                "bundle manifest's subject is {}, not {subject}",
                s.digest().as_ref().chars().take(80).collect::<String>()
            ))));
        }
        None => {
            return Ok(Err(Rejection::Evidence(
                "bundle manifest has no subject".into(),
            )));
        }
    }
    let layers = m.layers().iter().take(MAX_LAYERS);
    let bundle_layer = layers
        .clone()
        .find(|l| l.media_type().as_ref().starts_with(BUNDLE_MEDIA_PREFIX));
    let payload_layer = layers
        .clone()
        .find(|l| l.media_type().as_ref() == SIMPLE_SIGNING_MEDIA_TYPE);
    let Some(bundle_layer) = bundle_layer else {
        return Ok(Err(Rejection::Evidence(
            "bundle manifest has no sigstore bundle layer".into(),
        )));
    };
    let fetch = |layer: &Descriptor| {
        let digest = oci::descriptor_digest("bundle layer", layer);
        async move {
            let Ok(d) = digest else {
                return Ok(Err(Rejection::Evidence(
                    "bundle layer has an invalid digest".into(),
                )));
            };
            match client.blob(reference, &d, creds).await {
                Ok(b) => Ok(Ok(b)),
                Err(e) => Ok(Err(Rejection::Evidence(format!(
                    "bundle layer {}",
                    content_or_fail(e)?
                )))),
            }
        }
    };
    let (bundle, payload) = futures::join!(fetch(bundle_layer), async {
        match payload_layer {
            Some(l) => fetch(l).await.map(Some),
            None => Ok(None),
        }
    });
    let bundle: Bytes = match bundle? {
        Ok(b) => b,
        Err(reason) => return Ok(Err(reason)),
    };
    let payload = match payload? {
        None => None,
        Some(Ok(p)) => Some(p.to_vec()),
        Some(Err(reason)) => return Ok(Err(reason)),
    };
    Ok(evidence::from_bundle(&bundle, payload))
}

async fn discover_legacy(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    creds: &Credentials,
) -> Result<Vec<Found>, RegistryError> {
    let tag = format!("{}.sig", subject.tag_form());
    let found = |artifact: Option<String>, evidence| Found {
        subject: subject.clone(),
        source: SOURCE_LEGACY,
        artifact,
        evidence,
    };
    let manifest = match client.manifest_by_tag(reference, &tag, creds).await {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => {
            let reason = content_or_fail(e)?;
            return Ok(vec![found(
                None,
                Err(Rejection::Evidence(format!("signature manifest {reason}"))),
            )]);
        }
    };
    let Ok(m) = oci::parse_manifest(&manifest.bytes) else {
        return Ok(vec![found(
            Some(manifest.digest.to_string()),
            Err(Rejection::Evidence(
                "signature manifest is not an OCI manifest".into(),
            )),
        )]);
    };
    let layers: Vec<&Descriptor> = m
        .layers()
        .iter()
        .filter(|l| l.media_type().as_ref() == SIMPLE_SIGNING_MEDIA_TYPE)
        .collect();
    let (mut out, examined) = examine(&layers, |layer| async move {
        let artifact = Some(layer.digest().to_string());
        let Ok(d) = oci::descriptor_digest("signature layer", layer) else {
            let ev = Err(Rejection::Evidence(
                "signature layer has an invalid digest".into(),
            ));
            return Ok((found(artifact, ev), 0));
        };
        match client.blob(reference, &d, creds).await {
            Ok(payload) => {
                let size = payload.len();
                let annotations: BTreeMap<String, String> = layer
                    .annotations()
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let ev = evidence::from_legacy_layer(payload.to_vec(), &annotations);
                Ok((found(artifact, ev), size))
            }
            Err(e) => {
                let ev = Err(Rejection::Evidence(format!(
                    "signature layer {}",
                    content_or_fail(e)?
                )));
                Ok((found(artifact, ev), 0))
            }
        }
    })
    .await?;
    if let Some(reason) = not_examined(layers.len(), examined, "signature layers") {
        out.push(found(
            Some(manifest.digest.to_string()),
            Err(Rejection::Evidence(reason)),
        ));
    }
    if out.is_empty() {
        out.push(found(
            Some(manifest.digest.to_string()),
            Err(Rejection::Evidence(
                "signature manifest has no simple-signing layers".into(),
            )),
        ));
    }
    Ok(out)
}
