//! Alpine (apk-tools) version order: `number{.number}[letter]{_suffix[number]}[-rN]`.
//! Pre-release suffixes `_alpha < _beta < _pre < _rc` sort before the bare version,
//! post-release suffixes `_cvs < _svn < _git < _hg < _p` after it. As in apk-tools, a
//! component after a dot with leading zeros compares like a decimal fraction
//! (`1.01 < 1.1`, `1.001 < 1.01`), and comparison stops at the first invalid token.
//! Ported from the algorithm of apk-tools' `version.c` (tokeniser + compare loop).

use std::cmp::Ordering;

use super::cmp_digits;

/// Token kinds in apk-tools' order; the order matters when one version runs out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Invalid,
    DigitOrZero,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    RevisionNo,
    End,
}

/// Token value: small integers (letters, suffix ranks, numbers of up to 18 digits,
/// leading-zero counts as negatives) or a longer digit run, which exceeds them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Small(i64),
    Big(&'a [u8]),
}

impl<'a> Value<'a> {
    fn number(digits: &'a [u8]) -> Value<'a> {
        let n = digits.iter().take_while(|&&c| c == b'0').count();
        let significant = &digits[n..];
        if significant.len() <= 18 {
            Value::Small(
                significant
                    .iter()
                    .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0')),
            )
        } else {
            Value::Big(significant)
        }
    }
}

impl Ord for Value<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Small(a), Value::Small(b)) => a.cmp(b),
            (Value::Big(a), Value::Big(b)) => cmp_digits(a, b),
            (Value::Small(_), Value::Big(_)) => Ordering::Less,
            (Value::Big(_), Value::Small(_)) => Ordering::Greater,
        }
    }
}
impl PartialOrd for Value<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

const PRE_SUFFIXES: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST_SUFFIXES: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

struct Tokens<'a> {
    s: &'a [u8],
    pos: usize,
    kind: Kind,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        Tokens {
            s: s.trim().as_bytes(),
            pos: 0,
            kind: Kind::Digit,
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.s.get(self.pos..).unwrap_or_default()
    }

    /// Decide the kind of the token that starts at `pos`, consuming its separator.
    fn next_kind(&mut self) {
        let rest = self.rest();
        let prev = self.kind;
        let mut n = match rest.first() {
            None | Some(0) => Kind::End,
            Some(c)
                if matches!(prev, Kind::Digit | Kind::DigitOrZero) && c.is_ascii_lowercase() =>
            {
                Kind::Letter
            }
            Some(c) if prev == Kind::Letter && c.is_ascii_digit() => Kind::Digit,
            Some(c) if prev == Kind::Suffix && c.is_ascii_digit() => Kind::SuffixNo,
            Some(c) => {
                let k = match c {
                    b'.' => Kind::DigitOrZero,
                    b'_' => Kind::Suffix,
                    b'-' if rest.get(1) == Some(&b'r') => {
                        self.pos += 1;
                        Kind::RevisionNo
                    }
                    _ => Kind::Invalid,
                };
                self.pos += 1;
                k
            }
        };
        // Tokens only move forward through the grammar, with three allowed loops.
        if n < prev
            && !((n == Kind::DigitOrZero && prev == Kind::Digit)
                || (n == Kind::Suffix && prev == Kind::SuffixNo)
                || (n == Kind::Digit && prev == Kind::Letter))
        {
            n = Kind::Invalid;
        }
        self.kind = n;
    }

    /// Read the value of the current token and advance `kind` to the next one.
    fn get(&mut self) -> Value<'a> {
        let rest = self.rest();
        if rest.is_empty() {
            self.kind = Kind::End;
            return Value::Small(0);
        }
        let mut next_kind = None;
        let (value, len) = match self.kind {
            Kind::DigitOrZero if rest.first() == Some(&b'0') => {
                // All but the last zero of the run are consumed and counted; the rest
                // is read as a number (so `.0` is 0 and `.001` ranks below `.01`).
                let zeros = rest.iter().take_while(|&&c| c == b'0').count() - 1;
                next_kind = Some(Kind::Digit);
                (Value::Small(-(zeros.min(1 << 20) as i64)), zeros)
            }
            Kind::DigitOrZero | Kind::Digit | Kind::SuffixNo | Kind::RevisionNo => {
                let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
                (Value::number(&rest[..n]), n)
            }
            Kind::Letter => (Value::Small(i64::from(rest[0])), 1),
            Kind::Suffix => {
                let pre = PRE_SUFFIXES
                    .iter()
                    .position(|s| rest.starts_with(s.as_bytes()));
                let post = POST_SUFFIXES
                    .iter()
                    .position(|s| rest.starts_with(s.as_bytes()));
                next_kind = Some(Kind::SuffixNo);
                match (pre, post) {
                    (Some(i), _) => (Value::Small(i as i64 - 4), PRE_SUFFIXES[i].len()),
                    (None, Some(i)) => (Value::Small(i as i64), POST_SUFFIXES[i].len()),
                    (None, None) => {
                        self.kind = Kind::Invalid;
                        return Value::Small(-1);
                    }
                }
            }
            Kind::Invalid | Kind::End => {
                self.kind = Kind::Invalid;
                return Value::Small(-1);
            }
        };
        self.pos += len;
        if self.rest().is_empty() {
            self.kind = Kind::End;
        } else if let Some(k) = next_kind {
            self.kind = k;
        } else {
            self.next_kind();
        }
        value
    }
}

