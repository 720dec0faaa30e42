//! Every storage format reduced to one shape: the bytes that were signed, the
//! signature, the certificate chain (keyless) and the transparency-log entry. Legacy
//! `.sig` layers (annotations) and sigstore bundles v0.1–v0.3 both parse into
//! `Evidence`; the checks in `mod.rs` then treat them alike.

use crate::verify::Rejection;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use super::keys::{pem_block, pem_blocks};
use super::payload::{IN_TOTO_PAYLOAD_TYPE, PayloadKind, dsse_pae};

pub const ANN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const ANN_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
pub const ANN_CHAIN: &str = "dev.sigstore.cosign/chain";
pub const ANN_BUNDLE: &str = "dev.sigstore.cosign/bundle";
/// cosign's RFC 3161 timestamp over the raw signature bytes (`cosign sign
/// --timestamp-server-url`): `{"SignedRFC3161Timestamp": "<base64 DER token>"}`.
pub const ANN_RFC3161: &str = "dev.sigstore.cosign/rfc3161timestamp";

#[derive(Deserialize)]
struct LegacyTimestamp {
    #[serde(rename = "SignedRFC3161Timestamp")]
    token: String,
}

/// A transparency-log entry as carried by a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    /// The canonicalized entry body (JSON).
    pub body: Vec<u8>,
    pub integrated_time: i64,
    pub log_index: i64,
    /// Hex SHA-256 of the log's public key.
    pub log_id: String,
    /// Signed entry timestamp (the log's promise of inclusion).
    pub set: Option<Vec<u8>>,
    pub inclusion_proof: Option<InclusionProof>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub log_index: u64,
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub hashes: Vec<Vec<u8>>,
    pub checkpoint: Option<String>,
}

/// One signature, normalized.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub payload_kind: PayloadKind,
    /// The document that names the image (simple-signing JSON or in-toto statement).
    pub payload: Vec<u8>,
    /// The bytes the signature covers (the payload, or the DSSE PAE of it).
    pub signed: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER certificates, leaf first; empty for key-signed signatures.
    pub certificates: Vec<Vec<u8>>,
    pub tlog: Option<TlogEntry>,
    /// DER RFC 3161 TimeStampTokens over `signature` (bundle v0.2+).
    pub timestamps: Vec<Vec<u8>>,
}

/// The legacy Rekor bundle annotation.
#[derive(Deserialize)]
struct RekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: RekorBundlePayload,
}

#[derive(Deserialize)]
struct RekorBundlePayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, Rejection> {
    let cleaned: String = s.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    BASE64
        .decode(cleaned)
        .map_err(|_| Rejection::Evidence(format!("{field} is not valid base64")))
}

/// From a legacy `.sig` layer: its blob (the payload) and its annotations.
pub fn from_legacy_layer(
    payload: Vec<u8>,
    annotations: &BTreeMap<String, String>,
) -> Result<Evidence, Rejection> {
    let sig = annotations.get(ANN_SIGNATURE).ok_or_else(|| {
        Rejection::Evidence(format!("signature layer has no {ANN_SIGNATURE} annotation"))
    })?;
    let signature = b64("signature", sig)?;
    let (certificates, tlog, timestamps) = keyless_annotations(annotations)?;
    Ok(Evidence {
        payload_kind: PayloadKind::SimpleSigning,
        signed: payload.clone(),
        payload,
        signature,
        certificates,
        tlog,
        timestamps,
    })
}

/// The keyless material cosign puts in a layer's annotations: the Fulcio certificate
/// and its chain (PEM, leaf first, at most 9), the legacy Rekor bundle (entry body with
/// its SET) and an RFC 3161 timestamp. All absent for a key-signed layer.
type KeylessMaterial = (Vec<Vec<u8>>, Option<TlogEntry>, Vec<Vec<u8>>);

fn keyless_annotations(
    annotations: &BTreeMap<String, String>,
) -> Result<KeylessMaterial, Rejection> {
    let mut certificates = Vec::new();
    if let Some(pem) = annotations.get(ANN_CERTIFICATE).filter(|s| !s.is_empty()) {
        certificates.push(pem_block(pem, "CERTIFICATE").ok_or_else(|| {
            Rejection::Evidence("certificate annotation is not a PEM certificate".into())
        })?);
        if let Some(chain) = annotations.get(ANN_CHAIN) {
            certificates.extend(pem_blocks(chain, "CERTIFICATE").into_iter().take(8));
        }
    }
    let tlog = match annotations.get(ANN_BUNDLE) {
        None => None,
        Some(text) => {
            let b: RekorBundle = serde_json::from_str(text).map_err(|_| {
                Rejection::Evidence("rekor bundle annotation does not parse".into())
            })?;
            Some(TlogEntry {
                body: b64("rekor entry body", &b.payload.body)?,
                integrated_time: b.payload.integrated_time,
                log_index: b.payload.log_index,
                log_id: b.payload.log_id.to_ascii_lowercase(),
                set: Some(b64("signed entry timestamp", &b.set)?),
                inclusion_proof: None,
            })
        }
    };
    let timestamps = match annotations.get(ANN_RFC3161).filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(text) => {
            let t: LegacyTimestamp = serde_json::from_str(text).map_err(|_| {
                Rejection::Evidence("RFC 3161 timestamp annotation does not parse".into())
            })?;
            vec![b64("RFC 3161 timestamp", &t.token)?]
        }
    };
    Ok((certificates, tlog, timestamps))
}

