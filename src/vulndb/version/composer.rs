//! Composer version order (Packagist): a version is first normalised as
//! `composer/semver`'s `VersionParser::normalize` does (`v1.2` → `1.2.0.0`,
//! `1.0.0b2` → `1.0.0.0-beta2`, `2.1.x-dev` → `2.1.9999999.9999999-dev`), then compared
//! as PHP's `version_compare` compares the normalised strings: numbers by value, and
//! `dev < alpha < beta < RC < (a number) < patch`. Branch versions (`dev-main`) have no
//! place in the order.

use std::cmp::Ordering;

use super::cmp_digits;

const MAX_LEN: usize = 256;
/// What Composer writes for the `x` of a branch alias (`1.x-dev`).
const BRANCH_NUMBER: &str = "9999999";

/// One part of a normalised version as `version_compare` splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'a> {
    Num(&'a str),
    /// `version_compare`'s special forms, by rank: dev 0, alpha 1, beta 2, RC 3,
    /// patch 5 (a number ranks 4 against them).
    Special(u8),
}

const NUMBER_RANK: u8 = 4;

fn stability_rank(s: &str) -> Option<u8> {
    Some(match s.to_ascii_lowercase().as_str() {
        "dev" => 0,
        "alpha" | "a" => 1,
        "beta" | "b" => 2,
        "rc" => 3,
        "patch" | "pl" | "p" => 5,
        _ => return None,
    })
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The release numbers of a classical version (`1`, `1.2.3.4`), or a branch
/// (`1.x`, `1.2.*`) when `branch`.
fn release(s: &str, branch: bool) -> Option<Vec<&str>> {
    let nums: Vec<&str> = s.split('.').collect();
    if nums.is_empty() || nums.len() > 4 {
        return None;
    }
    let mut out = Vec::with_capacity(4);
    for (i, n) in nums.iter().enumerate() {
        if all_digits(n) {
            out.push(*n);
        } else if branch && i > 0 && matches!(*n, "x" | "X" | "*") {
            out.push(BRANCH_NUMBER);
        } else {
            return None;
        }
    }
    // Date versions (`20240101`, `2024.01.02`) are not padded.
    let pad = if nums.first().is_some_and(|n| n.len() > 5) {
        out.len()
    } else {
        4
    };
    let filler = if branch { BRANCH_NUMBER } else { "0" };
    while out.len() < pad {
        out.push(filler);
    }
    Some(out)
}

/// Normalise and split into `version_compare` parts; `None` for branches and junk.
fn parts(v: &str) -> Option<Vec<Part<'_>>> {
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_LEN {
        return None;
    }
    // `1.0.x-dev as 1.0.0` (an inline alias) is the version on the left.
    let v = v.split(" as ").next().unwrap_or(v).trim();
    // Build metadata does not order.
    let v = v.split_once('+').map_or(v, |(a, _)| a);
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    if v.is_empty()
        || v.to_ascii_lowercase().starts_with("dev-")
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
    {
        return None;
    }
    // The release: leading digits and dots (and branch wildcards).
    let end = v
        .bytes()
        .position(|b| !(b.is_ascii_digit() || b == b'.' || b == b'x' || b == b'X' || b == b'*'))
        .unwrap_or(v.len());
    let (rel, rest) = v.split_at(end);
    // `1.0.` before a modifier: the separator belongs to the modifier.
    let rel = rel.strip_suffix('.').unwrap_or(rel);
    let mut rest = rest.strip_prefix(['.', '-', '_']).unwrap_or(rest);
    let lower = rest.to_ascii_lowercase();
    let has_wild = rel.bytes().any(|b| matches!(b, b'x' | b'X' | b'*'));
    if has_wild {
        // Only a branch alias may carry wildcards: `1.x-dev`, `1.2.*-dev`.
        if lower != "dev" {
            return None;
        }
        let mut out: Vec<Part<'_>> = release(rel, true)?.into_iter().map(Part::Num).collect();
        out.push(Part::Special(0));
        return Some(out);
    }
    let mut out: Vec<Part<'_>> = release(rel, false)?.into_iter().map(Part::Num).collect();
    if rest.is_empty() {
        return Some(out);
    }
    // Stability: a word, optional numbers, optional `-dev`.
    let word_len = rest
        .bytes()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let (word, after) = rest.split_at(word_len);
    if word.eq_ignore_ascii_case("stable") {
        // `1.0.0-stable` is `1.0.0`.
        rest = after;
    } else if word.eq_ignore_ascii_case("dev") {
        out.push(Part::Special(0));
        return after.is_empty().then_some(out);
    } else {
        out.push(Part::Special(stability_rank(word)?));
        rest = after;
    }
    // Numbers of the modifier (`beta2`, `beta.2`, `RC-1.3`), then an optional `-dev`.
    let (nums, dev) = match rest.to_ascii_lowercase().rfind("dev") {
        Some(i) if i + 3 == rest.len() => {
            let head = rest.get(..i).unwrap_or_default();
            (head.strip_suffix(['.', '-']).unwrap_or(head), true)
        }
        _ => (rest, false),
    };
    let nums = nums.strip_prefix(['.', '-']).unwrap_or(nums);
    if !nums.is_empty() {
        for n in nums.split(['.', '-']) {
            if !all_digits(n) {
                return None;
            }
            out.push(Part::Num(n));
        }
    }
    if dev {
        out.push(Part::Special(0));
    }
    Some(out)
}

