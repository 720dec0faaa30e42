//! VEX (Vulnerability Exploitability eXchange): statements by a vendor that a
//! vulnerability does not affect a product, read from OpenVEX v0.2.0
//! (https://github.com/openvex/spec, context `https://openvex.dev/ns/v0.2.0`) and
//! CycloneDX VEX (a CycloneDX 1.4+ BOM whose `vulnerabilities` carry an `analysis`),
//! and applied to a scan report: a matching `not_affected` (with a justification) or
//! `fixed` statement from a trusted source removes the finding and records a
//! [`Suppression`] naming the signer, status and justification.
//!
//! Who is trusted is decided by the caller ([`VexSource::signer`]): an attestation
//! verified against the policy's VEX signers ([`attestation`]), or a file the operator
//! gave on the command line. Anything else is kept only to say why it was ignored.

pub mod attestation;
pub mod cli;
pub mod node;
pub mod registry;
pub mod signers;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::{ScanReport, Vulnerability};

/// OpenVEX's context (`@context`) for v0.2.0; `https://openvex.dev/ns` (unversioned)
/// is accepted as the same.
pub const OPENVEX_CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";

/// Largest VEX document read (bytes).
pub const MAX_VEX_BYTES: usize = 8 << 20;
/// Most statements read from one document.
pub const MAX_STATEMENTS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum VexError {
    #[error("VEX document over {MAX_VEX_BYTES} bytes")]
    TooLarge,
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "neither OpenVEX (@context {OPENVEX_CONTEXT}) nor a CycloneDX BOM with vulnerabilities"
    )]
    UnknownFormat,
    #[error("OpenVEX statement {index}: {what}")]
    BadStatement { index: usize, what: String },
    #[error("more than {MAX_STATEMENTS} statements")]
    TooManyStatements,
}

/// A statement's status (OpenVEX terms; CycloneDX `analysis.state` mapped onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl VexOutcome {
    /// Nothing suppressed and nothing ignored.
    pub fn is_empty(&self) -> bool {
        self.suppressed.is_empty() && self.ignored.is_empty()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::NotAffected => "not_affected",
            Status::Affected => "affected",
            Status::Fixed => "fixed",
            Status::UnderInvestigation => "under_investigation",
        })
    }
}

/// One statement, in the terms both formats share. Serialized only into the store
/// (an image's inventory keeps the VEX its pull looked up), never as a VEX document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Vulnerability name (`CVE-…`, `GHSA-…`, a distro advisory) and its aliases.
    pub vulnerability: Vec<String>,
    /// Product identifiers: purls (`pkg:oci/NAME@sha256%3A…`), digests
    /// (`sha256:<hex>`), references with a digest (`REPO@sha256:…`).
    pub products: Vec<String>,
    /// Packages inside the product: purls or `name@version`. Empty: the whole product.
    pub subcomponents: Vec<String>,
    pub status: Status,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    /// RFC 3339 time of the statement (or its document); later statements win.
    pub timestamp: Option<String>,
}

/// A parsed VEX document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VexDocument {
    /// `openvex` or `cyclonedx`.
    pub format: &'static str,
    /// The document's `@id` / `serialNumber`, when it has one.
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// A [`VexDocument`] as stored (in an image's inventory).
#[derive(Deserialize)]
struct StoredDocument {
    format: String,
    id: Option<String>,
    statements: Vec<Statement>,
}

