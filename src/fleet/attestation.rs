//! The scan attestation: an in-toto Statement v1 (predicateType [`PREDICATE_TYPE`]) in a
//! DSSE envelope, signed by the node that scanned. The predicate holds facts, never a
//! judgement — the analyzer-set version, the scan-config hash, when, and per layer
//! (blob digest + diffID) what the layer walk found, with secret text removed — so every
//! node that trusts the signer judges with its own policy and vulnerability database.
//!
//! [`verify_attestation`] is the whole acceptance rule: each way an envelope can fail
//! is one [`Rejection`] variant, reported as a reason; nothing in it panics.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::dsse::{
    self, DsseError, Envelope, IN_TOTO_PAYLOAD_TYPE, SignatureCheck, Statement, Subject,
};
use super::keys::{AttestationSigner, SignerError};
use crate::digest::Digest;
use crate::scan::{LayerRef, LayerResult};
use crate::verify::keys::TrustedKey;

/// What the statement's predicate is.
pub const PREDICATE_TYPE: &str = "https://pullwarden.dev/scan/v1";
/// Largest envelope accepted (and written), in bytes. A layer's result is a summary
/// (packages, findings, 8 bytes per path); a 100-layer image with 50,000 files per
/// layer stays under it.
pub const MAX_ENVELOPE_BYTES: usize = 16 << 20;
/// Layers an attestation may describe (the manifest's own count must match anyway).
pub const MAX_LAYERS: usize = 1024;
/// A `scanned_at` this far ahead of our clock is clock skew; further is a forgery.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);
/// What a consumer puts where the attesting node's secret excerpt would be.
pub const REDACTED: &str = "(redacted in the attestation)";

/// The scan predicate (JSON field names are part of the format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanPredicate {
    pub scanner: ScannerId,
    /// RFC 3339, UTC: when the layers were scanned.
    pub scanned_at: String,
    /// The platform manifest the layers belong to, and the index it was pulled through.
    pub image: ImageId,
    /// In manifest order, bottom layer first.
    pub layers: Vec<AttestedLayer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScannerId {
    /// `pullwarden`.
    pub name: String,
    /// The writer's release (informational).
    pub version: String,
    /// [`crate::scan::analyzers::ANALYZER_SET_VERSION`] of the writer: must equal ours.
    pub analyzer_set: u32,
    /// The writer's scan-config hash (limits, denylist): must equal ours.
    pub scan_config: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageId {
    pub manifest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
}

/// One layer's facts: its identity and the layer walk's result (packages with their
/// paths, secrets as rule/path/line only, risky files, whiteouts and the path set
/// the composition needs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedLayer {
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    pub result: LayerResult,
}

/// What this node knows about the image, to bind an attestation to it.
#[derive(Debug, Clone)]
pub struct ImageBinding {
    /// The platform manifest digest: the attestation's subject and referrer target.
    pub manifest: Digest,
    /// The index the manifest was pulled through, if any (also a statement subject).
    pub index: Option<Digest>,
    /// Repository name for the statement subjects (`registry/repo`).
    pub name: String,
    /// The manifest's layers, as containerd stored them (digest and diffID).
    pub layers: Vec<LayerRef>,
    /// Our analyzer-set version and scan-config hash (`Scanner::config_hash`).
    pub analyzer_set: u32,
    pub scan_config: String,
}

/// Why a scan could not be attested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    #[error("{results} layer results for a manifest of {layers} layers")]
    LayerCount { results: usize, layers: usize },
    #[error(
        "layer {0} has integrity findings (they describe the bytes this node read, not the digest): not attested"
    )]
    NotAttestable(Digest),
    #[error("attestation would be {len} bytes, more than the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error(transparent)]
    Sign(#[from] SignerError),
}

/// Why an attestation was ignored. Each is a stable, logged reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Envelope(#[from] DsseError),
    #[error("signature by key {keyid} does not verify")]
    BadSignature { keyid: String },
    #[error("signed by a key that is not trusted (keyid {keyid:?})")]
    UntrustedKey { keyid: String },
    #[error("signature does not fit the {expected} key {keyid} it names (key type mismatch)")]
    KeyTypeMismatch {
        keyid: String,
        expected: &'static str,
    },
    #[error("statement is about {claimed}, not {expected}")]
    OtherSubject { claimed: String, expected: Digest },
    #[error("predicate image {claimed} is not {expected}")]
    OtherImage { claimed: Digest, expected: Digest },
    #[error("analyzer set {theirs} differs from ours ({ours})")]
    AnalyzerVersion { theirs: u32, ours: u32 },
    #[error("scan-config hash {theirs:?} differs from ours ({ours:?})")]
    ScanConfig { theirs: String, ours: String },
    #[error("scanned_at {0:?} is not an RFC 3339 time")]
    BadTime(String),
    #[error("scanned {age_secs} s ago, older than max_age ({max_secs} s)")]
    Stale { age_secs: u64, max_secs: u64 },
    #[error("scanned_at {0} is in the future")]
    FromFuture(String),
    #[error("predicate lists {claimed} layers, the manifest has {actual}")]
    LayerCount { claimed: usize, actual: usize },
    #[error("predicate layer {index} is {claimed}, the manifest's is {actual}")]
    OtherLayer {
        index: usize,
        claimed: String,
        actual: String,
    },
}

