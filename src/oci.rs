//! OCI image documents — manifests, indexes, their descriptors and image configs — read
//! into `oci_spec::image` types (OCI image spec v1.1), and the one index selector that
//! picks a platform's manifest. Callers cap sizes before calling; every failure here is
//! an [`OciError`], never a panic. A low floor: imports nothing of verify, scan or gate.
//!
//! Docker schema 2 documents read the same way: `oci_spec` keeps their media types
//! (`application/vnd.docker.distribution.manifest.v2+json`, `...manifest.list.v2+json`,
//! `application/vnd.docker.container.image.v1+json`, the `rootfs.diff.tar.gzip` layers)
//! as `MediaType::Other` and every field it requires (descriptor `mediaType`, `digest`,
//! `size`; config `architecture`, `os`, `rootfs.type`, `rootfs.diff_ids`) is one Docker
//! writes too, so nothing is defaulted for them.

use std::fmt;

pub use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::platform::Platform;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The annotation BuildKit sets on the index entries of its attestation manifests
/// (which also carry the platform `unknown/unknown`).
const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// Why a document was refused, or why an index has nothing for a platform.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    /// Not JSON, or JSON missing a field the spec requires / with a wrongly typed one.
    #[error("not a valid {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// `schemaVersion` absent or not 2 (the only version of manifests and indexes).
    #[error("{what} has schemaVersion {found}, not 2")]
    SchemaVersion { what: &'static str, found: String },
    /// A descriptor's digest that the spec allows but we do not (only sha256 and sha512
    /// are accepted anywhere).
    #[error("{what} names digest {digest:?}: {reason}")]
    Digest {
        what: &'static str,
        digest: String,
        reason: String,
    },
    /// No index entry (attestation manifests aside) is for this platform.
    #[error("no manifest for {platform} among {entries} index entries")]
    NoPlatform { platform: String, entries: usize },
}

/// A manifest-shaped document: an image index (or Docker manifest list), or an image
/// manifest (or Docker schema 2 manifest).
// Parsed once per fetched document and matched at once; boxing would only add an
// allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    Index(ImageIndex),
    Manifest(ImageManifest),
}

/// The fields that tell a document's kind, read before the document itself.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<serde_json::Value>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
}

