//! Issue 2: the proxy is invisible. Every call through pullwarden answers exactly as
//! containerd answers directly (real containerd, real registry), and faults (bad frames,
//! upstream down, client gone, bad config) get clear errors while the daemon stays up.

use std::time::Duration;

use bytes::Bytes;
use k8s_cri::v1::{
    ImageFsInfoRequest, ImageStatusRequest, ListImagesRequest, RemoveImageRequest, StatusRequest,
    VersionRequest,
};

use crate::support::cri::{images, pull_request, runtime, spec};
use crate::support::daemon::Daemon;
use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{it_env, unique_repo};

async fn push_small_image(tag_salt: &str) -> (String, Image) {
    let env = it_env();
    let repo = unique_repo("proxy");
    let img = Image::with_platform(
        vec![
            Layer::from_entries(
                &[Entry::dir("etc"), Entry::file("etc/hello", "hi\n")],
                Compression::Gzip,
            ),
            Layer::from_entries(
                &[Entry::file("app/run.sh", "#!/bin/sh\necho run\n")],
                Compression::Zstd,
            ),
        ],
        "amd64",
        tag_salt,
    );
    img.push(&env.registry, &repo, "v1").await;
    (format!("{}/{repo}:v1", env.registry), img)
}

/// A raw unary gRPC call (framed bytes in, status + body out) through pullwarden's own
/// HTTP/2 upstream client, so tests can send what no generated client would.
async fn raw_call(
    socket: &std::path::Path,
    path: &str,
    body: Bytes,
) -> (tonic::Code, String, Bytes) {
    use pullwarden::cri::{Upstream, grpc};
    let up = Upstream::new(socket);
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(grpc::full_body(body, None))
        .unwrap();
    let resp = up.send(req).await.expect("transport");
    let (parts, body) = resp.into_parts();
    let (data, trailers) = grpc::collect_limited(body, 1 << 20).await.unwrap();
    (
        grpc::grpc_code(&parts.headers, trailers.as_ref()),
        grpc::grpc_message(&parts.headers, trailers.as_ref()),
        data,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn image_service_answers_like_containerd() {
    let env = it_env();
    let (image, pushed) = push_small_image("image-service").await;
    let d = Daemon::start("");
    let mut proxy = images(&d.listen).await;
    let mut direct = images(&env.containerd_sock).await;

    // PullImage through the proxy stores the image in containerd.
    let pulled = proxy
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap()
        .into_inner();
    assert!(pulled.image_ref.starts_with("sha256:"), "{pulled:?}");
    assert_eq!(pulled.image_ref, pushed.config_digest);

    // ImageStatus: same answer both ways, and it names the manifest digest we pushed.
    let status_req = ImageStatusRequest {
        image: spec(&image),
        verbose: true,
    };
    let via = proxy
        .image_status(status_req.clone())
        .await
        .unwrap()
        .into_inner();
    let dir = direct.image_status(status_req).await.unwrap().into_inner();
    assert_eq!(via, dir);
    let img = via.image.expect("image present");
    assert!(
        img.repo_digests.iter().any(|d| d.ends_with(&pushed.digest)),
        "{:?}",
        img.repo_digests
    );

    // ListImages: containerd lists in map order, and other tests add and remove
    // images concurrently, so compare sorted lists and retry until a quiet moment.
    let mut same = false;
    for _ in 0..20 {
        let mut via = proxy
            .list_images(ListImagesRequest { filter: None })
            .await
            .unwrap()
            .into_inner();
        let mut dir = direct
            .list_images(ListImagesRequest { filter: None })
            .await
            .unwrap()
            .into_inner();
        via.images.sort_by(|a, b| a.id.cmp(&b.id));
        dir.images.sort_by(|a, b| a.id.cmp(&b.id));
        assert!(via.images.iter().any(|i| i.repo_tags.contains(&image)));
        if via == dir {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(same, "ListImages differs through the proxy");
    let strip = |mut r: k8s_cri::v1::ImageFsInfoResponse| {
        for fs in r
            .image_filesystems
            .iter_mut()
            .chain(r.container_filesystems.iter_mut())
        {
            fs.timestamp = 0;
        }
        r
    };
    let via = strip(
        proxy
            .image_fs_info(ImageFsInfoRequest {})
            .await
            .unwrap()
            .into_inner(),
    );
    let dir = strip(
        direct
            .image_fs_info(ImageFsInfoRequest {})
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(via, dir);

    // Errors pass through with the same code and message.
    let missing = format!("{}/{}:nope", env.registry, unique_repo("missing"));
    let e1 = proxy
        .pull_image(pull_request(&missing, "default"))
        .await
        .unwrap_err();
    let e2 = direct
        .pull_image(pull_request(&missing, "default"))
        .await
        .unwrap_err();
    assert_eq!(e1.code(), e2.code());
    assert_eq!(e1.message(), e2.message());

    // RemoveImage through the proxy removes it in containerd.
    proxy
        .remove_image(RemoveImageRequest {
            image: spec(&image),
        })
        .await
        .unwrap();
    let after = direct
        .image_status(ImageStatusRequest {
            image: spec(&image),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(after.image.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_service_and_unknown_methods_pass_through() {
    let env = it_env();
    let d = Daemon::start("");
    let mut proxy = runtime(&d.listen).await;
    let mut direct = runtime(&env.containerd_sock).await;
    let v = VersionRequest {
        version: "v1".into(),
    };
    assert_eq!(
        proxy.version(v.clone()).await.unwrap().into_inner(),
        direct.version(v).await.unwrap().into_inner()
    );
    let s = StatusRequest { verbose: false };
    let via = proxy.status(s).await.unwrap().into_inner();
    let dir = direct.status(s).await.unwrap().into_inner();
    assert_eq!(via, dir);

    // A method this build of the CRI protos does not know (a newer kubelet's) is still
    // forwarded: containerd's own answer comes back, not one of ours.
    let path = "/runtime.v1.ImageService/StreamImagesFromTheFuture";
    let empty = pullwarden::cri::grpc::frame(b"");
    let via = raw_call(&d.listen, path, empty.clone()).await;
    let dir = raw_call(&env.containerd_sock, path, empty).await;
    assert_eq!(via.0, tonic::Code::Unimplemented);
    assert_eq!(via, dir);

    // Unknown protobuf fields reach containerd untouched: a PullImage-shaped message is
    // not needed; ImageStatus with an extra field 99 decodes the same on both sides.
    let mut msg = prost::Message::encode_to_vec(&ImageStatusRequest {
        image: spec("docker.io/library/never-pulled:latest"),
        verbose: false,
    });
    msg.extend_from_slice(&[0x9a, 0x06, 0x03, b'x', b'y', b'z']); // field 99, bytes "xyz"
    let framed = pullwarden::cri::grpc::frame(&msg);
    let via = raw_call(&d.listen, pullwarden::cri::IMAGE_STATUS, framed.clone()).await;
    let dir = raw_call(&env.containerd_sock, pullwarden::cri::IMAGE_STATUS, framed).await;
    assert_eq!(via, dir);
    assert_eq!(via.0, tonic::Code::Ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_get_invalid_argument_and_the_daemon_stays_up() {
    let d = Daemon::start("");
    let cases: Vec<Bytes> = vec![
        Bytes::from_static(&[0, 0, 0]),
        Bytes::from_static(&[0, 0, 0, 0, 50, 1, 2]),
        Bytes::from_static(&[1, 0, 0, 0, 1, 7]),
        Bytes::from_static(&[0, 0x7f, 0xff, 0xff, 0xff]),
        // A valid frame whose protobuf is garbage.
        pullwarden::cri::grpc::frame(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    ];
    for body in cases {
        let (code, msg, _) = raw_call(&d.listen, pullwarden::cri::PULL_IMAGE, body.clone()).await;
        assert_eq!(code, tonic::Code::InvalidArgument, "{body:?}: {msg}");
        assert!(msg.starts_with("pullwarden: malformed"), "{msg}");
    }
    let mut rt = runtime(&d.listen).await;
    rt.version(VersionRequest {
        version: "v1".into(),
    })
    .await
    .unwrap();
}

/// Bytes that are not HTTP/2, or HTTP/2 that breaks the protocol, end that connection
/// (with a GOAWAY where the preface was valid) and nothing else; an idle connection that
/// never speaks holds nothing up either.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_http2_ends_only_that_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
    let d = Daemon::start("");
    let idle = tokio::net::UnixStream::connect(&d.listen).await.unwrap();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("not HTTP/2", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        (
            "random bytes",
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
    ];
    let mut bad_hpack = PREFACE.to_vec();
    bad_hpack.extend_from_slice(&settings);
    // HEADERS on stream 1, END_HEADERS, whose block indexes a table entry that does not exist.
    bad_hpack.extend_from_slice(&[0, 0, 2, 1, 4, 0, 0, 0, 1, 0xff, 0xff]);
    cases.push(("undecodable header block", bad_hpack));
    let mut data_on_zero = PREFACE.to_vec();
    data_on_zero.extend_from_slice(&settings);
    data_on_zero.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41]);
    cases.push(("DATA on stream 0", data_on_zero));
    let mut huge_frame = PREFACE.to_vec();
    huge_frame.extend_from_slice(&settings);
    huge_frame.extend_from_slice(&[0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1]);
    cases.push(("frame over the size limit", huge_frame));
    for (what, bytes) in cases {
        let mut s = tokio::net::UnixStream::connect(&d.listen).await.unwrap();
        let _ = s.write_all(&bytes).await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "{what}: the connection was left open");
        if bytes.starts_with(PREFACE) {
            // Somewhere in what came back: a GOAWAY frame (type 7).
            let mut rest = &got[..];
            let mut goaway = false;
            while rest.len() >= 9 {
                let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
                goaway |= rest[3] == 7;
                rest = &rest[(9 + len).min(rest.len())..];
            }
            assert!(goaway, "{what}: no GOAWAY in {got:?}");
        }
    }
    // A header block far over the limit: that call fails, the connection's others work.
    let mut rt = runtime(&d.listen).await;
    let mut huge = tonic::Request::new(VersionRequest {
        version: "v1".into(),
    });
    huge.metadata_mut()
        .insert("x-padding", "a".repeat(200 << 10).parse().unwrap());
    assert!(
        rt.version(huge).await.is_err(),
        "a 200 KiB header block was accepted"
    );
    let mut rt = runtime(&d.listen).await;
    rt.version(VersionRequest {
        version: "v1".into(),
    })
    .await
    .unwrap();
    drop(idle);
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_down_is_unavailable_and_the_proxy_reconnects() {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = tmp.path().join("later.sock");
    let d = Daemon::start_with_upstream(&upstream, "");
    let mut rt = runtime(&d.listen).await;
    let err = rt
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(
        err.message().contains(&upstream.display().to_string()),
        "{}",
        err.message()
    );

    // Bring an upstream up at that path (a second pullwarden in front of containerd)
    // and the first one heals without a restart.
    let mut second = Daemon::start("");
    std::os::unix::fs::symlink(&second.listen, &upstream).unwrap();
    let v = rt
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!v.runtime_name.is_empty());

    // Kill the upstream: UNAVAILABLE again, never a hang or a crash.
    second.stop();
    let err = rt
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    second.spawn();
    let mut ok = false;
    for _ in 0..50 {
        if rt
            .version(VersionRequest {
                version: "v1".into(),
            })
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "proxy did not reconnect: {}", d.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn client_gone_mid_pull_leaves_the_daemon_serving() {
    let (image, _) = push_small_image("disconnect").await;
    let d = Daemon::start("");
    {
        let mut proxy = images(&d.listen).await;
        let mut req = tonic::Request::new(pull_request(&image, "default"));
        req.set_timeout(Duration::from_millis(1));
        let _ = proxy.pull_image(req).await; // cancelled (deadline) mid-call, or done: either is fine
    }
    let mut rt = runtime(&d.listen).await;
    rt.version(VersionRequest {
        version: "v1".into(),
    })
    .await
    .unwrap();
    let mut proxy = images(&d.listen).await;
    proxy
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_with_a_bad_config_keeps_the_old_one_and_sigterm_drains() {
    use nix::sys::signal::Signal;
    let mut d = Daemon::start("");
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, "[server\nbroken").unwrap();
    d.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    let mut rt = runtime(&d.listen).await;
    rt.version(VersionRequest {
        version: "v1".into(),
    })
    .await
    .unwrap();
    assert!(d.log().contains("reload rejected"), "{}", d.log());

    std::fs::write(&d.config, good).unwrap();
    d.signal(Signal::SIGHUP);
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.log().contains("configuration reloaded"), "{}", d.log());

    let status = d.stop();
    assert!(status.success(), "{status}");
    assert!(!d.listen.exists(), "socket left behind");
}

#[test]
fn sockets_stale_busy_and_foreign_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    // Stale socket file: replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let l = pullwarden::cri::server::bind_socket_std(&path, "root").unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // Live socket: refused.
    let e = pullwarden::cri::server::bind_socket_std(&path, "root").unwrap_err();
    assert!(e.to_string().contains("in use"), "{e}");
    drop(l);
    // A regular file: never deleted.
    let file = dir.path().join("file");
    std::fs::write(&file, "keep me").unwrap();
    let e = pullwarden::cri::server::bind_socket_std(&file, "root").unwrap_err();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    // Missing directory and unknown group: clear errors.
    let e = pullwarden::cri::server::bind_socket_std(&dir.path().join("no/such/x.sock"), "root")
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e =
        pullwarden::cri::server::bind_socket_std(&dir.path().join("g.sock"), "no-such-group-pw")
            .unwrap_err();
    assert!(e.to_string().contains("no-such-group-pw"), "{e}");
}

#[test]
fn bad_config_exits_64_naming_key_and_file_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    let sock = dir.path().join("cri.sock");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"{}\"\n[registry]\ntimeout = \"forever\"\n",
            sock.display()
        ),
    )
    .unwrap();
    for args in [
        vec!["serve", "--config"],
        vec!["policy", "check", "--config"],
    ] {
        let out = std::process::Command::new(crate::support::bin())
            .args(&args)
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("bad.toml") && err.contains("registry.timeout"),
            "{err}"
        );
        assert!(!sock.exists());
    }
    std::fs::write(&cfg, "[server\n").unwrap();
    let out = std::process::Command::new(crate::support::bin())
        .args(["policy", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not parse"));

    // A valid config prints the effective configuration with defaults filled in.
    std::fs::write(
        &cfg,
        "[[policy]]\nname = \"all\"\nimages = [\"**\"]\nmode = \"audit\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::support::bin())
        .args(["policy", "check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "listen = \"/run/pullwarden/cri.sock\"",
        "containerd_namespace = \"k8s.io\"",
        "mode = \"audit\"",
        "max_severity = \"high\"",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
}

#[test]
fn notifies_systemd_when_ready() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let rx = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        Daemon::server_section(dir.path(), &dir.path().join("nothing.sock")),
    )
    .unwrap();
    let mut child = std::process::Command::new(crate::support::bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    // Ready only once the socket accepts connections.
    assert!(msg.contains("READY=1"), "{msg}");
    assert!(std::os::unix::net::UnixStream::connect(dir.path().join("cri.sock")).is_ok());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

/// containerd 1.6 has no server-streaming CRI method (GetContainerEvents came later),
/// so a fake HTTP/2 upstream sends a stream of events slowly: the first must reach the
/// client through the proxy before the last is even sent, and the trailers must follow.
#[tokio::test(flavor = "multi_thread")]
async fn server_streams_are_forwarded_as_they_flow() {
    use k8s_cri::v1::ContainerEventResponse;
    use prost::Message;

    let tmp = tempfile::tempdir().unwrap();
    let upstream = tmp.path().join("fake.sock");
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    fake_upstream(&upstream, move |_req, tx| {
        let sent_tx = sent_tx.clone();
        async move {
            for i in 0..3 {
                let ev = ContainerEventResponse {
                    container_id: format!("c{i}"),
                    ..Default::default()
                };
                let _ = tx
                    .send(Ok(http_body::Frame::data(pullwarden::cri::grpc::frame(
                        &ev.encode_to_vec(),
                    ))))
                    .await;
                let _ = sent_tx.send(i);
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });

    let d = Daemon::start_with_upstream(&upstream, "");
    let mut rt = runtime(&d.listen).await;
    let mut events = rt
        .get_container_events(k8s_cri::v1::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let first = events.message().await.unwrap().unwrap();
    assert_eq!(first.container_id, "c0");
    // The upstream has not yet sent its last event when the first one arrived here.
    let mut sent = Vec::new();
    while let Ok(i) = sent_rx.try_recv() {
        sent.push(i);
    }
    assert!(!sent.contains(&2), "proxy buffered the stream: {sent:?}");
    let ids: Vec<String> = vec![
        events.message().await.unwrap().unwrap().container_id,
        events.message().await.unwrap().unwrap().container_id,
    ];
    assert_eq!(ids, ["c1", "c2"]);
    assert!(
        events.message().await.unwrap().is_none(),
        "stream ends with OK trailers"
    );
}

/// An upstream that dies mid-stream: the client gets `UNAVAILABLE` naming the socket in
/// proper gRPC trailers (not a bare reset), and the daemon keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_dying_mid_stream_ends_the_call_with_unavailable() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use k8s_cri::v1::ContainerEventResponse;
    use prost::Message;

    let tmp = tempfile::tempdir().unwrap();
    let upstream = tmp.path().join("dying.sock");
    let listener = tokio::net::UnixListener::bind(&upstream).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let kill_tx = std::sync::Mutex::new(Some(kill_tx));
        let svc = hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
            let kill = kill_tx.lock().unwrap().take();
            async move {
                let (tx, rx) = tokio::sync::mpsc::channel::<
                    Result<http_body::Frame<Bytes>, std::convert::Infallible>,
                >(1);
                tokio::spawn(async move {
                    let ev = ContainerEventResponse {
                        container_id: "c0".into(),
                        ..Default::default()
                    };
                    let _ = tx
                        .send(Ok(http_body::Frame::data(pullwarden::cri::grpc::frame(
                            &ev.encode_to_vec(),
                        ))))
                        .await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Some(k) = kill {
                        let _ = k.send(());
                    }
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(tx);
                });
                let body = http_body_util::StreamBody::new(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                );
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(body)
                        .unwrap(),
                )
            }
        });
        let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), svc);
        tokio::select! {
            _ = conn => {}
            _ = kill_rx => {} // dropping the connection mid-stream: the upstream "dies"
        }
    });

    let d = Daemon::start_with_upstream(&upstream, "");
    let mut rt = runtime(&d.listen).await;
    let mut events = rt
        .get_container_events(k8s_cri::v1::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.message().await.unwrap().unwrap().container_id, "c0");
    let err = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("no hang")
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("failed mid-call") && err.message().contains("dying.sock"),
        "{}",
        err.message()
    );
    // Still serving (the next call finds the upstream gone: UNAVAILABLE, promptly).
    let e = rt
        .version(VersionRequest {
            version: "v1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert!(std::os::unix::net::UnixStream::connect(&d.listen).is_ok());
}

/// Large bodies in both directions at once, through a client with a small flow-control
/// window: every byte arrives, in order, and the trailers follow (the proxy's relay
/// holds back instead of buffering without bound).
#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_both_ways_under_flow_control() {
    use http_body_util::BodyExt;
    use sha2::Digest;

    let tmp = tempfile::tempdir().unwrap();
    let upstream = tmp.path().join("echo.sock");
    // Echoes each request chunk as it comes.
    fake_upstream(&upstream, |req, tx| async move {
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return };
            if let Ok(d) = frame.into_data()
                && tx.send(Ok(http_body::Frame::data(d))).await.is_err()
            {
                return;
            }
        }
    });
    let d = Daemon::start_with_upstream(&upstream, "");

    let io = tokio::net::UnixStream::connect(&d.listen).await.unwrap();
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(32 << 10)
        .initial_connection_window_size(64 << 10)
        .handshake::<_, Bytes>(io)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri("http://localhost/test.Echo/Big")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (answer, mut send) = client.send_request(req, false).unwrap();
    let total = 6 << 20;
    let payload: Vec<u8> = (0..total).map(|i: usize| (i * 31 % 253) as u8).collect();
    let want = sha2::Sha256::digest(&payload);
    let sender = tokio::spawn(async move {
        for chunk in payload.chunks(100_000) {
            send.reserve_capacity(chunk.len());
            let mut left = Bytes::copy_from_slice(chunk);
            while !left.is_empty() {
                let cap = std::future::poll_fn(|cx| send.poll_capacity(cx))
                    .await
                    .unwrap()
                    .unwrap();
                let n = cap.min(left.len());
                send.send_data(left.split_to(n), false).unwrap();
            }
        }
        send.send_data(Bytes::new(), true).unwrap();
    });
    let resp = tokio::time::timeout(Duration::from_secs(60), answer)
        .await
        .expect("no answer head")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = sha2::Sha256::new();
    let mut n = 0usize;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(60), body.data())
        .await
        .expect("body stalled")
    {
        let chunk = chunk.unwrap();
        n += chunk.len();
        got.update(&chunk);
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    sender.await.unwrap();
    assert_eq!(n, total);
    assert_eq!(got.finalize(), want, "bytes changed on the way");
    assert_eq!(trailers["grpc-status"], "0");
}

/// Many calls at once, multiplexed on shared connections and spread over several: all
/// answer, none is lost or mixed up (each names the image it asked for).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_on_shared_and_separate_connections() {
    let (image, _) = push_small_image("concurrent").await;
    let d = Daemon::start("");
    let mut proxy = images(&d.listen).await;
    proxy
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for conn in 0..4 {
        let client = images(&d.listen).await;
        let rt = runtime(&d.listen).await;
        for i in 0..50 {
            let (mut client, mut rt, image) = (client.clone(), rt.clone(), image.clone());
            calls.spawn(async move {
                if i % 2 == 0 {
                    let s = client
                        .image_status(ImageStatusRequest {
                            image: spec(&image),
                            verbose: false,
                        })
                        .await
                        .map_err(|e| format!("conn {conn} call {i}: {e}"))?
                        .into_inner();
                    let tags = s.image.map(|i| i.repo_tags).unwrap_or_default();
                    if !tags.contains(&image) {
                        return Err(format!("conn {conn} call {i}: answer for {tags:?}"));
                    }
                } else {
                    rt.version(VersionRequest {
                        version: "v1".into(),
                    })
                    .await
                    .map_err(|e| format!("conn {conn} call {i}: {e}"))?;
                }
                Ok::<_, String>(())
            });
        }
    }
    let all = tokio::time::timeout(Duration::from_secs(60), calls.join_all())
        .await
        .expect("calls hung");
    let failed: Vec<String> = all.into_iter().filter_map(|r| r.err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
}

type FrameTx = tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, hyper::Error>>;

/// A fake HTTP/2 upstream on `socket` for one connection: every call is answered by
/// what `answer` sends (data frames), then trailers with grpc-status 0.
fn fake_upstream<F, Fut>(socket: &std::path::Path, answer: F)
where
    F: Fn(http::Request<hyper::body::Incoming>, FrameTx) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let answer = answer.clone();
            async move {
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                tokio::spawn(async move {
                    answer(req, tx.clone()).await;
                    let mut t = http::HeaderMap::new();
                    t.insert("grpc-status", "0".parse().unwrap());
                    let _ = tx.send(Ok(http_body::Frame::trailers(t))).await;
                });
                let body = http_body_util::StreamBody::new(
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                );
                Ok::<_, std::convert::Infallible>(
                    http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(body)
                        .unwrap(),
                )
            }
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    });
}
