use serde_json::json;

use super::*;
use crate::report::Severity;

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const LIBC: &str =
    "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc";

fn report() -> ScanReport {
    let v = |id: &str, alias: &str| Vulnerability {
        id: id.into(),
        aliases: vec![alias.into()],
        package: "libc6".into(),
        installed_version: "2.36-9+deb12u10".into(),
        ecosystem: "Debian:12".into(),
        fixed_in: None,
        fix_channel: None,
        severity: Severity::High,
        score: None,
        summary: None,
        purl: LIBC.into(),
        layer: "sha256:1".into(),
    };
    ScanReport {
        vulnerabilities: vec![v("DSA-1-1", "CVE-2024-0001"), v("DSA-2-1", "CVE-2024-0002")],
        ..Default::default()
    }
}

fn openvex(product: &str, sub: &str, status: &str, justification: Option<&str>) -> Value {
    let mut st = json!({
        "vulnerability": {"name": "CVE-2024-0001"},
        "products": [{"@id": product, "subcomponents": [{"@id": sub}]}],
        "status": status,
    });
    if let Some(j) = justification {
        st["justification"] = json!(j);
    }
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://vendor.example/vex/1",
        "author": "Vendor",
        "timestamp": "2026-11-01T00:00:00Z",
        "version": 1,
        "statements": [st],
    })
}

fn source(doc: &Value, signer: Option<&str>) -> VexSource {
    VexSource {
        origin: "file vex.json".into(),
        signer: signer.map(str::to_string),
        untrusted_reason: signer.is_none().then(|| "unsigned".into()),
        document: parse_value(doc).unwrap(),
    }
}

fn product() -> String {
    format!("pkg:oci/app@{}", DIGEST.replace(':', "%3A"))
}

#[test]
fn trusted_not_affected_with_justification_suppresses() {
    let doc = openvex(
        &product(),
        LIBC,
        "not_affected",
        Some("vulnerable_code_not_in_execute_path"),
    );
    let mut r = report();
    let out = apply(&mut r, DIGEST, &[source(&doc, Some("key vendor.pub"))]);
    assert_eq!(r.vulnerabilities.len(), 1);
    assert_eq!(r.vulnerabilities[0].id, "DSA-2-1");
    assert_eq!(out.suppressed.len(), 1);
    let s = &out.suppressed[0];
    assert_eq!(s.id, "DSA-1-1");
    assert_eq!(s.status, Status::NotAffected);
    assert_eq!(s.signer, "key vendor.pub");
    assert_eq!(
        s.justification.as_deref(),
        Some("vulnerable_code_not_in_execute_path")
    );
    // The bare digest and name@version forms match too; so does `fixed`.
    let doc = openvex(DIGEST, "libc6@2.36-9+deb12u10", "fixed", None);
    let mut r = report();
    let out = apply(&mut r, DIGEST, &[source(&doc, Some("operator"))]);
    assert_eq!(out.suppressed.len(), 1);
    assert_eq!(out.suppressed[0].status, Status::Fixed);
}

#[test]
fn untrusted_other_product_other_version_or_no_justification_do_not() {
    let cases = [
        (
            openvex(
                &product(),
                LIBC,
                "not_affected",
                Some("component_not_present"),
            ),
            None,
            "unsigned",
        ),
        (
            openvex(
                &format!("pkg:oci/app@{}", OTHER.replace(':', "%3A")),
                LIBC,
                "not_affected",
                Some("component_not_present"),
            ),
            Some("k"),
            "another product",
        ),
        (
            openvex(
                &product(),
                "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4",
                "not_affected",
                Some("component_not_present"),
            ),
            Some("k"),
            "not libc6@2.36-9+deb12u10",
        ),
        (
            openvex(&product(), LIBC, "not_affected", None),
            Some("k"),
            "without a justification",
        ),
        (openvex(&product(), LIBC, "affected", None), Some("k"), ""),
    ];
    for (doc, signer, reason) in cases {
        let mut r = report();
        let out = apply(&mut r, DIGEST, &[source(&doc, signer)]);
        assert_eq!(r.vulnerabilities.len(), 2, "{doc}");
        assert!(out.suppressed.is_empty());
        if !reason.is_empty() {
            assert!(
                out.ignored.iter().any(|i| i.reason.contains(reason)),
                "{reason}: {:?}",
                out.ignored
            );
        }
    }
}

#[test]
fn the_latest_statement_wins() {
    let mut later = openvex(&product(), LIBC, "affected", None);
    later["timestamp"] = json!("2026-11-02T00:00:00Z");
    let earlier = openvex(
        &product(),
        LIBC,
        "not_affected",
        Some("component_not_present"),
    );
    let mut r = report();
    let out = apply(
        &mut r,
        DIGEST,
        &[source(&later, Some("k")), source(&earlier, Some("k"))],
    );
    assert!(out.suppressed.is_empty());
    assert_eq!(r.vulnerabilities.len(), 2);
}

#[test]
fn cyclonedx_vex() {
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "metadata": {"component": {"type": "container", "bom-ref": "img", "name": "app", "purl": product()}},
        "components": [{"type": "library", "bom-ref": "libc", "name": "libc6", "purl": LIBC}],
        "vulnerabilities": [
            {"id": "CVE-2024-0002", "analysis": {"state": "not_affected", "justification": "code_not_reachable"}, "affects": [{"ref": "libc"}]},
            {"id": "CVE-2024-0001", "affects": [{"ref": "libc"}]}
        ]
    });
    let d = parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
    assert_eq!(d.format, "cyclonedx");
    assert_eq!(d.statements.len(), 1);
    assert_eq!(d.statements[0].subcomponents, [LIBC]);
    let mut r = report();
    let out = apply(&mut r, DIGEST, &[source(&doc, Some("k"))]);
    assert_eq!(out.suppressed.len(), 1);
    assert_eq!(out.suppressed[0].id, "DSA-2-1");
    assert_eq!(
        out.suppressed[0].justification.as_deref(),
        Some("code_not_reachable")
    );
}

