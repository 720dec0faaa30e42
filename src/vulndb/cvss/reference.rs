//! The calculator pullwarden used before the `cvss` crate: CVSS base scores from the
//! vector per the FIRST specifications (v3.0/v3.1 §7 formulas with their Roundup; v4.0
//! macro-vector lookup and interpolation). Kept, in tests only, as the oracle of the
//! differential test that the crate must pass (`super::tests::differential_*`).

use std::collections::HashMap;

/// Metric map of a vector `PREFIX/K:V/K:V…`; duplicates and junk make it invalid.
fn metrics<'a>(rest: &'a str, allowed: &[(&str, &str)]) -> Option<HashMap<&'a str, &'a str>> {
    let mut map = HashMap::new();
    if rest.len() > 512 {
        return None;
    }
    for part in rest.split('/') {
        let (k, v) = part.split_once(':')?;
        let (_, values) = allowed.iter().find(|(name, _)| *name == k)?;
        if v.len() != 1 || !values.contains(v) {
            return None;
        }
        if map.insert(k, v).is_some() {
            return None;
        }
    }
    Some(map)
}

/// Base score of a `CVSS:3.0/…` or `CVSS:3.1/…` vector.
pub fn v3_base_score(vector: &str) -> Option<f32> {
    let vector = vector.trim();
    let (v31, rest) = if let Some(r) = vector.strip_prefix("CVSS:3.1/") {
        (true, r)
    } else {
        (false, vector.strip_prefix("CVSS:3.0/")?)
    };
    const ALLOWED: &[(&str, &str)] = &[
        ("AV", "NALP"),
        ("AC", "LH"),
        ("PR", "NLH"),
        ("UI", "NR"),
        ("S", "UC"),
        ("C", "HLN"),
        ("I", "HLN"),
        ("A", "HLN"),
        // temporal and environmental metrics are accepted and do not change the base
        ("E", "XUPFH"),
        ("RL", "XOTWU"),
        ("RC", "XURC"),
        ("CR", "XLMH"),
        ("IR", "XLMH"),
        ("AR", "XLMH"),
        ("MAV", "XNALP"),
        ("MAC", "XLH"),
        ("MPR", "XNLH"),
        ("MUI", "XNR"),
        ("MS", "XUC"),
        ("MC", "XNLH"),
        ("MI", "XNLH"),
        ("MA", "XNLH"),
    ];
    let m = metrics(rest, ALLOWED)?;
    let changed = *m.get("S")? == "C";
    let av = match *m.get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        _ => 0.2,
    };
    let ac = if *m.get("AC")? == "L" { 0.77 } else { 0.44 };
    let pr = match (*m.get("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        (_, false) => 0.27,
        (_, true) => 0.5,
    };
    let ui = if *m.get("UI")? == "N" { 0.85 } else { 0.62 };
    let cia = |k: &str| -> Option<f64> {
        Some(match *m.get(k)? {
            "H" => 0.56,
            "L" => 0.22,
            _ => 0.0,
        })
    };
    let (c, i, a) = (cia("C")?, cia("I")?, cia("A")?);
    let iss = 1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    let score = if impact <= 0.0 {
        0.0
    } else if changed {
        roundup(f64::min(1.08 * (impact + exploitability), 10.0), v31)
    } else {
        roundup(f64::min(impact + exploitability, 10.0), v31)
    };
    Some(score as f32)
}

/// Round up to one decimal. v3.1 defines it on integers to dodge floating-point error
/// (Appendix A); v3.0 is a plain ceiling.
fn roundup(x: f64, v31: bool) -> f64 {
    if v31 {
        let int_input = (x * 100_000.0).round() as i64;
        if int_input % 10_000 == 0 {
            int_input as f64 / 100_000.0
        } else {
            ((int_input / 10_000) + 1) as f64 / 10.0
        }
    } else {
        (x * 10.0).ceil() / 10.0
    }
}

// ---------------------------------------------------------------- CVSS v4.0

