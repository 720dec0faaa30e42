//! Signature verification against the real registry (signatures pushed by the
//! project's signer) and against a scripted fake registry for what the real one cannot
//! do (referrers API, hostile answers, bearer auth). Keyless material (test CA, Fulcio
//! style leaves, Rekor key, trusted_root.json) is generated here.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pullwarden::config::{self, Config, SignaturePolicy};
use pullwarden::digest::Digest;
use pullwarden::reference::Reference;
use pullwarden::registry::{Credentials, RegistryClient, RegistryError};
use pullwarden::report::SignatureReport;
use pullwarden::verify::sign::{
    ImageSigner, LegacySignature, SignFormat, generate_key, message_bundle, push_bundle,
    push_legacy, sign_and_push, simple_signing_payload,
};
use pullwarden::verify::{ImageDigests, Verifier, VerifyError, resolve_image};
use sigstore::crypto::SigningScheme;

use crate::support::fake_registry::{FakeRegistry, Route};
use crate::support::image::{Compression, Entry, Image, Index, Layer};
use crate::support::{it_env, unique_repo};

fn registry_cfg(host: &str) -> config::Registry {
    Config::parse(&format!(
        "[registry]\nplain_http = [\"{host}\"]\ntimeout = \"5s\"\nmax_manifest_bytes = 65536\nmax_blob_bytes = 65536"
    ))
    .unwrap()
    .registry
}

pub(crate) fn client(host: &str) -> RegistryClient {
    RegistryClient::new(&registry_cfg(host)).unwrap()
}

/// A signature policy from the TOML body of `[policy.signatures]`.
pub(crate) fn policy(body: &str) -> SignaturePolicy {
    let text = format!("[[policy]]\nname = \"p\"\nimages = [\"**\"]\n[policy.signatures]\n{body}");
    let mut c = Config::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    c.policies.remove(0).signatures.unwrap()
}

fn keys_toml(keys: &[&Path]) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|k| format!("{:?}", k.display().to_string()))
        .collect();
    format!("keys = [{}]\n", list.join(", "))
}

/// A fresh key pair: the signer and the public key file.
fn keypair(dir: &Path, name: &str, scheme: SigningScheme) -> (ImageSigner, PathBuf) {
    let (private, public) = generate_key(scheme).unwrap();
    let pss = matches!(scheme, SigningScheme::RSA_PSS_SHA256(_));
    let signer = ImageSigner::from_pem(private.as_bytes(), pss).unwrap();
    let path = dir.join(format!("{name}.pub"));
    std::fs::write(&path, public).unwrap();
    (signer, path)
}

fn small_image(salt: &str) -> Image {
    Image::with_platform(
        vec![Layer::from_entries(
            &[Entry::file("etc/hello", format!("hello {salt}"))],
            Compression::Gzip,
        )],
        "amd64",
        salt,
    )
}

/// Pushes a single-platform image; returns its reference (by tag) and digest.
pub(crate) async fn pushed_image(salt: &str) -> (Reference, Digest) {
    let reg = &it_env().registry;
    let repo = unique_repo("verify");
    let img = small_image(salt);
    img.push(reg, &repo, "v1").await;
    let r: Reference = format!("{reg}/{repo}:v1").parse().unwrap();
    (r, img.digest.parse().unwrap())
}

pub(crate) async fn verify(v: &Verifier, r: &Reference, subject: &ImageDigests) -> SignatureReport {
    let c = client(&r.registry);
    v.verify(&c, r, subject, &Credentials::default())
        .await
        .unwrap()
}

pub(crate) fn single(d: &Digest) -> ImageDigests {
    ImageDigests {
        index: None,
        manifest: d.clone(),
    }
}

/// Asserts a report: satisfied exactly when `want` is "verified", and `want` among its
/// reasons. `what` names the case in the failure message.
fn expect(rep: &SignatureReport, want: &str, what: &str) {
    let text = reasons(rep);
    assert!(text.contains(want), "{what}: want {want:?}:\n{text}");
    assert_eq!(rep.satisfied, want == "verified", "{what}: {text}");
}

pub(crate) fn reasons(r: &SignatureReport) -> String {
    r.checks
        .iter()
        .map(|c| format!("[{} {} {:?}] {}", c.source, c.subject, c.signer, c.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- keys

#[tokio::test]
async fn every_key_type_verifies_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let schemes = [
        ("p256", SigningScheme::ECDSA_P256_SHA256_ASN1),
        ("p384", SigningScheme::ECDSA_P384_SHA384_ASN1),
        ("rsa-pkcs1", SigningScheme::RSA_PKCS1_SHA256(2048)),
        ("rsa-pss", SigningScheme::RSA_PSS_SHA256(2048)),
        ("ed25519", SigningScheme::ED25519),
    ];
    for (name, scheme) in schemes {
        let (signer, public) = keypair(dir.path(), name, scheme);
        let v = Verifier::load(&policy(&keys_toml(&[&public]))).unwrap();
        for format in [SignFormat::Legacy, SignFormat::Bundle] {
            let (r, d) = pushed_image(&format!("{name}-{format:?}")).await;
            let c = client(&r.registry);
            let before = verify(&v, &r, &single(&d)).await;
            assert!(!before.satisfied, "{name}: unsigned image satisfied");
            assert_eq!(before.checks[0].source, "none");
            sign_and_push(&c, &r, &d, &signer, format, &Credentials::default())
                .await
                .unwrap();
            let rep = verify(&v, &r, &single(&d)).await;
            assert!(rep.satisfied, "{name} {format:?}:\n{}", reasons(&rep));
            assert_eq!(rep.verified_signers.len(), 1);
            let want_source = match format {
                SignFormat::Legacy => "legacy-tag",
                SignFormat::Bundle => "referrers-tag",
            };
            assert!(
                rep.checks
                    .iter()
                    .any(|c| c.verified && c.source == want_source),
                "{name}: {}",
                reasons(&rep)
            );
        }
    }
}

#[tokio::test]
async fn wrong_key_corrupted_signature_and_other_digest_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, _) = keypair(dir.path(), "a", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let (_, other_pub) = keypair(dir.path(), "b", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let (_, trusted_pub) = {
        // The trusted key is `signer`'s own public key, written again.
        let p = dir.path().join("a.pub");
        ((), p)
    };
    let creds = Credentials::default();

    // Wrong key.
    let (r, d) = pushed_image("wrong-key").await;
    let c = client(&r.registry);
    sign_and_push(&c, &r, &d, &signer, SignFormat::Legacy, &creds)
        .await
        .unwrap();
    let v_other = Verifier::load(&policy(&keys_toml(&[&other_pub]))).unwrap();
    let rep = verify(&v_other, &r, &single(&d)).await;
    assert!(!rep.satisfied);
    assert!(
        rep.checks
            .iter()
            .any(|c| c.reason == "signature does not verify with this key"),
        "{}",
        reasons(&rep)
    );
    // Same input → same report (stable reasons).
    assert_eq!(rep, verify(&v_other, &r, &single(&d)).await);

    let v = Verifier::load(&policy(&keys_toml(&[&trusted_pub]))).unwrap();

    // Corrupted signature bytes.
    let (r, d) = pushed_image("corrupt").await;
    let payload = simple_signing_payload(&r.name(), &d);
    let mut sig = signer.sign(&payload).unwrap();
    let n = sig.len() / 2;
    sig[n] ^= 0x55;
    push_legacy(&c, &r, &d, &[LegacySignature::new(payload, &sig)], &creds)
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(!rep.satisfied, "{}", reasons(&rep));
    assert_eq!(rep.checks.len(), 1);
    assert_eq!(
        rep.checks[0].reason,
        "signature does not verify with this key"
    );

    // A valid signature of a payload that names another digest, pushed on this digest.
    let (r, d) = pushed_image("other-digest").await;
    let elsewhere = Digest::sha256_of(b"some other manifest");
    let payload = simple_signing_payload(&r.name(), &elsewhere);
    let sig = signer.sign(&payload).unwrap();
    push_legacy(&c, &r, &d, &[LegacySignature::new(payload, &sig)], &creds)
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(!rep.satisfied);
    assert_eq!(
        rep.checks[0].reason,
        format!("signed payload is for {elsewhere}, not {d}")
    );

    // A valid signature naming another repository.
    let (r, d) = pushed_image("other-repo").await;
    let payload = simple_signing_payload(&format!("{}/elsewhere/app", r.registry), &d);
    let sig = signer.sign(&payload).unwrap();
    push_legacy(&c, &r, &d, &[LegacySignature::new(payload, &sig)], &creds)
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(!rep.satisfied);
    assert!(
        rep.checks[0].reason.contains("names repository"),
        "{}",
        reasons(&rep)
    );
    let allowing = Verifier::load(&policy(&format!(
        "{}allowed_references = [\"{}/elsewhere/**\"]\n",
        keys_toml(&[&trusted_pub]),
        r.registry
    )))
    .unwrap();
    assert!(verify(&allowing, &r, &single(&d)).await.satisfied);
}

#[tokio::test]
async fn threshold_counts_distinct_signers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a_pub) = keypair(dir.path(), "a", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let (b, b_pub) = keypair(dir.path(), "b", SigningScheme::ED25519);
    let v = Verifier::load(&policy(&format!(
        "{}threshold = 2\n",
        keys_toml(&[&a_pub, &b_pub])
    )))
    .unwrap();
    let (r, d) = pushed_image("threshold").await;
    let c = client(&r.registry);
    let creds = Credentials::default();
    sign_and_push(&c, &r, &d, &a, SignFormat::Legacy, &creds)
        .await
        .unwrap();
    // The same key again, in the other format: still one signer.
    sign_and_push(&c, &r, &d, &a, SignFormat::Bundle, &creds)
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(!rep.satisfied, "{}", reasons(&rep));
    assert_eq!(rep.verified_signers.len(), 1);
    assert_eq!(rep.checks.iter().filter(|c| c.verified).count(), 2);
    sign_and_push(&c, &r, &d, &b, SignFormat::Legacy, &creds)
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(rep.satisfied, "{}", reasons(&rep));
    assert_eq!(rep.verified_signers.len(), 2);
    assert_eq!(rep.threshold, 2);
}

/// The other encodings of the public key in the PEM file `public`.
fn encodings_of(public: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let pem = std::fs::read_to_string(public).unwrap();
    key_encodings(&pullwarden::verify::keys::pem_block(&pem, "PUBLIC KEY").unwrap())
}

/// The encodings of one public key (DER SPKI given): DER SPKI, compressed EC point (PEM
/// and DER), PKCS#1 RSA (PEM and DER).
pub fn key_encodings(spki: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    use x509_cert::der::{Decode as _, Encode as _};
    let spki = spki.to_vec();
    let parsed = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&spki).unwrap();
    let bits = parsed.subject_public_key.as_bytes().unwrap().to_vec();
    let to_pem = pullwarden::verify::keys::to_pem;
    let mut out = vec![("DER SPKI", spki.clone())];
    if bits.len() == 65 || bits.len() == 97 {
        let half = (bits.len() - 1) / 2;
        let mut compressed = vec![0x02 | (bits[bits.len() - 1] & 1)];
        compressed.extend_from_slice(&bits[1..1 + half]);
        let mut c = parsed.clone();
        c.subject_public_key = x509_cert::der::asn1::BitString::from_bytes(&compressed).unwrap();
        let der = c.to_der().unwrap();
        out.push(("compressed EC PEM", to_pem("PUBLIC KEY", &der).into_bytes()));
        out.push(("compressed EC DER", der));
    } else if bits.len() > 200 {
        out.push(("PKCS#1 PEM", to_pem("RSA PUBLIC KEY", &bits).into_bytes()));
        out.push(("PKCS#1 DER", bits));
    }
    out
}

