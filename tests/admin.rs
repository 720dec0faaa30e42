//! The admin API over a real unix socket with a fake daemon backend, and the node CLI
//! (the built binary) against it: JSON shapes, tables, exit codes, peer check.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pullwarden::admin::{
    self, AdminBackend, AdminClient, AdminClientError, BackendError, PeerAccess, SbomFormat,
};
use pullwarden::policy::{Decision, Verdict};
use pullwarden::store::{HistoryEvent, VerdictKey, VerdictStore};
use serde_json::{Value, json};

use crate::store::{digest_n, sample_verdict};
use crate::support::bin;

#[derive(Default)]
struct FakeBackend {
    reload_fails: AtomicBool,
    unhealthy: AtomicBool,
    reloads: AtomicU64,
}

impl AdminBackend for FakeBackend {
    fn reload(&self) -> Result<String, BackendError> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        if self.reload_fails.load(Ordering::SeqCst) {
            Err(BackendError::Failed(
                "policy[0].mode: \"strict\" is not one of enforce, audit, off".into(),
            ))
        } else {
            Ok("configuration reloaded: 2 policies".into())
        }
    }

    fn status(&self) -> Value {
        json!({
            "healthy": !self.unhealthy.load(Ordering::SeqCst),
            "version": "0.1.0",
            "upstream": { "containerd": "reachable" },
            "vulndb": { "version": "osv-2026-11-25" },
        })
    }

    fn sbom(&self, digest: &str, format: SbomFormat) -> Result<Value, BackendError> {
        if digest == digest_n(3) {
            return Err(BackendError::NotFound(format!(
                "no scan report kept for {digest}"
            )));
        }
        Ok(json!({ "fake_sbom_of": digest, "format": format.as_str() }))
    }
}

