//! Issue 10, second attack review: holes found in the CRI proxy's request handling, the
//! load-time validation and `doctor`. Each failed against the first version of that
//! work; each is now a regression test of the fix (its doc comment tells the attack).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use prost::Message;
use serde_json::Value;

use crate::support::daemon::Daemon;
use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{bin, cri, it_env, unique_repo};

/// `target/clients` (or `PW_CLIENTS_DIR`), installed once per test run.
fn clients() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("PW_CLIENTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/clients"));
        let out = std::process::Command::new("bash")
            .arg(root.join("integration/install-clients.sh"))
            .env("PW_CLIENTS_DIR", &dir)
            .output()
            .expect("running integration/install-clients.sh");
        assert!(
            out.status.success(),
            "integration/install-clients.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// One raw HTTP/2 call (`tests/clients/raw_h2.py`, the `authority-localhost` header set)
/// with `:path` = `path` and the framed `message`.
async fn raw_call(socket: &Path, path: &str, message: &[u8], extra: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/raw_h2.py");
    let hex: String = message.iter().map(|b| format!("{b:02x}")).collect();
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(socket)
        .args(["--path", path, "--message-hex", &hex, "--timeout", "60"])
        .args(["--case", "authority-localhost"])
        .args(extra)
        .env("PYTHONPATH", clients().join("python"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.lines().last().unwrap_or_default()).unwrap()
}

/// A small unsigned image under a fresh repository; returns its reference.
async fn push_unsigned(prefix: &str) -> String {
    let env = it_env();
    let repo = unique_repo(prefix);
    let img = Image::with_platform(
        vec![Layer::from_entries(
            &[
                Entry::dir("etc"),
                Entry::file("etc/attack2", format!("{repo}\n")),
            ],
            Compression::Gzip,
        )],
        "amd64",
        prefix,
    );
    img.push(&env.registry, &repo, "v1").await;
    format!("{}/{repo}:v1", env.registry)
}

/// A daemon enforcing a signature requirement (a fresh key nobody signs with) on
/// `it/<prefix>-*`.
fn signature_daemon(prefix: &str) -> Daemon {
    let keydir = tempfile::tempdir().unwrap().keep();
    let key = keydir.join("k.key");
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
    Daemon::start(&format!(
        "[[policy]]\nname = \"signed\"\nimages = [\"{}/it/{prefix}-*\"]\nmode = \"enforce\"\n[policy.signatures]\nkeys = [\"{}\"]\n",
        it_env().registry,
        key.with_extension("pub").display()
    ))
}

/// containerd 1.6 and 1.7 serve the CRI under both `runtime.v1` and the deprecated
/// `runtime.v1alpha2` (same messages, same wire format; kubelets before 1.26 and older
/// crictl fall back to it). The proxy intercepts only `/runtime.v1.ImageService/
/// PullImage` and forwards every other path byte for byte, so
/// `/runtime.v1alpha2.ImageService/PullImage` pulls an unsigned image under an
/// enforcing signature policy with no check at all.
#[tokio::test(flavor = "multi_thread")]
async fn v1alpha2_pull_image_bypasses_the_gate() {
    let env = it_env();
    let d = signature_daemon("atk2slash");
    let image = push_unsigned("atk2slash").await;
    // Through the gate as the kubelet calls it: denied.
    let denied = cri::images(&d.listen)
        .await
        .pull_image(cri::pull_request(&image, "default"))
        .await;
    assert!(denied.is_err(), "an unsigned image was allowed: {denied:?}");
    assert!(!cri::present(&env.containerd_sock, &image).await);

    let msg = cri::pull_request(&image, "default").encode_to_vec();
    let answer = raw_call(
        &d.listen,
        "/runtime.v1alpha2.ImageService/PullImage",
        &msg,
        &[],
    )
    .await;
    let pulled = cri::present(&env.containerd_sock, &image).await;
    assert!(
        answer["grpc_status"] != 0 && !pulled,
        "unsigned {image} pulled into containerd through pullwarden: {answer}\n{}",
        d.log()
    );
}

/// The same for ImageStatus: a side-loaded image without an allow verdict must read as
/// absent, but `/runtime.v1alpha2.ImageService/ImageStatus` reaches containerd
/// unfiltered (and ListImages/ImageFsInfo of either version are not filtered at all).
#[tokio::test(flavor = "multi_thread")]
async fn v1alpha2_image_status_skips_the_filter() {
    let env = it_env();
    let d = signature_daemon("atk2status");
    let image = push_unsigned("atk2status").await;
    // Side-load straight into containerd (no verdict).
    cri::images(&env.containerd_sock)
        .await
        .pull_image(cri::pull_request(&image, "default"))
        .await
        .unwrap();
    assert!(!cri::present(&d.listen, &image).await, "filtered as absent");
    let msg = k8s_cri::v1::ImageStatusRequest {
        image: cri::spec(&image),
        verbose: false,
    }
    .encode_to_vec();
    let answer = raw_call(
        &d.listen,
        "/runtime.v1alpha2.ImageService/ImageStatus",
        &msg,
        &[],
    )
    .await;
    let data = answer["data"].as_str().unwrap_or_default();
    assert!(
        answer["grpc_status"] != 0 || data.len() <= 10,
        "the unverified image reads as present: {answer}"
    );
}

/// A fake `/proc/PID` whose root is `/` and cwd `cwd`.
fn fake_proc(cwd: &Path) -> tempfile::TempDir {
    let p = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/", p.path().join("root")).unwrap();
    std::os::unix::fs::symlink(cwd, p.path().join("cwd")).unwrap();
    p
}

const GATE: &str = "unix:///run/pullwarden/cri.sock";
const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

/// A kubelet whose `--config` points at pullwarden (and at containerd for the runtime).
fn kubelet_config(dir: &Path) -> pullwarden::doctor::kubelet::KubeletFlags {
    std::fs::write(
        dir.join("config.yaml"),
        format!("kind: KubeletConfiguration\ncontainerRuntimeEndpoint: {CONTAINERD}\nimageServiceEndpoint: {GATE}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    pullwarden::doctor::kubelet::KubeletFlags {
        config: Some(dir.join("config.yaml").display().to_string()),
        config_dir: Some(dir.join("conf.d").display().to_string()),
        ..Default::default()
    }
}

/// The kubelet walks `--config-dir` recursively (`filepath.WalkDir` in
/// `mergeKubeletConfigurations`): a drop-in in a subdirectory is merged, after the
/// files that sort before the subdirectory. doctor reads only the top level, so it
/// reports the gate while the kubelet pulls from containerd.
#[test]
fn doctor_reads_drop_ins_in_config_dir_subdirectories() {
    let d = tempfile::tempdir().unwrap();
    let proc_dir = fake_proc(d.path());
    let flags = kubelet_config(d.path());
    std::fs::write(
        d.path().join("conf.d/50-pullwarden.conf"),
        format!("imageServiceEndpoint: {GATE}\n"),
    )
    .unwrap();
    std::fs::create_dir(d.path().join("conf.d/zz-node")).unwrap();
    std::fs::write(
        d.path().join("conf.d/zz-node/99-bypass.conf"),
        format!("imageServiceEndpoint: {CONTAINERD}\n"),
    )
    .unwrap();
    let e = pullwarden::doctor::kubelet::effective_endpoint(proc_dir.path(), &flags);
    assert!(
        !matches!(&e, Ok(e) if e.endpoint == GATE),
        "the kubelet pulls from {CONTAINERD} (conf.d/zz-node/99-bypass.conf); doctor says {e:?}"
    );
}

/// A drop-in (a JSON merge patch in the kubelet) that sets `imageServiceEndpoint: ""`
/// empties the field, and the kubelet's image service then follows
/// `containerRuntimeEndpoint` (containerd). doctor treats the empty value as "not set"
/// and keeps the gate from `--config`.
#[test]
fn doctor_empty_image_endpoint_in_a_drop_in_falls_back_to_the_runtime() {
    let d = tempfile::tempdir().unwrap();
    let proc_dir = fake_proc(d.path());
    let flags = kubelet_config(d.path());
    std::fs::write(
        d.path().join("conf.d/99-reset.conf"),
        "imageServiceEndpoint: \"\"\n",
    )
    .unwrap();
    let e = pullwarden::doctor::kubelet::effective_endpoint(proc_dir.path(), &flags);
    assert!(
        !matches!(&e, Ok(e) if e.endpoint == GATE),
        "the kubelet pulls from {CONTAINERD}; doctor says {e:?}"
    );
}

/// `--image-service-endpoint=` (e.g. in `/etc/default/kubelet`) is a flag the kubelet
/// sets (flags are re-applied over the config file), so the image service follows
/// `containerRuntimeEndpoint`. doctor ignores the empty flag.
#[test]
fn doctor_empty_image_endpoint_flag_falls_back_to_the_runtime() {
    let d = tempfile::tempdir().unwrap();
    let proc_dir = fake_proc(d.path());
    let argv: Vec<String> = vec![
        "/usr/bin/kubelet".into(),
        format!("--config={}", d.path().join("config.yaml").display()),
        "--image-service-endpoint=".into(),
    ];
    let _ = kubelet_config(d.path());
    let flags = pullwarden::doctor::kubelet::parse_flags(&argv);
    let e = pullwarden::doctor::kubelet::effective_endpoint(proc_dir.path(), &flags);
    assert!(
        !matches!(&e, Ok(e) if e.endpoint == GATE),
        "the kubelet pulls from {CONTAINERD}; doctor says {e:?}"
    );
}

/// A self-signed CA certificate (DER), usable as a Fulcio root.
fn ca_der() -> Vec<u8> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "attack2 fulcio");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.self_signed(&key).unwrap().der().to_vec()
}

/// `pullwarden policy check` of a keyless policy with `trusted_root` = `root`.
fn policy_check_keyless(root: &Value) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let root_path = dir.path().join("trusted_root.json");
    std::fs::write(&root_path, root.to_string()).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nmetrics = \"\"\nstate_dir = \"{}\"\n[[policy]]\nname = \"keyless\"\nimages = [\"**\"]\nmode = \"enforce\"\n[policy.signatures]\ntrusted_root = \"{}\"\n[[policy.signatures.keyless]]\nissuer = \"https://issuer.test\"\nsubject = \"ci@example.com\"\n",
            dir.path().join("state").display(),
            root_path.display()
        ),
    )
    .unwrap();
    std::process::Command::new(bin())
        .args(["policy", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap()
}

/// A trust root whose only transparency log "key" is not a public key (and which has no
/// timestamp authority) loads: the tlog keys are only base64-decoded at load, never
/// parsed, so `policy check` says valid and every keyless pull fails later ("no
/// trusted Rekor key"/"does not verify"). The same for a tlog entry without `logId`,
/// which is skipped silently.
#[test]
fn trusted_root_with_unusable_tlog_keys_fails_policy_check() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let ca = ca_der();
    let root = |tlog: Value| {
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [tlog],
            "certificateAuthorities": [{
                "subject": {"organization": "t", "commonName": "attack2 fulcio"},
                "uri": "https://fulcio.test",
                "certChain": {"certificates": [{"rawBytes": b64(&ca)}]},
                "validFor": {"start": "2020-01-01T00:00:00Z"},
            }],
            "ctlogs": [],
            "timestampAuthorities": [],
        })
    };
    let not_a_key = root(serde_json::json!({
        "baseUrl": "https://rekor.test",
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": b64(b"this is not a public key"), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                      "validFor": {"start": "2020-01-01T00:00:00Z"}},
        "logId": {"keyId": b64(&[7u8; 32])},
    }));
    let no_log_id = root(serde_json::json!({
        "baseUrl": "https://rekor.test",
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": b64(b"this is not a public key"), "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                      "validFor": {"start": "2020-01-01T00:00:00Z"}},
    }));
    for (what, root) in [
        ("tlog key is not a key", not_a_key),
        ("tlog without logId", no_log_id),
    ] {
        let out = policy_check_keyless(&root);
        assert!(
            !out.status.success(),
            "{what}: policy check passed a trust root no keyless signature can verify against:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // fields 14 and 15 (utime, stime) are at 11 and 12 after the ")".
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // USER_HZ, which /proc reports in, is 100 on Linux.
    ticks / 100.0
}

