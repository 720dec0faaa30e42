//! OSV records (https://ossf.github.io/osv-schema/): lenient parsing of the JSON, then
//! validation into the compact `Advisory` the store keeps — only ecosystems we can order,
//! `ECOSYSTEM`/`SEMVER` ranges with events pre-sorted, severity computed from vectors.
//! Anything malformed becomes a `Rejection` with a reason, never a panic.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::report::Severity;

use super::cvss;
use super::ecosystem::Ecosystem;
use super::version::Scheme;

/// Limits on one record; beyond them the record is junk, not data.
pub const MAX_RECORD_BYTES: u64 = 16 << 20;
const MAX_ID_LEN: usize = 128;
const MAX_NAME_LEN: usize = 512;
const MAX_VERSION_LEN: usize = 256;
const MAX_AFFECTED: usize = 10_000;
const MAX_RANGES: usize = 1_000;
const MAX_EVENTS: usize = 10_000;
const MAX_VERSIONS: usize = 100_000;
const MAX_ALIASES: usize = 1_000;
const MAX_SUMMARY: usize = 300;

// ---------------------------------------------------------------- wire format

#[derive(Debug, Deserialize)]
struct RawRecord {
    id: String,
    modified: String,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    affected: Option<Vec<RawAffected>>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Debug, Deserialize)]
struct RawAffected {
    #[serde(default)]
    package: Option<RawPackage>,
    #[serde(default)]
    severity: Option<Vec<RawSeverity>>,
    #[serde(default)]
    ranges: Option<Vec<RawRange>>,
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    ecosystem_specific: Option<Value>,
    #[serde(default)]
    database_specific: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<serde_json::Map<String, Value>>,
}

// ---------------------------------------------------------------- stored form

/// One advisory as stored (compact, validated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory<'a> {
    pub id: String,
    pub modified: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    #[serde(borrow)]
    pub affected: Vec<AffectedPackage<'a>>,
}

impl Advisory<'_> {
    /// Detach from the bytes it was decoded from.
    pub fn into_owned(self) -> Advisory<'static> {
        Advisory {
            id: self.id,
            modified: self.modified,
            aliases: self.aliases,
            summary: self.summary,
            severity: self.severity,
            score: self.score,
            affected: self
                .affected
                .into_iter()
                .map(AffectedPackage::into_owned)
                .collect(),
        }
    }
}

impl<'a> AffectedPackage<'a> {
    pub fn into_owned(self) -> AffectedPackage<'static> {
        AffectedPackage {
            ecosystem: self.ecosystem.into_owned(),
            name: self.name.into_owned(),
            ranges: self
                .ranges
                .into_iter()
                .map(|r| Range {
                    kind: r.kind,
                    events: r.events.into_iter().map(Event::into_owned).collect(),
                })
                .collect(),
            versions: self.versions.into_iter().map(Text::into_owned).collect(),
            severity: self.severity,
        }
    }
}

impl Event<'_> {
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::Introduced(v) => Event::Introduced(v.into_owned()),
            Event::Fixed(v) => Event::Fixed(v.into_owned()),
            Event::LastAffected(v) => Event::LastAffected(v.into_owned()),
            Event::Limit(v) => Event::Limit(v.into_owned()),
        }
    }
}

impl Text<'_> {
    pub fn into_owned(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

/// The parts of a stored advisory a finding needs; deserialising it skips the
/// `affected` list (which can hold thousands of versions) without allocating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvisoryHead<'a> {
    #[serde(borrow)]
    pub id: Text<'a>,
    #[serde(default, borrow)]
    pub aliases: Vec<Text<'a>>,
    #[serde(default, borrow)]
    pub summary: Option<Text<'a>>,
    pub severity: Severity,
    #[serde(default)]
    pub score: Option<f32>,
}

