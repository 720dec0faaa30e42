//! `pullwarden scan docker://REF` against the real registry, with the offline
//! vulnerability database: the same engine and the same judgement as the gate.

use serde_json::Value;

use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{bin, it_env, unique_repo};

const OSV: &str = r#"{
  "schema_version": "1.6.0",
  "id": "DSA-9999-1",
  "modified": "2026-01-02T00:00:00Z",
  "aliases": ["CVE-2026-99999"],
  "summary": "base-files: test advisory",
  "affected": [{
    "package": {"ecosystem": "Debian:12", "name": "base-files"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "12.4+deb12u6"}]}]
  }],
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]
}"#;

fn run(args: &[&str]) -> (i32, Value, String) {
    let out = std::process::Command::new(bin())
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn scans_straight_from_the_registry_with_vulnerabilities() {
    let env = it_env();
    let dir = tempfile::tempdir().unwrap();
    let repo = unique_repo("scanreg");
    let img = Image::new(vec![
        Layer::from_entries(
            &[
                Entry::file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
                Entry::file(
                    "var/lib/dpkg/status",
                    "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\n\n",
                ),
            ],
            Compression::Gzip,
        ),
        Layer::from_entries(&[Entry::file("srv/app.txt", "hello\n")], Compression::Zstd),
    ]);
    img.push(&env.registry, &repo, "v1").await;
    let source = format!("docker://{}/{repo}:v1", env.registry);
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nstate_dir = \"{}\"\n[registry]\nplain_http = [\"{}\"]\n[[policy]]\nname = \"ci\"\nimages = [\"**\"]\n[policy.scan]\nmax_severity = \"high\"\n",
            dir.path().join("state").display(),
            env.registry
        ),
    )
    .unwrap();

    // No database yet: allowed, the package inventory from the registry's blobs.
    let (code, doc, err) = run(&["scan", &source, "--config", cfg.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["digest"], img.digest);
    let pkgs = doc["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 1, "{doc}");
    assert_eq!(
        (pkgs[0]["name"].as_str(), pkgs[0]["version"].as_str()),
        (Some("base-files"), Some("12.4+deb12u5"))
    );

    // Import one advisory: a critical vulnerability, denied, with the fix version.
    let osv = dir.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(osv.join("DSA-9999-1.json"), OSV).unwrap();
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
    let (code, doc, err) = run(&["scan", &source, "--config", cfg.to_str().unwrap(), "--json"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(doc["decision"], "deny");
    let v = &doc["vulnerabilities"][0];
    assert_eq!(
        (
            v["id"].as_str(),
            v["package"].as_str(),
            v["severity"].as_str()
        ),
        (Some("DSA-9999-1"), Some("base-files"), Some("critical"))
    );
    assert_eq!(v["fixed_in"], "12.4+deb12u6");
    assert!(
        doc["reasons"][0].as_str().unwrap().contains("DSA-9999-1"),
        "{doc}"
    );

    // A missing repository is an error (exit 2), not an allow.
    let (code, _, err) = run(&[
        "scan",
        &format!("docker://{}/{}:nope", env.registry, unique_repo("none")),
        "--config",
        cfg.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(!err.is_empty());
}
