//! What the service benchmarks share: the harness environment, pushing an image over
//! the distribution API, and starting the daemon binary.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_cri::v1::{ImageSpec, PodSandboxConfig, PodSandboxMetadata, PullImageRequest};
use sha2::Digest as _;

pub fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set: run via integration/bench.sh"))
}

pub fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// An OCI manifest over `config` and `layers` (media type given per layer).
pub fn manifest(config: &[u8], layers: &[(&str, &[u8])]) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": config.len()},
        "layers": layers.iter().map(|(mt, l)| serde_json::json!({"mediaType": mt, "digest": sha(l), "size": l.len()})).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes()
}

/// Monolithic uploads of every blob, then the manifest as `repo:v1`.
pub async fn push(registry: &str, repo: &str, blobs: &[&[u8]], manifest: &[u8]) {
    let http = reqwest::Client::new();
    for blob in blobs {
        let r = http
            .post(format!("http://{registry}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        let url = if loc.starts_with("http") {
            loc
        } else {
            format!("http://{registry}{loc}")
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let r = http
            .put(format!("{url}{sep}digest={}", sha(blob)))
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "blob upload: {}", r.status());
    }
    let r = http
        .put(format!("http://{registry}/v2/{repo}/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "manifest put: {}", r.status());
}

/// Starts `pullwarden serve --config cfg` and waits until `listen` accepts.
pub async fn start_daemon(cfg: &Path, listen: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_pullwarden"))
        .args(["serve", "--config"])
        .arg(cfg)
        .env("PULLWARDEN_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    while std::os::unix::net::UnixStream::connect(listen).is_err() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child
}

/// Times `direct` and `through` alternately, `n` times each after `warmup` rounds, so
/// machine noise hits both sides alike; returns both samples sorted.
#[macro_export]
macro_rules! interleaved {
    ($warmup:expr, $n:expr, $direct:expr, $through:expr) => {{
        let (mut d, mut p) = (Vec::with_capacity($n), Vec::with_capacity($n));
        for i in 0..$warmup + $n {
            let t = std::time::Instant::now();
            $direct;
            let td = t.elapsed();
            let t = std::time::Instant::now();
            $through;
            let tp = t.elapsed();
            if i >= $warmup {
                d.push(td);
                p.push(tp);
            }
        }
        d.sort();
        p.sort();
        (d, p)
    }};
}

fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

/// Prints p50/p90/p99 of both sides and what pullwarden adds, in µs.
pub fn report(title: &str, direct: &[Duration], through: &[Duration], target: &str) {
    let q = |s: &[Duration]| [0.5, 0.9, 0.99].map(|p| percentile_us(s, p));
    let (d, p) = (q(direct), q(through));
    println!("{title}, {} calls each, interleaved", direct.len());
    println!(
        "  direct to containerd: p50 {:>9.1} µs   p90 {:>9.1} µs   p99 {:>9.1} µs",
        d[0], d[1], d[2]
    );
    println!(
        "  through pullwarden:   p50 {:>9.1} µs   p90 {:>9.1} µs   p99 {:>9.1} µs",
        p[0], p[1], p[2]
    );
    println!(
        "  added:                p50 {:>9.1} µs   p90 {:>9.1} µs   p99 {:>9.1} µs   (ratio p50 {:.2}x{target})",
        p[0] - d[0],
        p[1] - d[1],
        p[2] - d[2],
        p[0] / d[0]
    );
}

/// Text-like content that compresses like real files (about 3:1).
pub fn filler(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "lib", "usr", "share", "config", "value", "enabled", "path", "error", "return", "static",
        "const", "struct", "import", "module", "package", "version", "debian", "python", "node",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        out.push(if x.is_multiple_of(11) { b'\n' } else { b' ' });
        if x.is_multiple_of(5) {
            out.extend_from_slice(format!("{}", x % 100_000).as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Three gzip layers, ~24 MB uncompressed, 600 files: an OS-like base with a dpkg
/// database, a library layer, an app layer.
pub fn build_image(salt: u64) -> (Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (l, files) in [(0u64, 300usize), (1, 200), (2, 100)] {
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            tar.append_data(&mut h, path, data).unwrap();
        };
        if l == 0 {
            add(
                "etc/os-release",
                b"ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
            );
            let mut status = String::new();
            for p in 0..90 {
                status.push_str(&format!(
                    "Package: pkg{p}\nStatus: install ok installed\nVersion: 1.{p}-{salt}\nArchitecture: amd64\n\n"
                ));
            }
            add("var/lib/dpkg/status", status.as_bytes());
        }
        for f in 0..files {
            let data = filler(salt * 1_000_000 + l * 10_000 + f as u64, 40_000);
            add(&format!("layer{l}/dir{}/file{f}.txt", f % 17), &data);
        }
        let raw = tar.into_inner().unwrap();
        diff_ids.push(sha(&raw));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        layers.push(gz.finish().unwrap());
    }
    let config = serde_json::json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":diff_ids}}).to_string().into_bytes();
    let layer_refs: Vec<(&str, &[u8])> = layers
        .iter()
        .map(|l| ("application/vnd.oci.image.layer.v1.tar+gzip", l.as_slice()))
        .collect();
    let manifest = manifest(&config, &layer_refs);
    (layers, config, manifest)
}

pub async fn push_image(registry: &str, repo: &str, image: &(Vec<Vec<u8>>, Vec<u8>, Vec<u8>)) {
    let (layers, config, manifest) = image;
    let mut blobs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    blobs.push(config);
    push(registry, repo, &blobs, manifest).await;
}

pub fn pull_req(image: &str) -> PullImageRequest {
    PullImageRequest {
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        auth: None,
        sandbox_config: Some(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "bench".into(),
                uid: "bench".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            ..Default::default()
        }),
    }
}

/// Runs the pullwarden CLI with `PULLWARDEN_CONFIG=config`; panics unless it succeeds.
pub fn pw(args: &[&str], config: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_pullwarden"))
        .args(args)
        .env("PULLWARDEN_CONFIG", config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
