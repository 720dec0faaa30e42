//! `pullwarden doctor` and the daemon's health against the real containerd: the
//! kubelet's image endpoint read from a fake kubelet process (flags, `--config`,
//! `--config-dir` drop-ins), the live canary left nowhere, the `pullwarden_enforcing`
//! gauge, and `status` unhealthy while containerd does not answer or an enforcing
//! policy's keys do not load.
//!
//! Fake kubelets are processes every doctor on the machine sees, so all of them live in
//! one test function, one after another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use containerd_client::services::v1::{
    ListContentRequest, ListImagesRequest, content_client::ContentClient,
    images_client::ImagesClient,
};
use serde_json::Value;

use crate::support::daemon::Daemon;
use crate::support::{bin, it_env};

/// A process named `kubelet` (a link to /bin/sh blocked in `read` on a pipe nobody
/// writes) whose command line carries `args` after its own.
struct FakeKubelet(Child);

impl FakeKubelet {
    fn start(dir: &Path, args: &[String]) -> FakeKubelet {
        let exe = dir.join("kubelet");
        if !exe.exists() {
            std::os::unix::fs::symlink("/bin/sh", &exe).unwrap();
        }
        let child = Command::new(&exe)
            .args(["-c", "read never", "kubelet"])
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Until the shell has exec'd, /proc shows the test binary's name.
        let comm = PathBuf::from(format!("/proc/{}/comm", child.id()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "kubelet" {
            assert!(Instant::now() < deadline, "the fake kubelet did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        FakeKubelet(child)
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon with a catch-all enforcing policy (one real key), metrics on `metrics`
/// when given, and the periodic doctor every `interval`.
fn daemon(upstream: &Path, metrics: Option<u16>, interval: &str, extra: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let out = Command::new(bin())
        .args(["keygen", "--output"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let server = Daemon::server_section(dir.path(), upstream)
        .replace(
            "doctor_interval = \"0s\"",
            &format!("doctor_interval = \"{interval}\""),
        )
        .replace(
            "metrics = \"\"",
            &match metrics {
                Some(p) => format!("metrics = \"127.0.0.1:{p}\""),
                None => "metrics = \"\"".into(),
            },
        );
    let text = format!(
        "{server}\n[[policy]]\nname = \"everything\"\nimages = [\"**\"]\nmode = \"enforce\"\n[policy.signatures]\nkeys = [\"{}\"]\n{extra}",
        key.with_extension("pub").display()
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    let mut d = Daemon {
        listen: dir.path().join("cri.sock"),
        admin: dir.path().join("admin.sock"),
        config,
        dir,
        child: None,
    };
    d.spawn();
    d
}

/// `pullwarden doctor --json`: exit code and report.
fn doctor(d: &Daemon) -> (i32, Value) {
    let out = d.cli(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn checks<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == name)
        .collect()
}

/// The one check named `name` of the (single) kubelet we started.
fn kubelet_check(report: &Value, pid: u32) -> Value {
    checks(report, "kubelet")
        .into_iter()
        .find(|c| {
            c["detail"]
                .as_str()
                .unwrap()
                .contains(&format!("pid {pid})"))
        })
        .unwrap_or_else(|| panic!("no kubelet check for pid {pid}: {report:#}"))
        .clone()
}

fn gauge(port: u16) -> Option<String> {
    let body = metrics_body(port)?;
    body.lines()
        .find(|l| l.starts_with("pullwarden_enforcing "))
        .map(|l| l["pullwarden_enforcing ".len()..].to_string())
}

/// Waits until the gauge reads `want`.
fn wait_gauge(port: u16, want: &str, d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if gauge(port).as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pullwarden_enforcing never became {want} (now {:?}): {}",
            gauge(port),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET /metrics with a plain std TCP client (HTTP/1.0: the server closes after it).
fn metrics_body(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Images and blobs of containerd's `k8s.io` namespace.
async fn containerd_inventory(socket: &Path) -> (Vec<String>, Vec<String>) {
    let ch = pullwarden::cli::cri::channel(socket).await.unwrap();
    fn ns<T>(msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("containerd-namespace", "k8s.io".parse().unwrap());
        r
    }
    let images = ImagesClient::new(ch.clone())
        .list(ns(ListImagesRequest { filters: vec![] }))
        .await
        .unwrap()
        .into_inner()
        .images
        .into_iter()
        .map(|i| i.name)
        .collect();
    let mut stream = ContentClient::new(ch)
        .list(ns(ListContentRequest { filters: vec![] }))
        .await
        .unwrap()
        .into_inner();
    let mut blobs = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        blobs.extend(chunk.info.into_iter().map(|i| i.digest));
    }
    (images, blobs)
}

#[test]
fn doctor_reads_the_kubelet_runs_a_canary_and_sets_the_gauge() {
    let env = it_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = free_port();
    // One daemon re-checks every second (the gauge); the other only on demand.
    let watched = daemon(&env.containerd_sock, Some(port), "1s", "");
    let d = daemon(&env.containerd_sock, None, "0s", "");
    let listen = d.listen.display().to_string();
    let ours = format!("unix://{listen}");
    let work = tempfile::tempdir().unwrap();

    // No kubelet: a warning only; the canary proves ImageStatus hides side-loaded images.
    let (before_images, before_blobs) = rt.block_on(containerd_inventory(&env.containerd_sock));
    let (code, report) = doctor(&d);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["enforcing"], true, "{report:#}");
    let canary = &checks(&report, "canary")[0];
    assert_eq!(canary["status"], "OK", "{report:#}");
    let detail = canary["detail"].as_str().unwrap();
    assert!(
        detail.contains("present in containerd, absent through pullwarden"),
        "{detail}"
    );
    for name in ["policies", "fingerprints", "containerd"] {
        assert_eq!(checks(&report, name)[0]["status"], "OK", "{report:#}");
    }
    assert!(
        checks(&report, "kubelet")
            .iter()
            .all(|c| c["status"] != "FAIL"),
        "{report:#}"
    );
    // The canary is left nowhere: neither its name nor any of its three blobs (the image
    // is deterministic from its token), and nothing labelled as a canary of this run.
    let name = detail
        .strip_prefix("side-loaded ")
        .and_then(|r| r.split(' ').next())
        .unwrap();
    let token = name.rsplit(':').next().unwrap();
    let image = pullwarden::doctor::canary::build_image(token).unwrap();
    let (after_images, after_blobs) = rt.block_on(containerd_inventory(&env.containerd_sock));
    assert!(
        !after_images.iter().any(|i| i == name),
        "{name} left behind"
    );
    for (digest, _, _) in &image.blobs {
        assert!(
            before_blobs.iter().all(|b| b != &digest.to_string()),
            "the canary reused an existing blob"
        );
        assert!(
            !after_blobs.contains(&digest.to_string()),
            "canary blob {digest} left in the content store"
        );
    }
    assert!(!before_images.iter().any(|i| i == name));

    // The watched daemon's gauge: 1 with no bypass...
    wait_gauge(port, "1", &watched);

    // A kubelet that pulls from elsewhere by flag: BYPASSED, exit 2, gauge 0.
    let k = FakeKubelet::start(
        work.path(),
        &["--image-service-endpoint=unix:///somewhere/else.sock".into()],
    );
    let (code, report) = doctor(&d);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(report["enforcing"], false);
    let c = kubelet_check(&report, k.0.id());
    assert_eq!(c["status"], "FAIL");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .starts_with("BYPASSED: kubelet pulls from unix:///somewhere/else.sock"),
        "{c}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("--image-service-endpoint"),
        "{c}"
    );
    let text = d.cli(&["doctor"]);
    assert_eq!(text.status.code(), Some(2));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("FAIL kubelet: BYPASSED: kubelet pulls from unix:///somewhere/else.sock"),
        "{text}"
    );
    assert!(text.contains("NOT ENFORCING"), "{text}");
    wait_gauge(port, "0", &watched);
    drop(k);
    wait_gauge(port, "1", &watched);

    // A KubeletConfiguration (--config, relative to the kubelet's working directory)
    // naming our socket through a symlinked directory: OK.
    std::os::unix::fs::symlink(d.dir.path(), work.path().join("via-link")).unwrap();
    std::fs::write(
        work.path().join("config.yaml"),
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix://{}\nimageServiceEndpoint: unix://{}/cri.sock\n",
            env.containerd_sock.display(),
            work.path().join("via-link").display()
        ),
    )
    .unwrap();
    let k = FakeKubelet::start(work.path(), &["--config".into(), "config.yaml".into()]);
    let (code, report) = doctor(&d);
    let c = kubelet_check(&report, k.0.id());
    assert_eq!(c["status"], "OK", "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    drop(k);

    // Drop-ins in --config-dir override the config file, in lexical order; the
    // shipped drop-in (with this daemon's socket) wins over an earlier one.
    let conf_d = work.path().join("kubelet.conf.d");
    std::fs::create_dir(&conf_d).unwrap();
    std::fs::write(
        conf_d.join("10-elsewhere.conf"),
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nimageServiceEndpoint: unix:///run/containerd/containerd.sock\n",
    )
    .unwrap();
    let args = vec![
        "--config=config.yaml".to_string(),
        format!("--config-dir={}", conf_d.display()),
    ];
    let k = FakeKubelet::start(work.path(), &args);
    let (code, report) = doctor(&d);
    let c = kubelet_check(&report, k.0.id());
    assert_eq!(code, 2, "{report:#}");
    assert!(
        c["detail"].as_str().unwrap().starts_with(
            "BYPASSED: kubelet pulls from unix:///run/containerd/containerd.sock (from imageServiceEndpoint in"
        ) && c["detail"].as_str().unwrap().contains("10-elsewhere.conf"),
        "{c}"
    );
    drop(k);
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kubelet-pullwarden.conf"),
    )
    .unwrap();
    assert!(shipped.contains("unix:///run/pullwarden/cri.sock"));
    std::fs::write(
        conf_d.join("50-pullwarden.conf"),
        shipped.replace("unix:///run/pullwarden/cri.sock", &ours),
    )
    .unwrap();
    let k = FakeKubelet::start(work.path(), &args);
    let (code, report) = doctor(&d);
    let c = kubelet_check(&report, k.0.id());
    assert_eq!(c["status"], "OK", "{report:#}");
    assert!(
        c["detail"].as_str().unwrap().contains("50-pullwarden.conf"),
        "{c}"
    );
    assert_eq!(code, 0, "{report:#}");
    drop(k);

    // A kubelet that holds a connection to our socket is seen by its peer credentials.
    let python = work.path().join("py").join("kubelet");
    std::fs::create_dir(work.path().join("py")).unwrap();
    // Debian's interpreter itself (a version manager's shim would dispatch on the name).
    let interpreter = std::fs::canonicalize("/usr/bin/python3").unwrap();
    std::os::unix::fs::symlink(interpreter, &python).unwrap();
    let mut connected = Command::new(&python)
        .arg("-c")
        .arg(format!(
            "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect({listen:?})\nprint('connected', flush=True)\nsys.stdin.read()\n"
        ))
        .args(&args)
        .current_dir(work.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(connected.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "connected");
    let (code, report) = doctor(&d);
    let calls = &checks(&report, "kubelet-calls")[0];
    assert!(
        calls["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("kubelet (pid {}) is connected", connected.id())),
        "{report:#}"
    );
    assert_eq!(kubelet_check(&report, connected.id())["status"], "OK");
    assert_eq!(code, 0, "{report:#}");
    let _ = connected.kill();
    let _ = connected.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, report) = doctor(&d);
        let detail = checks(&report, "kubelet-calls")[0]["detail"].to_string();
        if detail.contains("no kubelet connected") {
            break;
        }
        assert!(Instant::now() < deadline, "{detail}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Without ptrace access to the kubelet (the hardened daemon has no CAP_SYS_PTRACE;
    // here: doctor as an unprivileged user, daemon unreachable so the check runs in the
    // CLI), /proc/PID/root is refused and absolute paths are read from our own root.
    {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        let open = tempfile::tempdir().unwrap();
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let kcfg = open.path().join("kubelet.yaml");
        std::fs::write(&kcfg, format!("imageServiceEndpoint: {ours}\n")).unwrap();
        let cfg = open.path().join("pullwarden.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"{listen}\"\nadmin = \"{}\"\n",
                open.path().join("none.sock").display()
            ),
        )
        .unwrap();
        for f in [&kcfg, &cfg] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let k = FakeKubelet::start(work.path(), &[format!("--config={}", kcfg.display())]);
        let out = Command::new(bin())
            .args(["doctor", "--json", "--config"])
            .arg(&cfg)
            .uid(65534)
            .gid(65534)
            .current_dir("/")
            .output()
            .unwrap();
        let report: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        assert_eq!(out.status.code(), Some(2), "{report:#}");
        assert_eq!(checks(&report, "daemon")[0]["status"], "FAIL", "{report:#}");
        let c = kubelet_check(&report, k.0.id());
        assert_eq!(c["status"], "OK", "{report:#}");
        assert!(
            std::fs::read_link(format!("/proc/{}/root", k.0.id())).is_ok(),
            "root itself can follow the link"
        );
        drop(k);
    }

    // A command-line flag overrides config and drop-ins, as in the kubelet.
    let mut flagged = args.clone();
    flagged.push("--image-service-endpoint".into());
    flagged.push("unix:///somewhere/else.sock".into());
    let k = FakeKubelet::start(work.path(), &flagged);
    let (code, report) = doctor(&d);
    let c = kubelet_check(&report, k.0.id());
    assert_eq!(code, 2, "{report:#}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .starts_with("BYPASSED: kubelet pulls from unix:///somewhere/else.sock"),
        "{c}"
    );
    drop(k);

    // A config edited without a reload: the fingerprints differ until `reload`.
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        text.replace(
            "mode = \"enforce\"",
            "mode = \"enforce\"\non_error = \"allow\"",
        ),
    )
    .unwrap();
    let (code, report) = doctor(&d);
    let f = &checks(&report, "fingerprints")[0];
    assert_eq!(
        (code, f["status"].as_str()),
        (2, Some("FAIL")),
        "{report:#}"
    );
    assert!(
        f["fix"].as_str().unwrap().contains("pullwarden reload"),
        "{f}"
    );
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let (code, report) = doctor(&d);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn a_canary_no_enforcing_policy_covers_proves_nothing() {
    let env = it_env();
    let d = Daemon::start("[[policy]]\nname = \"watch\"\nimages = [\"**\"]\nmode = \"audit\"\n");
    let (code, report) = doctor(&d);
    assert_eq!(code, 2, "{report:#}");
    let canary = &checks(&report, "canary")[0];
    assert_eq!(canary["status"], "FAIL", "{report:#}");
    assert!(
        canary["detail"]
            .as_str()
            .unwrap()
            .contains("no enforcing policy covers"),
        "{canary}"
    );
    assert_eq!(checks(&report, "policies")[0]["status"], "FAIL");
    let _ = env;
}

/// containerd that accepts connections and never answers (what a stopped or
/// deadlocked containerd looks like from its socket): `status` says unhealthy within
/// its 2 s deadline, with the reason; `doctor` fails containerd and skips the canary.
#[test]
fn status_is_unhealthy_while_containerd_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let frozen = dir.path().join("frozen.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&frozen).unwrap();
    let d = Daemon::start_with_upstream(&frozen, "");
    let started = Instant::now();
    let out = d.cli(&["status", "--json"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["healthy"], false);
    assert_eq!(st["upstream"]["reachable"], false);
    let problems = st["problems"].to_string();
    assert!(
        problems.contains("did not answer") && problems.contains("frozen.sock"),
        "{problems}"
    );
    assert!(took < Duration::from_secs(10), "status took {took:?}");
    let out = d.cli(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unhealthy: containerd at"),
        "{out:?}"
    );
    let (code, report) = doctor(&d);
    assert_eq!(code, 2);
    assert_eq!(
        checks(&report, "containerd")[0]["status"],
        "FAIL",
        "{report:#}"
    );
    assert_eq!(checks(&report, "canary")[0]["status"], "FAIL", "{report:#}");
}

/// An enforcing policy whose key file stops loading (replaced under the running daemon):
/// every pull under it would be denied, so `status` is unhealthy (exit 2) and says why.
#[test]
fn status_is_unhealthy_when_an_enforcing_policy_cannot_load_its_keys() {
    let env = it_env();
    let d = daemon(&env.containerd_sock, None, "0s", "");
    let out = d.cli(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let key = d.dir.path().join("key.pub");
    std::fs::write(
        &key,
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let out = d.cli(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = st["problems"].to_string();
    assert!(
        problems.contains("enforcing policy everything cannot load its keys")
            && problems.contains("key.pub"),
        "{problems}"
    );
    assert!(st["policies"][0]["signer_error"].is_string(), "{st}");
    let (code, report) = doctor(&d);
    assert_eq!(code, 2);
    assert_eq!(
        checks(&report, "policies")[0]["status"],
        "FAIL",
        "{report:#}"
    );
}

/// The shipped kubelet drop-in and kubeadm patch are KubeletConfiguration that sets the
/// image endpoint to the default listen socket (and nothing else of the endpoints).
#[test]
fn shipped_kubelet_configuration_points_at_the_default_socket() {
    use pullwarden::doctor::kubelet::parse_config;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listen = pullwarden::config::Config::parse("").unwrap().server.listen;
    for file in [
        "config/kubelet-pullwarden.conf",
        "config/kubeadm-patches/kubeletconfiguration+merge.yaml",
    ] {
        let path = root.join(file);
        let f = parse_config(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
        assert_eq!(
            f.image_service_endpoint,
            Some(format!("unix://{}", listen.display())),
            "{file}"
        );
        assert_eq!(f.container_runtime_endpoint, None, "{file}");
    }
    let dropin = std::fs::read_to_string(root.join("config/kubelet-pullwarden.conf")).unwrap();
    assert!(dropin.contains("apiVersion: kubelet.config.k8s.io/v1beta1"));
    assert!(dropin.contains("kind: KubeletConfiguration"));
}

/// A containerd of this test's own (never the shared one), stopped with SIGSTOP while
/// the daemon is connected to it: `status` turns unhealthy (exit 2) within its deadline
/// and healthy again once containerd continues.
#[test]
fn status_follows_a_stopped_and_continued_containerd() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    struct Own(Child);
    impl Drop for Own {
        fn drop(&mut self) {
            let pid = Pid::from_raw(self.0.id() as i32);
            let _ = kill(pid, Signal::SIGCONT);
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("containerd.sock");
    // A bare containerd: its API only (no CRI plugin needed for the health check).
    std::fs::write(
        dir.path().join("config.toml"),
        "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
    let own = Own(Command::new("containerd")
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--state")
        .arg(dir.path().join("state"))
        .arg("--address")
        .arg(&sock)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "our containerd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = Daemon::start_with_upstream(&sock, "");
    let healthy = |want: i32| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = d.cli(&["status", "--json"]);
            if out.status.code() == Some(want) {
                return serde_json::from_slice::<Value>(&out.stdout).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "status never exited {want}: {out:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let st = healthy(0);
    assert_eq!(st["upstream"]["reachable"], true, "{st}");
    let pid = Pid::from_raw(own.0.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let st = healthy(2);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        st["problems"]
            .to_string()
            .contains("did not answer version.Version"),
        "{st}"
    );
    kill(pid, Signal::SIGCONT).unwrap();
    healthy(0);
}

/// `doctor --config FILE` with a file the daemon does not run: the running policies are
/// compared with FILE's too.
#[test]
fn doctor_compares_the_running_policies_with_a_named_config_file() {
    let env = it_env();
    let d = daemon(&env.containerd_sock, None, "0s", "");
    let same = d.dir.path().join("copy.toml");
    std::fs::copy(&d.config, &same).unwrap();
    let out = d.cli(&["doctor", "--json", "--config", same.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    let f = checks(&report, "fingerprints");
    assert_eq!(f.len(), 2, "{report:#}");
    assert!(
        f[1]["detail"].as_str().unwrap().contains("the daemon runs"),
        "{report:#}"
    );
    let other = d.dir.path().join("other.toml");
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &other,
        text.replace("name = \"everything\"", "name = \"renamed\""),
    )
    .unwrap();
    let out = d.cli(&["doctor", "--json", "--config", other.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    let f = checks(&report, "fingerprints");
    assert_eq!(f[0]["status"], "OK", "{report:#}");
    assert_eq!(f[1]["status"], "FAIL", "{report:#}");
    assert!(
        f[1]["detail"].as_str().unwrap().contains("renamed"),
        "{report:#}"
    );
}

/// The canary against a socket that does not gate (containerd's own, as a kubelet
/// bypassing pullwarden would see): reported BYPASSED, and still left nowhere.
#[test]
fn the_canary_catches_a_socket_that_does_not_gate_and_cleans_up_after_itself() {
    let env = it_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = pullwarden::config::Config::parse(&format!(
        "[server]\nupstream = \"{}\"\n[[policy]]\nname = \"all\"\nimages = [\"**\"]\n",
        env.containerd_sock.display()
    ))
    .unwrap();
    let _in_runtime = rt.enter();
    let containerd =
        pullwarden::containerd::Containerd::new(&env.containerd_sock, "k8s.io").unwrap();
    let check = rt.block_on(pullwarden::doctor::canary::run(
        &containerd,
        &config,
        &env.containerd_sock,
        None,
    ));
    assert_eq!(check.status, pullwarden::doctor::Status::Fail, "{check:?}");
    assert!(
        check
            .detail
            .starts_with("BYPASSED: the side-loaded pullwarden.invalid/canary:"),
        "{check:?}"
    );
    let name = check.detail["BYPASSED: the side-loaded ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let token = name.rsplit(':').next().unwrap();
    let image = pullwarden::doctor::canary::build_image(token).unwrap();
    let (images, blobs) = rt.block_on(containerd_inventory(&env.containerd_sock));
    assert!(
        !images.contains(&name),
        "{name} left behind after a failed canary"
    );
    for (digest, _, _) in &image.blobs {
        assert!(!blobs.contains(&digest.to_string()), "{digest} left behind");
    }
}
