//! The gate on the pull path, measured against containerd alone in the same run:
//!   1. PullImage of a present, already-allowed image: through pullwarden vs direct
//!      (interleaved; target ≤ 1 ms added at p50);
//!   2. cold pulls: verify + pull + scan through pullwarden vs a bare pull of images of
//!      the same shape and size (distinct content, so neither side finds blobs cached).
//!
//! Needs the real services: `bash integration/bench.sh gate`.
// Test and bench code states expectations with unwrap/expect, indexing and casts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;

use common::{build_image, env, pull_req, push_image as push, pw};
use k8s_cri::v1::ImageSpec;
use k8s_cri::v1::image_service_client::ImageServiceClient;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let registry = env("PW_IT_REGISTRY");
    let containerd = PathBuf::from(env("PW_IT_CONTAINERD_SOCK"));
    let dir = tempfile::tempdir().unwrap();
    let run = std::process::id();
    let key = dir.path().join("bench");
    let cfg = dir.path().join("c.toml");
    let listen = dir.path().join("cri.sock");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"{}\"\nupstream = \"{}\"\nadmin = \"{}\"\nmetrics = \"\"\nstate_dir = \"{}\"\n\n[registry]\nplain_http = [\"{registry}\"]\n\n[[policy]]\nname = \"bench\"\nimages = [\"{registry}/bench/**\"]\n[policy.signatures]\nkeys = [\"{}\"]\n",
            listen.display(),
            containerd.display(),
            dir.path().join("admin.sock").display(),
            dir.path().join("state").display(),
            key.with_extension("pub").display()
        ),
    )
    .unwrap();
    pw(&["keygen", "--output", key.to_str().unwrap()], &cfg);
    let mut daemon = common::start_daemon(&cfg, &listen).await;
    let mut direct =
        ImageServiceClient::new(pullwarden::cli::cri::channel(&containerd).await.unwrap());
    let mut proxy = ImageServiceClient::new(pullwarden::cli::cri::channel(&listen).await.unwrap());

    // --- cold pulls: N images each way, distinct content.
    let n = 4u64;
    let mut bare = Duration::ZERO;
    let mut gated = Duration::ZERO;
    let mut bytes = 0usize;
    let mut gated_refs = Vec::new();
    for i in 0..n {
        let a = build_image(run as u64 * 100 + i * 2);
        let b = build_image(run as u64 * 100 + i * 2 + 1);
        bytes += b.0.iter().map(|l| l.len()).sum::<usize>();
        let (ra, rb) = (
            format!("bench/bare-{run}-{i}"),
            format!("bench/gated-{run}-{i}"),
        );
        push(&registry, &ra, &a).await;
        push(&registry, &rb, &b).await;
        let gated_ref = format!("{registry}/{rb}:v1");
        pw(
            &[
                "sign",
                "--key",
                key.with_extension("key").to_str().unwrap(),
                &gated_ref,
            ],
            &cfg,
        );
        let t = Instant::now();
        direct
            .pull_image(pull_req(&format!("{registry}/{ra}:v1")))
            .await
            .unwrap();
        bare += t.elapsed();
        let t = Instant::now();
        proxy.pull_image(pull_req(&gated_ref)).await.unwrap();
        gated += t.elapsed();
        gated_refs.push(gated_ref);
    }
    println!(
        "Cold pulls, {n} images of 3 gzip layers (~24 MB uncompressed, {:.1} MB compressed each)",
        bytes as f64 / n as f64 / 1e6
    );
    println!(
        "  bare pull (containerd):               {:>8.1} ms per image",
        bare.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "  pull + verify + scan (pullwarden):    {:>8.1} ms per image",
        gated.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "  ratio:                                {:>8.2}x",
        gated.as_secs_f64() / bare.as_secs_f64()
    );

    // --- present and allowed: PullImage again, interleaved.
    let image = &gated_refs[0];
    let rounds = 400;
    let (d, p) = interleaved!(
        30,
        rounds,
        direct.pull_image(pull_req(image)).await.unwrap(),
        proxy.pull_image(pull_req(image)).await.unwrap()
    );
    common::report(
        "PullImage of a present, allowed image",
        &d,
        &p,
        "; target: <= 1 ms added at p50",
    );

    // --- ImageStatus of that allowed image under the enforcing policy: containerd's
    // answer plus the verdict lookup that decides present/absent.
    let status = k8s_cri::v1::ImageStatusRequest {
        image: Some(ImageSpec {
            image: image.clone(),
            ..Default::default()
        }),
        verbose: false,
    };
    let a = direct
        .image_status(status.clone())
        .await
        .unwrap()
        .into_inner();
    let b = proxy
        .image_status(status.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        a, b,
        "an allowed image must look the same through pullwarden"
    );
    let (d, p) = interleaved!(
        100,
        2000,
        direct.image_status(status.clone()).await.unwrap(),
        proxy.image_status(status.clone()).await.unwrap()
    );
    common::report(
        "ImageStatus of an allowed image under an enforcing policy",
        &d,
        &p,
        "",
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}