/// One row of the package index: an advisory's entries for one package plus the head
/// a finding needs, so a match costs one index scan and no record lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRow<'a> {
    #[serde(borrow)]
    pub head: AdvisoryHead<'a>,
    #[serde(borrow)]
    pub entries: Vec<AffectedPackage<'a>>,
}

impl<'a> Advisory<'a> {
    pub fn head(&self) -> AdvisoryHead<'_> {
        AdvisoryHead {
            id: Text(Cow::Borrowed(&self.id)),
            aliases: self
                .aliases
                .iter()
                .map(|a| Text(Cow::Borrowed(a.as_str())))
                .collect(),
            summary: self.summary.as_deref().map(|s| Text(Cow::Borrowed(s))),
            severity: self.severity,
            score: self.score,
        }
    }
}

/// A string that borrows from the stored bytes when it can (no escapes) and owns
/// otherwise: matching decodes index entries without allocating their strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Text<'static> {
    fn from(s: String) -> Self {
        Text(Cow::Owned(s))
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedPackage<'a> {
    /// Full OSV ecosystem string (`Debian:12`).
    #[serde(borrow)]
    pub ecosystem: Text<'a>,
    #[serde(borrow)]
    pub name: Text<'a>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", borrow)]
    pub ranges: Vec<Range<'a>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", borrow)]
    pub versions: Vec<Text<'a>>,
    /// Severity specific to this package, overriding the record's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<(Severity, Option<f32>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeKind {
    Ecosystem,
    Semver,
}

/// A range whose events are sorted by version (introduced `0` first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Range<'a> {
    pub kind: RangeKind,
    #[serde(borrow)]
    pub events: Vec<Event<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event<'a> {
    Introduced(#[serde(borrow)] Text<'a>),
    Fixed(#[serde(borrow)] Text<'a>),
    LastAffected(#[serde(borrow)] Text<'a>),
    Limit(#[serde(borrow)] Text<'a>),
}

impl Event<'_> {
    fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

impl AffectedPackage<'_> {
    pub fn ecosystem_kind(&self) -> Option<Ecosystem> {
        Ecosystem::from_osv(&self.ecosystem)
    }

    fn scheme(&self, kind: RangeKind) -> Option<Scheme> {
        let e = self.ecosystem_kind()?;
        Some(match kind {
            RangeKind::Ecosystem => e.scheme(),
            RangeKind::Semver => e.semver_scheme(),
        })
    }

    /// Is `version` affected? `Some(fixed_in)` when it is (the lowest fix above it in
    /// the range that matched, if any).
    pub fn affects(&self, version: &str) -> Option<Option<String>> {
        let mut hit: Option<Option<String>> = None;
        for range in &self.ranges {
            let Some(scheme) = self.scheme(range.kind) else {
                continue;
            };
            if let Some(fixed) = range_affects(scheme, &range.events, version) {
                // prefer a hit that names a fix
                if hit.as_ref().is_none_or(|h| h.is_none()) {
                    hit = Some(fixed);
                }
            }
        }
        if hit.is_some() {
            return hit;
        }
        let scheme = self.scheme(RangeKind::Ecosystem)?;
        let listed = self
            .versions
            .iter()
            .any(|v| &**v == version || scheme.compare(v, version) == Some(Ordering::Equal));
        listed.then_some(None)
    }
}

fn is_zero(v: &str) -> bool {
    v == "0"
}

/// Evaluate one range (events sorted) per the OSV specification.
fn range_affects(scheme: Scheme, events: &[Event<'_>], version: &str) -> Option<Option<String>> {
    let cmp = |a: &str| -> Option<Ordering> { scheme.compare(version, a) };
    // A range with limits only covers versions below one of them.
    let limits: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Limit(l) => Some(&**l),
            _ => None,
        })
        .collect();
    if !limits.is_empty()
        && !limits
            .iter()
            .any(|l| *l == "*" || cmp(l) == Some(Ordering::Less))
    {
        return None;
    }
    let mut affected = false;
    for e in events {
        match e {
            Event::Introduced(v) => {
                if is_zero(v) || matches!(cmp(v)?, Ordering::Greater | Ordering::Equal) {
                    affected = true;
                }
            }
            Event::Fixed(v) => {
                if matches!(cmp(v)?, Ordering::Greater | Ordering::Equal) {
                    affected = false;
                }
            }
            Event::LastAffected(v) => {
                if cmp(v)? == Ordering::Greater {
                    affected = false;
                }
            }
            Event::Limit(_) => {}
        }
    }
    if !affected {
        return None;
    }
    // Lowest fix above the installed version.
    let fixed = events
        .iter()
        .filter_map(|e| match e {
            Event::Fixed(v) if cmp(v) == Some(Ordering::Less) => Some(v),
            _ => None,
        })
        .min_by(|a, b| scheme.compare(a, b).unwrap_or(Ordering::Equal))
        .map(|v| v.to_string());
    Some(fixed)
}

// ---------------------------------------------------------------- parsing

/// Why a record was not imported. `category` is a stable key for counting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub category: &'static str,
    pub detail: String,
}

