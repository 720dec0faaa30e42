//! cosign/sigstore signature verification: keys, keyless, bundles. No policy decisions
//! beyond the signature section itself: `Verifier::verify` says which trusted signers
//! signed exactly this digest, and why every other signature found did not count.
//!
//! Layout: `discover` finds signatures (referrers API / fallback tag / legacy `.sig`
//! tag), `evidence` normalizes every storage format, `keys` and `keyless` hold the
//! trust material and checks, `timestamp` RFC 3161 signed times, `payload` the
//! digest/repository binding, `sign` the project's own signer.

pub mod discover;
pub mod evidence;
pub mod keyless;
pub mod keys;
pub mod payload;
mod rejection;
pub mod sign;
pub mod timestamp;

use std::collections::BTreeMap;
use std::path::PathBuf;

use globset::GlobSet;

use crate::config::{KeylessIdentity, SignatureLocation, SignaturePolicy};
use crate::digest::Digest;
use crate::oci::OciError;
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{
    Credentials, DOCKER_MANIFEST_LIST, OCI_INDEX, RegistryClient, RegistryError,
};
use crate::report::{SignatureCheck, SignatureReport};
use discover::Found;
use evidence::Evidence;
use keyless::{BodyKey, SignedTime, TrustMaterial};
use keys::TrustedKey;
use payload::parse_claim;
pub use rejection::{FileRejection, Rejection};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("public key {path}: {reason}")]
    Key {
        path: PathBuf,
        #[source]
        reason: Rejection,
    },
    #[error("trusted root {path}: {reason}")]
    TrustRoot {
        path: PathBuf,
        #[source]
        reason: Rejection,
    },
    /// The registry could not be asked (unreachable, timeout, 5xx, auth): not a
    /// verification result, and never cached as one.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{reference} resolves to an index without a {os}/{arch} manifest")]
    NoPlatform {
        reference: String,
        os: String,
        arch: String,
    },
    #[error("{reference}: the index does not parse: {reason}")]
    BadIndex { reference: String, reason: String },
}

/// The digests a signature may sit on: the multi-platform index (when the reference
/// names one) and the platform manifest that is pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDigests {
    pub index: Option<Digest>,
    pub manifest: Digest,
}

/// A signature policy with its keys and trust root loaded. Rebuilt on config reload.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<TrustedKey>,
    keyless: Vec<KeylessIdentity>,
    trust: Option<TrustMaterial>,
    threshold: usize,
    require_on: SignatureLocation,
    require_tlog: bool,
    allowed_references: GlobSet,
}

const SIGNER_KEYLESS: &str = "keyless";

impl Verifier {
    /// Reads the policy's key and trust-root files from disk (the CLI; the daemon
    /// builds its verifiers from the load's snapshot, the policy snapshot).
    pub fn load(policy: &SignaturePolicy) -> Result<Verifier, VerifyError> {
        Verifier::from_bytes(policy, |path, limit| {
            keys::read_config_file(path, limit).map(std::sync::Arc::from)
        })
    }

    /// Builds the verifier from the key and trust-root bytes that `file` gives for each
    /// path (with the size limit of that kind of file, in bytes): no I/O of its own.
    pub fn from_bytes(
        policy: &SignaturePolicy,
        file: impl Fn(&std::path::Path, u64) -> Result<std::sync::Arc<[u8]>, FileRejection>,
    ) -> Result<Verifier, VerifyError> {
        let mut keys: Vec<TrustedKey> = Vec::new();
        for path in &policy.keys {
            let key_err = |reason| VerifyError::Key {
                path: path.clone(),
                reason,
            };
            let bytes = file(path, keys::MAX_KEY_FILE_BYTES).map_err(|e| key_err(e.into()))?;
            let k = TrustedKey::from_file_bytes(&path.display().to_string(), &bytes)
                .map_err(key_err)?;
            // The same key in two files (or two encodings) is one signer.
            if !keys.iter().any(|o| o.fingerprint == k.fingerprint) {
                keys.push(k);
            }
        }
        let trust = match policy.trusted_root.as_deref() {
            None => None,
            Some(path) => {
                let root_err = |reason| VerifyError::TrustRoot {
                    path: path.to_path_buf(),
                    reason,
                };
                let bytes = file(path, crate::config::MAX_TRUST_ROOT_BYTES)
                    .map_err(|e| root_err(e.into()))?;
                Some(TrustMaterial::from_json(&bytes).map_err(root_err)?)
            }
        };
        Ok(Verifier {
            keys,
            keyless: policy.keyless.clone(),
            trust,
            threshold: policy.threshold,
            require_on: policy.require_on,
            require_tlog: policy.require_tlog,
            allowed_references: policy.allowed_reference_globs.clone(),
        })
    }

