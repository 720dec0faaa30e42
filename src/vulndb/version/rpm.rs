//! RPM version order, as rpm's `rpmvercmp` and `rpmVersionCompare` define it:
//! `[epoch:]version[-release]`; epochs compare numerically (none = 0), then version,
//! then release, each with `rpmvercmp`: maximal runs of ASCII digits or ASCII letters
//! compare pairwise (numbers numerically, letters bytewise, a number beats letters),
//! every other byte only separates; `~` sorts before everything, even the end
//! (`1.0~rc1 < 1.0`); `^` sorts after the end but before any further segment
//! (`1.0 < 1.0^git1 < 1.0.1`). Written from rpm's `rpmvio.c`/`rpmvercmp.c` semantics.

use std::cmp::Ordering;

use super::cmp_digits;

struct Evr<'a> {
    epoch: &'a [u8],
    version: &'a [u8],
    release: &'a [u8],
}

fn split(v: &str) -> Evr<'_> {
    let v = v.trim().as_bytes();
    // As rpm's parseEVR: an all-digit prefix before `:` is the epoch; otherwise there
    // is none and the whole string is version-release (keeps the order total).
    let (epoch, rest) = match v.iter().position(|&c| c == b':') {
        Some(i) if i > 0 && v[..i].iter().all(u8::is_ascii_digit) => (&v[..i], &v[i + 1..]),
        _ => (&b"0"[..], v),
    };
    // The release follows the last `-` (rpm forbids `-` in version and release).
    let (version, release) = match rest.iter().rposition(|&c| c == b'-') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    Evr {
        epoch,
        version,
        release,
    }
}

fn is_separator(c: u8) -> bool {
    !c.is_ascii_alphanumeric() && c != b'~' && c != b'^'
}

