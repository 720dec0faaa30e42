//! NuGet version order (`NuGet.Versioning`): SemVer 2.0.0 with an optional fourth
//! numeric part (`1.2.3.4`, legacy `System.Version` style); missing parts are 0
//! (`1.0` = `1.0.0.0`); release labels compare per SemVer 2 (numeric < alphanumeric,
//! numerics by value, fewer labels first) but case-insensitively (`1.0.0-BETA` =
//! `1.0.0-beta`); build metadata never orders.

use std::cmp::Ordering;

use super::cmp_digits;

const MAX_LEN: usize = 256;

struct NuGetVersion<'a> {
    release: [&'a str; 4],
    labels: Vec<&'a str>,
}

fn parse(v: &str) -> Option<NuGetVersion<'_>> {
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_LEN {
        return None;
    }
    let v = match v.split_once('+') {
        Some((v, meta)) => {
            let ok = meta.split('.').all(|id| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            ok.then_some(v)?
        }
        None => v,
    };
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let mut release = ["0"; 4];
    for (n, part) in core.split('.').enumerate() {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *release.get_mut(n)? = part;
    }
    let mut labels = Vec::new();
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return None;
            }
            labels.push(id);
        }
    }
    Some(NuGetVersion { release, labels })
}

/// A SemVer 2 identifier comparison, case-insensitive.
fn cmp_label(a: &[u8], b: &[u8]) -> Ordering {
    let num = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match (num(a), num(b)) {
        (true, true) => cmp_digits(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a
            .iter()
            .map(u8::to_ascii_lowercase)
            .cmp(b.iter().map(u8::to_ascii_lowercase)),
    }
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parse(a)?, parse(b)?);
    Some(super::semver::precedence(
        (&a.release, &a.labels),
        (&b.release, &b.labels),
        cmp_label,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use std::cmp::Ordering::*;

    #[test]
    fn nuget_ascending() {
        // SemVer 2's own precedence example, then NuGet's fourth part.
        assert_ascending(
            Scheme::NuGet,
            &[
                "0.9",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.0.0.1-preview",
                "1.0.0.1",
                "1.0.0.10",
                "1.0.1",
                "1.10",
                "13.0.1",
            ],
        );
    }

    #[test]
    fn nuget_equivalences() {
        assert_cases(
            Scheme::NuGet,
            &[
                ("1.0", "1.0.0", Equal),
                ("1.0.0", "1.0.0.0", Equal),
                ("1", "1.0.0.0", Equal),
                ("1.01", "1.1", Equal),
                ("1.0.0-BETA", "1.0.0-beta", Equal),
                ("1.0.0-Beta.A", "1.0.0-beta.a", Equal),
                ("1.0.0+build.5", "1.0.0", Equal),
                ("1.0.0-rc.1+sha.abc", "1.0.0-RC.1", Equal),
                ("1.0.0-alpha", "1.0.0-Alpha.1", Less),
                ("1.0.0-beta1", "1.0.0-beta2", Less),
                ("6.0.0-preview.7.21377.19", "6.0.0-rc.1.21451.13", Less),
            ],
        );
        for junk in [
            "",
            "a.b",
            "1.0.0-",
            "1.0.0.0.0",
            "1..0",
            "1.0.0-beta..1",
            "1.0.0+",
            "v1.0.0",
            "1.0.0-bet@",
        ] {
            assert_eq!(super::compare(junk, "1.0"), None, "{junk:?}");
        }
    }
}