/// An attestation that passed every check: the layer results to compose, and who said so.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The trusted key's name (`key PATH (sha256:…)`).
    pub signer: String,
    /// DSSE keyid: hex SHA-256 of the signer's canonical SPKI.
    pub keyid: String,
    pub scanned_at: OffsetDateTime,
    /// One per manifest layer, in order, `layer` fields pointing at our layer digests
    /// and secret excerpts replaced by [`REDACTED`].
    pub layers: Vec<LayerResult>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Builds and signs the attestation for `image` from its per-layer `results`
/// (in manifest order). Returns the envelope's JSON bytes.
pub fn build_attestation(
    image: &ImageBinding,
    results: &[LayerResult],
    scanned_at: OffsetDateTime,
    signer: &AttestationSigner,
) -> Result<Vec<u8>, AttestError> {
    if results.len() != image.layers.len() {
        return Err(AttestError::LayerCount {
            results: results.len(),
            layers: image.layers.len(),
        });
    }
    let mut layers = Vec::with_capacity(results.len());
    for (l, r) in image.layers.iter().zip(results) {
        if !r.cacheable() {
            return Err(AttestError::NotAttestable(l.digest.clone()));
        }
        let mut r = r.clone();
        r.summary.cached = false;
        for s in &mut r.secrets {
            s.redacted = String::new();
        }
        layers.push(AttestedLayer {
            digest: l.digest.clone(),
            diff_id: l.diff_id.clone(),
            result: r,
        });
    }
    let mut subject = vec![Subject::of(&image.name, &image.manifest)];
    if let Some(i) = &image.index {
        subject.push(Subject::of(&image.name, i));
    }
    let predicate = ScanPredicate {
        scanner: ScannerId {
            name: "pullwarden".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            analyzer_set: image.analyzer_set,
            scan_config: image.scan_config.clone(),
        },
        scanned_at: rfc3339(scanned_at.to_offset(time::UtcOffset::UTC)),
        image: ImageId {
            manifest: image.manifest.clone(),
            index: image.index.clone(),
        },
        layers,
    };
    let payload = Statement::new(subject, PREDICATE_TYPE, predicate).to_vec();
    let keyid = dsse::keyid_of(&signer.public);
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &payload, &keyid, |m| signer.sign(m))?;
    let bytes = envelope.to_vec();
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(AttestError::TooLarge {
            len: bytes.len(),
            limit: MAX_ENVELOPE_BYTES,
        });
    }
    Ok(bytes)
}