fn head(what: &'static str, bytes: &[u8]) -> Result<Head, OciError> {
    let head: Head = serde_json::from_slice(bytes).map_err(|e| OciError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    match &head.schema_version {
        Some(v) if v.as_u64() == Some(2) => Ok(head),
        found => Err(OciError::SchemaVersion {
            what,
            found: found
                .as_ref()
                .map_or_else(|| "absent".into(), |v| v.to_string()),
        }),
    }
}

fn malformed(what: &'static str) -> impl Fn(serde_json::Error) -> OciError {
    move |e| OciError::Malformed {
        what,
        reason: e.to_string(),
    }
}

/// The media type of a manifest-shaped document as fetched: its own `mediaType` field
/// wins over the transport's `content_type` (the digest covers the former, not the
/// latter; parameters such as `; charset=utf-8` are dropped). A body silent on it that
/// lists `manifests` is an index (as [`parse_document`] reads it): the header's type if
/// that names an index, else OCI's. Otherwise the header's type, else OCI's image
/// manifest. Checks only that it is JSON with `schemaVersion` 2.
pub fn media_type(bytes: &[u8], content_type: Option<&str>) -> Result<String, OciError> {
    let head = head("manifest", bytes)?;
    if let Some(m) = head.media_type {
        return Ok(m);
    }
    let header = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
    Ok(match (header, head.manifests.is_some()) {
        (Some(h @ (OCI_INDEX | DOCKER_MANIFEST_LIST)), true) => h.to_string(),
        (_, true) => OCI_INDEX.to_string(),
        (Some(h), false) => h.to_string(),
        (None, false) => OCI_MANIFEST.to_string(),
    })
}

/// Parses an image index (or Docker manifest list); `schemaVersion` must be 2.
pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex, OciError> {
    head("image index", bytes)?;
    serde_json::from_slice(bytes).map_err(malformed("image index"))
}

/// Parses an image manifest (or Docker schema 2 manifest); `schemaVersion` must be 2.
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, OciError> {
    head("image manifest", bytes)?;
    serde_json::from_slice(bytes).map_err(malformed("image manifest"))
}

/// Parses a manifest or an index, told apart by `mediaType` (OCI or Docker names) or,
/// when that is absent or another type, by the presence of `manifests`.
pub fn parse_document(bytes: &[u8]) -> Result<Document, OciError> {
    let head = head("manifest", bytes)?;
    let is_index = match head.media_type.as_deref() {
        Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
        _ => head.manifests.is_some(),
    };
    if is_index {
        serde_json::from_slice(bytes)
            .map(Document::Index)
            .map_err(malformed("image index"))
    } else {
        serde_json::from_slice(bytes)
            .map(Document::Manifest)
            .map_err(malformed("image manifest"))
    }
}

/// Parses an image configuration (OCI `application/vnd.oci.image.config.v1+json` or
/// Docker's `application/vnd.docker.container.image.v1+json`).
pub fn parse_image_config(bytes: &[u8]) -> Result<ImageConfiguration, OciError> {
    serde_json::from_slice(bytes).map_err(malformed("image config"))
}

/// A descriptor's digest as ours: sha256 or sha512 with lowercase hex of full length.
pub fn descriptor_digest(what: &'static str, d: &Descriptor) -> Result<Digest, OciError> {
    let s = d.digest().as_ref();
    s.parse()
        .map_err(|e: crate::digest::DigestError| OciError::Digest {
            what,
            digest: s.chars().take(160).collect(),
            reason: e.to_string(),
        })
}

/// Whether an index entry is an attestation manifest (BuildKit's provenance and SBOM
/// entries: platform `unknown/unknown`, or annotated as such), never a runnable image.
pub fn is_attestation(d: &Descriptor) -> bool {
    let unknown = d.platform().as_ref().is_some_and(|p| {
        p.os().to_string() == "unknown" && p.architecture().to_string() == "unknown"
    });
    unknown
        || d.annotations()
            .as_ref()
            .and_then(|a| a.get(DOCKER_REFERENCE_TYPE))
            .is_some_and(|t| t == "attestation-manifest")
}

/// The variant an architecture's entries mean when they name none, and the spellings
/// of one variant made one (as containerd's `platforms.Normalize`): `arm64` is `v8`,
/// 32-bit `arm` is `v7`, `amd64` is `v1`; `8` and `v8.0` are `v8`.
fn normalized_variant(architecture: &str, variant: Option<&str>) -> Option<String> {
    let v = variant.filter(|v| !v.is_empty());
    match (architecture, v) {
        ("arm64", None | Some("8" | "v8" | "v8.0")) => Some("v8".into()),
        ("arm", None) => Some("v7".into()),
        ("arm", Some(n @ ("5" | "6" | "7" | "8"))) => Some(format!("v{n}")),
        ("amd64", None | Some("v1")) => Some("v1".into()),
        (_, v) => v.map(str::to_string),
    }
}

/// The ONE index selector: the first entry of `index` (in document order) whose
/// `platform` has `want`'s `os` and `architecture` and, when `want` names a variant,
/// the same variant after defaulting (an `arm64` entry without one is `v8`; see
/// [`normalized_variant`]). `want` without a variant takes any variant. Entries without
/// a platform and attestation manifests are skipped. The OCI image-index spec leaves
/// the choice to the client; this follows containerd's matcher, first match winning.
pub fn select_manifest<'a>(
    index: &'a ImageIndex,
    want: &Platform,
) -> Result<&'a Descriptor, OciError> {
    let wanted_variant = want
        .variant
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| normalized_variant(&want.architecture, Some(v)));
    index
        .manifests()
        .iter()
        .filter(|d| !is_attestation(d))
        .find(|d| {
            let Some(p) = d.platform() else {
                return false;
            };
            let arch = p.architecture().to_string();
            p.os().to_string() == want.os
                && arch == want.architecture
                && wanted_variant
                    .as_ref()
                    .is_none_or(|w| *w == normalized_variant(&arch, p.variant().as_deref()))
        })
        .ok_or_else(|| OciError::NoPlatform {
            platform: want.to_string(),
            entries: index.manifests().len(),
        })
}

