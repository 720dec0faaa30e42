//! Issue 6 end to end: the real daemon binary with its real parts (registry client,
//! verifier, scanner, redb store, admin API) in front of the real containerd, images
//! signed with `pullwarden sign` and pushed to the real registry, driven through CRI
//! exactly as the kubelet does and inspected with the node CLI.

use std::process::Output;
use std::time::Duration;

use k8s_cri::v1::ImageStatusRequest;
use serde_json::Value;

use crate::support::cri::{images, pull_request, spec};
use crate::support::daemon::Daemon;
use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{bin, it_env, unique_repo};

/// A clean Debian-looking layer plus an app layer.
fn image(salt: &str, app: Vec<Entry>) -> Image {
    let base = Layer::from_entries(
        &[
            Entry::file(
                "etc/os-release",
                "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
            ),
            Entry::file(
                "var/lib/dpkg/status",
                "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\n\n",
            ),
        ],
        Compression::Gzip,
    );
    let mut entries = vec![Entry::file("app/salt", salt.to_string())];
    entries.extend(app);
    Image::with_platform(
        vec![base, Layer::from_entries(&entries, Compression::Zstd)],
        "amd64",
        salt,
    )
}

fn leaky_entries() -> Vec<Entry> {
    vec![Entry::file(
        "app/.env",
        "AWS_ACCESS_KEY_ID=AKIA4QWERTYUIOPASDFG\nAWS_SECRET_ACCESS_KEY=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\n",
    )]
}

