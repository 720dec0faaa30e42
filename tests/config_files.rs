//! The shipped config and unit files stay valid.

#[test]
fn shipped_config_is_valid_and_equals_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pullwarden.toml");
    let cfg = pullwarden::config::Config::load(&path, true).unwrap();
    let defaults = pullwarden::config::Config::default();
    assert_eq!(cfg.server, defaults.server);
    assert_eq!(cfg.registry, defaults.registry);
    assert_eq!(cfg.scan, defaults.scan);
}

#[test]
fn systemd_unit_has_the_contract() {
    let unit = include_str!("../systemd/pullwarden.service");
    for want in [
        "Type=notify",
        "After=containerd.service",
        "Requires=containerd.service",
        "Before=kubelet.service",
        "Restart=always",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(want), "unit lacks {want}");
    }
    // Every hardening directive carries a comment above it (house rule).
    let dropin = include_str!("../systemd/kubelet-pullwarden.conf");
    assert!(dropin.contains("--image-service-endpoint=unix:///run/pullwarden/cri.sock"));
}

// ------------------------------------------------ files a config names fail at load

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::bin;
use crate::support::daemon::Daemon;

/// One kind of bad file: what to put in the policy, and what the error must name.
struct BadFile {
    what: &'static str,
    /// TOML lines for `[policy.signatures]` (after `keys`) and `[policy.scan]`.
    signatures: String,
    scan: String,
    keys: Vec<PathBuf>,
    key: &'static str,
    file: PathBuf,
    reason: &'static str,
}

/// A good key file, and every kind of bad key, trust-root and denylist file, in `dir`.
fn bad_files(dir: &Path) -> (PathBuf, Vec<BadFile>) {
    use pullwarden::verify::sign::generate_key;
    use sigstore::crypto::SigningScheme;
    let write = |name: &str, body: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let (private, public) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
    let good = write("good.pub", public.as_bytes());
    let copy = write(
        "copy.der",
        &pullwarden::verify::keys::pem_block(&public, "PUBLIC KEY").unwrap(),
    );
    std::fs::create_dir_all(dir.join("keydir.pub")).unwrap();
    let mut k1 = vec![
        0x30, 0x56, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    ];
    k1.extend([
        0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a, 0x03, 0x42, 0x00, 0x04,
    ]);
    k1.extend([7u8; 64]);
    let key_case = |what, file: PathBuf, reason| BadFile {
        what,
        signatures: String::new(),
        scan: String::new(),
        keys: vec![good.clone(), file.clone()],
        key: "policy[0].signatures.keys[1]",
        file,
        reason,
    };
    let root = write("root.json", br#"{"mediaType": "something else"}"#);
    let deny = write("deny.txt", b"sha256:0123\n");
    let cases = vec![
        key_case("missing key", dir.join("missing.pub"), "does not exist"),
        key_case("directory key", dir.join("keydir.pub"), "is a directory"),
        key_case(
            "private key",
            write("cosign.key", private.as_bytes()),
            "private key",
        ),
        key_case(
            "not a key",
            write("notes.pub", b"see the wiki"),
            "is not a public key",
        ),
        key_case(
            "unsupported key type",
            write(
                "k1.pub",
                pullwarden::verify::keys::to_pem("PUBLIC KEY", &k1).as_bytes(),
            ),
            "unsupported EC curve",
        ),
        BadFile {
            what: "trust root that is not a trusted_root.json",
            signatures: format!("trusted_root = {:?}\n", root.display().to_string()),
            scan: String::new(),
            keys: vec![good.clone()],
            key: "policy[0].signatures.trusted_root",
            file: root,
            reason: "not a usable sigstore trusted_root.json",
        },
        BadFile {
            what: "missing trust root",
            signatures: format!(
                "trusted_root = {:?}\n",
                dir.join("nope.json").display().to_string()
            ),
            scan: String::new(),
            keys: vec![good.clone()],
            key: "policy[0].signatures.trusted_root",
            file: dir.join("nope.json"),
            reason: "does not exist",
        },
        BadFile {
            what: "denylist line that is not a digest",
            signatures: String::new(),
            scan: format!("denylist = {:?}\n", deny.display().to_string()),
            keys: vec![good.clone()],
            key: "policy[0].scan.denylist",
            file: deny,
            reason: "line 1",
        },
        BadFile {
            what: "directory as denylist",
            signatures: String::new(),
            scan: format!(
                "denylist = {:?}\n",
                dir.join("keydir.pub").display().to_string()
            ),
            keys: vec![good.clone()],
            key: "policy[0].scan.denylist",
            file: dir.join("keydir.pub"),
            reason: "is a directory",
        },
        BadFile {
            what: "one key twice (PEM and DER) under threshold 2",
            signatures: "threshold = 2\n".into(),
            scan: String::new(),
            keys: vec![good.clone(), copy.clone()],
            key: "policy[0].signatures.threshold",
            file: PathBuf::new(),
            reason: "1 distinct signers",
        },
    ];
    (good, cases)
}

/// A `[[policy]]` named "p" over every image, in `mode`, with `keys` and the extra lines.
fn policy_toml(mode: &str, keys: &[PathBuf], signatures: &str, scan: &str) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("{:?}", k.display().to_string()))
        .collect();
    format!(
        "[[policy]]\nname = \"p\"\nimages = [\"**\"]\nmode = \"{mode}\"\n[policy.signatures]\nkeys = [{}]\n{signatures}[policy.scan]\n{scan}",
        keys.join(", ")
    )
}

