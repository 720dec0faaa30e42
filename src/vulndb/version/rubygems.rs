//! RubyGems version order (`Gem::Version`): segments are runs of digits or letters;
//! a version with a letter is a pre-release and sorts before its release (`1.0.a <
//! 1.0`); trailing zero segments of the release and pre-release parts are ignored; a
//! string segment sorts before a number; `-` means `.pre.`.

use std::cmp::Ordering;

use super::cmp_digits;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Num(String),
    Str(String),
}

fn is_zero(s: &Seg) -> bool {
    matches!(s, Seg::Num(d) if d.bytes().all(|b| b == b'0'))
}

fn segments(v: &str) -> Option<Vec<Seg>> {
    let v = v.trim().replace('-', ".pre.");
    if v.is_empty() || v.len() > 256 {
        return None;
    }
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        || !v.as_bytes()[0].is_ascii_digit()
    {
        return None;
    }
    let mut segs = Vec::new();
    let mut cur = String::new();
    let mut cur_digit = false;
    for b in v.bytes() {
        if b == b'.' {
            if !cur.is_empty() {
                segs.push(if cur_digit {
                    Seg::Num(std::mem::take(&mut cur))
                } else {
                    Seg::Str(std::mem::take(&mut cur))
                });
            }
            continue;
        }
        let d = b.is_ascii_digit();
        if !cur.is_empty() && d != cur_digit {
            segs.push(if cur_digit {
                Seg::Num(std::mem::take(&mut cur))
            } else {
                Seg::Str(std::mem::take(&mut cur))
            });
        }
        cur_digit = d;
        cur.push(b as char);
    }
    if !cur.is_empty() {
        segs.push(if cur_digit {
            Seg::Num(cur)
        } else {
            Seg::Str(cur)
        });
    }
    // canonical segments: drop trailing zeros of the release part and of the
    // pre-release part separately
    let split = segs
        .iter()
        .position(|s| matches!(s, Seg::Str(_)))
        .unwrap_or(segs.len());
    let mut pre = segs.split_off(split);
    while segs.last().is_some_and(is_zero) {
        segs.pop();
    }
    while pre.last().is_some_and(is_zero) {
        pre.pop();
    }
    segs.extend(pre);
    Some(segs)
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (segments(a)?, segments(b)?);
    let zero = Seg::Num("0".into());
    for i in 0..a.len().max(b.len()) {
        let l = a.get(i).unwrap_or(&zero);
        let r = b.get(i).unwrap_or(&zero);
        let o = match (l, r) {
            (Seg::Num(x), Seg::Num(y)) => cmp_digits(x.as_bytes(), y.as_bytes()),
            (Seg::Str(x), Seg::Str(y)) => x.cmp(y),
            (Seg::Str(_), Seg::Num(_)) => Ordering::Less,
            (Seg::Num(_), Seg::Str(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use std::cmp::Ordering::*;

    #[test]
    fn rubygems_ascending() {
        assert_ascending(
            Scheme::RubyGems,
            &[
                "0.9",
                "1.0.a",
                "1.0.a.2",
                "1.0.b1",
                "1.0.rc1",
                "1.0",
                "1.0.1",
                "1.1.a",
                "1.1",
                "1.9",
                "1.10",
                "2.0.0.pre",
                "2.0.0",
            ],
        );
        assert_cases(
            Scheme::RubyGems,
            &[
                ("1.0", "1", Equal),
                ("1.0.0", "1", Equal),
                ("1.0.a", "1.0.a.0", Equal),
                ("1.0-1", "1.0.pre.1", Equal),
                ("6.1.7.3", "6.1.7.10", Less),
            ],
        );
        assert_eq!(super::compare("", "1"), None);
        assert_eq!(super::compare("a1", "1"), None);
        assert_eq!(super::compare("1 0", "1"), None);
    }
}
