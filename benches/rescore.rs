//! Re-judging benchmark (issue 13): (1) 1,000 stored image inventories judged again
//! against 200,000 synthetic OSV records, the way a `db import` on the node triggers it
//! (store read, decode, match, judge, store write); (2) `policy test` over 500 present
//! images with stored signature outcomes (0 registry calls).
//!
//! Baselines, measured in the same run: (1) the same re-judging on one thread with one
//! durable commit per verdict (the store's plain `put`), instead of the pass's worker
//! threads and one commit per batch beside them; (2) the same images
//! with no stored signature outcome, so each needs one registry look-up, answered by a
//! fake registry after `PW_BENCH_RTT_MS` (default 2 ms, a quick LAN round trip).
//!
//! Run: `cargo bench --bench rescore`. `PW_BENCH_RECORDS`, `PW_BENCH_IMAGES`,
//! `PW_BENCH_PRESENT` change the sizes. No timed asserts: targets are printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pullwarden::admin::Metrics;
use pullwarden::config::{Config, Policy};
use pullwarden::digest::Digest;
use pullwarden::gate::{GateError, ResolvedImage, SignatureSource, VerdictKey, verdict_scope};
use pullwarden::policy::evaluate::Keys;
use pullwarden::reference::Reference;
use pullwarden::report::{Distro, PackageType, ScanReport, SignatureReport};
use pullwarden::rescore::{PresentImage, judge};
use pullwarden::store::{INVENTORY_FORMAT, ImageInventory, SignatureEvidence, VerdictStore};
use pullwarden::vulndb::VulnDb;

#[path = "common/synthetic.rs"]
mod synthetic;
use synthetic::{MIX, Rng, name, pkg, record, version};

/// A Debian 12 image: 150 distro packages and 50 language packages.
fn report(rng: &mut Rng) -> ScanReport {
    let mut packages = Vec::new();
    for i in 0..150 {
        let src = name("Debian:12", rng.below(4000));
        let v = version("Debian:12", rng.below(5), rng.below(20), rng.below(30));
        packages.push(pkg(PackageType::Deb, format!("lib{src}-{i}"), v, Some(src)));
    }
    for i in 0..50u64 {
        let (eco, kind, pool) = [
            ("PyPI", PackageType::Python, 6000),
            ("npm", PackageType::Npm, 8000),
        ][(i % 2) as usize];
        let v = version(eco, rng.below(5), rng.below(20), rng.below(30));
        packages.push(pkg(kind, name(eco, rng.below(pool)), v, None));
    }
    ScanReport {
        os: Some(Distro {
            id: "debian".into(),
            version_id: Some("12".into()),
            codename: Some("bookworm".into()),
            pretty_name: None,
        }),
        packages,
        ..Default::default()
    }
}

/// A registry that answers every signature look-up after `rtt`, and counts them.
struct FakeRegistry {
    rtt: Duration,
    calls: AtomicUsize,
}

#[async_trait]
impl SignatureSource for FakeRegistry {
    async fn resolve(
        &self,
        _: &Reference,
        _: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<ResolvedImage, GateError> {
        unreachable!("policy test never resolves")
    }

    async fn verify(
        &self,
        _: &pullwarden::snapshot::LoadedPolicy,
        _: &Reference,
        _: &ResolvedImage,
        _: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<SignatureReport, GateError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.rtt).await;
        Ok(signed())
    }
}

fn signed() -> SignatureReport {
    SignatureReport {
        required: true,
        satisfied: true,
        threshold: 1,
        verified_signers: vec!["release.pub".into()],
        checks: vec![],
    }
}