fn assert_names(case: &BadFile, config: &Path, stderr: &str) {
    for want in [
        case.key,
        case.reason,
        &config.display().to_string(),
        &case.file.display().to_string(),
    ] {
        assert!(
            stderr.contains(want),
            "{}: want {want:?} in {stderr}",
            case.what
        );
    }
}

#[test]
fn policy_check_and_serve_refuse_bad_files_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let (good, cases) = bad_files(dir.path());
    let upstream = dir.path().join("containerd.sock");
    for case in &cases {
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n{}",
                Daemon::server_section(dir.path(), &upstream),
                policy_toml("enforce", &case.keys, &case.signatures, &case.scan)
            ),
        )
        .unwrap();
        let out = Command::new(bin())
            .args(["policy", "check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "policy check, {}", case.what);
        assert_names(case, &config, &String::from_utf8_lossy(&out.stderr));

        let out = Command::new(bin())
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "serve, {}", case.what);
        assert_names(case, &config, &String::from_utf8_lossy(&out.stderr));
        for socket in ["cri.sock", "admin.sock"] {
            assert!(
                !dir.path().join(socket).exists(),
                "serve created {socket} ({})",
                case.what
            );
        }
        assert!(
            !dir.path().join("state").exists(),
            "serve opened its store ({})",
            case.what
        );
    }
    // A key file only root may read, checked as another user: "permission denied".
    if nix::unistd::Uid::effective().is_root() {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let secret = open.join("root-only.pub");
        std::fs::copy(&good, &secret).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = open.join("config.toml");
        std::fs::write(
            &config,
            policy_toml("enforce", std::slice::from_ref(&secret), "", ""),
        )
        .unwrap();
        let out = Command::new(bin())
            .args(["policy", "check", "--config"])
            .arg(&config)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("policy[0].signatures.keys[0]")
                && e.contains(&secret.display().to_string())
                && e.contains("permission denied"),
            "{e}"
        );
    }
    // The same key listed twice without a threshold that needs both: valid, with a
    // warning naming both listings.
    let config = dir.path().join("config.toml");
    let copy = dir.path().join("copy.der");
    std::fs::write(
        &config,
        policy_toml("enforce", &[good.clone(), copy.clone()], "", ""),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["policy", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: policy[0].signatures.keys[1]")
            && stderr.contains("same public key as keys[0]"),
        "{stderr}"
    );
}

