//! Configuration in two stages: `RawConfig` mirrors the TOML file (plain serde, every
//! field optional with a default), `Config::try_from(RawConfig)` validates it into typed
//! values (globs compiled, durations parsed, cross-field rules checked). Errors name the
//! key; `Config::load` adds the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::GlobSet;
use regex::Regex;
use serde::Serialize;

use crate::report::Severity;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/pullwarden/config.toml";

mod files;
mod fleet;
mod policy;
mod raw;
pub use files::{FileReport, MAX_DENYLIST_BYTES, MAX_TRUST_ROOT_BYTES, PolicyFiles};
pub use fleet::{DEFAULT_MAX_AGE, DEFAULT_MAX_EXAMINED, FleetConfig, RawFleet};
use policy::validate_policy;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} does not parse: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: {source}")]
    InFile {
        path: PathBuf,
        source: Box<ConfigError>,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

pub use raw::*;

// ---------------------------------------------------------------- validated form

#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub registry: Registry,
    pub scan: ScanLimits,
    pub policies: Vec<Policy>,
    /// `[fleet]`: scan attestations published and trusted.
    pub fleet: FleetConfig,
    /// The `[fleet]` key files as read by [`Config::check_files`] (None before): the
    /// daemon builds the fleet's keys from these bytes.
    pub fleet_files: Option<std::sync::Arc<PolicyFiles>>,
    /// Where the config came from (None when built in memory).
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Server {
    pub listen: PathBuf,
    pub upstream: PathBuf,
    pub admin: PathBuf,
    pub metrics: Option<String>,
    pub containerd_namespace: String,
    pub containerd_root: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// Group of the CRI socket (0660). Its members reach containerd's RuntimeService
    /// through the proxy: root-equivalent.
    pub socket_group: String,
    /// Group of the admin socket (0660) and of the peers the admin API accepts.
    pub admin_group: String,
    /// Whether `metrics` may listen beyond loopback.
    pub metrics_public: bool,
    #[serde(with = "humantime_serde_compat")]
    pub drain_timeout: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub upstream_busy_poll: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub verdict_retention: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub recheck_denied_after: Duration,
    pub log_format: LogFormat,
    /// How often the daemon runs the doctor checks (live canary included) to refresh
    /// the `pullwarden_enforcing` gauge; zero: only on `pullwarden doctor`.
    #[serde(with = "humantime_serde_compat")]
    pub doctor_interval: Duration,
    /// What a re-judged image's new verdict does (`[server] rescore`).
    pub rescore: Rescore,
}

/// `[server] rescore`: when a new vulnerability database or policy re-judges the images
/// already on the node from their stored inventories, `report` (the default) records
/// the new verdicts only; `enforce` also makes ImageStatus report a newly denied image
/// absent, so no new container starts from it (running containers are never touched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rescore {
    #[default]
    Report,
    Enforce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registry {
    pub plain_http: Vec<String>,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    pub auth_file: Option<PathBuf>,
    pub max_manifest_bytes: u64,
    pub max_blob_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScanLimits {
    /// Uncompressed bytes per layer; past this the layer is a decompression bomb.
    pub max_layer_bytes: u64,
    pub max_layer_entries: u64,
    pub max_path_bytes: u64,
    /// Files larger than this are not searched for secrets (reported as skipped).
    pub max_secret_file_bytes: u64,
    /// Layer results kept in the cache (least recently used go first).
    pub layer_cache_entries: u64,
    pub parallel_layers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Audit,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    Deny,
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingAction {
    Deny,
    Warn,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureLocation {
    /// The index digest or the platform manifest digest.
    Any,
    /// Only the platform manifest digest.
    Platform,
}

#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub name: String,
    pub images: Vec<String>,
    pub namespaces: Vec<String>,
    pub mode: Mode,
    pub on_error: OnError,
    pub signatures: Option<SignaturePolicy>,
    pub scan: ScanPolicy,
    /// `[policy.vex]`: who may suppress findings with VEX. `None`: the signers the
    /// policy trusts for the image itself (`[policy.signatures] keys` and `keyless`).
    pub vex: Option<VexPolicy>,
    #[serde(skip)]
    image_globs: GlobSet,
    #[serde(skip)]
    namespace_globs: GlobSet,
    /// The key, trust-root and denylist files as read at load ([`Config::check_files`]):
    /// the verifier, the scanner and the fingerprint all use these bytes, so a file
    /// changed or removed after the load changes nothing until the next reload.
    #[serde(skip)]
    pub files: std::sync::Arc<PolicyFiles>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignaturePolicy {
    pub keys: Vec<PathBuf>,
    pub threshold: usize,
    pub trusted_root: Option<PathBuf>,
    pub keyless: Vec<KeylessIdentity>,
    pub require_on: SignatureLocation,
    pub require_tlog: bool,
    pub allowed_references: Vec<String>,
    #[serde(skip)]
    pub allowed_reference_globs: GlobSet,
}

/// `[policy.vex]`, validated.
#[derive(Debug, Clone, Serialize)]
pub struct VexPolicy {
    /// Public key files whose signed VEX attestations may suppress findings.
    pub keys: Vec<PathBuf>,
    /// Keyless (Fulcio certificate + Rekor entry) identities whose signed VEX
    /// attestations may suppress findings.
    pub keyless: Vec<KeylessIdentity>,
    /// `[policy.vex] trusted_root` as written; the keyless VEX signers are checked
    /// against [`VexPolicy::trust_root`].
    pub trusted_root: Option<PathBuf>,
}

impl VexPolicy {
    /// The trust root of the keyless VEX signers: `[policy.vex] trusted_root`, else the
    /// policy's `[policy.signatures] trusted_root` (`signatures`).
    pub fn trust_root<'a>(&'a self, signatures: Option<&'a SignaturePolicy>) -> Option<&'a Path> {
        self.trusted_root
            .as_deref()
            .or_else(|| signatures.and_then(|s| s.trusted_root.as_deref()))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KeylessIdentity {
    pub issuer: String,
    pub subject: Option<String>,
    #[serde(serialize_with = "ser_regex")]
    pub subject_regex: Option<Regex>,
    pub extensions: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanPolicy {
    pub enabled: bool,
    pub secrets: FindingAction,
    pub max_severity: Severity,
    pub ignore_unfixed: bool,
    pub allow: Vec<VulnException>,
    pub deny_setuid: bool,
    pub deny_world_writable: bool,
    pub deny_devices: bool,
    pub denylist: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VulnException {
    pub id: String,
    /// Last day (UTC, inclusive) the exception applies; None = no expiry.
    #[serde(serialize_with = "ser_date")]
    pub until: Option<time::Date>,
    pub reason: String,
}

fn ser_regex<S: serde::Serializer>(r: &Option<Regex>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.serialize_some(r.as_str()),
        None => s.serialize_none(),
    }
}

fn ser_date<S: serde::Serializer>(d: &Option<time::Date>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.to_string()),
        None => s.serialize_none(),
    }
}

mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }
}

impl Default for ScanPolicy {
    fn default() -> Self {
        ScanPolicy {
            enabled: true,
            secrets: FindingAction::Deny,
            max_severity: Severity::High,
            ignore_unfixed: false,
            allow: Vec::new(),
            deny_setuid: false,
            deny_world_writable: false,
            deny_devices: false,
            denylist: None,
        }
    }
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_layer_bytes: 8 << 30,
            max_layer_entries: 2_000_000,
            max_path_bytes: 4096,
            max_secret_file_bytes: 4 << 20,
            layer_cache_entries: 20_000,
            parallel_layers: 2,
        }
    }
}

impl Default for Config {
    #[allow(clippy::expect_used)] // the defaults are valid: `config::tests` proves it
    fn default() -> Self {
        Config::try_from(RawConfig::default()).expect("defaults are valid")
    }
}

impl Config {
    /// Reads and validates a config file. A missing file at the default path means
    /// "all defaults"; a missing file named explicitly is an error.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let mut cfg = Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => ConfigError::InFile {
                path: path.to_path_buf(),
                source: Box::new(other),
            },
        })?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<memory>"),
            message: e.to_string().trim_end().to_string(),
        })?;
        Config::try_from(raw)
    }

    /// The first policy whose image globs match `reference` and whose namespace globs
    /// match `namespace` (an empty namespace — a pull without a pod — matches `*`).
    pub fn policy_for(&self, reference: &str, namespace: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.matches_image(reference) && p.matches_namespace(namespace))
    }
}

