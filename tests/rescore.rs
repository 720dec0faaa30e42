//! Issue 13, items 3 and 4: images already on the node are judged again from their
//! stored inventories when a vulnerability database is imported (no layer read, no
//! registry call), `rescore = "enforce"` then reports a newly denied image absent
//! through ImageStatus (asked with Python grpcio), and `pullwarden policy test` lists
//! exactly what a stricter config would deny, from stored signature outcomes. The real
//! daemon, containerd and registry throughout.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cri_clients::{Client, cri_ops};
use crate::support::cri::{images, pull_request};
use crate::support::daemon::Daemon;
use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{bin, it_env, unique_repo};

/// A Debian-looking image with `base-files` at `version` and `app` files on top.
fn image(salt: &str, version: &str, app: Vec<Entry>) -> Image {
    // Unique per run: containerd outlives a run, and the same digest left under an
    // earlier run's names (signed with that run's key) would be judged here too.
    let salt = &format!("{salt}-{}", std::process::id());
    let base = Layer::from_entries(
        &[
            Entry::file(
                "etc/os-release",
                "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
            ),
            Entry::file(
                "var/lib/dpkg/status",
                format!(
                    "Package: base-files\nStatus: install ok installed\nVersion: {version}\nArchitecture: amd64\n\n"
                ),
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The policy section: everything under `it/rj-*` enforced, signed by `key`, with
/// `scan` lines.
fn policy(key: &std::path::Path, scan: &str) -> String {
    format!(
        "[[policy]]\nname = \"rj\"\nimages = [\"{reg}/it/rj-*\"]\nmode = \"enforce\"\n[policy.signatures]\nkeys = [\"{k}\"]\n[policy.scan]\nmax_severity = \"high\"\n{scan}\n",
        reg = it_env().registry,
        k = key.display()
    )
}

fn cli(d: &Daemon, args: &[&str]) -> std::process::Output {
    d.cli(args)
}

fn json_of(d: &Daemon, args: &[&str]) -> Value {
    let out = cli(d, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn metrics(addr: &str) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in:\n{text}"))
}

fn sign(key: &std::path::Path, config: &std::path::Path, reference: &str) {
    let out = std::process::Command::new(bin())
        .args(["sign", "--key"])
        .arg(key)
        .arg("--config")
        .arg(config)
        .arg(reference)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// ImageStatus through `socket` as Python grpcio asks it: whether an image came back.
async fn grpcio_present(socket: &std::path::Path, image: &str) -> bool {
    let out = cri_ops(
        Client::Grpcio,
        socket,
        &json!([{"op": "status", "image": image}]),
    )
    .await;
    assert_eq!(out[0]["code"], "OK", "{out:?}");
    !out[0]["response"]["image"].is_null()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_db_import_rescores_present_images_and_policy_test_shows_what_would_change() {
    let env = it_env();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("release");
    let out = std::process::Command::new(bin())
        .args(["keygen", "--output"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let pubkey = key.with_extension("pub");

    // Three images: `vuln` will match the advisory, `leaky` carries a secret the running
    // policy only warns about, `clean` is clean under both configs.
    let leak = vec![Entry::file(
        "app/.env",
        "AWS_ACCESS_KEY_ID=AKIA4QWERTYUIOPASDFG\nAWS_SECRET_ACCESS_KEY=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\n",
    )];
    let vuln = image("rj-vuln", "12.4+deb12u5", vec![]);
    let leaky = image("rj-leaky", "12.4+deb12u6", leak);
    let clean = image("rj-clean", "12.4+deb12u6", vec![]);
    let mut refs = Vec::new();
    for (prefix, img) in [
        ("rj-vuln", &vuln),
        ("rj-leaky", &leaky),
        ("rj-clean", &clean),
    ] {
        let repo = unique_repo(prefix);
        img.push(&env.registry, &repo, "v1").await;
        refs.push(format!("{}/{repo}:v1", env.registry));
    }

    let port = free_port();
    let mut d = Daemon::start(&policy(&pubkey, "secrets = \"warn\""));
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("metrics = \"\"", &format!("metrics = \"127.0.0.1:{port}\""));
    std::fs::write(&d.config, text).unwrap();
    d.stop();
    d.spawn();
    let maddr = format!("127.0.0.1:{port}");
    for r in &refs {
        sign(&key.with_extension("key"), &d.config, r);
    }
    let mut cri = images(&d.listen).await;
    for r in &refs {
        cri.pull_image(pull_request(r, "default")).await.unwrap();
    }
    for img in [&vuln, &leaky, &clean] {
        let v = json_of(&d, &["verdict", "--json", &img.digest]);
        assert_eq!(v["decision"], "allow", "{v}");
        assert_eq!(v["how"], "evaluated", "{v}");
    }
    let before = metrics(&maddr).await;
    let scanned = metric(&before, "pullwarden_scanned_bytes_total");
    assert!(scanned > 0);

    // A critical advisory for base-files before 12.4+deb12u6, imported beside the
    // running daemon.
    let osv = d.dir.path().join("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(
        osv.join("DSA-9997-1.json"),
        r#"{"schema_version":"1.6.0","id":"DSA-9997-1","modified":"2026-01-02T00:00:00Z",
            "affected":[{"package":{"ecosystem":"Debian:12","name":"base-files"},
                         "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"12.4+deb12u6"}]}]}],
            "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}"#,
    )
    .unwrap();
    let out = cli(&d, &["db", "import", osv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every present image is judged again, without a pull.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rescored = |digest: &str| {
        let v = json_of(&d, &["verdict", "--json", digest]);
        (v["how"] == "rescored").then_some(v)
    };
    let v = loop {
        if let Some(v) = rescored(&vuln.digest) {
            break v;
        }
        assert!(Instant::now() < deadline, "not rescored: {}", d.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(v["decision"], "deny", "{v}");
    assert!(v["reasons"].to_string().contains("DSA-9997-1"), "{v}");
    assert_eq!(v["signatures"]["satisfied"], true, "{v}");
    for img in [&leaky, &clean] {
        let v = rescored(&img.digest).unwrap_or_else(|| panic!("{}", d.log()));
        assert_eq!(v["decision"], "allow", "{v}");
    }
    let listed = json_of(&d, &["verdicts", "--json", "--decision", "deny"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["digest"] == vuln.digest.as_str() && v["how"] == "rescored"),
        "{listed}"
    );
    let explain = json_of(&d, &["explain", "--json", &vuln.digest]);
    assert!(
        explain["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["how"] == "rescored" && e["decision"] == "deny"),
        "{explain}"
    );
    assert!(d.log().contains("rescore decision"), "audit line missing");
    let after = metrics(&maddr).await;
    assert_eq!(
        metric(&after, "pullwarden_scanned_bytes_total"),
        scanned,
        "re-judging read no layer"
    );
    assert_eq!(
        metric(&after, "pullwarden_rescored_total{decision=\"deny\"}"),
        1
    );
    assert_eq!(
        metric(&after, "pullwarden_rescored_total{decision=\"allow\"}"),
        2
    );
    // `report` (the default): recorded only, the image stays present.
    assert!(grpcio_present(&d.listen, &refs[0]).await);

    // What if secrets were denied? From the store: the leaky image would now be denied,
    // the vulnerable one still is, and no signature needed the registry.
    let candidate = d.dir.path().join("candidate.toml");
    let running = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &candidate,
        running.replace("secrets = \"warn\"", "secrets = \"deny\""),
    )
    .unwrap();
    let t = json_of(
        &d,
        &[
            "policy",
            "test",
            "--config",
            candidate.to_str().unwrap(),
            "--json",
        ],
    );
    let row = |digest: &str| {
        t["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["digest"] == digest)
            .cloned()
            .unwrap_or_else(|| panic!("{digest} missing: {t}"))
    };
    let mine: Vec<&str> = [&vuln, &leaky, &clean]
        .iter()
        .map(|i| i.digest.as_str())
        .collect();
    let denied: Vec<&str> = mine
        .iter()
        .copied()
        .filter(|d| row(d)["decision"] == "deny")
        .collect();
    assert_eq!(
        denied,
        vec![vuln.digest.as_str(), leaky.digest.as_str()],
        "{t}"
    );
    assert_eq!(row(&leaky.digest)["was"], "allow", "{t}");
    assert_eq!(row(&leaky.digest)["changed"], true, "{t}");
    assert_eq!(row(&vuln.digest)["was"], "deny", "{t}");
    assert_eq!(row(&vuln.digest)["changed"], false, "{t}");
    assert_eq!(row(&clean.digest)["decision"], "allow", "{t}");
    assert_eq!(row(&leaky.digest)["reference"], refs[1].as_str(), "{t}");
    assert!(
        row(&leaky.digest)["reasons"].to_string().contains("secret"),
        "{t}"
    );
    assert_eq!(t["registry_calls"], 0, "{t}");
    // The human table names the change.
    let out = cli(
        &d,
        &["policy", "test", "--config", candidate.to_str().unwrap()],
    );
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&refs[1]) && table.contains("0 registry calls"),
        "{table}"
    );
    // Nothing was stored by the test.
    let v = json_of(&d, &["verdict", "--json", &leaky.digest]);
    assert_eq!(v["decision"], "allow");
    // A candidate that does not load: exit 2, with the config error.
    std::fs::write(&candidate, "[[policy]]\nname = 1\n").unwrap();
    let out = cli(
        &d,
        &["policy", "test", "--config", candidate.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("candidate config"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `rescore = "enforce"`: the newly denied image is reported absent, so no new
    // container starts from it; the allowed ones stay.
    let text = std::fs::read_to_string(&d.config).unwrap().replacen(
        "[server]\n",
        "[server]\nrescore = \"enforce\"\n",
        1,
    );
    std::fs::write(&d.config, text).unwrap();
    d.stop();
    d.spawn();
    assert!(!grpcio_present(&d.listen, &refs[0]).await, "{}", d.log());
    assert!(grpcio_present(&d.listen, &refs[2]).await, "{}", d.log());
    // containerd still has it: nothing running was touched.
    assert!(crate::support::cri::present(&env.containerd_sock, &refs[0]).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn images_without_a_usable_inventory_are_skipped_with_a_reason() {
    let env = it_env();
    // Pulled straight into containerd (before pullwarden, say): no inventory.
    let img = image("rj-side", "12.4+deb12u5", vec![]);
    let repo = unique_repo("rj-side");
    img.push(&env.registry, &repo, "v1").await;
    let reference = format!("{}/{repo}:v1", env.registry);
    let mut direct = images(&env.containerd_sock).await;
    direct
        .pull_image(pull_request(&reference, "default"))
        .await
        .unwrap();
    let d = Daemon::start(&format!(
        "[[policy]]\nname = \"rj\"\nimages = [\"{}/it/rj-*\"]\nmode = \"audit\"\n",
        env.registry
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.log().contains("re-judged the images on the node") {
        assert!(Instant::now() < deadline, "{}", d.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&img.digest) && l.contains("no stored inventory")),
        "{log}"
    );
    assert_eq!(cli(&d, &["verdict", &img.digest]).status.code(), Some(1));
}
