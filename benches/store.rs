//! Verdict store costs on this machine. The number that matters is the cache hit the
//! gate pays on every pull of an image it has seen (DESIGN: "a cached allow must cost
//! about nothing"); it is printed as a ratio to decoding the same verdict JSON from
//! memory, the floor any on-disk verdict cache has to pay. Durable writes (one fsync
//! each) are shown for scale. Run: `cargo bench --bench store`.
// Test and bench code states expectations with unwrap/expect, indexing and casts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::time::{Duration, Instant};

use pullwarden::policy::{Decision, DenyKind, Findings, Verdict};
use pullwarden::report::{SecretFinding, Severity, SignatureCheck, SignatureReport, Vulnerability};
use pullwarden::store::{HistoryEvent, VerdictKey, VerdictStore};

const IMAGES: u64 = 1_000;
const LOOKUPS: u64 = 20_000;

fn digest(n: u64) -> String {
    format!("sha256:{n:064x}")
}

/// A verdict of realistic size: two signature checks, 25 vulnerabilities, one secret.
fn verdict(n: u64) -> Verdict {
    let layer = format!("sha256:{}", "c".repeat(64));
    let vulns = (0..25)
        .map(|i| Vulnerability {
            id: format!("CVE-2024-{i:04}"),
            aliases: vec![format!("DSA-{i}-1")],
            package: format!("lib{i}"),
            installed_version: "1.2.3-1".into(),
            ecosystem: "Debian:12".into(),
            fixed_in: Some("1.2.4-1".into()),
            fix_channel: None,
            severity: Severity::Medium,
            score: Some(5.5),
            summary: Some("a medium problem in a library".into()),
            purl: format!("pkg:deb/debian/lib{i}@1.2.3-1"),
            layer: layer.clone(),
        })
        .collect();
    Verdict {
        digest: digest(n).parse().unwrap(),
        platform_digest: None,
        reference: format!("registry.example.com/prod/app{n}:v1"),
        decision: Decision::Allow,
        mode: pullwarden::config::Mode::Enforce,
        policy: "prod".into(),
        reasons: vec![],
        deny_kind: None::<DenyKind>,
        would_deny: false,
        enforced: true,
        scan_source: None,
        vex: Default::default(),
        how: None,
        signatures: SignatureReport {
            required: true,
            satisfied: true,
            threshold: 1,
            verified_signers: vec!["/etc/pullwarden/keys/release.pub".into()],
            checks: vec![
                SignatureCheck {
                    subject: digest(n),
                    source: "referrers".into(),
                    artifact: Some(digest(n + 1)),
                    signer: Some("/etc/pullwarden/keys/release.pub".into()),
                    verified: true,
                    reason: "verified".into(),
                },
                SignatureCheck {
                    subject: digest(n),
                    source: "legacy-tag".into(),
                    artifact: None,
                    signer: None,
                    verified: false,
                    reason: "no signature at the legacy tag".into(),
                },
            ],
        },
        findings: Findings {
            secrets: vec![SecretFinding {
                rule: "generic-api-key".into(),
                title: "Generic API key".into(),
                path: "/app/config.yaml".into(),
                layer: layer.clone(),
                line: 12,
                redacted: "sk_l************3f".into(),
                deleted_in_final_image: false,
            }],
            vulnerabilities: vulns,
            files: vec![],
        },
        warnings: vec!["secret generic-api-key in /app/config.yaml (warn)".into()],
        packages: 180,
        decided_at: "2026-11-26T10:00:00Z".into(),
        policy_fingerprint: "f".repeat(64),
        db_version: "osv-2026-11-25".into(),
    }
}

/// A cheap deterministic spread of indices (no rand dependency).
fn pick(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % IMAGES
}

