//! The offline vulnerability database end to end: import crafted OSV records (directory
//! and zip), match inventories across ecosystems, re-import, withdrawal, hostile input,
//! corrupt database files. No services and no network.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pullwarden::report::{Distro, Package, PackageType, Severity, Vulnerability};
use pullwarden::vulndb::{EMPTY_VERSION, VulnDb, VulnDbError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv/basic")
}

fn pkg(kind: PackageType, name: &str, version: &str) -> Package {
    Package {
        name: name.into(),
        version: version.into(),
        kind,
        purl: format!("pkg:generic/{name}@{version}"),
        layer: "sha256:1111".into(),
        path: "/var/lib/dpkg/status".into(),
        source_name: None,
        source_version: None,
        arch: None,
        licenses: vec![],
        depends: vec![],
        provides: vec![],
    }
}

fn with_source(mut p: Package, name: &str, version: Option<&str>) -> Package {
    p.source_name = Some(name.into());
    p.source_version = version.map(String::from);
    p
}

fn distro(id: &str, version: &str) -> Distro {
    Distro {
        id: id.into(),
        version_id: Some(version.into()),
        ..Default::default()
    }
}

fn ids(vs: &[Vulnerability]) -> Vec<String> {
    let mut v: Vec<String> = vs
        .iter()
        .map(|v| format!("{}:{}", v.id, v.package))
        .collect();
    v.sort();
    v
}

fn imported(dir: &Path) -> VulnDb {
    let mut db = VulnDb::open(dir.join("vulndb.redb")).unwrap();
    let report = db.import(&[fixtures()]).unwrap();
    assert_eq!(report.skipped, 1, "{report:?}");
    assert_eq!(report.skipped_by_reason.get("bad-json"), Some(&1));
    assert_eq!(report.withdrawn_ignored, 1);
    assert_eq!(report.added, 12, "{report:?}");
    assert_eq!(report.unsupported_affected, 1);
    db
}

#[test]
fn missing_database_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let db = VulnDb::open(dir.path().join("nope.redb")).unwrap();
    assert_eq!(db.version(), EMPTY_VERSION);
    let st = db.status().unwrap();
    assert!(!st.exists);
    assert_eq!(st.records, 0);
    let found = db
        .matches(
            Some(&distro("debian", "12")),
            &[pkg(PackageType::Deb, "openssl", "1")],
        )
        .unwrap();
    assert!(found.is_empty());
}

#[test]
fn debian_matches_by_source_package_and_release() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported(dir.path());
    let deb12 = distro("debian", "12");
    let inventory = vec![
        // binary package of source openssl: matched by source name and version
        with_source(
            pkg(PackageType::Deb, "libssl3", "3.0.11-1~deb12u1"),
            "openssl",
            None,
        ),
        // binNMU: binary version differs, the source version decides
        with_source(
            pkg(PackageType::Deb, "openssl", "3.0.13-1~deb12u1+b1"),
            "openssl",
            Some("3.0.11-1~deb12u2"),
        ),
        // fixed
        with_source(
            pkg(PackageType::Deb, "libssl-dev", "3.0.13-1~deb12u1"),
            "openssl",
            None,
        ),
        // zlib advisory is for Debian 11 only
        pkg(PackageType::Deb, "zlib", "1:1.2.13.dfsg-1"),
    ];
    let found = db.matches(Some(&deb12), &inventory).unwrap();
    assert_eq!(
        ids(&found),
        vec!["DSA-5678-1:libssl3", "DSA-5678-1:openssl"]
    );
    let v = found.iter().find(|v| v.package == "libssl3").unwrap();
    assert_eq!(v.fixed_in.as_deref(), Some("3.0.13-1~deb12u1"));
    assert_eq!(v.ecosystem, "Debian:12");
    assert_eq!(v.aliases, vec!["CVE-2024-1234"]);
    // the DSA has no severity; the upstream CVE record's vector gives it (urgency ignored)
    assert_eq!((v.severity, v.score), (Severity::Critical, Some(9.8)));
    assert_eq!(v.purl, "pkg:generic/libssl3@3.0.11-1~deb12u1");
    assert_eq!(v.layer, "sha256:1111");
    assert_eq!(v.summary.as_deref(), Some("openssl security update"));

    // the same packages on Debian 11: the 11 fix applies, zlib matches
    let found = db
        .matches(
            Some(&distro("debian", "11")),
            &[
                with_source(
                    pkg(PackageType::Deb, "libssl1.1", "1.1.1n-0+deb11u5"),
                    "openssl",
                    None,
                ),
                pkg(PackageType::Deb, "zlib1g", "1:1.2.11.dfsg-2+deb11u2").clone(),
                with_source(
                    pkg(PackageType::Deb, "zlib1g", "1:1.2.11.dfsg-2+deb11u2"),
                    "zlib",
                    None,
                ),
            ],
        )
        .unwrap();
    assert_eq!(
        ids(&found),
        vec!["DLA-1111-1:zlib1g", "DSA-5678-1:libssl1.1"]
    );
    let v = found.iter().find(|v| v.id == "DSA-5678-1").unwrap();
    assert_eq!(v.fixed_in.as_deref(), Some("1.1.1w-0+deb11u1"));
    // no distro → distro packages are not guessed at
    assert!(db.matches(None, &inventory).unwrap().is_empty());
}