/// Scores of the 270 macro vectors (EQ1..EQ6 levels), from the FIRST CVSS v4.0
/// reference data (the `cvss_lookup` table of the FIRST/Red Hat calculator).
const V4_LOOKUP: &[(&str, f64)] = &[
    ("000000", 10.0),
    ("000001", 9.9),
    ("000010", 9.8),
    ("000011", 9.5),
    ("000020", 9.5),
    ("000021", 9.2),
    ("000100", 10.0),
    ("000101", 9.6),
    ("000110", 9.3),
    ("000111", 8.7),
    ("000120", 9.1),
    ("000121", 8.1),
    ("000200", 9.3),
    ("000201", 9.0),
    ("000210", 8.9),
    ("000211", 8.0),
    ("000220", 8.1),
    ("000221", 6.8),
    ("001000", 9.8),
    ("001001", 9.5),
    ("001010", 9.5),
    ("001011", 9.2),
    ("001020", 9.0),
    ("001021", 8.4),
    ("001100", 9.3),
    ("001101", 9.2),
    ("001110", 8.9),
    ("001111", 8.1),
    ("001120", 8.1),
    ("001121", 6.5),
    ("001200", 8.8),
    ("001201", 8.0),
    ("001210", 7.8),
    ("001211", 7.0),
    ("001220", 6.9),
    ("001221", 4.8),
    ("002001", 9.2),
    ("002011", 8.2),
    ("002021", 7.2),
    ("002101", 7.9),
    ("002111", 6.9),
    ("002121", 5.0),
    ("002201", 6.9),
    ("002211", 5.5),
    ("002221", 2.7),
    ("010000", 9.9),
    ("010001", 9.7),
    ("010010", 9.5),
    ("010011", 9.2),
    ("010020", 9.2),
    ("010021", 8.5),
    ("010100", 9.5),
    ("010101", 9.1),
    ("010110", 9.0),
    ("010111", 8.3),
    ("010120", 8.4),
    ("010121", 7.1),
    ("010200", 9.2),
    ("010201", 8.1),
    ("010210", 8.2),
    ("010211", 7.1),
    ("010220", 7.2),
    ("010221", 5.3),
    ("011000", 9.5),
    ("011001", 9.3),
    ("011010", 9.2),
    ("011011", 8.5),
    ("011020", 8.5),
    ("011021", 7.3),
    ("011100", 9.2),
    ("011101", 8.2),
    ("011110", 8.0),
    ("011111", 7.2),
    ("011120", 7.0),
    ("011121", 5.9),
    ("011200", 8.4),
    ("011201", 7.0),
    ("011210", 7.1),
    ("011211", 5.2),
    ("011220", 5.0),
    ("011221", 3.0),
    ("012001", 8.6),
    ("012011", 7.5),
    ("012021", 5.2),
    ("012101", 7.1),
    ("012111", 5.2),
    ("012121", 2.9),
    ("012201", 6.3),
    ("012211", 2.9),
    ("012221", 1.7),
    ("100000", 9.8),
    ("100001", 9.5),
    ("100010", 9.4),
    ("100011", 8.7),
    ("100020", 9.1),
    ("100021", 8.1),
    ("100100", 9.4),
    ("100101", 8.9),
    ("100110", 8.6),
    ("100111", 7.4),
    ("100120", 7.7),
    ("100121", 6.4),
    ("100200", 8.7),
    ("100201", 7.5),
    ("100210", 7.4),
    ("100211", 6.3),
    ("100220", 6.3),
    ("100221", 4.9),
    ("101000", 9.4),
    ("101001", 8.9),
    ("101010", 8.8),
    ("101011", 7.7),
    ("101020", 7.6),
    ("101021", 6.7),
    ("101100", 8.6),
    ("101101", 7.6),
    ("101110", 7.4),
    ("101111", 5.8),
    ("101120", 5.9),
    ("101121", 5.0),
    ("101200", 7.2),
    ("101201", 5.7),
    ("101210", 5.7),
    ("101211", 5.2),
    ("101220", 5.2),
    ("101221", 2.5),
    ("102001", 8.3),
    ("102011", 7.0),
    ("102021", 5.4),
    ("102101", 6.5),
    ("102111", 5.8),
    ("102121", 2.6),
    ("102201", 5.3),
    ("102211", 2.1),
    ("102221", 1.3),
    ("110000", 9.5),
    ("110001", 9.0),
    ("110010", 8.8),
    ("110011", 7.6),
    ("110020", 7.6),
    ("110021", 7.0),
    ("110100", 9.0),
    ("110101", 7.7),
    ("110110", 7.5),
    ("110111", 6.2),
    ("110120", 6.1),
    ("110121", 5.3),
    ("110200", 7.7),
    ("110201", 6.6),
    ("110210", 6.8),
    ("110211", 5.9),
    ("110220", 5.2),
    ("110221", 3.0),
    ("111000", 8.9),
    ("111001", 7.8),
    ("111010", 7.6),
    ("111011", 6.7),
    ("111020", 6.2),
    ("111021", 5.8),
    ("111100", 7.4),
    ("111101", 5.9),
    ("111110", 5.7),
    ("111111", 5.7),
    ("111120", 4.7),
    ("111121", 2.3),
    ("111200", 6.1),
    ("111201", 5.2),
    ("111210", 5.7),
    ("111211", 2.9),
    ("111220", 2.4),
    ("111221", 1.6),
    ("112001", 7.1),
    ("112011", 5.9),
    ("112021", 3.0),
    ("112101", 5.8),
    ("112111", 2.6),
    ("112121", 1.5),
    ("112201", 2.3),
    ("112211", 1.3),
    ("112221", 0.6),
    ("200000", 9.3),
    ("200001", 8.7),
    ("200010", 8.6),
    ("200011", 7.2),
    ("200020", 7.5),
    ("200021", 5.8),
    ("200100", 8.6),
    ("200101", 7.4),
    ("200110", 7.4),
    ("200111", 6.1),
    ("200120", 5.6),
    ("200121", 3.4),
    ("200200", 7.0),
    ("200201", 5.4),
    ("200210", 5.2),
    ("200211", 4.0),
    ("200220", 4.0),
    ("200221", 2.2),
    ("201000", 8.5),
    ("201001", 7.5),
    ("201010", 7.4),
    ("201011", 5.5),
    ("201020", 6.2),
    ("201021", 5.1),
    ("201100", 7.2),
    ("201101", 5.7),
    ("201110", 5.5),
    ("201111", 4.1),
    ("201120", 4.6),
    ("201121", 1.9),
    ("201200", 5.3),
    ("201201", 3.6),
    ("201210", 3.4),
    ("201211", 1.9),
    ("201220", 1.9),
    ("201221", 0.8),
    ("202001", 6.4),
    ("202011", 5.1),
    ("202021", 2.0),
    ("202101", 4.7),
    ("202111", 2.1),
    ("202121", 1.1),
    ("202201", 2.4),
    ("202211", 0.9),
    ("202221", 0.4),
    ("210000", 8.8),
    ("210001", 7.5),
    ("210010", 7.3),
    ("210011", 5.3),
    ("210020", 6.0),
    ("210021", 5.0),
    ("210100", 7.3),
    ("210101", 5.5),
    ("210110", 5.9),
    ("210111", 4.0),
    ("210120", 4.1),
    ("210121", 2.0),
    ("210200", 5.4),
    ("210201", 4.3),
    ("210210", 4.5),
    ("210211", 2.2),
    ("210220", 2.0),
    ("210221", 1.1),
    ("211000", 7.5),
    ("211001", 5.5),
    ("211010", 5.8),
    ("211011", 4.5),
    ("211020", 4.0),
    ("211021", 2.1),
    ("211100", 6.1),
    ("211101", 5.1),
    ("211110", 4.8),
    ("211111", 1.8),
    ("211120", 2.0),
    ("211121", 0.9),
    ("211200", 4.6),
    ("211201", 1.8),
    ("211210", 1.7),
    ("211211", 0.7),
    ("211220", 0.8),
    ("211221", 0.2),
    ("212001", 5.3),
    ("212011", 2.4),
    ("212021", 1.4),
    ("212101", 2.4),
    ("212111", 1.2),
    ("212121", 0.5),
    ("212201", 1.0),
    ("212211", 0.3),
    ("212221", 0.1),
];

