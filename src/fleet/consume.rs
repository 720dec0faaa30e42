//! Consuming scan attestations: the referrers of the platform manifest (the OCI 1.1
//! referrers API, else the `sha256-<hex>` fallback tag) are searched for scan
//! attestation artifacts, newest first, at most [`ConsumeLimits::max_examined`] of them;
//! the first that [`verify_attestation`] accepts replaces the layer scan. Every artifact
//! passed over yields an [`Ignored`] with its reason, for the caller to log.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::attestation::{
    ImageBinding, MAX_ENVELOPE_BYTES, Rejection, Verified, verify_attestation,
};
use super::dsse::DSSE_MEDIA_TYPE;
use super::publish::{ANN_CREATED, ARTIFACT_TYPE};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient, RegistryError};
use crate::verify::keys::TrustedKey;

/// Caps on what one lookup examines.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeLimits {
    /// Envelope bytes at most (also capped by `[registry] max_blob_bytes`).
    pub max_envelope_bytes: usize,
    /// Scan attestation artifacts fetched and checked at most; the rest are reported
    /// as not examined.
    pub max_examined: usize,
}

impl Default for ConsumeLimits {
    fn default() -> Self {
        ConsumeLimits {
            max_envelope_bytes: MAX_ENVELOPE_BYTES,
            max_examined: crate::config::DEFAULT_MAX_EXAMINED,
        }
    }
}

/// What the trust side needs: the keys whose attestations count and how old they may be.
#[derive(Debug, Clone)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
    pub max_age: Duration,
}

/// Why an artifact among the referrers did not replace the scan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreReason {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("not a scan attestation artifact: {0}")]
    NotAnAttestation(String),
    #[error("envelope is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: u64, limit: usize },
    #[error("cannot fetch it: {0}")]
    Fetch(String),
    #[error("referrers index {0}")]
    BadIndex(String),
    #[error("{count} more scan attestations not examined (limit {limit})")]
    NotExamined { count: usize, limit: usize },
}

impl IgnoreReason {
    /// A metric label (`pullwarden_fleet_attestations_ignored_total{reason}`): `forged`
    /// (the signature does not verify or does not fit its key), `untrusted`, `stale`,
    /// `future`, `mismatched` (another analyzer set or scan config), `foreign` (about
    /// another subject, image or layers), `malformed`, `too_large`, `unfetchable`,
    /// `not_examined` (past `max_examined`).
    pub fn label(&self) -> &'static str {
        match self {
            IgnoreReason::Rejected(r) => match r {
                Rejection::BadSignature { .. } | Rejection::KeyTypeMismatch { .. } => "forged",
                Rejection::UntrustedKey { .. } => "untrusted",
                Rejection::Stale { .. } => "stale",
                Rejection::FromFuture(_) => "future",
                Rejection::AnalyzerVersion { .. } | Rejection::ScanConfig { .. } => "mismatched",
                Rejection::OtherSubject { .. }
                | Rejection::OtherImage { .. }
                | Rejection::LayerCount { .. }
                | Rejection::OtherLayer { .. } => "foreign",
                Rejection::Envelope(_) | Rejection::BadTime(_) => "malformed",
            },
            IgnoreReason::NotAnAttestation(_) | IgnoreReason::BadIndex(_) => "malformed",
            IgnoreReason::TooLarge { .. } => "too_large",
            IgnoreReason::Fetch(_) => "unfetchable",
            IgnoreReason::NotExamined { .. } => "not_examined",
        }
    }

    /// How many attestations this reason stands for (`NotExamined` covers several).
    pub fn count(&self) -> u64 {
        match self {
            IgnoreReason::NotExamined { count, .. } => *count as u64,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The artifact manifest, when the reason is about one.
    pub artifact: Option<Digest>,
    pub reason: IgnoreReason,
}

/// An attestation that replaces the scan.
#[derive(Debug, Clone)]
pub struct Attested {
    pub artifact: Digest,
    pub verified: Verified,
}

/// The outcome of a lookup.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub attested: Option<Attested>,
    pub ignored: Vec<Ignored>,
    /// Scan attestation artifacts listed for the digest (before the cap).
    pub listed: usize,
}

/// Where a verdict's scan came from: `explain --json`'s `scan_source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSource {
    /// `local` or `attested`.
    pub kind: String,
    /// The trusted key's name, for `attested`.
    #[serde(default)]
    pub signer: Option<String>,
    /// When the attesting node scanned (RFC 3339), for `attested`.
    #[serde(default)]
    pub attested_at: Option<String>,
}

impl ScanSource {
    pub fn local() -> ScanSource {
        ScanSource {
            kind: "local".into(),
            signer: None,
            attested_at: None,
        }
    }
}

impl Attested {
    pub fn scan_source(&self) -> ScanSource {
        ScanSource {
            kind: "attested".into(),
            signer: Some(self.verified.signer.clone()),
            attested_at: Some(
                self.verified
                    .scanned_at
                    .format(&Rfc3339)
                    .unwrap_or_default(),
            ),
        }
    }
}

#[derive(Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactManifest {
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
}

/// A reason without the registry's URL (stable across registries).
fn fetch_reason(e: &RegistryError) -> String {
    match e {
        RegistryError::TooLarge { limit, .. } => format!("larger than the {limit}-byte limit"),
        RegistryError::Malformed { reason, .. } => format!("malformed: {reason}"),
        RegistryError::DigestMismatch { actual, .. } => {
            format!("content does not match its digest (got {actual})")
        }
        RegistryError::NotFound { .. } => "missing from the registry".into(),
        other => other.to_string(),
    }
}

