//! The TOML form: plain serde structs mirroring the file, every field optional with a
//! default; unknown keys are refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub registry: RawRegistry,
    #[serde(default)]
    pub scan: RawScanLimits,
    #[serde(default)]
    pub policy: Vec<RawPolicy>,
    #[serde(default)]
    pub fleet: super::RawFleet,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<PathBuf>,
    pub upstream: Option<PathBuf>,
    pub admin: Option<PathBuf>,
    pub metrics: Option<String>,
    pub containerd_namespace: Option<String>,
    /// containerd's root directory (holds `io.containerd.content.v1.content`). When
    /// unset it is asked from containerd's introspection API.
    pub containerd_root: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub socket_group: Option<String>,
    /// Group of the admin socket (the CLI), apart from `socket_group` (the CRI socket,
    /// which reaches containerd's whole RuntimeService). Default "root".
    pub admin_group: Option<String>,
    /// Serve `metrics` on a non-loopback address (refused without it).
    pub metrics_public: Option<bool>,
    /// How long a draining daemon waits for calls in flight on SIGTERM.
    pub drain_timeout: Option<String>,
    /// How long a forwarded call polls for containerd's answer before sleeping.
    pub upstream_busy_poll: Option<String>,
    /// Verdicts of images no longer in containerd are forgotten this long after they
    /// were decided ("0s": never).
    pub verdict_retention: Option<String>,
    /// A deny that rests on what the registry says (no signature, no trusted signer, a
    /// signature that failed to verify) is verified again on a pull this long after it
    /// was decided ("0s": on every pull). Denies from the image's own bytes stay cached.
    pub recheck_denied_after: Option<String>,
    /// Log format: "text" (default on a terminal) or "json".
    pub log_format: Option<String>,
    /// How often the daemon runs the doctor checks for `pullwarden_enforcing` ("0s": never).
    pub doctor_interval: Option<String>,
    /// Images re-judged from their stored inventories after a database import or a
    /// reload: "report" (record only, the default) or "enforce" (ImageStatus also
    /// reports a newly denied image absent).
    pub rescore: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    pub plain_http: Option<Vec<String>>,
    pub timeout: Option<String>,
    /// A docker `config.json` with credentials used when a pull carries none.
    pub auth_file: Option<PathBuf>,
    /// Largest manifest/index/signature document fetched, in bytes.
    pub max_manifest_bytes: Option<u64>,
    /// Largest blob (signature layer, bundle, attestation) fetched, in bytes.
    pub max_blob_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScanLimits {
    pub max_layer_bytes: Option<u64>,
    pub max_layer_entries: Option<u64>,
    pub max_path_bytes: Option<u64>,
    pub max_secret_file_bytes: Option<u64>,
    pub layer_cache_entries: Option<u64>,
    pub parallel_layers: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: Option<String>,
    pub images: Option<Vec<String>>,
    pub namespaces: Option<Vec<String>>,
    pub mode: Option<String>,
    pub on_error: Option<String>,
    pub signatures: Option<RawSignatures>,
    pub scan: Option<RawScanPolicy>,
    pub vex: Option<RawVex>,
}

/// `[policy.vex]`: who may suppress this policy's findings with VEX.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVex {
    /// Public keys whose signed VEX attestations count (PEM files).
    pub keys: Option<Vec<PathBuf>>,
    /// Keyless VEX signers (same shape as `[[policy.signatures.keyless]]`).
    pub keyless: Option<Vec<RawKeyless>>,
    /// The sigstore trusted_root.json for the keyless VEX signers; default:
    /// `[policy.signatures] trusted_root`.
    pub trusted_root: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignatures {
    pub keys: Option<Vec<PathBuf>>,
    pub threshold: Option<usize>,
    pub trusted_root: Option<PathBuf>,
    pub keyless: Option<Vec<RawKeyless>>,
    /// Where a signature must sit for a multi-platform image: "any" (index or platform
    /// manifest, the default), "platform" (the platform manifest's own digest).
    pub require_on: Option<String>,
    /// Require a transparency-log proof (Rekor SET or inclusion proof) for key-signed
    /// signatures too. Keyless signatures always need one.
    pub require_tlog: Option<bool>,
    /// Repositories a signature's `docker-reference` may name besides the image's own
    /// (globs), e.g. when images are signed before being copied to a mirror.
    pub allowed_references: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawKeyless {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub subject_regex: Option<String>,
    /// Fulcio certificate extensions that must match exactly, by name
    /// (e.g. `github_workflow_repository = "acme/app"`) or dotted OID.
    pub extensions: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScanPolicy {
    pub enabled: Option<bool>,
    pub secrets: Option<String>,
    pub max_severity: Option<String>,
    pub ignore_unfixed: Option<bool>,
    pub allow: Option<Vec<RawVulnException>>,
    pub deny_setuid: Option<bool>,
    pub deny_world_writable: Option<bool>,
    pub deny_devices: Option<bool>,
    pub denylist: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawVulnException {
    pub id: Option<String>,
    pub until: Option<String>,
    pub reason: Option<String>,
}
