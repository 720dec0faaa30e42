//! Trusted public keys (ECDSA P-256/P-384, RSA, Ed25519) from the files operators list:
//! PEM `PUBLIC KEY` (SubjectPublicKeyInfo, what cosign writes), PEM `RSA PUBLIC KEY`
//! (PKCS#1), or the same structures as raw DER. Every key is reduced to one canonical
//! form — the DER SPKI with EC points uncompressed and RSA parameters NULL — so one key
//! in two encodings is one signer (a threshold counts signers, not files). Signature
//! checks use the sigstore crate's `CosignVerificationKey` (aws-lc-rs underneath); a
//! key file does not say which RSA padding it signs with, so an RSA key is tried with
//! PKCS#1 v1.5 and with PSS.

use crate::verify::{FileRejection, Rejection};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

use super::VerifyError;
use crate::digest::Digest;

/// One trusted key of a policy.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The signer name used in reports and for threshold counting:
    /// `key PATH (sha256:<first 16 hex of the SPKI digest>)`.
    pub name: String,
    /// SHA-256 of the canonical DER SubjectPublicKeyInfo; one key is one signer however
    /// many files or encodings list it.
    pub fingerprint: Digest,
    /// Canonical DER SubjectPublicKeyInfo (see [`canonical_spki`]).
    pub spki: Vec<u8>,
    schemes: Vec<CosignVerificationKey>,
}

/// Extracts the DER body of the first PEM block labelled `label`.
pub fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let b64: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64.decode(b64).ok()
}

/// All PEM blocks labelled `label`, in order.
pub fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(der) = pem_block(rest, label) {
        out.push(der);
        match rest.find(&end) {
            Some(i) => rest = &rest[i + end.len()..],
            None => break,
        }
    }
    out
}

pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl TrustedKey {
    /// Reads and parses a key file (see the module doc for the accepted forms). Errors
    /// say what the file is when it is not a public key (a private key, a certificate,
    /// a directory, …).
    pub fn load(path: &Path) -> Result<TrustedKey, VerifyError> {
        let err = |reason: Rejection| VerifyError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = read_key_file(path).map_err(|e| err(e.into()))?;
        TrustedKey::from_file_bytes(&path.display().to_string(), &bytes).map_err(err)
    }

    /// Parses the contents of a key file: PEM (`PUBLIC KEY`, `RSA PUBLIC KEY`) or DER
    /// (SubjectPublicKeyInfo or PKCS#1 RSAPublicKey).
    pub fn from_file_bytes(label: &str, bytes: &[u8]) -> Result<TrustedKey, Rejection> {
        TrustedKey::from_spki_der(label, &spki_from_file(bytes)?)
    }

    /// `der`: a DER SubjectPublicKeyInfo in any valid encoding; kept in canonical form.
    pub fn from_spki_der(label: &str, der: &[u8]) -> Result<TrustedKey, Rejection> {
        let der = canonical_spki(der)?;
        let der = der.as_slice();
        let key =
            CosignVerificationKey::try_from_der(der).map_err(|e| Rejection::Key(e.to_string()))?;
        let mut schemes = vec![key.clone()];
        if matches!(key, CosignVerificationKey::RSA_PKCS1_SHA256(_)) {
            schemes.push(
                CosignVerificationKey::from_der(der, &SigningScheme::RSA_PSS_SHA256(0))
                    .map_err(|e| Rejection::Key(e.to_string()))?,
            );
        }
        let fingerprint = Digest::sha256_of(der);
        Ok(TrustedKey {
            name: format!("key {label} (sha256:{})", &fingerprint.hex()[..16]),
            fingerprint,
            spki: der.to_vec(),
            schemes,
        })
    }

    /// Checks a raw signature over `msg`.
    pub fn verify(&self, signature: &[u8], msg: &[u8]) -> bool {
        self.schemes
            .iter()
            .any(|k| k.verify_signature(Signature::Raw(signature), msg).is_ok())
    }
}

/// Key files larger than this are not keys (an RSA-16384 PEM is under 3 KiB).
pub const MAX_KEY_FILE_BYTES: u64 = 64 << 10;