/// A client that opens one stream every 1.5 ms and resets it at once (HEADERS +
/// RST_STREAM: no call reaches containerd) keeps the connection's "linger" (a busy
/// poll for `upstream_busy_poll` = 2 ms after each call) running forever: the daemon
/// burns a whole core for a trickle of nothing. Two such connections take both cores
/// of a small node.
/// Daemon CPU seconds and wall seconds while `script` (the trickle client) runs.
fn cpu_under_trickle(d: &Daemon, script: &str) -> (f64, f64) {
    let pid = d.child.as_ref().unwrap().id();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_seconds(pid);
    let started = std::time::Instant::now();
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&d.listen)
        .env("PYTHONPATH", clients().join("python"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cpu_seconds(pid) - before, started.elapsed().as_secs_f64())
}

#[test]
fn linger_can_be_kept_spinning_by_a_trickle_of_streams() {
    let script = r#"
import socket, sys, time
import h2.config, h2.connection
cfg = h2.config.H2Configuration(client_side=True, header_encoding=None)
conns = []
for _ in range(2):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    c = h2.connection.H2Connection(config=cfg)
    c.initiate_connection()
    s.sendall(c.data_to_send())
    s.setblocking(False)
    conns.append((s, c))
end = time.time() + 3.0
while time.time() < end:
    for s, c in conns:
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"),
            (b":path", b"/runtime.v1.RuntimeService/Version"), (b":authority", b"localhost"),
            (b"content-type", b"application/grpc"), (b"te", b"trailers")])
        c.reset_stream(sid)
        s.sendall(c.data_to_send())
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                c.receive_data(data)
        except BlockingIOError:
            pass
        s.sendall(c.data_to_send())
    time.sleep(0.0015)