    /// The distinct keys this verifier trusts, in the policy's order.
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// Finds and verifies the signatures of `subject`. `Err` only when the registry could
    /// not be asked; every verification failure is a report with `satisfied = false`.
    pub async fn verify(
        &self,
        client: &RegistryClient,
        reference: &Reference,
        subject: &ImageDigests,
        creds: &Credentials,
    ) -> Result<SignatureReport, VerifyError> {
        let on_manifest = discover::discover(client, reference, &subject.manifest, creds);
        let found = match &subject.index {
            Some(index) if *index != subject.manifest => {
                let on_index = discover::discover(client, reference, index, creds);
                let (m, i) = futures::join!(on_manifest, on_index);
                let mut all = m?;
                all.extend(i?);
                all
            }
            _ => on_manifest.await?,
        };
        Ok(self.evaluate(reference, subject, &found))
    }

    /// Judges found signatures (no I/O).
    pub fn evaluate(
        &self,
        reference: &Reference,
        subject: &ImageDigests,
        found: &[Found],
    ) -> SignatureReport {
        let mut checks = Vec::new();
        // Who signed, by canonical identity → the name reported. A key counts once by
        // its canonical SPKI (however many files list it); a keyless signer once by the
        // certificate's (issuer, subject), however many configured identities match it;
        // and a certificate for a listed key is that key: identities that share a key or
        // an (issuer, subject) are one signer (see `Signers`).
        let mut signers = Signers::default();
        let subjects: Vec<&Digest> = std::iter::once(&subject.manifest)
            .chain(subject.index.iter().filter(|i| **i != subject.manifest))
            .collect();
        for s in subjects {
            if !found.iter().any(|f| f.subject == *s) {
                checks.push(SignatureCheck {
                    subject: s.to_string(),
                    source: "none".into(),
                    artifact: None,
                    signer: None,
                    verified: false,
                    reason:
                        "no signatures found (referrers, sha256-<hex> tag, sha256-<hex>.sig tag)"
                            .into(),
                });
            }
        }
        for f in found {
            let check = |signer: Option<String>, result: Result<(), Rejection>| SignatureCheck {
                subject: f.subject.to_string(),
                source: f.source.to_string(),
                artifact: f.artifact.clone(),
                signer,
                verified: result.is_ok(),
                reason: match result {
                    Ok(()) => "verified".into(),
                    Err(r) => r.to_string(),
                },
            };
            let ev = match &f.evidence {
                Ok(ev) => ev,
                Err(reason) => {
                    checks.push(check(None, Err(reason.clone())));
                    continue;
                }
            };
            let mut tried = false;
            for key in &self.keys {
                tried = true;
                let r = self.check_key(key, ev, reference, subject, f);
                if r.is_ok() {
                    signers.add(&[format!("key {}", key.fingerprint)], &key.name);
                }
                checks.push(check(Some(key.name.clone()), r));
            }
            if !ev.certificates.is_empty() && !self.keyless.is_empty() {
                tried = true;
                match self.check_keyless_common(ev, reference, subject, f) {
                    Err(reason) => checks.push(check(Some(SIGNER_KEYLESS.into()), Err(reason))),
                    Ok(cert) => {
                        for id in &self.keyless {
                            let name = keyless::identity_name(id);
                            let r = keyless::match_identity(id, &cert);
                            if r.is_ok() {
                                let mut ids = vec![keyless_signer(&cert)];
                                if let Some(fp) =
                                    ev.certificates.first().and_then(|c| certificate_key(c))
                                {
                                    ids.push(format!("key {fp}"));
                                }
                                signers.add(&ids, &name);
                            }
                            checks.push(check(Some(name), r));
                        }
                    }
                }
            }
            if !tried {
                let reason = if ev.certificates.is_empty() {
                    "key-signed signature, but the policy trusts no keys"
                } else {
                    "keyless signature, but the policy trusts no keyless identity"
                };
                checks.push(check(None, Err(Rejection::Signature(reason.into()))));
            }
        }
        let names = signers.names();
        SignatureReport {
            required: true,
            satisfied: names.len() >= self.threshold,
            threshold: self.threshold,
            verified_signers: names,
            checks,
        }
    }