fn v4_lookup(eq: [u8; 6]) -> Option<f64> {
    let key: String = eq.iter().map(|d| char::from(b'0' + d)).collect();
    V4_LOOKUP.iter().find(|(k, _)| *k == key).map(|(_, s)| *s)
}

/// Highest-severity vectors of each EQ level (FIRST reference `max_composed`), as
/// metric/value pairs.
fn max_composed(eq: usize, level: u8, eq6: u8) -> &'static [&'static str] {
    match (eq, level, eq6) {
        (1, 0, _) => &["AV:N/PR:N/UI:N"],
        (1, 1, _) => &["AV:A/PR:N/UI:N", "AV:N/PR:L/UI:N", "AV:N/PR:N/UI:P"],
        (1, _, _) => &["AV:P/PR:N/UI:N", "AV:A/PR:L/UI:P"],
        (2, 0, _) => &["AC:L/AT:N"],
        (2, _, _) => &["AC:H/AT:N", "AC:L/AT:P"],
        (3, 0, 0) => &["VC:H/VI:H/VA:H/CR:H/IR:H/AR:H"],
        (3, 0, _) => &[
            "VC:H/VI:H/VA:L/CR:M/IR:M/AR:H",
            "VC:H/VI:H/VA:H/CR:M/IR:M/AR:M",
        ],
        (3, 1, 0) => &[
            "VC:L/VI:H/VA:H/CR:H/IR:H/AR:H",
            "VC:H/VI:L/VA:H/CR:H/IR:H/AR:H",
        ],
        (3, 1, _) => &[
            "VC:L/VI:H/VA:L/CR:H/IR:M/AR:H",
            "VC:L/VI:H/VA:H/CR:H/IR:M/AR:M",
            "VC:H/VI:L/VA:H/CR:M/IR:H/AR:M",
            "VC:H/VI:L/VA:L/CR:M/IR:H/AR:H",
            "VC:L/VI:L/VA:H/CR:H/IR:H/AR:M",
        ],
        (3, _, _) => &["VC:L/VI:L/VA:L/CR:H/IR:H/AR:H"],
        (4, 0, _) => &["SC:H/SI:S/SA:S"],
        (4, 1, _) => &["SC:H/SI:H/SA:H"],
        (4, _, _) => &["SC:L/SI:L/SA:L"],
        _ => &[],
    }
}