/// Reads a key, trust-root or denylist file with reasons an operator can act on: a
/// directory, a special file or an oversized file is named as such. `limit` in bytes.
pub fn read_config_file(path: &Path, limit: u64) -> Result<Vec<u8>, FileRejection> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(FileRejection::Directory);
    }
    if !meta.is_file() {
        return Err(FileRejection::NotRegular);
    }
    if meta.len() > limit {
        return Err(FileRejection::TooLarge {
            len: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    std::fs::File::open(path)
        .and_then(|f| f.take(limit.saturating_add(1)).read_to_end(&mut bytes))?;
    if bytes.len() as u64 > limit {
        return Err(FileRejection::GrewPastLimit { limit });
    }
    Ok(bytes)
}

/// Reads a key file (at most [`MAX_KEY_FILE_BYTES`]); an empty one is an error.
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, FileRejection> {
    let bytes = read_config_file(path, MAX_KEY_FILE_BYTES)?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FileRejection::Empty);
    }
    Ok(bytes)
}

/// PEM labels that are not public keys, with what to do instead.
const NOT_PUBLIC_KEYS: &[(&str, &str)] = &[
    ("PRIVATE KEY", "a private key; list its public key"),
    ("EC PRIVATE KEY", "a private key; list its public key"),
    ("RSA PRIVATE KEY", "a private key; list its public key"),
    (
        "ENCRYPTED PRIVATE KEY",
        "a private key; list its public key",
    ),
    (
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        "a cosign private key; list cosign.pub instead",
    ),
    (
        "ENCRYPTED COSIGN PRIVATE KEY",
        "a cosign private key; list cosign.pub instead",
    ),
    (
        "CERTIFICATE",
        "a certificate, not a public key (extract it: openssl x509 -pubkey -noout)",
    ),
];

/// The DER SubjectPublicKeyInfo of a key file's contents.
fn spki_from_file(bytes: &[u8]) -> Result<Vec<u8>, Rejection> {
    if bytes.starts_with(&[0x30]) {
        // DER: SPKI, or a PKCS#1 RSAPublicKey.
        return spki_from_der(bytes);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(Rejection::Key("is neither PEM nor DER".into()));
    };
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return pem_block(text, "PUBLIC KEY").ok_or_else(|| {
            Rejection::Key("its PEM \"PUBLIC KEY\" block is not valid base64".into())
        });
    }
    if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        let pkcs1 = pem_block(text, "RSA PUBLIC KEY").ok_or_else(|| {
            Rejection::Key("its PEM \"RSA PUBLIC KEY\" block is not valid base64".into())
        })?;
        return spki_from_pkcs1(&pkcs1);
    }
    for (label, what) in NOT_PUBLIC_KEYS {
        if text.contains(&format!("-----BEGIN {label}-----")) {
            return Err(Rejection::Key(format!("is {what}")));
        }
    }
    if let Some(i) = text.find("-----BEGIN ") {
        let label: String = text[i + 11..]
            .chars()
            .take_while(|c| *c != '-')
            .take(40)
            .collect();
        return Err(Rejection::Key(format!(
            "holds a PEM {label:?} block, not a \"PUBLIC KEY\" or \"RSA PUBLIC KEY\""
        )));
    }
    Err(Rejection::Key(
        "is not a public key (no PEM \"PUBLIC KEY\" block, not DER)".into(),
    ))
}