/// One key listed in two encodings (or twice) is one signer: a threshold of 2 is not
/// met by its signature, through the registry, for every pair of encodings; a second
/// real signer meets it.
#[tokio::test]
async fn threshold_counts_one_key_in_any_encoding_once() {
    let dir = tempfile::tempdir().unwrap();
    let creds = Credentials::default();
    for (name, scheme) in [
        ("ec", SigningScheme::ECDSA_P256_SHA256_ASN1),
        ("ec384", SigningScheme::ECDSA_P384_SHA384_ASN1),
        ("rsa", SigningScheme::RSA_PKCS1_SHA256(2048)),
    ] {
        let (signer, public) = keypair(dir.path(), name, scheme);
        let (other, other_pub) = keypair(dir.path(), &format!("{name}-2"), SigningScheme::ED25519);
        let (r, d) = pushed_image(&format!("encodings-{name}")).await;
        let c = client(&r.registry);
        sign_and_push(&c, &r, &d, &signer, SignFormat::Legacy, &creds)
            .await
            .unwrap();
        let mut forms = vec![("same file twice", std::fs::read(&public).unwrap())];
        forms.extend(encodings_of(&public));
        assert!(forms.len() >= 3, "{name}");
        for (form, bytes) in forms {
            let alias = dir
                .path()
                .join(format!("{name}-{}.key", form.replace(' ', "_")));
            std::fs::write(&alias, bytes).unwrap();
            let listed: &Path = if form == "same file twice" {
                &public
            } else {
                &alias
            };
            let v = Verifier::load(&policy(&format!(
                "{}threshold = 2\n",
                keys_toml(&[&public, listed])
            )))
            .unwrap();
            let rep = verify(&v, &r, &single(&d)).await;
            assert!(!rep.satisfied, "{name} {form}: {}", reasons(&rep));
            assert_eq!(rep.verified_signers.len(), 1, "{name} {form}");
            // The alias alone verifies: it is the same key, read in that encoding.
            let alone = Verifier::load(&policy(&keys_toml(&[listed]))).unwrap();
            assert!(
                verify(&alone, &r, &single(&d)).await.satisfied,
                "{name} {form}"
            );
            // At load, `policy check` refuses such a threshold (see config_files).
            let two = Verifier::load(&policy(&format!(
                "{}threshold = 2\n",
                keys_toml(&[&public, listed, &other_pub])
            )))
            .unwrap();
            assert!(!verify(&two, &r, &single(&d)).await.satisfied);
        }
        sign_and_push(&c, &r, &d, &other, SignFormat::Bundle, &creds)
            .await
            .unwrap();
        let alias = dir.path().join(format!("{name}-DER_SPKI.key"));
        let v = Verifier::load(&policy(&format!(
            "{}threshold = 2\n",
            keys_toml(&[&public, &alias, &other_pub])
        )))
        .unwrap();
        let rep = verify(&v, &r, &single(&d)).await;
        assert!(rep.satisfied, "{name}: {}", reasons(&rep));
        assert_eq!(rep.verified_signers.len(), 2);
    }
}

/// cosign appends one `.sig` layer per signing: a valid signature after many others
/// counts (position 20 here; once only the first 16 were read). Past the documented
/// cap the rest is reported, not silently skipped, and the image is not satisfied.
#[tokio::test]
async fn every_sig_layer_up_to_the_cap_is_examined() {
    use pullwarden::verify::discover::MAX_SIGNATURES;
    let dir = tempfile::tempdir().unwrap();
    let (signer, public) = keypair(dir.path(), "k", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let v = Verifier::load(&policy(&keys_toml(&[&public]))).unwrap();
    let creds = Credentials::default();
    // Manifests of a thousand layers exceed the tests' usual 64 KiB manifest limit.
    let big = |host: &str| {
        let mut cfg = registry_cfg(host);
        cfg.max_manifest_bytes = 4 << 20;
        RegistryClient::new(&cfg).unwrap()
    };
    for (others, satisfied) in [(19, true), (MAX_SIGNATURES, false)] {
        let (r, d) = pushed_image(&format!("sig-layers-{others}")).await;
        let c = big(&r.registry);
        let payload = simple_signing_payload(&r.name(), &d);
        // Other signers' layers (signatures this key does not verify), then ours.
        let mut layers: Vec<LegacySignature> = (0..others)
            .map(|i| LegacySignature::new(payload.clone(), format!("not ours {i}").as_bytes()))
            .collect();
        layers.push(LegacySignature::new(
            payload.clone(),
            &signer.sign(&payload).unwrap(),
        ));
        push_legacy(&c, &r, &d, &layers, &creds).await.unwrap();
        let rep = v.verify(&c, &r, &single(&d), &creds).await.unwrap();
        assert_eq!(
            rep.satisfied,
            satisfied,
            "{others}: {}",
            reasons(&rep).len()
        );
        if satisfied {
            assert_eq!(rep.checks.len(), others + 1);
            assert!(rep.checks[others].verified);
        } else {
            assert_eq!(rep.checks.len(), MAX_SIGNATURES + 1);
            let last = &rep.checks[MAX_SIGNATURES].reason;
            assert!(
                last.contains(&format!(
                    "{} signature layers found; only the first {MAX_SIGNATURES} were examined",
                    others + 1
                )),
                "{last}"
            );
        }
    }
}

#[tokio::test]
async fn index_and_platform_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public) = keypair(dir.path(), "k", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let any = Verifier::load(&policy(&keys_toml(&[&public]))).unwrap();
    let platform_only = Verifier::load(&policy(&format!(
        "{}require_on = \"platform\"\n",
        keys_toml(&[&public])
    )))
    .unwrap();
    let reg = &it_env().registry;
    let creds = Credentials::default();

    let push_index = |salt: &'static str| async move {
        let repo = unique_repo("verify-index");
        let idx = Index::new(vec![
            Image::with_platform(small_image(salt).layers, "amd64", salt),
            Image::with_platform(small_image(salt).layers, "arm64", salt),
        ]);
        idx.push(reg, &repo, "v1").await;
        let r: Reference = format!("{reg}/{repo}:v1").parse().unwrap();
        let subject = ImageDigests {
            index: Some(idx.digest.parse().unwrap()),
            manifest: idx.images[0].digest.parse().unwrap(),
        };
        (r, subject)
    };

    // Signature on the index only.
    let (r, subject) = push_index("index-only").await;
    let c = client(&r.registry);
    let resolved = resolve_image(&c, &r, &creds).await.unwrap();
    assert_eq!(resolved.index, subject.index);
    let index = subject.index.clone().unwrap();
    sign_and_push(&c, &r, &index, &signer, SignFormat::Legacy, &creds)
        .await
        .unwrap();
    let rep = verify(&any, &r, &subject).await;
    assert!(rep.satisfied, "{}", reasons(&rep));
    let rep = verify(&platform_only, &r, &subject).await;
    assert!(!rep.satisfied);
    assert!(
        rep.checks.iter().any(|c| c.reason
            == "signature is on the index; the policy requires one on the platform manifest"),
        "{}",
        reasons(&rep)
    );

    // Signature on the platform manifest only.
    let (r, subject) = push_index("platform-only").await;
    sign_and_push(
        &c,
        &r,
        &subject.manifest,
        &signer,
        SignFormat::Bundle,
        &creds,
    )
    .await
    .unwrap();
    for v in [&any, &platform_only] {
        let rep = verify(v, &r, &subject).await;
        assert!(rep.satisfied, "{}", reasons(&rep));
        // The index location is reported as empty.
        assert!(rep.checks.iter().any(|c| c.source == "none"
            && Some(c.subject.clone()) == subject.index.as_ref().map(|d| d.to_string())));
    }
    // A platform signature does not cover a sibling platform.
    let sibling = ImageDigests {
        index: subject.index.clone(),
        manifest: Digest::sha256_of(b"not this one"),
    };
    assert!(!verify(&any, &r, &sibling).await.satisfied);
}

