//! Version ordering, one module per ecosystem, each written from that ecosystem's own
//! specification. Wrong ordering is the root of most scanner false positives and misses,
//! so every comparator is exact for well-formed input and total (never panics) on junk.

pub mod apk;
pub mod composer;
pub mod dpkg;
pub mod maven;
pub mod nuget;
pub mod pep440;
pub mod rpm;
pub mod rubygems;
pub mod semver;

use std::cmp::Ordering;

/// The version scheme an OSV `ECOSYSTEM` range is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Dpkg,
    Apk,
    /// RHEL and its rebuilds, openSUSE: rpm's EVR order.
    Rpm,
    Pep440,
    /// npm, crates.io, and OSV `SEMVER` ranges.
    Semver,
    /// Go modules: SemVer with a `v` prefix, `+incompatible`, pseudo-versions.
    Go,
    Maven,
    RubyGems,
    /// Packagist: Composer's normalised versions, PHP `version_compare` order.
    Composer,
    /// SemVer 2 with an optional fourth part, case-insensitive labels.
    NuGet,
}

impl Scheme {
    /// Compare two versions. `None` when either cannot be parsed under the scheme:
    /// such a version is never placed inside or outside a range by guesswork.
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            Scheme::Dpkg => Some(dpkg::compare(a, b)),
            Scheme::Apk => Some(apk::compare(a, b)),
            Scheme::Rpm => Some(rpm::compare(a, b)),
            Scheme::Pep440 => pep440::compare(a, b),
            Scheme::Semver => semver::compare(a, b),
            Scheme::Go => semver::compare_go(a, b),
            Scheme::Maven => Some(maven::compare(a, b)),
            Scheme::RubyGems => rubygems::compare(a, b),
            Scheme::Composer => composer::compare(a, b),
            Scheme::NuGet => nuget::compare(a, b),
        }
    }
}

/// Compare two ASCII digit strings by numeric value, of any length (no overflow: hostile
/// versions carry 40-digit components).
pub(crate) fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::Scheme;
    use std::cmp::Ordering;

    /// Every adjacent pair of `ordered` must compare Less, both ways round, and each
    /// element must equal itself.
    pub fn assert_ascending(scheme: Scheme, ordered: &[&str]) {
        for w in ordered.windows(2) {
            assert_eq!(
                scheme.compare(w[0], w[1]),
                Some(Ordering::Less),
                "{scheme:?}: expected {} < {}",
                w[0],
                w[1]
            );
            assert_eq!(
                scheme.compare(w[1], w[0]),
                Some(Ordering::Greater),
                "{scheme:?}: expected {} > {}",
                w[1],
                w[0]
            );
        }
        for v in ordered {
            assert_eq!(scheme.compare(v, v), Some(Ordering::Equal), "{v} == {v}");
        }
    }

    pub fn assert_cases(scheme: Scheme, cases: &[(&str, &str, Ordering)]) {
        for (a, b, want) in cases {
            assert_eq!(
                scheme.compare(a, b),
                Some(*want),
                "{scheme:?}: compare({a:?}, {b:?})"
            );
            assert_eq!(
                scheme.compare(b, a),
                Some(want.reverse()),
                "{scheme:?}: compare({b:?}, {a:?})"
            );
        }
    }
}
