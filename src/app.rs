//! Wiring: build the parts from the config, bind the sockets, tell systemd we are
//! ready, reload on SIGHUP (or `pullwarden reload`), drain on SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};

use crate::admin::{AdminBackend, BackendError, Metrics, PeerAccess, SbomFormat};
use crate::config::{Config, ConfigError};
use crate::containerd::Containerd;
use crate::cri::{self, BindError, Proxy, Upstream};
use crate::gate::adapters::{LayerScanner, RegistrySignatures};
use crate::gate::{Gate, GateError, PolicyState};
use crate::registry::RegistryClient;
use crate::store::{LayerStore, StoreError, VerdictStore};
use crate::vulndb::VulnDb;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("CRI socket: {0}")]
    Bind(#[from] BindError),
    #[error("admin socket: {0}")]
    AdminBind(BindError),
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        addr: String,
        source: std::io::Error,
    },
    #[error("verdict store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Part(#[from] GateError),
    #[error("registry client: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("containerd client: {0}")]
    Containerd(#[from] crate::containerd::ContainerdError),
    #[error("admin socket group: {0}")]
    Peer(#[from] crate::admin::PeerError),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Where the running config comes from. The config itself lives in the gate's policy
/// snapshot ([`Gate::policies`]), replaced whole on reload.
pub struct LiveConfig {
    path: PathBuf,
}

impl LiveConfig {
    pub fn new(path: PathBuf) -> LiveConfig {
        LiveConfig { path }
    }

    /// Re-reads the file and every key, trust root and denylist it names; an invalid
    /// new config (or a bad file) is rejected and `running` kept. Socket paths and
    /// the upstream cannot change without a restart: such a change is refused whole, so
    /// the running daemon never disagrees with its config file.
    /// Returns the new config and the load's warnings (duplicate keys).
    pub fn prepare(&self, running: &Config) -> Result<(Arc<Config>, Vec<String>), ConfigError> {
        let mut new = Config::load(&self.path, false)?;
        let warnings = new.check_files()?.warnings;
        for w in &warnings {
            tracing::warn!("{w}");
        }
        if new.server != running.server {
            return Err(ConfigError::Invalid {
                key: "server".into(),
                message: "the [server] section changes only with a restart".into(),
            });
        }
        Ok((Arc::new(new), warnings))
    }
}

/// The policy snapshot of `config`: every policy's key, trust-root and denylist bytes
/// (as read at load), its verifier, scanner and fingerprint.
pub fn policy_state(config: Arc<Config>) -> PolicyState {
    PolicyState::load(config)
}

/// The running daemon's parts, shared by the CRI gate, the admin API and reloads.
pub struct Daemon {
    live: LiveConfig,
    gate: Arc<Gate>,
    scanner: Arc<LayerScanner>,
    store: Arc<VerdictStore>,
    containerd: Containerd,
    started: Instant,
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    /// One reload at a time (SIGHUP and `pullwarden reload`).
    reload_lock: std::sync::Mutex<()>,
    /// One doctor run at a time (the periodic one and `pullwarden doctor`).
    doctor_lock: tokio::sync::Mutex<()>,
    /// Whether the doctor checks ran once (the first failing run is logged too).
    doctor_ran: std::sync::atomic::AtomicBool,
    /// Re-judges the images on the node after a database import or a reload.
    rescorer: Arc<crate::rescore::Rescorer>,
}

impl Daemon {
    /// Builds every part from `config`; binds nothing.
    pub fn build(config: Config, path: PathBuf, metrics: Arc<Metrics>) -> Result<Daemon, AppError> {
        let cfg = Arc::new(config);
        let live = LiveConfig::new(path);
        let store = Arc::new(VerdictStore::open(
            &cfg.server.state_dir,
            cfg.scan.layer_cache_entries,
        )?);
        if let Some(moved) = store.recovered_from_corruption() {
            tracing::error!(moved_to = %moved.display(), "the verdict store was corrupt; it was set aside and rebuilt empty");
        }
        let containerd = Containerd::new(&cfg.server.upstream, &cfg.server.containerd_namespace)?
            .with_busy_poll(cfg.server.upstream_busy_poll);
        let registry = RegistryClient::new(&cfg.registry)?;
        registry.count_requests(metrics.registry_requests("signatures"));
        let signatures = Arc::new(RegistrySignatures::new(registry));
        let scanner = Arc::new(LayerScanner::new(
            containerd.clone(),
            cfg.server.containerd_root.clone(),
            LayerStore::new(store.clone()),
            VulnDb::default_path(&cfg.server.state_dir),
        )?);
        let db = scanner.clone();
        metrics.set_vulndb_source(move || {
            let st = db.vulndb().status().ok()?;
            let newest = st.newest_modified.as_deref().and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            });
            Some(crate::admin::VulnDbFacts {
                records: st.records,
                newest_modified_unix: newest.map(|t| t.unix_timestamp()),
            })
        });
        scanner.set_fleet(fleet_of(&cfg, &metrics)?);
        scanner.set_vex_registry(Some(signatures.client().clone()));
        let gate = Arc::new(
            Gate::new(
                policy_state(cfg),
                signatures,
                scanner.clone(),
                store.clone(),
                Arc::new(containerd.clone()),
            )
            .with_metrics(metrics.clone()),
        );
        let rescorer = Arc::new(crate::rescore::Rescorer::new(
            store.clone(),
            Arc::new(containerd.clone()),
            metrics.clone(),
        ));
        Ok(Daemon {
            rescorer,
            metrics,
            reload_lock: std::sync::Mutex::new(()),
            doctor_lock: tokio::sync::Mutex::new(()),
            doctor_ran: std::sync::atomic::AtomicBool::new(false),
            live,
            gate,
            scanner,
            store,
            containerd,
            started: Instant::now(),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    pub fn gate(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    /// The running config: the one the gate's policy snapshot was built from.
    pub fn config(&self) -> Arc<Config> {
        self.gate.policies().config.clone()
    }

    /// Runs every doctor check (see [`crate::doctor`]) and sets the
    /// `pullwarden_enforcing` gauge from the result.
    pub async fn doctor(&self) -> crate::doctor::Report {
        use crate::doctor::{self, Check};
        let _one = self.doctor_lock.lock().await;
        let cfg = self.config();
        let mut checks = Vec::new();
        let listen = cfg.server.listen.clone();
        let blocking_cfg = cfg.clone();
        let path = self.live.path.clone();
        let state = self.gate.policies();
        let files = tokio::task::spawn_blocking(move || {
            let mut c = doctor::kubelet_checks(std::path::Path::new("/proc"), &listen);
            c.extend(doctor::policy_checks(&blocking_cfg));
            let prints = |s: &PolicyState| -> Vec<(String, String)> {
                s.config
                    .policies
                    .iter()
                    .map(|p| {
                        let f = match s.fingerprint(&p.name) {
                            Ok(f) => f.to_string(),
                            Err(e) => format!("error: {}", GateError::from(e)),
                        };
                        (p.name.clone(), f)
                    })
                    .collect()
            };
            let on_disk = Config::load(&path, true)
                .map(|c| prints(&policy_state(Arc::new(c))))
                .map_err(|e| e.to_string());
            c.push(doctor::fingerprint_check(&prints(&state), on_disk, &path));
            c
        })
        .await;
        match files {
            Ok(c) => checks.extend(c),
            Err(e) => checks.push(Check::fail(
                "doctor",
                format!("the file checks did not run: {e}"),
                "see the daemon log",
            )),
        }
        let upstream = cfg.server.upstream.display().to_string();
        match self
            .containerd
            .version(doctor::CONTAINERD_HEALTH_TIMEOUT)
            .await
        {
            Ok(v) => {
                checks.push(Check::ok(
                    "containerd",
                    format!("containerd {v} answers on {upstream}"),
                ));
                checks.push(
                    doctor::canary::run(
                        &self.containerd,
                        &cfg,
                        &cfg.server.listen,
                        Some(&self.metrics),
                    )
                    .await,
                );
            }
            Err(e) => {
                checks.push(Check::fail(
                    "containerd",
                    e.to_string(),
                    format!("check containerd (systemctl status containerd) and server.upstream = {upstream}"),
                ));
                checks.push(Check::fail(
                    "canary",
                    "not run: containerd does not answer",
                    "fix containerd first",
                ));
            }
        }
        let since = self
            .metrics
            .last_client_call()
            .map(|t| t.elapsed().unwrap_or_default());
        checks.push(doctor::calls_check(
            since,
            self.started.elapsed(),
            self.metrics.kubelet_connections(),
        ));
        let report = doctor::Report::new(checks);
        let was = self.metrics.enforcing();
        let first = !self
            .doctor_ran
            .swap(true, std::sync::atomic::Ordering::AcqRel);
        self.metrics.set_enforcing(report.enforcing);
        if (was || first) && !report.enforcing {
            for c in report
                .checks
                .iter()
                .filter(|c| c.status == doctor::Status::Fail)
            {
                tracing::error!(check = %c.name, detail = %c.detail, fix = ?c.fix, "this node does not enforce (pullwarden doctor)");
            }
        }
        report
    }

    /// Why the daemon is unhealthy (empty: healthy): containerd does not answer within
    /// [`crate::doctor::CONTAINERD_HEALTH_TIMEOUT`], or an enforcing policy cannot load
    /// its keys (every pull under it would be denied). Also containerd's version.
    fn health(&self, cfg: &Config) -> (Vec<String>, Result<String, String>) {
        let version = self
            .runtime
            .block_on(
                self.containerd
                    .version(crate::doctor::CONTAINERD_HEALTH_TIMEOUT),
            )
            .map_err(|e| e.to_string());
        let mut problems = Vec::new();
        if let Err(e) = &version {
            problems.push(e.clone());
        }
        for p in cfg
            .policies
            .iter()
            .filter(|p| p.mode == crate::config::Mode::Enforce)
        {
            if let Err(e) = crate::doctor::policy_signers(p) {
                problems.push(format!(
                    "enforcing policy {} cannot load its keys: {e}",
                    p.name
                ));
            }
        }
        (problems, version)
    }

    /// Config, keys, trust roots, denylists and the vulnerability database, re-read;
    /// the outcome is `pullwarden_config_last_reload_successful`.
    pub fn reload(&self) -> Result<String, String> {
        let outcome = self.reload_parts();
        self.metrics.record_config_reload(outcome.is_ok());
        outcome
    }

    fn reload_parts(&self) -> Result<String, String> {
        // One reload at a time, and every part is ready before anything is swapped: a
        // reload refused half way (the database busy under an import) changes nothing.
        let _one = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (cfg, warnings) = self
            .live
            .prepare(&self.config())
            .map_err(|e| e.to_string())?;
        self.scanner.reset().map_err(|e| e.to_string())?;
        let fleet = fleet_of(&cfg, &self.metrics).map_err(|e| e.to_string())?;
        // Built from the bytes read by `prepare`: the verifiers, scanners and
        // fingerprints of the new config, swapped in whole below.
        let state = policy_state(cfg.clone());
        self.scanner.set_fleet(fleet);
        let broken: Vec<String> = cfg
            .policies
            .iter()
            .filter_map(|p| {
                state
                    .fingerprint(&p.name)
                    .err()
                    .map(|e| GateError::from(e).to_string())
            })
            .collect();
        self.gate.set_policies(state);
        let mut summary = format!(
            "reloaded {}: {} policies, vulnerability db {}",
            self.live.path.display(),
            cfg.policies.len(),
            self.scanner.vulndb().version()
        );
        if !warnings.is_empty() {
            summary.push_str(&format!("; warnings: {}", warnings.join("; ")));
        }
        if !broken.is_empty() {
            summary.push_str(&format!(
                "; pulls under these fail closed until fixed: {}",
                broken.join("; ")
            ));
        }
        tracing::info!("{summary}");
        self.runtime.spawn(rescore(
            self.rescorer.clone(),
            self.gate.clone(),
            self.scanner.clone(),
            crate::rescore::Trigger::Reload,
        ));
        Ok(summary)
    }

    /// `pullwarden policy test`: the images present on the node judged under the config
    /// at `path` (see [`crate::rescore::what_if`]). A config that does not load is
    /// [`BackendError::Invalid`].
    fn policy_test_at(&self, path: &std::path::Path) -> Result<serde_json::Value, BackendError> {
        let candidate = load_candidate(path).map_err(|e| BackendError::Invalid(e.to_string()))?;
        let signatures: Arc<dyn crate::gate::SignatureSource> = Arc::new(RegistrySignatures::new(
            RegistryClient::new(&candidate.registry)
                .map_err(|e| BackendError::Invalid(e.to_string()))?,
        ));
        let candidate = policy_state(Arc::new(candidate));
        let current = self.gate.policies();
        let db = self.scanner.vulndb();
        let report = self.runtime.block_on(async {
            let present = crate::rescore::PresentImages::present(&self.containerd)
                .await
                .map_err(BackendError::Failed)?;
            Ok::<_, BackendError>(
                crate::rescore::what_if::policy_test(
                    &self.store,
                    &present,
                    &current,
                    &candidate,
                    &db,
                    Some(&signatures),
                )
                .await,
            )
        })?;
        serde_json::to_value(report).map_err(|e| BackendError::Failed(e.to_string()))
    }
}

/// Loads a candidate config as a reload would (the file and every key, trust root and
/// denylist it names). The one place `policy test` reads a config: re-point it with the
/// loader.
pub fn load_candidate(path: &std::path::Path) -> Result<Config, ConfigError> {
    let mut cfg = Config::load(path, true)?;
    cfg.check_files()?;
    Ok(cfg)
}

/// Re-judges the images on the node under the gate's policies and the scanner's
/// database (logged; a failure only means the next pulls judge in full).
async fn rescore(
    rescorer: Arc<crate::rescore::Rescorer>,
    gate: Arc<Gate>,
    scanner: Arc<LayerScanner>,
    trigger: crate::rescore::Trigger,
) {
    let db = match tokio::task::spawn_blocking(move || scanner.vulndb()).await {
        Ok(db) => db,
        Err(e) => {
            tracing::warn!(error = %e, "re-judging skipped");
            return;
        }
    };
    if let Err(e) = rescorer.run(gate.policies(), db, trigger).await {
        tracing::warn!(error = %e, trigger = trigger.as_str(), "re-judging the images on the node failed");
    }
}

/// How often the daemon looks for a new vulnerability database file (`db import`).
const VULNDB_POLL: Duration = Duration::from_secs(2);

/// Re-judges the node's images once at start, then whenever the vulnerability
/// database file changes (`pullwarden db import` beside the running daemon).
async fn rescore_loop<S>(daemon: Arc<Daemon>, stop: S)
where
    S: std::future::Future<Output = ()>,
{
    let mut stop = std::pin::pin!(stop);
    let mut trigger = crate::rescore::Trigger::Start;
    loop {
        let scanner = daemon.scanner.clone();
        let version = tokio::task::spawn_blocking(move || scanner.vulndb().version())
            .await
            .ok();
        if version.is_some() && version != daemon.rescorer.last_db_version() {
            rescore(
                daemon.rescorer.clone(),
                daemon.gate.clone(),
                daemon.scanner.clone(),
                trigger,
            )
            .await;
        }
        trigger = crate::rescore::Trigger::VulnDb;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(VULNDB_POLL) => {}
        }
    }
}

/// The `[fleet]` part of a checked config (its keys built from the bytes
/// `Config::check_files` read), with its own registry client; `None` when it neither
/// publishes nor trusts anyone, or when the config was not checked. Both count into
/// `metrics`.
fn fleet_of(
    cfg: &Config,
    metrics: &Arc<crate::admin::Metrics>,
) -> Result<Option<(Arc<crate::fleet::Fleet>, RegistryClient)>, AppError> {
    let Some(files) = &cfg.fleet_files else {
        return Ok(None);
    };
    let keys = cfg
        .fleet
        .keys_from(|path, _| files.get(path).ok_or(crate::verify::FileRejection::Missing))?;
    if !(keys.consumes() || keys.signer.is_some()) {
        return Ok(None);
    }
    let client = RegistryClient::new(&cfg.registry)?;
    client.count_requests(metrics.registry_requests("fleet"));
    Ok(Some((
        Arc::new(crate::fleet::Fleet::new(keys).with_metrics(metrics.clone())),
        client,
    )))
}

impl AdminBackend for Daemon {
    fn reload(&self) -> Result<String, BackendError> {
        Daemon::reload(self).map_err(BackendError::Failed)
    }

    fn status(&self) -> serde_json::Value {
        let cfg = self.config();
        let (problems, version) = self.health(&cfg);
        let reachable = version.is_ok();
        let state = self.gate.policies();
        let policies: Vec<serde_json::Value> = cfg
            .policies
            .iter()
            .map(|p| {
                let (fingerprint, error) = match state.fingerprint(&p.name) {
                    Ok(f) => (Some(f.to_string()), None),
                    Err(e) => (None, Some(GateError::from(e).to_string())),
                };
                let (signers, signer_error) = match crate::doctor::policy_signers(p) {
                    Ok(n) => (n, None),
                    Err(e) => (None, Some(e)),
                };
                json!({
                    "name": p.name, "mode": crate::policy::evaluate::mode_name(p.mode),
                    "images": p.images, "namespaces": p.namespaces,
                    "fingerprint": fingerprint, "error": error,
                    "signers": signers, "signer_error": signer_error,
                })
            })
            .collect();
        let db = self.scanner.vulndb();
        let vulndb = match db.status() {
            Ok(s) => serde_json::to_value(s).unwrap_or_default(),
            Err(e) => json!({ "error": e.to_string(), "version": db.version() }),
        };
        let last_call = self
            .metrics
            .last_client_call()
            .map(|t| crate::policy::evaluate::rfc3339(time::OffsetDateTime::from(t)));
        json!({
            "healthy": problems.is_empty(),
            "problems": problems,
            "enforcing": self.metrics.enforcing(),
            "last_cri_call": last_call,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs(),
            "config": self.live.path.display().to_string(),
            "listen": cfg.server.listen.display().to_string(),
            "upstream": {
                "socket": cfg.server.upstream.display().to_string(),
                "reachable": reachable,
                "containerd_version": version.as_ref().ok(),
                "error": version.as_ref().err(),
            },
            "containerd_namespace": cfg.server.containerd_namespace,
            "policies": policies,
            "vulndb": vulndb,
        })
    }

    fn doctor(&self) -> Result<serde_json::Value, BackendError> {
        let report = self.runtime.block_on(Daemon::doctor(self));
        serde_json::to_value(report).map_err(|e| BackendError::Failed(e.to_string()))
    }

    fn policy_test(&self, config: &std::path::Path) -> Result<serde_json::Value, BackendError> {
        self.policy_test_at(config)
    }

    fn sbom(&self, digest: &str, format: SbomFormat) -> Result<serde_json::Value, BackendError> {
        let parsed: crate::digest::Digest = digest
            .parse()
            .map_err(|e: crate::digest::DigestError| BackendError::NotFound(e.to_string()))?;
        let verdict = self
            .store
            .latest(digest)
            .map_err(|e| BackendError::Failed(e.to_string()))?;
        let state = self.gate.policies();
        let policy = verdict
            .as_ref()
            .and_then(|v| state.config.policies.iter().find(|p| p.name == v.policy));
        let scanner = state
            .scanner(policy.map(|p| p.name.as_str()))
            .map_err(GateError::from);
        let report = self
            .runtime
            .block_on(async { self.scanner.report(scanner?, &parsed).await })
            .map_err(|e| {
                BackendError::NotFound(format!("{digest} cannot be read from containerd: {e}"))
            })?;
        let subject = crate::scan::sbom::SbomSubject {
            name: verdict
                .map(|v| v.reference)
                .unwrap_or_else(|| digest.to_string()),
            digest: digest.to_string(),
            created: time::OffsetDateTime::now_utc(),
        };
        Ok(format.render(&subject, &report))
    }
}

pub async fn run(config: Config, config_path: PathBuf) -> Result<(), AppError> {
    // Handlers first: a SIGHUP that arrives once the socket exists must reload, not
    // kill (SIGHUP's default action).
    let mut term = signal(SignalKind::terminate()).map_err(AppError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AppError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(AppError::Signals)?;
    let metrics = Arc::new(Metrics::new());
    let daemon = Arc::new(Daemon::build(config, config_path, metrics.clone())?);
    let cfg = daemon.config();
    let listener = cri::bind_socket(&cfg.server.listen, &cfg.server.socket_group)?;
    // The CRI socket reaches containerd's RuntimeService (root-equivalent); the admin
    // socket only verdicts and reloads: each has its own group.
    let admin_listener = cri::bind_socket(&cfg.server.admin, &cfg.server.admin_group)
        .map_err(AppError::AdminBind)?;
    let metrics_listener = match &cfg.server.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Metrics {
                    addr: addr.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let access = PeerAccess::for_group(&cfg.server.admin_group)?;
    let upstream =
        Arc::new(Upstream::new(&cfg.server.upstream).with_busy_poll(cfg.server.upstream_busy_poll));
    let proxy = Proxy::new(upstream, daemon.gate()).with_metrics(metrics.clone());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let reloader = daemon.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    let d = reloader.clone();
                    match tokio::task::spawn_blocking(move || d.reload()).await {
                        Ok(Ok(_)) => tracing::info!("configuration reloaded"),
                        Ok(Err(e)) => tracing::error!(error = %e, "reload rejected; keeping the running configuration"),
                        Err(e) => tracing::error!(error = %e, "reload failed"),
                    }
                }
            }
        }
        let _ = stop_tx.send(true);
    });

    let admin = tokio::spawn(crate::admin::serve(
        admin_listener,
        daemon.store.clone(),
        daemon.clone(),
        access,
        stopped(),
    ));
    let metrics_task = metrics_listener.map(|l| {
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(addr, "metrics on /metrics");
        tokio::spawn(crate::admin::serve_metrics(l, metrics.clone(), stopped()))
    });

    let gc = (!cfg.server.verdict_retention.is_zero()).then(|| {
        tokio::spawn(forget_absent_images(
            daemon.store.clone(),
            daemon.containerd.clone(),
            cfg.server.verdict_retention,
            stopped(),
        ))
    });

    let rescores = tokio::spawn(rescore_loop(daemon.clone(), stopped()));

    let doctor = (!cfg.server.doctor_interval.is_zero()).then(|| {
        tokio::spawn(doctor_loop(
            daemon.clone(),
            cfg.server.doctor_interval,
            stopped(),
        ))
    });

    tracing::info!(
        listen = %cfg.server.listen.display(),
        upstream = %cfg.server.upstream.display(),
        admin = %cfg.server.admin.display(),
        policies = cfg.policies.len(),
        "pullwarden serving"
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    cri::server::serve(listener, proxy, stopped(), cfg.server.drain_timeout).await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = admin.await;
    if let Some(m) = metrics_task {
        let _ = m.await;
    }
    if let Some(gc) = gc {
        gc.abort();
    }
    if let Some(d) = doctor {
        d.abort();
    }
    rescores.abort();
    let _ = std::fs::remove_file(&cfg.server.listen);
    let _ = std::fs::remove_file(&cfg.server.admin);
    tracing::info!("stopped");
    Ok(())
}

/// The first doctor run this long after start (the sockets are served by then).
const DOCTOR_FIRST: Duration = Duration::from_secs(3);

/// Runs the doctor checks every `interval` for the `pullwarden_enforcing` gauge.
async fn doctor_loop<S>(daemon: Arc<Daemon>, interval: Duration, stop: S)
where
    S: std::future::Future<Output = ()>,
{
    let mut stop = std::pin::pin!(stop);
    let mut wait = DOCTOR_FIRST.min(interval);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = interval;
        let report = daemon.doctor().await;
        tracing::debug!(enforcing = report.enforcing, "doctor checks ran");
    }
}

/// First sweep this long after start (the node settles), then one per interval.
const GC_FIRST: Duration = Duration::from_secs(300);
const GC_INTERVAL: Duration = Duration::from_secs(3600);

/// Forgets, now and then, the verdicts of images containerd no longer has, once they are
/// older than `retention` (`server.verdict_retention`). Skipped whenever containerd
/// cannot list its images: an empty list read as "nothing present" would forget all.
async fn forget_absent_images<S>(
    store: Arc<VerdictStore>,
    containerd: Containerd,
    retention: Duration,
    stop: S,
) where
    S: std::future::Future<Output = ()>,
{
    let mut stop = std::pin::pin!(stop);
    let mut wait = GC_FIRST;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = GC_INTERVAL;
        let present = match containerd.image_digests().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "verdict sweep skipped: containerd did not list its images");
                continue;
            }
        };
        let cutoff = crate::policy::evaluate::rfc3339(time::OffsetDateTime::now_utc() - retention);
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.forget_absent(&present, &cutoff)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                images = n,
                ?retention,
                "forgot the verdicts of images gone from the node"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "verdict sweep failed"),
            Err(e) => tracing::warn!(error = %e, "verdict sweep failed"),
        }
    }
}
