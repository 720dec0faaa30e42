//! Consuming scan attestations: the referrers of the platform manifest (the OCI 1.1
//! referrers API, else the `sha256-<hex>` fallback tag) are searched for scan
//! attestation artifacts, newest first, at most [`ConsumeLimits::max_examined`] of them;
//! the first that [`verify_attestation`] accepts replaces the layer scan. Every artifact
//! passed over yields an [`Ignored`] with its reason, for the caller to log.

use std::time::Duration;

use bytes::Bytes;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::attestation::{
    ImageBinding, MAX_ENVELOPE_BYTES, Rejection, Verified, verify_attestation,
};
use super::dsse::DSSE_MEDIA_TYPE;
use super::publish::{ANN_CREATED, ANN_ENVELOPE, ARTIFACT_TYPE};
use crate::digest::Digest;
use crate::oci::{self, Descriptor};
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
    let fetched = prefetch(client, reference, creds, &image.manifest, limits).await?;
    finish(fetched, client, reference, creds, image, trust, limits, now).await
}

/// The registry half of a lookup, fetched before the pulled image is known (the gate
/// starts it while containerd pulls, so its round trips overlap the pull): the
/// referrers listing of a platform manifest and the newest candidate's envelope.
/// [`finish`] checks it against the image.
#[derive(Debug)]
pub struct Prefetched {
    /// The platform manifest the listing is about.
    pub subject: Digest,
    /// `listed` and what the listing itself ruled out.
    lookup: Lookup,
    /// Candidates newest first, at most `max_examined`; the first one fetched.
    candidates: Vec<Candidate>,
    first: Option<Result<Bytes, IgnoreReason>>,
}

#[derive(Debug)]
struct Candidate {
    artifact: Digest,
    /// The envelope digest the index entry names (a hint, see [`ANN_ENVELOPE`]).
    envelope_hint: Option<Digest>,
}

/// Lists the scan attestations of `subject` (the referrers API and the fallback tag,
/// asked at once) and fetches the newest one's manifest and envelope (at once when the
/// index entry names the envelope): two sequential round trips for the usual lookup.
/// `Err` only for an outage or a refusal.
pub async fn prefetch(
    client: &RegistryClient,
    reference: &Reference,
    creds: &Credentials,
    subject: &Digest,
    limits: ConsumeLimits,
) -> Result<Prefetched, RegistryError> {
    let mut fetched = Prefetched {
        subject: subject.clone(),
        lookup: Lookup::default(),
        candidates: Vec::new(),
        first: None,
    };
    let tag = subject.tag_form();
    let (api, fallback) = futures::join!(
        client.referrers(reference, subject, Some(ARTIFACT_TYPE), creds),
        client.manifest_by_tag(reference, &tag, creds)
    );
    let index = match api {
        Ok(Some(b)) => b,
        Ok(None) => match fallback {
            Ok(Some(m)) => m.bytes,
            Ok(None) => return Ok(fetched),
            Err(e) if e.is_bad_content() => {
                fetched.lookup.ignored.push(Ignored {
                    artifact: None,
                    reason: IgnoreReason::BadIndex(fetch_reason(&e)),
                });
                return Ok(fetched);
            }
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let lookup = &mut fetched.lookup;
    let Ok(parsed) = oci::parse_index(&index) else {
        lookup.ignored.push(Ignored {
            artifact: None,
            reason: IgnoreReason::BadIndex("is not an OCI index".into()),
        });
        return Ok(fetched);
    };
    // Newest first: by the (unsigned, ordering-only) creation annotation, then by
    // position (writers append).
    let annotation =
        |d: &Descriptor, key: &str| d.annotations().as_ref().and_then(|a| a.get(key)).cloned();
    let mut listed: Vec<(usize, &Descriptor)> = parsed
        .manifests()
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            d.artifact_type()
                .as_ref()
                .is_some_and(|t| t.as_ref() == ARTIFACT_TYPE)
        })
        .collect();
    listed.sort_by_cached_key(|(i, d)| {
        (
            std::cmp::Reverse(annotation(d, ANN_CREATED)),
            std::cmp::Reverse(*i),
        )
    });
    lookup.listed = listed.len();
    if listed.len() > limits.max_examined {
        lookup.ignored.push(Ignored {
            artifact: None,
            reason: IgnoreReason::NotExamined {
                count: listed.len() - limits.max_examined,
                limit: limits.max_examined,
            },
        });
        listed.truncate(limits.max_examined);
    }
    for (_, d) in listed {
        let Ok(artifact) = oci::descriptor_digest("index entry", d) else {
            lookup.ignored.push(Ignored {
                artifact: None,
                reason: IgnoreReason::BadIndex(format!(
                    "lists an invalid digest {:?}",
                    d.digest().as_ref().chars().take(80).collect::<String>()
                )),
            });
            continue;
        };
        let envelope_hint = annotation(d, ANN_ENVELOPE).and_then(|s| s.parse::<Digest>().ok());
        fetched.candidates.push(Candidate {
            artifact,
            envelope_hint,
        });
    }
    if let Some(c) = fetched.candidates.first() {
        fetched.first = Some(fetch_envelope(client, reference, creds, subject, limits, c).await?);
    }
    Ok(fetched)
}

