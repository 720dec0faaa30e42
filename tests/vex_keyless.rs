//! Keyless VEX signers (`cosign attest` without a key: a Fulcio certificate and a Rekor
//! entry next to the DSSE envelope), with the test Fulcio CA, Rekor key and
//! trusted_root.json of `verify::keyless`. The attacks: another subject, another
//! issuer, a certificate from another CA, a Rekor entry for another envelope, a
//! statement about another digest and a certificate expired at the integrated time
//! never make a VEX signer; the trusted identity does, in an `.att` layer and in a
//! sigstore bundle, and through `pullwarden scan` against the real registry.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use pullwarden::config::Config;
use pullwarden::digest::Digest;
use pullwarden::reference::Reference;
use pullwarden::registry::Credentials;
use pullwarden::verify::evidence::{self, ANN_BUNDLE, ANN_CERTIFICATE};
use pullwarden::verify::payload::{IN_TOTO_PAYLOAD_TYPE, dsse_pae};
use pullwarden::vex::attestation::{self, AttestationError};
use pullwarden::vex::registry::push_attestation_annotated;
use pullwarden::vex::signers::VexSigners;
use serde_json::{Value, json};
use sha2::Digest as _;
use time::{Duration, OffsetDateTime};

use crate::support::{bin, it_env, unique_repo};
use crate::verify::keyless::{GITHUB, Leaf, TestSigstore};
use crate::vex::{BASE_FILES, base_files_image, import_advisory, openvex, run};

const RELEASE: &str = "https://github.com/vendor/app/.github/workflows/vex.yml@refs/heads/main";
pub(crate) const DIGEST: &str =
    "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// One keyless VEX attestation in both carriers: the DSSE envelope with the `.att`
/// layer annotations (certificate, legacy Rekor bundle), and a sigstore bundle v0.3
/// (certificate chain, tlog entry with its SET).
pub(crate) struct KeylessVex {
    pub envelope: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
    pub bundle: Vec<u8>,
}

/// A trust root, the signers trusting `RELEASE` under it, and an attestation about
/// `DIGEST` that they trust (the fuzz module's seeds).
pub(crate) fn fixture() -> (TestSigstore, VexSigners, KeylessVex) {
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let s = signers(&vex_section(&ts, &format!("subject = \"{RELEASE}\"")));
    let leaf = ts.leaf(RELEASE, GITHUB, now - Duration::minutes(1), 10);
    let k = sign(&ts, &leaf, &statement(DIGEST), now.unix_timestamp());
    (ts, s, k)
}

/// The signature over `statement` by `leaf`, logged in `ts`'s Rekor as a `dsse` entry
/// (this signature, this payload, this certificate) integrated at `integrated`.
fn sign(ts: &TestSigstore, leaf: &Leaf, statement: &[u8], integrated: i64) -> KeylessVex {
    let sig = leaf
        .signer
        .sign(&dsse_pae(IN_TOTO_PAYLOAD_TYPE, statement))
        .unwrap();
    let envelope = attestation::envelope(statement, "", |_| sig.clone());
    let body = serde_json::to_vec(&json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": "00"},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(sha2::Sha256::digest(statement))},
            "signatures": [{"signature": B64.encode(&sig), "verifier": B64.encode(&leaf.cert_pem)}],
        },
    }))
    .unwrap();
    let (set, log_id) = ts.sign_entry(&body, integrated, 7);
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_CERTIFICATE.to_string(), leaf.cert_pem.clone());
    annotations.insert(
        ANN_BUNDLE.to_string(),
        json!({
            "SignedEntryTimestamp": B64.encode(&set),
            "Payload": {"body": B64.encode(&body), "integratedTime": integrated, "logIndex": 7, "logID": log_id},
        })
        .to_string(),
    );
    let cert_der = pullwarden::verify::keys::pem_block(&leaf.cert_pem, "CERTIFICATE").unwrap();
    let bundle = serde_json::to_vec(&json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "x509CertificateChain": {"certificates": [{"rawBytes": B64.encode(&cert_der)}]},
            "tlogEntries": [{
                "logIndex": "7",
                "logId": {"keyId": B64.encode(hex::decode(&log_id).unwrap())},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": integrated.to_string(),
                "inclusionPromise": {"signedEntryTimestamp": B64.encode(&set)},
                "canonicalizedBody": B64.encode(&body),
            }],
        },
        "dsseEnvelope": serde_json::from_slice::<Value>(&envelope).unwrap(),
    }))
    .unwrap();
    KeylessVex {
        envelope,
        annotations,
        bundle,
    }
}

fn statement(digest: &str) -> Vec<u8> {
    let product = format!("pkg:oci/app@{}", digest.replace(':', "%3A"));
    let vex = openvex(
        &product,
        BASE_FILES,
        "not_affected",
        Some("component_not_present"),
        "2026-11-05T00:00:00Z",
    );
    attestation::openvex_statement(digest, "app", &vex)
}

