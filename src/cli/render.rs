//! Human output of the CLI: the borderless column tables of `verdicts`/`explain`, and
//! the scan report (header, tables of vulnerabilities, secrets, risky files and
//! packages, a summary line) of `pullwarden scan`. Pure: text in, text out; whether to
//! colour is the caller's (a terminal, and `NO_COLOR` unset).

use std::fmt::Write as _;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Attribute, Cell, Color, ContentLineStyle, Table, TableStyle};

use crate::report::{FileFindingKind, ScanReport, Severity, Vulnerability};

/// Whether output to a stream may be coloured: only a terminal, and never when the
/// `NO_COLOR` environment variable is set to anything but the empty string
/// (<https://no-color.org>).
pub fn colour_enabled(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Left-aligned columns separated by two spaces, no borders, the last column not
/// padded (`kubectl get` style): for lists a script may still `awk`.
pub fn plain_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = Table::new();
    // No borders, no header rule: only a one-space column separator.
    let columns = ContentLineStyle::none().junction(' ');
    t.load_style(
        TableStyle::new()
            .header_lines(columns)
            .content_lines(columns),
    );
    t.force_no_tty();
    t.set_header(header.iter().copied());
    for r in rows {
        t.add_row(r.iter().map(String::as_str));
    }
    // One space of padding on the right of each cell and a one-space column separator:
    // two spaces between columns.
    for col in t.column_iter_mut() {
        col.set_padding((0, 1));
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A CVSS base score as people write it: one decimal (`9.8`, never `9.800000190734863`).
pub fn score(s: f32) -> String {
    format!("{s:.1}")
}

/// The first 12 hex digits of a digest, with its algorithm (`sha256:0123456789ab`).
pub fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.get(..12).unwrap_or(hex)),
        None => d.chars().take(19).collect(),
    }
}

/// The vulnerability database as the report header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbFacts {
    /// Content version (`osv-…`; `none` when empty).
    pub version: String,
    /// Newest record's `modified` date (RFC 3339), when the database has records.
    pub newest: Option<String>,
    /// Whole days from `newest` to now.
    pub age_days: Option<i64>,
}

/// Everything the scan report shows, computed by the caller (the clock included), so
/// the same inputs print the same text.
#[derive(Debug, Clone)]
pub struct ScanView<'a> {
    /// The source as given (`docker://…`, `oci:DIR:TAG`, `docker-archive:FILE`).
    pub image: &'a str,
    /// Manifest digest of the platform image scanned.
    pub digest: &'a str,
    /// `os/arch`.
    pub platform: &'a str,
    /// None: no vulnerability database (vulnerabilities were not looked for).
    pub db: Option<DbFacts>,
    pub report: &'a ScanReport,
    /// Per entry of `report.vulnerabilities`: the date an exception allows it until
    /// (`no end date` for an exception without one); None when no exception applies.
    pub allowed_until: &'a [Option<String>],
    /// `allow` or `deny`.
    pub decision: &'a str,
    /// Name of the policy that judged (or `default scan policy`).
    pub policy: &'a str,
    /// `enforce`, `audit` or `off`.
    pub mode: &'a str,
    pub reasons: &'a [String],
    pub warnings: &'a [String],
}

const SEVERITIES: [Severity; 6] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Unknown,
    Severity::None,
];

fn severity_colour(s: Severity) -> Color {
    match s {
        Severity::Critical => Color::Red,
        Severity::High => Color::DarkRed,
        Severity::Medium => Color::Yellow,
        Severity::Low => Color::Blue,
        Severity::Unknown | Severity::None => Color::Grey,
    }
}

fn boxed(header: &[&str], colour: bool) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.force_no_tty();
    if colour {
        t.enforce_styling();
    }
    t.set_header(header.iter().map(|h| {
        let c = Cell::new(h);
        if colour {
            c.add_attribute(Attribute::Bold)
        } else {
            c
        }
    }));
    t
}