/// Maximal severity depth of each EQ level, in 0.1 steps (FIRST reference `max_severity`).
fn max_severity(eq: usize, level: u8, eq6: u8) -> f64 {
    let steps = match (eq, level, eq6) {
        (1, 0, _) => 1,
        (1, 1, _) => 4,
        (1, _, _) => 5,
        (2, 0, _) => 1,
        (2, _, _) => 2,
        (3, 0, 0) => 7,
        (3, 0, _) => 6,
        (3, 1, _) => 8,
        (3, _, _) => 10,
        (4, 0, _) => 6,
        (4, 1, _) => 5,
        (4, _, _) => 4,
        _ => 1,
    };
    f64::from(steps) * 0.1
}

/// Severity level of a metric value in 0.1 steps (lower is more severe).
fn level(metric: &str, value: &str) -> i32 {
    match (metric, value) {
        ("AV", "N") | ("PR", "N") | ("UI", "N") | ("AC", "L") | ("AT", "N") => 0,
        ("AV", "A") | ("PR", "L") | ("UI", "P") | ("AC", "H") | ("AT", "P") => 1,
        ("AV", "L") | ("PR", "H") | ("UI", "A") => 2,
        ("AV", "P") => 3,
        ("VC" | "VI" | "VA", "H") => 0,
        ("VC" | "VI" | "VA", "L") => 1,
        ("VC" | "VI" | "VA", "N") => 2,
        ("SC", "H") => 1,
        ("SC", "L") => 2,
        ("SC", "N") => 3,
        ("SI" | "SA", "S") => 0,
        ("SI" | "SA", "H") => 1,
        ("SI" | "SA", "L") => 2,
        ("SI" | "SA", "N") => 3,
        ("CR" | "IR" | "AR", "H") => 0,
        ("CR" | "IR" | "AR", "M") => 1,
        ("CR" | "IR" | "AR", "L") => 2,
        _ => 0,
    }
}

