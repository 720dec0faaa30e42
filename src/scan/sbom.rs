//! SBOMs of a scan report: CycloneDX 1.6 JSON and SPDX 2.3 JSON.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::report::{Package, PackageType, ScanReport, Severity, Vulnerability};

use super::analyzers::license::{self, SpdxLicense};

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

/// The declared licenses of a package in SPDX terms, each once.
fn spdx_licenses(p: &Package) -> Vec<SpdxLicense> {
    let mut out: Vec<SpdxLicense> = Vec::new();
    for l in p.licenses.iter().filter_map(|l| license::to_spdx(l)) {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// All of `licenses` as one SPDX expression (`AND`: each applies), a free-text name as
/// its `LicenseRef-`; `None` when there are none.
fn conjunction(licenses: &[SpdxLicense]) -> Option<String> {
    let parts: Vec<String> = licenses
        .iter()
        .map(|l| match l {
            SpdxLicense::Expression(e) if licenses.len() > 1 && !is_parenthesized(e) => {
                format!("({e})")
            }
            other => other.spdx_expression(),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

fn is_parenthesized(e: &str) -> bool {
    e.starts_with('(') && e.ends_with(')') && {
        // The opening parenthesis closes at the very end.
        let mut depth = 0i32;
        e.char_indices().all(|(i, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            depth > 0 || i == e.len() - 1
        })
    }
}

/// CycloneDX 1.6 `licenses`: `license.id` for SPDX ids, `license.name` for other text,
/// or one `expression` when any license is an expression (the schema allows either a
/// list of licenses or a single expression).
fn cyclonedx_licenses(licenses: &[SpdxLicense]) -> Option<Value> {
    if licenses.is_empty() {
        return None;
    }
    if licenses
        .iter()
        .any(|l| matches!(l, SpdxLicense::Expression(_)))
    {
        return Some(json!([{ "expression": conjunction(licenses)? }]));
    }
    Some(Value::Array(
        licenses
            .iter()
            .map(|l| match l {
                SpdxLicense::Id(id) => json!({"license": {"id": id}}),
                SpdxLicense::Name(n) | SpdxLicense::Expression(n) => {
                    json!({"license": {"name": n}})
                }
            })
            .collect(),
    ))
}

/// For each package (by index), the indexes of the packages its database says it
/// depends on: by name or provided name, within the same package manager.
fn dependencies(report: &ScanReport) -> Vec<Vec<usize>> {
    let mut by_name: HashMap<(PackageType, &str), Vec<usize>> = HashMap::new();
    for (i, p) in report.packages.iter().enumerate() {
        for n in std::iter::once(p.name.as_str()).chain(p.provides.iter().map(String::as_str)) {
            let e = by_name.entry((p.kind, n)).or_default();
            if !e.contains(&i) {
                e.push(i);
            }
        }
    }
    report
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut to: Vec<usize> = p
                .depends
                .iter()
                .filter_map(|d| by_name.get(&(p.kind, d.as_str())))
                .flatten()
                .copied()
                .filter(|j| *j != i)
                .collect();
            to.sort_unstable();
            to.dedup();
            to
        })
        .collect()
}

fn cyclonedx_severity(s: Severity) -> &'static str {
    match s {
        Severity::None => "none",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::Unknown => "unknown",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/): the image as
/// `metadata.component`, its OS and packages as components (purl, SPDX licenses),
/// `dependencies` where the package database states them, and `vulnerabilities` (with
/// `affects` naming the components) when the report carries matched vulnerabilities.
pub fn cyclonedx(subject: &SbomSubject, report: &ScanReport) -> Value {
    let image_ref = format!("image:{}", subject.digest);
    let pkg_ref = |i: usize, p: &Package| format!("pkg-{i}:{}", p.purl);
    let mut components = Vec::new();
    let mut top: Vec<String> = Vec::new();
    if let Some((id, ver)) = os_component_name(report) {
        let r = format!("os:{id}@{ver}");
        top.push(r.clone());
        components.push(json!({
            "type": "operating-system",
            "bom-ref": r,
            "name": id,
            "version": ver,
        }));
    }
    for (i, p) in report.packages.iter().enumerate() {
        top.push(pkg_ref(i, p));
        let mut c = json!({
            "type": match p.kind {
                PackageType::Go if p.name == "stdlib" => "framework",
                PackageType::RustBinary => "application",
                _ => "library",
            },
            "bom-ref": pkg_ref(i, p),
            "name": p.name,
            "version": p.version,
            "purl": p.purl,
            "properties": [
                {"name": "pullwarden:package:type", "value": serde_json::to_value(p.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()},
                {"name": "pullwarden:layer", "value": p.layer},
                {"name": "pullwarden:path", "value": p.path},
            ],
        });
        if let Some(l) = cyclonedx_licenses(&spdx_licenses(p)) {
            c["licenses"] = l;
        }
        components.push(c);
    }
    let mut deps = vec![json!({"ref": image_ref, "dependsOn": top})];
    for (i, to) in dependencies(report).into_iter().enumerate() {
        let p = &report.packages[i];
        deps.push(json!({
            "ref": pkg_ref(i, p),
            "dependsOn": to.iter().map(|j| pkg_ref(*j, &report.packages[*j])).collect::<Vec<_>>(),
        }));
    }
    let mut bom = json!({
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
                "bom-ref": image_ref,
                "name": subject.name,
                "version": subject.digest,
            },
        },
        "components": components,
        "dependencies": deps,
    });
    if !report.vulnerabilities.is_empty() {
        bom["vulnerabilities"] = Value::Array(cyclonedx_vulnerabilities(report, &pkg_ref));
    }
    bom
}

/// One entry per vulnerability id, `affects` listing every component it was matched
/// against (by purl and version).
fn cyclonedx_vulnerabilities(
    report: &ScanReport,
    pkg_ref: &dyn Fn(usize, &Package) -> String,
) -> Vec<Value> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_id: HashMap<&str, Vec<&Vulnerability>> = HashMap::new();
    for v in &report.vulnerabilities {
        let e = by_id.entry(v.id.as_str()).or_default();
        if e.is_empty() {
            order.push(v.id.as_str());
        }
        e.push(v);
    }
    order
        .into_iter()
        .map(|id| {
            let vs = &by_id[id];
            let first = vs[0];
            let mut affects: Vec<Value> = Vec::new();
            for v in vs {
                for (i, p) in report.packages.iter().enumerate() {
                    if p.purl == v.purl && p.version == v.installed_version {
                        let r = json!({"ref": pkg_ref(i, p), "versions": [{"version": p.version, "status": "affected"}]});
                        if !affects.contains(&r) {
                            affects.push(r);
                        }
                    }
                }
            }
            let mut rating = json!({"severity": cyclonedx_severity(first.severity)});
            if let Some(score) = first.score {
                // Scores are one decimal place (CVSS); f32 noise is not.
                rating["score"] = json!((f64::from(score) * 10.0).round() / 10.0);
            }
            let mut v = json!({
                "bom-ref": format!("vuln:{id}"),
                "id": id,
                "source": {"name": source_name(id)},
                "ratings": [rating],
                "affects": affects,
            });
            if let Some(s) = &first.summary {
                v["description"] = json!(s);
            }
            let fixes: Vec<String> = vs
                .iter()
                .filter_map(|v| v.fixed_in.as_ref().map(|f| format!("{} {f}", v.package)))
                .collect();
            if !fixes.is_empty() {
                v["recommendation"] = json!(format!("upgrade: {}", fixes.join(", ")));
            }
            let aliases: Vec<Value> = first
                .aliases
                .iter()
                .map(|a| json!({"id": a, "source": {"name": source_name(a)}}))
                .collect();
            if !aliases.is_empty() {
                v["references"] = Value::Array(aliases);
            }
            v
        })
        .collect()
}

/// The advisory source an id's prefix names (OSV's prefixes).
fn source_name(id: &str) -> &'static str {
    match id.split('-').next().unwrap_or("") {
        "CVE" => "NVD",
        "GHSA" => "GitHub",
        "DSA" | "DLA" | "DEBIAN" => "Debian",
        "USN" | "UBUNTU" => "Ubuntu",
        "ALPINE" => "Alpine",
        "RHSA" | "RHBA" | "RHEA" => "Red Hat",
        "GO" => "Go",
        "PYSEC" => "PyPA",
        "RUSTSEC" => "RustSec",
        _ => "OSV",
    }
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

/// SPDX 2.3 JSON (https://spdx.github.io/spdx-spec/v2.3/): the image as the described
/// package, its OS and packages `CONTAINS`-related to it, `DEPENDS_ON` where the
/// package database states it; `licenseDeclared` is the declared licenses as one SPDX
/// expression (free text as `LicenseRef-…`, listed in `hasExtractedLicensingInfos`);
/// `licenseConcluded` stays `NOASSERTION`: a scan declares nothing it did not read.
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
    let mut extracted: Vec<Value> = Vec::new();
    let ids: Vec<String> = report
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| format!("SPDXRef-Package-{i}-{}", spdx_id(&p.name)))
        .collect();
    for (i, p) in report.packages.iter().enumerate() {
        let id = ids[i].clone();
        let licenses = spdx_licenses(p);
        for l in &licenses {
            if let SpdxLicense::Name(n) = l {
                let lid = l.spdx_expression();
                if !extracted.iter().any(|e| e["licenseId"] == lid.as_str()) {
                    extracted.push(json!({"licenseId": lid, "name": n, "extractedText": n}));
                }
            }
        }
        let declared = conjunction(&licenses).unwrap_or_else(|| "NOASSERTION".into());
        packages.push(json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": if p.kind == PackageType::RustBinary { "APPLICATION" } else { "LIBRARY" },
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared,
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
    for (i, to) in dependencies(report).into_iter().enumerate() {
        for j in to {
            relationships.push(json!({
                "spdxElementId": ids[i],
                "relationshipType": "DEPENDS_ON",
                "relatedSpdxElement": ids[j],
            }));
        }
    }
    let mut doc = json!({
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
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(extracted);
    }
    doc
}
