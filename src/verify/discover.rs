//! Finds the signatures attached to one manifest digest: the OCI 1.1 referrers API
//! (or, where the registry lacks it, the `sha256-<hex>` fallback tag index) for
//! sigstore bundles, and the legacy cosign `sha256-<hex>.sig` tag. Network failures
//! are errors; bad content is a finding with a reason, so one hostile artifact cannot
//! hide the valid signatures next to it.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;

use super::evidence::{self, BUNDLE_MEDIA_PREFIX, Evidence};
use super::payload::SIMPLE_SIGNING_MEDIA_TYPE;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient, RegistryError};

/// Signature artifacts examined per location at most (a hostile index can list millions).
pub const MAX_ARTIFACTS: usize = 16;
/// Layers examined per signature manifest at most.
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
    pub evidence: Result<Evidence, String>,
}

#[derive(Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ManifestJson {
    #[serde(default)]
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
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
                    Err(format!("referrers index {reason}")),
                )]);
            }
        },
        Err(e) => {
            let reason = content_or_fail(e)?;
            return Ok(vec![found(
                SOURCE_REFERRERS,
                None,
                Err(format!("referrers index {reason}")),
            )]);
        }
    };
    let index: IndexJson = match serde_json::from_slice(&index) {
        Ok(i) => i,
        Err(_) => {
            return Ok(vec![found(
                source,
                None,
                Err("referrers index is not an OCI index".into()),
            )]);
        }
    };
    let bundles: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| {
            d.artifact_type
                .as_deref()
                .is_some_and(|t| t.starts_with(BUNDLE_MEDIA_PREFIX))
        })
        .take(MAX_ARTIFACTS)
        .collect();
    let results = futures::future::join_all(
        bundles
            .iter()
            .map(|desc| bundle_artifact(client, reference, subject, desc, creds)),
    )
    .await;
    let mut out = Vec::with_capacity(bundles.len());
    for (desc, evidence) in bundles.iter().zip(results) {
        out.push(found(source, Some(desc.digest.clone()), evidence?));
    }
    Ok(out)
}

async fn bundle_artifact(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    desc: &Descriptor,
    creds: &Credentials,
) -> Result<Result<Evidence, String>, RegistryError> {
    let Ok(digest) = desc.digest.parse::<Digest>() else {
        return Ok(Err("descriptor has an invalid digest".into()));
    };
    let manifest = match client.manifest_by_digest(reference, &digest, creds).await {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("bundle manifest {}", content_or_fail(e)?))),
    };
    let Ok(m) = serde_json::from_slice::<ManifestJson>(&manifest.bytes) else {
        return Ok(Err("bundle manifest is not an OCI manifest".into()));
    };
    // The manifest must say it belongs to this digest: an index entry alone is only the
    // registry's word (and the fallback tag is writable by anyone who can push).
    match &m.subject {
        Some(s) if s.digest == subject.to_string() => {}
        Some(s) => {
            return Ok(Err(format!(
                "bundle manifest's subject is {}, not {subject}",
                s.digest.chars().take(80).collect::<String>()
            )));
        }
        None => return Ok(Err("bundle manifest has no subject".into())),
    }
    let layers = m.layers.iter().take(MAX_LAYERS);
    let bundle_layer = layers
        .clone()
        .find(|l| l.media_type.starts_with(BUNDLE_MEDIA_PREFIX));
    let payload_layer = layers
        .clone()
        .find(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE);
    let Some(bundle_layer) = bundle_layer else {
        return Ok(Err("bundle manifest has no sigstore bundle layer".into()));
    };
    let fetch = |layer: &Descriptor| {
        let digest = layer.digest.parse::<Digest>();
        async move {
            let Ok(d) = digest else {
                return Ok(Err("bundle layer has an invalid digest".to_string()));
            };
            match client.blob(reference, &d, creds).await {
                Ok(b) => Ok(Ok(b)),
                Err(e) => Ok(Err(format!("bundle layer {}", content_or_fail(e)?))),
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
                Err(format!("signature manifest {reason}")),
            )]);
        }
    };
    let Ok(m) = serde_json::from_slice::<ManifestJson>(&manifest.bytes) else {
        return Ok(vec![found(
            Some(manifest.digest.to_string()),
            Err("signature manifest is not an OCI manifest".into()),
        )]);
    };
    let layers: Vec<&Descriptor> = m
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .take(MAX_LAYERS)
        .collect();
    let results = futures::future::join_all(layers.iter().map(|layer| async move {
        let Ok(d) = layer.digest.parse::<Digest>() else {
            return Ok(Err("signature layer has an invalid digest".to_string()));
        };
        match client.blob(reference, &d, creds).await {
            Ok(payload) => Ok(evidence::from_legacy_layer(
                payload.to_vec(),
                &layer.annotations,
            )),
            Err(e) => Ok(Err(format!("signature layer {}", content_or_fail(e)?))),
        }
    }))
    .await;
    let mut out = Vec::with_capacity(layers.len());
    for (layer, evidence) in layers.iter().zip(results) {
        out.push(found(Some(layer.digest.clone()), evidence?));
    }
    if out.is_empty() {
        out.push(found(
            Some(manifest.digest.to_string()),
            Err("signature manifest has no simple-signing layers".into()),
        ));
    }
    Ok(out)
}
