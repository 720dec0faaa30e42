//! The verdict store across processes: a writer killed with SIGKILL at random points
//! loses no acknowledged write and leaves a file that opens cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pullwarden::policy::{Decision, DenyKind, Findings, Verdict};
use pullwarden::report::{
    FileFinding, FileFindingKind, SecretFinding, Severity, SignatureCheck, SignatureReport,
    Vulnerability,
};
use pullwarden::store::{HistoryEvent, VerdictKey, VerdictStore};

pub fn digest_n(n: u64) -> String {
    format!("sha256:{n:064x}")
}

/// A verdict with something in every list, so round trips cover the whole shape.
pub fn sample_verdict(digest: &str, reference: &str, decision: Decision) -> Verdict {
    let layer = format!("sha256:{}", "c".repeat(64));
    Verdict {
        digest: digest.parse().unwrap(),
        platform_digest: None,
        reference: reference.to_string(),
        decision,
        mode: pullwarden::config::Mode::Enforce,
        policy: "prod".into(),
        reasons: match decision {
            Decision::Allow => vec![],
            Decision::Deny => vec![
                "no signature from a trusted signer (threshold 1, 0 verified)".into(),
                "secret aws-access-key-id in /app/.env (line 3)".into(),
            ],
        },
        deny_kind: match decision {
            Decision::Allow => None,
            Decision::Deny => Some(DenyKind::Signature),
        },
        would_deny: false,
        enforced: true,
        signatures: SignatureReport {
            required: true,
            satisfied: decision == Decision::Allow,
            threshold: 1,
            verified_signers: match decision {
                Decision::Allow => vec!["/etc/pullwarden/keys/release.pub".into()],
                Decision::Deny => vec![],
            },
            checks: vec![
                SignatureCheck {
                    subject: digest.to_string(),
                    source: "referrers".into(),
                    artifact: Some(format!("sha256:{}", "d".repeat(64))),
                    signer: Some("/etc/pullwarden/keys/release.pub".into()),
                    verified: decision == Decision::Allow,
                    reason: match decision {
                        Decision::Allow => "verified".into(),
                        Decision::Deny => "signature does not verify with this key".into(),
                    },
                },
                SignatureCheck {
                    subject: digest.to_string(),
                    source: "legacy-tag".into(),
                    artifact: None,
                    signer: None,
                    verified: false,
                    reason: "no signature at sha256-….sig".into(),
                },
            ],
        },
        findings: Findings {
            secrets: vec![SecretFinding {
                rule: "aws-access-key-id".into(),
                title: "AWS access key id".into(),
                path: "/app/.env".into(),
                layer: layer.clone(),
                line: 3,
                redacted: "AKIA************MPLE".into(),
                deleted_in_final_image: false,
            }],
            vulnerabilities: vec![Vulnerability {
                id: "CVE-2024-0001".into(),
                aliases: vec![],
                package: "openssl".into(),
                installed_version: "3.0.1-1".into(),
                ecosystem: "Debian:12".into(),
                fixed_in: Some("3.0.2-1".into()),
                fix_channel: None,
                severity: Severity::High,
                score: Some(7.5),
                summary: None,
                purl: "pkg:deb/debian/openssl@3.0.1-1".into(),
                layer: layer.clone(),
            }],
            files: vec![FileFinding {
                kind: FileFindingKind::Setuid,
                path: "/usr/bin/sudo".into(),
                layer,
                detail: "mode 4755".into(),
            }],
        },
        warnings: vec!["CVE-2024-0002 allowed until 2027-01-01: not reachable".into()],
        packages: 42,
        decided_at: "2026-11-26T10:00:00Z".into(),
        policy_fingerprint: "f".repeat(64),
        db_version: "osv-2026-11-25".into(),
        scan_source: None,
        vex: Default::default(),
        how: None,
    }
}

/// Every third write is a deny, so both shapes go through the crash.
fn decision_of(n: u64) -> Decision {
    if n.is_multiple_of(3) {
        Decision::Deny
    } else {
        Decision::Allow
    }
}