#[test]
fn ubuntu_and_alpine_releases() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported(dir.path());
    let curl = pkg(PackageType::Deb, "curl", "7.81.0-1ubuntu1.15");
    let found = db
        .matches(
            Some(&distro("ubuntu", "22.04")),
            std::slice::from_ref(&curl),
        )
        .unwrap();
    assert_eq!(ids(&found), vec!["USN-6000-1:curl"]);
    // the LTS stream's fix, not the Pro stream's
    assert_eq!(found[0].fixed_in.as_deref(), Some("7.81.0-1ubuntu1.16"));
    assert_eq!(found[0].severity, Severity::Medium);
    assert!(
        db.matches(Some(&distro("ubuntu", "20.04")), &[curl])
            .unwrap()
            .is_empty()
    );
    let fixed = pkg(PackageType::Deb, "curl", "7.81.0-1ubuntu1.16");
    assert!(
        db.matches(Some(&distro("ubuntu", "22.04")), &[fixed])
            .unwrap()
            .is_empty()
    );

    let libcrypto = with_source(
        pkg(PackageType::Apk, "libcrypto3", "3.3.2-r0"),
        "openssl",
        None,
    );
    let found = db
        .matches(
            Some(&distro("alpine", "3.20.3")),
            std::slice::from_ref(&libcrypto),
        )
        .unwrap();
    assert_eq!(ids(&found), vec!["ALPINE-CVE-2024-2222:libcrypto3"]);
    assert_eq!(found[0].fixed_in.as_deref(), Some("3.3.2-r1"));
    // severity from the GHSA record that aliases the same CVE (CVSS v4 8.7)
    assert_eq!(
        (found[0].severity, found[0].score),
        (Severity::High, Some(8.7))
    );
    // on 3.19 the 3.19 fix (3.1.7-r1) is below the installed version
    assert!(
        db.matches(Some(&distro("alpine", "3.19.1")), &[libcrypto])
            .unwrap()
            .is_empty()
    );
    let fixed = with_source(
        pkg(PackageType::Apk, "libssl3", "3.3.2-r1"),
        "openssl",
        None,
    );
    assert!(
        db.matches(Some(&distro("alpine", "3.20.0")), &[fixed])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn language_ecosystems() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported(dir.path());
    // (installed package, expected (advisory id, fixed_in))
    type Case<'a> = (Package, Option<(&'a str, Option<&'a str>)>);
    let cases: Vec<Case> = vec![
        (
            pkg(PackageType::Python, "django", "4.2.10"),
            Some(("GHSA-py11-py22-py33", Some("4.2.11"))),
        ),
        (
            pkg(PackageType::Python, "DJANGO", "4.2rc1"),
            Some(("GHSA-py11-py22-py33", Some("4.2.11"))),
        ),
        (pkg(PackageType::Python, "Django", "4.2.11"), None),
        (pkg(PackageType::Python, "Django", "4.1"), None),
        (pkg(PackageType::Python, "Django", "4.2.dev1"), None),
        (
            pkg(PackageType::Python, "Zope_Interface", "5.0"),
            Some(("PYSEC-2020-1", None)),
        ),
        (pkg(PackageType::Python, "zope-interface", "5.0.2"), None),
        (
            pkg(PackageType::Npm, "lodash", "4.17.20"),
            Some(("GHSA-npm1-npm2-npm3", Some("4.17.21"))),
        ),
        (
            pkg(PackageType::Npm, "lodash", "4.17.21-rc.1"),
            Some(("GHSA-npm1-npm2-npm3", Some("4.17.21"))),
        ),
        (pkg(PackageType::Npm, "lodash", "4.17.21"), None),
        (
            pkg(
                PackageType::GoModule,
                "golang.org/x/net",
                "v0.0.0-20230101000000-abcdefabcdef",
            ),
            Some(("GO-2023-0001", Some("0.17.0"))),
        ),
        (
            pkg(PackageType::GoModule, "golang.org/x/net", "v0.17.0"),
            None,
        ),
        (
            pkg(
                PackageType::Go,
                "golang.org/x/net",
                "v0.17.1-0.20231101000000-abcdefabcdef",
            ),
            None,
        ),
        (
            pkg(
                PackageType::Java,
                "org.apache.logging.log4j:log4j-core",
                "2.14.1",
            ),
            Some(("GHSA-jfh8-c2jp-5v3q", Some("2.15.0"))),
        ),
        (
            pkg(
                PackageType::Java,
                "org.apache.logging.log4j:log4j-core",
                "2.0-beta8",
            ),
            None,
        ),
        (
            pkg(
                PackageType::Java,
                "org.apache.logging.log4j:log4j-core",
                "2.0-rc1",
            ),
            Some(("GHSA-jfh8-c2jp-5v3q", Some("2.15.0"))),
        ),
        (
            pkg(
                PackageType::Java,
                "org.apache.logging.log4j:log4j-core",
                "2.15.0",
            ),
            None,
        ),
        (
            pkg(PackageType::Rust, "smallvec", "1.6.0"),
            Some(("RUSTSEC-2024-0001", None)),
        ),
        (pkg(PackageType::Rust, "smallvec", "1.6.1"), None),
        (pkg(PackageType::Rust, "smallvec", "0.5.9"), None),
    ];
    for (p, want) in cases {
        let found = db.matches(None, std::slice::from_ref(&p)).unwrap();
        let got = found
            .first()
            .map(|v| (v.id.as_str(), v.fixed_in.as_deref()));
        assert_eq!(got, want, "{} {}", p.name, p.version);
        assert!(found.len() <= 1, "{found:?}");
    }
    // severities: v3 vector wins over the text rating; text when no vector
    let sev = |p: Package| db.matches(None, &[p]).unwrap()[0].severity;
    assert_eq!(
        sev(pkg(PackageType::Python, "django", "4.2.10")),
        Severity::Medium
    );
    assert_eq!(
        sev(pkg(PackageType::Python, "zope.interface", "5.0.0")),
        Severity::Medium
    );
    assert_eq!(
        sev(pkg(PackageType::Npm, "lodash", "1.0.0")),
        Severity::Critical
    );
    assert_eq!(
        sev(pkg(
            PackageType::Java,
            "org.apache.logging.log4j:log4j-core",
            "2.14.1"
        )),
        Severity::Critical
    );
    assert_eq!(
        sev(pkg(PackageType::Rust, "smallvec", "1.0.0")),
        Severity::Unknown
    );
}