#[test]
fn malformed_documents_are_errors() {
    assert!(matches!(parse(b"{"), Err(VexError::Json(_))));
    assert!(matches!(parse(b"{}"), Err(VexError::UnknownFormat)));
    let bad = json!({"@context": OPENVEX_CONTEXT, "statements": [{"vulnerability": {"name": "X"}, "status": "maybe"}]});
    assert!(matches!(
        parse_value(&bad),
        Err(VexError::BadStatement { index: 0, .. })
    ));
    assert_eq!(image_digest_of("registry.example/app@sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").as_deref(), Some(DIGEST));
    assert_eq!(image_digest_of("pkg:deb/debian/x@sha256%3Aaa"), None);
}

#[test]
fn signed_attestation_verifies_only_with_a_trusted_key() {
    use crate::verify::keys::TrustedKey;
    use crate::verify::sign::{ImageSigner, generate_key};
    use sigstore::crypto::SigningScheme;
    let (private, public) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
    let (_, other_public) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
    let signer = ImageSigner::from_pem(private.as_bytes(), false).unwrap();
    let trusted = TrustedKey::from_file_bytes("vendor.pub", public.as_bytes()).unwrap();
    let stranger = TrustedKey::from_file_bytes("other.pub", other_public.as_bytes()).unwrap();
    let vex = openvex(
        &product(),
        LIBC,
        "not_affected",
        Some("component_not_present"),
    );
    let st = attestation::openvex_statement(DIGEST, "app", &vex);
    let env = attestation::envelope(&st, "", |m| signer.sign(m).unwrap());
    let ok = attestation::verify(&env, DIGEST, std::slice::from_ref(&trusted)).unwrap();
    assert!(ok.signer.contains("vendor.pub"), "{}", ok.signer);
    assert_eq!(ok.document.statements.len(), 1);
    assert!(matches!(
        attestation::verify(&env, DIGEST, &[stranger]),
        Err(attestation::AttestationError::Untrusted)
    ));
    assert!(matches!(
        attestation::verify(&env, OTHER, std::slice::from_ref(&trusted)),
        Err(attestation::AttestationError::OtherSubject { .. })
    ));
    // A payload changed after signing does not verify.
    let mut forged: Value = serde_json::from_slice(&env).unwrap();
    let other_st = attestation::openvex_statement(OTHER, "app", &vex);
    forged["payload"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &other_st
    ));
    assert!(matches!(
        attestation::verify(&serde_json::to_vec(&forged).unwrap(), OTHER, &[trusted]),
        Err(attestation::AttestationError::Untrusted)
    ));
}

#[test]
fn a_statement_for_the_platform_manifest_applies_to_the_index_pull() {
    // Pulled by index (DIGEST) whose platform manifest is OTHER: a statement about
    // either is about this image; about a third digest it is not.
    let doc = openvex(OTHER, LIBC, "fixed", None);
    let mut r = report();
    let out = apply_any(&mut r, &[DIGEST, OTHER], &[source(&doc, Some("vendor"))]);
    assert_eq!(out.suppressed.len(), 1);
    assert_eq!(r.vulnerabilities.len(), 1);
    let third = format!("sha256:{}", "c".repeat(64));
    let mut r = report();
    let out = apply_any(&mut r, &[DIGEST, &third], &[source(&doc, Some("vendor"))]);
    assert!(out.suppressed.is_empty());
    assert_eq!(r.vulnerabilities.len(), 2);
    assert!(out.ignored[0].reason.contains("another product"), "{out:?}");
}

/// The node's lookup fails safe: an unreachable registry is no VEX (the report keeps
/// every finding) and `error`, never a failure; a policy with no key trusts no VEX and
/// asks the registry nothing.
#[tokio::test]
async fn node_lookup_failure_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) =
        crate::verify::sign::generate_key(sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1)
            .unwrap();
    let key = dir.path().join("vendor.pub");
    std::fs::write(&key, public).unwrap();
    let cfg = crate::config::Config::parse(&format!(
        "[registry]\nplain_http = [\"127.0.0.1:1\"]\ntimeout = \"2s\"\n[[policy]]\nname = \"p\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [\"{}\"]\n[[policy]]\nname = \"nokeys\"\nimages = [\"**\"]\n",
        key.display()
    ))
    .unwrap();
    let client = crate::registry::RegistryClient::new(&cfg.registry).unwrap();
    let reference: crate::reference::Reference = "127.0.0.1:1/app:v1".parse().unwrap();
    let digest: crate::digest::Digest = DIGEST.parse().unwrap();
    let creds = crate::registry::Credentials::default();
    let mut r = report();
    let signers =
        |i: usize| crate::vex::signers::VexSigners::for_policy(Some(&cfg.policies[i])).unwrap();
    let a = node::apply_attached(
        &client,
        &signers(0),
        &reference,
        std::slice::from_ref(&digest),
        &creds,
        &mut r,
    )
    .await;
    assert_eq!(a.lookup, node::Lookup::Error);
    assert!(a.outcome.is_empty());
    assert_eq!(a.sources, None, "a failed lookup leaves nothing to keep");
    assert_eq!(r, report());
    let a = node::apply_attached(
        &client,
        &signers(1),
        &reference,
        std::slice::from_ref(&digest),
        &creds,
        &mut r,
    )
    .await;
    assert_eq!(a.lookup, node::Lookup::NoSigners);
    assert!(a.outcome.is_empty());
    assert_eq!(a.sources, Some(Vec::new()));
}
