//! Issue 10 (items 1, 2, 12): CRI clients this project did not write answer through
//! pullwarden exactly as containerd answers them directly. Python `grpcio` (grpc C-core,
//! which sends the percent-encoded socket path as `:authority`), Node `@grpc/grpc-js`,
//! and a raw HTTP/2 client replaying the header sets real stacks send; the clients live
//! in `tests/clients/` and `integration/install-clients.sh` installs their packages.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prost::Message;
use serde_json::{Value, json};

use crate::support::daemon::Daemon;
use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{it_env, unique_repo};

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

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Client {
    Grpcio,
    GrpcJs,
}

/// Runs `args` through a client script and returns its JSON lines.
async fn run(cmd: &str, args: Vec<std::ffi::OsString>) -> Vec<Value> {
    let dir = clients();
    let out = tokio::process::Command::new(cmd)
        .args(&args)
        .env("PYTHONPATH", dir.join("python"))
        .env("NODE_PATH", dir.join("node/node_modules"))
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub(crate) async fn cri_ops(client: Client, socket: &Path, ops: &Value) -> Vec<Value> {
    let target = format!("unix:{}", socket.display());
    let (cmd, file) = match client {
        Client::Grpcio => ("python3", "grpcio_cri.py"),
        Client::GrpcJs => ("node", "grpcjs_cri.js"),
    };
    run(
        cmd,
        vec![script(file).into(), target.into(), ops.to_string().into()],
    )
    .await
}

/// Raw HTTP/2 header-set cases (`tests/clients/raw_h2.py`), keyed by case name.
async fn raw_h2(socket: &Path, extra: &[&str]) -> Vec<(String, Value)> {
    let mut args: Vec<std::ffi::OsString> = vec![script("raw_h2.py").into(), socket.into()];
    args.extend(extra.iter().map(|a| a.into()));
    run("python3", args)
        .await
        .into_iter()
        .map(|v| (v["case"].as_str().unwrap_or_default().to_string(), v))
        .collect()
}

/// A small image with content of its own under a fresh repository.
async fn push_image(prefix: &str, salt: &str) -> (String, Image) {
    let env = it_env();
    let repo = unique_repo(prefix);
    let img = Image::with_platform(
        vec![Layer::from_entries(
            &[
                Entry::dir("etc"),
                Entry::file("etc/client", format!("{salt} {repo}\n")),
            ],
            Compression::Gzip,
        )],
        "amd64",
        salt,
    );
    img.push(&env.registry, &repo, "v1").await;
    (repo, img)
}

/// An image whose manifest resolves but whose layer the registry no longer serves:
/// containerd's own pull fails with `NOT_FOUND: failed to pull and unpack …`.
async fn push_broken_image(prefix: &str) -> String {
    let env = it_env();
    let (repo, img) = push_image(prefix, "broken").await;
    let resp = reqwest::Client::new()
        .delete(format!(
            "http://{}/v2/{repo}/blobs/{}",
            env.registry, img.layers[0].digest
        ))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "deleting a blob: {resp:?}");
    format!("{}/{repo}:v1", env.registry)
}

/// A daemon whose enforcing policy (no signature requirement, a scan that allows these
/// images) covers `it/clientsenf-*`; every other image passes through.
fn enforcing_daemon() -> Daemon {
    Daemon::start(&format!(
        "[[policy]]\nname = \"clients\"\nimages = [\"{}/it/clientsenf-*\"]\nmode = \"enforce\"\n",
        it_env().registry
    ))
}

/// Keeps only the images of `repo` in a ListImages answer, so calls made by tests
/// running at the same time do not show.
fn only_repo(mut v: Value, repo: &str) -> Value {
    if v["op"] == "list"
        && let Some(images) = v["response"]["images"].as_array_mut()
    {
        images.retain(|i| i.to_string().contains(repo));
    }
    v
}

