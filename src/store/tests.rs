use super::*;
use crate::policy::Findings;
use crate::report::SignatureReport;

pub(crate) fn digest(n: u8) -> String {
    format!("sha256:{}", hex::encode([n; 32]))
}

pub(crate) fn verdict(
    d: &str,
    reference: &str,
    decision: Decision,
    fp: &str,
    dbv: &str,
) -> Verdict {
    Verdict {
        digest: d.parse().unwrap(),
        platform_digest: None,
        reference: reference.to_string(),
        decision,
        mode: crate::config::Mode::Enforce,
        policy: "prod".into(),
        reasons: match decision {
            Decision::Allow => vec![],
            Decision::Deny => vec!["no trusted signature".into()],
        },
        deny_kind: match decision {
            Decision::Allow => None,
            Decision::Deny => Some(DenyKind::Signature),
        },
        would_deny: false,
        enforced: true,
        signatures: SignatureReport::default(),
        findings: Findings::default(),
        warnings: vec![],
        packages: 3,
        decided_at: "2026-11-26T10:00:00Z".into(),
        policy_fingerprint: fp.to_string(),
        db_version: dbv.to_string(),
        scan_source: None,
        vex: Default::default(),
        how: None,
    }
}

fn open(dir: &Path) -> VerdictStore {
    VerdictStore::open(dir, 100).unwrap()
}

fn put(s: &VerdictStore, v: &Verdict) {
    s.put(&VerdictKey::of(v), v).unwrap();
}

#[test]
fn round_trip_and_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let d = digest(1);
    let mut v = verdict(&d, "nginx:1.27", Decision::Allow, "fp1", "db1");
    v.platform_digest = Some(digest(2).parse().unwrap());
    put(&s, &v);
    assert_eq!(s.get(&VerdictKey::of(&v)).unwrap(), Some(v.clone()));
    for q in [
        d.as_str(),
        "nginx:1.27",
        "docker.io/library/nginx:1.27",
        &format!("nginx@{d}"),
        &digest(2),
    ] {
        assert_eq!(s.latest(q).unwrap().as_ref(), Some(&v), "lookup by {q}");
    }
    assert_eq!(s.latest("nginx:1.28").unwrap(), None);
    assert_eq!(s.latest(&digest(9)).unwrap(), None);
    assert_eq!(s.latest("not a reference!").unwrap(), None);

    // Survives a reopen.
    drop(s);
    let s = open(dir.path());
    assert_eq!(s.latest("nginx:1.27").unwrap(), Some(v));
    assert!(s.recovered_from_corruption().is_none());
}

#[test]
fn other_fingerprint_or_db_version_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let d = digest(1);
    let v = verdict(&d, "app:v1", Decision::Deny, "fp1", "db1");
    put(&s, &v);
    assert!(s.get(&VerdictKey::new(&d, "fp1", "db1")).unwrap().is_some());
    assert!(s.get(&VerdictKey::new(&d, "fp2", "db1")).unwrap().is_none());
    assert!(s.get(&VerdictKey::new(&d, "fp1", "db2")).unwrap().is_none());
    assert!(
        s.get(&VerdictKey::new(digest(2), "fp1", "db1"))
            .unwrap()
            .is_none()
    );

    // A newer evaluation under another policy becomes the latest; the old one stays cached.
    let mut v2 = verdict(&d, "app:v1", Decision::Allow, "fp2", "db1");
    v2.decided_at = "2026-11-26T11:00:00Z".into();
    put(&s, &v2);
    assert_eq!(s.latest(&d).unwrap(), Some(v2.clone()));
    assert_eq!(s.get(&VerdictKey::of(&v)).unwrap(), Some(v));
}

#[test]
fn a_new_db_version_supersedes_the_old_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let d = digest(1);
    let old = verdict(&d, "a:1", Decision::Allow, "fp1", "db1");
    let other_policy = verdict(&d, "a:1", Decision::Allow, "fp2", "db1");
    let new = verdict(&d, "a:1", Decision::Deny, "fp1", "db2");
    put(&s, &old);
    put(&s, &other_policy);
    put(&s, &new);
    assert!(s.get(&VerdictKey::of(&old)).unwrap().is_none());
    assert_eq!(
        s.get(&VerdictKey::of(&other_policy)).unwrap(),
        Some(other_policy)
    );
    assert_eq!(s.get(&VerdictKey::of(&new)).unwrap(), Some(new));
    assert_eq!(s.stats().unwrap().verdicts, 2);
}

