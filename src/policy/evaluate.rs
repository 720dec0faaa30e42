//! Evaluation: the signature report and the judged scan turned into one verdict.
//! Pure: every input is a value, the clock included.

use time::OffsetDateTime;

use super::verdict::{Decision, DenyKind, Findings, Verdict};
use crate::config::{Mode, Policy};
use crate::digest::Digest;
use crate::report::{ScanReport, SignatureReport};

/// What the scan found, already judged against `[policy.scan]`.
#[derive(Debug, Clone, Default)]
pub struct JudgedScan {
    pub report: ScanReport,
    /// Reasons to deny, most important first, stable wording.
    pub deny_reasons: Vec<String>,
    pub warnings: Vec<String>,
    /// VEX applied before judging: findings suppressed (removed from `report`) and
    /// statements not applied, with reasons. Empty when no VEX was looked at.
    pub vex: crate::vex::VexOutcome,
    /// How looking for VEX went (`found`, `none`, `no_signers`, `error`), for
    /// `pullwarden_vex_lookups_total`; `None`: not looked for.
    pub vex_lookup: Option<&'static str>,
    /// The VEX sources the lookup found, for the image's inventory; `None`: not looked
    /// for, or the lookup failed.
    pub vex_sources: Option<Vec<crate::vex::VexSource>>,
}

/// Everything evaluation needs about the image.
pub struct Subject<'a> {
    pub reference: &'a str,
    pub digest: Digest,
    pub platform_digest: Option<Digest>,
}

pub struct Keys<'a> {
    pub policy_fingerprint: &'a str,
    pub db_version: &'a str,
}

/// Signature failures come first: an image nobody trusted signed is denied for that,
/// whatever its layers hold (and is never pulled to find out).
pub fn evaluate(
    policy: &Policy,
    subject: &Subject<'_>,
    signatures: SignatureReport,
    scan: Option<JudgedScan>,
    keys: &Keys<'_>,
    now: OffsetDateTime,
) -> Verdict {
    let mut reasons = Vec::new();
    let mut deny_kind = None;
    if signatures.required && !signatures.satisfied {
        reasons.push(signature_reason(&signatures));
        deny_kind = Some(DenyKind::Signature);
    }
    let mut vex = crate::vex::VexOutcome::default();
    let (findings, warnings, packages) = match scan {
        Some(s) => {
            vex = s.vex;
            if !s.deny_reasons.is_empty() && deny_kind.is_none() {
                deny_kind = Some(DenyKind::Scan);
            }
            reasons.extend(s.deny_reasons);
            (
                Findings {
                    secrets: s.report.secrets,
                    vulnerabilities: s.report.vulnerabilities,
                    files: s.report.files,
                },
                s.warnings,
                s.report.packages.len(),
            )
        }
        None => (Findings::default(), Vec::new(), 0),
    };
    let decision = if reasons.is_empty() {
        Decision::Allow
    } else {
        Decision::Deny
    };
    Verdict {
        digest: subject.digest.clone(),
        platform_digest: subject.platform_digest.clone(),
        reference: subject.reference.to_string(),
        decision,
        mode: policy.mode,
        policy: policy.name.clone(),
        reasons,
        deny_kind,
        would_deny: decision == Decision::Deny && policy.mode == Mode::Audit,
        enforced: policy.mode == Mode::Enforce,
        signatures,
        findings,
        warnings,
        packages,
        decided_at: rfc3339(now),
        policy_fingerprint: keys.policy_fingerprint.to_string(),
        db_version: keys.db_version.to_string(),
        scan_source: None,
        vex,
        how: None,
    }
}

/// One line that says why the signature requirement failed, stable for the same input.
fn signature_reason(s: &SignatureReport) -> String {
    let verified = s.verified_signers.len();
    if s.checks.iter().all(|c| c.source == "none") || s.checks.is_empty() {
        return format!(
            "no signature found (need {} trusted signer{})",
            s.threshold,
            if s.threshold == 1 { "" } else { "s" }
        );
    }
    let mut why: Vec<String> = s
        .checks
        .iter()
        .filter(|c| !c.verified && c.source != "none")
        .map(|c| c.reason.clone())
        .collect();
    why.sort();
    why.dedup();
    let detail = if why.is_empty() {
        String::new()
    } else {
        format!(": {}", why.join("; "))
    };
    format!(
        "{verified} of {} required trusted signers verified{detail}",
        s.threshold
    )
}

pub fn mode_name(m: Mode) -> &'static str {
    m.as_str()
}