fn record(id: &str, modified: &str, fixed: &str, withdrawn: bool) -> String {
    let w = if withdrawn {
        format!(r#","withdrawn":"{modified}""#)
    } else {
        String::new()
    };
    format!(
        r#"{{"id":"{id}","modified":"{modified}"{w},"affected":[{{"package":{{"ecosystem":"npm","name":"left-pad"}},"ranges":[{{"type":"SEMVER","events":[{{"introduced":"0"}},{{"fixed":"{fixed}"}}]}}]}}]}}"#
    )
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn reimport_replaces_by_modified_and_version_tracks_content() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = VulnDb::open(dir.path().join("db/vulndb.redb")).unwrap();
    let src = dir.path().join("src");
    let left_pad = |v: &str| pkg(PackageType::Npm, "left-pad", v);

    write(
        &src,
        "a.json",
        &record("GHSA-lp", "2024-01-01T00:00:00Z", "1.2.0", false),
    );
    let r = db.import(std::slice::from_ref(&src)).unwrap();
    assert_eq!(r.added, 1);
    let v1 = db.version();
    assert!(v1.starts_with("osv-"), "{v1}");
    assert_eq!(r.version_before, EMPTY_VERSION);
    assert_eq!(r.version_after, v1);
    assert_eq!(db.matches(None, &[left_pad("1.2.5")]).unwrap().len(), 0);

    // same content again: unchanged, same version
    let r = db.import(std::slice::from_ref(&src)).unwrap();
    assert_eq!((r.unchanged, r.added, r.updated), (1, 0, 0));
    assert_eq!(db.version(), v1);

    // newer record moves the fix: replaced, version changes
    write(
        &src,
        "a.json",
        &record("GHSA-lp", "2024-02-01T00:00:00Z", "1.3.0", false),
    );
    let r = db.import(std::slice::from_ref(&src)).unwrap();
    assert_eq!(r.updated, 1);
    let v2 = db.version();
    assert_ne!(v2, v1);
    let found = db.matches(None, &[left_pad("1.2.5")]).unwrap();
    assert_eq!(found[0].fixed_in.as_deref(), Some("1.3.0"));
    assert_eq!(db.status().unwrap().records, 1);
    assert_eq!(db.status().unwrap().ecosystems.get("npm"), Some(&1));

    // an older copy is stale and ignored
    write(
        &src,
        "a.json",
        &record("GHSA-lp", "2023-12-01T00:00:00Z", "1.1.0", false),
    );
    let r = db.import(std::slice::from_ref(&src)).unwrap();
    assert_eq!(r.stale, 1);
    assert_eq!(db.version(), v2);

    // withdrawal drops it; the database is empty again
    write(
        &src,
        "a.json",
        &record("GHSA-lp", "2024-03-01T00:00:00Z", "1.3.0", true),
    );
    let r = db.import(std::slice::from_ref(&src)).unwrap();
    assert_eq!(r.withdrawn_removed, 1);
    assert!(db.matches(None, &[left_pad("1.2.5")]).unwrap().is_empty());
    assert_eq!(db.version(), EMPTY_VERSION);
    let st = db.status().unwrap();
    assert_eq!(st.records, 0);
    assert!(st.ecosystems.is_empty());

    // reopening reads the same version from disk
    drop(db);
    let db = VulnDb::open(dir.path().join("db/vulndb.redb")).unwrap();
    assert_eq!(db.version(), EMPTY_VERSION);
}

#[test]
fn version_is_independent_of_import_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir.path().join("a"),
        "a.json",
        &record("GHSA-a", "2024-01-01T00:00:00Z", "1.0.0", false),
    );
    let b = write(
        &dir.path().join("b"),
        "b.json",
        &record("GHSA-b", "2024-01-01T00:00:00Z", "2.0.0", false),
    );
    let mut one = VulnDb::open(dir.path().join("one.redb")).unwrap();
    one.import(&[a.clone(), b.clone()]).unwrap();
    let mut two = VulnDb::open(dir.path().join("two.redb")).unwrap();
    two.import(std::slice::from_ref(&b)).unwrap();
    two.import(std::slice::from_ref(&a)).unwrap();
    assert_eq!(one.version(), two.version());
    let mut three = VulnDb::open(dir.path().join("three.redb")).unwrap();
    three.import(std::slice::from_ref(&a)).unwrap();
    assert_ne!(one.version(), three.version());
}

