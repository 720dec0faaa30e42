//! CVSS base scores computed from the vector: v3.0, v3.1 and v4.0 (base, and
//! base+threat+environmental when those metrics are present) by the RustSec `cvss`
//! crate, which follows the FIRST specifications. A record's own numeric score is never
//! trusted: vectors are what the databases agree on.
//!
//! The crate replaced our own calculator after a differential test over every vector of
//! the test fixtures and the whole v3.0/v3.1 base space plus generated v4.0 vectors
//! (`tests::differential_*`, against `reference.rs`, kept for that test only). Where the
//! crate falls short, the code says so below.

use std::str::FromStr;

use crate::report::Severity;

#[cfg(test)]
mod reference;

/// Longest vector we parse: a v4.0 vector with every metric is under 200 bytes.
const MAX_VECTOR: usize = 512;

/// Qualitative rating of a base score (identical bands in v3.x and v4.0).
pub fn rating(score: f32) -> Severity {
    if score <= 0.0 {
        Severity::None
    } else if score < 4.0 {
        Severity::Low
    } else if score < 7.0 {
        Severity::Medium
    } else if score < 9.0 {
        Severity::High
    } else {
        Severity::Critical
    }
}

/// Where the crate falls short (found by the differential test): it scores a vector
/// with a base metric missing (defaulting it) and accepts lower-case metric names; the
/// FIRST grammar requires every base metric, upper case, once. This check (the parsing
/// half of the old calculator) runs first.
fn well_formed(rest: &str, base: &[&str]) -> bool {
    let mut seen: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        let Some((k, v)) = part.split_once(':') else {
            return false;
        };
        let upper = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_uppercase());
        if !upper(k) || !(upper(v) || v.bytes().all(|b| b.is_ascii_alphabetic())) {
            return false;
        }
        if seen.contains(&k) {
            return false;
        }
        seen.push(k);
    }
    base.iter().all(|b| seen.contains(b))
}

/// A score of one decimal, as `f32` (what the report carries).
#[allow(clippy::cast_possible_truncation)] // 0.0–10.0 in tenths: exact enough as f32
fn tenths(v: f64) -> Option<f32> {
    v.is_finite().then(|| ((v * 10.0).round() / 10.0) as f32)
}

/// Base score of a `CVSS:3.0/…` or `CVSS:3.1/…` vector; None when it is not one
/// (missing, duplicate or unknown metrics, another version).
pub fn v3_base_score(vector: &str) -> Option<f32> {
    let vector = vector.trim();
    if vector.len() > MAX_VECTOR {
        return None;
    }
    let rest = vector
        .strip_prefix("CVSS:3.1/")
        .or_else(|| vector.strip_prefix("CVSS:3.0/"))?;
    if !well_formed(rest, &["AV", "AC", "PR", "UI", "S", "C", "I", "A"]) {
        return None;
    }
    let v = cvss::v3::Vector::from_str(vector).ok()?;
    tenths(v.base_score().value())
}