fn per_op(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = VerdictStore::open(dir.path(), 1_000).expect("open store");
    let verdicts: Vec<Verdict> = (0..IMAGES).map(verdict).collect();
    let json_len = serde_json::to_vec(&verdicts[0])
        .map(|v| v.len())
        .unwrap_or(0);

    let t = Instant::now();
    for v in &verdicts {
        store.put(&VerdictKey::of(v), v).expect("put");
    }
    let put = per_op(t.elapsed(), IMAGES);

    // Baseline: decode the verdict from bytes already in memory.
    let encoded: Vec<Vec<u8>> = verdicts
        .iter()
        .map(|v| serde_json::to_vec(v).expect("encode"))
        .collect();
    let t = Instant::now();
    let mut sink = 0usize;
    for i in 0..LOOKUPS {
        let v: Verdict = serde_json::from_slice(&encoded[pick(i) as usize]).expect("decode");
        sink += v.packages;
    }
    let baseline = per_op(t.elapsed(), LOOKUPS);

    let keys: Vec<VerdictKey> = verdicts.iter().map(VerdictKey::of).collect();
    let t = Instant::now();
    for i in 0..LOOKUPS {
        let v = store
            .get(&keys[pick(i) as usize])
            .expect("get")
            .expect("hit");
        sink += v.packages;
    }
    let hit = per_op(t.elapsed(), LOOKUPS);

    let t = Instant::now();
    for i in 0..LOOKUPS {
        let k = VerdictKey::new(digest(pick(i)), "other-fingerprint", "osv-2026-11-25");
        sink += usize::from(store.get(&k).expect("get").is_none());
    }
    let miss = per_op(t.elapsed(), LOOKUPS);

    let t = Instant::now();
    for i in 0..LOOKUPS / 4 {
        let r = format!("registry.example.com/prod/app{}:v1", pick(i));
        sink += usize::from(store.latest(&r).expect("latest").is_some());
    }
    let by_ref = per_op(t.elapsed(), LOOKUPS / 4);

    let t = Instant::now();
    let mut dropped = 0u64;
    for i in 0..LOOKUPS {
        let e = HistoryEvent::from_verdict(&verdicts[pick(i) as usize], "app", true);
        // A full queue drops the event (pulls never wait for the audit trail): count it.
        dropped += u64::from(store.record(&e).is_err());
    }
    let record = per_op(t.elapsed(), LOOKUPS);
    let t0 = Instant::now();
    store.flush_history();
    let record_drain = per_op(t.elapsed(), LOOKUPS);
    let drain_only = t0.elapsed();

    let layer = vec![7u8; 8 << 10];
    let t = Instant::now();
    for i in 0..IMAGES {
        store
            .layer_put(&format!("layer-{i}"), &layer)
            .expect("layer put");
    }
    let layer_put = per_op(t.elapsed(), IMAGES);
    let t = Instant::now();
    for i in 0..LOOKUPS {
        sink += store
            .layer_get(&format!("layer-{}", pick(i)))
            .expect("layer get")
            .map_or(0, |b| b.len());
    }
    let layer_get = per_op(t.elapsed(), LOOKUPS);

    println!("verdict store, {IMAGES} images, verdict JSON {json_len} bytes (checksum {sink})");
    println!("{:<44} {:>10} {:>8}", "operation", "µs/op", "ratio");
    let row = |name: &str, us: f64| {
        println!("{name:<44} {us:>10.2} {:>7.1}x", us / baseline);
    };
    row("baseline: decode verdict JSON from memory", baseline);
    row("get (cache hit, the gate's per-pull cost)", hit);
    row("get (miss: other fingerprint)", miss);
    row("latest by reference", by_ref);
    row("record history event (enqueue)", record);
    row("record history event (enqueue + commit)", record_drain);
    row("layer_get (8 KiB result)", layer_get);
    row("put verdict (durable commit, fsync)", put);
    row("layer_put (durable, LRU-evicting)", layer_put);
    println!(
        "history: {LOOKUPS} events enqueued in one burst, {dropped} dropped (queue full), drain {drain_only:?}"
    );
}
