//! The project's own signer (cosign is not installable on these machines): signs an
//! image digest with a private key and pushes the signature in one of two formats —
//! the cosign legacy `sha256-<hex>.sig` tag (simple-signing payload layer with the
//! `dev.cosignproject.cosign/signature` annotation) or a sigstore bundle v0.3
//! (message signature) attached as an OCI 1.1 referrer, with the `sha256-<hex>`
//! fallback tag index where the registry lacks the referrers API.
//! Key handling and signing use the sigstore crate (aws-lc-rs underneath).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::json;
use sigstore::crypto::SigningScheme;
use sigstore::crypto::signing_key::ecdsa::ECDSAKeys;
use sigstore::crypto::signing_key::{SigStoreKeyPair, SigStoreSigner};

use super::evidence::{ANN_BUNDLE, ANN_CERTIFICATE, ANN_CHAIN, ANN_SIGNATURE};
use super::keys::pem_block;
use super::payload::{SIMPLE_SIGNING_MEDIA_TYPE, SimpleSigning};
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{Credentials, OCI_INDEX, OCI_MANIFEST, RegistryClient, RegistryError};

pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("private key: {0}")]
    Key(String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("existing signature document {0} does not parse")]
    Existing(String),
}

/// Storage formats the signer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignFormat {
    /// cosign's `sha256-<hex>.sig` tag.
    Legacy,
    /// sigstore bundle v0.3 as an OCI referrer.
    Bundle,
}

/// A private key ready to sign.
pub struct ImageSigner {
    signer: SigStoreSigner,
    /// DER SubjectPublicKeyInfo.
    pub public_spki: Vec<u8>,
}

impl ImageSigner {
    /// Loads a PKCS#8 PEM private key (ECDSA P-256/P-384, Ed25519, RSA). RSA keys sign
    /// with PKCS#1 v1.5 unless `rsa_pss` is set.
    pub fn from_pem(pem: &[u8], rsa_pss: bool) -> Result<ImageSigner, SignError> {
        let pair = SigStoreKeyPair::from_pem(pem).map_err(|e| SignError::Key(e.to_string()))?;
        let scheme = match &pair {
            SigStoreKeyPair::ECDSA(ECDSAKeys::P256(_)) => SigningScheme::ECDSA_P256_SHA256_ASN1,
            SigStoreKeyPair::ECDSA(ECDSAKeys::P384(_)) => SigningScheme::ECDSA_P384_SHA384_ASN1,
            SigStoreKeyPair::ECDSA(ECDSAKeys::P521(_)) => SigningScheme::ECDSA_P521_SHA512_ASN1,
            SigStoreKeyPair::ED25519(_) => SigningScheme::ED25519,
            SigStoreKeyPair::RSA(_) if rsa_pss => SigningScheme::RSA_PSS_SHA256(0),
            SigStoreKeyPair::RSA(_) => SigningScheme::RSA_PKCS1_SHA256(0),
        };
        let signer = pair
            .to_sigstore_signer(&scheme)
            .map_err(|e| SignError::Key(e.to_string()))?;
        let public_spki = pair
            .public_key_to_der()
            .map_err(|e| SignError::Key(e.to_string()))?;
        Ok(ImageSigner {
            signer,
            public_spki,
        })
    }

    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        self.signer
            .sign(msg)
            .map_err(|e| SignError::Sign(e.to_string()))
    }
}

/// A new key pair as (PKCS#8 private PEM, public PEM).
pub fn generate_key(scheme: SigningScheme) -> Result<(String, String), SignError> {
    let signer = scheme
        .create_signer()
        .map_err(|e| SignError::Key(e.to_string()))?;
    let pair = signer
        .to_sigstore_keypair()
        .map_err(|e| SignError::Key(e.to_string()))?;
    let private = pair
        .private_key_to_pem()
        .map_err(|e| SignError::Key(e.to_string()))?;
    let public = pair
        .public_key_to_pem()
        .map_err(|e| SignError::Key(e.to_string()))?;
    Ok((private.to_string(), public))
}