/// Checks an envelope (at most `limit` bytes) against `trusted` keys and `image`, and
/// returns its layer results. `max_age`: how old a scan may be; `now`: our clock.
pub fn verify_attestation(
    envelope: &[u8],
    limit: usize,
    trusted: &[TrustedKey],
    image: &ImageBinding,
    max_age: Duration,
    now: OffsetDateTime,
) -> Result<Verified, Rejection> {
    let opened = dsse::open(
        envelope,
        limit.min(MAX_ENVELOPE_BYTES),
        IN_TOTO_PAYLOAD_TYPE,
    )?;
    // The signature first: nothing unsigned is parsed further.
    let key = match dsse::check_signatures(&opened, trusted) {
        SignatureCheck::Verified(i) => trusted.get(i).ok_or(Rejection::UntrustedKey {
            keyid: String::new(),
        })?,
        SignatureCheck::BadSignature { keyid } => return Err(Rejection::BadSignature { keyid }),
        SignatureCheck::KeyTypeMismatch { keyid, expected } => {
            return Err(Rejection::KeyTypeMismatch { keyid, expected });
        }
        SignatureCheck::Untrusted { keyid } => return Err(Rejection::UntrustedKey { keyid }),
    };
    let statement: Statement<ScanPredicate> =
        dsse::parse_statement(&opened.payload, PREDICATE_TYPE)?;
    if !statement.subject.iter().any(|s| s.names(&image.manifest)) {
        let claimed = statement
            .subject
            .iter()
            .flat_map(|s| s.digest.iter())
            .map(|(a, h)| format!("{a}:{}", h.chars().take(64).collect::<String>()))
            .take(4)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Rejection::OtherSubject {
            claimed,
            expected: image.manifest.clone(),
        });
    }
    let p = statement.predicate;
    if p.image.manifest != image.manifest {
        return Err(Rejection::OtherImage {
            claimed: p.image.manifest,
            expected: image.manifest.clone(),
        });
    }
    if p.scanner.analyzer_set != image.analyzer_set {
        return Err(Rejection::AnalyzerVersion {
            theirs: p.scanner.analyzer_set,
            ours: image.analyzer_set,
        });
    }
    if p.scanner.scan_config != image.scan_config {
        return Err(Rejection::ScanConfig {
            theirs: p.scanner.scan_config.chars().take(64).collect(),
            ours: image.scan_config.clone(),
        });
    }
    let scanned_at = OffsetDateTime::parse(&p.scanned_at, &Rfc3339)
        .map_err(|_| Rejection::BadTime(p.scanned_at.chars().take(40).collect()))?;
    let age = now - scanned_at;
    if age < -time::Duration::try_from(MAX_CLOCK_SKEW).unwrap_or(time::Duration::ZERO) {
        return Err(Rejection::FromFuture(rfc3339(scanned_at)));
    }
    let age_secs = u64::try_from(age.whole_seconds()).unwrap_or(0);
    if age_secs > max_age.as_secs() {
        return Err(Rejection::Stale {
            age_secs,
            max_secs: max_age.as_secs(),
        });
    }
    if p.layers.len() != image.layers.len() || p.layers.len() > MAX_LAYERS {
        return Err(Rejection::LayerCount {
            claimed: p.layers.len(),
            actual: image.layers.len(),
        });
    }
    let mut layers = Vec::with_capacity(p.layers.len());
    for (index, (a, ours)) in p.layers.into_iter().zip(&image.layers).enumerate() {
        let other = |claimed: String, actual: String| Rejection::OtherLayer {
            index,
            claimed,
            actual,
        };
        if a.digest != ours.digest {
            return Err(other(a.digest.to_string(), ours.digest.to_string()));
        }
        if let Some(d) = &ours.diff_id
            && a.diff_id.as_ref() != Some(d)
        {
            let claimed = a.diff_id.map(|x| format!("diffID {x}"));
            return Err(other(
                claimed.unwrap_or_else(|| "without a diffID".into()),
                format!("diffID {d}"),
            ));
        }
        if ours.digest != a.result.summary.digest {
            return Err(other(
                format!("a result for {}", short(&a.result.summary.digest)),
                ours.digest.to_string(),
            ));
        }
        layers.push(normalize(a.result, ours));
    }
    Ok(Verified {
        signer: key.name.clone(),
        keyid: dsse::keyid_of(key),
        scanned_at,
        layers,
    })
}