/// RFC 3339, as every other timestamp of the crate (see `crate::rfc3339`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    crate::rfc3339::format(t)
}

/// Judges a finished scan under `[policy.scan]`: secrets and risky files, then
/// vulnerabilities (with exceptions as of `today`). One function for the gate and
/// `pullwarden scan`, so the node and CI decide alike.
pub fn judge_scan(
    report: ScanReport,
    policy: &crate::config::ScanPolicy,
    today: time::Date,
) -> JudgedScan {
    let files = super::findings::judge_findings(policy, &report.secrets, &report.files);
    let vulns = super::vulns::judge(&report.vulnerabilities, policy, today);
    let mut deny_reasons = files.deny_reasons;
    deny_reasons.extend(vulns.deny_reasons);
    let mut warnings = files.warnings;
    warnings.extend(vulns.warnings);
    JudgedScan {
        report,
        deny_reasons,
        warnings,
        vex: Default::default(),
        vex_lookup: None,
        vex_sources: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::report::SignatureCheck;

    fn policy(mode: &str) -> Policy {
        Config::parse(&format!(
            "[[policy]]\nname=\"p\"\nimages=[\"**\"]\nmode=\"{mode}\"\n[policy.signatures]\nkeys=[\"/k.pub\"]\n"
        ))
        .unwrap()
        .policies
        .remove(0)
    }

    fn subject() -> Subject<'static> {
        Subject {
            reference: "r/a:v1",
            digest: crate::digest::Digest::sha256_of(b""),
            platform_digest: None,
        }
    }

    const KEYS: Keys<'static> = Keys {
        policy_fingerprint: "fp",
        db_version: "db",
    };

    fn check(verified: bool, reason: &str) -> SignatureCheck {
        SignatureCheck {
            subject: "sha256:00".into(),
            source: "legacy-tag".into(),
            artifact: None,
            signer: Some("/k.pub".into()),
            verified,
            reason: reason.into(),
        }
    }

    #[test]
    fn signature_failure_denies_first_and_is_stable() {
        let sig = SignatureReport {
            required: true,
            satisfied: false,
            threshold: 1,
            verified_signers: vec![],
            checks: vec![check(false, "bad signature"), check(false, "bad signature")],
        };
        let scan = JudgedScan {
            deny_reasons: vec!["secret private-key in /k (layer sha256:1, line 1)".into()],
            ..Default::default()
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        let v = evaluate(
            &policy("enforce"),
            &subject(),
            sig.clone(),
            Some(scan.clone()),
            &KEYS,
            now,
        );
        assert_eq!(v.decision, Decision::Deny);
        assert_eq!(v.deny_kind, Some(DenyKind::Signature));
        assert_eq!(
            v.reasons[0],
            "0 of 1 required trusted signers verified: bad signature"
        );
        assert_eq!(v.reasons.len(), 2);
        let again = evaluate(&policy("enforce"), &subject(), sig, Some(scan), &KEYS, now);
        assert_eq!(v, again);
        assert_eq!(v.decided_at, "1970-01-01T00:00:00Z");
    }

    #[test]
    fn missing_signature_scan_deny_audit_and_clean_allow() {
        let none = SignatureReport {
            required: true,
            satisfied: false,
            threshold: 2,
            ..Default::default()
        };
        let v = evaluate(
            &policy("enforce"),
            &subject(),
            none,
            None,
            &KEYS,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(
            v.reasons,
            vec!["no signature found (need 2 trusted signers)"]
        );

        let ok = SignatureReport {
            required: true,
            satisfied: true,
            threshold: 1,
            verified_signers: vec!["/k.pub".into()],
            checks: vec![check(true, "verified")],
        };
        let scan = JudgedScan {
            deny_reasons: vec!["x".into()],
            ..Default::default()
        };
        let v = evaluate(
            &policy("audit"),
            &subject(),
            ok.clone(),
            Some(scan),
            &KEYS,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(
            (v.decision, v.deny_kind, v.would_deny),
            (Decision::Deny, Some(DenyKind::Scan), true)
        );
        assert_eq!(v.mode, Mode::Audit);

        let v = evaluate(
            &policy("enforce"),
            &subject(),
            ok,
            Some(JudgedScan::default()),
            &KEYS,
            OffsetDateTime::UNIX_EPOCH,
        );
        assert_eq!(v.decision, Decision::Allow);
        assert!(v.reasons.is_empty() && !v.would_deny && v.deny_kind.is_none());
    }
}
