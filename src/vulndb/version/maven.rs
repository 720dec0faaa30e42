//! Maven version order, as Maven's `ComparableVersion` (3.x) defines it: the version is
//! split at `.`, `-` and digit/letter transitions into a tree of integer, string and list
//! items (`-` and transitions open a sub-list); trailing "null" items (`0`, ``, `final`,
//! `ga`, `release`) are dropped; qualifiers order
//! `alpha < beta < milestone < rc = cr < snapshot < "" = final = ga = release < sp`, and
//! unknown qualifiers sort after those, lexically. `a1`/`b1`/`m1` mean alpha/beta/milestone.

use std::cmp::Ordering;

use super::cmp_digits;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Int(Vec<u8>),
    Str(String),
    List(Vec<Item>),
}

const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

/// Rank of a qualifier as a comparable string: known ones by index, unknown ones after
/// all of them, lexically (this is how Maven does it).
fn qualifier_key(q: &str) -> String {
    match QUALIFIERS.iter().position(|k| *k == q) {
        Some(i) => i.to_string(),
        None => format!("{}-{q}", QUALIFIERS.len()),
    }
}

fn string_item(value: &str, followed_by_digit: bool) -> Item {
    let v = if followed_by_digit && value.len() == 1 {
        match value {
            "a" => "alpha",
            "b" => "beta",
            "m" => "milestone",
            other => other,
        }
    } else {
        value
    };
    let v = match v {
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    Item::Str(v.to_string())
}

fn parse_item(is_digit: bool, buf: &str) -> Item {
    if is_digit {
        let trimmed = buf.trim_start_matches('0');
        Item::Int(trimmed.as_bytes().to_vec())
    } else {
        string_item(buf, false)
    }
}

impl Item {
    fn is_null(&self) -> bool {
        match self {
            Item::Int(d) => d.is_empty(),
            Item::Str(s) => s.is_empty(),
            Item::List(l) => l.is_empty(),
        }
    }

    /// Compare with `other`, where `None` stands for "nothing here" (padding).
    fn compare(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Int(d), None) => {
                if d.is_empty() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Int(a), Some(Item::Int(b))) => cmp_digits(a, b),
            (Item::Int(_), Some(_)) => Ordering::Greater,
            (Item::Str(s), None) => qualifier_key(s).cmp(&qualifier_key("")),
            (Item::Str(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::Str(a), Some(Item::Str(b))) => qualifier_key(a).cmp(&qualifier_key(b)),
            (Item::Str(_), Some(Item::List(_))) => Ordering::Less,
            (Item::List(l), None) => match l.first() {
                None => Ordering::Equal,
                Some(first) => first.compare(None),
            },
            (Item::List(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Str(_))) => Ordering::Greater,
            (Item::List(a), Some(Item::List(b))) => {
                let n = a.len().max(b.len());
                for i in 0..n {
                    let o = match (a.get(i), b.get(i)) {
                        (None, None) => Ordering::Equal,
                        (None, Some(r)) => r.compare(None).reverse(),
                        (Some(l), r) => l.compare(r),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

/// Remove trailing null items of a list, stopping at the first non-null, non-list item.
fn normalize(list: &mut Vec<Item>) {
    let mut i = list.len();
    while i > 0 {
        i -= 1;
        if list[i].is_null() {
            list.remove(i);
        } else if !matches!(list[i], Item::List(_)) {
            break;
        }
    }
}

/// Maximum nesting: every `-` or digit/letter switch opens a list; junk with thousands
/// of them must not cost a deep recursion.
const MAX_DEPTH: usize = 64;
const MAX_LEN: usize = 256;

fn parse(version: &str) -> Item {
    let lower: String = version
        .trim()
        .chars()
        .take(MAX_LEN)
        .collect::<String>()
        .to_lowercase();
    // Lists under construction; each opened list is pushed, and folded into its parent
    // (normalised) at the end, exactly once.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let chars: Vec<char> = lower.chars().collect();
    let mut is_digit = false;
    let mut start = 0usize;
    let buf = |from: usize, to: usize| -> String { chars[from..to].iter().collect() };
    let push_list = |stack: &mut Vec<Vec<Item>>| {
        if stack.len() < MAX_DEPTH {
            stack.push(Vec::new());
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        let top = stack.len() - 1;
        if c == '.' {
            let item = if i == start {
                Item::Int(Vec::new())
            } else {
                parse_item(is_digit, &buf(start, i))
            };
            stack[top].push(item);
            start = i + 1;
        } else if c == '-' {
            let item = if i == start {
                Item::Int(Vec::new())
            } else {
                parse_item(is_digit, &buf(start, i))
            };
            stack[top].push(item);
            start = i + 1;
            push_list(&mut stack);
        } else if c.is_ascii_digit() {
            if !is_digit && i > start {
                stack[top].push(string_item(&buf(start, i), true));
                start = i;
                push_list(&mut stack);
            }
            is_digit = true;
        } else {
            if is_digit && i > start {
                stack[top].push(parse_item(true, &buf(start, i)));
                start = i;
                push_list(&mut stack);
            }
            is_digit = false;
        }
    }
    if chars.len() > start {
        let top = stack.len() - 1;
        stack[top].push(parse_item(is_digit, &buf(start, chars.len())));
    }
    // Fold from the innermost list outwards: each list is normalised, then appended to
    // its parent (Maven appends the list when it is opened; the effect is the same).
    while stack.len() > 1 {
        let mut inner = stack.pop().unwrap_or_default();
        normalize(&mut inner);
        if let Some(parent) = stack.last_mut() {
            parent.push(Item::List(inner));
        }
    }
    let mut root = stack.pop().unwrap_or_default();
    normalize(&mut root);
    Item::List(root)
}

/// Compare two Maven versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    parse(a).compare(Some(&parse(b)))
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use std::cmp::Ordering::*;

    #[test]
    fn maven_qualifiers_ascending() {
        // Maven's own ComparableVersionTest qualifier sequence.
        assert_ascending(
            Scheme::Maven,
            &[
                "1-alpha2snapshot",
                "1-alpha2",
                "1-alpha-123",
                "1-beta-2",
                "1-beta123",
                "1-m2",
                "1-m11",
                "1-rc",
                "1-cr2",
                "1-rc123",
                "1-SNAPSHOT",
                "1",
                "1-sp",
                "1-sp2",
                "1-sp123",
                "1-abc",
                "1-def",
                "1-pom-1",
                "1-1-snapshot",
                "1-1",
                "1-2",
                "1-123",
            ],
        );
    }

    #[test]
    fn maven_numbers_ascending() {
        // Maven's own ComparableVersionTest number sequence.
        assert_ascending(
            Scheme::Maven,
            &[
                "2.0", "2-1", "2.0.a", "2.0.0.a", "2.0.2", "2.0.123", "2.1.0", "2.1-a", "2.1b",
                "2.1-c", "2.1-1", "2.1.0.1", "2.2", "2.123", "11.a2", "11.a11", "11.b2", "11.b11",
                "11.m2", "11.m11", "11", "11.a", "11b", "11c", "11m",
            ],
        );
    }

    #[test]
    fn maven_equalities_and_cves() {
        assert_cases(
            Scheme::Maven,
            &[
                ("1", "1.0", Equal),
                ("1", "1.0.0", Equal),
                ("1.0", "1-0", Equal),
                ("1", "1-ga", Equal),
                ("1", "1-final", Equal),
                ("1", "1.0.0-release", Equal),
                ("1-cr1", "1-rc1", Equal),
                ("1a1", "1-alpha-1", Equal),
                ("1b2", "1-beta-2", Equal),
                ("1m3", "1-milestone-3", Equal),
                ("1X", "1x", Equal),
                ("1.0.0-SNAPSHOT", "1.0.0", Less),
                ("2.17.1", "2.15.0", Greater),
                ("2.17.1", "2.3.1", Greater),
                ("5.3.18", "5.3.9", Greater),
                ("2.0.0-beta9", "2.0.0-rc1", Less),
                ("2.0-rc2", "2.0", Less),
                ("1.2.3.Final", "1.2.3", Equal),
                ("4.1.100.Final", "4.1.94.Final", Greater),
                ("1.0-sp1", "1.0", Greater),
                ("9999999999999999999999.1", "10000000000000000000000", Less),
            ],
        );
    }

    #[test]
    fn maven_total_on_junk() {
        let deep = "a1".repeat(5000);
        for s in [
            "",
            "-",
            ".",
            "--..--",
            "ä",
            deep.as_str(),
            "1-",
            "1..",
            "-1",
        ] {
            let _ = super::compare(s, "1.0");
            assert_eq!(super::compare(s, s), Equal, "{s:?}");
        }
    }
}