/// Writer loop run in a child process by `kill_9_loses_nothing` (ignored otherwise):
/// prints `ACK <n>` only after the verdict and layer result `n` were committed.
#[test]
#[ignore = "child process of kill_9_loses_nothing"]
fn kill9_child_writer() {
    let Ok(dir) = std::env::var("PW_KILL9_DIR") else {
        return;
    };
    let start: u64 = std::env::var("PW_KILL9_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let store = VerdictStore::open(Path::new(&dir), 1_000_000).unwrap();
    for n in start.. {
        let d = digest_n(n);
        let decision = decision_of(n);
        let v = sample_verdict(&d, &format!("app:{n}"), decision);
        store.put(&VerdictKey::of(&v), &v).unwrap();
        store
            .layer_put(&format!("layer-{n}"), &n.to_le_bytes())
            .unwrap();
        store
            .record(&HistoryEvent::from_verdict(&v, &v.reference, false))
            .unwrap();
        println!("ACK {n}");
    }
}

/// A cheap pseudo-random number (no rand dependency): clock nanoseconds, mixed.
fn jitter(round: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33
}

#[test]
fn kill_9_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked = std::collections::BTreeSet::new();
    let mut next = 0u64;
    for round in 0..12u64 {
        let mut child = Command::new(&exe)
            .args([
                "store::kill9_child_writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PW_KILL9_DIR", dir.path())
            .env("PW_KILL9_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest's "test … ... " prefix shares the first line.
                let ack = line.find("ACK ").map(|i| &line[i + 4..]);
                if let Some(n) = ack.and_then(|n| n.trim().parse().ok()) {
                    let _ = tx.send(n);
                }
            }
        });
        // Wait for the first acknowledged write, then kill at a random moment after it:
        // mid-commit, mid-fsync, between transactions.
        let first = rx.recv_timeout(Duration::from_secs(60));
        assert!(
            first.is_ok(),
            "round {round}: the writer acknowledged nothing"
        );
        let delay = Duration::from_millis(5 + jitter(round) % 150);
        let t = Instant::now();
        while t.elapsed() < delay {
            std::thread::yield_now();
        }
        child.kill().unwrap(); // SIGKILL
        let _ = child.wait();
        reader.join().unwrap();
        let mut round_acks: Vec<u64> = first.into_iter().collect();
        round_acks.extend(rx.try_iter());
        assert!(!round_acks.is_empty());
        next = round_acks.iter().max().copied().unwrap_or(next) + 1;
        acked.extend(round_acks);

        // Reopen after the crash: no corruption reported, every acknowledged write present.
        let store = VerdictStore::open(dir.path(), 1_000_000).unwrap();
        assert!(
            store.recovered_from_corruption().is_none(),
            "round {round}: a crash was treated as corruption"
        );
        for n in &acked {
            let d = digest_n(*n);
            let decision = decision_of(*n);
            let want = sample_verdict(&d, &format!("app:{n}"), decision);
            assert_eq!(
                store.get(&VerdictKey::of(&want)).unwrap().as_ref(),
                Some(&want),
                "round {round}: acknowledged verdict {n} lost"
            );
            assert_eq!(
                store.layer_get(&format!("layer-{n}")).unwrap(),
                Some(n.to_le_bytes().to_vec()),
                "round {round}: acknowledged layer result {n} lost"
            );
        }
        // At most the one write in flight past the last acknowledgement may have
        // landed, and then completely (the next round rewrites it and acknowledges it).
        let stats = store.stats().unwrap();
        let n_acked = acked.len() as u64;
        assert!(
            stats.images == n_acked || stats.images == n_acked + 1,
            "round {round}: {} images for {n_acked} acknowledged writes",
            stats.images
        );
        if stats.images > n_acked {
            let d = digest_n(next);
            let decision = decision_of(next);
            let want = sample_verdict(&d, &format!("app:{next}"), decision);
            assert_eq!(store.latest(&d).unwrap(), Some(want));
        }
    }
    assert!(acked.len() >= 8);
}