/// Compare two Alpine package versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut ta = Tokens::new(a);
    let mut tb = Tokens::new(b);
    let (mut va, mut vb) = (Value::Small(0), Value::Small(0));
    while ta.kind == tb.kind && ta.kind != Kind::End && ta.kind != Kind::Invalid && va == vb {
        va = ta.get();
        vb = tb.get();
    }
    match va.cmp(&vb) {
        Ordering::Equal => {}
        o => return o,
    }
    if ta.kind == tb.kind {
        return Ordering::Equal;
    }
    // Equal so far and one goes on: the longer one is newer, unless it goes on with a
    // pre-release suffix.
    if ta.kind == Kind::Suffix && is_pre_suffix(ta.rest()) {
        return Ordering::Less;
    }
    if tb.kind == Kind::Suffix && is_pre_suffix(tb.rest()) {
        return Ordering::Greater;
    }
    // A later kind means "ran out sooner": End is the largest kind.
    tb.kind.cmp(&ta.kind)
}

fn is_pre_suffix(rest: &[u8]) -> bool {
    PRE_SUFFIXES.iter().any(|s| rest.starts_with(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use std::cmp::Ordering::*;

    #[test]
    fn apk_ascending() {
        assert_ascending(
            Scheme::Apk,
            &[
                "1.0_alpha",
                "1.0_alpha1",
                "1.0_alpha2",
                "1.0_beta",
                "1.0_beta3",
                "1.0_pre1",
                "1.0_rc1",
                "1.0_rc2",
                "1.0",
                "1.0-r1",
                "1.0-r2",
                "1.0-r10",
                "1.0_cvs1",
                "1.0_svn",
                "1.0_git20200101",
                "1.0_hg1",
                "1.0_p1",
                "1.0_p1-r1",
                "1.0_p2",
                "1.0a",
                "1.0b",
                "1.0b-r1",
                "1.0.1",
                "1.1",
                "1.2_rc1",
                "1.2",
                "1.10",
                "2.0",
            ],
        );
    }

    #[test]
    fn apk_pairs() {
        assert_cases(
            Scheme::Apk,
            &[
                ("3.0.13-r0", "3.0.12-r5", Greater),
                ("3.3.2-r0", "3.3.2-r1", Less),
                ("1.36.1-r29", "1.36.1-r30", Less),
                ("1.2.3-r0", "1.2.3", Greater),
                ("1.0", "1.0-r0", Less),
                // leading zeros after a dot compare as a fraction
                ("1.01", "1.1", Less),
                ("1.001", "1.01", Less),
                ("1.09", "1.1", Less),
                ("2023.01.01", "2023.1.1", Less),
                ("1.0", "1", Greater),
                ("0.0.2_git20220126", "0.0.2", Greater),
                ("0.0.2_rc1", "0.0.2", Less),
                ("1.2.3_alpha1", "1.2.3_alpha", Greater),
                ("1.2.3_p1", "1.2.3_rc1", Greater),
                ("1.2.3_rc1-r1", "1.2.3_rc1-r0", Greater),
                ("1.2.3_pre2", "1.2.3_rc1", Less),
                ("2.39.3-r0", "2.39.10-r0", Less),
                ("1.36.1-r15", "1.36.1-r7", Greater),
                ("3.0.8a", "3.0.8", Greater),
                ("3.0.8a", "3.0.9", Less),
                ("0.9.8z", "0.9.8y", Greater),
                // huge numbers never overflow
                (
                    "1.99999999999999999999999",
                    "1.100000000000000000000000",
                    Less,
                ),
            ],
        );
    }

    #[test]
    fn apk_total_on_junk() {
        for s in [
            "", "_", "-r", "1.0_", "1.0-rx", "1..0", "1.0_zz", "abc", "1.0-",
        ] {
            let _ = super::compare(s, "1.0");
            let _ = super::compare("1.0", s);
            assert_eq!(super::compare(s, s), Equal, "{s:?}");
        }
    }
}