// ---------------------------------------------------------------- referrers API (fake)

#[tokio::test]
async fn referrers_api_is_used_when_the_registry_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, public) = keypair(dir.path(), "k", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let fake = FakeRegistry::start().await;
    let img = small_image("referrers-api");
    let d: Digest = img.digest.parse().unwrap();
    let r: Reference = format!("{}/x/app:v1", fake.addr).parse().unwrap();
    let payload = simple_signing_payload(&r.name(), &d);
    let sig = signer.sign(&payload).unwrap();
    let bundle = message_bundle(&payload, &sig, &signer.public_spki);
    let empty = b"{}".to_vec();
    let blob = |b: &[u8]| (Digest::sha256_of(b), b.to_vec());
    let (bd, bb) = blob(&bundle);
    let (pd, pb) = blob(&payload);
    let (ed, eb) = blob(&empty);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed.to_string(), "size": 2},
        "layers": [
            {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": bd.to_string(), "size": bb.len()},
            {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": pd.to_string(), "size": pb.len()},
        ],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d.to_string(), "size": img.manifest.len()},
    }))
    .unwrap();
    let md = Digest::sha256_of(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len(),
             "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"},
            // Another artifact type is ignored.
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": Digest::sha256_of(b"sbom").to_string(), "size": 1,
             "artifactType": "application/spdx+json"},
        ]
    }))
    .unwrap();
    let mt = "application/vnd.oci.image.manifest.v1+json";
    fake.json("/v2/x/app/manifests/v1", mt, &img.manifest);
    fake.json(&format!("/v2/x/app/manifests/{d}"), mt, &img.manifest);
    fake.json(
        &format!("/v2/x/app/referrers/{d}"),
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    fake.json(&format!("/v2/x/app/manifests/{md}"), mt, &manifest);
    for (dg, b) in [(&bd, &bb), (&pd, &pb), (&ed, &eb)] {
        fake.json(
            &format!("/v2/x/app/blobs/{dg}"),
            "application/octet-stream",
            b,
        );
    }
    let v = Verifier::load(&policy(&keys_toml(&[&public]))).unwrap();
    let c = client(&fake.addr);
    let subject = resolve_image(&c, &r, &Credentials::default())
        .await
        .unwrap();
    assert_eq!(subject.manifest, d);
    let rep = v
        .verify(&c, &r, &subject, &Credentials::default())
        .await
        .unwrap();
    assert!(rep.satisfied, "{}", reasons(&rep));
    assert!(
        rep.checks
            .iter()
            .any(|c| c.verified && c.source == "referrers")
    );

    // The same bundle manifest claiming another subject is refused.
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    m["subject"]["digest"] = serde_json::json!(Digest::sha256_of(b"x").to_string());
    let forged = serde_json::to_vec(&m).unwrap();
    let fd = Digest::sha256_of(&forged);
    fake.json(&format!("/v2/x/app/manifests/{fd}"), mt, &forged);
    let index2 = String::from_utf8(index.clone())
        .unwrap()
        .replace(&md.to_string(), &fd.to_string())
        .replace(
            &format!("\"size\":{}", manifest.len()),
            &format!("\"size\":{}", forged.len()),
        );
    fake.json(
        &format!("/v2/x/app/referrers/{d}"),
        "application/vnd.oci.image.index.v1+json",
        index2.as_bytes(),
    );
    let c = client(&fake.addr);
    let rep = v
        .verify(&c, &r, &subject, &Credentials::default())
        .await
        .unwrap();
    assert!(!rep.satisfied);
    assert!(
        reasons(&rep).contains("bundle manifest's subject is"),
        "{}",
        reasons(&rep)
    );
}

// ---------------------------------------------------------------- hostile registries

#[tokio::test]
async fn huge_malformed_and_lying_registries_get_specific_errors() {
    let fake = FakeRegistry::start().await;
    let mt = "application/vnd.oci.image.manifest.v1+json";
    fake.route("/v2/x/endless/manifests/v1", Route::Endless(mt.into()));
    fake.route("/v2/x/huge/manifests/v1", Route::HugeLength(mt.into()));
    fake.json(
        "/v2/x/junk/manifests/v1",
        mt,
        b"<html>not a manifest</html>",
    );
    let good = small_image("lying");
    let claimed = Digest::sha256_of(b"what the client asked for");
    fake.json(
        &format!("/v2/x/lying/manifests/{claimed}"),
        mt,
        &good.manifest,
    );
    let c = client(&fake.addr);
    let creds = Credentials::default();
    let r = |s: &str| -> Reference { format!("{}/{s}", fake.addr).parse().unwrap() };
    let err = c.resolve(&r("x/endless:v1"), &creds).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::TooLarge { limit: 65536, .. }),
        "{err}"
    );
    let err = c.resolve(&r("x/huge:v1"), &creds).await.unwrap_err();
    assert!(matches!(err, RegistryError::TooLarge { .. }), "{err}");
    let err = c.resolve(&r("x/junk:v1"), &creds).await.unwrap_err();
    assert!(matches!(err, RegistryError::Malformed { .. }), "{err}");
    let err = c
        .resolve(&r(&format!("x/lying@{claimed}")), &creds)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let err = c.resolve(&r("x/missing:v1"), &creds).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    // What a registry serves is never an outage that `on_error = "allow"` lets through.
    assert!(!err.is_outage());
    for path in ["x/endless:v1", "x/huge:v1", "x/junk:v1"] {
        let e = c.resolve(&r(path), &creds).await.unwrap_err();
        assert!(!e.is_outage(), "{path}: {e}");
    }

    // Hostile signature artifacts are reasons in the report, not errors, and do not
    // hide anything else.
    let d: Digest = good.digest.parse().unwrap();
    fake.route(
        &format!("/v2/x/app/manifests/{}.sig", d.tag_form()),
        Route::Endless(mt.into()),
    );
    fake.json(
        &format!("/v2/x/app/manifests/{}", d.tag_form()),
        "application/vnd.oci.image.index.v1+json",
        b"{\"schemaVersion\":2,\"manifests\":\"nope\"}",
    );
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keypair(dir.path(), "k", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let v = Verifier::load(&policy(&keys_toml(&[&public]))).unwrap();
    let rep = v
        .verify(&c, &r("x/app:v1"), &single(&d), &creds)
        .await
        .unwrap();
    assert!(!rep.satisfied);
    let text = reasons(&rep);
    assert!(
        text.contains("signature manifest larger than the 65536-byte limit"),
        "{text}"
    );
    assert!(
        text.contains("referrers index is not an OCI index"),
        "{text}"
    );
}

