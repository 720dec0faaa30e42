//! Judging matched vulnerabilities against a policy's `[policy.scan]` rules: severity
//! threshold, unfixed findings, and time-limited exceptions. Pure: the date is a
//! parameter, so the same inputs always give the same verdict.

use std::cmp::Reverse;

use crate::config::ScanPolicy;
use crate::report::Vulnerability;

/// What the vulnerability rules decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VulnJudgement {
    /// One stable sentence per finding above `max_severity`, most severe first.
    pub deny_reasons: Vec<String>,
    /// Allow-listed findings and expired exceptions.
    pub warnings: Vec<String>,
    /// Findings that count (not allow-listed, not ignored as unfixed), most severe first.
    pub counted: Vec<Vulnerability>,
}

/// `CVE-2024-1234 (critical 9.8) in openssl 3.0.11-1~deb12u1, fixed in 3.0.13-1~deb12u1`
pub fn describe(v: &Vulnerability) -> String {
    let rating = match v.score {
        Some(s) => format!("{} {s:.1}", v.severity),
        None => v.severity.to_string(),
    };
    let fix = match (&v.fixed_in, v.fix_channel.as_deref()) {
        (Some(f), Some("ubuntu-pro")) => format!("fixed in {f} (Ubuntu Pro/ESM only)"),
        (Some(f), _) => format!("fixed in {f}"),
        (None, _) => "no fix available".to_string(),
    };
    format!(
        "{} ({rating}) in {} {}, {fix}",
        v.id, v.package, v.installed_version
    )
}

/// Judge `vulns` under `policy` on `today` (UTC). A finding denies when its severity is
/// above `max_severity` in the order `none < low < medium < unknown < high < critical`:
/// a finding without any usable rating is not treated as harmless, so it denies under a
/// `medium` (or lower) threshold and passes under `high`.
pub fn judge(vulns: &[Vulnerability], policy: &ScanPolicy, today: time::Date) -> VulnJudgement {
    let mut out = VulnJudgement::default();
    let mut expired_noted: Vec<String> = Vec::new();
    for v in vulns {
        if policy.ignore_unfixed && v.fixed_in.is_none() {
            continue;
        }
        let exception = policy.allow.iter().find(|e| {
            e.id.eq_ignore_ascii_case(&v.id)
                || v.aliases.iter().any(|a| e.id.eq_ignore_ascii_case(a))
        });
        if let Some(e) = exception {
            match e.until {
                Some(until) if today > until => {
                    if !expired_noted.contains(&e.id) {
                        expired_noted.push(e.id.clone());
                        out.warnings.push(format!(
                            "exception for {} expired on {until}; it no longer applies",
                            e.id
                        ));
                    }
                }
                until => {
                    let until = until.map_or(String::new(), |u| format!(" until {u}"));
                    let reason = if e.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", e.reason)
                    };
                    out.warnings.push(format!(
                        "{} allowed by exception {}{until}{reason}",
                        describe(v),
                        e.id
                    ));
                    continue;
                }
            }
        }
        out.counted.push(v.clone());
    }
    out.counted.sort_by(|a, b| {
        (
            Reverse(a.severity),
            Reverse(score_key(a)),
            &a.id,
            &a.package,
            &a.installed_version,
        )
            .cmp(&(
                Reverse(b.severity),
                Reverse(score_key(b)),
                &b.id,
                &b.package,
                &b.installed_version,
            ))
    });
    out.deny_reasons = out
        .counted
        .iter()
        .filter(|v| v.severity > policy.max_severity)
        .map(describe)
        .collect();
    out.deny_reasons.dedup();
    out
}