/// Looks for a scan attestation of `image.manifest` in the repository of `reference`
/// that `trust` accepts. `Err` only when the registry could not be asked at all (an
/// outage, a refusal): the caller scans locally. `now`: our clock.
pub async fn consume(
    client: &RegistryClient,
    reference: &Reference,
    creds: &Credentials,
    image: &ImageBinding,
    trust: &Trust,
    limits: ConsumeLimits,
    now: OffsetDateTime,
) -> Result<Lookup, RegistryError> {
    let subject = &image.manifest;
    let tag = subject.tag_form();
    let (api, fallback) = futures::join!(
        client.referrers(reference, subject, Some(ARTIFACT_TYPE), creds),
        client.manifest_by_tag(reference, &tag, creds)
    );
    let index = match api {
        Ok(Some(b)) => b,
        Ok(None) => match fallback {
            Ok(Some(m)) => m.bytes,
            Ok(None) => return Ok(Lookup::default()),
            Err(e) if e.is_bad_content() => {
                return Ok(Lookup {
                    ignored: vec![Ignored {
                        artifact: None,
                        reason: IgnoreReason::BadIndex(fetch_reason(&e)),
                    }],
                    ..Lookup::default()
                });
            }
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let mut lookup = Lookup::default();
    let Ok(parsed) = serde_json::from_slice::<IndexJson>(&index) else {
        lookup.ignored.push(Ignored {
            artifact: None,
            reason: IgnoreReason::BadIndex("is not an OCI index".into()),
        });
        return Ok(lookup);
    };
    // Newest first: by the (unsigned, ordering-only) creation annotation, then by
    // position (writers append).
    let mut candidates: Vec<(usize, Descriptor)> = parsed
        .manifests
        .into_iter()
        .enumerate()
        .filter(|(_, d)| d.artifact_type.as_deref() == Some(ARTIFACT_TYPE))
        .collect();
    candidates.sort_by(|(ia, a), (ib, b)| {
        let ca = a.annotations.get(ANN_CREATED);
        let cb = b.annotations.get(ANN_CREATED);
        cb.cmp(&ca).then(ib.cmp(ia))
    });
    lookup.listed = candidates.len();
    if candidates.len() > limits.max_examined {
        lookup.ignored.push(Ignored {
            artifact: None,
            reason: IgnoreReason::NotExamined {
                count: candidates.len() - limits.max_examined,
                limit: limits.max_examined,
            },
        });
        candidates.truncate(limits.max_examined);
    }
    for (_, d) in candidates {
        let Ok(artifact) = d.digest.parse::<Digest>() else {
            lookup.ignored.push(Ignored {
                artifact: None,
                reason: IgnoreReason::BadIndex(format!(
                    "lists an invalid digest {:?}",
                    d.digest.chars().take(80).collect::<String>()
                )),
            });
            continue;
        };
        match examine(
            client, reference, creds, image, trust, limits, now, &artifact,
        )
        .await?
        {
            Ok(verified) => {
                lookup.attested = Some(Attested { artifact, verified });
                break;
            }
            Err(reason) => lookup.ignored.push(Ignored {
                artifact: Some(artifact),
                reason,
            }),
        }
    }
    Ok(lookup)
}

/// One artifact: manifest, envelope, checks. The outer `Err` is an outage.
#[allow(clippy::too_many_arguments)]
async fn examine(
    client: &RegistryClient,
    reference: &Reference,
    creds: &Credentials,
    image: &ImageBinding,
    trust: &Trust,
    limits: ConsumeLimits,
    now: OffsetDateTime,
    artifact: &Digest,
) -> Result<Result<Verified, IgnoreReason>, RegistryError> {
    let fetch_failed = |e: RegistryError| -> Result<IgnoreReason, RegistryError> {
        if e.is_outage() {
            Err(e)
        } else {
            Ok(IgnoreReason::Fetch(fetch_reason(&e)))
        }
    };
    let m = match client
        .manifest_by_digest(&reference.with_digest(artifact.clone()), artifact, creds)
        .await
    {
        Ok(m) => m,
        Err(e) => return Ok(Err(fetch_failed(e)?)),
    };
    let not = |why: String| Ok(Err(IgnoreReason::NotAnAttestation(why)));
    let Ok(doc) = serde_json::from_slice::<ArtifactManifest>(&m.bytes) else {
        return not("manifest does not parse".into());
    };
    if doc.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
        return not("manifest artifactType differs".into());
    }
    match &doc.subject {
        Some(s) if image.manifest == s.digest => {}
        Some(s) => {
            return Ok(Err(IgnoreReason::Rejected(Rejection::OtherSubject {
                claimed: s.digest.chars().take(80).collect(),
                expected: image.manifest.clone(),
            })));
        }
        None => return not("manifest has no subject".into()),
    }
    let [layer] = doc.layers.as_slice() else {
        return not(format!("{} layers, one expected", doc.layers.len()));
    };
    if layer.media_type != DSSE_MEDIA_TYPE {
        return not(format!(
            "layer media type {:?}",
            layer.media_type.chars().take(80).collect::<String>()
        ));
    }
    let limit = limits.max_envelope_bytes.min(MAX_ENVELOPE_BYTES);
    if layer.size > limit as u64 {
        return Ok(Err(IgnoreReason::TooLarge {
            size: layer.size,
            limit,
        }));
    }
    let Ok(blob_digest) = layer.digest.parse::<Digest>() else {
        return not("layer digest is invalid".into());
    };
    let envelope = match client.blob(reference, &blob_digest, creds).await {
        Ok(b) => b,
        Err(e) => return Ok(Err(fetch_failed(e)?)),
    };
    Ok(
        verify_attestation(&envelope, limit, &trust.keys, image, trust.max_age, now)
            .map_err(IgnoreReason::Rejected),
    )
}