#[tokio::test]
async fn registry_down_is_an_infrastructure_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let host = format!("127.0.0.1:{port}");
    let c = client(&host);
    let r: Reference = format!("{host}/x/app:v1").parse().unwrap();
    let err = c.resolve(&r, &Credentials::default()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unreachable { .. }), "{err}");
    assert!(err.is_outage());
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = keypair(dir.path(), "k", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let v = Verifier::load(&policy(&keys_toml(&[&public]))).unwrap();
    let res = v
        .verify(
            &c,
            &r,
            &single(&Digest::sha256_of(b"x")),
            &Credentials::default(),
        )
        .await;
    match res {
        Err(VerifyError::Registry(e)) => assert!(e.is_outage()),
        other => panic!("expected an infrastructure error, got {other:?}"),
    }
}

#[tokio::test]
async fn bearer_token_flow_with_basic_credentials() {
    let fake = FakeRegistry::start().await;
    fake.routes.lock().unwrap().bearer = Some(("alice".into(), "pw".into(), "t0k".into()));
    let img = small_image("bearer");
    let mt = "application/vnd.oci.image.manifest.v1+json";
    fake.json("/v2/x/app/manifests/v1", mt, &img.manifest);
    let c = client(&fake.addr);
    let r: Reference = format!("{}/x/app:v1", fake.addr).parse().unwrap();
    let err = c.resolve(&r, &Credentials::default()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Token { .. }), "{err}");
    let cri = k8s_cri::v1::AuthConfig {
        auth: B64.encode("alice:pw"),
        ..Default::default()
    };
    let creds = Credentials::from(&cri);
    let m = c.resolve(&r, &creds).await.unwrap();
    assert_eq!(m.digest.to_string(), img.digest);
    // The token is cached per credentials: a second call needs no token round trip,
    // and other credentials do not get it.
    assert!(c.resolve(&r, &creds).await.is_ok());
    let wrong = Credentials::basic("alice", "nope");
    assert!(c.resolve(&r, &wrong).await.is_err());

    // A pull without credentials falls back to `[registry] auth_file` (docker config.json).
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("config.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"http://{}/v2/":{{"auth":"{}"}}}}}}"#,
            fake.addr,
            B64.encode("alice:pw")
        ),
    )
    .unwrap();
    let mut cfg = registry_cfg(&fake.addr);
    cfg.auth_file = Some(auth);
    let with_file = RegistryClient::new(&cfg).unwrap();
    let m = with_file
        .resolve(&r, &Credentials::default())
        .await
        .unwrap();
    assert_eq!(m.digest.to_string(), img.digest);
}

// ---------------------------------------------------------------- keyless

