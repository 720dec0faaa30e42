//! Publishing a scan attestation: the DSSE envelope is pushed as the one layer of an
//! OCI 1.1 artifact manifest (`artifactType` [`ARTIFACT_TYPE`], `subject` = the platform
//! manifest), with the pull's own credentials. Registries with the referrers API index
//! it by its subject; on the others the `sha256-<hex>` referrers fallback tag (an OCI
//! index, as the OCI distribution spec 1.1 describes) is updated. A failed publish is a
//! [`PublishError`] for the caller to log and count; it never touches a verdict.

use bytes::Bytes;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::attestation::{AttestError, ImageBinding, build_attestation};
use super::dsse::{self, DSSE_MEDIA_TYPE};
use super::keys::AttestationSigner;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{Credentials, OCI_INDEX, OCI_MANIFEST, RegistryClient, RegistryError};
use crate::scan::LayerResult;

/// `artifactType` of a scan attestation manifest (and of its referrers index entry).
pub const ARTIFACT_TYPE: &str = "application/vnd.pullwarden.scan.v1+json";
/// Annotation: the DSSE keyid of the signer (lets a publisher replace its own older
/// entry in the fallback index; never trusted for anything else).
pub const ANN_SIGNER: &str = "dev.pullwarden.scan.keyid";
/// Annotation: when the scan ran (RFC 3339; ordering hint only, the signed time rules).
pub const ANN_CREATED: &str = "org.opencontainers.image.created";
/// Annotation: the digest of the envelope (the manifest's one layer), so a consumer can
/// fetch the manifest and the envelope at once, from the referrers index alone. A hint
/// only: the envelope used is always the one the fetched manifest lists.
pub const ANN_ENVELOPE: &str = "dev.pullwarden.scan.envelope";
/// Annotation on the layer: the statement's predicate type (as cosign writes).
pub const ANN_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// A fallback index with more entries than this is not grown further: the consumers'
/// examination cap would hide new entries anyway, and the index would only grow.
pub const MAX_FALLBACK_ENTRIES: usize = 4096;
/// Read-modify-write rounds on the fallback index when another writer raced us.
const FALLBACK_ATTEMPTS: usize = 3;

/// Why an attestation was not published. Counted by [`PublishError::kind`].
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot attest this scan: {0}")]
    Attest(#[from] AttestError),
    #[error("{step}: {source}")]
    Registry {
        step: &'static str,
        #[source]
        source: RegistryError,
    },
    #[error(
        "referrers fallback tag {tag} already lists {entries} artifacts (limit {MAX_FALLBACK_ENTRIES})"
    )]
    IndexFull { tag: String, entries: usize },
    #[error("referrers fallback tag {tag} is not an OCI index: {reason}")]
    BadIndex { tag: String, reason: String },
    #[error("referrers fallback tag {tag} kept losing our entry to concurrent writers")]
    Raced { tag: String },
}

impl PublishError {
    /// A metric label: `refused` (401/403: no push right), `unavailable` (network,
    /// 5xx), `attest` (nothing publishable), `registry` (anything else the registry did).
    pub fn kind(&self) -> &'static str {
        match self {
            PublishError::Attest(_) => "attest",
            PublishError::Registry { source, .. } => match source {
                RegistryError::Unauthorized { .. } | RegistryError::Forbidden { .. } => "refused",
                e if e.is_outage() => "unavailable",
                _ => "registry",
            },
            PublishError::IndexFull { .. }
            | PublishError::BadIndex { .. }
            | PublishError::Raced { .. } => "registry",
        }
    }
}

/// Where an attestation went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The artifact manifest's digest.
    pub manifest: Digest,
    /// `referrers` (the registry indexes subjects) or `referrers-tag` (fallback tag).
    pub via: &'static str,
}

fn step(step: &'static str) -> impl Fn(RegistryError) -> PublishError {
    move |source| PublishError::Registry { step, source }
}

