//! Trusted public keys from the PEM files cosign writes (ECDSA P-256/P-384, RSA, Ed25519).
//! Parsing and signature checks use the sigstore crate's `CosignVerificationKey`
//! (aws-lc-rs underneath); a key file does not say which RSA padding it signs with, so
//! an RSA key is tried with PKCS#1 v1.5 and with PSS.

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
    /// SHA-256 of the DER SubjectPublicKeyInfo; two files with one key are one signer.
    pub fingerprint: Digest,
    /// DER SubjectPublicKeyInfo (what a Rekor entry for this key names).
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
    pub fn load(path: &Path) -> Result<TrustedKey, VerifyError> {
        let text = std::fs::read_to_string(path).map_err(|e| VerifyError::Key {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let der = pem_block(&text, "PUBLIC KEY").ok_or_else(|| VerifyError::Key {
            path: path.to_path_buf(),
            reason: "no PEM \"PUBLIC KEY\" block".into(),
        })?;
        TrustedKey::from_spki_der(&path.display().to_string(), &der).map_err(|reason| {
            VerifyError::Key {
                path: path.to_path_buf(),
                reason,
            }
        })
    }

    pub fn from_spki_der(label: &str, der: &[u8]) -> Result<TrustedKey, String> {
        let key = CosignVerificationKey::try_from_der(der).map_err(|e| e.to_string())?;
        let mut schemes = vec![key.clone()];
        if matches!(key, CosignVerificationKey::RSA_PKCS1_SHA256(_)) {
            schemes.push(
                CosignVerificationKey::from_der(der, &SigningScheme::RSA_PSS_SHA256(0))
                    .map_err(|e| e.to_string())?,
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
}