"#;
    let mut off = Daemon::start("");
    let text = std::fs::read_to_string(&off.config).unwrap().replace(
        "doctor_interval = \"0s\"",
        "doctor_interval = \"0s\"\nupstream_busy_poll = \"0s\"",
    );
    std::fs::write(&off.config, text).unwrap();
    off.stop();
    off.spawn();
    let (quiet, wall0) = cpu_under_trickle(&off, script);
    drop(off);
    let d = Daemon::start("");
    let (used, wall) = cpu_under_trickle(&d, script);
    assert!(
        used < 2.0 * quiet + 0.1 * wall,
        "the same trickle of ~4000 reset streams: {used:.2} CPU s in {wall:.2} s with the linger, {quiet:.2} CPU s in {wall0:.2} s without"
    );
}

/// The canary takes its name from an enforcing policy's image glob; a glob with no
/// wildcard and a tag (`registry/app:v1`, e.g. a policy pinning one image) is used as
/// it is, so the canary is created under the name of a real image. containerd refuses
/// the create (AlreadyExists), and the cleanup that follows "on failure too" deletes
/// the image by that name: every doctor run (and the periodic one, every minute)
/// removes the node's real image from containerd.
#[tokio::test(flavor = "multi_thread")]
async fn canary_never_deletes_a_real_image() {
    let env = it_env();
    let image = push_unsigned("atk2canary").await;
    // The node already has it (pulled before, or through the gate).
    cri::images(&env.containerd_sock)
        .await
        .pull_image(cri::pull_request(&image, "default"))
        .await
        .unwrap();
    assert!(cri::present(&env.containerd_sock, &image).await);
    let d = Daemon::start(&format!(
        "[[policy]]\nname = \"pinned\"\nimages = [\"{image}\"]\nmode = \"enforce\"\n"
    ));
    let out = d.cli(&["doctor", "--json"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        cri::present(&env.containerd_sock, &image).await,
        "doctor deleted {image} from containerd:\n{report}"
    );
}

/// One private key, one signature: cosign signs with a long-lived key and attaches a
/// Fulcio certificate issued for that same key (`cosign sign --key … --issue-certificate`,
/// or a private CA). With the key in `keys` and the certificate's identity in
/// `keyless`, the one signature counts as two signers ("key <fp>" and "keyless
/// (issuer, subject)"), so `threshold = 2` is met by a single signer. The certificate's
/// public key should be compared with the listed keys (one canonical SPKI, one signer).
#[tokio::test]
async fn threshold_one_key_and_its_certificate_are_one_signer() {
    use crate::verify::keyless::*;
    use crate::verify::{client, policy, pushed_image, reasons, single, verify};
    use pullwarden::registry::Credentials;
    use pullwarden::verify::sign::{LegacySignature, push_legacy, simple_signing_payload};
    use time::{Duration, OffsetDateTime};
    use x509_cert::der::{Decode as _, Encode as _};

    let ts = TestSigstore::new();
    let now = OffsetDateTime::now_utc();
    let subject = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main";
    let leaf = ts.leaf(subject, GITHUB, now - Duration::minutes(1), 10);
    // The certificate's own public key, listed as a trusted key as well.
    let der = pullwarden::verify::keys::pem_block(&leaf.cert_pem, "CERTIFICATE").unwrap();
    let cert = x509_cert::Certificate::from_der(&der).unwrap();
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("release.pub");
    std::fs::write(&key, pullwarden::verify::keys::to_pem("PUBLIC KEY", &spki)).unwrap();
    let v = pullwarden::verify::Verifier::load(&policy(&format!(
        "threshold = 2\nkeys = [{:?}]\ntrusted_root = {:?}\n[[policy.signatures.keyless]]\nissuer = \"{GITHUB}\"\nsubject = \"{subject}\"\n",
        key.display().to_string(),
        ts.trusted_root.display().to_string()
    )))
    .unwrap();
    let (r, d) = pushed_image("atk2-keycert").await;
    let c = client(&r.registry);
    let payload = simple_signing_payload(&r.name(), &d);
    let sig = leaf.signer.sign(&payload).unwrap();
    let bundle = ts.rekor_bundle(&sig, &payload, &leaf.cert_pem, now.unix_timestamp(), true);
    let one = LegacySignature::new(payload.clone(), &sig).with_keyless(&leaf.cert_pem, "", &bundle);
    push_legacy(&c, &r, &d, &[one], &Credentials::default())
        .await
        .unwrap();
    let rep = verify(&v, &r, &single(&d)).await;
    assert!(
        !rep.satisfied,
        "one signature by one private key met threshold 2: signers {:?}; {}",
        rep.verified_signers,
        reasons(&rep)
    );
}

/// A kubelet in its own mount namespace (RKE1 and other kubelets run in a container) may
/// see a different file at the gate's socket path, e.g. containerd's socket bind-mounted
/// there. doctor resolves the kubelet's endpoint with `canonicalize` on
/// `/proc/PID/root/…`, which resolves the magic `root` link textually (to "/") and so
/// compares *our* file at that path, reporting the gate. Comparing device and inode of
/// `stat("/proc/PID/root/<path>")` (which the kernel resolves in the kubelet's
/// namespace) with the listen socket's would tell them apart.
#[test]
fn doctor_compares_the_socket_the_kubelet_sees() {
    use std::os::unix::fs::MetadataExt as _;
    let d = tempfile::tempdir().unwrap();
    let gate = d.path().join("gate.sock");
    let other = d.path().join("containerd.sock");
    let _g = std::os::unix::net::UnixListener::bind(&gate).unwrap();
    let _o = std::os::unix::net::UnixListener::bind(&other).unwrap();
    let mut child = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind {} {} && exec sleep 30",
            other.display(),
            gate.display()
        ))
        .spawn()
        .unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{}", child.id()));
    let seen = proc_dir.join("root").join(gate.strip_prefix("/").unwrap());
    let other_ino = std::fs::metadata(&other).unwrap().ino();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&seen).map(|m| m.ino()).ok() != Some(other_ino) {
        assert!(
            std::time::Instant::now() < deadline,
            "the bind mount did not show"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let endpoint = format!("unix://{}", gate.display());
    let reaches = pullwarden::doctor::kubelet::reaches(&proc_dir, &endpoint, &gate);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !reaches,
        "in the kubelet's mount namespace {} is containerd's socket; doctor says it reaches the gate",
        gate.display()
    );
}

