//! The plain data a scan produces and a verdict carries: packages, findings and
//! vulnerabilities. Shared by `scan` (producer), `vulndb` (matcher), `policy`
//! (judge) and the CLI (printer); no logic beyond ordering lives here.

use serde::{Deserialize, Serialize};

/// Operating system of the image, from `/etc/os-release` (or `/usr/lib/os-release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Distro {
    /// `ID=` (e.g. `debian`, `ubuntu`, `alpine`).
    pub id: String,
    /// `VERSION_ID=` (e.g. `12`, `22.04`, `3.20.3`).
    pub version_id: Option<String>,
    /// `VERSION_CODENAME=` (e.g. `bookworm`).
    pub codename: Option<String>,
    pub pretty_name: Option<String>,
}

/// Where a package record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageType {
    Deb,
    Apk,
    Rpm,
    Python,
    Npm,
    Go,
    GoModule,
    Java,
    /// A crate a Rust binary was built with (cargo-auditable's `.dep-v0`).
    Rust,
    /// The crate a cargo-auditable binary was built from (the application itself).
    RustBinary,
    /// A Ruby gem (installed gem specification).
    Gem,
    /// A PHP package Composer installed (`vendor/composer/installed.json`).
    Composer,
    /// A NuGet package a .NET application was published with (`*.deps.json`).
    #[serde(rename = "nuget")]
    NuGet,
}

/// One installed package, as found in the final filesystem view of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    #[serde(rename = "type")]
    pub kind: PackageType,
    /// Package URL (purl), e.g. `pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12`.
    pub purl: String,
    /// Digest (diffID or blob digest) of the layer the record came from.
    pub layer: String,
    /// Path of the file that declared the package (database, metadata or binary).
    pub path: String,
    /// Source package name (dpkg `Source:`, apk origin, rpm source rpm) where the
    /// ecosystem has one; vulnerabilities of distros are published per source package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    /// Source package version when it differs from `version` (dpkg `Source: x (ver)`, an
    /// rpm subpackage versioned apart from its SOURCERPM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Licenses as the package declares them (a package manager's field, a Debian
    /// copyright file's DEP-5 short names, Python classifiers); the SBOMs give them in
    /// SPDX terms (`scan::analyzers::license`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<String>,
    /// Names this package depends on, as its package database states them (dpkg
    /// `Depends`/`Pre-Depends`, every alternative; apk `D:`, including `so:`/`cmd:`
    /// names), without version constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends: Vec<String>,
    /// Names other packages may depend on this one by (dpkg `Provides`, apk `p:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<String>,
}

/// A secret found in a layer. The matched value is never stored in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFinding {
    /// Rule id, e.g. `aws-access-key-id`, `private-key`.
    pub rule: String,
    pub title: String,
    pub path: String,
    pub layer: String,
    /// 1-based line number of the match.
    pub line: u64,
    /// The match with all but a few characters masked (`AKIA************MPLE`).
    pub redacted: String,
    /// True when an upper layer deleted the file: the bytes still ship in the image.
    #[serde(default)]
    pub deleted_in_final_image: bool,
}

/// Kinds of risky files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFindingKind {
    Setuid,
    Setgid,
    WorldWritable,
    DeviceNode,
    /// File content matched the configured denylist of known-bad digests.
    Denylisted,
    /// A path that escapes the image root (`../`) or a link pointing out of it.
    PathTraversal,
    /// A layer exceeded a limit (size, entries, path length): possible bomb.
    LimitExceeded,
    /// The layer could not be read to the end (truncated or corrupt stream, bad header).
    Malformed,
    /// The blob bytes do not hash to the digest they are stored under.
    DigestMismatch,
    /// A file was not examined because it is over a per-file limit (e.g. a text file
    /// over `max_secret_file_bytes` was not searched for secrets). Reported so the
    /// gap is visible; not an integrity failure.
    NotExamined,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFinding {
    pub kind: FileFindingKind,
    pub path: String,
    pub layer: String,
    /// Human detail: mode bits, the denylist entry, the limit that was hit.
    pub detail: String,
}

