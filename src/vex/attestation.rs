//! VEX attestations as cosign writes them (`cosign attest --type openvex`): a DSSE
//! envelope (https://github.com/secure-systems-lab/dsse, `payloadType`
//! `application/vnd.in-toto+json`) whose payload is an in-toto Statement (v0.1 or v1)
//! with the image's manifest digest as subject and a VEX document as predicate
//! (`predicateType` `https://openvex.dev/ns/v0.2.0`, cosign's `https://openvex.dev/ns`,
//! or `https://cyclonedx.org/vex`). Signatures are checked over the DSSE
//! pre-authentication encoding with the keys trusted for VEX, or keylessly (`cosign
//! attest` without a key: a Fulcio certificate and a Rekor entry carried next to the
//! envelope) against the keyless identities trusted for VEX.

use base64::Engine as _;
use serde_json::{Value, json};

use super::signers::VexSigners;
use super::{VexDocument, VexError};
use crate::verify::Rejection;
use crate::verify::evidence::Evidence;
use crate::verify::keys::TrustedKey;
use crate::verify::payload::dsse_pae;

/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Predicate types read as VEX.
pub const VEX_PREDICATE_TYPES: &[&str] = &[
    "https://openvex.dev/ns/v0.2.0",
    "https://openvex.dev/ns",
    "https://cyclonedx.org/vex",
];
/// Largest envelope read (bytes).
pub const MAX_ENVELOPE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AttestationError {
    #[error("envelope over {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    #[error("not a DSSE envelope: {0}")]
    Envelope(String),
    #[error("payload type {0:?} is not {IN_TOTO_PAYLOAD_TYPE}")]
    PayloadType(String),
    #[error("not an in-toto statement: {0}")]
    Statement(String),
    #[error("predicate type {0:?} is not VEX")]
    NotVex(String),
    #[error("statement is about {found}, not {expected}")]
    OtherSubject { expected: String, found: String },
    #[error("no signature verifies with a key trusted for VEX")]
    Untrusted,
    /// Signed keylessly, but not by an identity trusted for VEX, or the certificate,
    /// the Rekor entry or a timestamp does not verify.
    #[error("keyless signature not trusted for VEX: {0}")]
    UntrustedKeyless(Rejection),
    #[error("VEX predicate: {0}")]
    Vex(#[from] VexError),
}

/// A verified VEX attestation.
#[derive(Debug, Clone)]
pub struct VerifiedVex {
    /// The trusted signer: the key that verified (its report name), or the keyless
    /// identity (`keyless issuer=… subject=…`).
    pub signer: String,
    pub predicate_type: String,
    pub document: VexDocument,
}

/// The envelope's in-toto statement and predicate, unverified: for a report of what
/// an untrusted attestation claimed.
pub fn read_unverified(envelope: &[u8], digest: &str) -> Result<VexDocument, AttestationError> {
    let (_, payload) = decode(envelope)?;
    Ok(statement(&payload, digest)?.1)
}

/// Verifies `envelope` with `keys` and returns its VEX document when a signature
/// verifies, the statement's subject includes `digest` (`sha256:<hex>`) and the
/// predicate is VEX.
pub fn verify(
    envelope: &[u8],
    digest: &str,
    keys: &[TrustedKey],
) -> Result<VerifiedVex, AttestationError> {
    let (env, payload) = decode(envelope)?;
    let signer = key_signer(&env, &payload, keys).ok_or(AttestationError::Untrusted)?;
    let (predicate_type, document) = statement(&payload, digest)?;
    Ok(VerifiedVex {
        signer,
        predicate_type,
        document,
    })
}

/// Verifies `envelope` with the signers trusted for VEX: first its signatures against
/// `signers.keys`, then, when the carrier holds keyless material (`keyless`: the
/// envelope's signature with the Fulcio certificate, Rekor entry and timestamps found
/// next to it, as [`crate::verify::evidence::from_dsse_layer`] or
/// [`crate::verify::evidence::from_bundle`] read them; `Err` when that material is
/// malformed), the keyless checks of [`VexSigners::keyless_signer`]. The statement that
/// counts is the one the verified signature covers; its subject must include `digest`.
/// Errors: [`AttestationError::Untrusted`] (no material, no key verifies),
/// [`AttestationError::UntrustedKeyless`] with the reason, or what does not parse.
pub fn verify_signed(
    envelope: &[u8],
    keyless: Option<&Result<Evidence, Rejection>>,
    digest: &str,
    signers: &VexSigners,
) -> Result<VerifiedVex, AttestationError> {
    let (env, payload) = decode(envelope)?;
    let (signer, payload) = match key_signer(&env, &payload, &signers.keys) {
        Some(signer) => (signer, payload),
        None => match keyless {
            None => return Err(AttestationError::Untrusted),
            Some(Err(r)) => return Err(AttestationError::UntrustedKeyless(r.clone())),
            Some(Ok(ev)) => match signers.keyless_signer(ev) {
                Ok(signer) => (signer, ev.payload.clone()),
                Err(r) => return Err(AttestationError::UntrustedKeyless(r)),
            },
        },
    };
    let (predicate_type, document) = statement(&payload, digest)?;
    Ok(VerifiedVex {
        signer,
        predicate_type,
        document,
    })
}

/// The report name of the first key that verifies one of the envelope's signatures
/// (at most 16 examined).
fn key_signer(env: &Value, payload: &[u8], keys: &[TrustedKey]) -> Option<String> {
    let pae = dsse_pae(IN_TOTO_PAYLOAD_TYPE, payload);
    let b64 = base64::engine::general_purpose::STANDARD;
    for s in env
        .get("signatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(16)
    {
        let Some(sig) = s
            .get("sig")
            .and_then(Value::as_str)
            .and_then(|s| b64.decode(s).ok())
        else {
            continue;
        };
        if let Some(k) = keys.iter().find(|k| k.verify(&sig, &pae)) {
            return Some(k.name.clone());
        }
    }
    None
}

fn decode(envelope: &[u8]) -> Result<(Value, Vec<u8>), AttestationError> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(AttestationError::TooLarge);
    }
    let env: Value =
        serde_json::from_slice(envelope).map_err(|e| AttestationError::Envelope(e.to_string()))?;
    let pt = env
        .get("payloadType")
        .and_then(Value::as_str)
        .ok_or_else(|| AttestationError::Envelope("no payloadType".into()))?;
    if pt != IN_TOTO_PAYLOAD_TYPE {
        return Err(AttestationError::PayloadType(
            pt.chars().take(200).collect(),
        ));
    }
    let payload = env
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
        .ok_or_else(|| AttestationError::Envelope("payload is not base64".into()))?;
    Ok((env, payload))
}