pub(crate) mod keyless {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    };
    use sha2::Digest as _;
    use time::{Duration, OffsetDateTime};

    pub const GITHUB: &str = "https://token.actions.githubusercontent.com";

    /// A test Fulcio (root CA), Rekor v1 (ECDSA log key), Rekor v2 (Ed25519 checkpoint
    /// key) and timestamp authority (root CA + timeStamping leaf), with a
    /// trusted_root.json naming all of them.
    pub struct TestSigstore {
        issuer: Issuer<'static, KeyPair>,
        rekor: ImageSigner,
        log_id: String,
        rekor_v2: ImageSigner,
        pub log_v2_id: String,
        tsa_issuer: Issuer<'static, KeyPair>,
        pub tsa: Tsa,
        pub trusted_root: PathBuf,
        _dir: tempfile::TempDir,
    }

    /// A timestamp authority's signing certificate and key.
    pub struct Tsa {
        pub cert_der: Vec<u8>,
        pub signer: ImageSigner,
    }

    fn utf8_der(s: &str) -> Vec<u8> {
        assert!(s.len() < 128);
        let mut v = vec![0x0c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    pub struct Leaf {
        pub cert_pem: String,
        pub signer: ImageSigner,
    }

    impl TestSigstore {
        pub fn new() -> TestSigstore {
            let dir = tempfile::tempdir().unwrap();
            let ca_key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name
                .push(DnType::CommonName, "pullwarden test fulcio");
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p.not_before = OffsetDateTime::now_utc() - Duration::days(30);
            p.not_after = OffsetDateTime::now_utc() + Duration::days(30);
            let root = p.self_signed(&ca_key).unwrap();
            let issuer = Issuer::new(p, ca_key);
            let (rekor_private, rekor_public) =
                generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
            let rekor = ImageSigner::from_pem(rekor_private.as_bytes(), false).unwrap();
            let spki = pullwarden::verify::sign::public_pem_to_spki(&rekor_public).unwrap();
            let key_id = sha2::Sha256::digest(&spki);
            let (v2_private, v2_public) = generate_key(SigningScheme::ED25519).unwrap();
            let rekor_v2 = ImageSigner::from_pem(v2_private.as_bytes(), false).unwrap();
            let v2_spki = pullwarden::verify::sign::public_pem_to_spki(&v2_public).unwrap();
            let v2_key_id = sha2::Sha256::digest(&v2_spki);
            let (tsa_issuer, tsa_root) = ca("pullwarden test tsa");
            let tsa = tsa_leaf(
                &tsa_issuer,
                true,
                OffsetDateTime::now_utc() - Duration::days(1),
            );
            let trusted = serde_json::json!({
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [{
                    "baseUrl": "https://rekor.test",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": B64.encode(&spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                                  "validFor": {"start": "2020-01-01T00:00:00Z"}},
                    "logId": {"keyId": B64.encode(key_id)},
                }, {
                    "baseUrl": "https://log2026-1.rekor.test",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {"rawBytes": B64.encode(&v2_spki), "keyDetails": "PKIX_ED25519",
                                  "validFor": {"start": "2020-01-01T00:00:00Z"}},
                    "logId": {"keyId": B64.encode(v2_key_id)},
                }],
                "certificateAuthorities": [{
                    "subject": {"organization": "pullwarden", "commonName": "test fulcio"},
                    "uri": "https://fulcio.test",
                    "certChain": {"certificates": [{"rawBytes": B64.encode(root.der())}]},
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                }],
                "ctlogs": [],
                "timestampAuthorities": [{
                    "subject": {"organization": "pullwarden", "commonName": "test tsa"},
                    "uri": "https://tsa.test",
                    "certChain": {"certificates": [
                        {"rawBytes": B64.encode(&tsa.cert_der)},
                        {"rawBytes": B64.encode(&tsa_root)},
                    ]},
                    "validFor": {"start": "2020-01-01T00:00:00Z"},
                }],
            });
            let trusted_root = dir.path().join("trusted_root.json");
            std::fs::write(&trusted_root, serde_json::to_vec(&trusted).unwrap()).unwrap();
            TestSigstore {
                issuer,
                rekor,
                log_id: hex::encode(key_id),
                rekor_v2,
                log_v2_id: hex::encode(v2_key_id),
                tsa_issuer,
                tsa,
                trusted_root,
                _dir: dir,
            }
        }

        /// Another signing certificate of this TSA's root: with or without the
        /// timeStamping EKU, valid for two days from `from`.
        pub fn tsa_leaf(&self, time_stamping: bool, from: OffsetDateTime) -> Tsa {
            tsa_leaf(&self.tsa_issuer, time_stamping, from)
        }

        /// A Rekor v2 log of two entries, `body` second: the inclusion proof JSON of
        /// a bundle's tlog entry, with a checkpoint signed by the v2 log key.
        pub fn v2_inclusion_proof(&self, body: &[u8]) -> serde_json::Value {
            let leaf = |b: &[u8]| {
                let mut h = sha2::Sha256::new();
                h.update([0u8]);
                h.update(b);
                h.finalize().to_vec()
            };
            let sibling = leaf(b"an earlier entry");
            let mut h = sha2::Sha256::new();
            h.update([1u8]);
            h.update(&sibling);
            h.update(leaf(body));
            let root = h.finalize().to_vec();
            let origin = "log2026-1.rekor.test";
            let text = format!("{origin}\n2\n{}\n", B64.encode(&root));
            let mut sig = vec![0xaa, 0xbb, 0xcc, 0xdd];
            sig.extend(self.rekor_v2.sign(text.as_bytes()).unwrap());
            serde_json::json!({
                "logIndex": "1",
                "rootHash": B64.encode(&root),
                "treeSize": "2",
                "hashes": [B64.encode(&sibling)],
                "checkpoint": {"envelope": format!("{text}\n\u{2014} {origin} {}\n", B64.encode(&sig))},
            })
        }

        /// A Fulcio-style leaf: SAN URI subject, OIDC issuer extension (v2 OID), code
        /// signing EKU, valid from `from` for `minutes`.
        pub fn leaf(
            &self,
            subject: &str,
            oidc_issuer: &str,
            from: OffsetDateTime,
            minutes: i64,
        ) -> Leaf {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.subject_alt_names = vec![SanType::URI(subject.try_into().unwrap())];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.not_before = from;
            p.not_after = from + Duration::minutes(minutes);
            p.custom_extensions = vec![
                CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
                    utf8_der(oidc_issuer),
                ),
                // github_workflow_repository (v1: raw bytes)
                CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 4, 1, 57264, 1, 5],
                    b"acme/app".to_vec(),
                ),
            ];
            let cert = p.signed_by(&key, &self.issuer).unwrap();
            Leaf {
                cert_pem: cert.pem(),
                signer: ImageSigner::from_pem(key.serialize_pem().as_bytes(), false).unwrap(),
            }
        }

        /// The log's signed entry timestamp over `body` and the log id (hex).
        pub fn sign_entry(&self, body: &[u8], integrated: i64, index: i64) -> (Vec<u8>, String) {
            let canonical = format!(
                r#"{{"body":"{}","integratedTime":{integrated},"logID":"{}","logIndex":{index}}}"#,
                B64.encode(body),
                self.log_id
            );
            (
                self.rekor.sign(canonical.as_bytes()).unwrap(),
                self.log_id.clone(),
            )
        }

        /// A hashedrekord entry for (signature, payload, certificate) and the legacy
        /// bundle annotation carrying it with a SET.
        pub fn rekor_bundle(
            &self,
            sig: &[u8],
            payload: &[u8],
            cert_pem: &str,
            integrated: i64,
            with_set: bool,
        ) -> String {
            let body = serde_json::to_vec(&serde_json::json!({
                "apiVersion": "0.0.1", "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex::encode(sha2::Sha256::digest(payload))}},
                    "signature": {"content": B64.encode(sig), "publicKey": {"content": B64.encode(cert_pem)}},
                }
            }))
            .unwrap();
            let body_b64 = B64.encode(&body);
            let canonical = format!(
                r#"{{"body":"{body_b64}","integratedTime":{integrated},"logID":"{}","logIndex":42}}"#,
                self.log_id
            );
            let set = if with_set {
                B64.encode(self.rekor.sign(canonical.as_bytes()).unwrap())
            } else {
                B64.encode(b"not a signature")
            };
            serde_json::json!({
                "SignedEntryTimestamp": set,
                "Payload": {"body": body_b64, "integratedTime": integrated, "logIndex": 42, "logID": self.log_id},
            })
            .to_string()
        }
    }

    /// A self-signed CA: its issuer handle and DER.
    fn ca(name: &str) -> (Issuer<'static, KeyPair>, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(30);
        let der = p.self_signed(&key).unwrap().der().to_vec();
        (Issuer::new(p, key), der)
    }

    fn tsa_leaf(
        issuer: &Issuer<'static, KeyPair>,
        time_stamping: bool,
        from: OffsetDateTime,
    ) -> Tsa {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "pullwarden test tsa signer");
        p.extended_key_usages = if time_stamping {
            vec![ExtendedKeyUsagePurpose::TimeStamping]
        } else {
            vec![ExtendedKeyUsagePurpose::CodeSigning]
        };
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = from;
        p.not_after = from + Duration::days(2);
        let cert = p.signed_by(&key, issuer).unwrap();
        Tsa {
            cert_der: cert.der().to_vec(),
            signer: ImageSigner::from_pem(key.serialize_pem().as_bytes(), false).unwrap(),
        }
    }

    /// One DER TLV (short or long length form).
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 128 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    /// How a test TimeStampToken is made.
    pub struct Stamp<'a> {
        pub tsa: &'a Tsa,
        /// The bytes whose SHA-256 is the message imprint (the bundle's signature).
        pub imprint_of: &'a [u8],
        pub gen_time: OffsetDateTime,
        /// Changes the TSTInfo after it was signed.
        pub tamper: bool,
    }

    /// A DER TimeStampToken: CMS SignedData over a TSTInfo, signed (ECDSA P-256,
    /// SHA-256) over the DER of its signed attributes, with the TSA certificate.
    pub fn timestamp_token(s: &Stamp<'_>) -> Vec<u8> {
        use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
        use cms::content_info::{CmsVersion, ContentInfo};
        use cms::signed_data::{
            CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
            SignerInfos,
        };
        use x509_cert::attr::Attribute;
        use x509_cert::der::asn1::{Any, ObjectIdentifier, OctetString, SetOfVec};
        use x509_cert::der::{Decode, Encode};
        use x509_cert::spki::AlgorithmIdentifierOwned;
        let oid = ObjectIdentifier::new_unwrap;
        let sha256 = AlgorithmIdentifierOwned {
            oid: oid("2.16.840.1.101.3.4.2.1"),
            parameters: None,
        };
        let tst_info = |gen_time: OffsetDateTime| {
            let g = gen_time
                .format(&time::macros::format_description!(
                    "[year][month][day][hour][minute][second]Z"
                ))
                .unwrap();
            let imprint = [
                sha256.to_der().unwrap(),
                tlv(0x04, &sha2::Sha256::digest(s.imprint_of)),
            ]
            .concat();
            let body = [
                tlv(0x02, &[1]),
                oid("1.3.6.1.4.1.57264.2").to_der().unwrap(),
                tlv(0x30, &imprint),
                tlv(0x02, &[0x11, 0x22]),
                tlv(0x18, g.as_bytes()),
            ]
            .concat();
            tlv(0x30, &body)
        };
        let tst = tst_info(s.gen_time);
        let attr = |o: &str, v: Any| Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![v]).unwrap(),
        };
        let tst_type = oid("1.2.840.113549.1.9.16.1.4");
        let signed_attrs = SetOfVec::try_from(vec![
            attr("1.2.840.113549.1.9.3", Any::encode_from(&tst_type).unwrap()),
            attr(
                "1.2.840.113549.1.9.4",
                Any::encode_from(&OctetString::new(sha2::Sha256::digest(&tst).to_vec()).unwrap())
                    .unwrap(),
            ),
        ])
        .unwrap();
        let signature = s.tsa.signer.sign(&signed_attrs.to_der().unwrap()).unwrap();
        let cert = x509_cert::Certificate::from_der(&s.tsa.cert_der).unwrap();
        let tbs = cert.tbs_certificate();
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer().clone(),
                serial_number: tbs.serial_number().clone(),
            }),
            digest_alg: sha256.clone(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: oid("1.2.840.10045.4.3.2"),
                parameters: None,
            },
            signature: OctetString::new(signature).unwrap(),
            unsigned_attrs: None,
        };
        let content = if s.tamper {
            tst_info(s.gen_time - Duration::hours(1))
        } else {
            tst
        };
        let sd = SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![sha256]).unwrap(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: tst_type,
                econtent: Some(Any::encode_from(&OctetString::new(content).unwrap()).unwrap()),
            },
            certificates: Some(CertificateSet(
                SetOfVec::try_from(vec![CertificateChoices::Certificate(cert)]).unwrap(),
            )),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).unwrap()),
        };
        ContentInfo {
            content_type: oid("1.2.840.113549.1.7.2"),
            content: Any::encode_from(&sd).unwrap(),
        }
        .to_der()
        .unwrap()
    }

    pub fn policy_for(ts: &TestSigstore, identity: &str) -> Verifier {
        Verifier::load(&policy(&format!(
            "trusted_root = {:?}\n[[policy.signatures.keyless]]\nissuer = \"{GITHUB}\"\n{identity}\n",
            ts.trusted_root.display().to_string()
        )))
        .unwrap()
    }
}