/// Base (or base+threat+environmental, when those metrics are present) score of a
/// `CVSS:4.0/…` vector.
pub fn v4_score(vector: &str) -> Option<f32> {
    let rest = vector.trim().strip_prefix("CVSS:4.0/")?;
    const ALLOWED: &[(&str, &str)] = &[
        ("AV", "NALP"),
        ("AC", "LH"),
        ("AT", "NP"),
        ("PR", "NLH"),
        ("UI", "NPA"),
        ("VC", "HLN"),
        ("VI", "HLN"),
        ("VA", "HLN"),
        ("SC", "HLN"),
        ("SI", "HLN"),
        ("SA", "HLN"),
        ("E", "XAPU"),
        ("CR", "XHML"),
        ("IR", "XHML"),
        ("AR", "XHML"),
        ("MAV", "XNALP"),
        ("MAC", "XLH"),
        ("MAT", "XNP"),
        ("MPR", "XNLH"),
        ("MUI", "XNPA"),
        ("MVC", "XHLN"),
        ("MVI", "XHLN"),
        ("MVA", "XHLN"),
        ("MSC", "XHLN"),
        ("MSI", "XSHLN"),
        ("MSA", "XSHLN"),
        // supplemental metrics do not change the score
        ("S", "XNP"),
        ("AU", "XNY"),
        ("R", "XAUI"),
        ("V", "XDC"),
        ("RE", "XLMH"),
        ("U", "X"),
    ];
    // `U` (urgency) takes words (Clear, Green, Amber, Red): drop it before validation.
    let filtered: Vec<&str> = rest.split('/').filter(|p| !p.starts_with("U:")).collect();
    let joined = filtered.join("/");
    let m = metrics(&joined, ALLOWED)?;
    for base in [
        "AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA",
    ] {
        m.get(base)?;
    }
    // Effective value of a metric: environmental overrides, worst case for X.
    let get = |metric: &str| -> &str {
        match (metric, m.get(metric).copied()) {
            ("E", None | Some("X")) => return "A",
            ("CR" | "IR" | "AR", None | Some("X")) => return "H",
            _ => {}
        }
        let modified = format!("M{metric}");
        match m.get(modified.as_str()).copied() {
            Some(v) if v != "X" => v,
            _ => m.get(metric).copied().unwrap_or("N"),
        }
    };
    if ["VC", "VI", "VA", "SC", "SI", "SA"]
        .iter()
        .all(|k| get(k) == "N")
    {
        return Some(0.0);
    }
    let eq1 = if get("AV") == "N" && get("PR") == "N" && get("UI") == "N" {
        0
    } else if (get("AV") == "N" || get("PR") == "N" || get("UI") == "N") && get("AV") != "P" {
        1
    } else {
        2
    };
    let eq2 = if get("AC") == "L" && get("AT") == "N" {
        0
    } else {
        1
    };
    let eq3 = if get("VC") == "H" && get("VI") == "H" {
        0
    } else if get("VC") == "H" || get("VI") == "H" || get("VA") == "H" {
        1
    } else {
        2
    };
    let eq4 = if get("MSI") == "S" || get("MSA") == "S" {
        0
    } else if get("SC") == "H" || get("SI") == "H" || get("SA") == "H" {
        1
    } else {
        2
    };
    let eq5 = match get("E") {
        "A" => 0,
        "P" => 1,
        _ => 2,
    };
    let eq6 = if (get("CR") == "H" && get("VC") == "H")
        || (get("IR") == "H" && get("VI") == "H")
        || (get("AR") == "H" && get("VA") == "H")
    {
        0
    } else {
        1
    };
    let eqs = [eq1, eq2, eq3, eq4, eq5, eq6];
    let value = v4_lookup(eqs)?;

    let lower = |idx: usize| {
        let mut e = eqs;
        e[idx] += 1;
        v4_lookup(e)
    };
    let next_eq1 = lower(0);
    let next_eq2 = lower(1);
    let next_eq3eq6 = match (eq3, eq6) {
        (1, 1) | (0, 1) => lower(2),
        (1, 0) => lower(5),
        (0, 0) => {
            // two ways down: take the higher-scoring one
            match (lower(5), lower(2)) {
                (Some(l), Some(r)) => Some(if l > r { l } else { r }),
                (l, r) => l.or(r),
            }
        }
        _ => None,
    };
    let next_eq4 = lower(3);
    let next_eq5 = lower(4);

    // Severity distance from the first highest-severity vector of this macro vector that
    // is at least as severe in every metric.
    let metrics_all = [
        "AV", "PR", "UI", "AC", "AT", "VC", "VI", "VA", "SC", "SI", "SA", "CR", "IR", "AR",
    ];
    let mut distances: HashMap<&str, i32> = HashMap::new();
    'outer: for a in max_composed(1, eq1, eq6) {
        for b in max_composed(2, eq2, eq6) {
            for c in max_composed(3, eq3, eq6) {
                for d in max_composed(4, eq4, eq6) {
                    let max_vec = format!("{a}/{b}/{c}/{d}");
                    let max: HashMap<&str, &str> = max_vec
                        .split('/')
                        .filter_map(|p| p.split_once(':'))
                        .collect();
                    let mut dist = HashMap::new();
                    let mut ok = true;
                    for k in metrics_all {
                        let mv = max.get(k).copied().unwrap_or("N");
                        let d = level(k, get(k)) - level(k, mv);
                        if d < 0 {
                            ok = false;
                        }
                        dist.insert(k, d);
                    }
                    distances = dist;
                    if ok {
                        break 'outer;
                    }
                }
            }
        }
    }
    let dist = |ks: &[&str]| -> f64 {
        f64::from(
            ks.iter()
                .map(|k| distances.get(k).copied().unwrap_or(0))
                .sum::<i32>(),
        ) * 0.1
    };
    let current = [
        dist(&["AV", "PR", "UI"]),
        dist(&["AC", "AT"]),
        dist(&["VC", "VI", "VA", "CR", "IR", "AR"]),
        dist(&["SC", "SI", "SA"]),
    ];
    let max_sev = [
        max_severity(1, eq1, eq6),
        max_severity(2, eq2, eq6),
        max_severity(3, eq3, eq6),
        max_severity(4, eq4, eq6),
    ];
    let nexts = [next_eq1, next_eq2, next_eq3eq6, next_eq4];
    let mut existing = 0u32;
    let mut total = 0.0;
    for i in 0..4 {
        if let Some(next) = nexts[i] {
            existing += 1;
            total += (value - next) * (current[i] / max_sev[i]);
        }
    }
    if next_eq5.is_some() {
        // EQ5 has no depth: it counts, with a proportion of 0
        existing += 1;
    }
    let mean = if existing == 0 {
        0.0
    } else {
        total / f64::from(existing)
    };
    let score = (value - mean).clamp(0.0, 10.0);
    // Round half up at one decimal, lifted by an epsilon as the reference does (the
    // interpolation can land one ULP below an x.x5 tie).
    Some((((score + 1e-6) * 10.0).round() / 10.0) as f32)
}