/// The simple-signing payload for `digest` in repository `docker_reference`.
pub fn simple_signing_payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    serde_json::to_vec(&SimpleSigning::new(docker_reference, digest)).unwrap_or_default()
}

/// One layer of a legacy `.sig` manifest: the payload blob and its annotations.
#[derive(Debug, Clone)]
pub struct LegacySignature {
    pub payload: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

impl LegacySignature {
    pub fn new(payload: Vec<u8>, signature: &[u8]) -> LegacySignature {
        let mut annotations = BTreeMap::new();
        annotations.insert(ANN_SIGNATURE.to_string(), BASE64.encode(signature));
        LegacySignature {
            payload,
            annotations,
        }
    }

    /// Keyless material: the Fulcio certificate (PEM), its chain (PEM) and the legacy
    /// Rekor bundle annotation (JSON).
    pub fn with_keyless(mut self, cert_pem: &str, chain_pem: &str, rekor_bundle: &str) -> Self {
        self.annotations
            .insert(ANN_CERTIFICATE.to_string(), cert_pem.to_string());
        if !chain_pem.is_empty() {
            self.annotations
                .insert(ANN_CHAIN.to_string(), chain_pem.to_string());
        }
        if !rekor_bundle.is_empty() {
            self.annotations
                .insert(ANN_BUNDLE.to_string(), rekor_bundle.to_string());
        }
        self
    }
}

/// Signs `subject` and pushes the signature in `format`. Returns the digest of the
/// signature manifest written.
pub async fn sign_and_push(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    signer: &ImageSigner,
    format: SignFormat,
    creds: &Credentials,
) -> Result<Digest, SignError> {
    let payload = simple_signing_payload(&reference.name(), subject);
    let signature = signer.sign(&payload)?;
    match format {
        SignFormat::Legacy => {
            push_legacy(
                client,
                reference,
                subject,
                &[LegacySignature::new(payload, &signature)],
                creds,
            )
            .await
        }
        SignFormat::Bundle => {
            let bundle = message_bundle(&payload, &signature, &signer.public_spki);
            push_bundle(client, reference, subject, &bundle, Some(&payload), creds).await
        }
    }
}

/// Appends signature layers to the `sha256-<hex>.sig` manifest (creating it), as cosign does.
pub async fn push_legacy(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    signatures: &[LegacySignature],
    creds: &Credentials,
) -> Result<Digest, SignError> {
    let tag = format!("{}.sig", subject.tag_form());
    let mut layers: Vec<serde_json::Value> =
        match client.manifest_by_tag(reference, &tag, creds).await? {
            Some(m) => {
                let v: serde_json::Value = serde_json::from_slice(&m.bytes)
                    .map_err(|_| SignError::Existing(tag.clone()))?;
                v["layers"].as_array().cloned().unwrap_or_default()
            }
            None => Vec::new(),
        };
    for s in signatures {
        let blob = Bytes::from(s.payload.clone());
        let digest = client.push_blob(reference, &blob, creds).await?;
        let layer = json!({
            "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
            "digest": digest.to_string(),
            "size": blob.len(),
            "annotations": s.annotations,
        });
        if !layers.contains(&layer) {
            layers.push(layer);
        }
    }
    let diff_ids: Vec<String> = layers
        .iter()
        .filter_map(|l| l["digest"].as_str().map(str::to_string))
        .collect();
    let config = Bytes::from(
        serde_json::to_vec(&json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap_or_default(),
    );
    let config_digest = client.push_blob(reference, &config, creds).await?;
    let manifest = Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len() },
            "layers": layers,
        }))
        .unwrap_or_default(),
    );
    Ok(client
        .push_manifest(reference, &tag, OCI_MANIFEST, &manifest, creds)
        .await?)
}