/// The VEX signers of policy "p" of a config whose policy ends with `tail` (TOML).
fn signers(tail: &str) -> VexSigners {
    let text = format!("[[policy]]\nname = \"p\"\nimages = [\"**\"]\n{tail}");
    let c = Config::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    VexSigners::for_policy(Some(&c.policies[0])).unwrap()
}

fn vex_section(ts: &TestSigstore, identity: &str) -> String {
    format!(
        "[policy.vex]\ntrusted_root = {:?}\n[[policy.vex.keyless]]\nissuer = \"{GITHUB}\"\n{identity}\n",
        ts.trusted_root.display().to_string()
    )
}

/// Both carriers of `k` judged for `digest`: the `.att` layer, then the bundle.
fn judge(k: &KeylessVex, digest: &str, s: &VexSigners) -> [Result<String, String>; 2] {
    let att = evidence::from_dsse_layer(&k.envelope, &k.annotations);
    let layer = attestation::verify_signed(&k.envelope, Some(&att), digest, s);
    let bundle = evidence::from_bundle(&k.bundle, None);
    let b: Value = serde_json::from_slice(&k.bundle).unwrap();
    let env = serde_json::to_vec(&b["dsseEnvelope"]).unwrap();
    let in_bundle = attestation::verify_signed(&env, Some(&bundle), digest, s);
    [layer, in_bundle].map(|r| r.map(|v| v.signer).map_err(|e| e.to_string()))
}

fn refused(k: &KeylessVex, digest: &str, s: &VexSigners, want: &str) {
    for (carrier, r) in ["att layer", "bundle"].iter().zip(judge(k, digest, s)) {
        let e = r.expect_err(&format!("{carrier}: {want}"));
        assert!(e.contains(want), "{carrier}: {want:?} not in {e:?}");
    }
}

#[test]
fn keyless_vex_signers_and_the_attacks_on_them() {
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let t = now.unix_timestamp();
    let s = signers(&vex_section(&ts, &format!("subject = \"{RELEASE}\"")));
    let st = statement(DIGEST);
    let leaf = ts.leaf(RELEASE, GITHUB, now - Duration::minutes(1), 10);
    let good = sign(&ts, &leaf, &st, t);

    // The trusted identity: a VEX signer, named by its identity, in both carriers.
    let want = format!("keyless issuer={GITHUB} subject={RELEASE}");
    for r in judge(&good, DIGEST, &s) {
        assert_eq!(r.as_deref(), Ok(want.as_str()));
    }
    // The document it carries is the one that applies.
    let att = evidence::from_dsse_layer(&good.envelope, &good.annotations);
    let v = attestation::verify_signed(&good.envelope, Some(&att), DIGEST, &s).unwrap();
    assert_eq!(v.document.statements.len(), 1);
    assert_eq!(v.predicate_type, "https://openvex.dev/ns/v0.2.0");

    // Another subject of the trusted issuer.
    let evil = "https://github.com/evil/app/.github/workflows/vex.yml@refs/heads/main";
    let other_subject = sign(
        &ts,
        &ts.leaf(evil, GITHUB, now - Duration::minutes(1), 10),
        &st,
        t,
    );
    refused(
        &other_subject,
        DIGEST,
        &s,
        "identity mismatch: certificate subject",
    );
    // The trusted subject from another issuer.
    let other_issuer = sign(
        &ts,
        &ts.leaf(
            RELEASE,
            "https://accounts.google.com",
            now - Duration::minutes(1),
            10,
        ),
        &st,
        t,
    );
    refused(
        &other_issuer,
        DIGEST,
        &s,
        "identity mismatch: certificate issuer",
    );
    // A certificate from a CA the trust root does not list, logged in the trusted Rekor
    // (the test CAs share one name: the foreign one impersonates the trusted CA).
    let other_ca = TestSigstore::new();
    let foreign = sign(
        &ts,
        &other_ca.leaf(RELEASE, GITHUB, now - Duration::minutes(1), 10),
        &st,
        t,
    );
    refused(
        &foreign,
        DIGEST,
        &s,
        "certificate chain does not verify: InvalidSignatureForPublicKey",
    );
    // A genuine Rekor entry, but for another envelope by the same certificate: the
    // envelope of `good` carried with the entry of a second valid attestation — of the
    // same statement (signed again: another signature), and of another statement.
    let carry = |entry_of: &KeylessVex| KeylessVex {
        envelope: good.envelope.clone(),
        annotations: entry_of.annotations.clone(),
        bundle: {
            let mut b: Value = serde_json::from_slice(&entry_of.bundle).unwrap();
            b["dsseEnvelope"] = serde_json::from_slice(&good.envelope).unwrap();
            serde_json::to_vec(&b).unwrap()
        },
    };
    let again = sign(&ts, &leaf, &st, t);
    assert_ne!(again.envelope, good.envelope);
    refused(
        &carry(&again),
        DIGEST,
        &s,
        "Rekor entry is for another signature",
    );
    let second = sign(&ts, &leaf, &statement(OTHER), t);
    refused(
        &carry(&second),
        DIGEST,
        &s,
        "Rekor entry is for another payload",
    );
    // A valid keyless statement about another digest.
    for r in judge(&second, DIGEST, &s) {
        assert!(
            r.as_ref()
                .is_err_and(|e| e.contains(&format!("is about {OTHER}"))),
            "{r:?}"
        );
    }
    // A certificate that had expired when the entry was integrated.
    let expired = sign(
        &ts,
        &ts.leaf(RELEASE, GITHUB, now - Duration::minutes(30), 10),
        &st,
        t,
    );
    refused(
        &expired,
        DIGEST,
        &s,
        "certificate had expired at the Rekor integrated time",
    );
    // No Rekor entry at all.
    let mut unlogged = good.annotations.clone();
    unlogged.remove(ANN_BUNDLE);
    let ev = evidence::from_dsse_layer(&good.envelope, &unlogged);
    let e = attestation::verify_signed(&good.envelope, Some(&ev), DIGEST, &s).unwrap_err();
    assert!(
        matches!(e, AttestationError::UntrustedKeyless(_))
            && e.to_string().contains("missing transparency proof"),
        "{e}"
    );
    // A trust root with only another CA and log vouches for nothing here.
    let s_other = signers(&vex_section(&other_ca, &format!("subject = \"{RELEASE}\"")));
    for r in judge(&good, DIGEST, &s_other) {
        assert!(r.is_err(), "{r:?}");
    }
    // A regex identity names the certificate's own subject as the signer.
    let s_re = signers(&vex_section(
        &ts,
        "subject_regex = \"^https://github.com/vendor/\"",
    ));
    for r in judge(&good, DIGEST, &s_re) {
        assert_eq!(r.as_deref(), Ok(want.as_str()));
    }
    // Keys only: a keyless attestation is untrusted, and says why.
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = pullwarden::verify::sign::generate_key(
        sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1,
    )
    .unwrap();
    let key = dir.path().join("k.pub");
    std::fs::write(&key, public).unwrap();
    let keys_only = signers(&format!(
        "[policy.vex]\nkeys = [{:?}]\n",
        key.display().to_string()
    ));
    refused(
        &good,
        DIGEST,
        &keys_only,
        "trusts no keyless identity for VEX",
    );
}