/// Points every record at our layer and drops whatever stands where secret excerpts were.
fn normalize(mut r: LayerResult, layer: &LayerRef) -> LayerResult {
    let id = layer.digest.to_string();
    r.summary.cached = false;
    r.summary.diff_id = layer.diff_id.as_ref().map(Digest::to_string);
    for f in &mut r.inventory {
        for p in &mut f.packages {
            p.layer = id.clone();
        }
    }
    for s in &mut r.secrets {
        s.layer = id.clone();
        s.redacted = REDACTED.to_string();
    }
    for f in &mut r.files {
        f.layer = id.clone();
    }
    r
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{FileFinding, FileFindingKind, LayerSummary, SecretFinding};
    use sigstore::crypto::SigningScheme;

    pub(crate) fn signer(scheme: SigningScheme) -> AttestationSigner {
        let pem = scheme
            .create_signer()
            .unwrap()
            .to_sigstore_keypair()
            .unwrap()
            .private_key_to_pem()
            .unwrap();
        AttestationSigner::from_pem("node-a", pem.as_bytes(), b"").unwrap()
    }

    fn layer(salt: &str) -> (LayerRef, LayerResult) {
        let digest = Digest::sha256_of(salt.as_bytes());
        let l = LayerRef {
            digest: digest.clone(),
            diff_id: Some(Digest::sha256_of(format!("diff {salt}").as_bytes())),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: 10,
        };
        let r = LayerResult {
            summary: LayerSummary {
                digest: digest.to_string(),
                diff_id: None,
                media_type: l.media_type.clone(),
                compressed_bytes: 10,
                uncompressed_bytes: 20,
                entries: 2,
                cached: false,
            },
            os_release: vec![],
            inventory: vec![],
            owned: vec![],
            secrets: vec![SecretFinding {
                rule: "aws-access-key-id".into(),
                title: "AWS".into(),
                path: "etc/key".into(),
                layer: digest.to_string(),
                line: 3,
                redacted: "AKIA************MPLE".into(),
                deleted_in_final_image: false,
            }],
            files: vec![FileFinding {
                kind: FileFindingKind::Setuid,
                path: "bin/x".into(),
                layer: digest.to_string(),
                detail: "4755".into(),
            }],
            whiteouts: vec![],
            opaque_dirs: vec![],
            paths: Default::default(),
        };
        (l, r)
    }

    pub(crate) fn binding(layers: Vec<LayerRef>) -> ImageBinding {
        ImageBinding {
            manifest: Digest::sha256_of(b"manifest"),
            index: Some(Digest::sha256_of(b"index")),
            name: "r.io/app".into(),
            layers,
            analyzer_set: 6,
            scan_config: "abc".into(),
        }
    }

    #[test]
    fn round_trip_redacts_and_binds() {
        let s = signer(SigningScheme::ECDSA_P256_SHA256_ASN1);
        let (l1, r1) = layer("one");
        let (l2, r2) = layer("two");
        let img = binding(vec![l1, l2]);
        let now = OffsetDateTime::now_utc();
        let env = build_attestation(&img, &[r1.clone(), r2], now, &s).unwrap();
        assert!(!String::from_utf8_lossy(&env).contains("AKIA"));
        let trusted = vec![s.public.clone()];
        let day = Duration::from_secs(86_400);
        let v = verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &img, day, now).unwrap();
        assert_eq!(v.layers.len(), 2);
        assert_eq!(v.layers[0].secrets[0].rule, "aws-access-key-id");
        assert_eq!(v.layers[0].secrets[0].line, 3);
        assert_eq!(v.layers[0].secrets[0].redacted, REDACTED);
        assert_eq!(v.layers[0].files, r1.files);
        assert_eq!(v.signer, s.public.name);

        // Each binding rule, broken once.
        let later = now + time::Duration::days(2);
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &img, day, later),
            Err(Rejection::Stale { .. })
        ));
        let earlier = now - time::Duration::hours(1);
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &img, day, earlier),
            Err(Rejection::FromFuture(_))
        ));
        let mut other = img.clone();
        other.manifest = Digest::sha256_of(b"another");
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &other, day, now),
            Err(Rejection::OtherSubject { .. })
        ));
        let mut other = img.clone();
        other.analyzer_set = 7;
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &other, day, now),
            Err(Rejection::AnalyzerVersion { theirs: 6, ours: 7 })
        ));
        let mut other = img.clone();
        other.scan_config = "xyz".into();
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &other, day, now),
            Err(Rejection::ScanConfig { .. })
        ));
        let mut other = img.clone();
        other.layers.pop();
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &other, day, now),
            Err(Rejection::LayerCount {
                claimed: 2,
                actual: 1
            })
        ));
        let mut other = img.clone();
        other.layers[1] = layer("three").0;
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &other, day, now),
            Err(Rejection::OtherLayer { index: 1, .. })
        ));
        let mut other = img.clone();
        other.layers[0].diff_id = Some(Digest::sha256_of(b"x"));
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &trusted, &other, day, now),
            Err(Rejection::OtherLayer { index: 0, .. })
        ));
        let stranger = signer(SigningScheme::ED25519);
        assert!(matches!(
            verify_attestation(&env, MAX_ENVELOPE_BYTES, &[stranger.public], &img, day, now),
            Err(Rejection::UntrustedKey { .. })
        ));
        assert!(matches!(
            verify_attestation(&env, env.len() - 1, &trusted, &img, day, now),
            Err(Rejection::Envelope(DsseError::TooLarge { .. }))
        ));
    }

    #[test]
    fn integrity_findings_are_not_attested() {
        let s = signer(SigningScheme::ED25519);
        let (l, mut r) = layer("bad");
        r.files.push(FileFinding {
            kind: FileFindingKind::Malformed,
            path: String::new(),
            layer: l.digest.to_string(),
            detail: "truncated".into(),
        });
        let img = binding(vec![l]);
        assert!(matches!(
            build_attestation(&img, &[r], OffsetDateTime::now_utc(), &s),
            Err(AttestError::NotAttestable(_))
        ));
        assert!(matches!(
            build_attestation(&img, &[], OffsetDateTime::now_utc(), &s),
            Err(AttestError::LayerCount { .. })
        ));
    }
}