#[test]
fn bad_keys_and_mismatches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let v = verdict(&digest(1), "a:1", Decision::Allow, "fp", "db");
    assert!(matches!(
        s.put(&VerdictKey::new(digest(1), "other", "db"), &v),
        Err(StoreError::KeyMismatch { .. })
    ));
    let bad = verdict(&digest(1), "a:1", Decision::Allow, "f\np", "db");
    assert!(matches!(
        s.put(&VerdictKey::of(&bad), &bad),
        Err(StoreError::BadKey { .. })
    ));
    assert!(matches!(
        s.get(&VerdictKey::new("", "fp", "db")),
        Err(StoreError::BadKey { .. })
    ));
}

#[test]
fn infrastructure_failures_are_never_cached() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for (n, kind) in [(1, DenyKind::Registry), (2, DenyKind::Infrastructure)] {
        let mut v = verdict(&digest(n), "a:1", Decision::Allow, "fp", "db");
        v.deny_kind = Some(kind);
        assert!(matches!(
            s.put(&VerdictKey::of(&v), &v),
            Err(StoreError::InfrastructureAllow { .. })
        ));
        assert!(s.latest(&digest(n)).unwrap().is_none());

        // A deny of that kind is shown but not served from the cache.
        v.decision = Decision::Deny;
        put(&s, &v);
        assert!(s.get(&VerdictKey::of(&v)).unwrap().is_none());
        assert_eq!(s.latest(&digest(n)).unwrap(), Some(v));
    }
    // An audit-mode allow that would have been denied for a signature is a real verdict.
    let mut v = verdict(&digest(3), "b:1", Decision::Allow, "fp", "db");
    v.deny_kind = Some(DenyKind::Signature);
    v.would_deny = true;
    put(&s, &v);
    assert_eq!(s.get(&VerdictKey::of(&v)).unwrap(), Some(v));
}

#[test]
fn list_filters_by_decision() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    put(&s, &verdict(&digest(1), "a:1", Decision::Allow, "fp", "db"));
    put(&s, &verdict(&digest(2), "b:1", Decision::Deny, "fp", "db"));
    put(&s, &verdict(&digest(3), "c:1", Decision::Allow, "fp", "db"));
    // Two verdicts of one digest list once (the latest).
    put(
        &s,
        &verdict(&digest(3), "c:1", Decision::Allow, "fp2", "db"),
    );
    let digests = |vs: Vec<Verdict>| vs.into_iter().map(|v| v.digest).collect::<Vec<_>>();
    assert_eq!(s.list(None).unwrap().len(), 3);
    assert_eq!(
        digests(s.list(Some(Decision::Allow)).unwrap()),
        vec![digest(1), digest(3)]
    );
    assert_eq!(
        digests(s.list(Some(Decision::Deny)).unwrap()),
        vec![digest(2)]
    );
    let st = s.stats().unwrap();
    assert_eq!((st.images, st.verdicts), (3, 4));
}

#[test]
fn purge_forgets_every_verdict_of_a_digest() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let (d1, d2) = (digest(1), digest(2));
    let a = verdict(&d1, "a:1", Decision::Allow, "fp1", "db");
    let b = verdict(&d1, "a:1", Decision::Deny, "fp2", "db");
    let c = verdict(&d2, "c:1", Decision::Allow, "fp1", "db");
    for v in [&a, &b, &c] {
        put(&s, v);
    }
    assert_eq!(s.purge(&d1).unwrap(), 2);
    assert!(s.get(&VerdictKey::of(&a)).unwrap().is_none());
    assert!(s.get(&VerdictKey::of(&b)).unwrap().is_none());
    assert!(s.latest("a:1").unwrap().is_none());
    assert!(s.latest(&d1).unwrap().is_none());
    assert_eq!(s.latest("c:1").unwrap(), Some(c.clone()));
    assert_eq!(s.purge(&d1).unwrap(), 0);
    // Purge by reference resolves to the digest.
    assert_eq!(s.purge("c:1").unwrap(), 1);
    assert!(s.latest(&d2).unwrap().is_none());

    for v in [&a, &c] {
        put(&s, v);
    }
    assert_eq!(s.purge_all().unwrap(), 2);
    assert!(s.list(None).unwrap().is_empty());
    assert!(s.get(&VerdictKey::of(&c)).unwrap().is_none());
}

