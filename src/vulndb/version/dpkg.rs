//! Debian/Ubuntu version order, as dpkg's `verrevcmp` defines it (deb-version(7)):
//! `[epoch:]upstream[-revision]`; in each part, alternating non-digit and digit runs;
//! non-digits compare with `~` before everything (even the end), then the end, then
//! letters, then other characters; digit runs compare numerically.

use std::cmp::Ordering;

use super::cmp_digits;

struct DebVersion<'a> {
    epoch: &'a [u8],
    upstream: &'a [u8],
    revision: &'a [u8],
}

fn split(v: &str) -> DebVersion<'_> {
    let v = v.trim().as_bytes();
    // An epoch that is not all digits is not an epoch (dpkg rejects it); treating the
    // whole string as upstream keeps the order total.
    let (epoch, rest) = match v.iter().position(|&c| c == b':') {
        Some(i) if i > 0 && v[..i].iter().all(u8::is_ascii_digit) => (&v[..i], &v[i + 1..]),
        _ => (&b"0"[..], v),
    };
    let (upstream, revision) = match rest.iter().rposition(|&c| c == b'-') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    DebVersion {
        epoch,
        upstream,
        revision,
    }
}

/// Weight of one non-digit position; `None` is the end of the string.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0usize, 0usize);
    while i < a.len() || j < b.len() {
        // Non-digit run, position by position.
        loop {
            let ca = a.get(i).copied();
            let cb = b.get(j).copied();
            let a_nondigit = ca.is_some_and(|c| !c.is_ascii_digit());
            let b_nondigit = cb.is_some_and(|c| !c.is_ascii_digit());
            if !a_nondigit && !b_nondigit {
                break;
            }
            let (oa, ob) = (order(ca), order(cb));
            if oa != ob {
                return oa.cmp(&ob);
            }
            i += 1;
            j += 1;
        }
        // Digit run, numerically.
        let da = a[i.min(a.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let db = b[j.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let ord = cmp_digits(&a[i..i + da], &b[j..j + db]);
        if ord != Ordering::Equal {
            return ord;
        }
        i += da;
        j += db;
    }
    Ordering::Equal
}

/// Compare two Debian versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (split(a), split(b));
    cmp_digits(a.epoch, b.epoch)
        .then_with(|| verrevcmp(a.upstream, b.upstream))
        .then_with(|| verrevcmp(a.revision, b.revision))
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use std::cmp::Ordering::*;

    #[test]
    fn dpkg_ascending() {
        assert_ascending(
            Scheme::Dpkg,
            &[
                "0~",
                "0",
                "0.1",
                "1.0~~",
                "1.0~~a",
                "1.0~",
                "1.0~beta1",
                "1.0~rc1",
                "1.0",
                "1.0-0.1",
                "1.0-1",
                "1.0-1+b1",
                "1.0-1.1",
                "1.0-2~bpo11+1",
                "1.0-2",
                "1.0-10",
                "1.0a",
                "1.0+dfsg-1",
                "1.0.1",
                "1.1",
                "1.10",
                "2",
                "1:0.1",
                "1:1.0",
                "2:0",
            ],
        );
    }

    #[test]
    fn dpkg_pairs() {
        assert_cases(
            Scheme::Dpkg,
            &[
                // epochs dominate
                ("1:1.0", "2.0", Greater),
                ("0:1.0", "1.0", Equal),
                // missing revision equals revision 0
                ("1.0", "1.0-0", Equal),
                ("1.0-", "1.0", Equal),
                // leading zeros are numeric
                ("1.01", "1.1", Equal),
                ("1.001-1", "1.1-1", Equal),
                // tilde sorts before the end of string
                ("1.0~rc1-1", "1.0-1", Less),
                ("3.0.13-1~deb12u1", "3.0.11-1~deb12u1", Greater),
                ("3.0.11-1~deb12u1", "3.0.11-1", Less),
                ("3.0.11-1~deb12u2", "3.0.11-1~deb12u1", Greater),
                ("2.36-9+deb12u4", "2.36-9+deb12u10", Less),
                // letters before non-letters
                ("1.0a", "1.0+", Less),
                ("1.0a", "1.0.", Less),
                ("1.0+", "1.0.", Less), // '+' (43) < '.' (46)
                // the last hyphen separates the revision
                ("1.0-2-1", "1.0-2-2", Less),
                ("1:2.3.4-5ubuntu0.1", "1:2.3.4-5ubuntu0.2", Less),
                ("2.7.4-0ubuntu1.6", "2.7.4-0ubuntu1.10", Less),
                ("1.2.3-1ubuntu1", "1.2.3-1", Greater),
                // huge numbers never overflow
                (
                    "1.99999999999999999999999999999",
                    "1.100000000000000000000000000000",
                    Less,
                ),
                // real-world Debian/Ubuntu pairs
                ("2.36-9+deb12u3", "2.36-9+deb12u10", Less),
                ("1:9.18.24-1", "1:9.18.19-1~deb12u1", Greater),
                ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Less),
                ("1.2.13.dfsg-1", "1:1.2.11.dfsg-2+deb11u2", Less),
                ("5.10.0-28", "5.10.0-28+b1", Less),
                ("2.7.4-0ubuntu1.6~22.04.1", "2.7.4-0ubuntu1.6", Less),
                ("3.0.2-0ubuntu1.15", "3.0.2-0ubuntu1.9", Greater),
                ("1.0~rc1~git20200101", "1.0~rc1", Less),
                ("1.0+git20200101", "1.0", Greater),
                ("0.0~git20230101.abcdef-1", "0.0~git20230102.000000-1", Less),
                // a non-numeric "epoch" is part of the upstream version, not an error
                ("a:1", "a:1", Equal),
            ],
        );
    }

    #[test]
    fn dpkg_total_on_junk() {
        for s in ["", ":", "-", "::::", "~~~", "\u{0}", "é1.0", "1:-", "-1"] {
            let _ = super::compare(s, "1.0");
            assert_eq!(super::compare(s, s), Equal, "{s:?}");
        }
    }
}