    fn check_key(
        &self,
        key: &TrustedKey,
        ev: &Evidence,
        reference: &Reference,
        image: &ImageDigests,
        f: &Found,
    ) -> Result<(), Rejection> {
        if !key.verify(&ev.signature, &ev.signed) {
            return Err(Rejection::Signature(
                "signature does not verify with this key".into(),
            ));
        }
        if self.require_tlog {
            let trust = self.trust.as_ref().ok_or_else(|| {
                Rejection::Signature(
                    "missing transparency proof (policy requires one but has no trusted_root)"
                        .into(),
                )
            })?;
            // Every proof present must verify, even where a key needs no signed time.
            let stamps = verify_timestamps(trust, ev)?;
            keyless::verify_tlog(
                trust,
                ev.tlog.as_ref(),
                ev,
                &BodyKey::Spki(&key.spki),
                false,
                &stamps,
            )?;
        }
        self.check_binding(ev, reference, image, f)
    }

    /// The identity-independent part of a keyless check; returns the certificate's
    /// identity for matching against each configured identity.
    fn check_keyless_common(
        &self,
        ev: &Evidence,
        reference: &Reference,
        image: &ImageDigests,
        f: &Found,
    ) -> Result<keyless::CertIdentity, Rejection> {
        let trust = self.trust.as_ref().ok_or_else(|| {
            Rejection::Signature("keyless signature, but the policy has no trusted_root".into())
        })?;
        let cert = verify_keyless(trust, ev)?;
        self.check_binding(ev, reference, image, f)?;
        Ok(cert)
    }

    /// The signed payload must name the digest the signature was found for, and (for
    /// simple signing) this image's repository or one the policy allows.
    fn check_binding(
        &self,
        ev: &Evidence,
        reference: &Reference,
        image: &ImageDigests,
        f: &Found,
    ) -> Result<(), Rejection> {
        let claim = parse_claim(ev.payload_kind, &ev.payload)?;
        if !claim.digests.contains(&f.subject) {
            return Err(Rejection::Signature(match claim.digests.first() {
                Some(d) => format!("signed payload is for {d}, not {}", f.subject),
                None => format!("signed payload names no digest (expected {})", f.subject),
            }));
        }
        if matches!(self.require_on, SignatureLocation::Platform) && f.subject != image.manifest {
            return Err(Rejection::Signature(
                "signature is on the index; the policy requires one on the platform manifest"
                    .into(),
            ));
        }
        if let Some(r) = &claim.docker_reference {
            let named = r
                .parse::<Reference>()
                .map(|p| p.name())
                .unwrap_or_else(|_| r.clone());
            let own = reference.name();
            if named != own && !self.allowed_references.is_match(&named) {
                return Err(Rejection::Signature(format!(
                    "signed payload names repository {:?}, not {own:?}",
                    named.chars().take(200).collect::<String>()
                )));
            }
        }
        Ok(())
    }
}

/// The threshold identity of a keyless signer: the certificate's issuer and subject
/// (length-prefixed, so no two pairs run together into one string).
/// Verified signers as sets of identities (`key <fingerprint>`, `keyless <issuer>
/// <subject>`): identities seen on one signature are one signer, and so are signatures
/// that share an identity (a union-find; a few entries per image).
#[derive(Default)]
struct Signers {
    parent: BTreeMap<String, String>,
    names: BTreeMap<String, String>,
}

impl Signers {
    fn root(&self, id: &str) -> String {
        let mut at = id.to_string();
        while let Some(p) = self.parent.get(&at).filter(|p| **p != at) {
            at = p.clone();
        }
        at
    }

    fn add(&mut self, ids: &[String], name: &str) {
        for id in ids {
            self.parent.entry(id.clone()).or_insert_with(|| id.clone());
            self.names
                .entry(id.clone())
                .or_insert_with(|| name.to_string());
        }
        if let Some(first) = ids.first() {
            let root = self.root(first);
            for id in ids.iter().skip(1) {
                let other = self.root(id);
                if other != root {
                    self.parent.insert(other, root.clone());
                }
            }
        }
    }

    /// One name per signer (the first name seen among its identities), sorted.
    fn names(&self) -> Vec<String> {
        let mut by_root: BTreeMap<String, String> = BTreeMap::new();
        for (id, name) in &self.names {
            let root = self.root(id);
            let entry = by_root.entry(root).or_insert_with(|| name.clone());
            if name < entry {
                *entry = name.clone();
            }
        }
        let mut names: Vec<String> = by_root.into_values().collect();
        names.sort();
        names
    }
}

/// The canonical fingerprint of a DER certificate's public key, as listed keys have it.
fn certificate_key(der: &[u8]) -> Option<Digest> {
    use x509_cert::der::{Decode as _, Encode as _};
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()?;
    let canonical = keys::canonical_spki(&spki).ok()?;
    Some(Digest::sha256_of(&canonical))
}

