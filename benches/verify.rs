//! Time to verify a signed image from a local registry: resolve the reference, find its
//! signatures (referrers fallback tag, legacy `.sig` tag) and check them.
//!   cold: a new client per run (new connections, empty token and content caches);
//!   warm: one client reused (manifests and signature blobs served from its cache,
//!         tags re-checked with a HEAD).
//! Uses PW_IT_REGISTRY when set, else starts `docker-registry` on a free loopback port
//! from a temp config and stops it at the end.
//!
//!   cargo bench --bench verify
// Test and bench code states expectations with unwrap/expect, indexing and casts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pullwarden::config::Config;
use pullwarden::digest::Digest;
use pullwarden::reference::Reference;
use pullwarden::registry::{Credentials, OCI_MANIFEST, RegistryClient};
use pullwarden::verify::sign::{ImageSigner, SignFormat, generate_key, sign_and_push};
use pullwarden::verify::{Verifier, resolve_image};
use sigstore::crypto::SigningScheme;

const RUNS: usize = 200;

struct Registry {
    host: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn registry() -> Registry {
    if let Ok(host) = std::env::var("PW_IT_REGISTRY") {
        return Registry {
            host,
            child: None,
            _dir: None,
        };
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let cfg = dir.path().join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        ),
    )
    .expect("registry config");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install docker-registry, or set PW_IT_REGISTRY)");
    let host = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&host).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Registry {
        host,
        child: Some(child),
        _dir: Some(dir),
    }
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let reg = registry();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = Config::parse(&format!("[registry]\nplain_http = [\"{}\"]\n", reg.host))
        .expect("config")
        .registry;
    let dir = tempfile::tempdir().expect("temp dir");
    let (private, public) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).expect("key");
    let signer = ImageSigner::from_pem(private.as_bytes(), false).expect("signer");
    let pub_path = dir.path().join("k.pub");
    std::fs::write(&pub_path, public).expect("write key");
    let policy = Config::parse(&format!(
        "[[policy]]\nname = \"b\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [{:?}]\n",
        pub_path.display().to_string()
    ))
    .expect("policy")
    .policies
    .remove(0)
    .signatures
    .expect("signatures");
    let verifier = Verifier::load(&policy).expect("verifier");
    let creds = Credentials::default();
    let reference: Reference = format!("{}/bench/signed:v1", reg.host)
        .parse()
        .expect("reference");

    rt.block_on(async {
        // A small image: one layer, a config, a manifest; signed in both formats.
        let c = RegistryClient::new(&cfg).expect("client");
        let layer = Bytes::from_static(b"not really a tarball, never read by verification");
        let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
        let ld = c.push_blob(&reference, &layer, &creds).await.expect("push layer");
        let cd = c.push_blob(&reference, &config, &creds).await.expect("push config");
        let manifest = Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld.to_string(), "size": layer.len()}],
            }))
            .expect("json"),
        );
        c.push_manifest(&reference, "v1", OCI_MANIFEST, &manifest, &creds)
            .await
            .expect("push manifest");
        let d: Digest = Digest::sha256_of(&manifest);
        for f in [SignFormat::Legacy, SignFormat::Bundle] {
            sign_and_push(&c, &reference, &d, &signer, f, &creds)
                .await
                .expect("sign");
        }

        let once = |client: RegistryClient| {
            let verifier = &verifier;
            let reference = &reference;
            let creds = &creds;
            async move {
                let t = Instant::now();
                let subject = resolve_image(&client, reference, creds).await.expect("resolve");
                let report = verifier
                    .verify(&client, reference, &subject, creds)
                    .await
                    .expect("verify");
                let el = t.elapsed();
                assert!(report.satisfied && report.checks.iter().filter(|c| c.verified).count() == 2);
                el
            }
        };
        // Warm-up (page cache, registry's own caches).
        for _ in 0..20 {
            once(RegistryClient::new(&cfg).expect("client")).await;
        }
        let mut cold = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            cold.push(once(RegistryClient::new(&cfg).expect("client")).await);
        }
        let shared = RegistryClient::new(&cfg).expect("client");
        once(shared.clone()).await;
        let mut warm = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            warm.push(once(shared.clone()).await);
        }
        // Baseline: one plain GET of the image manifest with a fresh HTTP client — the
        // registry's own round-trip cost on this machine right now.
        let mut round_trip = Vec::with_capacity(RUNS);
        let url = format!("http://{}/v2/bench/signed/manifests/v1", reg.host);
        for _ in 0..RUNS {
            let http = reqwest::Client::new();
            let t = Instant::now();
            let body = http
                .get(&url)
                .header("accept", OCI_MANIFEST)
                .send()
                .await
                .expect("get")
                .bytes()
                .await
                .expect("body");
            round_trip.push(t.elapsed());
            assert!(!body.is_empty());
        }
        // TCP connect on loopback, to separate it from the cold number.
        let mut connect = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let t = Instant::now();
            let s = tokio::net::TcpStream::connect(&reg.host).await.expect("connect");
            connect.push(t.elapsed());
            drop(s);
        }
        let (cm, c90) = stats(cold);
        let (wm, w90) = stats(warm);
        let (tm, _) = stats(connect);
        let (rm, _) = stats(round_trip);
        println!("verify a signed image (2 signatures: legacy .sig + bundle via referrers tag), {RUNS} runs each");
        println!("  cold (new client, no cache): median {:.2} ms, p90 {:.2} ms", ms(cm), ms(c90));
        println!("  warm (cached manifests):     median {:.2} ms, p90 {:.2} ms", ms(wm), ms(w90));
        println!("  baseline, one manifest GET:  median {:.2} ms (fresh client)", ms(rm));
        println!("  loopback TCP connect:        median {:.3} ms", ms(tm));
        println!(
            "  cold = {:.1} round trips, warm = {:.1} round trips (of the baseline GET)",
            cm.as_secs_f64() / rm.as_secs_f64().max(1e-9),
            wm.as_secs_f64() / rm.as_secs_f64().max(1e-9)
        );
        println!("  cold/warm ratio: {:.2}x", cm.as_secs_f64() / wm.as_secs_f64().max(1e-9));
    });
}