fn statement(payload: &[u8], digest: &str) -> Result<(String, VexDocument), AttestationError> {
    let st: Value =
        serde_json::from_slice(payload).map_err(|e| AttestationError::Statement(e.to_string()))?;
    let ty = st.get("_type").and_then(Value::as_str).unwrap_or("");
    if !ty.starts_with("https://in-toto.io/Statement/") {
        return Err(AttestationError::Statement(format!(
            "_type {:?}",
            ty.chars().take(200).collect::<String>()
        )));
    }
    let pt = st
        .get("predicateType")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !VEX_PREDICATE_TYPES.contains(&pt.as_str()) {
        return Err(AttestationError::NotVex(pt.chars().take(200).collect()));
    }
    let want = digest.strip_prefix("sha256:").unwrap_or(digest);
    let subjects: Vec<&str> = st
        .get("subject")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| {
            s.get("digest")
                .and_then(|d| d.get("sha256"))
                .and_then(Value::as_str)
        })
        .collect();
    if !subjects.iter().any(|s| s.eq_ignore_ascii_case(want)) {
        return Err(AttestationError::OtherSubject {
            expected: digest.to_string(),
            found: subjects
                .first()
                .map(|s| format!("sha256:{}", s.chars().take(64).collect::<String>()))
                .unwrap_or_else(|| "no subject".into()),
        });
    }
    let predicate = st
        .get("predicate")
        .ok_or_else(|| AttestationError::Statement("no predicate".into()))?;
    Ok((pt, super::parse_value(predicate)?))
}

/// The in-toto Statement v1 of a VEX document about `digest` (what `cosign attest
/// --type openvex --predicate FILE` signs), as JSON bytes.
pub fn openvex_statement(digest: &str, name: &str, vex: &Value) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": hex}}],
        "predicateType": "https://openvex.dev/ns/v0.2.0",
        "predicate": vex,
    }))
    .unwrap_or_default()
}

/// A DSSE envelope of `statement` signed with `sign` (raw signature bytes over the
/// pre-authentication encoding), as cosign writes it in an `.att` layer.
pub fn envelope(statement: &[u8], keyid: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig = sign(&dsse_pae(IN_TOTO_PAYLOAD_TYPE, statement));
    serde_json::to_vec(&json!({
        "payloadType": IN_TOTO_PAYLOAD_TYPE,
        "payload": b64.encode(statement),
        "signatures": [{"keyid": keyid, "sig": b64.encode(sig)}],
    }))
    .unwrap_or_default()
}