fn keyless_signer(cert: &keyless::CertIdentity) -> String {
    let issuer = cert.issuer.as_deref().unwrap_or("");
    let subject = cert.subject.as_deref().unwrap_or("");
    format!(
        "keyless {}:{issuer} {}:{subject}",
        issuer.len(),
        subject.len()
    )
}

/// The identity-independent checks of a keyless signature (module doc, steps 1–3
/// and the Rekor-body half of 4): the signature verifies with the leaf certificate's
/// key over `ev.signed`; every RFC 3161 timestamp, the SET and any inclusion proof
/// verify against `trust`, and the Rekor entry names this signature, payload and
/// certificate; the certificate chains to a trusted CA at every signed time. Returns
/// the certificate's identity for matching; what the payload names is the caller's to
/// check. Errors are the reason, as reports show it.
pub fn verify_keyless(
    trust: &TrustMaterial,
    ev: &Evidence,
) -> Result<keyless::CertIdentity, Rejection> {
    let leaf = ev
        .certificates
        .first()
        .ok_or_else(|| Rejection::Signature("no certificate".into()))?;
    let spki = keyless::certificate_spki(leaf)?;
    // The crate skips this: without it, a layer with any logged certificate verifies.
    if !keys::verify_with_spki(&spki, &ev.signature, &ev.signed) {
        return Err(Rejection::Signature(
            "signature does not verify with the certificate's key".into(),
        ));
    }
    // The signing time comes from the SET (Rekor v1) or from RFC 3161 timestamps
    // (Rekor v2, which has no SET); when both are present all must verify and the
    // certificate must have been valid at each.
    let stamps = verify_timestamps(trust, ev)?;
    let integrated = keyless::verify_tlog(
        trust,
        ev.tlog.as_ref(),
        ev,
        &BodyKey::Certificate(leaf),
        stamps.is_empty(),
        &stamps,
    )?;
    let times: Vec<SignedTime> = integrated
        .map(SignedTime::Integrated)
        .into_iter()
        .chain(stamps.into_iter().map(SignedTime::Timestamp))
        .collect();
    keyless::verify_certificate(trust, &ev.certificates, &times)
}

/// Verifies every RFC 3161 timestamp of a signature; returns their genTimes.
fn verify_timestamps(trust: &TrustMaterial, ev: &Evidence) -> Result<Vec<i64>, Rejection> {
    ev.timestamps
        .iter()
        .map(|t| timestamp::verify(t, &ev.signature, trust.timestamp_authorities()))
        .collect()
}

pub use crate::platform::host_arch;