/// Signs the scan of `image` (its `results`, one per layer in order) and pushes it to
/// the repository of `reference` as a referrer of `image.manifest`.
pub async fn publish(
    client: &RegistryClient,
    reference: &Reference,
    creds: &Credentials,
    image: &ImageBinding,
    results: &[LayerResult],
    signer: &AttestationSigner,
    scanned_at: OffsetDateTime,
) -> Result<Published, PublishError> {
    let envelope = build_attestation(image, results, scanned_at, signer)?;
    let keyid = dsse::keyid_of(&signer.public);
    let created = scanned_at.format(&Rfc3339).unwrap_or_default();
    let subject = client
        .manifest_by_digest(
            &reference.with_digest(image.manifest.clone()),
            &image.manifest,
            creds,
        )
        .await
        .map_err(step("reading the subject manifest"))?;
    let empty = Bytes::from_static(b"{}");
    let empty_digest = client
        .push_blob(reference, &empty, creds)
        .await
        .map_err(step("pushing the empty config"))?;
    let envelope = Bytes::from(envelope);
    let envelope_digest = client
        .push_blob(reference, &envelope, creds)
        .await
        .map_err(step("pushing the attestation envelope"))?;
    let manifest = Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": empty_digest.to_string(), "size": 2 },
            "layers": [{
                "mediaType": DSSE_MEDIA_TYPE,
                "digest": envelope_digest.to_string(),
                "size": envelope.len(),
                "annotations": { ANN_PREDICATE_TYPE: super::attestation::PREDICATE_TYPE },
            }],
            "subject": {
                "mediaType": subject.media_type,
                "digest": image.manifest.to_string(),
                "size": subject.bytes.len(),
            },
            "annotations": {
                ANN_SIGNER: keyid,
                ANN_CREATED: created,
                ANN_ENVELOPE: envelope_digest.to_string(),
            },
        }))
        .unwrap_or_default(),
    );
    let manifest_digest = Digest::sha256_of(&manifest);
    client
        .push_manifest(
            reference,
            &manifest_digest.to_string(),
            OCI_MANIFEST,
            &manifest,
            creds,
        )
        .await
        .map_err(step("pushing the attestation manifest"))?;
    let has_api = client
        .referrers(reference, &image.manifest, Some(ARTIFACT_TYPE), creds)
        .await
        .map_err(step("asking for the referrers API"))?
        .is_some();
    if has_api {
        return Ok(Published {
            manifest: manifest_digest,
            via: "referrers",
        });
    }
    let entry = json!({
        "mediaType": OCI_MANIFEST,
        "digest": manifest_digest.to_string(),
        "size": manifest.len(),
        "artifactType": ARTIFACT_TYPE,
        "annotations": {
            ANN_SIGNER: keyid,
            ANN_CREATED: created,
            ANN_ENVELOPE: envelope_digest.to_string(),
        },
    });
    add_to_fallback_index(client, reference, &image.manifest, &entry, &keyid, creds).await?;
    Ok(Published {
        manifest: manifest_digest,
        via: "referrers-tag",
    })
}

/// Adds `entry` to the `sha256-<hex>` index of `subject`, dropping this signer's older
/// scan attestations (one per signer is enough), and checks that it stuck: the tag is
/// read-modify-written, so a concurrent writer can drop our entry; then we try again.
async fn add_to_fallback_index(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    entry: &serde_json::Value,
    keyid: &str,
    creds: &Credentials,
) -> Result<(), PublishError> {
    let tag = subject.tag_form();
    let ours = entry["digest"].clone();
    for _ in 0..FALLBACK_ATTEMPTS {
        let existing = read_fallback(client, reference, &tag, creds).await?;
        if existing.iter().any(|m| m["digest"] == ours) {
            return Ok(());
        }
        let mut manifests: Vec<serde_json::Value> = existing
            .into_iter()
            .filter(|m| {
                !(m["artifactType"] == ARTIFACT_TYPE && m["annotations"][ANN_SIGNER] == keyid)
            })
            .collect();
        if manifests.len() >= MAX_FALLBACK_ENTRIES {
            return Err(PublishError::IndexFull {
                tag,
                entries: manifests.len(),
            });
        }
        manifests.push(entry.clone());
        let index = Bytes::from(
            serde_json::to_vec(
                &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }),
            )
            .unwrap_or_default(),
        );
        client
            .push_manifest(reference, &tag, OCI_INDEX, &index, creds)
            .await
            .map_err(step("updating the referrers fallback tag"))?;
        let after = read_fallback(client, reference, &tag, creds).await?;
        if after.iter().any(|m| m["digest"] == ours) {
            return Ok(());
        }
    }
    Err(PublishError::Raced { tag })
}

async fn read_fallback(
    client: &RegistryClient,
    reference: &Reference,
    tag: &str,
    creds: &Credentials,
) -> Result<Vec<serde_json::Value>, PublishError> {
    let Some(m) = client
        .manifest_by_tag(reference, tag, creds)
        .await
        .map_err(step("reading the referrers fallback tag"))?
    else {
        return Ok(Vec::new());
    };
    let bad = |reason: &str| PublishError::BadIndex {
        tag: tag.to_string(),
        reason: reason.to_string(),
    };
    if m.media_type != OCI_INDEX {
        return Err(bad(&format!("it holds a {}", m.media_type)));
    }
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).map_err(|_| bad("not JSON"))?;
    match v.get("manifests") {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => Ok(a.clone()),
        Some(_) => Err(bad("manifests is not a list")),
    }
}
