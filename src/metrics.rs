//! Prometheus metrics: the series pullwarden exports, kept in a `prometheus-client`
//! registry and served in the OpenMetrics text format on `[server] metrics` (TCP,
//! loopback by default) at `/metrics`. Label values come from config (policy names) or
//! code (error kinds, CRI methods); the number of distinct label sets per family is
//! capped all the same so no input can grow memory unbounded. Besides the daemon's own
//! series: `pullwarden_build_info`, the vulnerability database's age and size, the last
//! config reload's outcome, and the standard `process_*` series from `/proc`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// A client that opens a connection and sends nothing is dropped after this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Distinct label sets per labelled family; beyond this new ones are counted under
/// `policy="_other"` / `kind="_other"` / `method="_other"`.
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

/// OpenMetrics 1.0, for scrapers that ask for it (Prometheus does by default).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format's type, for everyone else (curl, old scrapers): the
/// OpenMetrics text is a superset its parsers read (`# EOF` is a comment to them).
const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PullLabels {
    policy: String,
    mode: &'static str,
    decision: &'static str,
    cached: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabel {
    decision: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClientLabel {
    client: &'static str,
}

/// `result` values of `pullwarden_fleet_publish_total`: `ok`, or why the attestation
/// was not published ([`crate::fleet::PublishError::kind`]).
pub const FLEET_PUBLISH_RESULTS: [&str; 5] = ["ok", "refused", "unavailable", "registry", "attest"];

/// `reason` values of `pullwarden_fleet_attestations_ignored_total`
/// ([`crate::fleet::IgnoreReason::label`]).
pub const FLEET_IGNORE_REASONS: [&str; 10] = [
    "forged",
    "untrusted",
    "stale",
    "future",
    "mismatched",
    "foreign",
    "malformed",
    "too_large",
    "unfetchable",
    "not_examined",
];

/// `client` values of `pullwarden_registry_requests_total`: which of the daemon's
/// registry clients sent the request.
pub const REGISTRY_CLIENTS: [&str; 2] = ["signatures", "fleet"];
/// The `result` values of `pullwarden_vex_lookups_total` (see `vex::node::Lookup`).
const VEX_LOOKUP_RESULTS: [&str; 4] = ["found", "none", "no_signers", "error"];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    method: String,
    code: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    os: &'static str,
    arch: &'static str,
}

/// The label sets a family has seen, to cap them at [`MAX_SERIES`].
#[derive(Debug)]
struct SeriesCap<K>(Mutex<HashSet<K>>);

impl<K: Eq + Hash + Clone> SeriesCap<K> {
    fn new() -> SeriesCap<K> {
        SeriesCap(Mutex::new(HashSet::new()))
    }

    /// `key` when it is known or there is room for it, else `overflow()`.
    fn admit(&self, key: K, overflow: impl FnOnce() -> K) -> K {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&key) {
            return key;
        }
        if seen.len() >= MAX_SERIES {
            let k = overflow();
            seen.insert(k.clone());
            return k;
        }
        seen.insert(key.clone());
        key
    }
}

/// The vulnerability database as metrics see it: record count and the newest record's
/// `modified` time (Unix seconds), asked for on each scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VulnDbFacts {
    pub records: u64,
    pub newest_modified_unix: Option<i64>,
}

type VulnDbSource = Box<dyn Fn() -> Option<VulnDbFacts> + Send + Sync>;

/// What is read at scrape time rather than recorded as it happens.
#[derive(Default)]
struct Live {
    /// Unix milliseconds of the last CRI call from a client other than the daemon
    /// itself (0: none yet).
    last_call_ms: AtomicU64,
    vulndb: Mutex<Option<VulnDbSource>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("last_call_ms", &self.last_call_ms)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One scrape's series that are computed, not counted.
#[derive(Debug)]
struct LiveCollector(Arc<Live>);

fn gauge<N>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(value);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for LiveCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let ms = self.0.last_call_ms.load(Ordering::Relaxed);
        if ms != 0 {
            gauge(
                &mut enc,
                "pullwarden_last_cri_call_timestamp_seconds",
                "Unix time of the last CRI call from a client (not the daemon's own canary).",
                ms as f64 / 1000.0,
            )?;
        }
        let facts = {
            let source = self.0.vulndb.lock().unwrap_or_else(|p| p.into_inner());
            source.as_ref().and_then(|f| f())
        };
        if let Some(f) = facts {
            gauge(
                &mut enc,
                "pullwarden_vulndb_records",
                "Advisories in the vulnerability database (0: none imported).",
                f.records as i64,
            )?;
            if let Some(newest) = f.newest_modified_unix {
                gauge(
                    &mut enc,
                    "pullwarden_vulndb_age_seconds",
                    "Seconds since the newest advisory in the vulnerability database was modified: how stale the data is.",
                    (unix_now() - newest as f64).max(0.0),
                )?;
            }
        }
        encode_process(&mut enc)
    }
}