/// `pullwarden reload` and SIGHUP refuse a config whose files are bad, and the daemon
/// keeps the running policy (its mode and fingerprint on the admin API are unchanged).
#[test]
fn reload_refuses_bad_files_and_keeps_the_running_policy() {
    let files = tempfile::tempdir().unwrap();
    let (good, cases) = bad_files(files.path());
    let mut daemon = Daemon::start(&policy_toml("enforce", std::slice::from_ref(&good), "", ""));
    let running = |d: &Daemon| {
        let out = d.cli(&[
            "status",
            "--json",
            "--admin",
            &d.admin.display().to_string(),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        let p = &v["policies"][0];
        (
            p["mode"].as_str().unwrap().to_string(),
            p["fingerprint"].as_str().unwrap().to_string(),
        )
    };
    let before = running(&daemon);
    assert_eq!(before.0, "enforce");
    let server = std::fs::read_to_string(&daemon.config).unwrap();
    let server = server[..server.find("[[policy]]").unwrap()].to_string();
    for case in &cases {
        // The new config would also switch to audit: none of it may take effect.
        std::fs::write(
            &daemon.config,
            format!(
                "{server}{}",
                policy_toml("audit", &case.keys, &case.signatures, &case.scan)
            ),
        )
        .unwrap();
        let out = daemon.cli(&["reload", "--admin", &daemon.admin.display().to_string()]);
        assert_ne!(out.status.code(), Some(0), "reload accepted {}", case.what);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("the running configuration is kept"),
            "{stderr}"
        );
        assert_names(case, &daemon.config, &stderr);
        assert_eq!(running(&daemon), before, "{}", case.what);
    }
    // SIGHUP: the same refusal, logged.
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !daemon.log().contains("reload rejected") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = daemon.log();
    assert!(
        log.contains("reload rejected") && log.contains(cases.last().unwrap().key),
        "{log}"
    );
    assert_eq!(running(&daemon), before);
    // A good config is taken; a key listed twice is reported.
    let copy = files.path().join("copy.der");
    std::fs::write(
        &daemon.config,
        format!("{server}{}", policy_toml("audit", &[good, copy], "", "")),
    )
    .unwrap();
    let out = daemon.cli(&["reload", "--admin", &daemon.admin.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("warnings: policy[0].signatures.keys[1]"),
        "{said}"
    );
    assert_eq!(running(&daemon).0, "audit");
    daemon.stop();
}

/// The CRI socket (containerd's whole RuntimeService behind it) and the admin socket
/// have their own groups: a CLI user in `admin_group` reads verdicts but cannot open
/// the CRI socket. Needs root to run the client as another user.
#[test]
fn admin_group_opens_the_admin_socket_only() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("admin_group_opens_the_admin_socket_only needs root; skipped");
        return;
    }
    let mut daemon = Daemon::start("");
    daemon.stop();
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        text.replacen("[server]\n", "[server]\nadmin_group = \"nogroup\"\n", 1),
    )
    .unwrap();
    daemon.spawn();
    let nogroup = nix::unistd::Group::from_name("nogroup")
        .unwrap()
        .unwrap()
        .gid
        .as_raw();
    let cri = std::fs::metadata(&daemon.listen).unwrap();
    let admin = std::fs::metadata(&daemon.admin).unwrap();
    assert_eq!((cri.gid(), cri.mode() & 0o777), (0, 0o660));
    assert_eq!((admin.gid(), admin.mode() & 0o777), (nogroup, 0o660));
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        Command::new(bin())
            .args(args)
            .uid(65534)
            .gid(nogroup)
            .env_remove("PULLWARDEN_CONFIG")
            .output()
            .unwrap()
    };
    let out = as_nobody(&[
        "verdicts",
        "--json",
        "--admin",
        daemon.admin.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The socket's mode keeps nobody out of the CRI socket; root gets through.
    let out = as_nobody(&[
        "cri",
        "version",
        "--endpoint",
        daemon.listen.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("cannot connect"), "{e}");
    let out = Command::new(bin())
        .args([
            "cri",
            "version",
            "--endpoint",
            daemon.listen.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.stop();
}

/// `metrics` beyond loopback is refused at load (serve exits 64) unless
/// `metrics_public = true`.
#[test]
fn public_metrics_need_metrics_public() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let server = Daemon::server_section(dir.path(), &dir.path().join("containerd.sock"))
        .replace("metrics = \"\"\n", "metrics = \"0.0.0.0:0\"\n");
    std::fs::write(&config, &server).unwrap();
    for cmd in [&["policy", "check"][..], &["serve"][..]] {
        let out = Command::new(bin())
            .args(cmd)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{cmd:?}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("server.metrics") && e.contains("metrics_public = true"),
            "{e}"
        );
        assert!(!dir.path().join("cri.sock").exists());
    }
    std::fs::write(
        &config,
        server.replace("[server]\n", "[server]\nmetrics_public = true\n"),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["policy", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------ logs fit journald

/// The daemon's stderr is a file (as under journald): no ANSI escapes, in text and in
/// JSON; with `log_format = "json"` every line is one JSON object, the audit line's
/// `reasons` is an array and addresses are plain strings.
#[tokio::test(flavor = "multi_thread")]
async fn logs_are_plain_and_json_lines_carry_arrays() {
    use crate::support::image::{Compression, Entry, Image, Layer};
    let reg = &crate::support::it_env().registry;
    let repo = crate::support::unique_repo("logs");
    let img = Image::new(vec![Layer::from_entries(
        &[Entry::file("etc/hello", "hello logs")],
        Compression::Gzip,
    )]);
    img.push(reg, &repo, "v1").await;
    let reference = format!("{reg}/{repo}:v1");
    let files = tempfile::tempdir().unwrap();
    let (good, _) = bad_files(files.path());
    let mut daemon = Daemon::start(&policy_toml("enforce", &[good], "", ""));
    let pull = |d: &Daemon| {
        let socket = d.listen.clone();
        let r = reference.clone();
        async move {
            let mut cri = crate::support::cri::images(&socket).await;
            cri.pull_image(crate::support::cri::pull_request(&r, "default"))
                .await
        }
    };
    let denied = pull(&daemon).await.unwrap_err();
    assert!(
        denied.message().contains("no signature found"),
        "{denied:?}"
    );
    daemon.stop();
    let text_log = daemon.log();
    assert!(text_log.contains("pull decision"), "{text_log}");
    assert!(
        !text_log.contains('\x1b'),
        "ANSI escapes in a non-terminal log: {text_log:?}"
    );

    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        config.replacen(
            "[server]\n",
            "[server]\nlog_format = \"json\"\nmetrics = \"127.0.0.1:0\"\n",
            1,
        ),
    )
    .unwrap();
    // Daemon::server_section sets metrics = "": the later key would clash; drop it.
    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(&daemon.config, config.replacen("metrics = \"\"\n", "", 1)).unwrap();
    std::fs::remove_file(daemon.dir.path().join("daemon.log")).unwrap();
    daemon.spawn();
    // The cached deny answers again, and is audited again.
    assert!(pull(&daemon).await.is_err());
    daemon.stop();
    let log = daemon.log();
    assert!(!log.contains('\x1b'), "{log:?}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let audit = lines
        .iter()
        .find(|l| l["target"] == "pullwarden::audit")
        .unwrap_or_else(|| panic!("no audit line: {log}"));
    let reasons = audit["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        reasons
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("no signature found"))),
        "{audit}"
    );
    assert_eq!(audit["decision"], "deny");
    let serving = lines
        .iter()
        .find(|l| l["message"] == "pullwarden serving")
        .unwrap();
    assert_eq!(serving["listen"], daemon.listen.display().to_string());
    let metrics = lines
        .iter()
        .find(|l| l["message"] == "metrics on /metrics")
        .unwrap();
    let addr = metrics["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(addr.parse::<std::net::SocketAddr>().is_ok(), "{metrics}");
}

/// Through the daemon and the real registry: a threshold of 2 over one key listed in two
/// encodings (plus a second key) is not met by the first key's signature alone, and is
/// met once the second key signs. The daemon verifies with the key bytes read at load:
/// key files overwritten after start change nothing until a reload, which refuses them.
#[tokio::test(flavor = "multi_thread")]
async fn daemon_counts_signers_with_the_keys_read_at_load() {
    use crate::support::image::{Compression, Entry, Image, Layer};
    use pullwarden::registry::{Credentials, RegistryClient};
    use pullwarden::verify::sign::{ImageSigner, SignFormat, generate_key, sign_and_push};
    use sigstore::crypto::SigningScheme;
    let reg = &crate::support::it_env().registry;
    let repo = crate::support::unique_repo("threshold");
    let img = Image::new(vec![Layer::from_entries(
        &[Entry::file("etc/hello", "hello threshold")],
        Compression::Gzip,
    )]);
    img.push(reg, &repo, "v1").await;
    let reference = format!("{reg}/{repo}:v1");
    let r: pullwarden::reference::Reference = reference.parse().unwrap();
    let d: pullwarden::digest::Digest = img.digest.parse().unwrap();
    let client = RegistryClient::new(
        &pullwarden::config::Config::parse(&format!("[registry]\nplain_http = [{reg:?}]"))
            .unwrap()
            .registry,
    )
    .unwrap();
    let files = tempfile::tempdir().unwrap();
    let key = |name: &str, scheme| {
        let (private, public) = generate_key(scheme).unwrap();
        let path = files.path().join(format!("{name}.pub"));
        std::fs::write(&path, &public).unwrap();
        (
            ImageSigner::from_pem(private.as_bytes(), false).unwrap(),
            path,
            public,
        )
    };
    let (a, a_pub, a_pem) = key("a", SigningScheme::ECDSA_P256_SHA256_ASN1);
    let (b, b_pub, _) = key("b", SigningScheme::ED25519);
    let a_der = files.path().join("a.der");
    std::fs::write(
        &a_der,
        pullwarden::verify::keys::pem_block(&a_pem, "PUBLIC KEY").unwrap(),
    )
    .unwrap();
    let keys = [a_pub.clone(), a_der.clone(), b_pub];
    let mut daemon = Daemon::start(&policy_toml(
        "enforce",
        &keys,
        "threshold = 2\n",
        "enabled = false\n",
    ));
    let admin = daemon.admin.display().to_string();
    let pull = |socket: PathBuf| {
        let r = reference.clone();
        async move {
            let mut cri = crate::support::cri::images(&socket).await;
            cri.pull_image(crate::support::cri::pull_request(&r, "default"))
                .await
        }
    };
    // The key files go bad on disk before the first pull: the daemon keeps the keys it
    // loaded (and fingerprinted) at start.
    std::fs::write(&a_pub, "garbage").unwrap();
    std::fs::remove_file(&a_der).unwrap();
    let creds = Credentials::default();
    sign_and_push(&client, &r, &d, &a, SignFormat::Legacy, &creds)
        .await
        .unwrap();
    let denied = pull(daemon.listen.clone()).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unknown, "{denied:?}");
    assert!(
        denied.message().starts_with("SignatureValidationFailed: ")
            && denied.message().contains("denied by policy p"),
        "{denied:?}"
    );

    sign_and_push(&client, &r, &d, &b, SignFormat::Bundle, &creds)
        .await
        .unwrap();
    let out = daemon.cli(&["purge", "--all", "--admin", &admin]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pull(daemon.listen.clone())
        .await
        .unwrap_or_else(|e| panic!("two signers, keys from load: {e:?}\n{}", daemon.log()));
    let out = daemon.cli(&["reload", "--admin", &admin]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy[0].signatures.keys[0]"));
    daemon.stop();
}

/// `[fleet]` key files are read at load: a missing trusted key, a public key where the
/// signing key belongs, or `publish` without a key stop `policy check` and `serve`
/// (exit 64, naming the key) before any socket is bound; good ones pass.
#[test]
fn fleet_keys_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let server = Daemon::server_section(dir.path(), &dir.path().join("containerd.sock"));
    let pair = sigstore::crypto::SigningScheme::ED25519
        .create_signer()
        .unwrap()
        .to_sigstore_keypair()
        .unwrap();
    let private = dir.path().join("node.key");
    std::fs::write(&private, pair.private_key_to_pem().unwrap().as_bytes()).unwrap();
    let public = dir.path().join("node.pub");
    std::fs::write(&public, pair.public_key_to_pem().unwrap()).unwrap();
    let absent = dir.path().join("absent.pub");
    let cases = [
        (
            format!("[fleet]\ntrusted = [{public:?}, {absent:?}]\n"),
            "fleet.trusted[1]",
        ),
        (
            format!("[fleet]\npublish = true\nkey = {public:?}\n"),
            "fleet.key",
        ),
        ("[fleet]\npublish = true\n".to_string(), "fleet.key"),
        (
            "[fleet]\nmax_age = \"a week\"\n".to_string(),
            "fleet.max_age",
        ),
    ];
    for (fleet, key) in &cases {
        std::fs::write(&config, format!("{server}{fleet}")).unwrap();
        for cmd in [&["policy", "check"][..], &["serve"][..]] {
            let out = Command::new(bin())
                .args(cmd)
                .arg("--config")
                .arg(&config)
                .output()
                .unwrap();
            let e = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{cmd:?} {fleet}: {e}");
            assert!(e.contains(key), "{cmd:?}: {e}");
            assert!(!dir.path().join("cri.sock").exists());
        }
    }
    std::fs::write(
        &config,
        format!("{server}[fleet]\npublish = true\nkey = {private:?}\ntrusted = [{public:?}]\nmax_age = \"24h\"\n"),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["policy", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
