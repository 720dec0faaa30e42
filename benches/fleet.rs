//! Fleet scan attestations on the pull path, in one run against the real registry and
//! two real containerd instances (two nodes):
//!   - node A (containerd 1, `[fleet] publish`): cold pull + verify + scan of a signed
//!     image, then the background publish of its scan attestation;
//!   - node B (containerd 2, trusting A's key): the pull of the same image, its layer
//!     scan replaced by A's attestation;
//!   - a bare pull on containerd 2 of an image of the same shape (distinct content), for
//!     what the pull itself costs there.
//!
//! Per pull: wall time, layer bytes read by pullwarden (`pullwarden_scanned_bytes_total`),
//! registry requests sent by pullwarden (`pullwarden_registry_requests_total{client}`)
//! and all requests the registry saw during the pull (its access log, by user agent:
//! containerd's downloads included; node A's may include the start of its publish).
//! Targets: node B reads no layer byte and adds at most one registry round trip: the
//! time it waited for the attestation lookup after containerd's pull
//! (`pullwarden_fleet_lookup_wait_seconds`), in round trips measured in the same run.
//!
//! Needs the real services: `bash integration/bench.sh fleet`.
// Bench code states expectations with unwrap/expect, indexing and casts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{build_image, env, pull_req, push_image, pw};
use k8s_cri::v1::image_service_client::ImageServiceClient;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One node's daemon config: `dir` holds its sockets and state.
fn node_config(dir: &Path, upstream: &Path, metrics: u16, registry: &str, fleet: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"{}\"\nupstream = \"{}\"\nadmin = \"{}\"\nmetrics = \"127.0.0.1:{metrics}\"\nstate_dir = \"{}\"\n\n[registry]\nplain_http = [\"{registry}\"]\n\n[[policy]]\nname = \"bench\"\nimages = [\"{registry}/bench/**\"]\n[policy.signatures]\nkeys = [\"{}\"]\n[policy.scan]\nsecrets = \"deny\"\n\n{fleet}",
            dir.join("cri.sock").display(),
            upstream.display(),
            dir.join("admin.sock").display(),
            dir.join("state").display(),
            dir.parent().unwrap().join("release.pub").display(),
        ),
    )
    .unwrap();
    cfg
}

/// The counters read from a node's metrics endpoint.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    scanned_bytes: u64,
    attested: u64,
    local: u64,
    signature_requests: u64,
    fleet_requests: u64,
    published: u64,
}

impl std::ops::Sub for Counters {
    type Output = Counters;
    fn sub(self, o: Counters) -> Counters {
        Counters {
            scanned_bytes: self.scanned_bytes - o.scanned_bytes,
            attested: self.attested - o.attested,
            local: self.local - o.local,
            signature_requests: self.signature_requests - o.signature_requests,
            fleet_requests: self.fleet_requests - o.fleet_requests,
            published: self.published - o.published,
        }
    }
}

