//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse/blob/master/envelope.md>,
//! protocol v1) and in-toto Statements v1
//! (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>): strict
//! parsers with size caps and a signer/verifier over the pre-authentication encoding.
//! Nothing here knows what a predicate means, so any attestation reader can share it.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::verify::keys::TrustedKey;
use crate::verify::payload::dsse_pae;

pub use crate::verify::payload::IN_TOTO_PAYLOAD_TYPE;

/// Media type of a DSSE envelope stored as a blob (what cosign writes for attestations).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// `_type` of an in-toto Statement v1.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
/// Signatures looked at in one envelope at most (real ones carry one).
pub const MAX_SIGNATURES: usize = 8;
/// Subjects looked at in one statement at most.
pub const MAX_SUBJECTS: usize = 64;
/// Longest signature accepted, in bytes (an RSA-4096 signature is 512).
const MAX_SIGNATURE_BYTES: usize = 1024;
/// Longest `keyid` accepted.
const MAX_KEYID_CHARS: usize = 256;

/// Why an envelope or statement was not accepted. The text is a stable report reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    #[error("envelope is {len} bytes, more than the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("envelope is not a DSSE envelope: {0}")]
    Malformed(String),
    #[error("envelope payloadType is {0:?}, not {IN_TOTO_PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("envelope carries no signature")]
    Unsigned,
    #[error("envelope carries {0} signatures, more than {MAX_SIGNATURES}")]
    TooManySignatures(usize),
    #[error("statement is not an in-toto Statement v1: {0}")]
    Statement(String),
    #[error("statement predicateType is {found:?}, not {expected:?}")]
    PredicateType { found: String, expected: String },
}

/// A DSSE envelope as it travels (JSON field names as the spec spells them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    pub payload_type: String,
    /// Standard base64 of the payload.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Optional hint: which key signed. Ours: hex SHA-256 of the canonical SPKI.
    #[serde(default)]
    pub keyid: String,
    /// Standard base64 of the raw signature over the PAE.
    pub sig: String,
}

/// An envelope whose fields decoded: the payload bytes and each signature's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedEnvelope {
    pub payload_type: String,
    pub payload: Vec<u8>,
    /// (keyid, raw signature), in envelope order.
    pub signatures: Vec<(String, Vec<u8>)>,
}

/// How a signature of an envelope relates to a set of trusted keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Verified under this key (its index in the list given).
    Verified(usize),
    /// The keyid names a trusted key but the signature does not verify under it.
    BadSignature { keyid: String },
    /// The keyid names a trusted key whose algorithm cannot have made this signature.
    KeyTypeMismatch {
        keyid: String,
        expected: &'static str,
    },
    /// No trusted key made this signature.
    Untrusted { keyid: String },
}