impl<'de> Deserialize<'de> for VexDocument {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<VexDocument, D::Error> {
        VexDocument::try_from(StoredDocument::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<StoredDocument> for VexDocument {
    type Error = String;
    fn try_from(d: StoredDocument) -> Result<VexDocument, String> {
        let format = match d.format.as_str() {
            "openvex" => "openvex",
            "cyclonedx" => "cyclonedx",
            other => {
                return Err(format!(
                    "VEX format {other:?} is neither openvex nor cyclonedx"
                ));
            }
        };
        if d.statements.len() > MAX_STATEMENTS {
            return Err(format!("more than {MAX_STATEMENTS} statements"));
        }
        Ok(VexDocument {
            format,
            id: d.id,
            statements: d.statements,
        })
    }
}

/// Parses an OpenVEX v0.2.0 document or a CycloneDX VEX BOM (JSON).
pub fn parse(bytes: &[u8]) -> Result<VexDocument, VexError> {
    if bytes.len() > MAX_VEX_BYTES {
        return Err(VexError::TooLarge);
    }
    let v: Value = serde_json::from_slice(bytes)?;
    parse_value(&v)
}

/// [`parse`] of an already decoded document (an attestation's predicate).
pub fn parse_value(v: &Value) -> Result<VexDocument, VexError> {
    let context = v.get("@context").and_then(Value::as_str).unwrap_or("");
    if context.starts_with("https://openvex.dev/ns") {
        return parse_openvex(v);
    }
    if v.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
        return parse_cyclonedx(v);
    }
    Err(VexError::UnknownFormat)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.chars().take(4096).collect())
}

/// A product or subcomponent object's identifiers: `@id`, `identifiers.purl`,
/// `hashes.sha-256` as `sha256:<hex>`.
fn component_ids(c: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = c.as_str() {
        out.push(s.to_string());
        return out;
    }
    if let Some(id) = text(c, "@id") {
        out.push(id);
    }
    if let Some(p) = c.get("identifiers").and_then(|i| text(i, "purl")) {
        out.push(p);
    }
    if let Some(h) = c.get("hashes").and_then(|h| text(h, "sha-256")) {
        out.push(format!("sha256:{h}"));
    }
    out
}

fn parse_openvex(v: &Value) -> Result<VexDocument, VexError> {
    let doc_time = text(v, "timestamp");
    let statements =
        v.get("statements")
            .and_then(Value::as_array)
            .ok_or(VexError::BadStatement {
                index: 0,
                what: "no statements list".into(),
            })?;
    if statements.len() > MAX_STATEMENTS {
        return Err(VexError::TooManyStatements);
    }
    let mut out = Vec::new();
    for (index, s) in statements.iter().enumerate() {
        let bad = |what: &str| VexError::BadStatement {
            index,
            what: what.into(),
        };
        // `vulnerability` is an object (`name`, `aliases`) in v0.2.0, a string before.
        let vuln = s
            .get("vulnerability")
            .ok_or_else(|| bad("no vulnerability"))?;
        let mut vulnerability: Vec<String> = match vuln {
            Value::String(n) => vec![n.clone()],
            Value::Object(_) => text(vuln, "name")
                .into_iter()
                .chain(text(vuln, "@id"))
                .collect(),
            _ => Vec::new(),
        };
        for a in vuln
            .get("aliases")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(64)
        {
            if let Some(a) = a.as_str() {
                vulnerability.push(a.to_string());
            }
        }
        if vulnerability.is_empty() {
            return Err(bad("vulnerability has no name"));
        }
        let mut products = Vec::new();
        let mut subcomponents = Vec::new();
        for p in s
            .get("products")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(1024)
        {
            products.extend(component_ids(p));
            for sc in p
                .get("subcomponents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .take(1024)
            {
                subcomponents.extend(component_ids(sc));
            }
        }
        let status = match s.get("status").and_then(Value::as_str) {
            Some("not_affected") => Status::NotAffected,
            Some("affected") => Status::Affected,
            Some("fixed") => Status::Fixed,
            Some("under_investigation") => Status::UnderInvestigation,
            _ => {
                return Err(bad(
                    "status is not one of not_affected, affected, fixed, under_investigation",
                ));
            }
        };
        out.push(Statement {
            vulnerability,
            products,
            subcomponents,
            status,
            justification: text(s, "justification"),
            impact_statement: text(s, "impact_statement"),
            timestamp: text(s, "timestamp").or_else(|| doc_time.clone()),
        });
    }
    Ok(VexDocument {
        format: "openvex",
        id: text(v, "@id"),
        statements: out,
    })
}

fn parse_cyclonedx(v: &Value) -> Result<VexDocument, VexError> {
    let vulns = v
        .get("vulnerabilities")
        .and_then(Value::as_array)
        .ok_or(VexError::UnknownFormat)?;
    if vulns.len() > MAX_STATEMENTS {
        return Err(VexError::TooManyStatements);
    }
    // bom-ref → purl, for `affects` refs that name a component of the document.
    let mut purl_of = std::collections::HashMap::new();
    let meta = v.get("metadata").and_then(|m| m.get("component"));
    for c in meta
        .into_iter()
        .chain(
            v.get("components")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .take(100_000)
    {
        if let (Some(r), Some(p)) = (text(c, "bom-ref"), text(c, "purl")) {
            purl_of.insert(r, p);
        }
    }
    let products: Vec<String> = meta
        .map(|m| {
            text(m, "purl")
                .into_iter()
                .chain(text(m, "bom-ref"))
                .collect()
        })
        .unwrap_or_default();
    let doc_time = v.get("metadata").and_then(|m| text(m, "timestamp"));
    let mut out = Vec::new();
    for vu in vulns {
        let Some(analysis) = vu.get("analysis") else {
            continue; // a finding without an analysis states nothing
        };
        let Some(id) = text(vu, "id") else { continue };
        let status = match analysis.get("state").and_then(Value::as_str) {
            Some("not_affected") | Some("false_positive") => Status::NotAffected,
            Some("resolved") | Some("resolved_with_pedigree") => Status::Fixed,
            Some("exploitable") => Status::Affected,
            Some("in_triage") => Status::UnderInvestigation,
            _ => continue,
        };
        let justification = text(analysis, "justification").or_else(|| {
            (analysis.get("state").and_then(Value::as_str) == Some("false_positive"))
                .then(|| "false_positive".to_string())
        });
        let mut vulnerability = vec![id];
        for r in vu
            .get("references")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(64)
        {
            if let Some(a) = text(r, "id") {
                vulnerability.push(a);
            }
        }
        // An `affects` ref naming the product itself is the product; others are
        // packages inside it.
        let mut st_products = products.clone();
        let mut subcomponents = Vec::new();
        for a in vu
            .get("affects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .take(1024)
        {
            let Some(r) = text(a, "ref") else { continue };
            let resolved = purl_of.get(&r).cloned().unwrap_or(r);
            if products.contains(&resolved) || image_digest_of(&resolved).is_some() {
                st_products.push(resolved);
            } else {
                subcomponents.push(resolved);
            }
        }
        out.push(Statement {
            vulnerability,
            products: st_products,
            subcomponents,
            status,
            justification,
            impact_statement: text(analysis, "detail"),
            timestamp: text(analysis, "lastUpdated").or_else(|| doc_time.clone()),
        });
    }
    Ok(VexDocument {
        format: "cyclonedx",
        id: text(v, "serialNumber"),
        statements: out,
    })
}

/// The `sha256:<hex>` an image identifier names: a bare digest, a reference with
/// `@sha256:…`, or an oci/docker purl whose version is the digest.
pub fn image_digest_of(id: &str) -> Option<String> {
    let digest = if id.starts_with("pkg:") {
        let u: packageurl::PackageUrl = id.parse().ok()?;
        if !matches!(u.ty(), "oci" | "docker") {
            return None;
        }
        u.version()?.to_string()
    } else {
        id.rsplit_once('@').map_or(id, |(_, d)| d).to_string()
    };
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// A VEX document and who vouches for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VexSource {
    /// Where it came from: `file PATH`, `attestation sha256:…` (the layer or bundle).
    pub origin: String,
    /// The trusted signer (`key PATH (sha256:…)`, a keyless identity, or `operator`
    /// for a file given on the command line); `None`: not trusted, never applied.
    pub signer: Option<String>,
    /// Why it is not trusted, when `signer` is `None`.
    pub untrusted_reason: Option<String>,
    pub document: VexDocument,
}

/// A finding removed by a VEX statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    /// The vulnerability id as the finding had it.
    pub id: String,
    pub package: String,
    pub installed_version: String,
    pub purl: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact_statement: Option<String>,
    pub signer: String,
    pub source: String,
    /// The finding itself, so a report can still show what was suppressed.
    pub finding: Vulnerability,
}

/// A statement that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredStatement {
    pub vulnerability: String,
    pub source: String,
    pub reason: String,
}

/// What applying VEX did to one report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VexOutcome {
    pub suppressed: Vec<Suppression>,
    pub ignored: Vec<IgnoredStatement>,
}

/// Whether a subcomponent identifier names `pkg`: the same purl (type, namespace,
/// name; version when the identifier has one; its qualifiers a subset of the
/// package's), or `name@version`.
fn names_package(id: &str, v: &Vulnerability) -> bool {
    if id.starts_with("pkg:") {
        let (Ok(want), Ok(have)) = (
            id.parse::<packageurl::PackageUrl>(),
            v.purl.parse::<packageurl::PackageUrl>(),
        ) else {
            return false;
        };
        want.ty() == have.ty()
            && want.namespace() == have.namespace()
            && want.name() == have.name()
            && want.version().is_none_or(|ver| Some(ver) == have.version())
            && want
                .qualifiers()
                .iter()
                .all(|(k, val)| have.qualifiers().get(k) == Some(val))
    } else {
        id.rsplit_once('@')
            .is_some_and(|(n, ver)| n == v.package && ver == v.installed_version)
    }
}

fn names_vulnerability(st: &Statement, v: &Vulnerability) -> bool {
    st.vulnerability
        .iter()
        .any(|n| *n == v.id || v.aliases.iter().any(|a| a == n))
}

/// Applies `sources` to `report` for the image `digest` (`sha256:<hex>`): removes each
/// vulnerability a trusted, matching, latest statement says is `not_affected` (with a
/// justification) or `fixed`, and says why each other statement about a finding of
/// this image was not applied.
pub fn apply(report: &mut ScanReport, digest: &str, sources: &[VexSource]) -> VexOutcome {
    apply_any(report, &[digest], sources)
}

/// [`apply`] for an image known by several digests (`sha256:<hex>` each): a
/// multi-platform image's index and the platform manifest pulled. A statement whose
/// product is any of them is about this image; reasons name the first.
pub fn apply_any(report: &mut ScanReport, digests: &[&str], sources: &[VexSource]) -> VexOutcome {
    let digest = digests.first().copied().unwrap_or("");
    let mut outcome = VexOutcome::default();
    let mut kept = Vec::with_capacity(report.vulnerabilities.len());
    for v in std::mem::take(&mut report.vulnerabilities) {
        // The latest applicable statement from a trusted source decides.
        let mut best: Option<(&Statement, &VexSource)> = None;
        for src in sources {
            for st in &src.document.statements {
                if !names_vulnerability(st, &v) {
                    continue;
                }
                let ignore = |reason: String| IgnoredStatement {
                    vulnerability: v.id.clone(),
                    source: src.origin.clone(),
                    reason,
                };
                let for_image = st
                    .products
                    .iter()
                    .filter_map(|p| image_digest_of(p))
                    .any(|p| digests.contains(&p.as_str()));
                if !for_image {
                    push_once(
                        &mut outcome.ignored,
                        ignore(format!(
                            "statement is for another product ({}), not {digest}",
                            st.products
                                .first()
                                .map(String::as_str)
                                .unwrap_or("none named")
                        )),
                    );
                    continue;
                }
                if !st.subcomponents.is_empty()
                    && !st.subcomponents.iter().any(|s| names_package(s, &v))
                {
                    push_once(
                        &mut outcome.ignored,
                        ignore(format!(
                            "statement names {}, not {}@{}",
                            st.subcomponents.join(", "),
                            v.package,
                            v.installed_version
                        )),
                    );
                    continue;
                }
                if src.signer.is_none() {
                    push_once(
                        &mut outcome.ignored,
                        ignore(
                            src.untrusted_reason
                                .clone()
                                .unwrap_or_else(|| "not signed by a signer trusted for VEX".into()),
                        ),
                    );
                    continue;
                }
                if st.status == Status::NotAffected && st.justification.is_none() {
                    push_once(
                        &mut outcome.ignored,
                        ignore(
                            "not_affected without a justification (OpenVEX requires one)".into(),
                        ),
                    );
                    continue;
                }
                let later = match &best {
                    None => true,
                    Some((b, _)) => st.timestamp >= b.timestamp,
                };
                if later {
                    best = Some((st, src));
                }
            }
        }
        match best {
            Some((st, src)) if matches!(st.status, Status::NotAffected | Status::Fixed) => {
                outcome.suppressed.push(Suppression {
                    id: v.id.clone(),
                    package: v.package.clone(),
                    installed_version: v.installed_version.clone(),
                    purl: v.purl.clone(),
                    status: st.status,
                    justification: st.justification.clone(),
                    impact_statement: st.impact_statement.clone(),
                    signer: src.signer.clone().unwrap_or_default(),
                    source: src.origin.clone(),
                    finding: v,
                });
            }
            _ => kept.push(v),
        }
    }
    report.vulnerabilities = kept;
    outcome
}

fn push_once(list: &mut Vec<IgnoredStatement>, i: IgnoredStatement) {
    if !list.contains(&i) && list.len() < 1000 {
        list.push(i);
    }
}

#[cfg(test)]
mod tests;