fn env_or(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Stores `n` images (verdict + inventory with a signature outcome) and returns them
/// as containerd would list them.
fn seed_store(
    store: &VerdictStore,
    n: usize,
    policy: &Policy,
    state: &pullwarden::gate::PolicyState,
    db_version: &str,
    rng: &mut Rng,
    with_evidence: bool,
) -> Vec<PresentImage> {
    let requirement = SignatureEvidence::requirement_of(policy).unwrap().unwrap();
    let mut present = Vec::with_capacity(n);
    for i in 0..n {
        let digest = Digest::sha256_of(format!("image {i} {with_evidence}").as_bytes());
        let reference: Reference = format!("registry.example.com/prod/app{i}:v1")
            .parse()
            .unwrap();
        let fp = state.fingerprint(&policy.name).unwrap();
        let scope = verdict_scope(policy, fp, &reference);
        let keys = Keys {
            policy_fingerprint: &scope,
            db_version,
        };
        let inv = ImageInventory {
            format: INVENTORY_FORMAT,
            digest: digest.clone(),
            platform_digest: None,
            references: vec![reference.to_string()],
            platform: "linux/amd64".into(),
            analyzer_set: 7,
            report: Some(report(rng)),
            scan_source: None,
            signatures: if with_evidence {
                vec![SignatureEvidence {
                    requirement: requirement.clone(),
                    repository: SignatureEvidence::repository_of(&reference),
                    report: signed(),
                    verified_at: "2026-11-30T00:00:00Z".into(),
                }]
            } else {
                vec![]
            },
            vex: vec![],
            recorded_at: "2026-11-30T00:00:00Z".into(),
        };
        let v = pullwarden::policy::evaluate::evaluate(
            policy,
            &pullwarden::policy::evaluate::Subject {
                reference: &reference.to_string(),
                digest: digest.clone(),
                platform_digest: None,
            },
            signed(),
            None,
            &keys,
            time::OffsetDateTime::now_utc(),
        );
        store
            .put_with_inventory(&VerdictKey::of(&v), &v, &inv)
            .unwrap();
        present.push(PresentImage {
            digest,
            references: vec![reference],
        });
    }
    present
}

fn main() {
    let records = env_or("PW_BENCH_RECORDS", 200_000) as u64;
    let images = env_or("PW_BENCH_IMAGES", 1_000);
    let present_n = env_or("PW_BENCH_PRESENT", 500);
    let rtt = Duration::from_millis(env_or("PW_BENCH_RTT_MS", 2) as u64);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);

    // The vulnerability database: 200,000 records in one zip, imported.
    let zip_path = dir.path().join("all.zip");
    {
        let f = std::fs::File::create(&zip_path).unwrap();
        let mut z = zip::ZipWriter::new(std::io::BufWriter::new(f));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut n = 0u64;
        for (eco, share, pool) in MIX {
            for _ in 0..records * share / 1000 {
                z.start_file(format!("BENCH-{n}.json"), opts).unwrap();
                z.write_all(record(&mut rng, n, eco, *pool).as_bytes())
                    .unwrap();
                n += 1;
            }
        }
        z.finish().unwrap();
    }
    let db_path = dir.path().join("vulndb.redb");
    let t = Instant::now();
    let imported = VulnDb::open(&db_path)
        .unwrap()
        .import(std::slice::from_ref(&zip_path))
        .unwrap();
    println!(
        "setup: {} OSV records imported in {:.1}s",
        imported.records_read,
        t.elapsed().as_secs_f64()
    );
    let db = VulnDb::open(&db_path).unwrap();

    // The node: a policy requiring a signature and scanning, images stored under an
    // older database version.
    let key = dir.path().join("release.pub");
    std::fs::write(&key, "bench key bytes").unwrap();
    let config = Config::parse(&format!(
        "[[policy]]\nname = \"prod\"\nimages = [\"registry.example.com/prod/**\"]\nmode = \"enforce\"\n[policy.signatures]\nkeys = [{key:?}]\n[policy.scan]\nmax_severity = \"high\"\n"
    ))
    .unwrap();
    let state = pullwarden::app::policy_state(Arc::new(config.clone()));
    let policy = &config.policies[0];
    let metrics = Metrics::new();

    // (1) re-judging 1,000 stored inventories.
    let store = VerdictStore::open(&dir.path().join("state"), 16).unwrap();
    let present = seed_store(&store, images, policy, &state, "old-db", &mut rng, true);
    let t = Instant::now();
    let summary = pullwarden::rescore::rescore_blocking(
        &store,
        &metrics,
        &present,
        &state,
        &db,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let batched = t.elapsed().as_secs_f64();
    assert_eq!(summary.rescored, images, "{summary:?}");
    println!(
        "re-judge: {} stored inventories (200 packages each) against {} records: {:.2}s ({:.2} ms per image; {} denied, {} changed)",
        images,
        imported.records_read,
        batched,
        batched * 1e3 / images as f64,
        summary.denied,
        summary.changed
    );
    // Baseline: the same judgement on one thread, one durable commit per verdict.
    let store2 = VerdictStore::open(&dir.path().join("state2"), 16).unwrap();
    let present2 = seed_store(&store2, images, policy, &state, "old-db", &mut rng, true);
    let t = Instant::now();
    let now = time::OffsetDateTime::now_utc();
    let matcher = db.matcher().unwrap();
    for image in &present2 {
        let inv = store2
            .inventory(&image.digest.to_string())
            .unwrap()
            .unwrap()
            .unwrap();
        let reference = &image.references[0];
        let scope = verdict_scope(policy, state.fingerprint(&policy.name).unwrap(), reference);
        let keys = Keys {
            policy_fingerprint: &scope,
            db_version: &db.version(),
        };
        let v = judge::judge(&inv, reference, policy, &keys, signed(), &matcher, now).unwrap();
        store2.put(&VerdictKey::of(&v), &v).unwrap();
    }
    let per_commit = t.elapsed().as_secs_f64();
    println!(
        "re-judge baseline (one thread, one commit per verdict): {:.2}s; the pass is {:.1}x faster",
        per_commit,
        per_commit / batched
    );
    println!(
        "target ≤ 2 s for 1,000 inventories against 200,000 records: {}",
        if batched <= 2.0 { "met" } else { "NOT met" }
    );

    // (2) policy test over 500 present images with stored signature outcomes.
    let store3 = VerdictStore::open(&dir.path().join("state3"), 16).unwrap();
    let with = seed_store(
        &store3,
        present_n,
        policy,
        &state,
        &db.version(),
        &mut rng,
        true,
    );
    let without = seed_store(
        &store3,
        present_n,
        policy,
        &state,
        &db.version(),
        &mut rng,
        false,
    );
    let candidate_cfg = Config::parse(&format!(
        "[[policy]]\nname = \"prod\"\nimages = [\"registry.example.com/prod/**\"]\nmode = \"enforce\"\n[policy.signatures]\nkeys = [{key:?}]\n[policy.scan]\nmax_severity = \"medium\"\nsecrets = \"deny\"\n"
    ))
    .unwrap();
    let candidate = pullwarden::app::policy_state(Arc::new(candidate_cfg));
    let registry = Arc::new(FakeRegistry {
        rtt,
        calls: AtomicUsize::new(0),
    });
    let source: Arc<dyn SignatureSource> = registry.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let r = rt.block_on(pullwarden::rescore::what_if::policy_test(
        &store3,
        &with,
        &state,
        &candidate,
        &db,
        Some(&source),
    ));
    let stored = t.elapsed().as_secs_f64();
    assert_eq!(r.images.len(), present_n);
    assert_eq!(r.skipped, 0, "{:?}", r.images.first());
    println!(
        "policy test: {} present images with stored evidence: {:.3}s, {} registry calls ({} would change)",
        present_n, stored, r.registry_calls, r.changed
    );
    let t = Instant::now();
    let r2 = rt.block_on(pullwarden::rescore::what_if::policy_test(
        &store3,
        &without,
        &state,
        &candidate,
        &db,
        Some(&source),
    ));
    let fetched = t.elapsed().as_secs_f64();
    println!(
        "policy test baseline (no stored evidence, registry RTT {} ms): {:.3}s, {} registry calls; stored evidence is {:.1}x faster",
        rtt.as_millis(),
        fetched,
        r2.registry_calls,
        fetched / stored
    );
    println!(
        "target ≤ 1 s and 0 registry calls for 500 images: {}",
        if stored <= 1.0 && r.registry_calls == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
