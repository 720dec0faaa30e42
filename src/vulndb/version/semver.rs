//! SemVer 2.0.0 precedence (npm, crates.io, OSV `SEMVER` ranges) and Go module versions.
//! Build metadata never affects precedence; a pre-release sorts before its release;
//! pre-release identifiers compare numeric < alphanumeric, numerics by value. Go's
//! pseudo-versions (`v0.0.0-20200101120000-abcdef123456`, `vX.Y.(Z+1)-0.2020…-hash`) are
//! ordinary pre-releases under these rules, and `+incompatible` is build metadata.
//! Written by hand rather than with the `semver` crate, whose `Ord` also orders build
//! metadata and which rejects the partial versions (`0`, `1.2`) OSV ranges use.

use std::cmp::Ordering;

use super::cmp_digits;

const MAX_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemVer<'a> {
    core: [&'a [u8]; 3],
    pre: Vec<&'a [u8]>,
}

impl<'a> SemVer<'a> {
    /// Parse leniently: optional `v`/`=` prefix, missing minor/patch read as 0 (OSV
    /// writes `introduced: "0"`), leading zeros tolerated.
    pub fn parse(s: &'a str) -> Option<SemVer<'a>> {
        let s = s.trim();
        if s.is_empty() || s.len() > MAX_LEN {
            return None;
        }
        let s = s.strip_prefix('=').unwrap_or(s);
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        let s = match s.split_once('+') {
            Some((v, build)) => {
                let valid = build.split('.').all(|id| {
                    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                if !valid {
                    return None;
                }
                v
            }
            None => s,
        };
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let mut parts = [&b"0"[..]; 3];
        for (n, part) in core.split('.').enumerate() {
            if n >= 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            parts[n] = part.as_bytes();
        }
        let mut ids = Vec::new();
        if let Some(pre) = pre {
            for id in pre.split('.') {
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return None;
                }
                ids.push(id.as_bytes());
            }
        }
        Some(SemVer {
            core: parts,
            pre: ids,
        })
    }
}

fn cmp_identifier(a: &[u8], b: &[u8]) -> Ordering {
    let an = a.iter().all(u8::is_ascii_digit);
    let bn = b.iter().all(u8::is_ascii_digit);
    match (an, bn) {
        (true, true) => cmp_digits(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

/// SemVer 2 precedence of (release parts, pre-release identifiers) pairs: parts by
/// numeric value, then a release after its pre-releases, then identifiers pairwise
/// with `cmp_id`, then fewer identifiers first. Shared with NuGet, which differs only
/// in a fourth part and case-insensitive identifiers.
pub(super) fn precedence<T: AsRef<[u8]>>(
    (a_core, a_pre): (&[T], &[T]),
    (b_core, b_pre): (&[T], &[T]),
    cmp_id: impl Fn(&[u8], &[u8]) -> Ordering,
) -> Ordering {
    for (a, b) in a_core.iter().zip(b_core) {
        match cmp_digits(a.as_ref(), b.as_ref()) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    match (a_pre.is_empty(), b_pre.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        (false, false) => {}
    }
    a_pre
        .iter()
        .zip(b_pre)
        .map(|(a, b)| cmp_id(a.as_ref(), b.as_ref()))
        .find(|o| *o != Ordering::Equal)
        .unwrap_or_else(|| a_pre.len().cmp(&b_pre.len()))
}

impl Ord for SemVer<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        precedence(
            (&self.core, &self.pre),
            (&other.core, &other.pre),
            cmp_identifier,
        )
    }
}
impl PartialOrd for SemVer<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(SemVer::parse(a)?.cmp(&SemVer::parse(b)?))
}

/// Go versions: module versions (`v1.2.3`, with or without the `v` OSV drops) and Go
/// toolchain versions of the `stdlib` pseudo-module (`go1.21.3`, `go1.22rc1`).
pub fn compare_go(a: &str, b: &str) -> Option<Ordering> {
    let a = go_toolchain_to_semver(a);
    let b = go_toolchain_to_semver(b);
    compare(&a, &b)
}

/// `go1.21.3` → `1.21.3`; `go1.22rc1` → `1.22.0-rc.1`; `go1.20` → `1.20.0`.
fn go_toolchain_to_semver(v: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest) = v.trim().strip_prefix("go") else {
        return v.into();
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (num, pre) = rest.split_at(split);
    let pre = pre
        .strip_prefix("rc")
        .map(|n| format!("-rc.{n}"))
        .or_else(|| pre.strip_prefix("beta").map(|n| format!("-beta.{n}")))
        .unwrap_or_else(|| pre.to_string());
    format!("{num}{pre}").into()
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use std::cmp::Ordering::*;

    #[test]
    fn semver_spec_ascending() {
        // The precedence example of SemVer 2.0.0 §11 plus numeric edge cases.
        assert_ascending(
            Scheme::Semver,
            &[
                "0.0.0",
                "0.0.1",
                "0.9.0",
                "0.10.0",
                "1.0.0-0",
                "1.0.0-1",
                "1.0.0-2",
                "1.0.0-10",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.0.1",
                "1.2.0",
                "1.10.0",
                "2.0.0",
                "10.0.0",
            ],
        );
    }

    #[test]
    fn semver_pairs() {
        assert_cases(
            Scheme::Semver,
            &[
                ("1.0.0+build.1", "1.0.0+build.2", Equal),
                ("1.0.0+x", "1.0.0", Equal),
                ("v1.2.3", "1.2.3", Equal),
                ("=1.2.3", "1.2.3", Equal),
                ("0", "0.0.0", Equal),
                ("1.2", "1.2.0", Equal),
                ("1.0.0-rc.1+build", "1.0.0-rc.1", Equal),
                ("1.0.0-alpha-1", "1.0.0-alpha", Greater),
                ("4.17.21", "4.17.4", Greater),
                ("1.0.0-alpha.1", "1.0.0-alpha.01", Equal),
                ("1.0.0-x.7.z.92", "1.0.0-x.7.z.93", Less),
                ("1.0.0-beta.11", "1.0.0-beta.2", Greater),
                ("1.0.0-rc.1", "1.0.0-rc.1.0", Less),
                ("1.0.0-a-b", "1.0.0-a", Greater),
                ("2.0.0-0", "1.99.99", Greater),
                (
                    "99999999999999999999.0.0",
                    "100000000000000000000.0.0",
                    Less,
                ),
            ],
        );
    }

    #[test]
    fn go_versions() {
        assert_ascending(
            Scheme::Go,
            &[
                "v0.0.0-20190101000000-aaaaaaaaaaaa",
                "v0.0.0-20200101120000-abcdef123456",
                "v0.0.0-20200102000000-000000000000",
                "v0.0.0",
                "v0.1.0",
                "v1.2.3-pre",
                "v1.2.3",
                "v1.2.4-0.20200101120000-abcdef123456",
                "v1.2.4",
                "v2.0.0+incompatible",
                "v2.0.1+incompatible",
                "v2.1.0",
            ],
        );
        assert_cases(
            Scheme::Go,
            &[
                ("v2.0.0+incompatible", "2.0.0", Equal),
                ("v0.17.0", "0.17.0", Equal),
                ("go1.21.3", "1.21.3", Equal),
                ("go1.22rc1", "1.22.0", Less),
                ("go1.20", "1.20.0", Equal),
                ("go1.21.10", "go1.21.9", Greater),
            ],
        );
    }

    #[test]
    fn semver_rejects_junk() {
        for s in [
            "",
            "a.b.c",
            "1.2.3.4",
            "1..2",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3-ä",
            "v",
            "1.2.3-a+",
        ] {
            assert_eq!(super::compare(s, "1.0.0"), None, "{s:?}");
        }
        let long = "1.".repeat(200);
        assert_eq!(super::compare(&long, "1.0.0"), None);
    }
}