/// The standard process series (the names every Prometheus client library exports),
/// from `/proc/self`. A file that cannot be read leaves its series out.
fn encode_process(enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let Ok(me) = procfs::process::Process::myself() else {
        return Ok(());
    };
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second().max(1) as f64;
        let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
        let m = enc.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            cpu.metric_type(),
        )?;
        cpu.encode(m)?;
        gauge(
            enc,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            (stat.rss.saturating_mul(procfs::page_size())) as i64,
        )?;
        gauge(
            enc,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            stat.vsize as i64,
        )?;
        if let Ok(boot) = procfs::boot_time_secs() {
            gauge(
                enc,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + stat.starttime as f64 / ticks,
            )?;
        }
    }
    if let Ok(n) = me.fd_count() {
        gauge(
            enc,
            "process_open_fds",
            "Number of open file descriptors.",
            n as i64,
        )?;
    }
    if let Ok(limits) = me.limits()
        && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
    {
        gauge(
            enc,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max as i64,
        )?;
    }
    Ok(())
}

/// The daemon's metrics. Shared as `Arc<Metrics>`; every method is cheap and thread safe.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pulls: Family<PullLabels, Counter>,
    pull_series: SeriesCap<PullLabels>,
    cache_hits: Counter,
    errors: Family<KindLabel, Counter>,
    error_series: SeriesCap<KindLabel>,
    verify: Histogram,
    scan: Histogram,
    scanned_bytes: Counter,
    /// Image scans by where the layer results came from (`local`, `attested`).
    scans: Family<SourceLabel, Counter>,
    /// Scan attestation publishes by outcome.
    fleet_publish: Family<ResultLabel, Counter>,
    /// Scan attestations passed over, by reason.
    fleet_ignored: Family<ReasonLabel, Counter>,
    /// Time pulls waited for their scan attestation lookup.
    fleet_lookup_wait: Histogram,
    /// HTTP requests to registries (token requests included), by client.
    registry_requests: Family<ClientLabel, Counter>,
    /// Looks for VEX attached to a pulled image, by outcome.
    vex_lookups: Family<ResultLabel, Counter>,
    /// Verdicts made again from stored inventories, by decision.
    rescored: Family<DecisionLabel, Counter>,
    /// Present images a re-judging left alone, by reason.
    rescore_skipped: Family<ReasonLabel, Counter>,
    calls: Family<CallLabels, Counter>,
    call_series: SeriesCap<CallLabels>,
    call_latency: Family<MethodLabel, Histogram>,
    latency_series: SeriesCap<MethodLabel>,
    live: Arc<Live>,
    /// ImageStatus calls the daemon's own canary has announced and not yet made.
    own_calls: AtomicU64,
    /// `pullwarden_enforcing`: 1 when the last doctor checks all held, 0 otherwise
    /// (and before the first run).
    enforcing: Gauge,
    /// CRI connections open now whose peer process is named `kubelet`.
    kubelet_connections: Gauge,
    /// The pid of the last kubelet that connected (0: none yet).
    kubelet_pid: AtomicU64,
    reload_ok: Gauge,
    reload_ok_at: Gauge<f64, AtomicU64>,
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
            self.metrics.kubelet_connections.dec();
        }
    }
}

/// Whether process `pid`'s name (`/proc/PID/comm`) is `kubelet`.
fn is_kubelet(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end() == "kubelet")
        .unwrap_or(false)
}

fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let pulls = Family::<PullLabels, Counter>::default();
        registry.register(
            "pullwarden_pulls",
            "Image pulls decided, by policy, mode (an audit-mode deny was let through), decision and whether the verdict came from the store.",
            pulls.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "pullwarden_verdict_cache_hits",
            "Pulls answered from the verdict store.",
            cache_hits.clone(),
        );
        let errors = Family::<KindLabel, Counter>::default();
        registry.register("pullwarden_errors", "Errors by kind.", errors.clone());
        let verify = Histogram::new(BUCKETS);
        registry.register(
            "pullwarden_verify_duration_seconds",
            "Signature verification time per image.",
            verify.clone(),
        );
        let scan = Histogram::new(BUCKETS);
        registry.register(
            "pullwarden_scan_duration_seconds",
            "Layer scan time per image.",
            scan.clone(),
        );
        let scanned_bytes = Counter::default();
        registry.register(
            "pullwarden_scanned_bytes",
            "Uncompressed layer bytes scanned.",
            scanned_bytes.clone(),
        );
        let scans = Family::<SourceLabel, Counter>::default();
        registry.register(
            "pullwarden_scans",
            "Image scans by where the layer results came from (local: layers read here; attested: a trusted fleet scan attestation).",
            scans.clone(),
        );
        // Both series exist from the start, so a rate over them is never undefined.
        for source in ["local", "attested"] {
            let _ = scans.get_or_create(&SourceLabel { source });
        }
        let fleet_publish = Family::<ResultLabel, Counter>::default();
        registry.register(
            "pullwarden_fleet_publish",
            "Scan attestation publishes by result: ok, or the failure kind (refused: no push right; unavailable: registry down or 5xx; registry: anything else it answered; attest: nothing publishable). A failed publish never changes a verdict.",
            fleet_publish.clone(),
        );
        for result in FLEET_PUBLISH_RESULTS {
            let _ = fleet_publish.get_or_create(&ResultLabel { result });
        }
        let fleet_lookup_wait = Histogram::new(CALL_BUCKETS);
        registry.register(
            "pullwarden_fleet_lookup_wait_seconds",
            "Time a pull waited for its scan attestation lookup once containerd had pulled (the lookup starts when the pull is forwarded, so a lookup that finished during the pull costs nothing here).",
            fleet_lookup_wait.clone(),
        );
        let fleet_ignored = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "pullwarden_fleet_attestations_ignored",
            "Scan attestations found for an image and not used, by reason (forged, untrusted, stale, future, mismatched analyzer set or scan config, foreign subject or layers, malformed, too_large, unfetchable, not_examined past the cap); the node scanned itself.",
            fleet_ignored.clone(),
        );
        for reason in FLEET_IGNORE_REASONS {
            let _ = fleet_ignored.get_or_create(&ReasonLabel { reason });
        }
        let registry_requests = Family::<ClientLabel, Counter>::default();
        registry.register(
            "pullwarden_registry_requests",
            "HTTP requests the daemon sent to registries (token requests included), by client: signatures (verification) or fleet (scan attestations).",
            registry_requests.clone(),
        );
        for client in REGISTRY_CLIENTS {
            let _ = registry_requests.get_or_create(&ClientLabel { client });
        }
        let vex_lookups = Family::<ResultLabel, Counter>::default();
        registry.register(
            "pullwarden_vex_lookups",
            "Looks for VEX attestations attached to a pulled image, by result (found, none, no_signers: the policy trusts no VEX signer, error: registry failure or timeout, no VEX applied).",
            vex_lookups.clone(),
        );
        for result in VEX_LOOKUP_RESULTS {
            let _ = vex_lookups.get_or_create(&ResultLabel { result });
        }
        let rescored = Family::<DecisionLabel, Counter>::default();
        registry.register(
            "pullwarden_rescored",
            "Verdicts made again from stored inventories (a vulnerability database import, a reload), without reading a layer or asking the registry, by decision.",
            rescored.clone(),
        );
        for decision in ["allow", "deny"] {
            let _ = rescored.get_or_create(&DecisionLabel { decision });
        }
        let rescore_skipped = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "pullwarden_rescore_skipped",
            "Present images a re-judging could not judge from the store, by reason (no-inventory, unreadable-inventory, no-signature-evidence, no-scan, error).",
            rescore_skipped.clone(),
        );
        let enforcing = Gauge::default();
        registry.register(
            "pullwarden_enforcing",
            "1 when the last doctor checks (kubelet endpoint, policy keys, config fingerprints, live canary, containerd) all held, else 0; refreshed every minute.",
            enforcing.clone(),
        );
        let kubelet_connections = Gauge::default();
        registry.register(
            "pullwarden_kubelet_connections",
            "CRI connections open now from a process named kubelet (peer credentials).",
            kubelet_connections.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "pullwarden_cri_calls",
            "CRI calls through the proxy, by method and gRPC status.",
            calls.clone(),
        );
        let call_latency = Family::<MethodLabel, Histogram>::new_with_constructor(
            call_histogram as fn() -> Histogram,
        );
        registry.register(
            "pullwarden_cri_call_duration_seconds",
            "Time to answer a CRI call through the proxy (verification and scans included), by method.",
            call_latency.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                os: std::env::consts::OS,
                arch: std::env::consts::ARCH,
            })
            .set(1);
        registry.register(
            "pullwarden_build_info",
            "Always 1; the labels say which pullwarden build runs.",
            build,
        );
        // The daemon does not start on a config it cannot load: the first load counts.
        let reload_ok = Gauge::default();
        reload_ok.set(1);
        registry.register(
            "pullwarden_config_last_reload_successful",
            "1 when the last configuration load or reload succeeded, 0 when it was rejected (the previous configuration stays in force).",
            reload_ok.clone(),
        );
        let reload_ok_at = Gauge::<f64, AtomicU64>::default();
        reload_ok_at.set(unix_now());
        registry.register(
            "pullwarden_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load or reload.",
            reload_ok_at.clone(),
        );
        let live = Arc::new(Live::default());
        registry.register_collector(Box::new(LiveCollector(live.clone())));
        Metrics {
            registry,
            pulls,
            pull_series: SeriesCap::new(),
            cache_hits,
            errors,
            error_series: SeriesCap::new(),
            verify,
            scan,
            scanned_bytes,
            scans,
            fleet_publish,
            fleet_ignored,
            fleet_lookup_wait,
            registry_requests,
            vex_lookups,
            rescored,
            rescore_skipped,
            calls,
            call_series: SeriesCap::new(),
            call_latency,
            latency_series: SeriesCap::new(),
            live,
            own_calls: AtomicU64::new(0),
            enforcing,
            kubelet_connections,
            kubelet_pid: AtomicU64::new(0),
            reload_ok,
            reload_ok_at,
        }
    }

    /// One pull answered under `policy` in `mode` (`enforce`: the decision took effect;
    /// `audit`: a deny was let through) with `decision` (`allow` | `deny`, as
    /// `policy::Decision::as_str` spells it), `cached`: answered from the verdict store.
    /// Labels arrive spelled: this module sits below everything it counts.
    pub fn record_pull(&self, policy: &str, mode: &str, decision: &'static str, cached: bool) {
        let mode = match mode {
            "enforce" => "enforce",
            "audit" => "audit",
            _ => "off",
        };
        let key = PullLabels {
            policy: policy.to_string(),
            mode,
            decision,
            cached,
        };
        let key = self.pull_series.admit(key, || PullLabels {
            policy: "_other".into(),
            mode,
            decision,
            cached,
        });
        self.pulls.get_or_create(&key).inc();
        if cached {
            self.cache_hits.inc();
        }
    }

    /// Signature verification of one image took `secs`.
    pub fn observe_verify(&self, secs: f64) {
        self.verify.observe(non_negative(secs));
    }

    /// Scanning one image took `secs` and read `bytes` of layer data (uncompressed).
    pub fn observe_scan(&self, secs: f64, bytes: u64) {
        self.scan.observe(non_negative(secs));
        self.scanned_bytes.inc_by(bytes);
    }

    /// One image scan whose layer results came from `source` (`local`, or `attested`:
    /// a fleet scan attestation, no layer read).
    pub fn record_scan_source(&self, source: &str) {
        let source = if source == "attested" {
            "attested"
        } else {
            "local"
        };
        self.scans.get_or_create(&SourceLabel { source }).inc();
    }

    /// One scan attestation publish ended with `result`: `ok` or a
    /// [`crate::fleet::PublishError::kind`] (an unknown value counts as `registry`).
    pub fn record_fleet_publish(&self, result: &str) {
        let result = FLEET_PUBLISH_RESULTS
            .into_iter()
            .find(|r| *r == result)
            .unwrap_or("registry");
        self.fleet_publish
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// A pull waited `secs` for its scan attestation lookup (checks included).
    pub fn observe_fleet_lookup_wait(&self, secs: f64) {
        self.fleet_lookup_wait.observe(non_negative(secs));
    }

    /// One look for VEX attached to a pulled image, by its `result` (`found`, `none`,
    /// `no_signers`, `error`; anything else counts as `error`).
    pub fn record_vex_lookup(&self, result: &str) {
        let result = VEX_LOOKUP_RESULTS
            .into_iter()
            .find(|r| *r == result)
            .unwrap_or("error");
        self.vex_lookups
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// `n` scan attestations ignored for `reason` ([`crate::fleet::IgnoreReason::label`];
    /// an unknown value counts as `malformed`).
    pub fn record_attestations_ignored(&self, reason: &str, n: u64) {
        let reason = FLEET_IGNORE_REASONS
            .into_iter()
            .find(|r| *r == reason)
            .unwrap_or("malformed");
        self.fleet_ignored
            .get_or_create(&ReasonLabel { reason })
            .inc_by(n);
    }

    /// The counter of registry requests sent by `client` (one of [`REGISTRY_CLIENTS`];
    /// anything else counts as `signatures`), for
    /// [`crate::registry::RegistryClient::count_requests`].
    pub fn registry_requests(&self, client: &str) -> Counter {
        let client = REGISTRY_CLIENTS
            .into_iter()
            .find(|c| *c == client)
            .unwrap_or("signatures");
        self.registry_requests
            .get_or_create(&ClientLabel { client })
            .clone()
    }

    /// One verdict made again from a stored inventory, with `decision` (`allow` | `deny`).
    pub fn record_rescored(&self, decision: &'static str) {
        self.rescored
            .get_or_create(&DecisionLabel { decision })
            .inc();
    }

    /// One present image a re-judging skipped; `reason` is one of a fixed set
    /// (`crate::rescore::SkipKind::as_str`).
    pub fn record_rescore_skipped(&self, reason: &'static str) {
        self.rescore_skipped
            .get_or_create(&ReasonLabel { reason })
            .inc();
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
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            self.live.last_call_ms.fetch_max(now, Ordering::Relaxed);
        }
        let code = code.map(code_name).unwrap_or("none");
        let key = self.call_series.admit(
            CallLabels {
                method: method.to_string(),
                code,
            },
            || CallLabels {
                method: "_other".into(),
                code,
            },
        );
        self.calls.get_or_create(&key).inc();
        let key = self.latency_series.admit(
            MethodLabel {
                method: method.to_string(),
            },
            || MethodLabel {
                method: "_other".into(),
            },
        );
        self.call_latency
            .get_or_create(&key)
            .observe(took.as_secs_f64());
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
        match self.live.last_call_ms.load(Ordering::Relaxed) {
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
            self.kubelet_connections.inc();
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
            self.kubelet_connections.get().max(0) as u64,
            (pid != 0).then(|| u32::try_from(pid).ok()).flatten(),
        )
    }

    /// Sets the `pullwarden_enforcing` gauge.
    pub fn set_enforcing(&self, enforcing: bool) {
        self.enforcing.set(i64::from(enforcing));
    }

    pub fn enforcing(&self) -> bool {
        self.enforcing.get() == 1
    }

    /// An error of `kind` (e.g. `registry`, `containerd`, `store`, `verify`, `scan`).
    pub fn record_error(&self, kind: &str) {
        let key = self.error_series.admit(
            KindLabel {
                kind: kind.to_string(),
            },
            || KindLabel {
                kind: "_other".into(),
            },
        );
        self.errors.get_or_create(&key).inc();
    }

    /// The outcome of a configuration reload: `pullwarden_config_last_reload_successful`
    /// (and, on success, its timestamp).
    pub fn record_config_reload(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_ok_at.set(unix_now());
        }
    }

    /// Where the vulnerability database gauges come from: called on each scrape (keep
    /// it cheap; None leaves the series out).
    pub fn set_vulndb_source(
        &self,
        source: impl Fn() -> Option<VulnDbFacts> + Send + Sync + 'static,
    ) {
        *self.live.vulndb.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(source));
    }

    /// OpenMetrics text exposition format 1.0 (ends with `# EOF`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "could not encode the metrics");
        }
        out
    }
}