#[test]
fn history_is_bounded_and_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let s = VerdictStore::open_with_history_limit(dir.path(), 10, 5).unwrap();
    for i in 0..12u8 {
        let v = verdict(&digest(i), "a:1", Decision::Allow, "fp", "db");
        s.record(&HistoryEvent::from_verdict(&v, "a:1", i % 2 == 0))
            .unwrap();
    }
    let h = s.history(100).unwrap();
    let got: Vec<String> = h.iter().map(|e| e.digest.clone()).collect();
    let want: Vec<String> = (7..12u8).rev().map(digest).collect();
    assert_eq!(got, want);
    assert!(!h[0].cached && h[1].cached);
    assert_eq!(h[0].decision, Decision::Allow);
    assert_eq!(s.history(2).unwrap().len(), 2);
    assert_eq!(s.history_of(&digest(9), 10).unwrap().len(), 1);
    assert_eq!(s.stats().unwrap().history_events, 5);

    // Events queued just before the store closes are written, not lost.
    let v = verdict(&digest(99), "a:1", Decision::Deny, "fp", "db");
    s.record(&HistoryEvent::from_verdict(&v, "a:1", false))
        .unwrap();
    drop(s);
    let s = VerdictStore::open_with_history_limit(dir.path(), 10, 5).unwrap();
    let h = s.history(1).unwrap();
    assert_eq!(
        (h[0].digest.as_str(), h[0].decision),
        (digest(99).as_str(), Decision::Deny)
    );
}

#[test]
fn layer_cache_is_bounded_lru() {
    let dir = tempfile::tempdir().unwrap();
    let s = VerdictStore::open(dir.path(), 3).unwrap();
    s.layer_put("a", b"A").unwrap();
    s.layer_put("b", b"B").unwrap();
    s.layer_put("c", b"C").unwrap();
    // Reading "a" makes "b" the least recently used.
    assert_eq!(s.layer_get("a").unwrap().as_deref(), Some(&b"A"[..]));
    s.layer_put("d", b"D").unwrap();
    assert_eq!(s.layer_get("b").unwrap(), None);
    for k in ["a", "c", "d"] {
        assert!(s.layer_get(k).unwrap().is_some(), "{k} evicted");
    }
    assert_eq!(s.stats().unwrap().layer_results, 3);
    // Rewriting an entry does not grow the cache.
    s.layer_put("d", b"D2").unwrap();
    assert_eq!(s.stats().unwrap().layer_results, 3);
    assert_eq!(s.layer_get("d").unwrap().as_deref(), Some(&b"D2"[..]));

    // Many more puts: the bound holds and the LRU index stays consistent after reopen.
    for i in 0..50 {
        s.layer_put(&format!("k{i}"), &[i as u8; 10]).unwrap();
    }
    drop(s);
    let s = VerdictStore::open(dir.path(), 3).unwrap();
    s.layer_put("z", b"Z").unwrap();
    assert_eq!(s.stats().unwrap().layer_results, 3);
    assert!(s.layer_get("k49").unwrap().is_some());
    assert!(s.layer_get("k47").unwrap().is_none());

    let off = tempfile::tempdir().unwrap();
    let s = VerdictStore::open(off.path(), 0).unwrap();
    s.layer_put("a", b"A").unwrap();
    assert_eq!(s.layer_get("a").unwrap(), None);
    assert!(matches!(
        VerdictStore::open(dir.path(), 3),
        Err(StoreError::InUse(_))
    ));
}

#[test]
fn layer_store_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(VerdictStore::open(dir.path(), 10).unwrap());
    let l = LayerStore::new(s.clone());
    assert_eq!(l.get_raw("x"), None);
    l.put_raw("x", b"bytes");
    assert_eq!(l.get_raw("x").as_deref(), Some(&b"bytes"[..]));
    assert_eq!(s.layer_clear().unwrap(), 1);
    assert_eq!(l.get_raw("x"), None);
}

fn corrupt_and_reopen(damage: impl FnOnce(&Path)) -> (tempfile::TempDir, VerdictStore) {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        for i in 0..20 {
            put(&s, &verdict(&digest(i), "a:1", Decision::Allow, "fp", "db"));
        }
    }
    damage(&dir.path().join(FILE_NAME));
    let s = open(dir.path());
    (dir, s)
}

fn assert_rebuilt(dir: &Path, s: &VerdictStore) {
    let aside = s
        .recovered_from_corruption()
        .expect("corruption not detected");
    assert!(aside.exists());
    let name = aside.file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with("verdicts.redb.corrupt-"), "{name}");
    assert_eq!(aside.parent(), Some(dir));
    assert!(s.list(None).unwrap().is_empty());
    // The rebuilt store works and a later open trusts it.
    put(s, &verdict(&digest(1), "a:1", Decision::Deny, "fp", "db"));
    assert_eq!(
        s.stats().unwrap().recovered_from_corruption.as_deref(),
        Some(aside)
    );
}