/// An admin server on a temp socket, with three verdicts: `app:1` allow, `app:2` deny
/// (with history), `app:3` allow. Stops when dropped.
struct Daemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    backend: Arc<FakeBackend>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let store = Arc::new(VerdictStore::open(&dir.path().join("state"), 100).unwrap());
        for (n, decision) in [
            (1, Decision::Allow),
            (2, Decision::Deny),
            (3, Decision::Allow),
        ] {
            let mut v = sample_verdict(&digest_n(n), &format!("app:{n}"), decision);
            v.decided_at = format!("2026-11-26T10:00:0{n}Z");
            store.put(&VerdictKey::of(&v), &v).unwrap();
        }
        let denied = store.latest("app:2").unwrap().unwrap();
        store
            .record(&HistoryEvent::from_verdict(&denied, "app:2", false))
            .unwrap();
        store
            .record(&HistoryEvent::from_verdict(&denied, "app:2", true))
            .unwrap();
        let backend = Arc::new(FakeBackend::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (sock, b) = (socket.clone(), backend.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = pullwarden::cri::bind_socket(&sock, "root").unwrap();
                let access = PeerAccess::for_group("root").unwrap();
                ready_tx.send(()).unwrap();
                admin::serve(listener, store, b, access, async {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        ready_rx.recv().unwrap();
        Daemon {
            dir,
            socket,
            backend,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn client(&self) -> AdminClient {
        AdminClient::new(&self.socket)
    }

    /// Runs the CLI with `--admin` pointing at this daemon.
    fn cli(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--admin", self.socket.to_str().unwrap()]);
        run(&all)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("PULLWARDEN_CONFIG")
        .env_remove("PULLWARDEN_ADMIN")
        .output()
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Exactly one JSON document on stdout, exit 0, nothing on stderr.
fn json_out(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(o));
    assert!(o.stderr.is_empty(), "stderr: {}", stderr(o));
    let mut docs = serde_json::Deserializer::from_slice(&o.stdout).into_iter::<Value>();
    let doc = docs
        .next()
        .expect("no JSON on stdout")
        .expect("stdout is not JSON");
    assert!(
        docs.next().is_none(),
        "more than one JSON document on stdout"
    );
    doc
}

/// The verdict JSON fields DESIGN.md fixes, with their types.
fn assert_verdict_shape(v: &Value) {
    for key in ["digest", "reference", "mode", "policy", "decided_at"] {
        assert!(v[key].is_string(), "{key} missing or not a string in {v}");
    }
    assert!(
        matches!(v["decision"].as_str(), Some("allow" | "deny")),
        "{v}"
    );
    assert!(
        v["reasons"]
            .as_array()
            .is_some_and(|r| r.iter().all(Value::is_string))
    );
    assert!(v["signatures"]["checks"].is_array(), "{v}");
    for key in ["secrets", "vulnerabilities", "files"] {
        assert!(
            v["findings"][key].is_array(),
            "findings.{key} missing in {v}"
        );
    }
    let at = v["decided_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
        "decided_at {at:?} is not RFC 3339"
    );
}

#[test]
fn api_end_to_end() {
    let d = Daemon::start();
    let c = d.client();
    let rt = rt();

    let all = rt.block_on(c.verdicts(None)).unwrap();
    assert_eq!(
        all.iter().map(|v| v.reference.as_str()).collect::<Vec<_>>(),
        ["app:3", "app:2", "app:1"]
    );
    let deny = rt.block_on(c.verdicts(Some(Decision::Deny))).unwrap();
    assert_eq!(deny.len(), 1);
    assert_eq!(deny[0].digest, digest_n(2));
    assert_eq!(
        rt.block_on(c.verdicts(Some(Decision::Allow)))
            .unwrap()
            .len(),
        2
    );

    // By reference as pulled, normalized, and by digest; the whole verdict comes back.
    let want: Verdict = all[1].clone();
    for q in [
        "app:2".to_string(),
        "docker.io/library/app:2".to_string(),
        digest_n(2),
    ] {
        assert_eq!(rt.block_on(c.verdict(&q)).unwrap(), want, "{q}");
    }
    match rt.block_on(c.verdict("app:9")) {
        Err(AdminClientError::NotFound { message }) => {
            assert!(message.contains("no verdict for app:9"), "{message}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }

    let ex = rt.block_on(c.explain("app:2")).unwrap();
    assert_eq!(ex["digest"], json!(digest_n(2)));
    let h = ex["history"].as_array().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["cached"], json!(true));
    assert_eq!(h[1]["cached"], json!(false));

    let hist = rt.block_on(c.history(10)).unwrap();
    assert_eq!(hist.len(), 2);

    // Status merges the backend's view and the store's counts.
    let st = rt.block_on(c.status()).unwrap();
    assert_eq!(st["healthy"], json!(true));
    assert_eq!(st["store"]["images"], json!(3));
    assert_eq!(st["store"]["history_events"], json!(2));

    // SBOM: resolved to the digest before the backend is asked.
    let sb = rt.block_on(c.sbom("app:1", SbomFormat::SpdxJson)).unwrap();
    assert_eq!(
        sb,
        json!({ "fake_sbom_of": digest_n(1), "format": "spdx-json" })
    );
    assert!(matches!(
        rt.block_on(c.sbom("app:3", SbomFormat::CyclonedxJson)),
        Err(AdminClientError::NotFound { .. })
    ));
    assert!(matches!(
        rt.block_on(c.sbom("app:9", SbomFormat::CyclonedxJson)),
        Err(AdminClientError::NotFound { .. })
    ));

    // Bad requests get specific statuses.
    let status = |m: http::Method, p: &str| match rt.block_on(c.request(m, p)) {
        Ok(_) => 200,
        Err(AdminClientError::Status { status, .. }) => status,
        Err(AdminClientError::NotFound { .. }) => 404,
        Err(e) => panic!("{p}: {e}"),
    };
    assert_eq!(
        status(http::Method::GET, "/v1/verdicts?decision=maybe"),
        400
    );
    assert_eq!(
        status(http::Method::GET, "/v1/sbom/app%3A1?format=xml"),
        400
    );
    assert_eq!(status(http::Method::GET, "/v1/purge-all"), 405);
    assert_eq!(status(http::Method::GET, "/v1/nothing"), 404);
    assert_eq!(status(http::Method::GET, "/v1/verdict/%zz"), 400);
    assert_eq!(status(http::Method::GET, "/metrics"), 404);

    // Reload goes to the backend; its failure is a 500 with the backend's message.
    assert_eq!(
        rt.block_on(c.reload()).unwrap(),
        "configuration reloaded: 2 policies"
    );
    d.backend.reload_fails.store(true, Ordering::SeqCst);
    match rt.block_on(c.reload()) {
        Err(AdminClientError::Status { status, message }) => {
            assert_eq!(status, 500);
            assert!(message.contains("policy[0].mode"), "{message}");
        }
        other => panic!("expected a 500, got {other:?}"),
    }
    assert_eq!(d.backend.reloads.load(Ordering::SeqCst), 2);

    // Purge one image (by reference), then everything.
    let p = rt.block_on(c.purge("app:2")).unwrap();
    assert_eq!(p, json!({ "purged": 1, "digest": digest_n(2) }));
    assert!(matches!(
        rt.block_on(c.verdict("app:2")),
        Err(AdminClientError::NotFound { .. })
    ));
    assert!(matches!(
        rt.block_on(c.purge("app:2")),
        Err(AdminClientError::NotFound { .. })
    ));
    assert_eq!(rt.block_on(c.purge_all()).unwrap(), json!({ "purged": 2 }));
    assert!(rt.block_on(c.verdicts(None)).unwrap().is_empty());
}

#[test]
fn metrics_endpoint() {
    let m = Arc::new(admin::Metrics::new());
    m.record_pull("prod", "enforce", "deny", false);
    m.observe_scan(0.5, 4096);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(admin::serve_metrics(listener, m.clone(), async {
        let _ = rx.await;
    }));
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let body = get("/metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    assert!(
        body.contains(
            "pullwarden_pulls_total{policy=\"prod\",mode=\"enforce\",decision=\"deny\",cached=\"false\"} 1"
        )
    );
    assert!(body.contains("pullwarden_scanned_bytes_total 4096"));
    assert!(get("/other").starts_with("HTTP/1.1 404"));
    let _ = tx.send(());
    rt.block_on(server).unwrap();
}

#[test]
fn cli_json_outputs() {
    let d = Daemon::start();

    let v = json_out(&d.cli(&["verdict", "app:2", "--json"]));
    assert_verdict_shape(&v);
    assert_eq!(v["digest"], json!(digest_n(2)));
    assert_eq!(v["reference"], json!("app:2"));
    assert_eq!(v["decision"], json!("deny"));
    assert_eq!(v["mode"], json!("enforce"));
    assert_eq!(v["policy"], json!("prod"));
    assert_eq!(v["findings"]["secrets"][0]["path"], json!("/app/.env"));
    assert_eq!(v["signatures"]["checks"].as_array().unwrap().len(), 2);
    // Exactly the stored verdict's JSON: no field renamed, dropped or added on the way.
    let mut stored = sample_verdict(&digest_n(2), "app:2", Decision::Deny);
    stored.decided_at = "2026-11-26T10:00:02Z".into();
    assert_eq!(v, serde_json::to_value(&stored).unwrap());

    let list = json_out(&d.cli(&["verdicts", "--json"]));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    list.iter().for_each(assert_verdict_shape);
    let deny = json_out(&d.cli(&["verdicts", "--decision", "deny", "--json"]));
    assert_eq!(deny.as_array().unwrap().len(), 1);
    assert_eq!(deny[0]["decision"], json!("deny"));
    let allow = json_out(&d.cli(&["verdicts", "--decision", "allow", "--json"]));
    assert!(
        allow
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["decision"] == json!("allow"))
    );

    let ex = json_out(&d.cli(&["explain", &digest_n(2), "--json"]));
    assert_verdict_shape(&ex);
    assert_eq!(ex["warnings"].as_array().unwrap().len(), 1);
    assert_eq!(ex["history"].as_array().unwrap().len(), 2);

    let st = json_out(&d.cli(&["status", "--json"]));
    assert_eq!(st["healthy"], json!(true));
    assert_eq!(st["store"]["verdicts"], json!(3));

    let sb = json_out(&d.cli(&["sbom", "app:1", "--format", "spdx-json"]));
    assert_eq!(sb["fake_sbom_of"], json!(digest_n(1)));
    assert_eq!(sb["format"], json!("spdx-json"));
    let sb = json_out(&d.cli(&["sbom", "app:1", "--format", "cyclonedx-json"]));
    assert_eq!(sb["format"], json!("cyclonedx-json"));
}

#[test]
fn cli_tables_are_readable() {
    let d = Daemon::start();

    let o = d.cli(&["verdict", "app:2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = stdout(&o);
    for want in [
        "image       app:2",
        &format!("digest      {}", digest_n(2)),
        "decision    DENY",
        "policy      prod (mode enforce)",
        "  - no signature from a trusted signer",
        "1 secrets, 1 vulnerabilities, 1 files; 42 packages",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }

    let o = d.cli(&["verdicts"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = stdout(&o);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 4, "{t}");
    assert!(lines[0].starts_with("DECISION  POLICY  MODE"), "{t}");
    assert!(
        lines[1].starts_with("allow ") && lines[1].ends_with("app:3"),
        "{t}"
    );
    assert!(
        lines[2].starts_with("deny ") && lines[2].contains(&digest_n(2)),
        "{t}"
    );
    // Columns line up: the digest starts at the same offset on every row.
    let col = lines[0].find("DIGEST").unwrap();
    for l in &lines[1..] {
        assert_eq!(l.find("sha256:"), Some(col), "{t}");
    }

    let o = d.cli(&["explain", "app:2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = stdout(&o);
    for want in [
        "SIGNATURES (2 checked)",
        "signature does not verify with this key",
        "legacy-tag",
        "SECRETS (1)",
        "/app/.env:3",
        "AKIA************MPLE",
        "VULNERABILITIES (1)",
        "CVE-2024-0001",
        "3.0.2-1",
        "FILES (1)",
        "setuid",
        "/usr/bin/sudo",
        "warnings",
        "RECENT DECISIONS (2)",
        "cached",
        "evaluated",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
    // Findings name their layer.
    assert!(t.contains(&format!("sha256:{}", "c".repeat(64))), "{t}");

    let o = d.cli(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = stdout(&o);
    assert!(
        t.contains("healthy: true") && t.contains("containerd: reachable"),
        "{t}"
    );
    assert!(t.contains("store:\n") && t.contains("  images: 3"), "{t}");
}

#[test]
fn cli_exit_codes_and_errors() {
    let d = Daemon::start();

    // Unknown image: a clear message on stderr, nothing on stdout, exit 1.
    for args in [
        vec!["verdict", "app:9"],
        vec!["verdict", "app:9", "--json"],
        vec![
            "explain",
            "sha256:0000000000000000000000000000000000000000000000000000000000000009",
        ],
        vec!["sbom", "app:9", "--format", "spdx-json"],
    ] {
        let o = d.cli(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("no verdict for"),
            "{args:?}: {}",
            stderr(&o)
        );
    }

    // Daemon not running: the message names the socket.
    let missing = d.dir.path().join("nobody-here.sock");
    let o = run(&["verdicts", "--admin", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("not running") && e.contains("nobody-here.sock"),
        "{e}"
    );

    // The socket comes from the config file when --admin is not given.
    let cfg = d.dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!("[server]\nadmin = \"{}\"\n", d.socket.display()),
    )
    .unwrap();
    let o = run(&["verdicts", "--json", "--config", cfg.to_str().unwrap()]);
    assert_eq!(json_out(&o).as_array().unwrap().len(), 3);
    // A config that does not parse is a config error (64).
    std::fs::write(&cfg, "[server\n").unwrap();
    let o = run(&["verdicts", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));

    // Reload: success, then a rejected config.
    let o = d.cli(&["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("configuration reloaded"));
    d.backend.reload_fails.store(true, Ordering::SeqCst);
    let o = d.cli(&["reload"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("reload rejected") && e.contains("policy[0].mode"),
        "{e}"
    );

    // Unhealthy daemon: status answers, exit 2.
    d.backend.unhealthy.store(true, Ordering::SeqCst);
    let o = d.cli(&["status", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["healthy"],
        json!(false)
    );

    // Purge: needs a digest or --all; then the image is gone.
    assert_eq!(d.cli(&["purge"]).status.code(), Some(64));
    let o = d.cli(&["purge", &digest_n(1)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("purged 1 verdict(s) of {}", digest_n(1))));
    assert_eq!(d.cli(&["verdict", &digest_n(1)]).status.code(), Some(1));
    assert_eq!(d.cli(&["purge", &digest_n(1)]).status.code(), Some(1));
    let o = d.cli(&["purge", "--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("purged 2 verdict(s)"));
    let o = d.cli(&["verdicts"]);
    assert!(stdout(&o).contains("no verdicts recorded"));
}

/// A peer that is neither root nor in the socket group is refused by the daemon even
/// when the socket's mode would let it connect. Needs root to run the client as nobody.
#[test]
fn peer_credentials_are_checked() {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("peer_credentials_are_checked needs root to switch uid; skipped");
        return;
    }
    let d = Daemon::start();
    // Loosen the file permissions so only the SO_PEERCRED check stands in the way.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = Command::new(bin())
        .args(["verdicts", "--json", "--admin", d.socket.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .env_remove("PULLWARDEN_CONFIG")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "stdout: {}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains("permission denied") && e.contains("uid 65534") && e.contains("admin_group"),
        "{e}"
    );
    assert!(o.stdout.is_empty());

    // Root on the same socket is served.
    assert_eq!(
        json_out(&d.cli(&["verdicts", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // With the socket at its real mode (0660, group root), nobody cannot even connect,
    // and the CLI says so.
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o660)).unwrap();
    let o = Command::new(bin())
        .args(["status", "--admin", d.socket.to_str().unwrap()])
        .uid(65534)
        .gid(65534)
        .env_remove("PULLWARDEN_CONFIG")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("permission denied on the admin socket"), "{e}");
}