impl Envelope {
    /// Signs `payload` of `payload_type` with `sign` (raw signature over the PAE).
    pub fn sign<E>(
        payload_type: &str,
        payload: &[u8],
        keyid: &str,
        sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
    ) -> Result<Envelope, E> {
        let sig = sign(&dsse_pae(payload_type, payload))?;
        Ok(Envelope {
            payload_type: payload_type.to_string(),
            payload: BASE64.encode(payload),
            signatures: vec![EnvelopeSignature {
                keyid: keyid.to_string(),
                sig: BASE64.encode(sig),
            }],
        })
    }

    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Parses an envelope of at most `limit` bytes whose payloadType is `payload_type`,
/// and decodes its payload and signatures. Never panics on any input.
pub fn open(bytes: &[u8], limit: usize, payload_type: &str) -> Result<OpenedEnvelope, DsseError> {
    if bytes.len() > limit {
        return Err(DsseError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let e: Envelope =
        serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(short(&e.to_string())))?;
    if e.payload_type != payload_type {
        return Err(DsseError::PayloadType(short(&e.payload_type)));
    }
    if e.signatures.is_empty() {
        return Err(DsseError::Unsigned);
    }
    if e.signatures.len() > MAX_SIGNATURES {
        return Err(DsseError::TooManySignatures(e.signatures.len()));
    }
    let payload = BASE64
        .decode(e.payload.as_bytes())
        .map_err(|_| DsseError::Malformed("payload is not standard base64".into()))?;
    let mut signatures = Vec::with_capacity(e.signatures.len());
    for s in e.signatures {
        if s.keyid.chars().count() > MAX_KEYID_CHARS {
            return Err(DsseError::Malformed("a keyid is too long".into()));
        }
        let sig = BASE64
            .decode(s.sig.as_bytes())
            .map_err(|_| DsseError::Malformed("a signature is not standard base64".into()))?;
        if sig.is_empty() || sig.len() > MAX_SIGNATURE_BYTES {
            return Err(DsseError::Malformed(format!(
                "a signature is {} bytes (1 to {MAX_SIGNATURE_BYTES} expected)",
                sig.len()
            )));
        }
        signatures.push((s.keyid, sig));
    }
    Ok(OpenedEnvelope {
        payload_type: e.payload_type,
        payload,
        signatures,
    })
}

/// The key id we write and recognise: hex SHA-256 of the canonical DER SPKI.
pub fn keyid_of(key: &TrustedKey) -> String {
    key.fingerprint.hex().to_string()
}

/// The signature algorithm family of a key, by its canonical SPKI (for the key-type
/// check; the verification itself is the key's own).
fn family(key: &TrustedKey) -> &'static str {
    // OIDs in DER: id-Ed25519 1.3.101.112 = 06 03 2b 65 70; id-ecPublicKey = 06 07 2a 86 48 ce 3d 02 01.
    let has = |needle: &[u8]| key.spki.windows(needle.len()).any(|w| w == needle);
    if has(&[0x06, 0x03, 0x2b, 0x65, 0x70]) {
        "Ed25519"
    } else if has(&[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]) {
        "ECDSA"
    } else {
        "RSA"
    }
}

/// Whether a raw signature has the shape `family` produces: Ed25519 signatures are 64
/// raw bytes (RFC 8032), ECDSA ones an ASN.1 DER SEQUENCE of two INTEGERs (RFC 3279
/// 2.2.3), RSA ones as long as the modulus (not checked).
fn shaped_like(family: &str, sig: &[u8]) -> bool {
    let der_sequence = sig.len() >= 8
        && sig.first() == Some(&0x30)
        && sig.get(1).is_some_and(|l| usize::from(*l) + 2 == sig.len())
        && sig.get(2) == Some(&0x02);
    match family {
        "Ed25519" => sig.len() == 64,
        "ECDSA" => der_sequence,
        _ => sig.len() >= 128,
    }
}

/// Checks every signature of `env` against `keys`; the first verified one wins, else
/// the most telling failure (a named key that fails beats an unknown key).
pub fn check_signatures(env: &OpenedEnvelope, keys: &[TrustedKey]) -> SignatureCheck {
    let pae = dsse_pae(&env.payload_type, &env.payload);
    let mut worst: Option<SignatureCheck> = None;
    for (keyid, sig) in &env.signatures {
        let named = keys.iter().position(|k| keyid_of(k) == *keyid);
        let candidates: Vec<usize> = match named {
            Some(i) => vec![i],
            // No (or an unknown) hint: a signature is still checked against every key.
            None => (0..keys.len()).collect(),
        };
        if let Some(i) = candidates
            .iter()
            .copied()
            .find(|&i| keys.get(i).is_some_and(|k| k.verify(sig, &pae)))
        {
            return SignatureCheck::Verified(i);
        }
        let this = match named.and_then(|i| keys.get(i)) {
            Some(k) if !shaped_like(family(k), sig) => SignatureCheck::KeyTypeMismatch {
                keyid: keyid.clone(),
                expected: family(k),
            },
            Some(_) => SignatureCheck::BadSignature {
                keyid: keyid.clone(),
            },
            None => SignatureCheck::Untrusted {
                keyid: keyid.clone(),
            },
        };
        if worst.is_none() || matches!(worst, Some(SignatureCheck::Untrusted { .. })) {
            worst = Some(this);
        }
    }
    worst.unwrap_or(SignatureCheck::Untrusted {
        keyid: String::new(),
    })
}

/// One subject of a statement: a name and its digests by algorithm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    pub fn of(name: &str, d: &Digest) -> Subject {
        Subject {
            name: name.to_string(),
            digest: BTreeMap::from([(d.algorithm().as_str().to_string(), d.hex().to_string())]),
        }
    }

    /// Whether this subject names `d` (same algorithm, same hex).
    pub fn names(&self, d: &Digest) -> bool {
        self.digest.get(d.algorithm().as_str()).map(String::as_str) == Some(d.hex())
    }
}

/// An in-toto Statement v1 with a typed predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement<P> {
    #[serde(rename = "_type")]
    pub kind: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: P,
}

impl<P: Serialize> Statement<P> {
    pub fn new(subject: Vec<Subject>, predicate_type: &str, predicate: P) -> Statement<P> {
        Statement {
            kind: STATEMENT_V1.to_string(),
            subject,
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Parses a statement whose predicateType must be `predicate_type`. The type is
/// checked before the predicate is decoded, so another kind of attestation gets that
/// reason rather than a parse error.
pub fn parse_statement<P: DeserializeOwned>(
    payload: &[u8],
    predicate_type: &str,
) -> Result<Statement<P>, DsseError> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "_type")]
        kind: String,
        #[serde(rename = "predicateType")]
        predicate_type: String,
    }
    let head: Head =
        serde_json::from_slice(payload).map_err(|e| DsseError::Statement(short(&e.to_string())))?;
    if head.kind != STATEMENT_V1 {
        return Err(DsseError::Statement(format!(
            "_type is {:?}",
            short(&head.kind)
        )));
    }
    if head.predicate_type != predicate_type {
        return Err(DsseError::PredicateType {
            found: short(&head.predicate_type),
            expected: predicate_type.to_string(),
        });
    }
    let s: Statement<P> =
        serde_json::from_slice(payload).map_err(|e| DsseError::Statement(short(&e.to_string())))?;
    if s.subject.is_empty() {
        return Err(DsseError::Statement("no subject".into()));
    }
    if s.subject.len() > MAX_SUBJECTS {
        return Err(DsseError::Statement(format!(
            "{} subjects, more than {MAX_SUBJECTS}",
            s.subject.len()
        )));
    }
    Ok(s)
}