#[test]
fn garbage_file_is_moved_aside() {
    let (dir, s) = corrupt_and_reopen(|p| {
        let garbage: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(p, garbage).unwrap();
    });
    assert_rebuilt(dir.path(), &s);
}

#[test]
fn truncated_file_is_moved_aside() {
    for keep in [10u64, 600, 4096, 9000] {
        let (dir, s) = corrupt_and_reopen(|p| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(keep).unwrap();
        });
        assert_rebuilt(dir.path(), &s);
    }
}

#[test]
fn zero_length_file_is_moved_aside() {
    let (dir, s) = corrupt_and_reopen(|p| {
        std::fs::write(p, b"").unwrap();
    });
    assert_rebuilt(dir.path(), &s);
}

#[test]
fn flipped_bytes_are_detected() {
    // Overwrite the middle of the file, where the tree pages live: the integrity check
    // must catch it rather than serve altered verdicts.
    let (dir, s) = corrupt_and_reopen(|p| {
        let mut bytes = std::fs::read(p).unwrap();
        let len = bytes.len();
        for b in &mut bytes[len / 4..len / 2] {
            *b ^= 0x5a;
        }
        std::fs::write(p, bytes).unwrap();
    });
    assert_rebuilt(dir.path(), &s);
}

#[test]
fn a_record_that_does_not_decode_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let v = verdict(&digest(1), "a:1", Decision::Allow, "fp", "db");
    {
        let s = open(dir.path());
        put(&s, &v);
        let wtx = s.db.begin_write().unwrap();
        {
            let mut t = wtx.open_table(VERDICTS).unwrap();
            let key = VerdictKey::of(&v).encode().unwrap();
            t.insert(key.as_str(), &b"{not json"[..]).unwrap();
        }
        wtx.commit().unwrap();
    }
    let s = open(dir.path());
    assert_eq!(s.get(&VerdictKey::of(&v)).unwrap(), None);
    assert_eq!(s.latest("a:1").unwrap(), None);
    assert!(s.list(None).unwrap().is_empty());
}

#[test]
fn shared_between_threads() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(open(dir.path()));
    let handles: Vec<_> = (0..4u8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..10u8 {
                    let v = verdict(&digest(t * 16 + i), "a:1", Decision::Allow, "fp", "db");
                    s.put(&VerdictKey::of(&v), &v).unwrap();
                    s.record(&HistoryEvent::from_verdict(&v, "a:1", false))
                        .unwrap();
                    s.layer_put(&format!("{t}-{i}"), b"x").unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let st = s.stats().unwrap();
    assert_eq!(
        (st.images, st.history_events, st.layer_results),
        (40, 40, 40)
    );
}

#[test]
fn verdicts_of_images_gone_from_the_node_are_forgotten_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut old_present = verdict(&digest(1), "a:1", Decision::Allow, "fp", "db");
    old_present.decided_at = "2026-01-01T00:00:00Z".into();
    let mut old_gone = verdict(&digest(2), "b:1", Decision::Deny, "fp", "db");
    old_gone.decided_at = "2026-01-01T00:00:00Z".into();
    let mut new_gone = verdict(&digest(3), "c:1", Decision::Allow, "fp", "db");
    new_gone.decided_at = "2026-11-20T00:00:00Z".into();
    let mut old_platform_present = verdict(&digest(4), "d:1", Decision::Allow, "fp", "db");
    old_platform_present.decided_at = "2026-01-01T00:00:00Z".into();
    old_platform_present.platform_digest = Some(digest(5).parse().unwrap());
    for v in [&old_present, &old_gone, &new_gone, &old_platform_present] {
        put(&s, v);
    }
    let present: std::collections::HashSet<String> = [digest(1), digest(5)].into();
    assert_eq!(
        s.forget_absent(&present, "2026-06-01T00:00:00Z").unwrap(),
        1
    );
    assert!(
        s.latest(&digest(2)).unwrap().is_none(),
        "an old verdict of a gone image stayed"
    );
    assert!(
        s.latest("b:1").unwrap().is_none(),
        "its reference still resolves"
    );
    for kept in [&old_present, &new_gone, &old_platform_present] {
        assert_eq!(s.get(&VerdictKey::of(kept)).unwrap().as_ref(), Some(kept));
    }
    // Nothing present and a cutoff in the future: everything goes.
    assert_eq!(
        s.forget_absent(&Default::default(), "2099-01-01T00:00:00Z")
            .unwrap(),
        3
    );
    assert_eq!(s.stats().unwrap().verdicts, 0);
}