impl Policy {
    /// `reference` should be normalized (`docker.io/library/nginx:latest`). Matches when
    /// either the whole reference or the bare repository (tag/digest cut) matches.
    pub fn matches_image(&self, reference: &str) -> bool {
        // Another spelling of the same registry host must not escape the policy.
        let reference = crate::reference::canonical_host(reference);
        self.image_globs.is_match(&*reference)
            || self
                .image_globs
                .is_match(crate::reference::repository_of(&reference))
    }

    pub fn matches_namespace(&self, namespace: &str) -> bool {
        self.namespace_globs.is_match(namespace)
    }
}

/// How long verdicts of images gone from the node are kept by default.
pub const DEFAULT_VERDICT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// `server.recheck_denied_after`: long enough that the kubelet's quick retries of one
/// pull share an answer, short enough that an image signed just after its push is
/// admitted on the next back-off retry (the kubelet backs off 10s, 20s, 40s, …).
pub const DEFAULT_RECHECK_DENIED_AFTER: Duration = Duration::from_secs(30);
/// `server.upstream_busy_poll` default: long enough for containerd to answer every quick
/// call (ImageStatus and ListImages take 0.1 to 1 ms), short enough that a PullImage
/// costs nothing noticeable.
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_millis(2);
/// How often the daemon re-runs the checks for the `pullwarden_enforcing` gauge (default).
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(60);

