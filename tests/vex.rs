//! Signed VEX against the real registry: `pullwarden scan docker://REF` applies the
//! VEX attestations attached to the image (cosign's `sha256-<hex>.att` tag) only when a
//! key the policy trusts signed them, only for this image's digest and the package
//! version installed, and only `not_affected` with a justification or `fixed`; and
//! `--vex FILE` as the operator's own statement.

use pullwarden::digest::Digest;
use pullwarden::reference::Reference;
use pullwarden::registry::Credentials;
use pullwarden::verify::sign::{ImageSigner, generate_key};
use pullwarden::vex::{attestation, registry::push_attestation};
use serde_json::{Value, json};
use sigstore::crypto::SigningScheme;

use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{bin, it_env, unique_repo};

const OSV: &str = r#"{
  "schema_version": "1.6.0",
  "id": "DSA-9998-1",
  "modified": "2026-01-02T00:00:00Z",
  "aliases": ["CVE-2026-99998"],
  "summary": "base-files: test advisory",
  "affected": [{
    "package": {"ecosystem": "Debian:12", "name": "base-files"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "12.4+deb12u6"}]}]
  }],
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
}"#;

pub(crate) const BASE_FILES: &str =
    "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12";

pub(crate) fn run(args: &[&str]) -> (i32, Value, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

pub(crate) fn openvex(
    product: &str,
    sub: &str,
    status: &str,
    justification: Option<&str>,
    ts: &str,
) -> Value {
    let mut st = json!({
        "vulnerability": {"name": "CVE-2026-99998"},
        "products": [{"@id": product, "subcomponents": [{"@id": sub}]}],
        "status": status,
        "timestamp": ts,
    });
    if let Some(j) = justification {
        st["justification"] = json!(j);
    }
    json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("https://vendor.example/vex/{ts}"),
        "author": "Vendor",
        "timestamp": ts,
        "version": 1,
        "statements": [st],
    })
}

struct Signer {
    key: ImageSigner,
    public_pem: String,
}

fn signer() -> Signer {
    let (private, public_pem) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
    Signer {
        key: ImageSigner::from_pem(private.as_bytes(), false).unwrap(),
        public_pem,
    }
}

