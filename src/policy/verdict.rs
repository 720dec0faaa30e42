//! The verdict: the one record a pull produces, stored by digest and shown by the CLI.

use serde::{Deserialize, Serialize};

use crate::config::Mode;
use crate::digest::Digest;
use crate::report::{FileFinding, SecretFinding, SignatureReport, Vulnerability};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    /// `allow` | `deny`: the decision as verdicts, history, the audit log and metrics
    /// spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// Why a deny happened, which decides the error shape the kubelet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenyKind {
    /// Signature requirement not met → `UNKNOWN` + `SignatureValidationFailed:`.
    Signature,
    /// Secrets, files, vulnerabilities, integrity → `PERMISSION_DENIED`.
    Scan,
    /// The registry could not be reached or answered badly → `RegistryUnavailable:`.
    Registry,
    /// containerd or another local part failed → `UNAVAILABLE`.
    Infrastructure,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Findings {
    pub secrets: Vec<SecretFinding>,
    pub vulnerabilities: Vec<Vulnerability>,
    pub files: Vec<FileFinding>,
}

/// Verdict JSON: the fields named in DESIGN.md are fixed; others may be added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Manifest digest (the index digest for a multi-platform image).
    pub digest: Digest,
    /// Platform manifest digest when `digest` is an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_digest: Option<Digest>,
    pub reference: String,
    pub decision: Decision,
    /// `enforce` | `audit` | `off`.
    #[serde(deserialize_with = "mode_by_name")]
    pub mode: Mode,
    pub policy: String,
    /// Every reason for the decision, most important first; empty for a clean allow.
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_kind: Option<DenyKind>,
    /// True when `enforce` would have denied but the mode is `audit`.
    #[serde(default)]
    pub would_deny: bool,
    /// Whether the decision took effect on the pull: true under `enforce`, false under
    /// `audit` (an audit-mode deny let the image through). Derived from `mode`; verdicts
    /// stored before this field existed get it from there on read.
    #[serde(default)]
    pub enforced: bool,
    pub signatures: SignatureReport,
    pub findings: Findings,
    /// Findings the policy reported but did not deny for (warn, allow-listed, expired exceptions).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Number of packages in the inventory.
    #[serde(default)]
    pub packages: usize,
    /// RFC 3339.
    pub decided_at: String,
    pub policy_fingerprint: String,
    pub db_version: String,
    /// Where the layer results came from: `{"kind": "local"|"attested", "signer",
    /// "attested_at"}` (absent when nothing was scanned, and in verdicts stored before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_source: Option<crate::fleet::ScanSource>,
    /// VEX applied on the node (the same shape as `pullwarden scan --json`'s `vex`):
    /// `suppressed` findings, each with `id`, `package`, `installed_version`, `purl`,
    /// `status`, `justification`, `signer`, `source` and the `finding` itself; and
    /// `ignored` statements with their `reason`. Empty in verdicts stored before.
    #[serde(default)]
    pub vex: crate::vex::VexOutcome,
    /// How the verdict was reached: `evaluated` (a pull judged it) or `rescored` (judged
    /// again from the stored inventory after a database import or a reload). Absent in
    /// verdicts stored before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<How>,
}

impl Verdict {
    /// Derived fields filled in from the stored ones (a verdict read back from the store
    /// or another version of pullwarden).
    pub fn normalize(mut self) -> Verdict {
        self.enforced = self.mode == Mode::Enforce;
        self
    }

    /// An audit-mode deny: recorded, but the image was let through.
    pub fn audit_allowed(&self) -> bool {
        self.decision == Decision::Deny && !self.enforced
    }
}

impl Mode {
    /// `enforce` | `audit` | `off`: the mode as the config, verdicts, history and metrics
    /// spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
            Mode::Off => "off",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn mode_by_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
    let name = String::deserialize(d)?;
    [Mode::Enforce, Mode::Audit, Mode::Off]
        .into_iter()
        .find(|m| m.as_str() == name)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("mode {name:?} is not one of enforce, audit, off"))
        })
}

/// How a pull's verdict was reached (the `how` of verdict JSON and the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// Evaluated for this pull.
    Evaluated,
    /// Answered from a stored verdict.
    Cached,
    /// Joined a concurrent evaluation of the same digest.
    Shared,
    /// Judged again from the stored inventory (a new vulnerability database, a reload).
    Rescored,
    /// The evaluation failed.
    Error,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::Evaluated => "evaluated",
            How::Cached => "cached",
            How::Shared => "shared",
            How::Rescored => "rescored",
            How::Error => "error",
        }
    }
}

impl std::fmt::Display for How {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for How {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
