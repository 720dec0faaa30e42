//! This node's attestation signing key: PKCS#8 PEM (`PRIVATE KEY`) or a cosign key
//! (`ENCRYPTED SIGSTORE PRIVATE KEY` / `ENCRYPTED COSIGN PRIVATE KEY`: scrypt +
//! secretbox, as `cosign generate-key-pair` writes), ECDSA P-256 or Ed25519. Parsing
//! and signing are the sigstore crate's (aws-lc-rs underneath).

use sigstore::crypto::SigningScheme;
use sigstore::crypto::signing_key::ecdsa::ECDSAKeys;
use sigstore::crypto::signing_key::{SigStoreKeyPair, SigStoreSigner};

use crate::verify::keys::TrustedKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    #[error(
        "not a private key PEM (PRIVATE KEY, ENCRYPTED SIGSTORE PRIVATE KEY or ENCRYPTED COSIGN PRIVATE KEY)"
    )]
    NotPrivateKey,
    #[error("cannot read the private key: {0} (for an encrypted cosign key, check the password)")]
    Parse(String),
    #[error("{0} keys cannot sign scan attestations (ECDSA P-256 and Ed25519 can)")]
    Unsupported(&'static str),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A private key ready to sign attestations, with its public half.
pub struct AttestationSigner {
    signer: SigStoreSigner,
    /// The public key, in canonical form (its fingerprint is the DSSE keyid).
    pub public: TrustedKey,
}

impl std::fmt::Debug for AttestationSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttestationSigner")
            .field("public", &self.public.name)
            .finish_non_exhaustive()
    }
}

impl AttestationSigner {
    /// `label` names the key in reports (usually its path); `password` decrypts a
    /// cosign key (cosign's default is the empty password).
    pub fn from_pem(
        label: &str,
        pem: &[u8],
        password: &[u8],
    ) -> Result<AttestationSigner, SignerError> {
        let text = std::str::from_utf8(pem).map_err(|_| SignerError::NotPrivateKey)?;
        let encrypted = text.contains("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
            || text.contains("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----");
        let pair = if encrypted {
            SigStoreKeyPair::from_encrypted_pem(pem, password)
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            SigStoreKeyPair::from_pem(pem)
        } else {
            return Err(SignerError::NotPrivateKey);
        }
        .map_err(|e| SignerError::Parse(e.to_string()))?;
        let scheme = match &pair {
            SigStoreKeyPair::ECDSA(ECDSAKeys::P256(_)) => SigningScheme::ECDSA_P256_SHA256_ASN1,
            SigStoreKeyPair::ED25519(_) => SigningScheme::ED25519,
            SigStoreKeyPair::ECDSA(ECDSAKeys::P384(_)) => {
                return Err(SignerError::Unsupported("ECDSA P-384"));
            }
            SigStoreKeyPair::ECDSA(ECDSAKeys::P521(_)) => {
                return Err(SignerError::Unsupported("ECDSA P-521"));
            }
            SigStoreKeyPair::RSA(_) => return Err(SignerError::Unsupported("RSA")),
        };
        let signer = pair
            .to_sigstore_signer(&scheme)
            .map_err(|e| SignerError::Parse(e.to_string()))?;
        let spki = pair
            .public_key_to_der()
            .map_err(|e| SignerError::Parse(e.to_string()))?;
        let public = TrustedKey::from_spki_der(label, &spki)
            .map_err(|e| SignerError::Parse(e.to_string()))?;
        Ok(AttestationSigner { signer, public })
    }

    /// A raw signature over `msg` (ASN.1 DER for ECDSA, 64 bytes for Ed25519).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.signer
            .sign(msg)
            .map_err(|e| SignerError::Sign(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_cosign_keys_load_others_are_refused() {
        for scheme in [
            SigningScheme::ECDSA_P256_SHA256_ASN1,
            SigningScheme::ED25519,
        ] {
            let pair = scheme
                .create_signer()
                .unwrap()
                .to_sigstore_keypair()
                .unwrap();
            let plain = pair.private_key_to_pem().unwrap();
            let s = AttestationSigner::from_pem("k", plain.as_bytes(), b"").unwrap();
            let sig = s.sign(b"m").unwrap();
            assert!(s.public.verify(&sig, b"m"), "{scheme}");
            let enc = pair.private_key_to_encrypted_pem(b"pw").unwrap();
            assert!(enc.contains("ENCRYPTED SIGSTORE PRIVATE KEY"));
            let e = AttestationSigner::from_pem("k", enc.as_bytes(), b"pw").unwrap();
            assert_eq!(e.public.fingerprint, s.public.fingerprint);
            assert!(matches!(
                AttestationSigner::from_pem("k", enc.as_bytes(), b"wrong"),
                Err(SignerError::Parse(_))
            ));
        }
        let p384 = SigningScheme::ECDSA_P384_SHA384_ASN1
            .create_signer()
            .unwrap()
            .to_sigstore_keypair()
            .unwrap()
            .private_key_to_pem()
            .unwrap();
        assert_eq!(
            AttestationSigner::from_pem("k", p384.as_bytes(), b"").unwrap_err(),
            SignerError::Unsupported("ECDSA P-384")
        );
        let public = SigningScheme::ED25519
            .create_signer()
            .unwrap()
            .to_sigstore_keypair()
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        assert_eq!(
            AttestationSigner::from_pem("k", public.as_bytes(), b"").unwrap_err(),
            SignerError::NotPrivateKey
        );
        assert!(AttestationSigner::from_pem("k", b"\xff", b"").is_err());
    }
}