fn envelope(s: &Signer, digest: &str, vex: &Value) -> Vec<u8> {
    let st = attestation::openvex_statement(digest, "app", vex);
    attestation::envelope(&st, "", |m| s.key.sign(m).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_vex_suppresses_only_when_trusted_and_matching() {
    let env = it_env();
    let dir = tempfile::tempdir().unwrap();
    let repo = unique_repo("vex");
    let img = base_files_image();
    img.push(&env.registry, &repo, "v1").await;
    let source = format!("docker://{}/{repo}:v1", env.registry);
    let vendor = signer();
    let stranger = signer();
    let key_file = dir.path().join("vendor.pub");
    std::fs::write(&key_file, &vendor.public_pem).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nstate_dir = \"{}\"\n[registry]\nplain_http = [\"{}\"]\n[[policy]]\nname = \"ci\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [\"{}\"]\n[policy.scan]\nmax_severity = \"high\"\n",
            dir.path().join("state").display(),
            env.registry,
            key_file.display()
        ),
    )
    .unwrap();
    import_advisory(dir.path(), &cfg);
    let scan = |extra: &[&str]| {
        let mut a = vec![
            "scan",
            source.as_str(),
            "--config",
            cfg.to_str().unwrap(),
            "--json",
        ];
        a.extend_from_slice(extra);
        run(&a)
    };

    // Without VEX: denied for the critical finding.
    let (code, doc, err) = scan(&[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(doc["vulnerabilities"][0]["id"], "DSA-9998-1");
    assert!(doc["vex"]["suppressed"].as_array().unwrap().is_empty());

    let client = crate::verify::client(&env.registry);
    let reference: Reference = format!("{}/{repo}:v1", env.registry).parse().unwrap();
    let digest: Digest = img.digest.parse().unwrap();
    let product = format!("pkg:oci/app@{}", img.digest.replace(':', "%3A"));
    let attach = |vex: Value, by: &Signer| {
        let env = envelope(by, &img.digest, &vex);
        let (client, reference, digest) = (client.clone(), reference.clone(), digest.clone());
        async move {
            push_attestation(
                &client,
                &reference,
                &digest,
                &env,
                "https://openvex.dev/ns/v0.2.0",
                &Credentials::default(),
            )
            .await
            .unwrap();
        }
    };
    let still_denied = |why: &str| {
        let (code, doc, err) = scan(&[]);
        assert_eq!(code, 1, "{why}: {err} {doc}");
        assert!(
            doc["vex"]["suppressed"].as_array().unwrap().is_empty(),
            "{why}"
        );
        let reasons: Vec<String> = doc["vex"]["ignored"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["reason"].as_str().unwrap().to_string())
            .collect();
        assert!(
            reasons.iter().any(|r| r.contains(why)),
            "{why} in {reasons:?}"
        );
    };

    // Signed by a key the policy does not trust.
    attach(
        openvex(
            &product,
            BASE_FILES,
            "not_affected",
            Some("component_not_present"),
            "2026-11-01T00:00:00Z",
        ),
        &stranger,
    )
    .await;
    still_denied("not signed by a signer trusted for VEX");
    // Trusted, but for another image.
    let other = format!("pkg:oci/app@sha256%3A{}", "b".repeat(64));
    attach(
        openvex(
            &other,
            BASE_FILES,
            "not_affected",
            Some("component_not_present"),
            "2026-11-02T00:00:00Z",
        ),
        &vendor,
    )
    .await;
    still_denied("another product");
    // Trusted, this image, another version of the package.
    attach(
        openvex(
            &product,
            "pkg:deb/debian/base-files@12.4%2Bdeb12u4",
            "not_affected",
            Some("component_not_present"),
            "2026-11-03T00:00:00Z",
        ),
        &vendor,
    )
    .await;
    still_denied("not base-files@12.4+deb12u5");
    // Trusted and matching, but not_affected without a justification.
    attach(
        openvex(
            &product,
            BASE_FILES,
            "not_affected",
            None,
            "2026-11-04T00:00:00Z",
        ),
        &vendor,
    )
    .await;
    still_denied("without a justification");

    // Trusted, matching, justified: suppressed, allowed, the signer named.
    attach(
        openvex(
            &product,
            BASE_FILES,
            "not_affected",
            Some("vulnerable_code_not_in_execute_path"),
            "2026-11-05T00:00:00Z",
        ),
        &vendor,
    )
    .await;
    let (code, doc, err) = scan(&[]);
    assert_eq!(code, 0, "{err} {doc}");
    assert!(
        doc["vulnerabilities"].as_array().unwrap().is_empty(),
        "{doc}"
    );
    let s = &doc["vex"]["suppressed"][0];
    assert_eq!(s["id"], "DSA-9998-1");
    assert_eq!(s["status"], "not_affected");
    assert_eq!(s["justification"], "vulnerable_code_not_in_execute_path");
    assert!(s["signer"].as_str().unwrap().contains("vendor.pub"), "{s}");
    assert!(s["source"].as_str().unwrap().contains(".att"), "{s}");
    // The table says so too.
    let out = std::process::Command::new(bin())
        .args(["scan", &source, "--config", cfg.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("DSA-9998-1") && table.contains("not_affected"),
        "{table}"
    );
}

#[test]
fn vex_file_is_the_operators_statement_and_envelopes_need_a_trusted_key() {
    let dir = tempfile::tempdir().unwrap();
    // An OCI layout with base-files, and the database with its advisory.
    let img = base_files_image();
    let layout = dir.path().join("layout");
    img.write_oci_layout(&layout, "v1");
    let vendor = signer();
    let key_file = dir.path().join("vendor.pub");
    std::fs::write(&key_file, &vendor.public_pem).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nstate_dir = \"{}\"\n[[policy]]\nname = \"ci\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [\"{}\"]\n[policy.scan]\nmax_severity = \"high\"\n",
            dir.path().join("state").display(),
            key_file.display()
        ),
    )
    .unwrap();
    import_advisory(dir.path(), &cfg);
    let source = format!("oci:{}:v1", layout.display());
    let product = img.digest.clone();
    let vex_file = dir.path().join("vex.json");
    let scan_with = |vex: &[u8]| {
        std::fs::write(&vex_file, vex).unwrap();
        run(&[
            "scan",
            &source,
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            "--vex",
            vex_file.to_str().unwrap(),
        ])
    };
    let good = openvex(
        &product,
        "base-files@12.4+deb12u5",
        "fixed",
        None,
        "2026-11-05T00:00:00Z",
    );
    // A plain document: the operator's own.
    let (code, doc, err) = scan_with(&serde_json::to_vec(&good).unwrap());
    assert_eq!(code, 0, "{err} {doc}");
    assert!(
        doc["vex"]["suppressed"][0]["signer"]
            .as_str()
            .unwrap()
            .starts_with("operator")
    );
    // An envelope signed by the trusted key: applied, signer named.
    let (code, doc, err) = scan_with(&envelope(&vendor, &img.digest, &good));
    assert_eq!(code, 0, "{err} {doc}");
    assert!(
        doc["vex"]["suppressed"][0]["signer"]
            .as_str()
            .unwrap()
            .contains("vendor.pub")
    );
    // Signed by another key: not applied.
    let (code, doc, err) = scan_with(&envelope(&signer(), &img.digest, &good));
    assert_eq!(code, 1, "{err} {doc}");
    assert!(doc["vex"]["suppressed"].as_array().unwrap().is_empty());
    // Not VEX at all: exit 2 with a reason.
    let (code, _, err) = scan_with(b"{\"hello\": 1}");
    assert_eq!(code, 2);
    assert!(err.contains("--vex"), "{err}");
}

/// `[policy.vex] keys` replaces the image signers as the VEX signers: the vendor's key
/// listed there suppresses, the image signer's key no longer does; a keyless VEX signer
/// without a trust root and a missing key file are refused at load (exit 64, naming the
/// key).
#[test]
fn policy_vex_keys_choose_who_may_suppress() {
    let dir = tempfile::tempdir().unwrap();
    let img = base_files_image();
    let layout = dir.path().join("layout");
    img.write_oci_layout(&layout, "v1");
    let (image_signer, vendor) = (signer(), signer());
    let image_key = dir.path().join("image.pub");
    let vendor_key = dir.path().join("vendor.pub");
    std::fs::write(&image_key, &image_signer.public_pem).unwrap();
    std::fs::write(&vendor_key, &vendor.public_pem).unwrap();
    let config = |vex_section: &str| {
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nstate_dir = \"{}\"\n[[policy]]\nname = \"ci\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [\"{}\"]\n[policy.scan]\nmax_severity = \"high\"\n{vex_section}",
                dir.path().join("state").display(),
                image_key.display()
            ),
        )
        .unwrap();
        cfg
    };
    let cfg = config(&format!(
        "[policy.vex]\nkeys = [\"{}\"]\n",
        vendor_key.display()
    ));
    import_advisory(dir.path(), &cfg);
    let source = format!("oci:{}:v1", layout.display());
    let good = openvex(
        &img.digest,
        "base-files@12.4+deb12u5",
        "fixed",
        None,
        "2026-11-05T00:00:00Z",
    );
    let vex_file = dir.path().join("vex.json");
    let scan_with = |cfg: &std::path::Path, env: Vec<u8>| {
        std::fs::write(&vex_file, env).unwrap();
        run(&[
            "scan",
            &source,
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            "--vex",
            vex_file.to_str().unwrap(),
        ])
    };
    // The vendor's key, listed in [policy.vex]: applied.
    let (code, doc, err) = scan_with(&cfg, envelope(&vendor, &img.digest, &good));
    assert_eq!(code, 0, "{err} {doc}");
    assert!(
        doc["vex"]["suppressed"][0]["signer"]
            .as_str()
            .unwrap()
            .contains("vendor.pub")
    );
    // The image signer's key is not a VEX signer once [policy.vex] names others.
    let (code, doc, err) = scan_with(&cfg, envelope(&image_signer, &img.digest, &good));
    assert_eq!(code, 1, "{err} {doc}");
    assert!(doc["vex"]["suppressed"].as_array().unwrap().is_empty());
    // Refused at load: a keyless VEX signer without a trusted_root (the policy has none),
    // and a key file that is not there.
    for (section, names) in [
        (
            "[[policy.vex.keyless]]\nissuer = \"https://accounts.example.com\"\nsubject = \"vex@example.com\"\n".to_string(),
            "policy[0].vex.keyless",
        ),
        (
            format!("[policy.vex]\nkeys = [\"{}\"]\n", dir.path().join("absent.pub").display()),
            "policy[0].vex.keys[0]",
        ),
    ] {
        let cfg = config(&section);
        let out = std::process::Command::new(bin())
            .args(["policy", "check", "--config", cfg.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert!(err.contains(names), "{err}");
    }
}

/// The node: the real daemon in front of the real containerd applies the VEX attached
/// to a pulled image (cosign's `.att` tag) before judging it — only when a key the
/// policy trusts signed it (by default the image signers), only for this image's digest;
/// the suppression is in `verdict --json`, `explain --json` and the human `explain`.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_applies_signed_vex_to_pulls() {
    use crate::support::cri::{images, pull_request};
    use crate::support::daemon::Daemon;

    let env = it_env();
    let keys = tempfile::tempdir().unwrap();
    let vendor = signer();
    let stranger = signer();
    let vendor_pub = keys.path().join("vendor.pub");
    std::fs::write(&vendor_pub, &vendor.public_pem).unwrap();
    let daemon = Daemon::start(&format!(
        "[[policy]]\nname = \"vex-node\"\nimages = [\"{}/it/**\"]\n[policy.signatures]\nkeys = [\"{}\"]\n[policy.scan]\nmax_severity = \"high\"\n",
        env.registry,
        vendor_pub.display()
    ));
    let osv = daemon.dir.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(osv.join("DSA-9998-1.json"), OSV).unwrap();
    let out = daemon.cli(&["db", "import", osv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = |args: &[&str]| -> Value {
        let out = daemon.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // Two signed images with the vulnerable package, each its own digest.
    let client = crate::verify::client(&env.registry);
    let (app, app_ref, app_reference, app_digest) =
        push_signed(&client, &vendor, "vex-node-app").await;
    let (other, other_ref, other_reference, other_digest) =
        push_signed(&client, &vendor, "vex-node-other").await;
    let attach = |vex: Value, by: &Signer| {
        let env = envelope(by, &app.digest, &vex);
        let (client, reference, digest) =
            (client.clone(), app_reference.clone(), app_digest.clone());
        async move {
            push_attestation(
                &client,
                &reference,
                &digest,
                &env,
                "https://openvex.dev/ns/v0.2.0",
                &Credentials::default(),
            )
            .await
            .unwrap();
        }
    };
    let product = format!("pkg:oci/app@{}", app.digest.replace(':', "%3A"));
    let mut cri = images(&daemon.listen).await;
    // No VEX: denied for the critical finding.
    pull_denied(&daemon, &app_ref, &app.digest, "no VEX").await;
    let v = json(&["verdict", "--json", &app.digest]);
    assert_eq!(
        v["findings"]["vulnerabilities"][0]["id"], "DSA-9998-1",
        "{v}"
    );
    assert!(v["vex"]["suppressed"].as_array().unwrap().is_empty(), "{v}");

    // Justified not_affected for this digest, signed by a key the policy does not trust.
    let good = |ts: &str| {
        openvex(
            &product,
            BASE_FILES,
            "not_affected",
            Some("vulnerable_code_not_in_execute_path"),
            ts,
        )
    };
    attach(good("2026-11-01T00:00:00Z"), &stranger).await;
    pull_denied(&daemon, &app_ref, &app.digest, "untrusted signer").await;
    let x = json(&["explain", "--json", &app.digest]);
    assert!(x["vex"]["suppressed"].as_array().unwrap().is_empty(), "{x}");
    assert!(
        x["vex"]["ignored"]
            .to_string()
            .contains("not signed by a signer trusted for VEX"),
        "{x}"
    );

    // The trusted signer's statement: the next evaluation allows, and says why.
    attach(good("2026-11-02T00:00:00Z"), &vendor).await;
    let out = daemon.cli(&["purge", &app.digest]);
    assert!(out.status.success());
    cri.pull_image(pull_request(&app_ref, "default"))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "trusted VEX did not allow the pull: {}: {}",
                e.message(),
                daemon.log()
            )
        });
    let x = json(&["explain", "--json", &app.digest]);
    assert_eq!(x["decision"], "allow", "{x}");
    assert!(
        x["findings"]["vulnerabilities"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{x}"
    );
    let s = &x["vex"]["suppressed"][0];
    assert_eq!(s["id"], "DSA-9998-1", "{x}");
    assert_eq!(s["package"], "base-files");
    assert_eq!(s["status"], "not_affected");
    assert_eq!(s["justification"], "vulnerable_code_not_in_execute_path");
    assert!(s["signer"].as_str().unwrap().contains("vendor.pub"), "{s}");
    assert!(s["source"].as_str().unwrap().contains(".att"), "{s}");
    assert_eq!(s["finding"]["id"], "DSA-9998-1", "{s}");
    let v = json(&["verdict", "--json", &app.digest]);
    assert_eq!(v["vex"]["suppressed"][0]["id"], "DSA-9998-1", "{v}");
    let text = String::from_utf8(daemon.cli(&["explain", &app.digest]).stdout).unwrap();
    println!("{text}");
    assert!(text.contains("SUPPRESSED BY VEX (1)"), "{text}");
    assert!(
        text.contains("vulnerable_code_not_in_execute_path"),
        "{text}"
    );
    assert!(text.contains("VEX NOT APPLIED"), "{text}");

    // A new database re-judges the image from its inventory, with no registry call:
    // the VEX the pull looked up is kept with the inventory and applies again, so the
    // re-judged verdict allows as the pull did (before, every finding counted).
    std::fs::write(
        osv.join("DSA-9996-1.json"),
        OSV.replace("DSA-9998-1", "DSA-9996-1")
            .replace("CVE-2026-99998", "CVE-2026-99996")
            .replace("base-files", "no-such-package"),
    )
    .unwrap();
    let out = daemon.cli(&["db", "import", osv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let v = loop {
        let v = json(&["verdict", "--json", &app.digest]);
        if v["how"] == "rescored" {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not rescored: {}",
            daemon.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(v["decision"], "allow", "{v}");
    assert_eq!(v["vex"]["suppressed"][0]["id"], "DSA-9998-1", "{v}");
    assert!(
        v["vex"]["suppressed"][0]["signer"]
            .as_str()
            .unwrap()
            .contains("vendor.pub"),
        "{v}"
    );
    assert!(
        v["findings"]["vulnerabilities"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{v}"
    );

    // The vendor's VEX is about the app's digest: another image with the same package
    // is still denied, even with that attestation copied under its own `.att` tag.
    push_attestation(
        &client,
        &other_reference,
        &other_digest,
        &envelope(&vendor, &app.digest, &good("2026-11-03T00:00:00Z")),
        "https://openvex.dev/ns/v0.2.0",
        &Credentials::default(),
    )
    .await
    .unwrap();
    pull_denied(&daemon, &other_ref, &other.digest, "VEX for another digest").await;
    let v = json(&["verdict", "--json", &other.digest]);
    assert!(v["vex"]["suppressed"].as_array().unwrap().is_empty(), "{v}");

    // The VEX signers change on reload: what the vendor's key vouched for under the old
    // set is not carried over. The stored lookup answers another signer set, so the
    // re-judge of the app counts every finding (the stranger's stored attestation was
    // untrusted when it was looked up, and stored trust is never re-derived): denied.
    let stranger_pub = keys.path().join("stranger.pub");
    std::fs::write(&stranger_pub, &stranger.public_pem).unwrap();
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        format!(
            "{text}\n[policy.vex]\nkeys = [\"{}\"]\n",
            stranger_pub.display()
        ),
    )
    .unwrap();
    let out = daemon.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let v = loop {
        let v = json(&["verdict", "--json", &app.digest]);
        if v["how"] == "rescored" && v["decision"] == "deny" {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not re-judged under the new VEX signers: {v}: {}",
            daemon.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        v["findings"]["vulnerabilities"][0]["id"], "DSA-9998-1",
        "{v}"
    );
    assert!(v["vex"]["suppressed"].as_array().unwrap().is_empty(), "{v}");
}

/// Pushes a salted base-files image and signs it with `by` (cosign's `.sig` tag).
async fn push_signed(
    client: &pullwarden::registry::RegistryClient,
    by: &Signer,
    salt: &str,
) -> (Image, String, Reference, Digest) {
    let env = it_env();
    let img = salted_base_files_image(salt);
    let repo = unique_repo("vexnode");
    img.push(&env.registry, &repo, "v1").await;
    let name = format!("{}/{repo}:v1", env.registry);
    let reference: Reference = name.parse().unwrap();
    let digest: Digest = img.digest.parse().unwrap();
    pullwarden::verify::sign::sign_and_push(
        client,
        &reference,
        &digest,
        &by.key,
        pullwarden::verify::sign::SignFormat::Legacy,
        &Credentials::default(),
    )
    .await
    .unwrap();
    (img, name, reference, digest)
}

/// Forgets `digest`'s verdict, pulls `reference` through the daemon and expects the
/// deny for the critical finding.
async fn pull_denied(
    daemon: &crate::support::daemon::Daemon,
    reference: &str,
    digest: &str,
    why: &str,
) {
    // The first pull of a digest has nothing to forget ("no verdict", exit 1).
    let out = daemon.cli(&["purge", digest]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("no verdict for"),
        "{stderr}"
    );
    let e = crate::support::cri::images(&daemon.listen)
        .await
        .pull_image(crate::support::cri::pull_request(reference, "default"))
        .await
        .expect_err(why);
    assert_eq!(
        e.code(),
        tonic::Code::PermissionDenied,
        "{why}: {}",
        e.message()
    );
    assert!(e.message().contains("DSA-9998-1"), "{why}: {}", e.message());
}

/// [`base_files_image`] with a salt file, so each test image has its own digest.
fn salted_base_files_image(salt: &str) -> Image {
    Image::with_platform(
        vec![Layer::from_entries(
            &[
                Entry::file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
                Entry::file(
                    "var/lib/dpkg/status",
                    "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\n\n",
                ),
                Entry::file("salt", salt.to_string()),
            ],
            Compression::Gzip,
        )],
        "amd64",
        salt,
    )
}

/// A Debian image with one package, `base-files 12.4+deb12u5`, that `OSV` affects.
pub(crate) fn base_files_image() -> Image {
    Image::new(vec![Layer::from_entries(
        &[
            Entry::file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            Entry::file(
                "var/lib/dpkg/status",
                "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\n\n",
            ),
        ],
        Compression::Gzip,
    )])
}

/// Imports the `OSV` advisory into the database of the config `cfg`.
pub(crate) fn import_advisory(dir: &std::path::Path, cfg: &std::path::Path) {
    let osv = dir.join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(osv.join("DSA-9998-1.json"), OSV).unwrap();
    let out = std::process::Command::new(bin())
        .args(["db", "import", "--config", cfg.to_str().unwrap()])
        .arg(&osv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