#[tokio::test]
async fn keyless_signatures() {
    use keyless::*;
    use time::{Duration, OffsetDateTime};
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let t = now.unix_timestamp();
    let good_subject = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let v = policy_for(
        &ts,
        "subject_regex = \"^https://github.com/acme/\"\nextensions = { github_workflow_repository = \"acme/app\" }",
    );
    let creds = Credentials::default();

    enum Forge {
        None,
        WrongIssuer,
        OtherSubject,
        Expired,
        NoSet,
        LayerSignedByOtherKey,
        RekorForOtherSignature,
        NoBundle,
    }
    let cases = [
        (Forge::None, "verified"),
        (Forge::WrongIssuer, "identity mismatch: certificate issuer"),
        (
            Forge::OtherSubject,
            "does not match /^https://github.com/acme//",
        ),
        (
            Forge::Expired,
            "certificate had expired at the Rekor integrated time",
        ),
        (Forge::NoSet, "Rekor signed entry timestamp does not verify"),
        (
            Forge::LayerSignedByOtherKey,
            "signature does not verify with the certificate's key",
        ),
        (
            Forge::RekorForOtherSignature,
            "Rekor entry is for another signature",
        ),
        (Forge::NoBundle, "missing transparency proof"),
    ];
    for (forge, want) in cases {
        let (r, d) = pushed_image(&format!("keyless-{want}")).await;
        let c = client(&r.registry);
        let payload = simple_signing_payload(&r.name(), &d);
        let (subject, issuer, from) = match forge {
            Forge::WrongIssuer => (
                good_subject,
                "https://accounts.google.com",
                now - Duration::minutes(1),
            ),
            Forge::OtherSubject => (
                "https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main",
                GITHUB,
                now - Duration::minutes(1),
            ),
            Forge::Expired => (good_subject, GITHUB, now - Duration::minutes(30)),
            _ => (good_subject, GITHUB, now - Duration::minutes(1)),
        };
        let leaf = ts.leaf(subject, issuer, from, 10);
        let mut sig = leaf.signer.sign(&payload).unwrap();
        let mut logged_sig = sig.clone();
        match forge {
            Forge::LayerSignedByOtherKey => {
                let other = ts.leaf(good_subject, GITHUB, from, 10);
                sig = other.signer.sign(&payload).unwrap();
                logged_sig = sig.clone();
            }
            Forge::RekorForOtherSignature => {
                logged_sig = leaf.signer.sign(b"another payload").unwrap();
            }
            _ => {}
        }
        let bundle = match forge {
            Forge::NoBundle => String::new(),
            _ => ts.rekor_bundle(
                &logged_sig,
                &payload,
                &leaf.cert_pem,
                t,
                !matches!(forge, Forge::NoSet),
            ),
        };
        if matches!(forge, Forge::RekorForOtherSignature) {
            // The entry must otherwise be genuine for this test to mean anything.
            assert!(!bundle.is_empty());
        }
        let layer =
            LegacySignature::new(payload.clone(), &sig).with_keyless(&leaf.cert_pem, "", &bundle);
        push_legacy(&c, &r, &d, &[layer], &creds).await.unwrap();
        let rep = verify(&v, &r, &single(&d)).await;
        expect(&rep, want, "");
        if want == "verified" {
            assert_eq!(
                rep.verified_signers,
                vec![format!(
                    "keyless issuer={GITHUB} subject~^https://github.com/acme/"
                )]
            );
            // An extension requirement that the certificate does not meet.
            let strict = policy_for(
                &ts,
                "subject_regex = \"^https://github.com/acme/\"\nextensions = { github_workflow_repository = \"acme/other\" }",
            );
            let rep = verify(&strict, &r, &single(&d)).await;
            assert!(!rep.satisfied);
            assert!(
                reasons(&rep).contains("extension github_workflow_repository"),
                "{}",
                reasons(&rep)
            );
            // A trust root with another CA does not vouch for this certificate.
            let other = TestSigstore::new();
            let rep = verify(
                &policy_for(&other, "subject_regex = \"^https://github.com/acme/\""),
                &r,
                &single(&d),
            )
            .await;
            assert!(!rep.satisfied);
            assert!(
                reasons(&rep).contains("transparency entry is from a log not in the trust root"),
                "{}",
                reasons(&rep)
            );
        }
    }
}

/// Keyless signers count by the certificate's (issuer, subject): two configured
/// identities that match one workflow's certificate are one signer, and so are two
/// signings by that workflow; a second workflow is a second signer.
#[tokio::test]
async fn keyless_threshold_counts_issuer_and_subject() {
    use keyless::*;
    use time::{Duration, OffsetDateTime};
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let release = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let audit = "https://github.com/acme/audit/.github/workflows/sign.yml@refs/heads/main";
    let v = Verifier::load(&policy(&format!(
        "threshold = 2\ntrusted_root = {:?}\n[[policy.signatures.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"{release}\"\n[[policy.signatures.keyless]]\nissuer = \"{GITHUB}\"\nsubject_regex = \"^https://github.com/acme/\"\n",
        ts.trusted_root.display().to_string()
    )))
    .unwrap();
    let (r, d) = pushed_image("keyless-threshold").await;
    let c = client(&r.registry);
    let payload = simple_signing_payload(&r.name(), &d);
    let creds = Credentials::default();
    // push_legacy appends a layer to the `.sig` manifest, as cosign does.
    let sign_as = |subject: &str| {
        let leaf = ts.leaf(subject, GITHUB, now - Duration::minutes(1), 10);
        let sig = leaf.signer.sign(&payload).unwrap();
        let bundle = ts.rekor_bundle(&sig, &payload, &leaf.cert_pem, now.unix_timestamp(), true);
        vec![LegacySignature::new(payload.clone(), &sig).with_keyless(&leaf.cert_pem, "", &bundle)]
    };
    // One certificate matching both identities: one signer.
    push_legacy(&c, &r, &d, &sign_as(release), &creds)
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(!rep.satisfied, "{}", reasons(&rep));
    assert_eq!(rep.verified_signers.len(), 1, "{:?}", rep.verified_signers);
    assert_eq!(rep.checks.iter().filter(|c| c.verified).count(), 2);
    // The same workflow signing again (a new ephemeral key): still one signer.
    push_legacy(&c, &r, &d, &sign_as(release), &creds)
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(!rep.satisfied, "{}", reasons(&rep));
    assert_eq!(rep.verified_signers.len(), 1);
    // Another workflow: a second signer.
    push_legacy(&c, &r, &d, &sign_as(audit), &creds)
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(rep.satisfied, "{}", reasons(&rep));
    assert_eq!(rep.verified_signers.len(), 2);
}

#[tokio::test]
async fn keyless_bundle_via_referrers_tag() {
    use keyless::*;
    use time::{Duration, OffsetDateTime};
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let v = policy_for(
        &ts,
        "subject = \"https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main\"",
    );
    let (r, d) = pushed_image("keyless-bundle").await;
    let c = client(&r.registry);
    let payload = simple_signing_payload(&r.name(), &d);
    let leaf = ts.leaf(
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
        GITHUB,
        now - Duration::minutes(1),
        10,
    );
    let sig = leaf.signer.sign(&payload).unwrap();
    let legacy: serde_json::Value = serde_json::from_str(&ts.rekor_bundle(
        &sig,
        &payload,
        &leaf.cert_pem,
        now.unix_timestamp(),
        true,
    ))
    .unwrap();
    let cert_der = pullwarden::verify::keys::pem_block(&leaf.cert_pem, "CERTIFICATE").unwrap();
    let log_id = legacy["Payload"]["logID"].as_str().unwrap();
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": {"rawBytes": B64.encode(&cert_der)},
            "tlogEntries": [{
                "logIndex": "42",
                "logId": {"keyId": B64.encode(hex::decode(log_id).unwrap())},
                "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
                "integratedTime": now.unix_timestamp().to_string(),
                "inclusionPromise": {"signedEntryTimestamp": legacy["SignedEntryTimestamp"]},
                "canonicalizedBody": legacy["Payload"]["body"],
            }],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(hex::decode(Digest::sha256_of(&payload).hex()).unwrap())},
            "signature": B64.encode(&sig),
        },
    });
    push_bundle(
        &c,
        &r,
        &d,
        &serde_json::to_vec(&bundle).unwrap(),
        Some(&payload),
        &Credentials::default(),
    )
    .await
    .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(rep.satisfied, "{}", reasons(&rep));
    assert!(
        rep.checks
            .iter()
            .any(|c| c.verified && c.source == "referrers-tag")
    );
}