/// The same CRI calls through the proxy and straight to containerd, by one client stack:
/// every code, message and response must be equal, and the calls must have worked.
async fn client_answers_like_containerd(client: Client) {
    let env = it_env();
    let (repo, img) = push_image("clientsenf", &format!("{client:?}")).await;
    let image = format!("{}/{repo}:v1", env.registry);
    let broken = push_broken_image("clientsenf").await;
    let missing = format!("{}/{}:no-such-tag", env.registry, unique_repo("clients"));
    let ops = json!([
        {"op": "version"},
        {"op": "pull", "image": image},
        {"op": "status", "image": image},
        {"op": "list"},
        {"op": "remove", "image": image},
        {"op": "status", "image": image},
        {"op": "pull", "image": missing},
        {"op": "pull", "image": broken},
    ]);
    let d = enforcing_daemon();
    let proxy = cri_ops(client, &d.listen, &ops).await;
    let direct = cri_ops(client, &env.containerd_sock, &ops).await;
    assert_eq!(proxy.len(), 8, "{proxy:?}");
    assert_eq!(direct.len(), 8, "{direct:?}");
    for (p, c) in proxy.iter().zip(&direct) {
        assert_eq!(
            only_repo(p.clone(), &repo),
            only_repo(c.clone(), &repo),
            "{client:?}: through pullwarden vs containerd directly\n{}",
            d.log()
        );
    }
    // And they did what they say: the calls worked, the failures are containerd's own.
    let codes: Vec<&str> = proxy.iter().map(|v| v["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        ["OK", "OK", "OK", "OK", "OK", "OK", "NOT_FOUND", "NOT_FOUND"],
        "{proxy:?}"
    );
    assert_eq!(proxy[0]["response"]["runtime_name"], "containerd");
    assert_eq!(
        proxy[1]["response"]["image_ref"],
        img.config_digest.as_str()
    );
    assert_eq!(
        proxy[2]["response"]["image"]["id"],
        img.config_digest.as_str()
    );
    assert!(proxy[3].to_string().contains(&repo), "{}", proxy[3]);
    assert!(
        proxy[5]["response"]["image"].is_null(),
        "removed image still there: {}",
        proxy[5]
    );
    for failed in &proxy[6..] {
        let details = failed["details"].as_str().unwrap();
        assert!(
            details.starts_with("failed to pull and unpack image"),
            "{failed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcio_client_answers_like_containerd() {
    client_answers_like_containerd(Client::Grpcio).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_js_client_answers_like_containerd() {
    client_answers_like_containerd(Client::GrpcJs).await;
}

/// What a client sees of an answer; `data` only where the call succeeded.
fn observed(v: &Value) -> Value {
    json!({
        "reset": v["reset"], "goaway": v["goaway"], "status": v["status"],
        "grpc_status": v["grpc_status"], "grpc_message": v["grpc_message"],
        "trailers_only": v["trailers_only"], "content_type": v["content_type"],
        "data": v["data"], "error": v["error"],
    })
}

/// Header sets whose answer from pullwarden is not containerd's, and why: an upper-case
/// header name is an HPACK-level error to the h2 crate (a connection error, GOAWAY)
/// where grpc-go resets only the stream; a request without `:path` cannot be forwarded
/// (HTTP/2 requires it), so pullwarden resets it where grpc-go answers
/// `malformed method name`. No gRPC stack sends either.
const STILL_REFUSED: [&str; 2] = ["metadata-uppercase", "path-absent"];

#[tokio::test(flavor = "multi_thread")]
async fn raw_header_sets_answer_like_containerd() {
    let env = it_env();
    let mut d = Daemon::start("");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("metrics = \"\"", &format!("metrics = \"127.0.0.1:{port}\""));
    std::fs::write(&d.config, text).unwrap();
    d.stop();
    d.spawn();

    let proxy = raw_h2(&d.listen, &[]).await;
    let direct = raw_h2(&env.containerd_sock, &[]).await;
    assert!(proxy.len() >= 30, "{proxy:?}");
    assert_eq!(
        proxy.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        direct.iter().map(|(c, _)| c).collect::<Vec<_>>()
    );
    let mut differ = vec![];
    for ((case, p), (_, c)) in proxy.iter().zip(&direct) {
        if STILL_REFUSED.contains(&case.as_str()) {
            continue;
        }
        if observed(p) != observed(c) {
            differ.push(format!(
                "{case}:\n  pullwarden {}\n  containerd {}",
                observed(p),
                observed(c)
            ));
        }
    }
    assert!(differ.is_empty(), "{}\n{}", differ.join("\n"), d.log());
    // Every authority form reached containerd and got its answer.
    for (case, p) in &proxy {
        if case.starts_with("authority-") {
            assert_eq!(p["grpc_status"], 0, "{case}: {p}");
            assert!(p["data"].as_str().unwrap().len() > 10, "{case}: {p}");
        }
    }
    // The still refused ones are refused (never forwarded as something else)…
    for (case, p) in proxy
        .iter()
        .filter(|(c, _)| STILL_REFUSED.contains(&c.as_str()))
    {
        assert!(
            !p["reset"].is_null() || !p["goaway"].is_null(),
            "{case}: {p}"
        );
    }
    // …, logged once per connection (three refused streams on one connection) and
    // counted with the status the client reports.
    let again = raw_h2(&d.listen, &["--case", "path-absent", "--repeat", "3"]).await;
    assert_eq!(again[0].1["reset"], 1, "{:?}", again);
    let log = d.log();
    assert_eq!(
        log.matches("request head that cannot be served").count(),
        2,
        "{log}"
    );
    assert!(log.contains("missing path"), "{log}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pullwarden_cri_calls_total{method=\"_refused\",code=\"Internal\"} 4"),
        "{metrics}"
    );
}

/// Item 12 on the wire: containerd's NOT_FOUND for a pull the gate forwards (buffered,
/// under an enforcing policy) arrives as containerd sent it, a trailers-only answer.
#[tokio::test(flavor = "multi_thread")]
async fn containerd_not_found_is_relayed_trailers_only() {
    let env = it_env();
    let broken = push_broken_image("clientsenf").await;
    let d = enforcing_daemon();
    let msg = k8s_cri::v1::PullImageRequest {
        image: Some(k8s_cri::v1::ImageSpec {
            image: broken.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let args = [
        "--path",
        pullwarden::cri::PULL_IMAGE,
        "--message-hex",
        &hex::encode(&msg),
        "--case",
        "authority-localhost",
        "--case",
        "authority-percent-encoded",
    ];
    let proxy = raw_h2(&d.listen, &args).await;
    let direct = raw_h2(&env.containerd_sock, &args).await;
    assert_eq!(proxy.len(), 2);
    for ((case, p), (_, c)) in proxy.iter().zip(&direct) {
        assert_eq!(observed(p), observed(c), "{case}\n{}", d.log());
        assert_eq!(p["trailers_only"], true, "{case}: {p}");
        assert_eq!(p["grpc_status"], 5, "{case}: {p}");
        assert!(
            p["grpc_message"]
                .as_str()
                .unwrap()
                .replace("%20", " ")
                .contains("failed to pull and unpack image"),
            "{case}: {p}"
        );
    }
}