/// `rpmvercmp` of one version or release string.
pub fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut i, mut j) = (0usize, 0usize);
    let at = |s: &[u8], k: usize| s.get(k).copied();
    loop {
        while at(a, i).is_some_and(is_separator) {
            i += 1;
        }
        while at(b, j).is_some_and(is_separator) {
            j += 1;
        }
        let (ca, cb) = (at(a, i), at(b, j));
        if ca.is_none() && cb.is_none() {
            return Ordering::Equal;
        }
        // `~` sorts before everything else, the end of the string included.
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        // `^` sorts after the end of the string but before anything else.
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else {
            // Whichever still has a segment left wins.
            return if ca.is_none() {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        };
        let numeric = ca.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let la = a[i..].iter().take_while(|c| class(c)).count();
        let lb = b[j..].iter().take_while(|c| class(c)).count();
        if lb == 0 {
            // Segments of different kinds: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (sa, sb) = (&a[i..i + la], &b[j..j + lb]);
        let ord = if numeric {
            cmp_digits(sa, sb)
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        i += la;
        j += lb;
    }
}

/// Compare two `[epoch:]version[-release]` strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (split(a), split(b));
    cmp_digits(a.epoch, b.epoch)
        .then_with(|| rpmvercmp(a.version, b.version))
        .then_with(|| rpmvercmp(a.release, b.release))
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use super::rpmvercmp;
    use std::cmp::Ordering::{self, *};

    /// rpm's own table (tests/rpmvercmp.at), plain version strings.
    #[test]
    fn rpm_vercmp_table() {
        let cases: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("2.0.1", "2.0.1", Equal),
            ("2.0", "2.0.1", Less),
            ("2.0.1a", "2.0.1a", Equal),
            ("2.0.1a", "2.0.1", Greater),
            ("5.5p1", "5.5p1", Equal),
            ("5.5p1", "5.5p2", Less),
            ("5.5p10", "5.5p10", Equal),
            ("5.5p1", "5.5p10", Less),
            ("10xyz", "10.1xyz", Less),
            ("xyz10", "xyz10", Equal),
            ("xyz10", "xyz10.1", Less),
            ("xyz.4", "xyz.4", Equal),
            ("xyz.4", "8", Less),
            ("xyz.4", "2", Less),
            ("5.5p2", "5.6p1", Less),
            ("5.6p1", "6.5p1", Less),
            ("6.0.rc1", "6.0", Greater),
            ("10b2", "10a1", Greater),
            ("10a2", "10b2", Less),
            ("1.0aa", "1.0aa", Equal),
            ("1.0a", "1.0aa", Less),
            ("10.0001", "10.0001", Equal),
            ("10.0001", "10.1", Equal),
            ("10.0001", "10.0039", Less),
            ("4.999.9", "5.0", Less),
            ("20101121", "20101121", Equal),
            ("20101121", "20101122", Less),
            ("2_0", "2_0", Equal),
            ("2.0", "2_0", Equal),
            // RhBug:178798: separators only separate
            ("a", "a", Equal),
            ("a+", "a+", Equal),
            ("a+", "a_", Equal),
            ("+a", "+a", Equal),
            ("+a", "_a", Equal),
            ("+_", "+_", Equal),
            ("_+", "+_", Equal),
            ("_+", "_", Equal),
            ("+", "_", Equal),
            // tilde
            ("1.0~rc1", "1.0~rc1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0~rc1~git123", "1.0~rc1~git123", Equal),
            ("1.0~rc1~git123", "1.0~rc1", Less),
            // caret
            ("1.0^", "1.0^", Equal),
            ("1.0^", "1.0", Greater),
            ("1.0^git1", "1.0^git1", Equal),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0^git2", Less),
            ("1.0^git1", "1.01", Less),
            ("1.0^20160101", "1.0^20160101", Equal),
            ("1.0^20160101", "1.0.1", Less),
            ("1.0^20160101^git1", "1.0^20160101^git1", Equal),
            ("1.0^20160102", "1.0^20160101^git1", Greater),
            // tilde and caret together
            ("1.0~rc1^git1", "1.0~rc1^git1", Equal),
            ("1.0~rc1^git1", "1.0~rc1", Greater),
            ("1.0^git1~pre", "1.0^git1~pre", Equal),
            ("1.0^git1", "1.0^git1~pre", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(
                rpmvercmp(a.as_bytes(), b.as_bytes()),
                *want,
                "rpmvercmp({a:?}, {b:?})"
            );
            assert_eq!(
                rpmvercmp(b.as_bytes(), a.as_bytes()),
                want.reverse(),
                "rpmvercmp({b:?}, {a:?})"
            );
        }
    }

    #[test]
    fn rpm_evr_ascending() {
        assert_ascending(
            Scheme::Rpm,
            &[
                "0.9-1",
                "1.0~beta1-1",
                "1.0-1",
                "1.0-1.el9",
                "1.0-1.el9_2",
                "1.0-1.el9_2.1",
                "1.0-2.el9",
                "1.0-10.el9",
                "1.0^20230101-1",
                "1.0.1-1",
                "1.0.1a-1",
                "1.1-1",
                "1:0.1-1",
                "1:1.0-1",
                "2:0-0",
            ],
        );
    }

    #[test]
    fn rpm_evr_pairs() {
        assert_cases(
            Scheme::Rpm,
            &[
                // epoch dominates; none equals 0
                ("1:3.0.7-27.el9", "3.0.8-1.el9", Greater),
                ("0:1.9.5p2-10.el9_6.1", "1.9.5p2-10.el9_6.1", Equal),
                ("1:3.0.7-24.el9", "1:3.0.7-27.el9", Less),
                // real RHEL / Rocky / SUSE pairs
                ("2.34-100.el9_4.2", "2.34-100.el9_4.4", Less),
                ("2.34-100.el9_4.12", "2.34-100.el9_4.4", Greater),
                ("1.1.1k-12.el8_9", "1.1.1k-9.el8_7", Greater),
                ("1.9.5p2-10.el9_6.1", "1.9.5p2-9.el9", Greater),
                ("5.14.21-150500.55.88", "5.14.21-150500.55.9", Greater),
                ("1.1.1l-150500.17.34.1", "1.1.1l-150500.17.25.1", Greater),
                (
                    "1:22.23.2-2.module+el9.8.0+24958+80b2ac6e",
                    "1:22.23.2-1.module+el9.8.0+24000+aaaaaaaa",
                    Greater,
                ),
                ("7.76.1-29.el9_4", "7.76.1-29.el9_4.1", Less),
                // a release is newer than none
                ("1.0", "1.0-1", Less),
                // huge numbers never overflow
                (
                    "1.99999999999999999999999999",
                    "1.100000000000000000000000000",
                    Less,
                ),
                // a non-numeric "epoch" is part of the version, not an error
                ("a:1", "a:1", Equal),
            ],
        );
    }

    #[test]
    fn rpm_total_on_junk() {
        for s in [
            "", ":", "-", "::::", "~~~", "^^", "\u{0}", "é1.0", "1:-", "-1", "~^~",
        ] {
            let _ = super::compare(s, "1.0");
            assert_eq!(super::compare(s, s), Equal, "{s:?}");
        }
    }
}