/// A node's metrics exposition.
async fn metrics_text(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series (name with its labels) in `text`.
fn series<T: std::str::FromStr>(text: &str, series: &str) -> T {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {series} on node metrics"))
}

async fn counters(port: u16) -> Counters {
    let text = metrics_text(port).await;
    let get = |name: &str| -> u64 { series(&text, name) };
    Counters {
        scanned_bytes: get("pullwarden_scanned_bytes_total"),
        attested: get("pullwarden_scans_total{source=\"attested\"}"),
        local: get("pullwarden_scans_total{source=\"local\"}"),
        signature_requests: get("pullwarden_registry_requests_total{client=\"signatures\"}"),
        fleet_requests: get("pullwarden_registry_requests_total{client=\"fleet\"}"),
        published: get("pullwarden_fleet_publish_total{result=\"ok\"}"),
    }
}

/// `pullwarden_fleet_lookup_wait_seconds` on a node: (sum in seconds, count).
async fn lookup_wait(port: u16) -> (f64, u64) {
    let text = metrics_text(port).await;
    (
        series(&text, "pullwarden_fleet_lookup_wait_seconds_sum"),
        series(&text, "pullwarden_fleet_lookup_wait_seconds_count"),
    )
}

/// One registry round trip as measured here: the mean of 50 manifest GETs.
async fn registry_round_trip(registry: &str, repo: &str) -> Duration {
    let client = reqwest::Client::new();
    let url = format!("http://{registry}/v2/{repo}/manifests/v1");
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let get = || client.get(&url).header("Accept", accept).send();
    get().await.unwrap().bytes().await.unwrap();
    let t = Instant::now();
    for _ in 0..50 {
        get().await.unwrap().bytes().await.unwrap();
    }
    t.elapsed() / 50
}

/// Requests in the registry's access log: (by pullwarden, by everyone else).
fn registry_log(path: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let access = text
        .lines()
        .filter(|l| l.contains("\" \"") && l.contains(" HTTP/"));
    let (mut pw, mut other) = (0, 0);
    for l in access {
        if l.contains("\"pullwarden/") {
            pw += 1;
        } else {
            other += 1;
        }
    }
    (pw, other)
}

#[derive(Debug, Default)]
struct Side {
    time: Duration,
    delta: Counters,
    log_pw: usize,
    log_other: usize,
}

impl Side {
    fn add(&mut self, time: Duration, delta: Counters, log: ((usize, usize), (usize, usize))) {
        self.time += time;
        self.delta.scanned_bytes += delta.scanned_bytes;
        self.delta.attested += delta.attested;
        self.delta.local += delta.local;
        self.delta.signature_requests += delta.signature_requests;
        self.delta.fleet_requests += delta.fleet_requests;
        self.log_pw += (log.1).0 - (log.0).0;
        self.log_other += (log.1).1 - (log.0).1;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let registry = env("PW_IT_REGISTRY");
    let containerd = PathBuf::from(env("PW_IT_CONTAINERD_SOCK"));
    let containerd2 = PathBuf::from(env("PW_IT_CONTAINERD2_SOCK"));
    let access_log = PathBuf::from(env("PW_IT_DIR")).join("registry/log");
    let dir = tempfile::tempdir().unwrap();
    let run = std::process::id();
    let release = dir.path().join("release");
    let fleet_key = dir.path().join("fleet-a");
    let (port_a, port_b) = (free_port(), free_port());
    let cfg_a = node_config(
        &dir.path().join("a"),
        &containerd,
        port_a,
        &registry,
        &format!(
            "[fleet]\npublish = true\nkey = \"{}\"\n",
            fleet_key.with_extension("key").display()
        ),
    );
    let cfg_b = node_config(
        &dir.path().join("b"),
        &containerd2,
        port_b,
        &registry,
        &format!(
            "[fleet]\ntrusted = [\"{}\"]\n",
            fleet_key.with_extension("pub").display()
        ),
    );
    pw(&["keygen", "--output", release.to_str().unwrap()], &cfg_a);
    pw(&["keygen", "--output", fleet_key.to_str().unwrap()], &cfg_a);
    let listen_a = dir.path().join("a/cri.sock");
    let listen_b = dir.path().join("b/cri.sock");
    let mut daemon_a = common::start_daemon(&cfg_a, &listen_a).await;
    let mut daemon_b = common::start_daemon(&cfg_b, &listen_b).await;
    let mut node_a =
        ImageServiceClient::new(pullwarden::cli::cri::channel(&listen_a).await.unwrap());
    let mut node_b =
        ImageServiceClient::new(pullwarden::cli::cri::channel(&listen_b).await.unwrap());
    let mut bare_b =
        ImageServiceClient::new(pullwarden::cli::cri::channel(&containerd2).await.unwrap());

    let n = 4u64;
    let (mut a, mut b, mut bare) = (Side::default(), Side::default(), Side::default());
    let mut publish_wait = Duration::ZERO;
    let mut bytes = 0usize;
    for i in 0..n {
        let image = build_image(run as u64 * 1000 + i * 2 + 500);
        let other = build_image(run as u64 * 1000 + i * 2 + 501);
        bytes += image.0.iter().map(Vec::len).sum::<usize>();
        let (repo, bare_repo) = (
            format!("bench/fleet-{run}-{i}"),
            format!("bench/fleet-bare-{run}-{i}"),
        );
        push_image(&registry, &repo, &image).await;
        push_image(&registry, &bare_repo, &other).await;
        let reference = format!("{registry}/{repo}:v1");
        pw(
            &[
                "sign",
                "--key",
                release.with_extension("key").to_str().unwrap(),
                &reference,
            ],
            &cfg_a,
        );

        // Node A: cold pull, verify, scan (the publish follows in the background).
        let (c0, l0) = (counters(port_a).await, registry_log(&access_log));
        let t = Instant::now();
        node_a.pull_image(pull_req(&reference)).await.unwrap();
        let took = t.elapsed();
        let (c1, l1) = (counters(port_a).await, registry_log(&access_log));
        a.add(took, c1 - c0, (l0, l1));
        // Wait for the publish: node B must find the attestation.
        let t = Instant::now();
        while counters(port_a).await.published < c0.published + 1 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "node A did not publish"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        publish_wait += t.elapsed();

        // Node B: the same image, scan replaced by node A's attestation.
        let (c0, l0) = (counters(port_b).await, registry_log(&access_log));
        let t = Instant::now();
        node_b.pull_image(pull_req(&reference)).await.unwrap();
        let took = t.elapsed();
        let (c1, l1) = (counters(port_b).await, registry_log(&access_log));
        let d = c1 - c0;
        assert_eq!(d.attested, 1, "node B did not use node A's attestation");
        b.add(took, d, (l0, l1));

        // Containerd 2 alone: an image of the same shape.
        let l0 = registry_log(&access_log);
        let t = Instant::now();
        bare_b
            .pull_image(pull_req(&format!("{registry}/{bare_repo}:v1")))
            .await
            .unwrap();
        let took = t.elapsed();
        bare.add(took, Counters::default(), (l0, registry_log(&access_log)));
    }

    let (wait_sum, wait_count) = lookup_wait(port_b).await;
    let rtt = registry_round_trip(&registry, &format!("bench/fleet-{run}-0")).await;
    let per = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    let avg = |x: u64| x as f64 / n as f64;
    let avgu = |x: usize| x as f64 / n as f64;
    println!(
        "Fleet: {n} signed images of 3 gzip layers (~24 MB uncompressed, {:.1} MB compressed each), per pull",
        bytes as f64 / n as f64 / 1e6
    );
    println!(
        "  {:<44} {:>9} {:>16} {:>20} {:>22}",
        "", "time", "layer bytes read", "pullwarden requests", "registry saw (all)"
    );
    println!(
        "  {:<44} {:>6.1} ms {:>16.0} {:>20.1} {:>22.1}",
        "node A: cold pull + verify + scan",
        per(a.time),
        avg(a.delta.scanned_bytes),
        avg(a.delta.signature_requests),
        avgu(a.log_pw + a.log_other)
    );
    println!(
        "  {:<44} {:>6.1} ms {:>16.0} {:>20.1} {:>22.1}",
        "node B: pull + verify + A's attestation",
        per(b.time),
        avg(b.delta.scanned_bytes),
        avg(b.delta.signature_requests + b.delta.fleet_requests),
        avgu(b.log_pw + b.log_other)
    );
    println!(
        "  {:<44} {:>6.1} ms {:>16} {:>20} {:>22.1}",
        "containerd 2 alone: bare pull",
        per(bare.time),
        "-",
        "-",
        avgu(bare.log_other)
    );
    println!(
        "  node B / node A: {:.2}x the time; node B over a bare pull: {:+.1} ms",
        b.time.as_secs_f64() / a.time.as_secs_f64(),
        per(b.time) - per(bare.time)
    );
    println!(
        "  layer bytes read on node B: {} (target 0)",
        b.delta.scanned_bytes
    );
    println!(
        "  registry requests by pullwarden, per pull: node A {:.1} (signatures), node B {:.1} (signatures {:.1} + attestation lookup {:.1})",
        avg(a.delta.signature_requests),
        avg(b.delta.signature_requests + b.delta.fleet_requests),
        avg(b.delta.signature_requests),
        avg(b.delta.fleet_requests)
    );
    // The lookup (referrers API and fallback tag at once; then the artifact manifest and
    // the envelope at once) starts when the pull is forwarded to containerd: what it
    // adds to the pull is only the wait after containerd answered.
    let wait_ms = wait_sum * 1e3 / wait_count.max(1) as f64;
    let rtt_ms = rtt.as_secs_f64() * 1e3;
    println!(
        "  node B waited {wait_ms:.2} ms per pull for the attestation lookup (checks included) after containerd's pull, over {wait_count} lookups = {:.2} registry round trips of {rtt_ms:.2} ms measured here (target: <= 1 extra round trip)",
        wait_ms / rtt_ms.max(1e-6)
    );
    println!(
        "  node A's publish, after its pull returned: {:.1} ms until counted",
        per(publish_wait)
    );
    let _ = daemon_a.kill();
    let _ = daemon_b.kill();
    let _ = daemon_a.wait();
    let _ = daemon_b.wait();
}