/// Upper bound for `server.upstream_busy_poll`: beyond this, polling only burns CPU.
const MAX_BUSY_POLL: Duration = Duration::from_millis(100);

fn parse_duration(key: &str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s)
        .map_err(|e| invalid(key, format!("{s:?} is not a duration like \"10s\": {e}")))
}

fn parse_enum<T: Copy>(key: &str, value: &str, options: &[(&str, T)]) -> Result<T, ConfigError> {
    options
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            invalid(key, format!("{value:?} is not one of {}", names.join(", ")))
        })
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, Self::Error> {
        let s = raw.server;
        let log_format = match s.log_format.as_deref() {
            None => LogFormat::Text,
            Some(v) => parse_enum(
                "server.log_format",
                v,
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
        };
        let server = Server {
            listen: s
                .listen
                .unwrap_or_else(|| "/run/pullwarden/cri.sock".into()),
            upstream: s
                .upstream
                .unwrap_or_else(|| "/run/containerd/containerd.sock".into()),
            admin: s
                .admin
                .unwrap_or_else(|| "/run/pullwarden/admin.sock".into()),
            metrics: match s.metrics {
                None => Some("127.0.0.1:9469".into()),
                Some(m) if m.is_empty() => None,
                Some(m) => {
                    let addr = m.parse::<std::net::SocketAddr>().map_err(|e| {
                        invalid("server.metrics", format!("{m:?} is not HOST:PORT: {e}"))
                    })?;
                    // Metrics name policies, registries and error kinds: not for the
                    // network unless the operator says so.
                    if !addr.ip().is_loopback() && !s.metrics_public.unwrap_or(false) {
                        return Err(invalid(
                            "server.metrics",
                            format!(
                                "{m:?} is not a loopback address; set server.metrics_public = true to serve metrics beyond this host"
                            ),
                        ));
                    }
                    Some(m)
                }
            },
            metrics_public: s.metrics_public.unwrap_or(false),
            containerd_namespace: s.containerd_namespace.unwrap_or_else(|| "k8s.io".into()),
            containerd_root: s.containerd_root,
            state_dir: s.state_dir.unwrap_or_else(|| "/var/lib/pullwarden".into()),
            socket_group: s.socket_group.unwrap_or_else(|| "root".into()),
            admin_group: s.admin_group.unwrap_or_else(|| "root".into()),
            drain_timeout: match s.drain_timeout {
                None => Duration::from_secs(30),
                Some(d) => parse_duration("server.drain_timeout", &d)?,
            },
            upstream_busy_poll: match s.upstream_busy_poll {
                None => DEFAULT_BUSY_POLL,
                Some(d) => {
                    let v = parse_duration("server.upstream_busy_poll", &d)?;
                    if v > MAX_BUSY_POLL {
                        return Err(invalid(
                            "server.upstream_busy_poll",
                            format!(
                                "{d:?} is longer than the 100ms this may spin (\"0s\" turns it off)"
                            ),
                        ));
                    }
                    v
                }
            },
            verdict_retention: match s.verdict_retention {
                None => DEFAULT_VERDICT_RETENTION,
                Some(d) => parse_duration("server.verdict_retention", &d)?,
            },
            recheck_denied_after: match s.recheck_denied_after {
                None => DEFAULT_RECHECK_DENIED_AFTER,
                Some(d) => parse_duration("server.recheck_denied_after", &d)?,
            },
            log_format,
            doctor_interval: match s.doctor_interval {
                None => GAUGE_INTERVAL,
                Some(d) => parse_duration("server.doctor_interval", &d)?,
            },
            rescore: match s.rescore.as_deref() {
                None => Rescore::Report,
                Some(v) => parse_enum(
                    "server.rescore",
                    v,
                    &[("report", Rescore::Report), ("enforce", Rescore::Enforce)],
                )?,
            },
        };
        for (key, p) in [
            ("server.listen", &server.listen),
            ("server.upstream", &server.upstream),
            ("server.admin", &server.admin),
            ("server.state_dir", &server.state_dir),
        ] {
            if !p.is_absolute() {
                return Err(invalid(
                    key,
                    format!("{} is not an absolute path", p.display()),
                ));
            }
        }
        if server.listen == server.upstream {
            return Err(invalid(
                "server.listen",
                "must differ from server.upstream (pullwarden would call itself)",
            ));
        }
        if server.listen == server.admin {
            return Err(invalid("server.admin", "must differ from server.listen"));
        }
        if server.containerd_namespace.is_empty() {
            return Err(invalid("server.containerd_namespace", "must not be empty"));
        }

        let r = raw.registry;
        let registry = Registry {
            plain_http: r.plain_http.unwrap_or_default(),
            timeout: match r.timeout {
                None => Duration::from_secs(10),
                Some(t) => parse_duration("registry.timeout", &t)?,
            },
            auth_file: r.auth_file,
            max_manifest_bytes: r.max_manifest_bytes.unwrap_or(4 << 20),
            max_blob_bytes: r.max_blob_bytes.unwrap_or(16 << 20),
        };
        if registry.timeout.is_zero() {
            return Err(invalid("registry.timeout", "must be greater than zero"));
        }

        let d = ScanLimits::default();
        let sl = raw.scan;
        let scan = ScanLimits {
            max_layer_bytes: sl.max_layer_bytes.unwrap_or(d.max_layer_bytes),
            max_layer_entries: sl.max_layer_entries.unwrap_or(d.max_layer_entries),
            max_path_bytes: sl.max_path_bytes.unwrap_or(d.max_path_bytes),
            max_secret_file_bytes: sl.max_secret_file_bytes.unwrap_or(d.max_secret_file_bytes),
            layer_cache_entries: sl.layer_cache_entries.unwrap_or(d.layer_cache_entries),
            parallel_layers: sl.parallel_layers.unwrap_or(d.parallel_layers),
        };
        if scan.parallel_layers == 0 {
            return Err(invalid("scan.parallel_layers", "must be at least 1"));
        }

        let mut policies = Vec::with_capacity(raw.policy.len());
        for (i, p) in raw.policy.into_iter().enumerate() {
            let policy = validate_policy(i, p)?;
            if policies.iter().any(|q: &Policy| q.name == policy.name) {
                return Err(invalid(
                    format!("policy[{i}].name"),
                    format!("duplicate policy name {:?}", policy.name),
                ));
            }
            policies.push(policy);
        }

        Ok(Config {
            server,
            registry,
            scan,
            policies,
            fleet: FleetConfig::try_from(raw.fleet)?,
            fleet_files: None,
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN_EXAMPLE: &str = r#"
[server]
listen = "/run/pullwarden/cri.sock"
upstream = "/run/containerd/containerd.sock"
admin = "/run/pullwarden/admin.sock"
metrics = "127.0.0.1:9469"
containerd_namespace = "k8s.io"
state_dir = "/var/lib/pullwarden"
socket_group = "root"

[registry]
plain_http = ["127.0.0.1:5000"]
timeout = "10s"

[[policy]]
name = "prod"
images = ["registry.example.com/prod/**"]
namespaces = ["*"]
mode = "enforce"
on_error = "deny"

[policy.signatures]
keys = ["/etc/pullwarden/keys/release-2026q4.pub", "/etc/pullwarden/keys/release-2027q1.pub"]
threshold = 1
trusted_root = "/etc/pullwarden/trusted_root.json"
[[policy.signatures.keyless]]
issuer = "https://token.actions.githubusercontent.com"
subject_regex = "^https://github.com/acme/"

[policy.scan]
secrets = "deny"
max_severity = "high"
ignore_unfixed = false
allow = [{ id = "CVE-2024-0001", until = "2027-01-01", reason = "not reachable" }]
deny_setuid = false
denylist = "/etc/pullwarden/denylist.txt"
"#;

    #[test]
    fn design_example_parses() {
        let c = Config::parse(DESIGN_EXAMPLE).unwrap();
        assert_eq!(c.registry.plain_http, vec!["127.0.0.1:5000"]);
        assert_eq!(c.registry.timeout, Duration::from_secs(10));
        let p = &c.policies[0];
        assert_eq!(p.mode, Mode::Enforce);
        let s = p.signatures.as_ref().unwrap();
        assert_eq!(s.keys.len(), 2);
        assert_eq!(s.keyless.len(), 1);
        assert_eq!(p.scan.max_severity, Severity::High);
        assert_eq!(p.scan.allow[0].until.unwrap().year(), 2027);
    }

    #[test]
    fn defaults_are_sane() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.server.listen, PathBuf::from("/run/pullwarden/cri.sock"));
        assert_eq!(c.server.containerd_namespace, "k8s.io");
        assert_eq!(c.server.upstream_busy_poll, Duration::from_millis(2));
        assert_eq!(c.server.verdict_retention, DEFAULT_VERDICT_RETENTION);
        assert_eq!(c.server.recheck_denied_after, Duration::from_secs(30));
        let week = Config::parse("[server]\nverdict_retention = \"7d\"").unwrap();
        assert_eq!(
            week.server.verdict_retention,
            Duration::from_secs(7 * 86400)
        );
        assert!(c.policies.is_empty());
        let off = Config::parse("[server]\nupstream_busy_poll = \"0s\"").unwrap();
        assert!(off.server.upstream_busy_poll.is_zero());
    }

    #[test]
    fn globs_and_namespaces() {
        let c = Config::parse(
            r#"
[[policy]]
name = "kube-system"
images = ["**"]
namespaces = ["kube-system"]
mode = "off"
[[policy]]
name = "prod"
images = ["registry.example.com/prod/*"]
[[policy]]
name = "rest"
images = ["**"]
mode = "audit"
"#,
        )
        .unwrap();
        let pick = |r: &str, ns: &str| c.policy_for(r, ns).map(|p| p.name.as_str());
        assert_eq!(
            pick("registry.example.com/prod/app:v1", "default"),
            Some("prod")
        );
        assert_eq!(
            pick("registry.example.com/prod/app@sha256:abc", "x"),
            Some("prod")
        );
        // `*` does not cross a path segment.
        assert_eq!(
            pick("registry.example.com/prod/team/app:v1", "x"),
            Some("rest")
        );
        assert_eq!(
            pick("registry.example.com/prod/app:v1", "kube-system"),
            Some("kube-system")
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[server]\nlisten = \"relative.sock\"", "server.listen"),
            ("[registry]\ntimeout = \"soon\"", "registry.timeout"),
            (
                "[server]\nupstream_busy_poll = \"1s\"",
                "server.upstream_busy_poll",
            ),
            (
                "[server]\nupstream_busy_poll = \"fast\"",
                "server.upstream_busy_poll",
            ),
            (
                "[server]\nverdict_retention = \"a month\"",
                "server.verdict_retention",
            ),
            ("[[policy]]\nimages=[\"**\"]", "policy[0].name"),
            ("[[policy]]\nname=\"a\"", "policy[0].images"),
            (
                "[[policy]]\nname=\"a\"\nimages=[\"**\"]\nmode=\"strict\"",
                "policy[0].mode",
            ),
            (
                "[[policy]]\nname=\"a\"\nimages=[\"**\"]\n[policy.signatures]\nkeys=[\"/k\"]\nthreshold=2",
                "policy[0].signatures.threshold",
            ),
            (
                "[[policy]]\nname=\"a\"\nimages=[\"**\"]\n[policy.signatures]\n[[policy.signatures.keyless]]\nissuer=\"i\"\nsubject=\"s\"",
                "policy[0].signatures.trusted_root",
            ),
            (
                "[[policy]]\nname=\"a\"\nimages=[\"**\"]\n[policy.scan]\nmax_severity=\"severe\"",
                "policy[0].scan.max_severity",
            ),
            (
                "[[policy]]\nname=\"a\"\nimages=[\"**\"]\n[policy.scan]\nallow=[{id=\"X\",until=\"next year\"}]",
                "policy[0].scan.allow[0].until",
            ),
            (
                "[[policy]]\nname=\"a\"\nimages=[\"**\"]\n[[policy]]\nname=\"a\"\nimages=[\"**\"]",
                "policy[1].name",
            ),
        ];
        for (text, key) in cases {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.starts_with(key), "{text:?}: {err}");
        }
        assert!(matches!(
            Config::parse("[server]\nlisten = 3"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::parse("[server]\nunknown_field = 1"),
            Err(ConfigError::Parse { .. })
        ));
        assert!(Config::parse("[[[").is_err());
    }

    #[test]
    fn metrics_stay_on_loopback_unless_public() {
        for addr in ["127.0.0.1:9469", "[::1]:9469", "127.0.0.2:1"] {
            let c = Config::parse(&format!("[server]\nmetrics = {addr:?}")).unwrap();
            assert_eq!(c.server.metrics.as_deref(), Some(addr));
        }
        for addr in ["0.0.0.0:9469", "[::]:9469", "10.0.0.5:9469"] {
            let e = Config::parse(&format!("[server]\nmetrics = {addr:?}"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("server.metrics") && e.contains("metrics_public = true"),
                "{e}"
            );
            let c = Config::parse(&format!(
                "[server]\nmetrics = {addr:?}\nmetrics_public = true"
            ))
            .unwrap();
            assert!(c.server.metrics_public);
        }
    }

    #[test]
    fn admin_group_is_apart_from_socket_group() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.server.socket_group, "root");
        assert_eq!(c.server.admin_group, "root");
        // Opening the CLI to a group does not open the CRI socket to it, nor back.
        let c = Config::parse("[server]\nadmin_group = \"adm\"").unwrap();
        assert_eq!(
            (
                c.server.socket_group.as_str(),
                c.server.admin_group.as_str()
            ),
            ("root", "adm")
        );
        let c = Config::parse("[server]\nsocket_group = \"kube\"").unwrap();
        assert_eq!(c.server.admin_group, "root");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[registry]\ntimeout = \"x\"").unwrap();
        let e = Config::load(&p, true).unwrap_err().to_string();
        assert!(
            e.contains("c.toml") && e.contains("registry.timeout"),
            "{e}"
        );
        let missing = dir.path().join("nope.toml");
        assert!(Config::load(&missing, true).is_err());
        assert!(Config::load(&missing, false).is_ok());
    }
}

/// The effective configuration as printed by `policy check`: every default filled in.
#[derive(Debug, Serialize)]
pub struct Effective<'a> {
    pub server: &'a Server,
    pub registry: &'a Registry,
    pub scan: &'a ScanLimits,
    pub policy: &'a [Policy],
    pub fleet: &'a FleetConfig,
}

impl<'a> From<&'a Config> for Effective<'a> {
    fn from(c: &'a Config) -> Self {
        Effective {
            server: &c.server,
            registry: &c.registry,
            scan: &c.scan,
            policy: &c.policies,
            fleet: &c.fleet,
        }
    }
}