/// From a cosign attestation layer (`sha256-<hex>.att`, media type
/// `application/vnd.dsse.envelope.v1+json`): its blob, a DSSE envelope of an in-toto
/// statement with exactly one signature, and the layer's annotations (the keyless
/// material, as for `.sig` layers). Errors name what does not parse.
pub fn from_dsse_layer(
    envelope: &[u8],
    annotations: &BTreeMap<String, String>,
) -> Result<Evidence, Rejection> {
    let env: DsseEnvelope = serde_json::from_slice(envelope)
        .map_err(|_| Rejection::Evidence("DSSE envelope does not parse".into()))?;
    let (certificates, tlog, timestamps) = keyless_annotations(annotations)?;
    dsse_evidence(env, certificates, tlog, timestamps)
}

fn dsse_evidence(
    env: DsseEnvelope,
    certificates: Vec<Vec<u8>>,
    tlog: Option<TlogEntry>,
    timestamps: Vec<Vec<u8>>,
) -> Result<Evidence, Rejection> {
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Rejection::Evidence(
            "DSSE envelope does not carry an in-toto statement".into(),
        ));
    }
    let [sig] = env.signatures.as_slice() else {
        return Err(Rejection::Evidence(
            "DSSE envelope must carry exactly one signature".into(),
        ));
    };
    let payload = b64("DSSE payload", &env.payload)?;
    Ok(Evidence {
        payload_kind: PayloadKind::InToto,
        signed: dsse_pae(&env.payload_type, &payload),
        payload,
        signature: b64("DSSE signature", &sig.sig)?,
        certificates,
        tlog,
        timestamps,
    })
}

// ---------------------------------------------------------------- sigstore bundles

/// protobuf-JSON int64 values are strings; older writers use numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int {
    S(String),
    N(i64),
}