/// Base (or base+threat+environmental, when those metrics are present) score of a
/// `CVSS:4.0/…` vector; None when it is not one.
pub fn v4_score(vector: &str) -> Option<f32> {
    let vector = vector.trim();
    if vector.len() > MAX_VECTOR {
        return None;
    }
    let rest = vector.strip_prefix("CVSS:4.0/")?;
    let base = [
        "AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
    ];
    if !well_formed(rest, &base) {
        return None;
    }
    let v = cvss::v4::Vector::from_str(vector).ok()?;
    tenths(v.score().value())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_known_scores() {
        let cases = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
            ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:N", 3.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
            ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            (
                "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C",
                8.1,
            ),
        ];
        for (v, want) in cases {
            assert_eq!(v3_base_score(v), Some(want), "{v}");
        }
    }

    #[test]
    fn v4_known_scores() {
        let cases = [
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                9.3,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H",
                10.0,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:L/SC:N/SI:N/SA:N",
                6.9,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N",
                6.9,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:H/SI:N/SA:N",
                7.7,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N",
                8.7,
            ),
            (
                "CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                8.5,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                8.7,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:P/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N",
                5.1,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:P/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N",
                5.3,
            ),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N",
                0.0,
            ),
            // supplemental metrics and urgency words do not change the score
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/AU:Y/U:Red",
                9.3,
            ),
        ];
        for (v, want) in cases {
            assert_eq!(v4_score(v), Some(want), "{v}");
        }
    }

    #[test]
    fn hostile_vectors_are_rejected() {
        for v in [
            "",
            "CVSS:3.1/",
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", // missing A
            "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:L", // duplicate
            "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", // bad value
            "CVSS:3.1/av:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", // bad case
            "CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P",
            "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        ] {
            assert_eq!(v3_base_score(v), None, "{v}");
        }
        for v in [
            "CVSS:4.0/AV:F/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N/E:A/E:X",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/ui:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N",
            "AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:N/SI:N/SA:N",
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/SC:N/SI:N/SA:N",
        ] {
            assert_eq!(v4_score(v), None, "{v}");
        }
        let long = format!("CVSS:3.1/{}", "AV:N/".repeat(10_000));
        assert_eq!(v3_base_score(&long), None);
    }

    #[test]
    fn ratings() {
        assert_eq!(rating(0.0), Severity::None);
        assert_eq!(rating(0.1), Severity::Low);
        assert_eq!(rating(3.9), Severity::Low);
        assert_eq!(rating(4.0), Severity::Medium);
        assert_eq!(rating(6.9), Severity::Medium);
        assert_eq!(rating(7.0), Severity::High);
        assert_eq!(rating(8.9), Severity::High);
        assert_eq!(rating(9.0), Severity::Critical);
        assert_eq!(rating(10.0), Severity::Critical);
    }

    /// Every CVSS vector written anywhere in the sources and test fixtures.
    fn fixture_vectors() -> Vec<String> {
        let re = regex::Regex::new(r"CVSS:[34]\.[01]/[A-Za-z:/]+").unwrap();
        let mut out = std::collections::BTreeSet::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![root.join("src"), root.join("tests"), root.join("benches")];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if let Ok(text) = std::fs::read_to_string(&p) {
                    for m in re.find_iter(&text) {
                        out.insert(m.as_str().trim_end_matches('/').to_string());
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// A small deterministic generator (64-bit LCG), so the sample is the same each run.
    struct Lcg(u64);
    impl Lcg {
        fn pick<'a>(&mut self, values: &[&'a str]) -> &'a str {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            values[(self.0 >> 33) as usize % values.len()]
        }
    }

    fn product(groups: &[(&str, &[&str])]) -> Vec<String> {
        let mut out = vec![String::new()];
        for (k, values) in groups {
            out = out
                .iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        if prefix.is_empty() {
                            format!("{k}:{v}")
                        } else {
                            format!("{prefix}/{k}:{v}")
                        }
                    })
                })
                .collect();
        }
        out
    }

    fn differences(vectors: &[String]) -> Vec<String> {
        vectors
            .iter()
            .filter_map(|v| {
                let (ours, theirs) = if v.starts_with("CVSS:4.0/") {
                    (reference::v4_score(v), v4_score(v))
                } else {
                    (reference::v3_base_score(v), v3_base_score(v))
                };
                (ours != theirs).then(|| format!("{v}: calculator {ours:?}, crate {theirs:?}"))
            })
            .collect()
    }

    #[test]
    fn differential_fixture_vectors() {
        let vectors = fixture_vectors();
        assert!(vectors.len() > 20, "{vectors:?}");
        let diff = differences(&vectors);
        assert!(
            diff.is_empty(),
            "{} differ:\n{}",
            diff.len(),
            diff.join("\n")
        );
    }

    #[test]
    fn differential_v3_base_space_and_temporal_environmental_sample() {
        let base: &[(&str, &[&str])] = &[
            ("AV", &["N", "A", "L", "P"]),
            ("AC", &["L", "H"]),
            ("PR", &["N", "L", "H"]),
            ("UI", &["N", "R"]),
            ("S", &["U", "C"]),
            ("C", &["H", "L", "N"]),
            ("I", &["H", "L", "N"]),
            ("A", &["H", "L", "N"]),
        ];
        let space = product(base);
        assert_eq!(space.len(), 2592);
        let mut vectors: Vec<String> = ["CVSS:3.0/", "CVSS:3.1/"]
            .iter()
            .flat_map(|p| space.iter().map(move |m| format!("{p}{m}")))
            .collect();
        // Temporal and environmental metrics do not change the base score.
        let mut rng = Lcg(7);
        for _ in 0..5000 {
            let mut v = format!("CVSS:3.{}/", rng.pick(&["0", "1"]));
            v.push_str(&format!(
                "AV:{}/AC:{}/PR:{}/UI:{}/S:{}/C:{}/I:{}/A:{}",
                rng.pick(&["N", "A", "L", "P"]),
                rng.pick(&["L", "H"]),
                rng.pick(&["N", "L", "H"]),
                rng.pick(&["N", "R"]),
                rng.pick(&["U", "C"]),
                rng.pick(&["H", "L", "N"]),
                rng.pick(&["H", "L", "N"]),
                rng.pick(&["H", "L", "N"]),
            ));
            for (k, values) in [
                ("E", &["X", "U", "P", "F", "H"][..]),
                ("RL", &["X", "O", "T", "W", "U"]),
                ("RC", &["X", "U", "R", "C"]),
                ("CR", &["X", "L", "M", "H"]),
                ("MAV", &["X", "N", "A", "L", "P"]),
                ("MS", &["X", "U", "C"]),
            ] {
                if rng.pick(&["y", "n"]) == "y" {
                    v.push_str(&format!("/{k}:{}", rng.pick(values)));
                }
            }
            vectors.push(v);
        }
        let diff = differences(&vectors);
        assert!(
            diff.is_empty(),
            "{} of {} differ:\n{}",
            diff.len(),
            vectors.len(),
            diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
    }

    #[test]
    fn differential_v4_base_space_and_threat_environmental_sample() {
        let base: &[(&str, &[&str])] = &[
            ("AV", &["N", "A", "L", "P"]),
            ("AC", &["L", "H"]),
            ("AT", &["N", "P"]),
            ("PR", &["N", "L", "H"]),
            ("UI", &["N", "P", "A"]),
            ("VC", &["H", "L", "N"]),
            ("VI", &["H", "L", "N"]),
            ("VA", &["H", "L", "N"]),
            ("SC", &["H", "L", "N"]),
            ("SI", &["H", "L", "N"]),
            ("SA", &["H", "L", "N"]),
        ];
        let mut vectors: Vec<String> = product(base)
            .into_iter()
            .map(|m| format!("CVSS:4.0/{m}"))
            .collect();
        assert_eq!(vectors.len(), 104_976);
        let mut rng = Lcg(11);
        let mut sample = Vec::new();
        for v in vectors.iter().step_by(7) {
            let mut v = v.clone();
            for (k, values) in [
                ("E", &["X", "A", "P", "U"][..]),
                ("CR", &["X", "H", "M", "L"]),
                ("IR", &["X", "H", "M", "L"]),
                ("AR", &["X", "H", "M", "L"]),
                ("MAV", &["X", "N", "A", "L", "P"]),
                ("MAC", &["X", "L", "H"]),
                ("MAT", &["X", "N", "P"]),
                ("MPR", &["X", "N", "L", "H"]),
                ("MUI", &["X", "N", "P", "A"]),
                ("MVC", &["X", "H", "L", "N"]),
                ("MVI", &["X", "H", "L", "N"]),
                ("MVA", &["X", "H", "L", "N"]),
                ("MSC", &["X", "H", "L", "N"]),
                ("MSI", &["X", "S", "H", "L", "N"]),
                ("MSA", &["X", "S", "H", "L", "N"]),
            ] {
                if rng.pick(&["y", "n", "n"]) == "y" {
                    v.push_str(&format!("/{k}:{}", rng.pick(values)));
                }
            }
            sample.push(v);
        }
        vectors.extend(sample);
        let diff = differences(&vectors);
        assert!(
            diff.is_empty(),
            "{} of {} differ:\n{}",
            diff.len(),
            vectors.len(),
            diff.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}