/// Resolves a reference to the digests a signature may sit on, choosing the host
/// platform's manifest from an index.
pub async fn resolve_image(
    client: &RegistryClient,
    reference: &Reference,
    creds: &Credentials,
) -> Result<ImageDigests, VerifyError> {
    let top = client.resolve(reference, creds).await?;
    if top.media_type == OCI_INDEX || top.media_type == DOCKER_MANIFEST_LIST {
        let index = crate::oci::parse_index(&top.bytes).map_err(|e| VerifyError::BadIndex {
            reference: reference.to_string(),
            reason: e.to_string(),
        })?;
        let platform = Platform::host();
        let manifest =
            crate::oci::select_manifest_digest(&index, &platform).map_err(|e| match e {
                OciError::NoPlatform { .. } => VerifyError::NoPlatform {
                    reference: reference.to_string(),
                    os: platform.os.clone(),
                    arch: platform.architecture.clone(),
                },
                e => VerifyError::BadIndex {
                    reference: reference.to_string(),
                    reason: e.to_string(),
                },
            })?;
        Ok(ImageDigests {
            index: Some(top.digest),
            manifest,
        })
    } else {
        Ok(ImageDigests {
            index: None,
            manifest: top.digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use sigstore::crypto::SigningScheme;

    fn setup(extra: &str) -> (tempfile::TempDir, sign::ImageSigner, Verifier) {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = sign::generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
        let path = dir.path().join("k.pub");
        std::fs::write(&path, public).unwrap();
        let cfg = Config::parse(&format!(
            "[[policy]]\nname = \"p\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [{:?}]\n{extra}",
            path.display().to_string()
        ))
        .unwrap();
        let v = Verifier::load(cfg.policies[0].signatures.as_ref().unwrap()).unwrap();
        (
            dir,
            sign::ImageSigner::from_pem(private.as_bytes(), false).unwrap(),
            v,
        )
    }

    fn found(subject: &Digest, evidence: Result<Evidence, String>) -> Found {
        Found {
            subject: subject.clone(),
            source: discover::SOURCE_REFERRERS,
            artifact: None,
            evidence: evidence.map_err(Rejection::Evidence),
        }
    }

    fn dsse_bundle(signer: &sign::ImageSigner, statement_digest: &Digest) -> Vec<u8> {
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"r.io/app","digest":{{"sha256":"{}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#,
            statement_digest.hex()
        );
        let sig = signer
            .sign(&payload::dsse_pae(
                payload::IN_TOTO_PAYLOAD_TYPE,
                statement.as_bytes(),
            ))
            .unwrap();
        serde_json::to_vec(&serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "k"}},
            "dsseEnvelope": {
                "payload": BASE64.encode(statement),
                "payloadType": payload::IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": BASE64.encode(sig)}],
            },
        }))
        .unwrap()
    }

    #[test]
    fn dsse_bundles_bind_the_statement_subject() {
        let (_d, signer, v) = setup("");
        let r: Reference = "r.io/app:v1".parse().unwrap();
        let d = Digest::sha256_of(b"manifest");
        let subject = ImageDigests {
            index: None,
            manifest: d.clone(),
        };
        let ev = evidence::from_bundle(&dsse_bundle(&signer, &d), None);
        let rep = v.evaluate(&r, &subject, &[found(&d, ev.map_err(|e| e.to_string()))]);
        assert!(rep.satisfied, "{:?}", rep.checks);
        let other = Digest::sha256_of(b"other");
        let ev = evidence::from_bundle(&dsse_bundle(&signer, &other), None);
        let rep = v.evaluate(&r, &subject, &[found(&d, ev.map_err(|e| e.to_string()))]);
        assert!(!rep.satisfied);
        assert_eq!(
            rep.checks[0].reason,
            format!("signed payload is for {other}, not {d}")
        );
    }

    #[test]
    fn unreadable_and_unmatched_signatures_are_explained() {
        let (_d, signer, v) = setup("");
        let r: Reference = "r.io/app:v1".parse().unwrap();
        let d = Digest::sha256_of(b"manifest");
        let idx = Digest::sha256_of(b"index");
        let subject = ImageDigests {
            index: Some(idx.clone()),
            manifest: d.clone(),
        };
        let rep = v.evaluate(&r, &subject, &[found(&d, Err("junk".into()))]);
        assert!(!rep.satisfied && rep.required);
        assert_eq!(rep.checks.len(), 2);
        // The index had nothing; the manifest had something unreadable.
        assert_eq!(rep.checks[0].source, "none");
        assert_eq!(rep.checks[0].subject, idx.to_string());
        assert_eq!(rep.checks[1].reason, "junk");
        // A keyless signature under a key-only policy.
        let payload = sign::simple_signing_payload("r.io/app", &d);
        let ev = Evidence {
            payload_kind: payload::PayloadKind::SimpleSigning,
            signature: signer.sign(&payload).unwrap(),
            signed: payload.clone(),
            payload,
            certificates: vec![b"not a certificate".to_vec()],
            tlog: None,
            timestamps: Vec::new(),
        };
        let rep = v.evaluate(&r, &subject, &[found(&d, Ok(ev.clone()))]);
        // The key does verify it (same key pair): key checks do not look at certificates.
        assert!(rep.satisfied);
        // With require_tlog and no trust root the same signature does not count.
        let (_d2, signer2, strict) = setup("require_tlog = true\n");
        let mut ev2 = ev;
        ev2.signature = signer2.sign(&ev2.signed).unwrap();
        let rep = strict.evaluate(&r, &subject, &[found(&d, Ok(ev2))]);
        assert!(!rep.satisfied);
        assert!(
            rep.checks
                .iter()
                .any(|c| c.reason.starts_with("missing transparency proof")),
            "{:?}",
            rep.checks
        );
    }
}

#[cfg(test)]
mod send_tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync + Clone>() {}

    /// The gate runs verifications on spawned tasks and shares one client and verifier.
    #[test]
    fn verification_futures_are_send() {
        assert_send_sync::<Verifier>();
        assert_send_sync::<RegistryClient>();
        let client = RegistryClient::new(&crate::config::Config::default().registry).unwrap();
        let v = Verifier {
            keys: Vec::new(),
            keyless: Vec::new(),
            trust: None,
            threshold: 1,
            require_on: SignatureLocation::Any,
            require_tlog: false,
            allowed_references: GlobSet::empty(),
        };
        let r: Reference = "r.io/a:v1".parse().unwrap();
        let s = ImageDigests {
            index: None,
            manifest: Digest::sha256_of(b"x"),
        };
        let creds = Credentials::default();
        let fut = v.verify(&client, &r, &s, &creds);
        assert_send(&fut);
        let fut = resolve_image(&client, &r, &creds);
        assert_send(&fut);
    }
}