fn spki_from_der(der: &[u8]) -> Result<Vec<u8>, Rejection> {
    use x509_cert::der::Decode as _;
    if x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(der).is_ok() {
        return Ok(der.to_vec());
    }
    spki_from_pkcs1(der).map_err(|_| {
        Rejection::Key(
            "is DER but neither a SubjectPublicKeyInfo nor a PKCS#1 RSA public key".into(),
        )
    })
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";

/// Wraps a PKCS#1 RSAPublicKey (`SEQUENCE { modulus INTEGER, publicExponent INTEGER }`)
/// into a SubjectPublicKeyInfo (RFC 8017 A.1.1, RFC 3279 2.3.1).
fn spki_from_pkcs1(pkcs1: &[u8]) -> Result<Vec<u8>, Rejection> {
    use x509_cert::der::asn1::{BitString, UintRef};
    use x509_cert::der::{Decode as _, Encode as _, Reader as _, SliceReader};
    let mut r = SliceReader::new(pkcs1).map_err(|e| Rejection::Key(e.to_string()))?;
    r.sequence(|r| {
        let _n = UintRef::decode(r)?;
        let _e = UintRef::decode(r)?;
        Ok::<_, x509_cert::der::Error>(())
    })
    .map_err(|e| Rejection::Key(format!("not a PKCS#1 RSA public key: {e}")))?;
    r.finish()
        .map_err(|e| Rejection::Key(format!("not a PKCS#1 RSA public key: {e}")))?;
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned {
        algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
            oid: OID_RSA
                .parse()
                .map_err(|e| Rejection::Key(format!("{e}")))?,
            parameters: Some(x509_cert::der::asn1::Null.into()),
        },
        subject_public_key: BitString::from_bytes(pkcs1)
            .map_err(|e| Rejection::Key(e.to_string()))?,
    };
    spki.to_der().map_err(|e| Rejection::Key(e.to_string()))
}

/// The canonical DER SubjectPublicKeyInfo of a public key, so that equal keys compare
/// equal: EC points (P-256, P-384; SEC 1 2.3.3) uncompressed and checked to be on the
/// curve, RSA with NULL parameters (RFC 3279 2.3.1), Ed25519 without parameters
/// (RFC 8410). Errors name an unsupported algorithm or curve.
pub fn canonical_spki(der: &[u8]) -> Result<Vec<u8>, Rejection> {
    use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
    use x509_cert::der::{Decode as _, Encode as _};
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(der)
        .map_err(|e| Rejection::Key(format!("not a DER SubjectPublicKeyInfo: {e}")))?;
    let alg = spki.algorithm.oid.to_string();
    match alg.as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                .map(|o| o.to_string())
                .ok_or_else(|| Rejection::Key("EC key without a named curve".into()))?;
            let doc = match curve.as_str() {
                OID_P256 => p256::PublicKey::from_public_key_der(der)
                    .map_err(|e| Rejection::Key(format!("not a valid P-256 public key: {e}")))?
                    .to_public_key_der(),
                OID_P384 => p384::PublicKey::from_public_key_der(der)
                    .map_err(|e| Rejection::Key(format!("not a valid P-384 public key: {e}")))?
                    .to_public_key_der(),
                other => {
                    return Err(Rejection::Key(format!(
                        "unsupported EC curve {other} (P-256 and P-384 are supported)"
                    )));
                }
            };
            Ok(doc
                .map_err(|e| Rejection::Key(e.to_string()))?
                .as_bytes()
                .to_vec())
        }
        OID_RSA => {
            let pkcs1 = spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| Rejection::Key("RSA key bits are not whole bytes".into()))?;
            spki_from_pkcs1(pkcs1)
        }
        OID_ED25519 => {
            let raw = spki
                .subject_public_key
                .as_bytes()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| Rejection::Key("Ed25519 key is not 32 bytes".into()))?;
            let canonical = x509_cert::spki::SubjectPublicKeyInfoOwned {
                algorithm: x509_cert::spki::AlgorithmIdentifierOwned {
                    oid: spki.algorithm.oid,
                    parameters: None,
                },
                subject_public_key: x509_cert::der::asn1::BitString::from_bytes(raw)
                    .map_err(|e| Rejection::Key(e.to_string()))?,
            };
            canonical
                .to_der()
                .map_err(|e| Rejection::Key(e.to_string()))
        }
        other => Err(Rejection::Key(format!(
            "unsupported key algorithm {other} (ECDSA P-256/P-384, RSA and Ed25519 are supported)"
        ))),
    }
}

