//! What the service benchmarks share: the harness environment, pushing an image over
//! the distribution API, and starting the daemon binary.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