/// cosign v3 signs images keylessly as a DSSE envelope (an in-toto statement naming
/// the digest) in a bundle, logged in Rekor as a `dsse` entry (or `intoto` 0.0.2 by
/// older clients). Both verify; entries for another signature, another payload or
/// another certificate do not.
#[tokio::test]
async fn keyless_dsse_bundles_with_dsse_and_intoto_entries() {
    use keyless::*;
    use pullwarden::verify::payload::{IN_TOTO_PAYLOAD_TYPE, dsse_pae};
    use sha2::Digest as _;
    use time::{Duration, OffsetDateTime};
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let subject = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let v = policy_for(&ts, &format!("subject = \"{subject}\""));

    #[derive(Clone, Copy, Debug)]
    enum Entry {
        Dsse,
        IntotoDoubleEncoded,
        IntotoSingleEncoded,
        DsseOtherSignature,
        DsseOtherPayload,
        DsseOtherCertificate,
        DsseWrongVersion,
    }
    let cases = [
        (Entry::Dsse, "verified"),
        (Entry::IntotoDoubleEncoded, "verified"),
        (Entry::IntotoSingleEncoded, "verified"),
        (
            Entry::DsseOtherSignature,
            "Rekor entry is for another signature",
        ),
        (
            Entry::DsseOtherPayload,
            "Rekor entry is for another payload",
        ),
        (
            Entry::DsseOtherCertificate,
            "Rekor entry is for another key or certificate",
        ),
        (
            Entry::DsseWrongVersion,
            "unsupported Rekor entry kind \"dsse\" version \"9.9.9\"",
        ),
    ];
    for (entry, want) in cases {
        let (r, d) = pushed_image(&format!("keyless-dsse-{entry:?}")).await;
        let c = client(&r.registry);
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"{}","digest":{{"sha256":"{}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#,
            r.name(),
            d.hex()
        );
        let leaf = ts.leaf(subject, GITHUB, now - Duration::minutes(1), 10);
        let sig = leaf
            .signer
            .sign(&dsse_pae(IN_TOTO_PAYLOAD_TYPE, statement.as_bytes()))
            .unwrap();
        let logged_sig = match entry {
            Entry::DsseOtherSignature => leaf.signer.sign(b"something else").unwrap(),
            _ => sig.clone(),
        };
        let logged_payload = match entry {
            Entry::DsseOtherPayload => b"{}".to_vec(),
            _ => statement.clone().into_bytes(),
        };
        let logged_cert = match entry {
            Entry::DsseOtherCertificate => ts.leaf(subject, GITHUB, now, 10).cert_pem,
            _ => leaf.cert_pem.clone(),
        };
        let payload_hash = serde_json::json!({
            "algorithm": "sha256",
            "value": hex::encode(sha2::Sha256::digest(&logged_payload)),
        });
        let body = match entry {
            Entry::IntotoDoubleEncoded | Entry::IntotoSingleEncoded => {
                let sig_field = match entry {
                    Entry::IntotoDoubleEncoded => B64.encode(B64.encode(&logged_sig)),
                    _ => B64.encode(&logged_sig),
                };
                serde_json::json!({
                    "apiVersion": "0.0.2", "kind": "intoto",
                    "spec": {"content": {
                        "envelope": {"payloadType": IN_TOTO_PAYLOAD_TYPE,
                                     "signatures": [{"sig": sig_field, "publicKey": B64.encode(&logged_cert)}]},
                        "hash": {"algorithm": "sha256", "value": "00"},
                        "payloadHash": payload_hash,
                    }},
                })
            }
            _ => serde_json::json!({
                "apiVersion": if matches!(entry, Entry::DsseWrongVersion) { "9.9.9" } else { "0.0.1" },
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {"algorithm": "sha256", "value": "00"},
                    "payloadHash": payload_hash,
                    "signatures": [{"signature": B64.encode(&logged_sig), "verifier": B64.encode(&logged_cert)}],
                },
            }),
        };
        let body = serde_json::to_vec(&body).unwrap();
        let integrated = now.unix_timestamp();
        let (set, log_id) = ts.sign_entry(&body, integrated, 7);
        let cert_der = pullwarden::verify::keys::pem_block(&leaf.cert_pem, "CERTIFICATE").unwrap();
        let bundle = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": B64.encode(&cert_der)},
                "tlogEntries": [{
                    "logIndex": "7",
                    "logId": {"keyId": B64.encode(hex::decode(&log_id).unwrap())},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": integrated.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": B64.encode(&set)},
                    "canonicalizedBody": B64.encode(&body),
                }],
            },
            "dsseEnvelope": {
                "payload": B64.encode(&statement),
                "payloadType": IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": B64.encode(&sig)}],
            },
        });
        push_bundle(
            &c,
            &r,
            &d,
            &serde_json::to_vec(&bundle).unwrap(),
            None,
            &Credentials::default(),
        )
        .await
        .unwrap();
        let rep = verify(&v, &r, &single(&d)).await;
        expect(&rep, want, &format!("{entry:?}"));
    }
}

/// Rekor v2 (cosign v3, GitHub attestations): the entry has an inclusion proof to a
/// checkpoint signed by the log (Ed25519 here) and no SET; an RFC 3161 timestamp over
/// the signature gives the signing time at which the certificate must be valid.
/// Forged or foreign timestamps, and an entry with neither SET nor timestamp, fail
/// with their own reasons.
#[tokio::test]
async fn keyless_rekor_v2_entries_with_rfc3161_timestamps() {
    use keyless::*;
    use sha2::Digest as _;
    use time::{Duration, OffsetDateTime};
    let ts = TestSigstore::new();
    let stranger = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let subject = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let v = policy_for(&ts, &format!("subject = \"{subject}\""));
    let no_eku = ts.tsa_leaf(false, now - Duration::days(1));
    let expired_tsa = ts.tsa_leaf(true, now - Duration::days(5));

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Case {
        Good,
        DsseGood,
        GoodWithSet,
        OverOtherSignature,
        TsaNotInTrustRoot,
        TsaWithoutTimeStampingEku,
        TsaCertificateExpired,
        GenTimeAfterCertificate,
        TamperedTstInfo,
        NoTimestampNoSet,
        SetAndBadTimestamp,
        TruncatedToken,
        EntryForOtherCertificate,
    }
    let cases = [
        (Case::Good, "verified"),
        (Case::DsseGood, "verified"),
        (Case::GoodWithSet, "verified"),
        (
            Case::OverOtherSignature,
            "RFC 3161 timestamp is for another signature",
        ),
        (
            Case::TsaNotInTrustRoot,
            "RFC 3161 timestamp authority is not in the trust root",
        ),
        (
            Case::TsaWithoutTimeStampingEku,
            "RFC 3161 timestamp authority certificate lacks the timeStamping EKU",
        ),
        (
            Case::TsaCertificateExpired,
            "RFC 3161 timestamp authority certificate had expired at genTime",
        ),
        (
            Case::GenTimeAfterCertificate,
            "certificate had expired at the RFC 3161 timestamp's genTime",
        ),
        (
            Case::TamperedTstInfo,
            "RFC 3161 timestamp TSTInfo does not match its signed digest",
        ),
        (
            Case::NoTimestampNoSet,
            "missing transparency proof (no signed entry timestamp and no RFC 3161 timestamp",
        ),
        (
            Case::SetAndBadTimestamp,
            "RFC 3161 timestamp is for another signature",
        ),
        (
            Case::TruncatedToken,
            "RFC 3161 timestamp does not parse as CMS",
        ),
        (
            Case::EntryForOtherCertificate,
            "Rekor entry is for another key or certificate",
        ),
    ];
    for (case, want) in cases {
        let (r, d) = pushed_image(&format!("rekor-v2-{case:?}")).await;
        let c = client(&r.registry);
        let leaf = ts.leaf(subject, GITHUB, now - Duration::minutes(1), 10);
        let cert_der = pullwarden::verify::keys::pem_block(&leaf.cert_pem, "CERTIFICATE").unwrap();
        let logged_cert = match case {
            Case::EntryForOtherCertificate => pullwarden::verify::keys::pem_block(
                &ts.leaf(subject, GITHUB, now, 10).cert_pem,
                "CERTIFICATE",
            )
            .unwrap(),
            _ => cert_der.clone(),
        };
        let verifier = serde_json::json!({
            "x509Certificate": {"rawBytes": B64.encode(&logged_cert)},
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
        });
        let dsse = case == Case::DsseGood;
        let payload = simple_signing_payload(&r.name(), &d);
        let statement = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"{}","digest":{{"sha256":"{}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#,
            r.name(),
            d.hex()
        );
        use pullwarden::verify::payload::{IN_TOTO_PAYLOAD_TYPE, dsse_pae};
        let signed = if dsse {
            dsse_pae(IN_TOTO_PAYLOAD_TYPE, statement.as_bytes())
        } else {
            payload.clone()
        };
        let sig = leaf.signer.sign(&signed).unwrap();
        let body = if dsse {
            serde_json::json!({
                "apiVersion": "0.0.2", "kind": "dsse",
                "spec": {"dsseV002": {
                    "payloadHash": {"algorithm": "SHA2_256", "digest": B64.encode(sha2::Sha256::digest(&statement))},
                    "signatures": [{"content": B64.encode(&sig), "verifier": verifier}],
                }},
            })
        } else {
            serde_json::json!({
                "apiVersion": "0.0.2", "kind": "hashedrekord",
                "spec": {"hashedRekordV002": {
                    "data": {"algorithm": "SHA2_256", "digest": B64.encode(sha2::Sha256::digest(&signed))},
                    "signature": {"content": B64.encode(&sig), "verifier": verifier},
                }},
            })
        };
        let body = serde_json::to_vec(&body).unwrap();
        let with_set = matches!(case, Case::GoodWithSet | Case::SetAndBadTimestamp);
        let mut entry = serde_json::json!({
            "logIndex": "1",
            "logId": {"keyId": B64.encode(hex::decode(&ts.log_v2_id).unwrap())},
            "kindVersion": {"kind": if dsse { "dsse" } else { "hashedrekord" }, "version": "0.0.2"},
            "inclusionProof": ts.v2_inclusion_proof(&body),
            "canonicalizedBody": B64.encode(&body),
        });
        if with_set {
            // The same body in a Rekor v1 log, which promises it with a SET.
            let integrated = now.unix_timestamp();
            let (set, log_id) = ts.sign_entry(&body, integrated, 1);
            entry = serde_json::json!({
                "logIndex": "1",
                "logId": {"keyId": B64.encode(hex::decode(&log_id).unwrap())},
                "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
                "integratedTime": integrated.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": B64.encode(&set)},
                "canonicalizedBody": B64.encode(&body),
            });
        }
        let stranger_tsa;
        let stamp = Stamp {
            tsa: match case {
                Case::TsaNotInTrustRoot => {
                    stranger_tsa = &stranger.tsa;
                    stranger_tsa
                }
                Case::TsaWithoutTimeStampingEku => &no_eku,
                Case::TsaCertificateExpired => &expired_tsa,
                _ => &ts.tsa,
            },
            imprint_of: match case {
                Case::OverOtherSignature | Case::SetAndBadTimestamp => b"another signature",
                _ => &sig,
            },
            gen_time: match case {
                Case::GenTimeAfterCertificate => now + Duration::minutes(30),
                _ => now,
            },
            tamper: case == Case::TamperedTstInfo,
        };
        let mut token = timestamp_token(&stamp);
        if case == Case::TruncatedToken {
            token.truncate(token.len() / 2);
        }
        let mut material = serde_json::json!({
            "certificate": {"rawBytes": B64.encode(&cert_der)},
            "tlogEntries": [entry],
        });
        if case != Case::NoTimestampNoSet {
            material["timestampVerificationData"] =
                serde_json::json!({"rfc3161Timestamps": [{"signedTimestamp": B64.encode(&token)}]});
        }
        let mut bundle = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": material,
        });
        if dsse {
            bundle["dsseEnvelope"] = serde_json::json!({
                "payload": B64.encode(&statement),
                "payloadType": IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": B64.encode(&sig)}],
            });
        } else {
            bundle["messageSignature"] = serde_json::json!({
                "messageDigest": {"algorithm": "SHA2_256", "digest": B64.encode(sha2::Sha256::digest(&payload))},
                "signature": B64.encode(&sig),
            });
        }
        push_bundle(
            &c,
            &r,
            &d,
            &serde_json::to_vec(&bundle).unwrap(),
            (!dsse).then_some(&payload[..]),
            &Credentials::default(),
        )
        .await
        .unwrap();
        let rep = verify(&v, &r, &single(&d)).await;
        expect(&rep, want, &format!("{case:?}"));
        if case == Case::Good {
            assert!(
                rep.checks
                    .iter()
                    .any(|c| c.verified && c.source == "referrers-tag"),
                "{}",
                reasons(&rep)
            );
            // The same bundle against a trust root without this TSA or this log.
            let rep = verify(
                &policy_for(&stranger, &format!("subject = \"{subject}\"")),
                &r,
                &single(&d),
            )
            .await;
            assert!(!rep.satisfied);
            // A trust root whose TSA entry was valid only in 2020.
            let mut root: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&ts.trusted_root).unwrap()).unwrap();
            root["timestampAuthorities"][0]["validFor"] = serde_json::json!(
                {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}
            );
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("trusted_root.json");
            std::fs::write(&path, serde_json::to_vec(&root).unwrap()).unwrap();
            let retired = Verifier::load(&policy(&format!(
                "trusted_root = {:?}\n[[policy.signatures.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"{subject}\"\n",
                path.display().to_string()
            )))
            .unwrap();
            let rep = verify(&retired, &r, &single(&d)).await;
            assert!(!rep.satisfied);
            assert!(
                reasons(&rep).contains(
                    "RFC 3161 timestamp genTime is outside its authority's validFor window"
                ),
                "{}",
                reasons(&rep)
            );
        }
    }
}