/// Attacker-chosen text in a reason is cut short.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(120).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigstore::crypto::SigningScheme;

    fn key(scheme: SigningScheme) -> (sigstore::crypto::signing_key::SigStoreSigner, TrustedKey) {
        let signer = scheme.create_signer().unwrap();
        let pem = signer
            .to_sigstore_keypair()
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let k = TrustedKey::from_file_bytes("k", pem.as_bytes()).unwrap();
        (signer, k)
    }

    #[test]
    fn signs_verifies_and_names_failures() {
        let (ec, ec_key) = key(SigningScheme::ECDSA_P256_SHA256_ASN1);
        let (ed, ed_key) = key(SigningScheme::ED25519);
        let payload = br#"{"x":1}"#;
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, payload, &keyid_of(&ec_key), |m| {
            ec.sign(m)
        })
        .unwrap();
        let bytes = env.to_vec();
        let opened = open(&bytes, 1 << 20, IN_TOTO_PAYLOAD_TYPE).unwrap();
        assert_eq!(opened.payload, payload);
        let keys = vec![ed_key.clone(), ec_key.clone()];
        assert_eq!(
            check_signatures(&opened, &keys),
            SignatureCheck::Verified(1)
        );
        // Another key only: untrusted.
        assert!(matches!(
            check_signatures(&opened, std::slice::from_ref(&ed_key)),
            SignatureCheck::Untrusted { .. }
        ));
        // Payload changed: bad signature under the named key.
        let mut tampered = opened.clone();
        tampered.payload = br#"{"x":2}"#.to_vec();
        assert!(matches!(
            check_signatures(&tampered, &keys),
            SignatureCheck::BadSignature { .. }
        ));
        // An Ed25519 signature claiming the ECDSA key's id: key type mismatch.
        let ed_sig = ed.sign(&dsse_pae(IN_TOTO_PAYLOAD_TYPE, payload)).unwrap();
        let mut mismatched = opened.clone();
        mismatched.signatures = vec![(keyid_of(&ec_key), ed_sig)];
        assert_eq!(
            check_signatures(&mismatched, &keys),
            SignatureCheck::KeyTypeMismatch {
                keyid: keyid_of(&ec_key),
                expected: "ECDSA"
            }
        );
        // The payload type is part of what is signed.
        let mut retyped = opened.clone();
        retyped.payload_type = "text/plain".into();
        assert!(matches!(
            check_signatures(&retyped, &keys),
            SignatureCheck::BadSignature { .. }
        ));
    }

    #[test]
    fn hostile_envelopes_get_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not a DSSE envelope"),
            (b"[]", "not a DSSE envelope"),
            (br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#, "no signature"),
            (br#"{"payloadType":"text/plain","payload":"e30=","signatures":[{"sig":"AA=="}]}"#, "payloadType"),
            (br#"{"payloadType":"application/vnd.in-toto+json","payload":"!!","signatures":[{"sig":"AA=="}]}"#, "base64"),
            (br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":""}]}"#, "0 bytes"),
            (br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AA=="}],"x":1}"#, "unknown field"),
        ];
        for (bytes, want) in cases {
            let e = open(bytes, 1 << 20, IN_TOTO_PAYLOAD_TYPE).unwrap_err();
            assert!(e.to_string().contains(want), "{e} vs {want}");
        }
        let big = vec![b' '; 100];
        assert!(matches!(
            open(&big, 99, IN_TOTO_PAYLOAD_TYPE),
            Err(DsseError::TooLarge { .. })
        ));
    }

    #[test]
    fn statements_are_strict() {
        let d = Digest::sha256_of(b"m");
        let s = Statement::new(
            vec![Subject::of("r", &d)],
            "https://p/v1",
            serde_json::json!({}),
        );
        let bytes = s.to_vec();
        let back: Statement<serde_json::Value> = parse_statement(&bytes, "https://p/v1").unwrap();
        assert!(back.subject[0].names(&d));
        assert!(!back.subject[0].names(&Digest::sha256_of(b"other")));
        assert!(matches!(
            parse_statement::<serde_json::Value>(&bytes, "https://q/v1"),
            Err(DsseError::PredicateType { .. })
        ));
        let old = String::from_utf8(bytes.clone())
            .unwrap()
            .replace(STATEMENT_V1, "https://in-toto.io/Statement/v0.1");
        assert!(parse_statement::<serde_json::Value>(old.as_bytes(), "https://p/v1").is_err());
        let none = String::from_utf8(bytes)
            .unwrap()
            .replace(&format!("\"{}\"", d.hex()), "\"x\"");
        let parsed: Statement<serde_json::Value> =
            parse_statement(none.as_bytes(), "https://p/v1").unwrap();
        assert!(!parsed.subject[0].names(&d));
    }
}
