//! SBOMs of a scan report: CycloneDX 1.6 JSON and SPDX 2.3 JSON.

use serde_json::{Value, json};

use crate::report::{PackageType, ScanReport};

/// What the SBOM describes.
#[derive(Debug, Clone)]
pub struct SbomSubject {
    /// Image name as the user gave it (reference, layout path, archive path).
    pub name: String,
    /// Manifest digest (`sha256:…`).
    pub digest: String,
    pub created: time::OffsetDateTime,
}

/// The SBOM formats pullwarden writes: the one list for `scan --sbom`, `pullwarden sbom`
/// and the admin API (`?format=`). Spelled as on the command line (`cyclonedx-json`,
/// `spdx-json`) in every place, JSON included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SbomFormat {
    /// CycloneDX 1.6 JSON.
    CyclonedxJson,
    /// SPDX 2.3 JSON.
    SpdxJson,
}

impl SbomFormat {
    pub const ALL: [SbomFormat; 2] = [SbomFormat::CyclonedxJson, SbomFormat::SpdxJson];

    pub fn as_str(self) -> &'static str {
        match self {
            SbomFormat::CyclonedxJson => "cyclonedx-json",
            SbomFormat::SpdxJson => "spdx-json",
        }
    }

    /// The document of `report` in this format.
    pub fn render(self, subject: &SbomSubject, report: &ScanReport) -> Value {
        match self {
            SbomFormat::CyclonedxJson => cyclonedx(subject, report),
            SbomFormat::SpdxJson => spdx(subject, report),
        }
    }
}

impl std::str::FromStr for SbomFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SbomFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                format!("unknown SBOM format {s:?} (expected cyclonedx-json or spdx-json)")
            })
    }
}

impl std::fmt::Display for SbomFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// A name-based UUID (RFC 9562 version 5, URL namespace) of the subject, so the same
/// image gets the same serial number.
fn uuid_of(seed: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, seed.as_bytes()).to_string()
}

fn os_component_name(r: &ScanReport) -> Option<(String, String)> {
    r.os.as_ref()
        .map(|d| (d.id.clone(), d.version_id.clone().unwrap_or_default()))
}

pub fn cyclonedx(subject: &SbomSubject, report: &ScanReport) -> Value {
    let mut components = Vec::new();
    if let Some((id, ver)) = os_component_name(report) {
        components.push(json!({
            "type": "operating-system",
            "bom-ref": format!("os:{id}@{ver}"),
            "name": id,
            "version": ver,
        }));
    }
    for (i, p) in report.packages.iter().enumerate() {
        let mut c = json!({
            "type": match p.kind {
                PackageType::Go if p.name == "stdlib" => "framework",
                PackageType::RustBinary => "application",
                _ => "library",
            },
            "bom-ref": format!("pkg-{i}:{}", p.purl),
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
            "properties": [
                {"name": "pullwarden:package:type", "value": serde_json::to_value(p.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()},
                {"name": "pullwarden:layer", "value": p.layer},
                {"name": "pullwarden:path", "value": p.path},
            ],
        });
        if !p.licenses.is_empty() {
            c["licenses"] = Value::Array(
                p.licenses
                    .iter()
                    .map(|l| json!({"license": {"name": l}}))
                    .collect(),
            );
        }
        components.push(c);
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_of(&subject.digest)),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(subject.created),
            "tools": {"components": [{"type": "application", "name": "pullwarden", "version": env!("CARGO_PKG_VERSION")}]},
            "component": {
                "type": "container",
                "bom-ref": format!("image:{}", subject.digest),
                "name": subject.name,
                "version": subject.digest,
            },
        },
        "components": components,
    })
}

/// SPDX ids allow `[A-Za-z0-9.-]` only.
fn spdx_id(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

pub fn spdx(subject: &SbomSubject, report: &ScanReport) -> Value {
    let mut packages = vec![json!({
        "name": subject.name,
        "SPDXID": "SPDXRef-Image",
        "versionInfo": subject.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    if let Some((id, ver)) = os_component_name(report) {
        packages.push(json!({
            "name": id,
            "SPDXID": "SPDXRef-OperatingSystem",
            "versionInfo": ver,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": "SPDXRef-OperatingSystem",
        }));
    }
    for (i, p) in report.packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{i}-{}", spdx_id(&p.name));
        packages.push(json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": if p.kind == PackageType::RustBinary { "APPLICATION" } else { "LIBRARY" },
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("layer {}, {}", p.layer, p.path),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": p.purl,
            }],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject.name,
        "documentNamespace": format!("https://pullwarden.dev/spdx/{}", uuid_of(&format!("spdx:{}", subject.digest))),
        "creationInfo": {
            "created": rfc3339(subject.created),
            "creators": [format!("Tool: pullwarden-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": ["SPDXRef-Image"],
        "packages": packages,
        "relationships": relationships,
    })
}