fn reject(category: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection {
        category,
        detail: detail.into(),
    }
}

/// What parsing one file produced.
#[derive(Debug)]
pub enum Parsed {
    Advisory(Advisory<'static>),
    /// A withdrawn record: only its id and modified time matter.
    Withdrawn {
        id: String,
        modified: String,
    },
}

/// Non-fatal observations while parsing (counted in the import report).
#[derive(Debug, Default, Clone, Copy)]
pub struct ParseNotes {
    pub git_ranges: u64,
    pub unknown_range_types: u64,
    pub unsupported_affected: u64,
    pub unparseable_ranges: u64,
}

fn valid_text(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.contains('\0')
}

pub fn parse(bytes: &[u8], notes: &mut ParseNotes) -> Result<Parsed, Rejection> {
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(reject("too-large", format!("{} bytes", bytes.len())));
    }
    let raw: RawRecord =
        serde_json::from_slice(bytes).map_err(|e| reject("bad-json", e.to_string()))?;
    if !valid_text(&raw.id, MAX_ID_LEN) || raw.id.chars().any(char::is_whitespace) {
        return Err(reject("bad-id", format!("{:.80?}", raw.id)));
    }
    let modified = parse_time(&raw.modified)
        .ok_or_else(|| reject("bad-modified", format!("{}: {:.40?}", raw.id, raw.modified)))?;
    if raw.withdrawn.is_some() {
        return Ok(Parsed::Withdrawn {
            id: raw.id,
            modified,
        });
    }
    let mut aliases: Vec<String> = raw.aliases.unwrap_or_default();
    if aliases.len() > MAX_ALIASES || aliases.iter().any(|a| !valid_text(a, MAX_ID_LEN)) {
        return Err(reject("bad-aliases", raw.id));
    }
    aliases.sort();
    aliases.dedup();

    let (severity, score) = severity_of(
        raw.severity.as_deref().unwrap_or_default(),
        &[raw.database_specific.as_ref()],
    )
    .unwrap_or((Severity::Unknown, None));