#[test]
fn zip_import_with_hostile_entries() {
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("all.zip");
    {
        let f = std::fs::File::create(&zip_path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("GHSA-ok.json", opts).unwrap();
        z.write_all(record("GHSA-ok", "2024-01-01T00:00:00Z", "1.0.0", false).as_bytes())
            .unwrap();
        z.start_file("bad.json", opts).unwrap();
        z.write_all(b"\xff\xfe not json").unwrap();
        z.start_file("notes.txt", opts).unwrap();
        z.write_all(b"ignored").unwrap();
        // 17 MiB of spaces: compresses to almost nothing, must be refused by size
        z.start_file("bomb.json", opts).unwrap();
        let chunk = vec![b' '; 1 << 20];
        for _ in 0..17 {
            z.write_all(&chunk).unwrap();
        }
        z.start_file("absurd.json", opts).unwrap();
        z.write_all(
            record(
                "GHSA-absurd",
                "2024-01-01T00:00:00Z",
                &"1".repeat(5000),
                false,
            )
            .as_bytes(),
        )
        .unwrap();
        z.start_file("deep.json", opts).unwrap();
        z.write_all(
            format!(
                r#"{{"id":"X","modified":"2024-01-01T00:00:00Z","database_specific":{}{}}}"#,
                "[".repeat(50_000),
                "]".repeat(50_000)
            )
            .as_bytes(),
        )
        .unwrap();
        z.start_file("events.json", opts).unwrap();
        z.write_all(br#"{"id":"GHSA-ev","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0","fixed":"1"}]}]}]}"#).unwrap();
        z.start_file("nul.json", opts).unwrap();
        z.write_all(b"{\"id\":\"A\\u0000B\",\"modified\":\"2024-01-01T00:00:00Z\"}")
            .unwrap();
        z.finish().unwrap();
    }
    let garbage_zip = write(
        dir.path(),
        "junk.zip",
        "PK\x03\x04 this is not really a zip",
    );
    let missing = dir.path().join("missing.zip");
    let mut db = VulnDb::open(dir.path().join("vulndb.redb")).unwrap();
    let r = db.import(&[zip_path, garbage_zip, missing]).unwrap();
    assert_eq!(r.added, 1, "{r:#?}");
    assert_eq!(r.skipped, 6, "{r:#?}");
    for reason in [
        "bad-json",
        "too-large",
        "absurd-version",
        "bad-event",
        "bad-id",
    ] {
        assert!(r.skipped_by_reason.contains_key(reason), "{reason}: {r:#?}");
    }
    assert_eq!(r.failed_sources.len(), 2, "{r:#?}");
    assert_eq!(
        db.matches(None, &[pkg(PackageType::Npm, "left-pad", "0.1.0")])
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn corrupt_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // garbage
    let p = write(dir.path(), "garbage.redb", &"x".repeat(10_000));
    assert!(
        matches!(VulnDb::open(&p), Err(VulnDbError::Corrupt { .. })),
        "{:?}",
        VulnDb::open(&p)
    );
    // empty file
    let p = write(dir.path(), "empty.redb", "");
    let e = VulnDb::open(&p).unwrap_err();
    assert!(
        matches!(e, VulnDbError::Corrupt { .. } | VulnDbError::Schema { .. }),
        "{e:?}"
    );
    // a valid redb file that is not ours
    let p = dir.path().join("foreign.redb");
    {
        let db = redb::Database::create(&p).unwrap();
        let t = db.begin_write().unwrap();
        {
            let mut tab = t
                .open_table(redb::TableDefinition::<&str, &str>::new("other"))
                .unwrap();
            tab.insert("k", "v").unwrap();
        }
        t.commit().unwrap();
    }
    assert!(matches!(VulnDb::open(&p), Err(VulnDbError::Schema { .. })));
    let mut db = VulnDb::open(dir.path().join("other.redb")).unwrap();
    db.import(&[fixtures()]).unwrap();
    drop(db);
    // a truncated copy of a real database
    let real = dir.path().join("other.redb");
    let bytes = std::fs::read(&real).unwrap();
    let cut = write(dir.path(), "cut.redb", "");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = VulnDb::open(&cut).err();
    assert!(
        matches!(
            e,
            Some(VulnDbError::Corrupt { .. } | VulnDbError::Storage { .. })
        ),
        "{e:?}"
    );
    // the intact one still opens and has its records
    assert!(VulnDb::open(&real).unwrap().status().unwrap().records > 0);
}

#[test]
fn shared_between_threads() {
    let dir = tempfile::tempdir().unwrap();
    drop(imported(dir.path()));
    let db = Arc::new(VulnDb::open(dir.path().join("vulndb.redb")).unwrap());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                let p = [pkg(PackageType::Npm, "lodash", "4.17.20")];
                (0..50)
                    .map(|_| db.matches(None, &p).unwrap().len())
                    .sum::<usize>()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 50);
    }
    let st = db.status().unwrap();
    assert_eq!(st.records, 12);
    assert_eq!(st.ecosystems.get("Debian:12"), Some(&1));
    assert_eq!(st.ecosystems.get("Debian:11"), Some(&2));
    assert_eq!(
        st.newest_modified.as_deref(),
        Some("2024-03-01T00:00:00.000000Z")
    );
}

#[test]
fn import_while_a_reader_holds_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vulndb.redb");
    let src = dir.path().join("src");
    write(
        &src,
        "a.json",
        &record("GHSA-lp", "2024-01-01T00:00:00Z", "1.2.0", false),
    );
    VulnDb::open(&path)
        .unwrap()
        .import(std::slice::from_ref(&src))
        .unwrap();

    // the daemon's instance stays open across the import
    let daemon = VulnDb::open(&path).unwrap();
    let old_version = daemon.version();
    assert!(!daemon.is_replaced());
    // a crashed earlier import left its working copy behind: it must not matter
    write(dir.path(), "vulndb.redb.importing", "half-written junk");

    write(
        &src,
        "a.json",
        &record("GHSA-lp", "2024-02-01T00:00:00Z", "1.3.0", false),
    );
    let mut cli = VulnDb::open(&path).unwrap();
    let r = cli.import(std::slice::from_ref(&src)).unwrap();
    assert_eq!(r.updated, 1);
    assert_eq!(r.version_before, old_version);
    assert!(!dir.path().join("vulndb.redb.importing").exists());

    // the old instance still answers from its snapshot, and knows it is stale
    let p = [pkg(PackageType::Npm, "left-pad", "1.2.5")];
    assert!(daemon.matches(None, &p).unwrap().is_empty());
    assert_eq!(daemon.version(), old_version);
    assert!(daemon.is_replaced());
    let fresh = VulnDb::open(&path).unwrap();
    assert_eq!(fresh.version(), cli.version());
    assert_ne!(fresh.version(), old_version);
    assert_eq!(
        fresh.matches(None, &p).unwrap()[0].fixed_in.as_deref(),
        Some("1.3.0")
    );
}

