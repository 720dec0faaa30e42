//! Judges secrets and risky files against a policy's `[policy.scan]` section. Pure:
//! same findings and policy, same reasons, word for word (they end up in kubelet
//! events and in the verdict store, and must not churn).

use crate::config::{FindingAction, ScanPolicy};
use crate::report::{FileFinding, FileFindingKind, SecretFinding};

/// Reasons to deny and warnings, in the order the findings were reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingsJudgement {
    pub deny_reasons: Vec<String>,
    pub warnings: Vec<String>,
}

impl FindingsJudgement {
    pub fn denied(&self) -> bool {
        !self.deny_reasons.is_empty()
    }
}

/// `sha256:` plus 12 hex characters: enough to find the layer, short enough to read.
fn short_layer(layer: &str) -> &str {
    let end = layer
        .find(':')
        .map(|i| i + 13)
        .unwrap_or(layer.len())
        .min(layer.len());
    layer.get(..end).unwrap_or(layer)
}

fn kind_name(k: FileFindingKind) -> &'static str {
    match k {
        FileFindingKind::Setuid => "setuid file",
        FileFindingKind::Setgid => "setgid file",
        FileFindingKind::WorldWritable => "world-writable file",
        FileFindingKind::DeviceNode => "device node",
        FileFindingKind::Denylisted => "denylisted file",
        FileFindingKind::PathTraversal => "path traversal",
        FileFindingKind::LimitExceeded => "limit exceeded",
        FileFindingKind::Malformed => "malformed layer",
        FileFindingKind::DigestMismatch => "digest mismatch",
        FileFindingKind::NotExamined => "not examined",
    }
}

fn file_reason(f: &FileFinding) -> String {
    let layer = short_layer(&f.layer);
    if f.path.is_empty() {
        format!("{} in layer {layer}: {}", kind_name(f.kind), f.detail)
    } else {
        format!(
            "{} {} (layer {layer}): {}",
            kind_name(f.kind),
            f.path,
            f.detail
        )
    }
}

pub fn judge_findings(
    policy: &ScanPolicy,
    secrets: &[SecretFinding],
    files: &[FileFinding],
) -> FindingsJudgement {
    let mut j = FindingsJudgement::default();
    for s in secrets {
        let deleted = if s.deleted_in_final_image {
            ", deleted in a later layer but still shipped"
        } else {
            ""
        };
        let reason = format!(
            "secret {} in {} (layer {}, line {}{deleted})",
            s.rule,
            s.path,
            short_layer(&s.layer),
            s.line
        );
        match policy.secrets {
            FindingAction::Deny => j.deny_reasons.push(reason),
            FindingAction::Warn => j.warnings.push(reason),
            FindingAction::Ignore => {}
        }
    }
    for f in files {
        let deny = match f.kind {
            k if k.is_integrity_failure() => true,
            FileFindingKind::Denylisted => true,
            FileFindingKind::Setuid | FileFindingKind::Setgid => policy.deny_setuid,
            FileFindingKind::WorldWritable => policy.deny_world_writable,
            FileFindingKind::DeviceNode => policy.deny_devices,
            _ => false,
        };
        let reason = file_reason(f);
        if deny {
            j.deny_reasons.push(reason);
        } else if !matches!(
            f.kind,
            FileFindingKind::Setuid | FileFindingKind::Setgid | FileFindingKind::WorldWritable
        ) {
            // setuid binaries are normal in base images (su, passwd): listed in the
            // report, not repeated as warnings unless the policy cares.
            j.warnings.push(reason);
        }
    }
    j.deny_reasons.dedup();
    j.warnings.dedup();
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretFinding {
        SecretFinding {
            rule: "aws-access-key-id".into(),
            title: "AWS Access Key ID".into(),
            path: "/app/.env".into(),
            layer: format!("sha256:{}", "ab".repeat(32)),
            line: 3,
            redacted: "AKIA************9986".into(),
            deleted_in_final_image: false,
        }
    }

    fn file(kind: FileFindingKind, path: &str) -> FileFinding {
        FileFinding {
            kind,
            path: path.into(),
            layer: format!("sha256:{}", "cd".repeat(32)),
            detail: "mode 4755".into(),
        }
    }

    #[test]
    fn secrets_follow_the_policy_action() {
        let mut p = ScanPolicy::default();
        let j = judge_findings(&p, &[secret()], &[]);
        assert_eq!(
            j.deny_reasons,
            ["secret aws-access-key-id in /app/.env (layer sha256:abababababab, line 3)"]
        );
        p.secrets = FindingAction::Warn;
        let j = judge_findings(&p, &[secret()], &[]);
        assert!(j.deny_reasons.is_empty());
        assert_eq!(j.warnings.len(), 1);
        p.secrets = FindingAction::Ignore;
        assert_eq!(
            judge_findings(&p, &[secret()], &[]),
            FindingsJudgement::default()
        );
    }

    #[test]
    fn files_follow_flags_and_integrity_always_denies() {
        let mut p = ScanPolicy::default();
        let files = [
            file(FileFindingKind::Setuid, "/usr/bin/su"),
            file(FileFindingKind::WorldWritable, "/app/x"),
            file(FileFindingKind::DeviceNode, "/dev/mem"),
        ];
        assert!(!judge_findings(&p, &[], &files).denied());
        p.deny_setuid = true;
        let j = judge_findings(&p, &[], &files);
        assert_eq!(
            j.deny_reasons,
            ["setuid file /usr/bin/su (layer sha256:cdcdcdcdcdcd): mode 4755"]
        );
        p.deny_world_writable = true;
        p.deny_devices = true;
        assert_eq!(judge_findings(&p, &[], &files).deny_reasons.len(), 3);
        let lenient = ScanPolicy {
            secrets: FindingAction::Ignore,
            ..ScanPolicy::default()
        };
        for k in [
            FileFindingKind::DigestMismatch,
            FileFindingKind::Malformed,
            FileFindingKind::LimitExceeded,
            FileFindingKind::PathTraversal,
            FileFindingKind::Denylisted,
        ] {
            assert!(
                judge_findings(&lenient, &[], &[file(k, "")]).denied(),
                "{k:?}"
            );
        }
        let j = judge_findings(
            &lenient,
            &[],
            &[file(FileFindingKind::NotExamined, "/big.txt")],
        );
        assert!(!j.denied());
        assert_eq!(j.warnings.len(), 1);
        // Stable text.
        assert_eq!(
            judge_findings(&p, &[secret()], &files),
            judge_findings(&p, &[secret()], &files)
        );
    }
}