    let raw_affected = raw.affected.unwrap_or_default();
    if raw_affected.len() > MAX_AFFECTED {
        return Err(reject("too-many-affected", raw.id));
    }
    let mut affected = Vec::new();
    for a in raw_affected {
        let Some(pkg) = a.package else { continue };
        let Some(eco) = Ecosystem::from_osv(&pkg.ecosystem) else {
            notes.unsupported_affected += 1;
            continue;
        };
        if !valid_text(&pkg.name, MAX_NAME_LEN) || !valid_text(&pkg.ecosystem, MAX_NAME_LEN) {
            return Err(reject("bad-package", raw.id));
        }
        let ranges_in = a.ranges.unwrap_or_default();
        let versions = a.versions.unwrap_or_default();
        if ranges_in.len() > MAX_RANGES || versions.len() > MAX_VERSIONS {
            return Err(reject("too-many-ranges", raw.id));
        }
        if versions.iter().any(|v| !valid_text(v, MAX_VERSION_LEN)) {
            return Err(reject("absurd-version", raw.id));
        }
        let mut ranges = Vec::new();
        for r in ranges_in {
            let kind = match r.kind.as_str() {
                "ECOSYSTEM" => RangeKind::Ecosystem,
                "SEMVER" => RangeKind::Semver,
                "GIT" => {
                    notes.git_ranges += 1;
                    continue;
                }
                _ => {
                    notes.unknown_range_types += 1;
                    continue;
                }
            };
            if r.events.len() > MAX_EVENTS {
                return Err(reject("too-many-events", raw.id));
            }
            let mut events = Vec::with_capacity(r.events.len());
            for ev in &r.events {
                if ev.len() != 1 {
                    return Err(reject("bad-event", raw.id));
                }
                let Some((k, v)) = ev.iter().next() else {
                    return Err(reject("bad-event", raw.id));
                };
                let Some(v) = v.as_str() else {
                    return Err(reject("bad-event", raw.id));
                };
                if !valid_text(v, MAX_VERSION_LEN) {
                    return Err(reject("absurd-version", raw.id));
                }
                events.push(match k.as_str() {
                    "introduced" => Event::Introduced(v.to_string().into()),
                    "fixed" => Event::Fixed(v.to_string().into()),
                    "last_affected" => Event::LastAffected(v.to_string().into()),
                    "limit" => Event::Limit(v.to_string().into()),
                    _ => return Err(reject("bad-event", raw.id)),
                });
            }
            let scheme = match kind {
                RangeKind::Ecosystem => eco.scheme(),
                RangeKind::Semver => eco.semver_scheme(),
            };
            match sort_events(scheme, events) {
                Some(events) => ranges.push(Range { kind, events }),
                // A range whose bounds the ecosystem cannot order cannot be evaluated
                // honestly; count it rather than guess.
                None => notes.unparseable_ranges += 1,
            }
        }
        let pkg_severity = severity_of(
            a.severity.as_deref().unwrap_or_default(),
            &[a.ecosystem_specific.as_ref(), a.database_specific.as_ref()],
        );
        if ranges.is_empty() && versions.is_empty() {
            continue;
        }
        affected.push(AffectedPackage {
            ecosystem: pkg.ecosystem.into(),
            name: eco.normalize_name(&pkg.name).into(),
            ranges,
            versions: versions.into_iter().map(Text::from).collect(),
            severity: pkg_severity,
        });
    }
    let summary = raw
        .summary
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            raw.details
                .and_then(|d| d.lines().find(|l| !l.trim().is_empty()).map(str::to_string))
        })
        .map(|s| truncate(s.trim(), MAX_SUMMARY));
    Ok(Parsed::Advisory(Advisory {
        id: raw.id,
        modified,
        aliases,
        summary,
        severity,
        score,
        affected,
    }))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Normalise an RFC 3339 timestamp to UTC `YYYY-MM-DDTHH:MM:SSZ` so that string order
/// is time order.
pub fn parse_time(s: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&fmt).ok()
}

/// Sort events by version with introduced `0` first; None when a bound cannot be
/// parsed under the scheme.
fn sort_events(scheme: Scheme, mut events: Vec<Event<'static>>) -> Option<Vec<Event<'static>>> {
    for e in &events {
        let v = e.version();
        let is_sentinel = matches!(e, Event::Introduced(x) if is_zero(x))
            || matches!(e, Event::Limit(x) if &**x == "*");
        if !is_sentinel && scheme.compare(v, v).is_none() {
            return None;
        }
    }
    events.sort_by(|a, b| {
        let za = matches!(a, Event::Introduced(x) if is_zero(x));
        let zb = matches!(b, Event::Introduced(x) if is_zero(x));
        match (za, zb) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => scheme
                .compare(a.version(), b.version())
                .unwrap_or(Ordering::Equal),
        }
    });
    Some(events)
}