struct Node {
    daemon: Daemon,
    key: std::path::PathBuf,
    metrics: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    /// A daemon with an audit policy for `it/e2eaudit-*` and an enforcing one for the
    /// rest of `it/**`, trusting a fresh key.
    fn start(extra_scan: &str) -> Node {
        let env = it_env();
        let keys = tempfile::tempdir().unwrap().keep();
        let key = keys.join("release");
        let out = std::process::Command::new(bin())
            .args(["keygen", "--output"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let policies = format!(
            r#"
[[policy]]
name = "audit-only"
images = ["{reg}/it/e2eaudit-*"]
mode = "audit"
[policy.signatures]
keys = ["{pub_}"]

[[policy]]
name = "e2e"
images = ["{reg}/it/**"]
mode = "enforce"
[policy.signatures]
keys = ["{pub_}"]
[policy.scan]
secrets = "deny"
{extra_scan}
"#,
            reg = env.registry,
            pub_ = key.with_extension("pub").display(),
        );
        let mut daemon = Daemon::start(&policies);
        // Metrics on a known loopback port: rewrite and restart once.
        let text = std::fs::read_to_string(&daemon.config)
            .unwrap()
            .replace("metrics = \"\"", &format!("metrics = \"127.0.0.1:{port}\""));
        std::fs::write(&daemon.config, text).unwrap();
        daemon.stop();
        daemon.spawn();
        Node {
            daemon,
            key: key.with_extension("key"),
            metrics: format!("127.0.0.1:{port}"),
        }
    }

    fn sign(&self, reference: &str) {
        let out = std::process::Command::new(bin())
            .args(["sign", "--key"])
            .arg(&self.key)
            .arg("--config")
            .arg(&self.daemon.config)
            .arg(reference)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sign: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.daemon.cli(args)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not one JSON document ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn evaluations(&self, reference: &str) -> usize {
        let explain = self.json(&["explain", "--json", reference]);
        explain["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cached"] == false)
            .count()
    }
}

/// Text without ANSI escape sequences (colours of a text log).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Restarts the node's daemon with these lines added to its `[server]` section.
fn with_server_lines(node: &mut Node, lines: &str) {
    let text = std::fs::read_to_string(&node.daemon.config)
        .unwrap()
        .replacen("[server]\n", &format!("[server]\n{lines}\n"), 1);
    std::fs::write(&node.daemon.config, text).unwrap();
    node.daemon.stop();
    node.daemon.spawn();
}

/// Copies the cosign `.sig` tag of `digest` from one repository to another, as a mirror
/// copying an image with its signatures does.
async fn copy_signature(registry: &str, from: &str, to: &str, digest: &str) {
    let tag = format!("{}.sig", digest.replace(':', "-"));
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("http://{registry}/v2/{from}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "no signature on {from}");
    let media = resp.headers()["content-type"].to_str().unwrap().to_string();
    let manifest = resp.bytes().await.unwrap();
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    for b in blobs {
        let bytes = http
            .get(format!("http://{registry}/v2/{from}/blobs/{b}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        crate::support::image::push_blob(registry, to, &bytes).await;
    }
    crate::support::image::push_manifest(registry, to, &tag, &media, &manifest).await;
}

async fn push(prefix: &str, img: &Image) -> String {
    let env = it_env();
    let repo = unique_repo(prefix);
    img.push(&env.registry, &repo, "v1").await;
    format!("{}/{repo}:v1", env.registry)
}

async fn in_containerd(image: &str) -> bool {
    crate::support::cri::present(&it_env().containerd_sock, image).await
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_allowed_unsigned_and_secret_denied_audit_recorded() {
    let node = Node::start("");
    let app = image("e2e-app", vec![Entry::file("app/run.sh", "#!/bin/sh\n")]);
    let unsigned = image("e2e-unsigned", vec![]);
    let leaky = image("e2e-leaky", leaky_entries());
    let audited = image("e2e-audit", vec![]);
    let app_ref = push("e2eapp", &app).await;
    let unsigned_ref = push("e2eunsigned", &unsigned).await;
    let leaky_ref = push("e2eleaky", &leaky).await;
    let audit_ref = push("e2eaudit", &audited).await;
    node.sign(&app_ref);
    node.sign(&leaky_ref);
    let mut cri = images(&node.daemon.listen).await;

    // Signed and clean: allowed, containerd's own answer.
    let r = cri
        .pull_image(pull_request(&app_ref, "default"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.image_ref, app.config_digest);
    let v = node.json(&["verdict", "--json", &app_ref]);
    for field in [
        "digest",
        "reference",
        "decision",
        "mode",
        "policy",
        "reasons",
        "signatures",
        "findings",
        "decided_at",
    ] {
        assert!(v.get(field).is_some(), "verdict JSON lacks {field}: {v}");
    }
    assert_eq!(
        (
            v["decision"].as_str(),
            v["digest"].as_str(),
            v["policy"].as_str()
        ),
        (Some("allow"), Some(app.digest.as_str()), Some("e2e"))
    );
    assert_eq!(v["signatures"]["satisfied"], true);
    assert!(v["findings"]["secrets"].as_array().unwrap().is_empty());
    assert!(v["findings"]["vulnerabilities"].is_array() && v["findings"]["files"].is_array());
    assert!(
        time::OffsetDateTime::parse(
            v["decided_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    assert_eq!(v["packages"], 1, "dpkg inventory of the base layer: {v}");

    // Unsigned: the kubelet-visible signature error, nothing left in containerd.
    let e = cri
        .pull_image(pull_request(&unsigned_ref, "default"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unknown);
    let prefix = format!(
        "SignatureValidationFailed: pullwarden: image {unsigned_ref} ({}) denied by policy e2e: ",
        unsigned.digest
    );
    assert!(e.message().starts_with(&prefix), "{}", e.message());
    assert!(!in_containerd(&unsigned_ref).await);

    // Signed but carrying a secret: denied by the scan, removed again, explained.
    let e = cri
        .pull_image(pull_request(&leaky_ref, "default"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let prefix = format!(
        "pullwarden: image {leaky_ref} ({}) denied by policy e2e: secret aws-access-key-id in /app/.env",
        leaky.digest
    );
    assert!(e.message().starts_with(&prefix), "{}", e.message());
    assert!(
        e.message().ends_with(&format!(
            "run \"pullwarden explain {}\" on the node",
            leaky.digest
        )),
        "{}",
        e.message()
    );
    assert!(
        !in_containerd(&leaky_ref).await,
        "denied image left in containerd"
    );
    let x = node.json(&["explain", "--json", &leaky.digest]);
    let secrets = x["findings"]["secrets"].as_array().unwrap();
    let aws = secrets
        .iter()
        .find(|s| s["rule"] == "aws-access-key-id")
        .expect("aws finding");
    assert_eq!(
        (aws["path"].as_str(), aws["line"].as_u64()),
        (Some("/app/.env"), Some(1))
    );
    assert_eq!(aws["layer"].as_str(), Some(leaky.layers[1].digest.as_str()));
    assert!(
        !x.to_string()
            .contains("t4Jp9sVbQm2Xc8LrZ1nWk5YhDg7FuE3aR0oTiS6q"),
        "secret printed in full"
    );
    let text = String::from_utf8(node.cli(&["explain", &leaky_ref]).stdout).unwrap();
    assert!(
        text.contains("aws-access-key-id") && text.contains("/app/.env"),
        "{text}"
    );

    // Audit mode: allowed, the deny recorded.
    cri.pull_image(pull_request(&audit_ref, "default"))
        .await
        .unwrap();
    assert!(in_containerd(&audit_ref).await);
    let v = node.json(&["verdict", "--json", &audit_ref]);
    assert_eq!(
        (
            v["decision"].as_str(),
            v["mode"].as_str(),
            v["policy"].as_str()
        ),
        (Some("deny"), Some("audit"), Some("audit-only"))
    );
    // Audit reads as audit: the deny is recorded, and it was not enforced.
    assert_eq!(v["enforced"], false, "{v}");
    assert_eq!(
        node.json(&["verdict", "--json", &app_ref])["enforced"],
        true
    );
    assert_eq!(
        node.json(&["verdict", "--json", &unsigned_ref])["enforced"],
        true
    );
    let table = String::from_utf8(node.cli(&["verdicts"]).stdout).unwrap();
    let row = |d: &str| {
        table
            .lines()
            .find(|l| l.contains(d))
            .unwrap_or_else(|| panic!("{d} not in:\n{table}"))
            .to_string()
    };
    assert!(
        row(&audited.digest).starts_with("deny (audit: allowed)"),
        "{table}"
    );
    assert!(row(&unsigned.digest).starts_with("deny "), "{table}");
    assert!(!row(&unsigned.digest).contains("audit: allowed"), "{table}");
    let summary = String::from_utf8(node.cli(&["verdict", &audit_ref]).stdout).unwrap();
    assert!(
        summary.contains("DENY (audit: allowed; signature)"),
        "{summary}"
    );
    let line = strip_ansi(&node.daemon.log())
        .lines()
        .find(|l| l.contains("pull decision") && l.contains(&audit_ref))
        .map(str::to_string)
        .expect("an audit log line for the audited pull");
    assert!(
        line.contains("enforced=false") || line.contains("\"enforced\":false"),
        "{line}"
    );

    // The listing, filtered.
    let denies = node.json(&["verdicts", "--decision", "deny", "--json"]);
    let digests: Vec<&str> = denies
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["digest"].as_str())
        .collect();
    for d in [&unsigned.digest, &leaky.digest, &audited.digest] {
        assert!(
            digests.contains(&d.as_str()),
            "{d} missing from {digests:?}"
        );
    }
    assert!(!digests.contains(&app.digest.as_str()));
    let digests_of = |args: &[&str]| -> Vec<String> {
        node.json(args)
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["digest"].as_str().map(str::to_string))
            .collect()
    };
    let enforced = digests_of(&["verdicts", "--decision", "deny", "--enforced", "--json"]);
    assert!(enforced.contains(&unsigned.digest) && enforced.contains(&leaky.digest));
    assert!(!enforced.contains(&audited.digest), "{enforced:?}");
    let let_through = digests_of(&[
        "verdicts",
        "--decision",
        "deny",
        "--enforced=false",
        "--json",
    ]);
    assert_eq!(let_through, vec![audited.digest.clone()]);
    // Unknown image: a clear error, exit 1.
    let out = node.cli(&[
        "verdict",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.is_empty());

    // The SBOM of an allowed image, from the daemon (layers from containerd's store).
    let cdx = node.json(&["sbom", &app_ref, "--format", "cyclonedx-json"]);
    assert_eq!(cdx["bomFormat"], "CycloneDX");
    assert!(
        cdx.to_string()
            .contains("pkg:deb/debian/base-files@12.4%2Bdeb12u5")
            || cdx
                .to_string()
                .contains("pkg:deb/debian/base-files@12.4+deb12u5"),
        "{cdx}"
    );
    let spdx = node.json(&["sbom", &app.digest, "--format", "spdx-json"]);
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    // Status: healthy, upstream reachable, the policies with their fingerprints.
    let st = node.json(&["status", "--json"]);
    assert_eq!(st["upstream"]["reachable"], true, "{st}");
    assert_eq!(st["policies"].as_array().map(|p| p.len()), Some(2), "{st}");

    // Metrics count the decisions.
    let body = reqwest::get(format!("http://{}/metrics", node.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("policy=\"e2e\""), "{body}");
    assert!(
        body.contains("pullwarden_pulls_total{policy=\"audit-only\",mode=\"audit\",decision=\"deny\",cached=\"false\"} 1"),
        "{body}"
    );
    assert!(body.contains("decision=\"deny\""), "{body}");
    // And every CRI call through the proxy, by method and status: the allowed pull
    // ended OK, the unsigned one Unknown (SignatureValidationFailed), the secret one
    // PermissionDenied.
    for want in [
        "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/PullImage\",code=\"OK\"}",
        "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/PullImage\",code=\"Unknown\"}",
        "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/PullImage\",code=\"PermissionDenied\"}",
        "pullwarden_cri_call_duration_seconds_count{method=\"runtime.v1.ImageService/PullImage\"}",
    ] {
        assert!(body.contains(want), "missing {want} in:\n{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verdicts_survive_restart_and_policy_change_invalidates() {
    let mut node = Node::start("");
    let app = image("e2e-restart", vec![]);
    let app_ref = push("e2erestart", &app).await;
    node.sign(&app_ref);
    images(&node.daemon.listen)
        .await
        .pull_image(pull_request(&app_ref, "default"))
        .await
        .unwrap();
    assert_eq!(node.evaluations(&app_ref), 1);

    // Restart: the verdict is still there; status says present, the pull is cached.
    node.daemon.stop();
    node.daemon.spawn();
    let mut cri = images(&node.daemon.listen).await;
    assert!(
        crate::support::cri::present(&node.daemon.listen, &app_ref).await,
        "allowed image reported absent after restart"
    );
    cri.pull_image(pull_request(&app_ref, "default"))
        .await
        .unwrap();
    assert_eq!(node.evaluations(&app_ref), 1, "re-evaluated after restart");

    // A policy change (and `pullwarden reload`) invalidates the cached verdict.
    let old_fingerprint = node.json(&["verdict", "--json", &app_ref])["policy_fingerprint"].clone();
    let text = std::fs::read_to_string(&node.daemon.config).unwrap();
    std::fs::write(
        &node.daemon.config,
        text.replace(
            "secrets = \"deny\"",
            "secrets = \"deny\"\nmax_severity = \"critical\"",
        ),
    )
    .unwrap();
    let out = node.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The reload re-judges the present image from its stored inventory under the new
    // policy (`how = "rescored"`, issue 13): what admits it from then on is that
    // verdict, never the one made under the old policy.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !node.json(&["explain", "--json", &app_ref])["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["how"] == "rescored")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload did not re-judge the present image"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let latest = node.json(&["verdict", "--json", &app_ref]);
    assert_ne!(
        latest["policy_fingerprint"], old_fingerprint,
        "a verdict under the old policy still admits the image"
    );
    assert!(crate::support::cri::present(&node.daemon.listen, &app_ref).await);
    // A pull is never answered from a re-judged verdict: it evaluates in full.
    cri.pull_image(pull_request(&app_ref, "default"))
        .await
        .unwrap();
    assert_eq!(node.evaluations(&app_ref), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_pulls_one_evaluation_and_side_loads_are_absent() {
    let node = Node::start("");
    let app = image("e2e-concurrent", vec![]);
    let app_ref = push("e2econcurrent", &app).await;
    node.sign(&app_ref);

    // Side-loaded straight into containerd: absent through pullwarden.
    images(&it_env().containerd_sock)
        .await
        .pull_image(pull_request(&app_ref, "default"))
        .await
        .unwrap();
    let mut cri = images(&node.daemon.listen).await;
    assert!(
        !crate::support::cri::present(&node.daemon.listen, &app_ref).await,
        "side-loaded image reported present"
    );

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (listen, r) = (node.daemon.listen.clone(), app_ref.clone());
        tasks.push(tokio::spawn(async move {
            images(&listen)
                .await
                .pull_image(pull_request(&r, "default"))
                .await
                .map(|r| r.into_inner().image_ref)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), app.config_digest);
    }
    assert_eq!(node.evaluations(&app_ref), 1);
    let st = cri
        .image_status(ImageStatusRequest {
            image: spec(&app_ref),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.image.unwrap().id, app.config_digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repointed_tag_is_evaluated_again() {
    let node = Node::start("");
    let env = it_env();
    let first = image("e2e-moved-1", vec![]);
    let repo = unique_repo("e2emoved");
    first.push(&env.registry, &repo, "v1").await;
    let reference = format!("{}/{repo}:v1", env.registry);
    node.sign(&reference);
    let mut cri = images(&node.daemon.listen).await;
    cri.pull_image(pull_request(&reference, "default"))
        .await
        .unwrap();
    let second = image("e2e-moved-2", vec![]);
    second.push(&env.registry, &repo, "v1").await;
    let e = cri
        .pull_image(pull_request(&reference, "default"))
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("SignatureValidationFailed: ")
            && e.message().contains(&second.digest),
        "{}",
        e.message()
    );
    assert!(!in_containerd(&reference).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_down_is_registry_unavailable_and_nothing_is_cached() {
    let node = Node::start("");
    // Nothing listens on port 1; the policy for it fails closed.
    let text = std::fs::read_to_string(&node.daemon.config).unwrap();
    // Key files are read at load (a bad one is refused): the node's own key.
    let key = node.key.with_extension("pub");
    let text = text.replacen("[[policy]]", &format!("[[policy]]\nname = \"down\"\nimages = [\"127.0.0.1:1/**\"]\n[policy.signatures]\nkeys = [{:?}]\n\n[[policy]]", key.display().to_string()), 1);
    std::fs::write(&node.daemon.config, text).unwrap();
    let out = node.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cri = images(&node.daemon.listen).await;
    let reference = "127.0.0.1:1/it/down:v1";
    let started = std::time::Instant::now();
    let e = cri
        .pull_image(pull_request(reference, "default"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(e.code(), tonic::Code::Unknown);
    assert!(
        e.message().starts_with(&format!(
            "RegistryUnavailable: pullwarden: image {reference}"
        )),
        "{}",
        e.message()
    );
    let all = node.json(&["verdicts", "--json"]);
    assert!(
        !all.to_string().contains("127.0.0.1:1/"),
        "an infrastructure failure was stored as a verdict: {all}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vulnerability_import_invalidates_verdicts_and_denies() {
    let node = Node::start("max_severity = \"high\"");
    let app = image("e2e-vuln", vec![]);
    let app_ref = push("e2evuln", &app).await;
    node.sign(&app_ref);
    let mut cri = images(&node.daemon.listen).await;
    cri.pull_image(pull_request(&app_ref, "default"))
        .await
        .unwrap();

    // A critical advisory for the installed base-files, imported while the daemon runs.
    let osv = node.daemon.dir.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(
        osv.join("DSA-9998-1.json"),
        r#"{"schema_version":"1.6.0","id":"DSA-9998-1","modified":"2026-01-02T00:00:00Z","aliases":["CVE-2026-99998"],
            "affected":[{"package":{"ecosystem":"Debian:12","name":"base-files"},
                         "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"12.4+deb12u6"}]}]}],
            "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}"#,
    )
    .unwrap();
    let out = node.cli(&["db", "import", osv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "db import beside a running daemon: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No reload needed: the daemon notices the new database and its version; the old
    // verdict no longer admits the image and the next pull is judged anew.
    let e = cri
        .pull_image(pull_request(&app_ref, "default"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    assert!(e.message().contains("DSA-9998-1"), "{}", e.message());
    let v = node.json(&["verdict", "--json", &app.digest]);
    assert_eq!(
        v["findings"]["vulnerabilities"][0]["fixed_in"],
        "12.4+deb12u6"
    );
    assert_ne!(v["db_version"], "none");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pod_namespace_picks_the_policy() {
    let node = Node::start("");
    let text = std::fs::read_to_string(&node.daemon.config).unwrap();
    let text = text.replacen(
        "[[policy]]",
        "[[policy]]\nname = \"system\"\nimages = [\"**\"]\nnamespaces = [\"kube-system\"]\nmode = \"off\"\n\n[[policy]]",
        1,
    );
    std::fs::write(&node.daemon.config, text).unwrap();
    let out = node.cli(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unsigned = image("e2e-ns", vec![]);
    let reference = push("e2ens", &unsigned).await;
    let mut cri = images(&node.daemon.listen).await;
    // kube-system: the `off` policy, a plain passthrough (nothing judged or recorded).
    cri.pull_image(pull_request(&reference, "kube-system"))
        .await
        .unwrap();
    assert_eq!(node.cli(&["verdict", &reference]).status.code(), Some(1));
    // Any other namespace: the enforcing policy.
    let e = cri
        .pull_image(pull_request(&reference, "team-a"))
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("SignatureValidationFailed: ")
            && e.message().contains("denied by policy e2e"),
        "{}",
        e.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_after_push_is_allowed_on_the_first_pull_after_the_recheck_interval() {
    let mut node = Node::start("");
    with_server_lines(&mut node, "recheck_denied_after = \"2s\"");
    let img = image("e2e-signlater", vec![]);
    let reference = push("e2esignlater", &img).await;
    let mut cri = images(&node.daemon.listen).await;
    let first = cri
        .pull_image(pull_request(&reference, "default"))
        .await
        .unwrap_err();
    assert!(
        first.message().starts_with("SignatureValidationFailed: "),
        "{}",
        first.message()
    );
    // CI signs a moment after the push; the kubelet's quick retry still gets the one
    // stable answer.
    node.sign(&reference);
    let retry = cri
        .pull_image(pull_request(&reference, "default"))
        .await
        .unwrap_err();
    assert_eq!(retry.message(), first.message());
    assert_eq!(node.evaluations(&reference), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    cri.pull_image(pull_request(&reference, "default"))
        .await
        .expect("signed now: allowed after the recheck interval");
    assert!(in_containerd(&reference).await);
    let v = node.json(&["verdict", "--json", &reference]);
    assert_eq!(
        (v["decision"].as_str(), v["enforced"].as_bool()),
        (Some("allow"), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_serving_a_garbage_signature_then_recovering_is_allowed_after_the_interval() {
    let mut node = Node::start("");
    with_server_lines(&mut node, "recheck_denied_after = \"2s\"");
    let env = it_env();
    let img = image("e2e-garbage-sig", vec![]);
    let repo = unique_repo("e2egarbage");
    img.push(&env.registry, &repo, "v1").await;
    let reference = format!("{}/{repo}:v1", env.registry);
    // A `.sig` tag whose one layer is garbage under a signature that signs nothing.
    let layer = b"\x00\x01 not a simple signing payload".to_vec();
    let layer_digest = crate::support::image::push_blob(&env.registry, &repo, &layer).await;
    let config = b"{}".to_vec();
    let config_digest = crate::support::image::push_blob(&env.registry, &repo, &config).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "digest": layer_digest, "size": layer.len(),
            "annotations": {"dev.cosignproject.cosign/signature": "bm90IGEgc2lnbmF0dXJl"}
        }]
    }))
    .unwrap();
    let tag = format!("{}.sig", img.digest.replace(':', "-"));
    crate::support::image::push_manifest(
        &env.registry,
        &repo,
        &tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await;
    let mut cri = images(&node.daemon.listen).await;
    let e = cri
        .pull_image(pull_request(&reference, "default"))
        .await
        .unwrap_err();
    assert!(
        e.message().starts_with("SignatureValidationFailed: "),
        "{}",
        e.message()
    );
    // The registry recovers: a real signature is appended beside the garbage one.
    node.sign(&reference);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    cri.pull_image(pull_request(&reference, "default"))
        .await
        .expect("a valid signature beside the garbage one: allowed after the interval");
    assert!(in_containerd(&reference).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_digest_in_two_repositories_is_judged_per_repository_in_both_orders() {
    let node = Node::start("");
    let env = it_env();
    let mut cri = images(&node.daemon.listen).await;
    for (round, copy_first) in [(1, true), (2, false)] {
        let img = image(&format!("e2e-tworepos-{round}"), vec![]);
        let signed_repo = unique_repo("e2esignedrepo");
        let copy_repo = unique_repo("e2ecopyrepo");
        img.push(&env.registry, &signed_repo, "v1").await;
        img.push(&env.registry, &copy_repo, "v1").await;
        let signed = format!("{}/{signed_repo}:v1", env.registry);
        let copy = format!("{}/{copy_repo}:v1", env.registry);
        node.sign(&signed);
        // The signature travels with the image; it still names the first repository.
        copy_signature(&env.registry, &signed_repo, &copy_repo, &img.digest).await;
        let order = if copy_first {
            [&copy, &signed]
        } else {
            [&signed, &copy]
        };
        for name in order {
            let r = cri.pull_image(pull_request(name, "default")).await;
            if name == &signed {
                r.unwrap_or_else(|e| panic!("round {round}: {signed} denied: {}", e.message()));
                assert!(in_containerd(&signed).await);
            } else {
                let e = r.expect_err("the copy inherited the signed repository's allow");
                assert!(
                    e.message().starts_with("SignatureValidationFailed: "),
                    "round {round}: {}",
                    e.message()
                );
                assert!(!in_containerd(&copy).await);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_error_allow_denies_a_hostile_index_with_no_manifest_for_this_platform() {
    let env = it_env();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("k");
    let out = std::process::Command::new(bin())
        .args(["keygen", "--output"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let daemon = Daemon::start(&format!(
        r#"
[[policy]]
name = "failopen"
images = ["{reg}/it/**"]
on_error = "allow"
[policy.signatures]
keys = ["{pub_}"]
"#,
        reg = env.registry,
        pub_ = key.with_extension("pub").display(),
    ));
    // An index that lists only a platform this node is not.
    let other = if std::env::consts::ARCH == "aarch64" {
        "amd64"
    } else {
        "arm64"
    };
    let index = crate::support::image::Index::new(vec![Image::with_platform(
        vec![Layer::from_entries(
            &[Entry::file("etc/motd", "x")],
            Compression::Gzip,
        )],
        other,
        "e2e-hostile-index",
    )]);
    let repo = unique_repo("e2ehostileindex");
    index.push(&env.registry, &repo, "v1").await;
    let reference = format!("{}/{repo}:v1", env.registry);
    let mut cri = images(&daemon.listen).await;
    let e = cri
        .pull_image(pull_request(&reference, "default"))
        .await
        .expect_err("what the registry serves is never an outage");
    assert_eq!(e.code(), tonic::Code::Unknown, "{}", e.message());
    assert!(
        e.message().starts_with("RegistryUnavailable: pullwarden: "),
        "{}",
        e.message()
    );
    assert!(!in_containerd(&reference).await);
}
