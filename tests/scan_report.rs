//! `pullwarden scan` judges like the node (issue 14): a `docker://` reference is
//! normalised as the gate normalises the kubelet's, so the same policy is chosen and the
//! same verdict results, side by side against a real pull through the daemon; a
//! plain-HTTP registry met with TLS names the setting that fixes it; the table and the
//! JSON say when there is no vulnerability database; `mode = "off"` exits 0;
//! `--output -` writes the SBOM to standard output.

use serde_json::Value;

use crate::support::cri::{images, pull_request};
use crate::support::daemon::Daemon;
use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{bin, it_env, unique_repo};

fn leaky(salt: &str) -> Image {
    let base = Layer::from_entries(
        &[
            Entry::file("etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            Entry::file(
                "var/lib/dpkg/status",
                "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\n\n",
            ),
        ],
        Compression::Gzip,
    );
    let app = Layer::from_entries(
        &[
            Entry::file("app/salt", salt.to_string()),
            Entry::file(
                "app/.env",
                "AWS_ACCESS_KEY_ID=AKIA4QWERTYUIOPASDFG\nAWS_SECRET_ACCESS_KEY=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\n",
            ),
        ],
        Compression::Zstd,
    );
    Image::with_platform(vec![base, app], "amd64", salt)
}

fn scan(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(bin());
    cmd.arg("scan").args(args).env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The team's policy denies a secret; the catch-all after it only warns. With the
/// reference spelled `//127.0.0.1:PORT/…` (the old `docker://` handling) the catch-all
/// would judge in CI and the node would deny.
#[tokio::test(flavor = "multi_thread")]
async fn scan_docker_ref_picks_the_nodes_policy_and_verdict() {
    let env = it_env();
    let team = format!("{}/team", unique_repo("sbs"));
    let policies = format!(
        r#"
[[policy]]
name = "team"
images = ["{reg}/it/sbs-*/team/**"]
mode = "enforce"
[policy.scan]
secrets = "deny"

[[policy]]
name = "catch-all"
images = ["**"]
mode = "enforce"
[policy.scan]
secrets = "warn"
"#,
        reg = env.registry
    );
    let daemon = Daemon::start(&policies);
    let img = leaky("sbs-team");
    img.push(&env.registry, &format!("{team}/app"), "v1").await;
    let reference = format!("{}/{team}/app:v1", env.registry);

    // The node: denied by the team's policy.
    let mut cri = images(&daemon.listen).await;
    let e = cri
        .pull_image(pull_request(&reference, "default"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{}", e.message());
    assert!(
        e.message().contains("denied by policy team"),
        "{}",
        e.message()
    );
    let out = daemon.cli(&["verdict", "--json", &reference]);
    let node: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(node["policy"], "team");
    assert_eq!(node["decision"], "deny");

    // CI, same config, same reference through docker://: the same policy and verdict.
    let config = daemon.config.to_str().unwrap();
    let (code, out, err) = scan(
        &[
            &format!("docker://{reference}"),
            "--config",
            config,
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let ci: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ci["policy"], "team", "{ci}");
    assert_eq!(ci["reference"], reference.as_str());
    assert_eq!(ci["decision"], node["decision"]);
    assert_eq!(ci["digest"], img.digest);
    assert_eq!(
        ci["reasons"], node["reasons"],
        "node and CI give other reasons"
    );

    // Another repository of the same registry: the catch-all judges, on both sides.
    let other = format!("{}/{}/app:v1", env.registry, unique_repo("sbsother"));
    let other_img = leaky("sbs-other");
    let (repo, _) = other
        .strip_prefix(&format!("{}/", env.registry))
        .unwrap()
        .rsplit_once(':')
        .unwrap();
    other_img.push(&env.registry, repo, "v1").await;
    cri.pull_image(pull_request(&other, "default"))
        .await
        .unwrap();
    let out = daemon.cli(&["verdict", "--json", &other]);
    let node: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (code, out, err) = scan(
        &[&format!("docker://{other}"), "--config", config, "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let ci: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (ci["policy"].clone(), node["policy"].clone()),
        ("catch-all".into(), "catch-all".into())
    );
    assert_eq!(ci["decision"], node["decision"]);
    assert_eq!(ci["decision"], "allow");
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_http_registries_no_database_mode_off_and_stdout_sbom() {
    let env = it_env();
    let dir = tempfile::tempdir().unwrap();
    let repo = unique_repo("scanrep");
    let img = leaky("scan-report");
    img.push(&env.registry, &repo, "v1").await;
    let source = format!("docker://{}/{repo}:v1", env.registry);
    let state = dir.path().join("state");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nstate_dir = \"{}\"\n[[policy]]\nname = \"ci\"\nimages = [\"**\"]\n",
            state.display()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    // TLS to a plain-HTTP registry: exit 2, and the error names the fix.
    let (code, _, err) = scan(&[&source, "--config", cfg, "--json"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("registry.plain_http")
            && err.contains(&format!("--plain-http {}", env.registry)),
        "{err}"
    );

    // --plain-http: scanned; no database: a warning on stderr and in the JSON.
    let (code, out, err) = scan(
        &[
            &source,
            "--config",
            cfg,
            "--json",
            "--plain-http",
            &env.registry,
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert!(err.contains("no vulnerability database"), "{err}");
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("no vulnerability database")),
        "{doc}"
    );
    assert_eq!(doc["db_version"], "none");

    // A --db that does not exist: exit 2 with a clear error, not a clean result.
    let missing = dir.path().join("nope.redb");
    let (code, out, err) = scan(
        &[
            &source,
            "--config",
            cfg,
            "--plain-http",
            &env.registry,
            "--db",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("does not exist") && err.contains("nope.redb"),
        "{err}"
    );

    // The table (not a terminal: no colour) has the sections and the decision.
    let (code, out, _) = scan(
        &[&source, "--config", cfg, "--plain-http", &env.registry],
        &[],
    );
    assert_eq!(code, 1);
    assert!(!out.contains('\x1b'), "{out}");
    for want in [
        "Database: none: vulnerabilities were not looked for",
        "Secrets (2)",
        "aws-access-key-id",
        "Risky files (0)",
        "Total: vulnerabilities not checked (no database), 2 secrets, 0 risky files",
        "Decision: deny (policy ci, mode enforce)",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }

    // --output -: the SBOM alone on stdout, the report on stderr.
    let (code, out, err) = scan(
        &[
            &source,
            "--config",
            cfg,
            "--plain-http",
            &env.registry,
            "--sbom",
            "cyclonedx-json",
            "--output",
            "-",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let bom: Value = serde_json::from_str(&out).expect("stdout is the SBOM");
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert!(err.contains("Decision: deny"), "{err}");
    assert!(!std::path::Path::new("-").exists());

    // mode = "off": findings reported, exit 0.
    let off = dir.path().join("off.toml");
    std::fs::write(
        &off,
        format!(
            "[server]\nstate_dir = \"{}\"\n[registry]\nplain_http = [\"{}\"]\n[[policy]]\nname = \"ci\"\nimages = [\"**\"]\nmode = \"off\"\n",
            state.display(),
            env.registry
        ),
    )
    .unwrap();
    let (code, out, err) = scan(&[&source, "--config", off.to_str().unwrap(), "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["decision"], "allow");
    assert_eq!(doc["mode"], "off");
    assert_eq!(doc["secrets"].as_array().unwrap().len(), 2);
}