/// Severity from `severity[]` vectors (CVSS v3.x preferred, then v4.0: policies are
/// written against the ratings most advisories carry, and a publisher adding a v4 vector
/// must not silently move a finding across a threshold), else a text rating in one of
/// the `*_specific` objects (`severity: "MODERATE"`). Debian's `urgency` is a
/// scheduling hint, not a severity, and is never read.
fn severity_of(
    entries: &[RawSeverity],
    specific: &[Option<&Value>],
) -> Option<(Severity, Option<f32>)> {
    let mut v3 = None;
    let mut v4 = None;
    let mut text = None;
    for e in entries {
        match e.kind.as_str() {
            "CVSS_V3" => v3 = v3.or_else(|| cvss::v3_base_score(&e.score)),
            "CVSS_V4" => v4 = v4.or_else(|| cvss::v4_score(&e.score)),
            "Ubuntu" => text = text.or_else(|| text_rating(&e.score)),
            _ => {}
        }
    }
    if let Some(score) = v3.or(v4) {
        return Some((cvss::rating(score), Some(score)));
    }
    if text.is_none() {
        text = specific.iter().flatten().find_map(|v| {
            v.get("severity")
                .and_then(Value::as_str)
                .and_then(text_rating)
        });
    }
    text.map(|s| (s, None))
}

fn text_rating(s: &str) -> Option<Severity> {
    match s.trim().to_ascii_lowercase().as_str() {
        "negligible" => Some(Severity::Low),
        other => other
            .parse::<Severity>()
            .ok()
            .filter(|s| *s != Severity::Unknown),
    }
}