/// A sigstore bundle v0.3 with a message signature over `payload`, key-signed (the
/// public key hint is the key's SPKI digest, as cosign writes).
pub fn message_bundle(payload: &[u8], signature: &[u8], public_spki: &[u8]) -> Vec<u8> {
    let digest = Digest::sha256_of(payload);
    let raw = hex::decode(digest.hex()).unwrap_or_default();
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": { "hint": BASE64.encode(hex::decode(Digest::sha256_of(public_spki).hex()).unwrap_or_default()) },
            "tlogEntries": [],
        },
        "messageSignature": {
            "messageDigest": { "algorithm": "SHA2_256", "digest": BASE64.encode(raw) },
            "signature": BASE64.encode(signature),
        },
    }))
    .unwrap_or_default()
}

/// Pushes a bundle as a referrer of `subject`: a manifest with `subject` and
/// `artifactType`, the bundle layer and (for message signatures) the signed payload
/// layer. Where the registry has no referrers API the `sha256-<hex>` index is updated.
pub async fn push_bundle(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    bundle: &[u8],
    payload: Option<&[u8]>,
    creds: &Credentials,
) -> Result<Digest, SignError> {
    let subject_manifest = client
        .manifest_by_digest(&reference.with_digest(subject.clone()), subject, creds)
        .await?;
    let empty = Bytes::from_static(b"{}");
    let empty_digest = client.push_blob(reference, &empty, creds).await?;
    let bundle_blob = Bytes::from(bundle.to_vec());
    let bundle_digest = client.push_blob(reference, &bundle_blob, creds).await?;
    let mut layers = vec![json!({
        "mediaType": BUNDLE_V03_MEDIA_TYPE, "digest": bundle_digest.to_string(), "size": bundle_blob.len(),
    })];
    if let Some(p) = payload {
        let blob = Bytes::from(p.to_vec());
        let d = client.push_blob(reference, &blob, creds).await?;
        layers.push(json!({ "mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "digest": d.to_string(), "size": blob.len() }));
    }
    let manifest = Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_V03_MEDIA_TYPE,
            "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": empty_digest.to_string(), "size": 2 },
            "layers": layers,
            "subject": {
                "mediaType": subject_manifest.media_type,
                "digest": subject.to_string(),
                "size": subject_manifest.bytes.len(),
            },
            "annotations": { "dev.sigstore.bundle.content": "message-signature" },
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
        .await?;
    if client
        .referrers(reference, subject, None, creds)
        .await?
        .is_none()
    {
        update_fallback_index(
            client,
            reference,
            subject,
            &manifest_digest,
            manifest.len(),
            creds,
        )
        .await?;
    }
    Ok(manifest_digest)
}

async fn update_fallback_index(
    client: &RegistryClient,
    reference: &Reference,
    subject: &Digest,
    manifest_digest: &Digest,
    size: usize,
    creds: &Credentials,
) -> Result<(), SignError> {
    let tag = subject.tag_form();
    let mut manifests: Vec<serde_json::Value> =
        match client.manifest_by_tag(reference, &tag, creds).await? {
            Some(m) => {
                let v: serde_json::Value = serde_json::from_slice(&m.bytes)
                    .map_err(|_| SignError::Existing(tag.clone()))?;
                v["manifests"].as_array().cloned().unwrap_or_default()
            }
            None => Vec::new(),
        };
    let d = manifest_digest.to_string();
    if !manifests.iter().any(|m| m["digest"] == d.as_str()) {
        manifests.push(json!({
            "mediaType": OCI_MANIFEST, "digest": d, "size": size,
            "artifactType": BUNDLE_V03_MEDIA_TYPE,
        }));
    }
    let index = Bytes::from(
        serde_json::to_vec(
            &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }),
        )
        .unwrap_or_default(),
    );
    client
        .push_manifest(reference, &tag, OCI_INDEX, &index, creds)
        .await?;
    Ok(())
}

/// Reads a public key PEM into DER SPKI (for tests and the CLI).
pub fn public_pem_to_spki(pem: &str) -> Option<Vec<u8>> {
    pem_block(pem, "PUBLIC KEY")
}
