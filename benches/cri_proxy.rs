//! ImageStatus latency through pullwarden vs straight to containerd, measured in the
//! same run with interleaved calls (so machine noise hits both alike). Needs the real
//! services: `bash integration/bench.sh cri_proxy`.
// Test and bench code states expectations with unwrap/expect, indexing and casts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::path::PathBuf;

mod common;

use common::env;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ImageSpec, ImageStatusRequest, PodSandboxConfig, PullImageRequest, VersionRequest,
};

// The client is single-threaded, like one kubelet connection waiting on its call: a
// multi-threaded tokio client adds its own cross-thread wake-ups to both sides, which
// on this 2-vCPU VM blurs the difference being measured.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let registry = env("PW_IT_REGISTRY");
    let containerd = PathBuf::from(env("PW_IT_CONTAINERD_SOCK"));
    let dir = tempfile::tempdir().unwrap();
    // The daemon as configured by default, and one that never busy-polls (for the
    // comparison the README records: what the poll-before-sleep is worth).
    let (mut daemon, listen) = start(dir.path(), "default", &containerd, None).await;
    let (mut sleeper, sleeper_listen) =
        start(dir.path(), "sleeping", &containerd, Some("0s")).await;

    let image = pullwarden_bench_image(&registry).await;
    let mut direct =
        ImageServiceClient::new(pullwarden::cli::cri::channel(&containerd).await.unwrap());
    let mut proxy = ImageServiceClient::new(pullwarden::cli::cri::channel(&listen).await.unwrap());
    let mut sleeping = ImageServiceClient::new(
        pullwarden::cli::cri::channel(&sleeper_listen)
            .await
            .unwrap(),
    );
    direct
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: Some(PodSandboxConfig::default()),
        })
        .await
        .expect("pull");
    let req = ImageStatusRequest {
        image: Some(ImageSpec {
            image: image.clone(),
            ..Default::default()
        }),
        verbose: false,
    };

    let n = 3000;
    let (d, p) = interleaved!(
        200,
        n,
        direct.image_status(req.clone()).await.unwrap(),
        proxy.image_status(req.clone()).await.unwrap()
    );
    common::report("ImageStatus", &d, &p, "; target: <= 100 µs added at p50");
    let (d, p) = interleaved!(
        200,
        n,
        direct.image_status(req.clone()).await.unwrap(),
        sleeping.image_status(req.clone()).await.unwrap()
    );
    common::report(
        "ImageStatus with upstream_busy_poll = \"0s\" (the daemon sleeps while containerd answers)",
        &d,
        &p,
        "",
    );

    // The same hop for a call pullwarden does not intercept (RuntimeService/Version):
    // what the bare HTTP/2 forward costs, without decoding anything.
    let mut rt_direct =
        RuntimeServiceClient::new(pullwarden::cli::cri::channel(&containerd).await.unwrap());
    let mut rt_proxy =
        RuntimeServiceClient::new(pullwarden::cli::cri::channel(&listen).await.unwrap());
    let v = VersionRequest {
        version: "v1".into(),
    };
    let (d, p) = interleaved!(
        200,
        n,
        rt_direct.version(v.clone()).await.unwrap(),
        rt_proxy.version(v.clone()).await.unwrap()
    );
    common::report(
        "RuntimeService/Version (forwarded without interception)",
        &d,
        &p,
        "",
    );

    // The ImageStatus hop again, driven by Python grpcio (grpc C-core, which sends the
    // percent-encoded socket path as :authority): a client stack of its own, with its
    // own per-call cost, so the ratio is read against its own direct baseline.
    let (d, p) = grpcio_image_status(&containerd, &listen, &image, 200, n);
    common::report(
        "ImageStatus, Python grpcio client",
        &d,
        &p,
        "; target: <= 100 µs added at p50",
    );
    for d in [&mut daemon, &mut sleeper] {
        let _ = d.kill();
        let _ = d.wait();
    }
}

/// Starts a daemon in `dir/name` in front of `containerd`, with no policy.
async fn start(
    dir: &std::path::Path,
    name: &str,
    containerd: &std::path::Path,
    busy_poll: Option<&str>,
) -> (std::process::Child, PathBuf) {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let listen = dir.join("cri.sock");
    let cfg = dir.join("c.toml");
    let mut text = format!(
        "[server]\nlisten = \"{}\"\nupstream = \"{}\"\nadmin = \"{}\"\nmetrics = \"\"\nstate_dir = \"{}\"\n",
        listen.display(),
        containerd.display(),
        dir.join("admin.sock").display(),
        dir.join("state").display()
    );
    if let Some(b) = busy_poll {
        text.push_str(&format!("upstream_busy_poll = \"{b}\"\n"));
    }
    std::fs::write(&cfg, text).unwrap();
    (common::start_daemon(&cfg, &listen).await, listen)
}

/// Pushes a small one-layer image with the registry API and returns its reference.
async fn pullwarden_bench_image(registry: &str) -> String {
    let repo = format!("bench/status-{}", std::process::id());
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    tar.append_data(&mut h, "hello", &b"hi\n"[..]).unwrap();
    let layer = tar.into_inner().unwrap();
    let config = serde_json::json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[common::sha(&layer)]}}).to_string();
    let manifest = common::manifest(
        config.as_bytes(),
        &[("application/vnd.oci.image.layer.v1.tar", &layer)],
    );
    common::push(registry, &repo, &[&layer, config.as_bytes()], &manifest).await;
    format!("{registry}/{repo}:v1")
}

/// Runs `tests/clients/grpcio_bench.py` (grpcio from `integration/install-clients.sh`,
/// which `integration/bench.sh` runs) and returns the sorted latencies of both sides.
fn grpcio_image_status(
    direct: &std::path::Path,
    proxy: &std::path::Path,
    image: &str,
    warmup: usize,
    n: usize,
) -> (Vec<std::time::Duration>, Vec<std::time::Duration>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let clients = std::env::var_os("PW_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/clients"));
    let out = std::process::Command::new("python3")
        .arg(root.join("tests/clients/grpcio_bench.py"))
        .args([direct.as_os_str(), proxy.as_os_str()])
        .args([image.to_string(), warmup.to_string(), n.to_string()])
        .env("PYTHONPATH", clients.join("python"))
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "grpcio_bench.py failed (run integration/install-clients.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("grpcio_bench.py output");
    let side = |k: &str| {
        let mut s: Vec<std::time::Duration> = v[k]
            .as_array()
            .expect("latencies")
            .iter()
            .map(|ns| std::time::Duration::from_nanos(ns.as_u64().unwrap_or(0)))
            .collect();
        s.sort();
        s
    };
    (side("direct"), side("proxy"))
}