/// The `ecosystem` strings one advisory touches (for per-ecosystem counts).
pub fn ecosystems<'s>(a: &'s Advisory<'_>) -> BTreeSet<&'s str> {
    a.affected.iter().map(|p| &*p.ecosystem).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(json: &str) -> Advisory<'static> {
        match parse(json.as_bytes(), &mut ParseNotes::default()) {
            Ok(Parsed::Advisory(a)) => a,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn affects(a: &Advisory<'_>, v: &str) -> Option<Option<String>> {
        a.affected[0].affects(v)
    }

    #[test]
    fn range_semantics() {
        let a = parse_ok(
            r#"{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"Foo_Bar"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"fixed":"1.5"},{"introduced":"0"},{"introduced":"2.0"},{"fixed":"2.3.1"},{"introduced":"3.0"},{"last_affected":"3.2"}]}]}]}"#,
        );
        assert_eq!(&*a.affected[0].name, "foo-bar");
        assert_eq!(affects(&a, "0.1"), Some(Some("1.5".into())));
        assert_eq!(affects(&a, "1.5rc1"), Some(Some("1.5".into())));
        assert_eq!(affects(&a, "1.5"), None);
        assert_eq!(affects(&a, "1.9"), None);
        assert_eq!(affects(&a, "2.0"), Some(Some("2.3.1".into())));
        assert_eq!(affects(&a, "2.3.1"), None);
        assert_eq!(affects(&a, "3.0"), Some(None));
        assert_eq!(affects(&a, "3.2"), Some(None));
        assert_eq!(affects(&a, "3.2.post1"), None);
        assert_eq!(affects(&a, "not a version"), None);
    }

    #[test]
    fn limit_and_versions_list() {
        let a = parse_ok(
            r#"{"id":"X-2","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},
            "ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"limit":"1.5.0"}]},{"type":"GIT","repo":"x","events":[{"introduced":"abc"}]}],
            "versions":["0.9.0"]}]}"#,
        );
        assert_eq!(affects(&a, "1.2.0"), Some(None));
        assert_eq!(affects(&a, "1.5.0"), None);
        assert_eq!(affects(&a, "0.9.0"), Some(None));
        assert_eq!(affects(&a, "0.9.1"), None);
    }

    #[test]
    fn severity_choice() {
        let a = parse_ok(
            r#"{"id":"GHSA-x","modified":"2024-01-01T00:00:00Z",
            "severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},
                        {"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
            "database_specific":{"severity":"CRITICAL"}}"#,
        );
        assert_eq!((a.severity, a.score), (Severity::High, Some(7.5)));
        let a = parse_ok(
            r#"{"id":"GHSA-y","modified":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"garbage"}],
            "database_specific":{"severity":"MODERATE"}}"#,
        );
        assert_eq!((a.severity, a.score), (Severity::Medium, None));
        let a = parse_ok(
            r#"{"id":"DSA-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},
            "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.13-1~deb12u1"}]}],
            "ecosystem_specific":{"urgency":"high"}}]}"#,
        );
        assert_eq!(a.severity, Severity::Unknown);
        assert_eq!(a.affected[0].severity, None);
    }

    #[test]
    fn hostile_records_are_rejected_not_panicking() {
        let cases: &[(&str, &str)] = &[
            ("{", "bad-json"),
            ("[]", "bad-json"),
            (r#"{"id":"","modified":"2024-01-01T00:00:00Z"}"#, "bad-id"),
            (
                r#"{"id":"a b","modified":"2024-01-01T00:00:00Z"}"#,
                "bad-id",
            ),
            (r#"{"id":"X","modified":"yesterday"}"#, "bad-modified"),
            (
                r#"{"id":"X","modified":"2024-01-01T00:00:00Z","aliases":[1]}"#,
                "bad-json",
            ),
            (
                r#"{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1"}]}]}]}"#,
                "bad-event",
            ),
            (
                r#"{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"fixed":7}]}]}]}"#,
                "bad-event",
            ),
        ];
        for (json, category) in cases {
            let err = parse(json.as_bytes(), &mut ParseNotes::default()).unwrap_err();
            assert_eq!(err.category, *category, "{json}");
        }
        let long = format!(
            r#"{{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"npm","name":"a"}},"ranges":[{{"type":"SEMVER","events":[{{"fixed":"{}"}}]}}]}}]}}"#,
            "9".repeat(1000)
        );
        assert_eq!(
            parse(long.as_bytes(), &mut ParseNotes::default())
                .unwrap_err()
                .category,
            "absurd-version"
        );
        // unknown range types and unparseable bounds are counted, not fatal
        let mut notes = ParseNotes::default();
        let json = r#"{"id":"X","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"a"},
            "ranges":[{"type":"WEIRD","events":[]},{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"not!a!version"}]}]},
            {"package":{"ecosystem":"Hackage","name":"b"},"versions":["1"]}]}"#;
        assert!(matches!(
            parse(json.as_bytes(), &mut notes),
            Ok(Parsed::Advisory(_))
        ));
        assert_eq!(
            (
                notes.unknown_range_types,
                notes.unparseable_ranges,
                notes.unsupported_affected
            ),
            (1, 1, 1)
        );
        // deep nesting in an ignored object is serde_json's recursion limit, an error
        let deep = format!(
            r#"{{"id":"X","modified":"2024-01-01T00:00:00Z","database_specific":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            parse(deep.as_bytes(), &mut ParseNotes::default())
                .unwrap_err()
                .category,
            "bad-json"
        );
    }

    #[test]
    fn withdrawn_and_time_normalisation() {
        let p = parse(br#"{"id":"X","modified":"2024-01-01T02:00:00+02:00","withdrawn":"2024-01-02T00:00:00Z"}"#, &mut ParseNotes::default()).unwrap();
        match p {
            Parsed::Withdrawn { id, modified } => {
                assert_eq!(id, "X");
                assert_eq!(modified, "2024-01-01T00:00:00.000000Z");
            }
            other => panic!("{other:?}"),
        }
    }
}