/// [`select_manifest`] and the chosen entry's digest.
pub fn select_manifest_digest(index: &ImageIndex, want: &Platform) -> Result<Digest, OciError> {
    descriptor_digest("image index entry", select_manifest(index, want)?)
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Document::Index(_) => "image index",
            Document::Manifest(_) => "image manifest",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn entry(digest: &str, platform: &str) -> String {
        let mut parts = platform.split('/');
        let os = parts.next().unwrap_or("");
        let arch = parts.next().unwrap_or("");
        let variant = parts
            .next()
            .map(|v| format!(r#","variant":"{v}""#))
            .unwrap_or_default();
        format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{digest}","size":10,"platform":{{"os":"{os}","architecture":"{arch}"{variant}}}}}"#
        )
    }

    fn index(media_type: &str, entries: &[String]) -> ImageIndex {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{media_type}","manifests":[{}]}}"#,
            entries.join(",")
        );
        parse_index(doc.as_bytes()).unwrap()
    }

    fn want(p: &str) -> Platform {
        let mut parts = p.split('/');
        Platform {
            os: parts.next().unwrap().into(),
            architecture: parts.next().unwrap().into(),
            variant: parts.next().map(str::to_string),
        }
    }

    fn pick(idx: &ImageIndex, p: &str) -> Option<String> {
        select_manifest_digest(idx, &want(p))
            .ok()
            .map(|d| d.to_string())
    }

    /// The selection the verifier's own test made of its index, now through the one
    /// selector (descriptors complete, as the spec requires).
    #[test]
    fn picks_os_and_architecture() {
        let idx = index(
            OCI_INDEX,
            &[entry(A, "linux/arm64"), entry(B, "linux/amd64")],
        );
        assert_eq!(pick(&idx, "linux/amd64").as_deref(), Some(B));
        assert_eq!(pick(&idx, "linux/arm64").as_deref(), Some(A));
        assert!(matches!(
            select_manifest(&idx, &want("linux/s390x")),
            Err(OciError::NoPlatform { entries: 2, .. })
        ));
        assert!(pick(&idx, "windows/amd64").is_none());
        assert!(matches!(
            parse_index(b"junk"),
            Err(OciError::Malformed { .. })
        ));
    }

    #[test]
    fn arm64_variant_defaults_to_v8() {
        let idx = index(
            OCI_INDEX,
            &[entry(A, "linux/arm/v7"), entry(B, "linux/arm64")],
        );
        assert_eq!(pick(&idx, "linux/arm64/v8").as_deref(), Some(B));
        assert_eq!(pick(&idx, "linux/arm64").as_deref(), Some(B));
        assert!(pick(&idx, "linux/arm64/v9").is_none());
        let idx = index(
            OCI_INDEX,
            &[entry(A, "linux/arm64/v9"), entry(B, "linux/arm64/8")],
        );
        assert_eq!(pick(&idx, "linux/arm64/v8").as_deref(), Some(B));
        // No variant asked: the first arm64 entry, whatever its variant.
        assert_eq!(pick(&idx, "linux/arm64").as_deref(), Some(A));
        // 32-bit arm without a variant is v7; `6` is v6.
        let idx = index(OCI_INDEX, &[entry(A, "linux/arm/6"), entry(B, "linux/arm")]);
        assert_eq!(pick(&idx, "linux/arm/v7").as_deref(), Some(B));
        assert_eq!(pick(&idx, "linux/arm/v6").as_deref(), Some(A));
    }

    #[test]
    fn attestation_manifests_are_skipped() {
        let attestation = format!(
            r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{C}","size":10,"platform":{{"os":"linux","architecture":"amd64"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":"{A}"}}}}"#
        );
        let idx = index(
            OCI_INDEX,
            &[
                entry(C, "unknown/unknown"),
                attestation,
                entry(A, "linux/amd64"),
            ],
        );
        assert_eq!(pick(&idx, "linux/amd64").as_deref(), Some(A));
        assert!(pick(&idx, "unknown/unknown").is_none());
        // An entry without a platform is not a candidate either.
        let bare = format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{C}","size":10}}"#);
        let idx = index(OCI_INDEX, &[bare, entry(B, "linux/amd64")]);
        assert_eq!(pick(&idx, "linux/amd64").as_deref(), Some(B));
    }

    #[test]
    fn duplicate_platforms_first_wins() {
        let idx = index(
            OCI_INDEX,
            &[
                entry(A, "linux/amd64"),
                entry(B, "linux/amd64"),
                entry(C, "linux/amd64/v1"),
            ],
        );
        assert_eq!(pick(&idx, "linux/amd64").as_deref(), Some(A));
        // amd64 without a variant is v1.
        assert_eq!(pick(&idx, "linux/amd64/v1").as_deref(), Some(A));
        assert!(pick(&idx, "linux/amd64/v3").is_none());
    }

    #[test]
    fn docker_manifest_list_and_manifest() {
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{A}","size":528,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},{{"mediaType":"{DOCKER_MANIFEST}","digest":"{B}","size":528,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let Document::Index(idx) = parse_document(list.as_bytes()).unwrap() else {
            panic!("a manifest list is an index");
        };
        assert_eq!(
            idx.media_type().as_ref().map(|m| m.to_string()).as_deref(),
            Some(DOCKER_MANIFEST_LIST)
        );
        assert_eq!(pick(&idx, "linux/amd64").as_deref(), Some(B));
        assert_eq!(pick(&idx, "linux/arm64").as_deref(), Some(A));
        assert_eq!(
            media_type(list.as_bytes(), Some(OCI_INDEX)).unwrap(),
            DOCKER_MANIFEST_LIST
        );
        // A body silent on its type is told by its shape before the header.
        let silent = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(media_type(silent, Some(OCI_MANIFEST)).unwrap(), OCI_INDEX);
        assert_eq!(
            media_type(silent, Some(DOCKER_MANIFEST_LIST)).unwrap(),
            DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            media_type(br#"{"schemaVersion":2}"#, None).unwrap(),
            OCI_MANIFEST
        );
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"{C}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2479,"digest":"{A}"}}]}}"#
        );
        let Document::Manifest(m) = parse_document(manifest.as_bytes()).unwrap() else {
            panic!("a schema 2 manifest is a manifest");
        };
        assert_eq!(
            m.layers()[0].media_type().to_string(),
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_eq!(
            descriptor_digest("layer", &m.layers()[0])
                .unwrap()
                .to_string(),
            A
        );
        let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"ExposedPorts":{"80/tcp":{}},"Volumes":null},"rootfs":{"type":"layers","diff_ids":["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]},"history":[{"created_by":"x","empty_layer":true}],"container_config":{}}"#;
        let cfg = parse_image_config(config).unwrap();
        assert_eq!(cfg.rootfs().diff_ids().len(), 1);
        assert_eq!(cfg.architecture().to_string(), "amd64");
    }

    #[test]
    fn refusals_are_specific() {
        for (doc, expect) in [
            (&br#"{"schemaVersion":1,"manifests":[]}"#[..], "schemaVersion 1"),
            (br#"{"manifests":[]}"#, "schemaVersion absent"),
            (br#"{"schemaVersion":"2","manifests":[]}"#, "schemaVersion \"2\""),
            (
                br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:aa","size":1,"mediaType":"x"}]}"#,
                "not a valid image index",
            ),
            (
                br#"{"schemaVersion":2,"manifests":[{"digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","mediaType":"x"}]}"#,
                "missing field `size`",
            ),
            (br#"{"schemaVersion":2,"layers":[]}"#, "missing field `config`"),
            (b"\xff", "not a valid manifest"),
        ] {
            let err = parse_document(doc).unwrap_err().to_string();
            assert!(err.contains(expect), "{err} lacks {expect}");
        }
        // A digest oci-spec accepts but we do not.
        let idx = index(
            OCI_INDEX,
            &[entry(
                "sha384:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                "linux/amd64",
            )],
        );
        assert!(matches!(
            select_manifest_digest(&idx, &want("linux/amd64")),
            Err(OciError::Digest { .. })
        ));
        assert!(matches!(
            parse_image_config(br#"{"architecture":"amd64","os":"linux"}"#),
            Err(OciError::Malformed { .. })
        ));
    }
}