/// Checks what [`prefetch`] fetched against the pulled `image`: the newest candidate
/// `trust` accepts replaces the scan; the next candidates are fetched here, one by one,
/// only when an earlier one is ignored. A listing about another manifest than
/// `image.manifest` is fetched again.
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    fetched: Prefetched,
    client: &RegistryClient,
    reference: &Reference,
    creds: &Credentials,
    image: &ImageBinding,
    trust: &Trust,
    limits: ConsumeLimits,
    now: OffsetDateTime,
) -> Result<Lookup, RegistryError> {
    let fetched = if fetched.subject == image.manifest {
        fetched
    } else {
        prefetch(client, reference, creds, &image.manifest, limits).await?
    };
    let Prefetched {
        mut lookup,
        candidates,
        mut first,
        ..
    } = fetched;
    let limit = limits.max_envelope_bytes.min(MAX_ENVELOPE_BYTES);
    for c in candidates {
        let envelope = match first.take() {
            Some(e) => e,
            None => fetch_envelope(client, reference, creds, &image.manifest, limits, &c).await?,
        };
        let verified = envelope.and_then(|envelope| {
            verify_attestation(&envelope, limit, &trust.keys, image, trust.max_age, now)
                .map_err(IgnoreReason::Rejected)
        });
        match verified {
            Ok(verified) => {
                lookup.attested = Some(Attested {
                    artifact: c.artifact,
                    verified,
                });
                break;
            }
            Err(reason) => lookup.ignored.push(Ignored {
                artifact: Some(c.artifact),
                reason,
            }),
        }
    }
    Ok(lookup)
}

/// One candidate's artifact manifest and envelope, the envelope as its manifest lists
/// it (fetched alongside the manifest when the index entry names it and the two
/// agree). The outer `Err` is an outage.
async fn fetch_envelope(
    client: &RegistryClient,
    reference: &Reference,
    creds: &Credentials,
    subject: &Digest,
    limits: ConsumeLimits,
    candidate: &Candidate,
) -> Result<Result<Bytes, IgnoreReason>, RegistryError> {
    let fetch_failed = |e: RegistryError| -> Result<IgnoreReason, RegistryError> {
        if e.is_outage() {
            Err(e)
        } else {
            Ok(IgnoreReason::Fetch(fetch_reason(&e)))
        }
    };
    let artifact = &candidate.artifact;
    let limit = limits.max_envelope_bytes.min(MAX_ENVELOPE_BYTES);
    let manifest_ref = reference.with_digest(artifact.clone());
    let (m, hinted) = match &candidate.envelope_hint {
        Some(h) => {
            let (m, b) = futures::join!(
                client.manifest_by_digest(&manifest_ref, artifact, creds),
                client.blob_limited(reference, h, limit as u64, creds)
            );
            (m, Some((h, b)))
        }
        None => (
            client
                .manifest_by_digest(&manifest_ref, artifact, creds)
                .await,
            None,
        ),
    };
    let m = match m {
        Ok(m) => m,
        Err(e) => return Ok(Err(fetch_failed(e)?)),
    };
    let not = |why: String| Ok(Err(IgnoreReason::NotAnAttestation(why)));
    let Ok(doc) = oci::parse_manifest(&m.bytes) else {
        return not("manifest does not parse".into());
    };
    if doc
        .artifact_type()
        .as_ref()
        .is_none_or(|t| t.as_ref() != ARTIFACT_TYPE)
    {
        return not("manifest artifactType differs".into());
    }
    match doc.subject() {
        Some(s) if *subject == s.digest().as_ref() => {}
        Some(s) => {
            return Ok(Err(IgnoreReason::Rejected(Rejection::OtherSubject {
                claimed: s.digest().as_ref().chars().take(80).collect(),
                expected: subject.clone(),
            })));
        }
        None => return not("manifest has no subject".into()),
    }
    let [layer] = doc.layers().as_slice() else {
        return not(format!("{} layers, one expected", doc.layers().len()));
    };
    if layer.media_type().as_ref() != DSSE_MEDIA_TYPE {
        return not(format!(
            "layer media type {:?}",
            layer
                .media_type()
                .as_ref()
                .chars()
                .take(80)
                .collect::<String>()
        ));
    }
    if layer.size() > limit as u64 {
        return Ok(Err(IgnoreReason::TooLarge {
            size: layer.size(),
            limit,
        }));
    }
    let Ok(blob_digest) = oci::descriptor_digest("layer", layer) else {
        return not("layer digest is invalid".into());
    };
    // The hinted envelope counts only when it is the one the manifest lists; the
    // registry checked it against its digest.
    let envelope = match hinted {
        Some((h, Ok(b))) if *h == blob_digest => Ok(b),
        _ => {
            client
                .blob_limited(reference, &blob_digest, limit as u64, creds)
                .await
        }
    };
    match envelope {
        Ok(b) => Ok(Ok(b)),
        Err(e) => Ok(Err(fetch_failed(e)?)),
    }
}