impl FileFindingKind {
    /// Findings that mean the image could not be examined completely or honestly.
    /// These always deny: an image we could not read is not an image we checked.
    pub fn is_integrity_failure(self) -> bool {
        matches!(
            self,
            FileFindingKind::PathTraversal
                | FileFindingKind::LimitExceeded
                | FileFindingKind::Malformed
                | FileFindingKind::DigestMismatch
        )
    }
}

/// Severity, ordered: `None < Low < Medium < High < Critical`. `Unknown` (no score
/// and no usable database rating) sorts between `Medium` and `High` — see
/// `vulndb` for why a missing score is not treated as harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    None,
    Low,
    Medium,
    Unknown,
    High,
    Critical,
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "none" => Severity::None,
            "low" => Severity::Low,
            "medium" | "moderate" => Severity::Medium,
            "unknown" => Severity::Unknown,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                return Err(format!(
                    "unknown severity {other:?} (expected none, low, medium, high or critical)"
                ));
            }
        })
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::Unknown => "unknown",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// One vulnerability matched against one installed package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// OSV id (`DSA-5678-1`, `GHSA-…`, `CVE-…`).
    pub id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Package name as installed.
    pub package: String,
    pub installed_version: String,
    pub ecosystem: String,
    /// First fixed version, if any is known.
    pub fixed_in: Option<String>,
    /// Where `fixed_in` is published when not in the release's own archive:
    /// `"ubuntu-pro"` when only Ubuntu Pro (ESM) ships the fix (OSV ecosystem
    /// `Ubuntu:Pro:<release>:LTS`); the image's own archive leaves it affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_channel: Option<String>,
    pub severity: Severity,
    /// CVSS base score computed from the vector, when there is one. Serialized with its
    /// one decimal (`9.8`), not as the nearest `f64` of the `f32` (`9.800000190734863`).
    #[serde(serialize_with = "one_decimal")]
    pub score: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub purl: String,
    pub layer: String,
}

/// A CVSS score (one decimal by definition) as the decimal people write.
fn one_decimal<S: serde::Serializer>(score: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match score {
        Some(v) => s.serialize_f64((f64::from(*v) * 10.0).round() / 10.0),
        None => s.serialize_none(),
    }
}

/// Per-layer facts of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSummary {
    /// Blob digest (compressed, as in the manifest).
    pub digest: String,
    /// Uncompressed digest (diffID) when known.
    pub diff_id: Option<String>,
    pub media_type: String,
    pub compressed_bytes: u64,
    pub uncompressed_bytes: u64,
    pub entries: u64,
    /// True when the result came from the layer cache.
    pub cached: bool,
}

/// Everything one image scan found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ScanReport {
    pub os: Option<Distro>,
    pub packages: Vec<Package>,
    pub secrets: Vec<SecretFinding>,
    pub files: Vec<FileFinding>,
    pub vulnerabilities: Vec<Vulnerability>,
    pub layers: Vec<LayerSummary>,
}

/// One signature (or signature location) examined for an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCheck {
    /// The digest the signature was looked up for: the index or the platform manifest.
    pub subject: String,
    /// Where it was found: `referrers`, `referrers-tag` (`sha256-<hex>`),
    /// `legacy-tag` (`sha256-<hex>.sig`), or `none` for a location with nothing in it.
    pub source: String,
    /// Digest of the signature manifest, layer or bundle, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
    /// The trusted key (file and fingerprint) or keyless identity it was tried against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    pub verified: bool,
    /// `verified`, or why not (bad signature, other digest, untrusted CA, expired,
    /// identity mismatch, missing transparency proof, …).
    pub reason: String,
}

/// The outcome of signature verification for one image under one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SignatureReport {
    /// False when the policy has no `[policy.signatures]` section.
    pub required: bool,
    pub satisfied: bool,
    pub threshold: usize,
    /// Distinct trusted signers that verified.
    pub verified_signers: Vec<String>,
    pub checks: Vec<SignatureCheck>,
}