/// Without a `[policy.vex]` section the VEX signers are all the image signers, keyless
/// identities included (checked against `[policy.signatures] trusted_root`); a
/// `[policy.vex]` section without a trust root of its own uses that one too, and a
/// keyless VEX signer with no trust root anywhere is refused at load.
#[test]
fn default_vex_signers_include_keyless_image_signers() {
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let root = ts.trusted_root.display().to_string();
    let leaf = ts.leaf(RELEASE, GITHUB, now - Duration::minutes(1), 10);
    let good = sign(&ts, &leaf, &statement(DIGEST), now.unix_timestamp());
    let image_signers = signers(&format!(
        "[policy.signatures]\ntrusted_root = {root:?}\n[[policy.signatures.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"{RELEASE}\"\n"
    ));
    assert!(image_signers.keys.is_empty() && image_signers.keyless.len() == 1);
    let want = format!("keyless issuer={GITHUB} subject={RELEASE}");
    for r in judge(&good, DIGEST, &image_signers) {
        assert_eq!(r.as_deref(), Ok(want.as_str()));
    }
    // [policy.vex] keyless with the signatures' trust root: another identity only.
    let vendor_only = signers(&format!(
        "[policy.signatures]\ntrusted_root = {root:?}\n[[policy.signatures.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"{RELEASE}\"\n[[policy.vex.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"https://github.com/vendor/other\"\n"
    ));
    refused(
        &good,
        DIGEST,
        &vendor_only,
        "is not \"https://github.com/vendor/other\"",
    );
    // Refused at load: no trust root anywhere; a bad identity; a bad VEX trust root.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{").unwrap();
    for (tail, key) in [
        (
            format!("[[policy.vex.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"{RELEASE}\"\n"),
            "policy[0].vex.keyless",
        ),
        (
            format!(
                "[policy.vex]\ntrusted_root = {root:?}\n[[policy.vex.keyless]]\nissuer = \"{GITHUB}\"\n"
            ),
            "policy[0].vex.keyless[0]",
        ),
        (
            format!(
                "[policy.vex]\ntrusted_root = {:?}\n[[policy.vex.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"{RELEASE}\"\n",
                junk.display().to_string()
            ),
            "policy[0].vex.trusted_root",
        ),
    ] {
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!("[[policy]]\nname = \"p\"\nimages = [\"**\"]\n{tail}"),
        )
        .unwrap();
        let out = std::process::Command::new(bin())
            .args(["policy", "check", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{tail}: {err}");
        assert!(err.contains(key), "{key} not in {err}");
    }
}

/// `pullwarden scan docker://…` of an image in the real registry with keyless-signed
/// `.att` layers: another subject's is listed as not applied with the reason; the
/// trusted identity's suppresses and is named as the signer; and so does a keyless
/// sigstore bundle among the referrers.
#[tokio::test(flavor = "multi_thread")]
async fn scan_applies_keyless_signed_vex_from_the_registry() {
    let env = it_env();
    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    let img = base_files_image();
    let client = crate::verify::client(&env.registry);
    let creds = Credentials::default();
    let cfg = dir.path().join("c.toml");
    // The image signers are keyless; no [policy.vex]: they are the VEX signers.
    std::fs::write(
        &cfg,
        format!(
            "[server]\nstate_dir = \"{}\"\n[registry]\nplain_http = [\"{}\"]\n[[policy]]\nname = \"ci\"\nimages = [\"**\"]\n[policy.signatures]\ntrusted_root = {:?}\n[[policy.signatures.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"{RELEASE}\"\n[policy.scan]\nmax_severity = \"high\"\n",
            dir.path().join("state").display(),
            env.registry,
            ts.trusted_root.display().to_string(),
        ),
    )
    .unwrap();
    import_advisory(dir.path(), &cfg);
    let st = statement(&img.digest);
    let evil = "https://github.com/evil/app/.github/workflows/vex.yml@refs/heads/main";
    for carrier in ["att", "bundle"] {
        let repo = unique_repo(&format!("vexkeyless-{carrier}"));
        img.push(&env.registry, &repo, "v1").await;
        let source = format!("docker://{}/{repo}:v1", env.registry);
        let reference: Reference = format!("{}/{repo}:v1", env.registry).parse().unwrap();
        let digest: Digest = img.digest.parse().unwrap();
        let attach = |k: KeylessVex| {
            let (client, reference, digest, creds) = (
                client.clone(),
                reference.clone(),
                digest.clone(),
                creds.clone(),
            );
            async move {
                if carrier == "att" {
                    let annotations = k
                        .annotations
                        .iter()
                        .map(|(a, v)| (a.clone(), Value::from(v.as_str())))
                        .collect();
                    push_attestation_annotated(
                        &client,
                        &reference,
                        &digest,
                        &k.envelope,
                        "https://openvex.dev/ns/v0.2.0",
                        &annotations,
                        &creds,
                    )
                    .await
                    .unwrap();
                } else {
                    pullwarden::verify::sign::push_bundle(
                        &client, &reference, &digest, &k.bundle, None, &creds,
                    )
                    .await
                    .unwrap();
                }
            }
        };
        let scan = || run(&["scan", &source, "--config", cfg.to_str().unwrap(), "--json"]);
        // Another subject of the trusted issuer: not applied, with the reason.
        attach(sign(
            &ts,
            &ts.leaf(evil, GITHUB, now - Duration::minutes(1), 10),
            &st,
            now.unix_timestamp(),
        ))
        .await;
        let (code, doc, err) = scan();
        assert_eq!(code, 1, "{carrier}: {err} {doc}");
        assert!(doc["vex"]["suppressed"].as_array().unwrap().is_empty());
        let reasons = doc["vex"]["ignored"].to_string();
        assert!(
            reasons.contains("signed keylessly, not by a signer trusted for VEX")
                && reasons.contains("identity mismatch: certificate subject"),
            "{carrier}: {reasons}"
        );
        // The trusted identity: suppressed, the identity named as the signer.
        attach(sign(
            &ts,
            &ts.leaf(RELEASE, GITHUB, now - Duration::minutes(1), 10),
            &st,
            now.unix_timestamp(),
        ))
        .await;
        let (code, doc, err) = scan();
        assert_eq!(code, 0, "{carrier}: {err} {doc}");
        let s = &doc["vex"]["suppressed"][0];
        assert_eq!(s["id"], "DSA-9998-1", "{carrier}: {doc}");
        assert_eq!(
            s["signer"],
            format!("keyless issuer={GITHUB} subject={RELEASE}"),
            "{carrier}: {s}"
        );
        let want_source = if carrier == "att" {
            ".att"
        } else {
            "sigstore bundle"
        };
        assert!(
            s["source"].as_str().unwrap().contains(want_source),
            "{carrier}: {s}"
        );
    }
}
