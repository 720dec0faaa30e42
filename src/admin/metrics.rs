//! Prometheus metrics: a small registry of the few series pullwarden exports, and the
//! text exposition served on `[server] metrics` (TCP, loopback by default) at `/metrics`.
//! Label values come from config (policy names) or code (error kinds); the number of
//! distinct label sets is capped all the same so no input can grow memory unbounded.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::policy::Decision;

/// A client that opens a connection and sends nothing is dropped after this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Distinct label sets per labelled counter; beyond this new ones are counted under
/// `policy="_other"` / `kind="_other"`.
const MAX_SERIES: usize = 256;
/// Latency buckets in seconds: signature checks take milliseconds to a few seconds
/// (registry round trips), scans up to minutes for multi-GB images.
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// CRI call latency buckets in seconds: ImageStatus and friends take a fraction of a
/// millisecond, a PullImage seconds to minutes.
const CALL_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 30.0, 120.0,
];

#[derive(Debug)]
struct Histogram {
    buckets: &'static [f64],
    /// Non-cumulative counts per bucket, plus the +Inf bucket at the end.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::with_buckets(&BUCKETS)
    }
}

impl Histogram {
    fn with_buckets(buckets: &'static [f64]) -> Histogram {
        Histogram {
            buckets,
            counts: vec![0; buckets.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        let v = if v.is_finite() && v >= 0.0 { v } else { 0.0 };
        let i = self
            .buckets
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.buckets.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Renders the series `name` with `labels` (`key="value"` pairs, already escaped,
    /// or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, le) in self.buckets.iter().enumerate() {
            cumulative += self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// The daemon's metrics. Shared as `Arc<Metrics>`; every method is cheap and thread safe.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (policy, decision, cached) → pulls.
    pulls: Mutex<BTreeMap<(String, &'static str, &'static str, bool), u64>>,
    cache_hits: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    verify: Mutex<Histogram>,
    scan: Mutex<Histogram>,
    scanned_bytes: AtomicU64,
    /// Image scans by where the layer results came from: [local, attested].
    scans_by_source: [AtomicU64; 2],
    /// (method, gRPC code) → calls through the CRI proxy.
    calls: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// method → call latency.
    call_latency: Mutex<BTreeMap<String, Histogram>>,
    /// Unix milliseconds of the last CRI call from a client other than the daemon
    /// itself (0: none yet).
    last_call_ms: AtomicU64,
    /// ImageStatus calls the daemon's own canary has announced and not yet made.
    own_calls: AtomicU64,
    /// `pullwarden_enforcing`: 1 when the last doctor checks all held, 0 otherwise
    /// (and before the first run).
    enforcing: AtomicU64,
    /// CRI connections open now whose peer process is named `kubelet`.
    kubelet_connections: AtomicU64,
    /// The pid of the last kubelet that connected (0: none yet).
    kubelet_pid: AtomicU64,
}

/// One CRI client connection, counted while it is open (see [`Metrics::cri_peer`]).
#[derive(Debug)]
pub struct PeerGuard {
    metrics: std::sync::Arc<Metrics>,
    kubelet: bool,
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        if self.kubelet {
            let _ = self.metrics.kubelet_connections.fetch_update(
                Ordering::AcqRel,
                Ordering::Acquire,
                |n| n.checked_sub(1),
            );
        }
    }
}

/// Whether process `pid`'s name (`/proc/PID/comm`) is `kubelet`.
fn is_kubelet(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end() == "kubelet")
        .unwrap_or(false)
}

fn capped_key<K: Ord>(map: &BTreeMap<K, u64>, key: K, overflow: impl FnOnce() -> K) -> K {
    if map.len() >= MAX_SERIES && !map.contains_key(&key) {
        overflow()
    } else {
        key
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One pull answered under `policy` in `mode` (`enforce`: the decision took effect;
    /// `audit`: a deny was let through), `cached`: answered from the verdict store.
    pub fn record_pull(&self, policy: &str, mode: &str, decision: Decision, cached: bool) {
        let decision = match decision {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        };
        let mode = match mode {
            "enforce" => "enforce",
            "audit" => "audit",
            _ => "off",
        };
        if let Ok(mut m) = self.pulls.lock() {
            let key = capped_key(&m, (policy.to_string(), mode, decision, cached), || {
                ("_other".to_string(), mode, decision, cached)
            });
            *m.entry(key).or_default() += 1;
        }
        if cached {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Signature verification of one image took `secs`.
    pub fn observe_verify(&self, secs: f64) {
        if let Ok(mut h) = self.verify.lock() {
            h.observe(secs);
        }
    }

    /// Scanning one image took `secs` and read `bytes` of layer data (uncompressed).
    pub fn observe_scan(&self, secs: f64, bytes: u64) {
        if let Ok(mut h) = self.scan.lock() {
            h.observe(secs);
        }
        self.scanned_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// One image scan whose layer results came from `source` (`local`, or `attested`:
    /// a fleet scan attestation, no layer read).
    pub fn record_scan_source(&self, source: &str) {
        let i = usize::from(source == "attested");
        if let Some(c) = self.scans_by_source.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One CRI call through the proxy: its gRPC method path, the gRPC status code it
    /// ended with (`None`: cut short, no status), and how long it took to answer.
    pub fn record_call(&self, path: &str, code: Option<tonic::Code>, took: Duration) {
        let method = path.trim_start_matches('/');
        let own = method == "runtime.v1.ImageService/ImageStatus"
            && self
                .own_calls
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
        if !own {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            self.last_call_ms.fetch_max(now, Ordering::Relaxed);
        }
        let code = code.map(code_name).unwrap_or("none");
        if let Ok(mut m) = self.calls.lock() {
            let key = capped_key(&m, (method.to_string(), code), || {
                ("_other".to_string(), code)
            });
            *m.entry(key).or_default() += 1;
        }
        if let Ok(mut m) = self.call_latency.lock() {
            let key = if m.len() >= MAX_SERIES && !m.contains_key(method) {
                "_other".to_string()
            } else {
                method.to_string()
            };
            m.entry(key)
                .or_insert_with(|| Histogram::with_buckets(&CALL_BUCKETS))
                .observe(took.as_secs_f64());
        }
    }

    /// The daemon is about to make one ImageStatus call through its own socket (the
    /// doctor's canary): that call does not count as the last client call. Should a
    /// client's ImageStatus be recorded in between, that one is skipped instead; the
    /// time is off by a moment, never by a minute.
    pub fn announce_own_status_call(&self) {
        self.own_calls.fetch_add(1, Ordering::AcqRel);
    }

    /// Withdraws an announcement whose call was never made.
    pub fn withdraw_own_status_call(&self) {
        let _ = self
            .own_calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// When the last CRI call from a client (the kubelet, crictl) went through the
    /// proxy; None when none has since the daemon started.
    pub fn last_client_call(&self) -> Option<std::time::SystemTime> {
        match self.last_call_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(std::time::UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }

    /// A CRI client connected from process `pid` (from SO_PEERCRED; None when the
    /// kernel did not say): counted as a kubelet connection while the guard lives when
    /// the process is named `kubelet`.
    pub fn cri_peer(self: &std::sync::Arc<Self>, pid: Option<i32>) -> PeerGuard {
        let kubelet = pid.is_some_and(is_kubelet);
        if let (true, Some(pid)) = (kubelet, pid) {
            self.kubelet_connections.fetch_add(1, Ordering::AcqRel);
            self.kubelet_pid.store(pid as u64, Ordering::Relaxed);
        }
        PeerGuard {
            metrics: self.clone(),
            kubelet,
        }
    }

    /// CRI connections from a process named `kubelet` open now, and the pid of the
    /// last kubelet that connected.
    pub fn kubelet_connections(&self) -> (u64, Option<u32>) {
        let pid = self.kubelet_pid.load(Ordering::Relaxed);
        (
            self.kubelet_connections.load(Ordering::Acquire),
            (pid != 0).then_some(pid as u32),
        )
    }

    /// Sets the `pullwarden_enforcing` gauge.
    pub fn set_enforcing(&self, enforcing: bool) {
        self.enforcing.store(enforcing as u64, Ordering::Relaxed);
    }

    pub fn enforcing(&self) -> bool {
        self.enforcing.load(Ordering::Relaxed) == 1
    }

    /// An error of `kind` (e.g. `registry`, `containerd`, `store`, `verify`, `scan`).
    pub fn record_error(&self, kind: &str) {
        if let Ok(mut m) = self.errors.lock() {
            let key = capped_key(&m, kind.to_string(), || "_other".to_string());
            *m.entry(key).or_default() += 1;
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP pullwarden_pulls_total Image pulls decided, by policy, mode (an audit-mode deny was let through), decision and whether the verdict came from the store.\n");
        out.push_str("# TYPE pullwarden_pulls_total counter\n");
        if let Ok(m) = self.pulls.lock() {
            for ((policy, mode, decision, cached), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "pullwarden_pulls_total{{policy=\"{}\",mode=\"{mode}\",decision=\"{decision}\",cached=\"{cached}\"}} {n}",
                    escape(policy)
                );
            }
        }
        out.push_str(
            "# HELP pullwarden_verdict_cache_hits_total Pulls answered from the verdict store.\n",
        );
        out.push_str("# TYPE pullwarden_verdict_cache_hits_total counter\n");
        let _ = writeln!(
            out,
            "pullwarden_verdict_cache_hits_total {}",
            self.cache_hits.load(Ordering::Relaxed)
        );
        out.push_str("# HELP pullwarden_errors_total Errors by kind.\n");
        out.push_str("# TYPE pullwarden_errors_total counter\n");
        if let Ok(m) = self.errors.lock() {
            for (kind, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "pullwarden_errors_total{{kind=\"{}\"}} {n}",
                    escape(kind)
                );
            }
        }
        out.push_str(
            "# HELP pullwarden_verify_duration_seconds Signature verification time per image.\n",
        );
        out.push_str("# TYPE pullwarden_verify_duration_seconds histogram\n");
        if let Ok(h) = self.verify.lock() {
            h.render(&mut out, "pullwarden_verify_duration_seconds", "");
        }
        out.push_str("# HELP pullwarden_scan_duration_seconds Layer scan time per image.\n");
        out.push_str("# TYPE pullwarden_scan_duration_seconds histogram\n");
        if let Ok(h) = self.scan.lock() {
            h.render(&mut out, "pullwarden_scan_duration_seconds", "");
        }
        out.push_str("# HELP pullwarden_scanned_bytes_total Uncompressed layer bytes scanned.\n");
        out.push_str("# TYPE pullwarden_scanned_bytes_total counter\n");
        let _ = writeln!(
            out,
            "pullwarden_scanned_bytes_total {}",
            self.scanned_bytes.load(Ordering::Relaxed)
        );
        out.push_str("# HELP pullwarden_scans_total Image scans by where the layer results came from (local: layers read here; attested: a trusted fleet scan attestation).\n");
        out.push_str("# TYPE pullwarden_scans_total counter\n");
        for (i, source) in ["local", "attested"].iter().enumerate() {
            let n = self
                .scans_by_source
                .get(i)
                .map_or(0, |c| c.load(Ordering::Relaxed));
            let _ = writeln!(out, "pullwarden_scans_total{{source=\"{source}\"}} {n}");
        }
        out.push_str("# HELP pullwarden_enforcing 1 when the last doctor checks (kubelet endpoint, policy keys, config fingerprints, live canary, containerd) all held, else 0; refreshed every minute.\n");
        out.push_str("# TYPE pullwarden_enforcing gauge\n");
        let _ = writeln!(
            out,
            "pullwarden_enforcing {}",
            self.enforcing.load(Ordering::Relaxed)
        );
        out.push_str("# HELP pullwarden_kubelet_connections CRI connections open now from a process named kubelet (peer credentials).\n");
        out.push_str("# TYPE pullwarden_kubelet_connections gauge\n");
        let _ = writeln!(
            out,
            "pullwarden_kubelet_connections {}",
            self.kubelet_connections.load(Ordering::Acquire)
        );
        if let Some(t) = self.last_client_call() {
            out.push_str("# HELP pullwarden_last_cri_call_timestamp_seconds Unix time of the last CRI call from a client (not the daemon's own canary).\n");
            out.push_str("# TYPE pullwarden_last_cri_call_timestamp_seconds gauge\n");
            let secs = t
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let _ = writeln!(out, "pullwarden_last_cri_call_timestamp_seconds {secs:.3}");
        }
        out.push_str("# HELP pullwarden_cri_calls_total CRI calls through the proxy, by method and gRPC status.\n");
        out.push_str("# TYPE pullwarden_cri_calls_total counter\n");
        if let Ok(m) = self.calls.lock() {
            for ((method, code), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "pullwarden_cri_calls_total{{method=\"{}\",code=\"{code}\"}} {n}",
                    escape(method)
                );
            }
        }
        out.push_str("# HELP pullwarden_cri_call_duration_seconds Time to answer a CRI call through the proxy (verification and scans included), by method.\n");
        out.push_str("# TYPE pullwarden_cri_call_duration_seconds histogram\n");
        if let Ok(m) = self.call_latency.lock() {
            for (method, h) in m.iter() {
                let labels = format!("method=\"{}\"", escape(method));
                h.render(&mut out, "pullwarden_cri_call_duration_seconds", &labels);
            }
        }
        out
    }
}

/// gRPC's canonical code names, as other exporters (grpc-go's, tonic's) label them.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics<S>(listener: TcpListener, metrics: std::sync::Arc<Metrics>, shutdown: S)
where
    S: std::future::Future<Output = ()>,
{
    // Anyone on the node can reach the port: a bounded number of connections.
    crate::accept::accept_loop(&listener, 64, "metrics", shutdown, |stream, permit| {
        let metrics = metrics.clone();
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let mut resp = if req.method() == http::Method::GET
                        && req.uri().path() == "/metrics"
                    {
                        let mut r = Response::new(Full::new(Bytes::from(metrics.render())));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        Response::new(Full::new(Bytes::from_static(b"not found; try /metrics\n")))
                    };
                    if req.uri().path() != "/metrics" || req.method() != http::Method::GET {
                        *resp.status_mut() = StatusCode::NOT_FOUND;
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
            drop(permit);
        });
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::new();
        m.record_pull("prod", "enforce", Decision::Allow, true);
        m.record_pull("prod", "enforce", Decision::Allow, true);
        m.record_pull("prod", "enforce", Decision::Deny, false);
        m.record_pull("we\"ird", "enforce", Decision::Deny, false);
        m.record_pull("prod", "audit", Decision::Deny, false);
        m.record_error("registry");
        m.observe_verify(0.02);
        m.observe_verify(3.0);
        m.observe_scan(0.7, 1000);
        m.observe_scan(500.0, 24);
        let status = "/runtime.v1.ImageService/ImageStatus";
        m.record_call(status, Some(tonic::Code::Ok), Duration::from_micros(300));
        m.record_call(status, Some(tonic::Code::Ok), Duration::from_millis(2));
        m.record_call(
            "/runtime.v1.ImageService/PullImage",
            Some(tonic::Code::FailedPrecondition),
            Duration::from_secs(3),
        );
        m.record_call(status, None, Duration::from_micros(50));
        let t = m.render();
        for line in [
            "pullwarden_pulls_total{policy=\"prod\",mode=\"enforce\",decision=\"allow\",cached=\"true\"} 2",
            "pullwarden_pulls_total{policy=\"prod\",mode=\"enforce\",decision=\"deny\",cached=\"false\"} 1",
            "pullwarden_pulls_total{policy=\"prod\",mode=\"audit\",decision=\"deny\",cached=\"false\"} 1",
            "pullwarden_pulls_total{policy=\"we\\\"ird\",mode=\"enforce\",decision=\"deny\",cached=\"false\"} 1",
            "pullwarden_verdict_cache_hits_total 2",
            "pullwarden_errors_total{kind=\"registry\"} 1",
            "pullwarden_verify_duration_seconds_bucket{le=\"0.01\"} 0",
            "pullwarden_verify_duration_seconds_bucket{le=\"0.025\"} 1",
            "pullwarden_verify_duration_seconds_bucket{le=\"5\"} 2",
            "pullwarden_verify_duration_seconds_count 2",
            "pullwarden_scan_duration_seconds_bucket{le=\"120\"} 1",
            "pullwarden_scan_duration_seconds_bucket{le=\"+Inf\"} 2",
            "pullwarden_scanned_bytes_total 1024",
            "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/ImageStatus\",code=\"OK\"} 2",
            "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/ImageStatus\",code=\"none\"} 1",
            "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/PullImage\",code=\"FailedPrecondition\"} 1",
            "pullwarden_cri_call_duration_seconds_bucket{method=\"runtime.v1.ImageService/ImageStatus\",le=\"0.0001\"} 1",
            "pullwarden_cri_call_duration_seconds_bucket{method=\"runtime.v1.ImageService/ImageStatus\",le=\"0.0005\"} 2",
            "pullwarden_cri_call_duration_seconds_bucket{method=\"runtime.v1.ImageService/ImageStatus\",le=\"+Inf\"} 3",
            "pullwarden_cri_call_duration_seconds_count{method=\"runtime.v1.ImageService/PullImage\"} 1",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
    }

    #[test]
    fn enforcing_gauge_and_last_client_call() {
        let m = Metrics::new();
        assert!(m.render().lines().any(|l| l == "pullwarden_enforcing 0"));
        m.set_enforcing(true);
        assert!(m.render().lines().any(|l| l == "pullwarden_enforcing 1"));
        assert!(m.last_client_call().is_none());
        let status = "/runtime.v1.ImageService/ImageStatus";
        m.announce_own_status_call();
        m.record_call(status, Some(tonic::Code::Ok), Duration::from_micros(1));
        assert!(
            m.last_client_call().is_none(),
            "the canary's own call counted"
        );
        m.record_call(status, Some(tonic::Code::Ok), Duration::from_micros(1));
        assert!(m.last_client_call().is_some());
        assert!(
            m.render()
                .contains("pullwarden_last_cri_call_timestamp_seconds ")
        );
        m.announce_own_status_call();
        m.withdraw_own_status_call();
        m.withdraw_own_status_call();
        assert_eq!(m.own_calls.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn only_processes_named_kubelet_count_as_kubelet_connections() {
        let m = std::sync::Arc::new(Metrics::new());
        // This test process is not a kubelet; an unknown peer is not either.
        let me = m.cri_peer(Some(std::process::id() as i32));
        let unknown = m.cri_peer(None);
        assert_eq!(m.kubelet_connections(), (0, None));
        drop((me, unknown));
        assert!(
            m.render()
                .lines()
                .any(|l| l == "pullwarden_kubelet_connections 0")
        );
    }

    #[test]
    fn label_sets_are_capped() {
        let m = Metrics::new();
        for i in 0..(MAX_SERIES + 50) {
            m.record_error(&format!("kind{i}"));
        }
        let t = m.render();
        let series = t
            .lines()
            .filter(|l| l.starts_with("pullwarden_errors_total{"))
            .count();
        assert_eq!(series, MAX_SERIES + 1);
        assert!(
            t.contains("pullwarden_errors_total{kind=\"_other\"} 50"),
            "{t}"
        );
    }
}