#[test]
fn import_into_a_corrupt_database_is_refused_and_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "junk", &"z".repeat(4096));
    // a handle opened on a missing file; by import time a corrupt file sits there
    let mut late = VulnDb::open(dir.path().join("late.redb")).unwrap();
    std::fs::copy(&path, dir.path().join("late.redb")).unwrap();
    let e = late.import(&[fixtures()]).unwrap_err();
    assert!(matches!(e, VulnDbError::Corrupt { .. }), "{e:?}");
    assert_eq!(
        std::fs::read(dir.path().join("late.redb")).unwrap(),
        "z".repeat(4096).into_bytes()
    );
}

#[test]
fn directory_walk_ignores_symlinks_and_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(
        &src.join("nested/deeper"),
        "a.json",
        &record("GHSA-deep", "2024-01-01T00:00:00Z", "1.0.0", false),
    );
    write(&src, "notes.md", "not a record");
    // a symlink loop and a link to a record outside the tree: neither is followed
    std::os::unix::fs::symlink(&src, src.join("loop")).unwrap();
    let outside = write(
        dir.path(),
        "outside.json",
        &record("GHSA-out", "2024-01-01T00:00:00Z", "1.0.0", false),
    );
    std::os::unix::fs::symlink(&outside, src.join("link.json")).unwrap();
    let mut db = VulnDb::open(dir.path().join("vulndb.redb")).unwrap();
    let r = db.import(std::slice::from_ref(&src)).unwrap();
    assert_eq!((r.records_read, r.added, r.skipped), (1, 1, 0), "{r:#?}");
}