/// Scores as integers tenths, for a total order.
#[allow(clippy::cast_possible_truncation)] // CVSS scores are 0.0–10.0: 0–100 fits.
fn score_key(v: &Vulnerability) -> i32 {
    v.score.map_or(-1, |s| (s * 10.0).round() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FindingAction, ScanPolicy, VulnException};
    use crate::report::Severity;
    use time::macros::date;

    fn policy(max: Severity, ignore_unfixed: bool, allow: Vec<VulnException>) -> ScanPolicy {
        ScanPolicy {
            enabled: true,
            secrets: FindingAction::Deny,
            max_severity: max,
            ignore_unfixed,
            allow,
            deny_setuid: false,
            deny_world_writable: false,
            deny_devices: false,
            denylist: None,
        }
    }

    fn vuln(
        id: &str,
        alias: &str,
        sev: Severity,
        score: Option<f32>,
        fixed: Option<&str>,
    ) -> Vulnerability {
        Vulnerability {
            id: id.into(),
            aliases: if alias.is_empty() {
                vec![]
            } else {
                vec![alias.into()]
            },
            package: "openssl".into(),
            installed_version: "3.0.11-1~deb12u1".into(),
            ecosystem: "Debian:12".into(),
            fixed_in: fixed.map(String::from),
            fix_channel: None,
            severity: sev,
            score,
            summary: None,
            purl: "pkg:deb/debian/openssl@3.0.11-1~deb12u1".into(),
            layer: "sha256:aa".into(),
        }
    }

    fn exc(id: &str, until: Option<time::Date>) -> VulnException {
        VulnException {
            id: id.into(),
            until,
            reason: "not reachable".into(),
        }
    }

    #[test]
    fn threshold_is_strictly_above() {
        let vs = vec![
            vuln(
                "CVE-1",
                "",
                Severity::High,
                Some(7.5),
                Some("3.0.13-1~deb12u1"),
            ),
            vuln(
                "CVE-2",
                "",
                Severity::Critical,
                Some(9.8),
                Some("3.0.13-1~deb12u1"),
            ),
            vuln("CVE-3", "", Severity::Unknown, None, None),
        ];
        let j = judge(
            &vs,
            &policy(Severity::High, false, vec![]),
            date!(2026 - 11 - 26),
        );
        assert_eq!(
            j.deny_reasons,
            vec!["CVE-2 (critical 9.8) in openssl 3.0.11-1~deb12u1, fixed in 3.0.13-1~deb12u1"]
        );
        assert_eq!(j.counted.len(), 3);
        assert_eq!(j.counted[0].id, "CVE-2");
        // unknown is above medium
        let j = judge(
            &vs,
            &policy(Severity::Medium, false, vec![]),
            date!(2026 - 11 - 26),
        );
        assert_eq!(j.deny_reasons.len(), 3);
        assert!(j.deny_reasons.contains(
            &"CVE-3 (unknown) in openssl 3.0.11-1~deb12u1, no fix available".to_string()
        ));
        // critical threshold: nothing denies
        let j = judge(
            &vs,
            &policy(Severity::Critical, false, vec![]),
            date!(2026 - 11 - 26),
        );
        assert!(j.deny_reasons.is_empty());
    }

    #[test]
    fn ignore_unfixed() {
        let vs = vec![vuln("CVE-9", "", Severity::Critical, Some(9.8), None)];
        let j = judge(
            &vs,
            &policy(Severity::Low, true, vec![]),
            date!(2026 - 11 - 26),
        );
        assert!(j.deny_reasons.is_empty());
        assert!(j.counted.is_empty());
        let j = judge(
            &vs,
            &policy(Severity::Low, false, vec![]),
            date!(2026 - 11 - 26),
        );
        assert_eq!(j.deny_reasons.len(), 1);
    }

    #[test]
    fn exceptions_by_id_or_alias_and_expiry() {
        let vs = vec![
            vuln(
                "DSA-5678-1",
                "CVE-2024-0001",
                Severity::Critical,
                Some(9.8),
                Some("2"),
            ),
            vuln(
                "GHSA-aaaa",
                "CVE-2024-0002",
                Severity::Critical,
                Some(9.1),
                Some("2"),
            ),
        ];
        let allow = vec![
            exc("CVE-2024-0001", Some(date!(2027 - 01 - 01))),
            exc("GHSA-AAAA", Some(date!(2026 - 11 - 25))),
        ];
        let j = judge(
            &vs,
            &policy(Severity::High, false, allow.clone()),
            date!(2026 - 11 - 26),
        );
        // the alias exception applies; the expired one does not, and says so
        assert_eq!(
            j.deny_reasons,
            vec!["GHSA-aaaa (critical 9.1) in openssl 3.0.11-1~deb12u1, fixed in 2"]
        );
        assert!(j.warnings.iter().any(|w| w == "exception for GHSA-AAAA expired on 2026-11-25; it no longer applies"));
        assert!(
            j.warnings
                .iter()
                .any(|w| w.starts_with("DSA-5678-1 (critical 9.8)")
                    && w.contains("allowed by exception CVE-2024-0001 until 2027-01-01"))
        );
        assert_eq!(j.counted.len(), 1);
        // `until` is inclusive
        let j = judge(
            &vs,
            &policy(Severity::High, false, allow.clone()),
            date!(2026 - 11 - 25),
        );
        assert!(j.deny_reasons.is_empty());
        // later, both expired
        let j = judge(
            &vs,
            &policy(Severity::High, false, allow),
            date!(2027 - 01 - 02),
        );
        assert_eq!(j.deny_reasons.len(), 2);
        assert_eq!(j.warnings.len(), 2);
        // no expiry
        let j = judge(
            &vs,
            &policy(
                Severity::High,
                false,
                vec![exc("cve-2024-0002", None), exc("DSA-5678-1", None)],
            ),
            date!(2099 - 01 - 01),
        );
        assert!(j.deny_reasons.is_empty());
        assert!(j.counted.is_empty());
    }
}