// ---------------------------------------------------------------- CLI

#[tokio::test]
async fn cli_keygen_sign_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _d) = pushed_image("cli").await;
    let prefix = dir.path().join("release");
    let run = |args: &[&str]| {
        std::process::Command::new(crate::support::bin())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["keygen", "--output", prefix.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[registry]\nplain_http = [\"{}\"]\n[[policy]]\nname = \"signed\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [{:?}]\n",
            r.registry,
            prefix.with_extension("pub").display().to_string()
        ),
    )
    .unwrap();
    let reference = r.to_string();
    let cfg_s = cfg.to_str().unwrap();
    let out = run(&["verify", &reference, "--config", cfg_s, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "sign",
        "--key",
        prefix.with_extension("key").to_str().unwrap(),
        &reference,
        "--config",
        cfg_s,
        "--format",
        "bundle",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["verify", &reference, "--config", cfg_s, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policy"], "signed");
    assert_eq!(v["signatures"]["satisfied"], true);
    let out = run(&["verify", "127.0.0.1:1/x/y:v1", "--config", cfg_s]);
    assert_eq!(out.status.code(), Some(2));
}

/// cosign's legacy `.sig` layers carry an RFC 3161 timestamp in the
/// `dev.sigstore.cosign/rfc3161timestamp` annotation (over the raw signature bytes,
/// as cosign timestamps them): it is checked like a bundle's, next to the SET.
#[tokio::test]
async fn legacy_layers_with_an_rfc3161_timestamp_annotation() {
    use keyless::*;
    use time::{Duration, OffsetDateTime};
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let subject = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let v = policy_for(&ts, &format!("subject = \"{subject}\""));
    for (over_other_signature, want) in [
        (false, "verified"),
        (true, "RFC 3161 timestamp is for another signature"),
    ] {
        let (r, d) = pushed_image(&format!("legacy-tsa-{over_other_signature}")).await;
        let c = client(&r.registry);
        let payload = simple_signing_payload(&r.name(), &d);
        let leaf = ts.leaf(subject, GITHUB, now - Duration::minutes(1), 10);
        let sig = leaf.signer.sign(&payload).unwrap();
        let bundle = ts.rekor_bundle(&sig, &payload, &leaf.cert_pem, now.unix_timestamp(), true);
        let token = timestamp_token(&Stamp {
            tsa: &ts.tsa,
            imprint_of: if over_other_signature {
                b"another signature"
            } else {
                &sig
            },
            gen_time: now,
            tamper: false,
        });
        let mut layer =
            LegacySignature::new(payload.clone(), &sig).with_keyless(&leaf.cert_pem, "", &bundle);
        layer.annotations.insert(
            pullwarden::verify::evidence::ANN_RFC3161.to_string(),
            serde_json::json!({"SignedRFC3161Timestamp": B64.encode(&token)}).to_string(),
        );
        push_legacy(&c, &r, &d, &[layer], &Credentials::default())
            .await
            .unwrap();
        let rep = verify(&v, &r, &single(&d)).await;
        expect(&rep, want, "");
    }
}

/// A Rekor key (or a Fulcio CA) the trust root lists as rotated out (its `validFor` has
/// ended) still vouches for entries (certificates) from while it was current, and for
/// nothing signed after.
#[tokio::test]
async fn rotated_out_log_keys_vouch_only_inside_their_window() {
    rotated_out_window("tlogs", "the transparency log's key was not valid at").await;
}

#[tokio::test]
async fn retired_certificate_authorities_vouch_only_inside_their_window() {
    rotated_out_window(
        "certificateAuthorities",
        "the certificate authority was not valid at the Rekor integrated time",
    )
    .await;
}

async fn rotated_out_window(section: &str, refusal: &str) {
    use keyless::*;
    use time::{Duration, OffsetDateTime};
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let window_end = now - Duration::days(2);
    // Retire the first log key (or CA) two days ago.
    let mut root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ts.trusted_root).unwrap()).unwrap();
    let window = match section {
        "tlogs" => &mut root["tlogs"][0]["publicKey"]["validFor"],
        _ => &mut root[section][0]["validFor"],
    };
    window["end"] = serde_json::Value::String(
        window_end
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    std::fs::write(&ts.trusted_root, serde_json::to_vec(&root).unwrap()).unwrap();
    let subject = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let v = policy_for(&ts, &format!("subject = \"{subject}\""));
    for (signed_at, want) in [(now - Duration::days(3), "verified"), (now, refusal)] {
        let (r, d) =
            pushed_image(&format!("rotated-{section}-{}", signed_at.unix_timestamp())).await;
        let c = client(&r.registry);
        let payload = simple_signing_payload(&r.name(), &d);
        let leaf = ts.leaf(subject, GITHUB, signed_at - Duration::minutes(1), 10);
        let sig = leaf.signer.sign(&payload).unwrap();
        let bundle = ts.rekor_bundle(
            &sig,
            &payload,
            &leaf.cert_pem,
            signed_at.unix_timestamp(),
            true,
        );
        let layer =
            LegacySignature::new(payload.clone(), &sig).with_keyless(&leaf.cert_pem, "", &bundle);
        push_legacy(&c, &r, &d, &[layer], &Credentials::default())
            .await
            .unwrap();
        let rep = verify(&v, &r, &single(&d)).await;
        expect(&rep, want, "");
    }
}