#[test]
fn ubuntu_pro_records_leave_the_release_affected_and_name_the_esm_fix() {
    let dir = tempfile::tempdir().unwrap();
    let osv = dir.path().join("osv");
    let entry = |eco: &str, fixed: Option<&str>| {
        let events = match fixed {
            Some(f) => format!(r#"[{{"introduced":"0"}},{{"fixed":"{f}"}}]"#),
            None => r#"[{"introduced":"0"}]"#.to_string(),
        };
        format!(
            r#"{{"package":{{"ecosystem":"{eco}","name":"imagemagick"}},"ranges":[{{"type":"ECOSYSTEM","events":{events}}}]}}"#
        )
    };
    let record = |id: &str, entries: &[String]| {
        format!(
            r#"{{"id":"{id}","modified":"2025-01-01T00:00:00Z","severity":[{{"type":"Ubuntu","score":"high"}}],"affected":[{}]}}"#,
            entries.join(",")
        )
    };
    // Fixed only through Ubuntu Pro (a universe package): no archive entry at all.
    write(
        &osv,
        "UBUNTU-CVE-2025-1.json",
        &record(
            "UBUNTU-CVE-2025-1",
            &[entry(
                "Ubuntu:Pro:22.04:LTS",
                Some("8:6.9.11.60+dfsg-1.3ubuntu0.22.04.5+esm1"),
            )],
        ),
    );
    // The archive leaves it unfixed; Pro has the fix.
    write(
        &osv,
        "UBUNTU-CVE-2025-2.json",
        &record(
            "UBUNTU-CVE-2025-2",
            &[
                entry("Ubuntu:22.04:LTS", None),
                entry(
                    "Ubuntu:Pro:22.04:LTS",
                    Some("8:6.9.11.60+dfsg-1.3ubuntu0.22.04.5+esm2"),
                ),
            ],
        ),
    );
    // FIPS streams are other products.
    write(
        &osv,
        "UBUNTU-CVE-2025-3.json",
        &record(
            "UBUNTU-CVE-2025-3",
            &[entry("Ubuntu:Pro:FIPS:22.04:LTS", Some("9:0"))],
        ),
    );
    let mut db = VulnDb::open(dir.path().join("vulndb.redb")).unwrap();
    db.import(&[osv]).unwrap();
    let installed = pkg(
        PackageType::Deb,
        "imagemagick",
        "8:6.9.11.60+dfsg-1.3ubuntu0.22.04.5",
    );
    let found = db
        .matches(
            Some(&distro("ubuntu", "22.04")),
            std::slice::from_ref(&installed),
        )
        .unwrap();
    assert_eq!(
        ids(&found),
        [
            "UBUNTU-CVE-2025-1:imagemagick",
            "UBUNTU-CVE-2025-2:imagemagick"
        ]
    );
    for v in &found {
        assert_eq!(v.fix_channel.as_deref(), Some("ubuntu-pro"), "{v:?}");
        assert!(
            v.fixed_in.as_deref().unwrap().ends_with("+esm1")
                || v.fixed_in.as_deref().unwrap().ends_with("+esm2")
        );
        assert_eq!(v.severity, Severity::High);
    }
    assert!(
        pullwarden::policy::vulns::describe(&found[0]).contains("(Ubuntu Pro/ESM only)"),
        "{}",
        pullwarden::policy::vulns::describe(&found[0])
    );
    // Another release is not matched by 22.04's Pro stream; the ESM version itself is fixed.
    assert!(
        db.matches(
            Some(&distro("ubuntu", "20.04")),
            std::slice::from_ref(&installed)
        )
        .unwrap()
        .is_empty()
    );
    let esm = pkg(
        PackageType::Deb,
        "imagemagick",
        "8:6.9.11.60+dfsg-1.3ubuntu0.22.04.5+esm2",
    );
    assert!(
        db.matches(Some(&distro("ubuntu", "22.04")), &[esm])
            .unwrap()
            .is_empty()
    );
}

/// A pass over many inventories (re-judging, `policy test`) matches through one
/// [`pullwarden::vulndb::Matcher`] shared by its threads: what it finds for each
/// inventory, in any order and from any thread, is what a single match finds.
#[test]
fn one_matcher_shared_by_threads_finds_what_a_single_match_finds() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported(dir.path());
    let deb12 = distro("debian", "12");
    let inventories: Vec<(Option<Distro>, Vec<Package>)> = vec![
        (
            Some(deb12.clone()),
            vec![
                with_source(
                    pkg(PackageType::Deb, "libssl3", "3.0.11-1~deb12u1"),
                    "openssl",
                    None,
                ),
                pkg(PackageType::Npm, "lodash", "4.17.20"),
                // The same package twice (two paths): one finding per advisory.
                pkg(PackageType::Npm, "lodash", "4.17.20"),
            ],
        ),
        (
            Some(deb12.clone()),
            vec![
                with_source(
                    pkg(PackageType::Deb, "libssl3", "3.0.13-1~deb12u1"),
                    "openssl",
                    None,
                ),
                pkg(PackageType::Npm, "lodash", "4.17.21"),
                pkg(PackageType::Python, "django", "4.2.10"),
            ],
        ),
        (
            Some(deb12),
            vec![
                with_source(
                    pkg(PackageType::Deb, "openssl", "3.0.13-1~deb12u1+b1"),
                    "openssl",
                    Some("3.0.11-1~deb12u2"),
                ),
                pkg(PackageType::Python, "Django", "4.1"),
                pkg(PackageType::GoModule, "golang.org/x/net", "v0.17.0"),
            ],
        ),
    ];
    let single: Vec<Vec<Vulnerability>> = inventories
        .iter()
        .map(|(os, p)| db.matches(os.as_ref(), p).unwrap())
        .collect();
    assert!(
        single.iter().filter(|f| !f.is_empty()).count() >= 2,
        "{single:?}"
    );
    assert_ne!(
        ids(&single[0]),
        ids(&single[1]),
        "the version decides, not the name"
    );
    let lodash = single[0].iter().filter(|v| v.package == "lodash").count();
    assert_eq!(lodash, 1, "{:?}", single[0]);
    let matcher = db.matcher().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for ((os, p), want) in inventories.iter().zip(&single).rev() {
                    assert_eq!(&matcher.matches(os.as_ref(), p).unwrap(), want);
                }
            });
        }
    });
}
