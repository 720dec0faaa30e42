//! Synthetic vulnerability data shared by the benches (`vulndb`, `rescore`): a
//! deterministic generator, the OSV ecosystem mix, OSV records and packages that they
//! match. Every run measures the same data.

use pullwarden::report::{Package, PackageType};

/// Deterministic xorshift, so every run measures the same data.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// (OSV ecosystem, share of records in ‰, package-name pool size)
pub const MIX: &[(&str, u64, u64)] = &[
    ("Debian:12", 200, 4000),
    ("Ubuntu:22.04:LTS", 150, 4000),
    ("Alpine:v3.20", 100, 2000),
    ("PyPI", 150, 6000),
    ("npm", 150, 8000),
    ("Go", 100, 4000),
    ("Maven", 100, 5000),
    ("crates.io", 50, 2000),
];

pub fn name(eco: &str, i: u64) -> String {
    match eco {
        "Go" => format!("github.com/org{}/mod{i}", i % 97),
        "Maven" => format!("org.example{}:artifact-{i}", i % 53),
        "PyPI" => format!("py_pkg.{i}"),
        _ => format!("pkg{i}"),
    }
}

pub fn version(eco: &str, a: u64, b: u64, c: u64) -> String {
    match eco {
        "Debian:12" => format!("{a}.{b}.{c}-1+deb12u{}", c % 4 + 1),
        "Ubuntu:22.04:LTS" => format!("{a}.{b}.{c}-0ubuntu0.22.04.{}", c % 5 + 1),
        "Alpine:v3.20" => format!("{a}.{b}.{c}-r{}", c % 3),
        "PyPI" => format!("{a}.{b}.{c}"),
        "Go" => format!("{a}.{b}.{c}"),
        "Maven" => format!("{a}.{b}.{c}.Final"),
        _ => format!("{a}.{b}.{c}"),
    }
}

pub fn record(rng: &mut Rng, n: u64, eco: &str, pool: u64) -> String {
    let pkg = name(eco, rng.below(pool));
    let (a, b, c) = (rng.below(5), rng.below(20), rng.below(30));
    let fixed = version(eco, a, b, c + 1);
    let introduced = if rng.below(3) == 0 {
        "0".to_string()
    } else {
        version(eco, a, b.saturating_sub(1), 0)
    };
    let kind = if matches!(eco, "npm" | "Go" | "crates.io") {
        "SEMVER"
    } else {
        "ECOSYSTEM"
    };
    let sev = match rng.below(4) {
        0 => r#""severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"#.to_string(),
        1 => r#""severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N"}],"#.to_string(),
        2 => r#""database_specific":{"severity":"MODERATE"},"#.to_string(),
        _ => String::new(),
    };
    format!(
        r#"{{"id":"BENCH-{n}","modified":"2024-0{}-1{}T00:00:00Z","aliases":["CVE-2024-{n}"],"summary":"synthetic advisory {n}",{sev}"affected":[{{"package":{{"ecosystem":"{eco}","name":"{pkg}"}},"ranges":[{{"type":"{kind}","events":[{{"introduced":"{introduced}"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#,
        rng.below(9) + 1,
        rng.below(9)
    )
}

pub fn pkg(kind: PackageType, name: String, version: String, source: Option<String>) -> Package {
    Package {
        purl: format!("pkg:generic/{name}@{version}"),
        name,
        version,
        kind,
        layer: "sha256:bench".into(),
        path: "/bench".into(),
        source_name: source,
        source_version: None,
        arch: None,
        licenses: vec![],
        depends: vec![],
        provides: vec![],
    }
}