fn non_negative(v: f64) -> f64 {
    if v.is_finite() && v >= 0.0 { v } else { 0.0 }
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

/// The content type to answer a scrape with: OpenMetrics when the `Accept` header
/// asks for it, else the classic text type.
fn content_type(accept: Option<&http::HeaderValue>) -> &'static str {
    match accept.and_then(|a| a.to_str().ok()) {
        Some(a) if a.contains("application/openmetrics-text") => OPENMETRICS,
        _ => TEXT_004,
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
                            http::HeaderValue::from_static(content_type(
                                req.headers().get(http::header::ACCEPT),
                            )),
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
        m.record_pull("prod", "enforce", "allow", true);
        m.record_pull("prod", "enforce", "allow", true);
        m.record_pull("prod", "enforce", "deny", false);
        m.record_pull("we\"ird", "enforce", "deny", false);
        m.record_pull("prod", "audit", "deny", false);
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
            "pullwarden_verify_duration_seconds_bucket{le=\"5.0\"} 2",
            "pullwarden_verify_duration_seconds_count 2",
            "pullwarden_scan_duration_seconds_bucket{le=\"120.0\"} 1",
            "pullwarden_scan_duration_seconds_bucket{le=\"+Inf\"} 2",
            "pullwarden_scanned_bytes_total 1024",
            "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/ImageStatus\",code=\"OK\"} 2",
            "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/ImageStatus\",code=\"none\"} 1",
            "pullwarden_cri_calls_total{method=\"runtime.v1.ImageService/PullImage\",code=\"FailedPrecondition\"} 1",
            "pullwarden_cri_call_duration_seconds_bucket{le=\"0.0001\",method=\"runtime.v1.ImageService/ImageStatus\"} 1",
            "pullwarden_cri_call_duration_seconds_bucket{le=\"0.0005\",method=\"runtime.v1.ImageService/ImageStatus\"} 2",
            "pullwarden_cri_call_duration_seconds_bucket{le=\"+Inf\",method=\"runtime.v1.ImageService/ImageStatus\"} 3",
            "pullwarden_cri_call_duration_seconds_count{method=\"runtime.v1.ImageService/PullImage\"} 1",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
    }

    #[test]
    fn fleet_and_registry_series() {
        let m = Metrics::new();
        let t = m.render();
        for line in [
            "pullwarden_fleet_publish_total{result=\"ok\"} 0",
            "pullwarden_fleet_publish_total{result=\"refused\"} 0",
            "pullwarden_fleet_attestations_ignored_total{reason=\"untrusted\"} 0",
            "pullwarden_registry_requests_total{client=\"fleet\"} 0",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
        m.record_fleet_publish("ok");
        m.record_fleet_publish("refused");
        m.record_fleet_publish("refused");
        m.record_fleet_publish("something new");
        m.record_attestations_ignored("untrusted", 1);
        m.record_attestations_ignored("not_examined", 40);
        m.record_attestations_ignored("\"odd\"", 1);
        m.registry_requests("fleet").inc_by(3);
        m.registry_requests("fleet").inc();
        let t = m.render();
        for line in [
            "pullwarden_fleet_publish_total{result=\"ok\"} 1",
            "pullwarden_fleet_publish_total{result=\"refused\"} 2",
            "pullwarden_fleet_publish_total{result=\"registry\"} 1",
            "pullwarden_fleet_attestations_ignored_total{reason=\"untrusted\"} 1",
            "pullwarden_fleet_attestations_ignored_total{reason=\"not_examined\"} 40",
            "pullwarden_fleet_attestations_ignored_total{reason=\"malformed\"} 1",
            "pullwarden_registry_requests_total{client=\"fleet\"} 4",
            "pullwarden_registry_requests_total{client=\"signatures\"} 0",
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