fn paint(text: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn kind_name<T: serde::Serialize>(k: &T) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Counts by severity, most severe first: `2 critical, 1 high, 0 medium, 0 low, 0 unknown`.
pub fn severity_counts(vulns: &[Vulnerability]) -> String {
    SEVERITIES
        .iter()
        .filter(|s| **s != Severity::None || vulns.iter().any(|v| v.severity == **s))
        .map(|s| {
            let n = vulns.iter().filter(|v| v.severity == *s).count();
            format!("{n} {s}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn section(out: &mut String, title: &str, n: usize, colour: bool) {
    let _ = writeln!(out, "\n{}", paint(&format!("{title} ({n})"), "1", colour));
}

/// The scan report as a terminal shows it (`colour`: ANSI styles on).
pub fn scan_report(v: &ScanView<'_>, colour: bool) -> String {
    let r = v.report;
    let mut out = String::new();
    let mut head = vec![
        ("Image", v.image.to_string()),
        ("Digest", v.digest.to_string()),
        ("Platform", v.platform.to_string()),
    ];
    if let Some(os) = &r.os {
        let name = os
            .pretty_name
            .clone()
            .unwrap_or_else(|| format!("{} {}", os.id, os.version_id.clone().unwrap_or_default()));
        head.push(("OS", name.trim().to_string()));
    }
    head.push((
        "Database",
        match &v.db {
            None => "none: vulnerabilities were not looked for".to_string(),
            Some(db) => match (&db.newest, db.age_days) {
                (Some(newest), Some(days)) => {
                    let day = newest.get(..10).unwrap_or(newest);
                    let age = match days {
                        0 => "today".to_string(),
                        1 => "1 day old".to_string(),
                        d => format!("{d} days old"),
                    };
                    format!("{} (newest record {day}, {age})", db.version)
                }
                _ => db.version.clone(),
            },
        },
    ));
    let (c, u): (u64, u64) = r.layers.iter().fold((0, 0), |(c, u), l| {
        (c + l.compressed_bytes, u + l.uncompressed_bytes)
    });
    head.push((
        "Layers",
        format!(
            "{} ({:.1} MB compressed, {:.1} MB uncompressed)",
            r.layers.len(),
            c as f64 / 1e6,
            u as f64 / 1e6
        ),
    ));
    for (k, val) in head {
        let _ = writeln!(out, "{:<10}{val}", format!("{k}:"));
    }

    // Vulnerabilities, most severe first.
    section(&mut out, "Vulnerabilities", r.vulnerabilities.len(), colour);
    if !r.vulnerabilities.is_empty() {
        let mut order: Vec<usize> = (0..r.vulnerabilities.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&r.vulnerabilities[a], &r.vulnerabilities[b]);
            // CVSS scores are 0.0–10.0: tenths fit an i32.
            #[allow(clippy::cast_possible_truncation)]
            let key = |v: &Vulnerability| v.score.map_or(-1, |s| (s * 10.0).round() as i32);
            (y.severity, key(y))
                .cmp(&(x.severity, key(x)))
                .then_with(|| (&x.id, &x.package).cmp(&(&y.id, &y.package)))
        });
        let mut t = boxed(
            &[
                "SEVERITY",
                "SCORE",
                "ID",
                "PACKAGE",
                "INSTALLED",
                "FIXED",
                "LAYER",
                "ALLOWED UNTIL",
            ],
            colour,
        );
        for i in order {
            let x = &r.vulnerabilities[i];
            let sev = Cell::new(x.severity.to_string().to_uppercase());
            let sev = if colour {
                sev.fg(severity_colour(x.severity))
            } else {
                sev
            };
            let fixed = match (&x.fixed_in, x.fix_channel.as_deref()) {
                (Some(f), Some("ubuntu-pro")) => format!("{f} (Ubuntu Pro)"),
                (Some(f), _) => f.clone(),
                (None, _) => String::new(),
            };
            t.add_row(vec![
                sev,
                Cell::new(x.score.map(score).unwrap_or_default()),
                Cell::new(&x.id),
                Cell::new(&x.package),
                Cell::new(&x.installed_version),
                Cell::new(fixed),
                Cell::new(short_digest(&x.layer)),
                Cell::new(
                    v.allowed_until
                        .get(i)
                        .cloned()
                        .flatten()
                        .unwrap_or_default(),
                ),
            ]);
        }
        let _ = writeln!(out, "{t}");
    }

    section(&mut out, "Secrets", r.secrets.len(), colour);
    if !r.secrets.is_empty() {
        let mut t = boxed(&["RULE", "PATH", "LINE", "MATCH", "LAYER"], colour);
        for s in &r.secrets {
            let path = if s.deleted_in_final_image {
                format!("{} (deleted later)", s.path)
            } else {
                s.path.clone()
            };
            t.add_row(vec![
                s.rule.clone(),
                path,
                s.line.to_string(),
                s.redacted.clone(),
                short_digest(&s.layer),
            ]);
        }
        let _ = writeln!(out, "{t}");
    }

    section(&mut out, "Risky files", r.files.len(), colour);
    if !r.files.is_empty() {
        let mut t = boxed(&["KIND", "PATH", "DETAIL", "LAYER"], colour);
        for f in &r.files {
            let kind = Cell::new(kind_name(&f.kind));
            let kind = if colour && f.kind.is_integrity_failure() {
                kind.fg(Color::Red)
            } else if colour && f.kind != FileFindingKind::NotExamined {
                kind.fg(Color::Yellow)
            } else {
                kind
            };
            t.add_row(vec![
                kind,
                Cell::new(&f.path),
                Cell::new(&f.detail),
                Cell::new(short_digest(&f.layer)),
            ]);
        }
        let _ = writeln!(out, "{t}");
    }

    section(&mut out, "Packages", r.packages.len(), colour);
    if !r.packages.is_empty() {
        let mut t = boxed(&["TYPE", "NAME", "VERSION", "LAYER", "PATH"], colour);
        for p in &r.packages {
            t.add_row(vec![
                kind_name(&p.kind),
                p.name.clone(),
                p.version.clone(),
                short_digest(&p.layer),
                p.path.clone(),
            ]);
        }
        let _ = writeln!(out, "{t}");
    }

    let secrets = match r.secrets.len() {
        1 => "1 secret".to_string(),
        n => format!("{n} secrets"),
    };
    let files = match r.files.len() {
        1 => "1 risky file".to_string(),
        n => format!("{n} risky files"),
    };
    let vulns = if v.db.is_some() {
        format!(
            "{} vulnerabilities ({})",
            r.vulnerabilities.len(),
            severity_counts(&r.vulnerabilities)
        )
    } else {
        "vulnerabilities not checked (no database)".to_string()
    };
    let _ = writeln!(out, "\nTotal: {vulns}, {secrets}, {files}");
    let decision = paint(
        v.decision,
        if v.decision == "deny" { "1;31" } else { "1;32" },
        colour,
    );
    let _ = writeln!(
        out,
        "Decision: {decision} (policy {}, mode {})",
        v.policy, v.mode
    );
    for r in v.reasons {
        let _ = writeln!(out, "  deny: {r}");
    }
    for w in v.warnings {
        let _ = writeln!(out, "  warn: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Distro, FileFinding, LayerSummary, Package, PackageType, SecretFinding};

    fn vuln(id: &str, sev: Severity, score: Option<f32>, fixed: Option<&str>) -> Vulnerability {
        Vulnerability {
            id: id.into(),
            aliases: vec![],
            package: "openssl".into(),
            installed_version: "3.0.11-1~deb12u1".into(),
            ecosystem: "Debian:12".into(),
            fixed_in: fixed.map(String::from),
            fix_channel: None,
            severity: sev,
            score,
            summary: None,
            purl: "pkg:deb/debian/openssl@3.0.11-1~deb12u1".into(),
            layer: "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
        }
    }

    fn report() -> ScanReport {
        let layer = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        ScanReport {
            os: Some(Distro {
                id: "debian".into(),
                version_id: Some("12".into()),
                codename: Some("bookworm".into()),
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            }),
            packages: vec![Package {
                name: "openssl".into(),
                version: "3.0.11-1~deb12u1".into(),
                kind: PackageType::Deb,
                purl: "pkg:deb/debian/openssl@3.0.11-1~deb12u1".into(),
                layer: layer.into(),
                path: "/var/lib/dpkg/status".into(),
                source_name: None,
                source_version: None,
                arch: None,
                licenses: vec![],
                depends: vec![],
                provides: vec![],
            }],
            secrets: vec![SecretFinding {
                rule: "github-pat".into(),
                title: "GitHub personal access token".into(),
                path: "/app/.env".into(),
                layer: layer.into(),
                line: 1,
                redacted: "ghp_****************************8R".into(),
                deleted_in_final_image: true,
            }],
            files: vec![FileFinding {
                kind: FileFindingKind::Setuid,
                path: "/usr/bin/tool".into(),
                layer: layer.into(),
                detail: "mode 4755".into(),
            }],
            vulnerabilities: vec![
                vuln("CVE-2024-0002", Severity::Medium, Some(5.3), None),
                vuln(
                    "CVE-2024-0001",
                    Severity::Critical,
                    Some(9.8),
                    Some("3.0.13-1~deb12u1"),
                ),
            ],
            layers: vec![LayerSummary {
                digest: layer.into(),
                diff_id: None,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                compressed_bytes: 1_500_000,
                uncompressed_bytes: 4_000_000,
                entries: 10,
                cached: false,
            }],
        }
    }

    const SNAPSHOT: &str = include_str!("snapshots/scan_report.txt");

    #[test]
    fn scan_report_snapshot_without_colour() {
        let r = report();
        let reasons = vec![
            "CVE-2024-0001 (critical 9.8) in openssl 3.0.11-1~deb12u1, fixed in 3.0.13-1~deb12u1"
                .to_string(),
        ];
        let warnings = vec!["secret github-pat in /app/.env: warn".to_string()];
        let until = vec![Some("2027-01-01".to_string()), None];
        let v = ScanView {
            image: "docker://127.0.0.1:5055/team/app:1",
            digest: "sha256:3333333333333333333333333333333333333333333333333333333333333333",
            platform: "linux/amd64",
            db: Some(DbFacts {
                version: "osv-0123456789abcdef".into(),
                newest: Some("2026-11-27T10:00:00Z".into()),
                age_days: Some(3),
            }),
            report: &r,
            allowed_until: &until,
            decision: "deny",
            policy: "team",
            mode: "enforce",
            reasons: &reasons,
            warnings: &warnings,
        };
        let text = scan_report(&v, false);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/cli/snapshots/scan_report.txt"
            );
            std::fs::write(path, &text).unwrap();
        }
        assert!(!text.contains('\x1b'), "colour without a terminal:\n{text}");
        assert_eq!(text, SNAPSHOT, "\n{text}");
        // Colour is ANSI styling over the same cells.
        let coloured = scan_report(&v, true);
        assert!(coloured.contains("\x1b["), "{coloured}");
        assert!(coloured.contains("CRITICAL"));
    }

    #[test]
    fn no_database_says_so() {
        let mut r = report();
        r.vulnerabilities.clear();
        let v = ScanView {
            image: "oci:/tmp/x:v1",
            digest: "sha256:00",
            platform: "linux/amd64",
            db: None,
            report: &r,
            allowed_until: &[],
            decision: "allow",
            policy: "default scan policy",
            mode: "enforce",
            reasons: &[],
            warnings: &[],
        };
        let text = scan_report(&v, false);
        assert!(
            text.contains("Database: none: vulnerabilities were not looked for"),
            "{text}"
        );
        assert!(
            text.contains("Total: vulnerabilities not checked (no database)"),
            "{text}"
        );
        assert!(text.contains("Decision: allow (policy default scan policy, mode enforce)"));
    }

    #[test]
    fn scores_have_one_decimal_and_digests_are_short() {
        assert_eq!(score(9.8), "9.8");
        assert_eq!(score(10.0), "10.0");
        assert_eq!(
            short_digest("sha256:0123456789abcdef"),
            "sha256:0123456789ab"
        );
    }

    #[test]
    fn no_color_turns_colour_off() {
        // Only the terminal test here; NO_COLOR is read from the environment, which
        // tests leave alone (the CLI test sets it on a child process).
        assert!(!colour_enabled(false));
    }
}
