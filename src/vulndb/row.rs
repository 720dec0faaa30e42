//! Binary encoding of package-index rows. Matching decodes thousands of rows per image,
//! so rows are length-prefixed fields read in place (strings borrowed from the stored
//! bytes, UTF-8 checked) instead of JSON. Every read is bounds-checked: a damaged row
//! is an error, never a panic.

use std::borrow::Cow;

use crate::report::Severity;

use super::osv::{AdvisoryHead, AffectedPackage, Event, IndexRow, Range, RangeKind, Text};

/// First byte of every row; a different layout gets a different tag.
const ROW_FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error)]
#[error("index row is damaged ({0})")]
pub struct RowError(&'static str);

fn sev_code(s: Severity) -> u8 {
    match s {
        Severity::None => 0,
        Severity::Low => 1,
        Severity::Medium => 2,
        Severity::Unknown => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

fn sev_from(c: u8) -> Result<Severity, RowError> {
    Ok(match c {
        0 => Severity::None,
        1 => Severity::Low,
        2 => Severity::Medium,
        3 => Severity::Unknown,
        4 => Severity::High,
        5 => Severity::Critical,
        _ => return Err(RowError("severity")),
    })
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: usize) {
        self.0
            .extend_from_slice(&u32::try_from(v).unwrap_or(u32::MAX).to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn opt_f32(&mut self, v: Option<f32>) {
        match v {
            Some(f) => {
                self.u8(1);
                self.0.extend_from_slice(&f.to_le_bytes());
            }
            None => self.u8(0),
        }
    }
}

pub fn encode(row: &IndexRow<'_>) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256));
    w.u8(ROW_FORMAT);
    let h = &row.head;
    w.str(&h.id);
    w.u32(h.aliases.len());
    for a in &h.aliases {
        w.str(a);
    }
    match &h.summary {
        Some(s) => {
            w.u8(1);
            w.str(s);
        }
        None => w.u8(0),
    }
    w.u8(sev_code(h.severity));
    w.opt_f32(h.score);
    w.u32(row.entries.len());
    for e in &row.entries {
        w.str(&e.ecosystem);
        w.str(&e.name);
        w.u32(e.ranges.len());
        for r in &e.ranges {
            w.u8(match r.kind {
                RangeKind::Ecosystem => 0,
                RangeKind::Semver => 1,
            });
            w.u32(r.events.len());
            for ev in &r.events {
                let (tag, v) = match ev {
                    Event::Introduced(v) => (0, v),
                    Event::Fixed(v) => (1, v),
                    Event::LastAffected(v) => (2, v),
                    Event::Limit(v) => (3, v),
                };
                w.u8(tag);
                w.str(v);
            }
        }
        w.u32(e.versions.len());
        for v in &e.versions {
            w.str(v);
        }
        match e.severity {
            Some((s, score)) => {
                w.u8(1);
                w.u8(sev_code(s));
                w.opt_f32(score);
            }
            None => w.u8(0),
        }
    }
    w.0
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], RowError> {
        if n > self.b.len() {
            return Err(RowError(what));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, RowError> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &'static str) -> Result<usize, RowError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    /// A count, capped by the bytes left (each item takes at least one byte), so a
    /// damaged count cannot make us reserve gigabytes.
    fn count(&mut self, what: &'static str) -> Result<usize, RowError> {
        let n = self.u32(what)?;
        if n > self.b.len() {
            return Err(RowError(what));
        }
        Ok(n)
    }
    fn str(&mut self, what: &'static str) -> Result<Text<'a>, RowError> {
        let n = self.u32(what)?;
        let b = self.take(n, what)?;
        std::str::from_utf8(b)
            .map(|s| Text(Cow::Borrowed(s)))
            .map_err(|_| RowError(what))
    }
    fn opt_f32(&mut self, what: &'static str) -> Result<Option<f32>, RowError> {
        match self.u8(what)? {
            0 => Ok(None),
            1 => {
                let b = self.take(4, what)?;
                Ok(Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            _ => Err(RowError(what)),
        }
    }
}

pub fn decode(bytes: &[u8]) -> Result<IndexRow<'_>, RowError> {
    let mut r = Reader { b: bytes };
    if r.u8("format")? != ROW_FORMAT {
        return Err(RowError("format"));
    }
    let id = r.str("id")?;
    let n = r.count("aliases")?;
    let mut aliases = Vec::with_capacity(n);
    for _ in 0..n {
        aliases.push(r.str("alias")?);
    }
    let summary = match r.u8("summary")? {
        0 => None,
        1 => Some(r.str("summary")?),
        _ => return Err(RowError("summary")),
    };
    let severity = sev_from(r.u8("severity")?)?;
    let score = r.opt_f32("score")?;
    let n = r.count("entries")?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let ecosystem = r.str("ecosystem")?;
        let name = r.str("name")?;
        let nr = r.count("ranges")?;
        let mut ranges = Vec::with_capacity(nr);
        for _ in 0..nr {
            let kind = match r.u8("range kind")? {
                0 => RangeKind::Ecosystem,
                1 => RangeKind::Semver,
                _ => return Err(RowError("range kind")),
            };
            let ne = r.count("events")?;
            let mut events = Vec::with_capacity(ne);
            for _ in 0..ne {
                let tag = r.u8("event")?;
                let v = r.str("event")?;
                events.push(match tag {
                    0 => Event::Introduced(v),
                    1 => Event::Fixed(v),
                    2 => Event::LastAffected(v),
                    3 => Event::Limit(v),
                    _ => return Err(RowError("event")),
                });
            }
            ranges.push(Range { kind, events });
        }
        let nv = r.count("versions")?;
        let mut versions = Vec::with_capacity(nv);
        for _ in 0..nv {
            versions.push(r.str("version")?);
        }
        let severity = match r.u8("entry severity")? {
            0 => None,
            1 => Some((
                sev_from(r.u8("entry severity")?)?,
                r.opt_f32("entry score")?,
            )),
            _ => return Err(RowError("entry severity")),
        };
        entries.push(AffectedPackage {
            ecosystem,
            name,
            ranges,
            versions,
            severity,
        });
    }
    if !r.b.is_empty() {
        return Err(RowError("trailing bytes"));
    }
    Ok(IndexRow {
        head: AdvisoryHead {
            id,
            aliases,
            summary,
            severity,
            score,
        },
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vulndb::osv::{ParseNotes, Parsed, parse};

    #[test]
    fn round_trip_and_damage() {
        let json = br#"{"id":"GHSA-1","modified":"2024-01-01T00:00:00Z","aliases":["CVE-1","CVE-2"],"summary":"s \u00e9",
            "severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
            "affected":[{"package":{"ecosystem":"PyPI","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.0"},{"last_affected":"0.9"},{"limit":"2"}]}],
              "versions":["0.1"],"database_specific":{"severity":"LOW"}}]}"#;
        let Ok(Parsed::Advisory(adv)) = parse(json, &mut ParseNotes::default()) else {
            panic!("fixture parses")
        };
        let row = IndexRow {
            head: adv.head(),
            entries: adv.affected.clone(),
        };
        let bytes = encode(&row);
        assert_eq!(decode(&bytes).unwrap(), row);
        // every truncation and every single-byte corruption is an error or a value, never a panic
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncated at {n}");
            let mut b = bytes.clone();
            b[n] ^= 0xff;
            let _ = decode(&b);
        }
        assert!(decode(&[]).is_err());
        assert!(decode(&[ROW_FORMAT, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