impl Int {
    fn get(&self, field: &str) -> Result<i64, Rejection> {
        match self {
            Int::N(n) => Ok(*n),
            Int::S(s) => s
                .parse()
                .map_err(|_| Rejection::Evidence(format!("{field} is not an integer"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleJson {
    media_type: String,
    verification_material: Option<VerificationMaterial>,
    message_signature: Option<MessageSignature>,
    dsse_envelope: Option<DsseEnvelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerificationMaterial {
    certificate: Option<RawBytes>,
    x509_certificate_chain: Option<CertChain>,
    #[serde(default)]
    tlog_entries: Vec<BundleTlogEntry>,
    timestamp_verification_data: Option<TimestampVerificationData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimestampVerificationData {
    #[serde(default)]
    rfc3161_timestamps: Vec<Rfc3161Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rfc3161Timestamp {
    signed_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct CertChain {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleTlogEntry {
    log_index: Int,
    log_id: LogId,
    /// Absent in Rekor v2 entries (protobuf JSON omits the zero value).
    integrated_time: Option<Int>,
    inclusion_promise: Option<InclusionPromise>,
    inclusion_proof: Option<BundleInclusionProof>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionPromise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleInclusionProof {
    log_index: Int,
    root_hash: String,
    tree_size: Int,
    #[serde(default)]
    hashes: Vec<String>,
    checkpoint: Option<Checkpoint>,
}

#[derive(Deserialize)]
struct Checkpoint {
    envelope: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: Option<MessageDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseEnvelope {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<DsseSignature>,
}

#[derive(Deserialize)]
struct DsseSignature {
    sig: String,
}

pub const BUNDLE_MEDIA_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

/// From a sigstore bundle (v0.1, v0.2, v0.3). A message-signature bundle signs a
/// payload carried next to it (`detached_payload`, the simple-signing layer of the
/// referrer manifest); a DSSE bundle carries its in-toto statement itself.
pub fn from_bundle(
    bundle: &[u8],
    detached_payload: Option<Vec<u8>>,
) -> Result<Evidence, Rejection> {
    let b: BundleJson = serde_json::from_slice(bundle)
        .map_err(|_| Rejection::Evidence("sigstore bundle does not parse".into()))?;
    let version = b
        .media_type
        .strip_prefix(BUNDLE_MEDIA_PREFIX)
        .map(|v| v.trim_start_matches('.').trim_start_matches('+'))
        .unwrap_or("");
    let known = [
        "v0.1+json",
        "v0.2+json",
        "v0.3+json",
        "json;version=0.1",
        "json;version=0.2",
        "json;version=0.3",
    ];
    if !known.contains(&version) {
        return Err(Rejection::Evidence(format!(
            "unsupported sigstore bundle media type {:?}",
            b.media_type.chars().take(80).collect::<String>()
        )));
    }
    let vm = b
        .verification_material
        .ok_or_else(|| Rejection::Evidence("sigstore bundle has no verificationMaterial".into()))?;
    let mut certificates = Vec::new();
    if let Some(c) = vm.certificate {
        certificates.push(b64("bundle certificate", &c.raw_bytes)?);
    } else if let Some(chain) = vm.x509_certificate_chain {
        for c in chain.certificates.iter().take(8) {
            certificates.push(b64("bundle certificate", &c.raw_bytes)?);
        }
    }
    let timestamps = vm
        .timestamp_verification_data
        .map(|t| t.rfc3161_timestamps)
        .unwrap_or_default()
        .iter()
        .take(8)
        .map(|t| b64("signedTimestamp", &t.signed_timestamp))
        .collect::<Result<Vec<_>, _>>()?;
    let tlog = match vm.tlog_entries.first() {
        None => None,
        Some(e) => Some(TlogEntry {
            body: b64("canonicalizedBody", &e.canonicalized_body)?,
            integrated_time: match &e.integrated_time {
                Some(t) => t.get("integratedTime")?,
                None => 0,
            },
            log_index: e.log_index.get("logIndex")?,
            log_id: hex::encode(b64("logId", &e.log_id.key_id)?),
            set: e
                .inclusion_promise
                .as_ref()
                .map(|p| b64("signedEntryTimestamp", &p.signed_entry_timestamp))
                .transpose()?,
            inclusion_proof: e
                .inclusion_proof
                .as_ref()
                .map(|p| -> Result<InclusionProof, Rejection> {
                    Ok(InclusionProof {
                        log_index: u64::try_from(p.log_index.get("inclusionProof.logIndex")?)
                            .map_err(|_| Rejection::Evidence("negative log index".into()))?,
                        tree_size: u64::try_from(p.tree_size.get("treeSize")?)
                            .map_err(|_| Rejection::Evidence("negative tree size".into()))?,
                        root_hash: b64("rootHash", &p.root_hash)?,
                        hashes: p
                            .hashes
                            .iter()
                            .take(64)
                            .map(|h| b64("inclusion proof hash", h))
                            .collect::<Result<_, _>>()?,
                        checkpoint: p.checkpoint.as_ref().map(|c| c.envelope.clone()),
                    })
                })
                .transpose()?,
        }),
    };
    match (b.message_signature, b.dsse_envelope) {
        (Some(ms), None) => {
            let payload = detached_payload.ok_or_else(|| {
                Rejection::Evidence(
                    "message-signature bundle without the signed payload next to it".into(),
                )
            })?;
            if let Some(md) = ms.message_digest {
                if md.algorithm != "SHA2_256" {
                    return Err(Rejection::Evidence(format!(
                        "unsupported message digest algorithm {:?}",
                        md.algorithm.chars().take(32).collect::<String>()
                    )));
                }
                let want = b64("messageDigest", &md.digest)?;
                let have = crate::digest::Digest::sha256_of(&payload);
                if hex::encode(&want) != have.hex() {
                    return Err(Rejection::Evidence(
                        "bundle message digest does not match the payload".into(),
                    ));
                }
            }
            Ok(Evidence {
                payload_kind: PayloadKind::SimpleSigning,
                signed: payload.clone(),
                payload,
                signature: b64("bundle signature", &ms.signature)?,
                certificates,
                tlog,
                timestamps,
            })
        }
        (None, Some(env)) => dsse_evidence(env, certificates, tlog, timestamps),
        _ => Err(Rejection::Evidence(
            "sigstore bundle has neither or both of messageSignature and dsseEnvelope".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_bundles_are_reasons_not_panics() {
        for bad in [
            &b""[..],
            b"{}",
            b"[]",
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v9+json"}"#,
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{},"messageSignature":{"signature":"!!"}}"#,
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"tlogEntries":[{"logIndex":"x","logId":{"keyId":""},"integratedTime":"1","canonicalizedBody":""}]},"messageSignature":{"signature":""}}"#,
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{},"dsseEnvelope":{"payload":"","payloadType":"application/vnd.in-toto+json","signatures":[]}}"#,
        ] {
            assert!(from_bundle(bad, Some(b"p".to_vec())).is_err());
        }
    }

    #[test]
    fn legacy_annotations() {
        let mut a = BTreeMap::new();
        assert!(from_legacy_layer(b"p".to_vec(), &a).is_err());
        a.insert(ANN_SIGNATURE.to_string(), "not base64!".to_string());
        assert!(from_legacy_layer(b"p".to_vec(), &a).is_err());
        a.insert(ANN_SIGNATURE.to_string(), BASE64.encode(b"sig"));
        let e = from_legacy_layer(b"p".to_vec(), &a).unwrap();
        assert_eq!(e.signature, b"sig");
        assert!(e.certificates.is_empty() && e.tlog.is_none());
        a.insert(ANN_BUNDLE.to_string(), "{".to_string());
        assert!(from_legacy_layer(b"p".to_vec(), &a).is_err());
    }
}