fn rank(p: &Part<'_>) -> u8 {
    match p {
        Part::Num(_) => NUMBER_RANK,
        Part::Special(r) => *r,
    }
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parts(a)?, parts(b)?);
    for (l, r) in a.iter().zip(&b) {
        let o = match (l, r) {
            (Part::Num(x), Part::Num(y)) => cmp_digits(x.as_bytes(), y.as_bytes()),
            _ => rank(l).cmp(&rank(r)),
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    // One ran out: a longer number is newer; a trailing special form compares
    // against "a number" (so `-beta` is older, `-patch` newer).
    Some(match a.len().cmp(&b.len()) {
        Ordering::Equal => Ordering::Equal,
        Ordering::Greater => rank(&a[b.len()]).cmp(&NUMBER_RANK).then(Ordering::Greater),
        Ordering::Less => NUMBER_RANK.cmp(&rank(&b[a.len()])).then(Ordering::Less),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use std::cmp::Ordering::*;

    #[test]
    fn composer_ascending() {
        assert_ascending(
            Scheme::Composer,
            &[
                "0.9.9",
                "1.0.0-dev",
                "1.0.0-alpha",
                "1.0.0-alpha1",
                "1.0.0-alpha2",
                "1.0.0-beta1-dev",
                "1.0.0-beta1",
                "1.0.0-beta2",
                "1.0.0-beta10",
                "1.0.0-RC1",
                "1.0.0-RC2",
                "1.0.0",
                "1.0.0-patch1",
                "1.0.0-patch2",
                "1.0.0.1",
                "1.0.1",
                "1.2.x-dev",
                "1.10.0",
                "1.x-dev",
                "2.0.0-RC1",
                "v2.0.0",
                "10.0",
            ],
        );
    }

    #[test]
    fn composer_normal_forms() {
        assert_cases(
            Scheme::Composer,
            &[
                // v prefix, padding to four parts, build metadata
                ("v1.0", "1.0.0.0", Equal),
                ("1", "1.0.0", Equal),
                ("1.0.0+20240101", "1.0.0", Equal),
                // stability aliases and separators
                ("1.0.0-b2", "1.0.0-beta2", Equal),
                ("1.0.0b2", "1.0.0-beta.2", Equal),
                ("1.0.0-a1", "1.0.0-alpha1", Equal),
                ("1.0.0-rc1", "1.0.0-RC1", Equal),
                ("1.0.0-pl1", "1.0.0-patch1", Equal),
                ("1.0.0-p1", "1.0.0-patch1", Equal),
                ("1.0.0.RC1", "1.0.0-RC1", Equal),
                ("1.0.0-stable", "1.0.0", Equal),
                ("1.0.0-BETA", "1.0.0-beta", Equal),
                // a 4th part counts
                ("1.2.3.4", "1.2.3.5", Less),
                ("1.2.3.4", "1.2.4", Less),
                // a pre-release of a later version is newer than an earlier release
                ("1.0.1-alpha", "1.0.0", Greater),
                ("1.0.0-RC1-dev", "1.0.0-RC1", Less),
                // numbers by value
                ("1.0.010", "1.0.9", Greater),
            ],
        );
        for junk in [
            "",
            "dev-main",
            "dev-feature/x",
            "1.0.0-gamma",
            "1.0.0-beta-x",
            "1..x",
            "1.2.3.4.5",
            "x.1",
            "1.x",
            "1.0 0",
        ] {
            assert_eq!(super::compare(junk, "1.0"), None, "{junk:?}");
        }
    }
}