/// Verifies with a key given as DER SPKI (certificate keys, Rekor keys).
pub fn verify_with_spki(spki_der: &[u8], signature: &[u8], msg: &[u8]) -> bool {
    match TrustedKey::from_spki_der("", spki_der) {
        Ok(k) => k.verify(signature, msg),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_verifies_its_own_signatures_only() {
        for scheme in [
            SigningScheme::ECDSA_P256_SHA256_ASN1,
            SigningScheme::ECDSA_P384_SHA384_ASN1,
            SigningScheme::ED25519,
            SigningScheme::RSA_PKCS1_SHA256(2048),
            SigningScheme::RSA_PSS_SHA256(2048),
        ] {
            let signer = scheme.create_signer().unwrap();
            let pem = signer
                .to_sigstore_keypair()
                .unwrap()
                .public_key_to_pem()
                .unwrap();
            let der = pem_block(&pem, "PUBLIC KEY").unwrap();
            let k = TrustedKey::from_spki_der("k", &der).unwrap();
            let sig = signer.sign(b"payload").unwrap();
            assert!(k.verify(&sig, b"payload"), "{scheme}");
            assert!(!k.verify(&sig, b"payloaD"), "{scheme}");
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(!k.verify(&bad, b"payload"), "{scheme}");
        }
        assert!(TrustedKey::from_spki_der("k", b"garbage").is_err());
        assert!(pem_block("no pem here", "PUBLIC KEY").is_none());
    }

    /// The other encodings of one public key (SPKI DER given): DER, compressed EC point,
    /// PKCS#1 PEM and DER for RSA, RSA without the NULL parameters.
    fn other_encodings(spki: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        use x509_cert::der::{Decode as _, Encode as _};
        let parsed = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(spki).unwrap();
        let bits = parsed.subject_public_key.as_bytes().unwrap().to_vec();
        let mut out = vec![("DER SPKI", spki.to_vec())];
        match parsed.algorithm.oid.to_string().as_str() {
            OID_EC_PUBLIC_KEY => {
                let half = (bits.len() - 1) / 2;
                let mut compressed = vec![0x02 | (bits[bits.len() - 1] & 1)];
                compressed.extend_from_slice(&bits[1..1 + half]);
                let mut c = parsed.clone();
                c.subject_public_key =
                    x509_cert::der::asn1::BitString::from_bytes(&compressed).unwrap();
                let der = c.to_der().unwrap();
                out.push(("compressed EC PEM", to_pem("PUBLIC KEY", &der).into_bytes()));
                out.push(("compressed EC DER", der));
            }
            OID_RSA => {
                out.push(("PKCS#1 PEM", to_pem("RSA PUBLIC KEY", &bits).into_bytes()));
                out.push(("PKCS#1 DER", bits.clone()));
                let mut c = parsed.clone();
                c.algorithm.parameters = None;
                out.push(("RSA SPKI without NULL", c.to_der().unwrap()));
            }
            _ => {}
        }
        out
    }

    #[test]
    fn one_key_in_every_encoding_is_one_fingerprint_and_verifies() {
        for scheme in [
            SigningScheme::ECDSA_P256_SHA256_ASN1,
            SigningScheme::ECDSA_P384_SHA384_ASN1,
            SigningScheme::ED25519,
            SigningScheme::RSA_PKCS1_SHA256(2048),
        ] {
            let signer = scheme.create_signer().unwrap();
            let pem = signer
                .to_sigstore_keypair()
                .unwrap()
                .public_key_to_pem()
                .unwrap();
            let sig = signer.sign(b"payload").unwrap();
            let reference = TrustedKey::from_file_bytes("pem", pem.as_bytes()).unwrap();
            let spki = pem_block(&pem, "PUBLIC KEY").unwrap();
            let forms = other_encodings(&spki);
            assert!(!forms.is_empty());
            for (form, bytes) in forms {
                let k = TrustedKey::from_file_bytes(form, &bytes)
                    .unwrap_or_else(|e| panic!("{scheme} {form}: {e}"));
                assert_eq!(k.fingerprint, reference.fingerprint, "{scheme} {form}");
                assert_eq!(k.spki, reference.spki, "{scheme} {form}");
                assert!(k.verify(&sig, b"payload"), "{scheme} {form}");
            }
        }
        // A point off the curve is refused, not canonicalized.
        let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .unwrap();
        let pem = signer
            .to_sigstore_keypair()
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        let mut der = pem_block(&pem, "PUBLIC KEY").unwrap();
        let last = der.len() - 1;
        der[last] ^= 1;
        let e = TrustedKey::from_file_bytes("bad", &der)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a valid P-256 public key"), "{e}");
    }
}