/// Whether `socket` reports `name` present (any gRPC error counts as absent).
async fn present_as(socket: &Path, name: &str) -> bool {
    cri::images(socket)
        .await
        .image_status(k8s_cri::v1::ImageStatusRequest {
            image: cri::spec(name),
            verbose: false,
        })
        .await
        .map(|r| r.into_inner().image.is_some())
        .unwrap_or(false)
}

/// ImageStatus hides an image without an allow verdict, but only for the names the
/// gate recognises. containerd's CRI also resolves an image by a *truncated* image id
/// (its image store is a digest set with short-id lookup, as `crictl inspecti <12 hex>`
/// uses); the gate parses a 12-hex string as the reference
/// `docker.io/library/<hex>:latest`, which no scoped policy matches, and forwards the
/// call unfiltered.
#[tokio::test(flavor = "multi_thread")]
async fn image_status_by_any_id_form_is_filtered() {
    let env = it_env();
    let d = signature_daemon("atk2id");
    let image = push_unsigned("atk2id").await;
    cri::images(&env.containerd_sock)
        .await
        .pull_image(cri::pull_request(&image, "default"))
        .await
        .unwrap();
    let status = cri::images(&env.containerd_sock)
        .await
        .image_status(k8s_cri::v1::ImageStatusRequest {
            image: cri::spec(&image),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap();
    let id = status.id.clone();
    let hex = id.trim_start_matches("sha256:").to_string();
    let by_digest = status.repo_digests[0].clone();
    let forms = [
        image.clone(),
        id.clone(),
        hex.clone(),
        hex[..12].to_string(),
        hex[..20].to_string(),
        by_digest.clone(),
        format!("{image}@{}", by_digest.split_once('@').unwrap().1),
    ];
    let mut shown = vec![];
    for f in &forms {
        let direct = present_as(&env.containerd_sock, f).await;
        if direct && present_as(&d.listen, f).await {
            shown.push(f.clone());
        }
    }
    assert!(
        shown.is_empty(),
        "side-loaded, unsigned {image} reported present through the gate as {shown:?}"
    );
}

/// Another spelling of the registry port: `127.0.0.1:05000` is port 5000 to containerd
/// (Go parses the port as a decimal number), but the gate compares hosts as strings
/// (`canonical_host` folds case and `:443` only), so a policy on `127.0.0.1:5000/…`
/// does not cover the pull and it passes ungated.
#[tokio::test(flavor = "multi_thread")]
async fn registry_port_with_leading_zero_escapes_the_policy() {
    let env = it_env();
    let d = signature_daemon("atk2port");
    let image = push_unsigned("atk2port").await;
    let (host, port) = env.registry.split_once(':').unwrap();
    let spelled = image.replacen(&env.registry, &format!("{host}:0{port}"), 1);
    let answer = cri::images(&d.listen)
        .await
        .pull_image(cri::pull_request(&spelled, "default"))
        .await;
    let pulled = present_as(&env.containerd_sock, &spelled).await;
    assert!(
        !pulled,
        "unsigned {spelled} pulled through the gate: {answer:?}"
    );
}

/// YAML merge keys: the kubelet turns each drop-in into JSON with sigs.k8s.io/yaml
/// (go-yaml v2), which applies `<<`, so `<<: {imageServiceEndpoint: …}` sets the field.
/// doctor deserializes the mapping as it stands, where `<<` is an unknown key, and keeps
/// the earlier value.
#[test]
fn doctor_applies_yaml_merge_keys() {
    let d = tempfile::tempdir().unwrap();
    let proc_dir = fake_proc(d.path());
    let flags = kubelet_config(d.path());
    std::fs::write(
        d.path().join("conf.d/99-merge.conf"),
        format!("<<: {{imageServiceEndpoint: \"{CONTAINERD}\"}}\n"),
    )
    .unwrap();
    let e = pullwarden::doctor::kubelet::effective_endpoint(proc_dir.path(), &flags);
    assert!(
        !matches!(&e, Ok(e) if e.endpoint == GATE),
        "the kubelet pulls from {CONTAINERD}; doctor says {e:?}"
    );
}

/// `reload` swaps the live config first and only then reopens the vulnerability
/// database and hands the policies to the gate. When the database cannot be opened
/// (a `pullwarden db import` holds it at that moment) the reload is reported refused,
/// yet the live config (what `status`, `doctor`'s canary and `explain` read) is the new
/// one while the gate keeps judging with the old policies: half a reload.
#[test]
fn refused_reload_changes_nothing() {
    let mut d = Daemon::start(
        "[[policy]]\nname = \"before\"\nimages = [\"127.0.0.1:1/atk2reload/**\"]\nmode = \"audit\"\n",
    );
    let state = d.dir.path().join("state");
    // What `db import` does while it writes: the database open for writing.
    let _import = redb::Database::create(state.join("vulndb.redb")).unwrap();
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("name = \"before\"", "name = \"after\"")
        .replace("mode = \"audit\"", "mode = \"enforce\"");
    std::fs::write(&d.config, text).unwrap();
    let reload = d.cli(&["reload"]);
    let status = d.cli(&["status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let names: Vec<String> = status["policies"]
        .as_array()
        .map(|a| a.iter().map(|p| p["name"].to_string()).collect())
        .unwrap_or_default();
    let refused = !reload.status.success();
    d.stop();
    assert!(
        !refused || names == ["\"before\""],
        "reload refused ({}) but status reports policies {names:?}",
        String::from_utf8_lossy(&reload.stderr).trim()
    );
}

/// `unix://run/pullwarden/cri.sock` (two slashes) is, to Go's `url.Parse` in the
/// kubelet's `parseEndpoint`, host `run` and path `/pullwarden/cri.sock`: the kubelet
/// dials `/pullwarden/cri.sock`. doctor reads it as the relative path
/// `run/pullwarden/cri.sock`, resolves it against the kubelet's cwd (`/` under
/// systemd) and finds the gate's socket.
#[test]
fn doctor_parses_unix_endpoints_as_the_kubelet_does() {
    let d = tempfile::tempdir().unwrap();
    let gate = d.path().join("gate.sock");
    let _g = std::os::unix::net::UnixListener::bind(&gate).unwrap();
    let proc_dir = fake_proc(Path::new("/"));
    let endpoint = format!(
        "unix://{}",
        gate.display().to_string().trim_start_matches('/')
    );
    assert!(
        !pullwarden::doctor::kubelet::reaches(proc_dir.path(), &endpoint, &gate),
        "the kubelet dials /{} for {endpoint}; doctor reads it as {:?} and says it reaches {}",
        endpoint["unix://".len()..]
            .split_once('/')
            .map(|(_, p)| p)
            .unwrap_or(""),
        pullwarden::doctor::kubelet::endpoint_path(&endpoint),
        gate.display()
    );
}
