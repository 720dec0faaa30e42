//! rpm-based images end to end, on package databases made by the real tools: `rpmbuild`
//! builds a package set, `rpm --justdb` installs it into an sqlite database (what
//! Debian's rpm 4.18 writes), and Berkeley DB's own `db5.3_load` writes the same
//! headers as a hash `Packages` file (rpm 4.18 here cannot write BDB). Debian's rpm has
//! no ndb backend either: the same real headers are laid out in ndb's `Packages.db`
//! format by `ndb_packages` below. The databases go into image layers, are scanned, and
//! OSV records for the source package are matched.

use std::path::{Path, PathBuf};
use std::process::Command;

use pullwarden::report::{FileFindingKind, PackageType, ScanReport};
use pullwarden::vulndb::VulnDb;

use crate::support::image::{Compression, Entry, Image, Layer};

fn need(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{tool} is missing: run integration/install-deps.sh (Debian packages rpm, db5.3-util)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One source package, three binaries (one owning a Python dist-info directory), with
/// an epoch, as rpmbuild makes them.
const SPEC: &str = r#"Name: pwtest
Epoch: 2
Version: 1.2.3
Release: 4.el9
Summary: pullwarden rpm fixture
License: MIT
BuildArch: noarch
%description
fixture
%package libs
Summary: fixture libs
License: Apache-2.0
%description libs
libs
%package -n python3-pwtest
Summary: fixture python module
%description -n python3-pwtest
python
%install
mkdir -p %{buildroot}/usr/share/pwtest %{buildroot}/usr/lib/python3.9/site-packages/pwtest-1.0.dist-info
echo hi > %{buildroot}/usr/share/pwtest/hello.txt
echo lib > %{buildroot}/usr/share/pwtest/lib.txt
printf 'Metadata-Version: 2.1\nName: pwtest\nVersion: 1.0\n' > %{buildroot}/usr/lib/python3.9/site-packages/pwtest-1.0.dist-info/METADATA
%files
/usr/share/pwtest/hello.txt
%files libs
/usr/share/pwtest/lib.txt
%files -n python3-pwtest
/usr/lib/python3.9/site-packages/pwtest-1.0.dist-info
"#;

/// Builds the packages and installs them into a fresh sqlite rpm database; returns the
/// database file.
fn real_sqlite_rpmdb(dir: &Path) -> PathBuf {
    need("rpmbuild");
    need("rpm");
    let top = dir.join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    let spec = top.join("SPECS/pwtest.spec");
    std::fs::write(&spec, SPEC).unwrap();
    run(Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--define", "debug_package %{nil}", "-bb"])
        .arg(&spec));
    let rpms: Vec<PathBuf> = std::fs::read_dir(top.join("RPMS/noarch"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(rpms.len(), 3, "{rpms:?}");
    let db = dir.join("rpmdb");
    std::fs::create_dir_all(&db).unwrap();
    let rpm = |args: &[&str]| {
        let mut c = Command::new("rpm");
        c.arg("--dbpath")
            .arg(&db)
            .args(["--define", "_db_backend sqlite"])
            .args(args);
        c
    };
    run(&mut rpm(&["--initdb"]));
    run(rpm(&["-i", "--nodeps", "--justdb", "--noscripts"]).args(&rpms));
    let file = db.join("rpmdb.sqlite");
    assert!(file.exists(), "rpm wrote no rpmdb.sqlite");
    file
}

/// The same headers written by Berkeley DB itself as rpm's hash `Packages` (with rpm's
/// record 0, the next header number), small pages so that headers go to overflow pages;
/// in the byte order of an s390x or ppc64 host when `big_endian`.
fn real_bdb_packages(sqlite: &Path, dir: &Path, big_endian: bool) -> PathBuf {
    need("db5.3_load");
    let conn = rusqlite::Connection::open(sqlite).unwrap();
    let mut stmt = conn
        .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .unwrap();
    let rows: Vec<(u32, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let lorder = if big_endian { 4321 } else { 1234 };
    let mut dump = format!(
        "VERSION=3\nformat=bytevalue\ntype=hash\ndb_pagesize=1024\ndb_lorder={lorder}\nHEADER=END\n"
    );
    let next = rows.iter().map(|r| r.0).max().unwrap_or(0) + 1;
    let mut pair = |k: u32, v: &[u8]| {
        dump.push_str(&format!(
            " {}\n {}\n",
            hex::encode(k.to_le_bytes()),
            hex::encode(v)
        ));
    };
    pair(0, &next.to_le_bytes());
    for (h, blob) in &rows {
        pair(*h, blob);
    }
    dump.push_str("DATA=END\n");
    let dump_file = dir.join(format!("packages-{lorder}.dump"));
    std::fs::write(&dump_file, dump).unwrap();
    let out = dir.join(format!("Packages-{lorder}"));
    run(Command::new("db5.3_load")
        .arg("-f")
        .arg(&dump_file)
        .arg(&out));
    out
}

fn os_release(id: &str, version: &str, pretty: &str) -> Entry {
    Entry::file(
        "etc/os-release",
        format!(
            "NAME=\"{pretty}\"\nID=\"{id}\"\nVERSION_ID=\"{version}\"\nPRETTY_NAME=\"{pretty}\"\n"
        ),
    )
}

fn python_metadata() -> Entry {
    Entry::file(
        "usr/lib/python3.9/site-packages/pwtest-1.0.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: pwtest\nVersion: 1.0\n",
    )
}

use crate::scan::scan;

fn rpms(r: &ScanReport) -> Vec<(String, String, Option<String>, String)> {
    r.packages
        .iter()
        .filter(|p| p.kind == PackageType::Rpm)
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.source_name.clone(),
                p.purl.clone(),
            )
        })
        .collect()
}

const CRITICAL: &str =
    r#"[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]"#;

fn osv(dir: &Path, id: &str, ecosystem: &str, name: &str, fixed: &str) {
    let record = format!(
        r#"{{"schema_version": "1.6.0", "id": "{id}", "modified": "2026-01-01T00:00:00Z",
            "summary": "fixture", "severity": {CRITICAL},
            "affected": [{{"package": {{"ecosystem": "{ecosystem}", "name": "{name}"}},
              "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "0"}}, {{"fixed": "{fixed}"}}]}}]}}]}}"#
    );
    std::fs::write(dir.join(format!("{}.json", id.replace(':', "-"))), record).unwrap();
}

/// Advisories for the fixture's source package in every rpm ecosystem, of which only
/// the ones for the image's release and with a fix above 2:1.2.3-4.el9 may match.
fn vulndb(dir: &Path) -> PathBuf {
    let osv_dir = dir.join("osv");
    std::fs::create_dir_all(&osv_dir).unwrap();
    #[rustfmt::skip]
    let records = [
        ("RLSA-2026:0001", "Rocky Linux:9", "pwtest", "2:1.2.3-5.el9"),
        ("RLSA-2026:0002", "Rocky Linux:8", "pwtest", "2:1.2.3-5.el8"),
        // already fixed: the installed release is the fix; a lower epoch is older
        ("RLSA-2026:0003", "Rocky Linux:9", "pwtest", "2:1.2.3-4.el9"),
        ("RLSA-2026:0004", "Rocky Linux:9", "pwtest", "1:9.9-1.el9"),
        ("ALSA-2026:0005", "AlmaLinux:8", "pwtest", "2:1.2.3-5.el8"),
        ("ALSA-2026:0006", "AlmaLinux:9", "pwtest", "2:1.2.3-5.el9"),
        // Red Hat names binary RPMs; only the main RHEL stream applies
        ("RHSA-2026:0007", "Red Hat:enterprise_linux:9::baseos", "pwtest-libs", "2:1.2.3-4.el9_1"),
        ("RHSA-2026:0008", "Red Hat:rhel_eus:9.2::baseos", "pwtest", "2:1.2.3-4.el9_0.1"),
        // the binary name under a source-name ecosystem does not match
        ("RLSA-2026:0009", "Rocky Linux:9", "pwtest-libs", "2:1.2.3-5.el9"),
        ("SUSE-SU-2026:0010", "openSUSE:Leap 15.5", "pwtest", "2:1.2.3-150500.1.1"),
        ("SUSE-SU-2026:0011", "openSUSE:Leap 15.6", "pwtest", "2:1.2.3-150600.1.1"),
    ];
    for (id, ecosystem, name, fixed) in records {
        osv(&osv_dir, id, ecosystem, name, fixed);
    }
    let path = dir.join("vulndb.redb");
    let mut db = VulnDb::open(&path).unwrap();
    let report = db.import(&[osv_dir]).unwrap();
    assert_eq!(report.added, records.len() as u64, "{report:?}");
    path
}

#[test]
fn real_sqlite_rpmdb_is_scanned_and_matched() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = real_sqlite_rpmdb(dir.path());
    let layer = Layer::from_entries(
        &[
            os_release("rocky", "9.3", "Rocky Linux 9.3 (Blue Onyx)"),
            Entry::file("var/lib/rpm/rpmdb.sqlite", std::fs::read(&sqlite).unwrap()),
            python_metadata(),
        ],
        Compression::Gzip,
    );
    let report = scan(std::slice::from_ref(&layer));
    assert!(report.files.is_empty(), "{:?}", report.files);
    let src = Some("pwtest".to_string());
    let purl = |name: &str| {
        format!(
            "pkg:rpm/rocky/{name}@1.2.3-4.el9?arch=noarch&distro=rocky-9.3&epoch=2&upstream=pwtest-1.2.3-4.el9.src.rpm"
        )
    };
    assert_eq!(
        rpms(&report),
        [
            (
                "pwtest".into(),
                "2:1.2.3-4.el9".into(),
                src.clone(),
                purl("pwtest")
            ),
            (
                "pwtest-libs".into(),
                "2:1.2.3-4.el9".into(),
                src.clone(),
                purl("pwtest-libs")
            ),
            (
                "python3-pwtest".into(),
                "2:1.2.3-4.el9".into(),
                src.clone(),
                purl("python3-pwtest")
            ),
        ]
    );
    let libs = report
        .packages
        .iter()
        .find(|p| p.name == "pwtest-libs")
        .unwrap();
    assert_eq!(libs.licenses, ["Apache-2.0"]);
    assert_eq!(libs.path, "/var/lib/rpm/rpmdb.sqlite");
    assert_eq!(libs.layer, layer.digest);
    // rpm owns the dist-info directory: the Python package is not reported again
    assert!(
        !report
            .packages
            .iter()
            .any(|p| p.kind == PackageType::Python),
        "{:?}",
        report.packages
    );

    // The CLI on an OCI layout, with an imported OSV database.
    let db = vulndb(dir.path());
    let layout = dir.path().join("oci");
    Image::new(vec![layer]).write_oci_layout(&layout, "rocky");
    let out = Command::new(crate::support::bin())
        .args([
            "scan",
            &format!("oci:{}:rocky", layout.display()),
            "--json",
            "--platform",
            "linux/amd64",
            "--db",
        ])
        .arg(&db)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let pkgs = v["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 3, "{pkgs:?}");
    assert!(pkgs.iter().all(|p| p["type"] == "rpm"));
    let mut vulns: Vec<(String, String, String)> = v["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_str().unwrap().to_string(),
                x["package"].as_str().unwrap().to_string(),
                x["fixed_in"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    vulns.sort();
    let want = |pkg: &str| {
        (
            "RLSA-2026:0001".to_string(),
            pkg.to_string(),
            "2:1.2.3-5.el9".to_string(),
        )
    };
    assert_eq!(
        vulns,
        [want("pwtest"), want("pwtest-libs"), want("python3-pwtest")]
    );
    assert_eq!(v["decision"], "deny");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn rhel_and_alma_images_match_their_own_ecosystems() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = std::fs::read(real_sqlite_rpmdb(dir.path())).unwrap();
    let db = VulnDb::open(vulndb(dir.path())).unwrap();
    let ids = |report: &ScanReport| {
        let mut v: Vec<String> = db
            .matches(report.os.as_ref(), &report.packages)
            .unwrap()
            .into_iter()
            .map(|v| format!("{} {}", v.id, v.package))
            .collect();
        v.sort();
        v
    };
    // UBI 9 says ID=rhel; Fedora 36+ keeps the database under /usr/lib/sysimage.
    let rhel = scan(&[Layer::from_entries(
        &[
            os_release("rhel", "9.4", "Red Hat Enterprise Linux 9.4 (Plow)"),
            Entry::file("usr/lib/sysimage/rpm/rpmdb.sqlite", sqlite.clone()),
        ],
        Compression::Zstd,
    )]);
    assert!(
        rpms(&rhel)[0]
            .3
            .starts_with("pkg:rpm/redhat/pwtest@1.2.3-4.el9?")
    );
    assert_eq!(ids(&rhel), ["RHSA-2026:0007 pwtest-libs"]);
    let alma = scan(&[Layer::from_entries(
        &[
            os_release("almalinux", "9.4", "AlmaLinux 9.4 (Seafoam Ocelot)"),
            Entry::file("var/lib/rpm/rpmdb.sqlite", sqlite.clone()),
        ],
        Compression::Gzip,
    )]);
    assert_eq!(
        ids(&alma),
        [
            "ALSA-2026:0006 pwtest",
            "ALSA-2026:0006 pwtest-libs",
            "ALSA-2026:0006 python3-pwtest"
        ]
    );
    // Fedora and Amazon Linux have no OSV ecosystem: inventory, no guessed matches.
    for (id, ver) in [("fedora", "40"), ("amzn", "2023")] {
        let r = scan(&[Layer::from_entries(
            &[
                os_release(id, ver, id),
                Entry::file("var/lib/rpm/rpmdb.sqlite", sqlite.clone()),
            ],
            Compression::Gzip,
        )]);
        assert_eq!(rpms(&r).len(), 3);
        assert!(ids(&r).is_empty(), "{id}");
    }
}

#[test]
fn berkeley_db_packages_written_by_libdb_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = real_sqlite_rpmdb(dir.path());
    let bdb = real_bdb_packages(&sqlite, dir.path(), false);
    let base = |db_path: &str, bytes: Vec<u8>| {
        Layer::from_entries(
            &[
                os_release("rocky", "9.3", "Rocky Linux 9.3 (Blue Onyx)"),
                Entry::file(db_path, bytes),
            ],
            Compression::Gzip,
        )
    };
    let from_sqlite = scan(&[base(
        "var/lib/rpm/rpmdb.sqlite",
        std::fs::read(&sqlite).unwrap(),
    )]);
    let from_bdb = scan(&[base("var/lib/rpm/Packages", std::fs::read(&bdb).unwrap())]);
    assert!(from_bdb.files.is_empty(), "{:?}", from_bdb.files);
    assert_eq!(rpms(&from_bdb), rpms(&from_sqlite));
    assert_eq!(rpms(&from_bdb).len(), 3);
    let bdb_be = real_bdb_packages(&sqlite, dir.path(), true);
    let from_be = scan(&[base(
        "var/lib/rpm/Packages",
        std::fs::read(&bdb_be).unwrap(),
    )]);
    assert!(from_be.files.is_empty(), "{:?}", from_be.files);
    assert_eq!(rpms(&from_be), rpms(&from_sqlite));

    // An upper layer's database replaces the lower one: a yum/dnf install in a
    // later layer rewrites the whole file.
    let upper = Layer::from_entries(
        &[Entry::file(
            "var/lib/rpm/Packages",
            std::fs::read(&bdb).unwrap(),
        )],
        Compression::Gzip,
    );
    let lower = base("var/lib/rpm/Packages", Vec::from(&b"not a database"[..]));
    let r = scan(&[lower, upper]);
    assert_eq!(rpms(&r).len(), 3);
}

/// rpm's ndb `Packages.db` (lib/backend/ndb/rpmpkg.c): a 32-byte header in the first of
/// the 4 KiB slot pages, 16-byte slots, blobs in 16-byte blocks after the slot pages.
fn ndb_packages(sqlite: &Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(sqlite).unwrap();
    let mut stmt = conn
        .prepare("SELECT blob FROM Packages ORDER BY hnum")
        .unwrap();
    let blobs: Vec<Vec<u8>> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = vec![0u8; 4096];
    out[0..4].copy_from_slice(b"RpmP");
    out[12..16].copy_from_slice(&1u32.to_le_bytes());
    for slot in out.chunks_mut(16).skip(2) {
        slot[0..4].copy_from_slice(b"Slot");
    }
    for (n, blob) in blobs.iter().enumerate() {
        let pkg = n as u32 + 1;
        let blocks = (16 + blob.len() + 12).div_ceil(16);
        let slot = (2 + n) * 16;
        let blkoff = (out.len() / 16) as u32;
        out[slot + 4..slot + 8].copy_from_slice(&pkg.to_le_bytes());
        out[slot + 8..slot + 12].copy_from_slice(&blkoff.to_le_bytes());
        out[slot + 12..slot + 16].copy_from_slice(&(blocks as u32).to_le_bytes());
        let mut area = vec![0u8; blocks * 16];
        area[0..4].copy_from_slice(b"BlbS");
        area[4..8].copy_from_slice(&pkg.to_le_bytes());
        area[12..16].copy_from_slice(&(blob.len() as u32).to_le_bytes());
        area[16..16 + blob.len()].copy_from_slice(blob);
        let tail = area.len() - 4;
        area[tail..].copy_from_slice(b"BlbE");
        out.extend_from_slice(&area);
    }
    out
}

#[test]
fn opensuse_ndb_database_is_scanned_and_matched() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = real_sqlite_rpmdb(dir.path());
    let db = VulnDb::open(vulndb(dir.path())).unwrap();
    let report = scan(&[Layer::from_entries(
        &[
            Entry::file(
                "usr/lib/os-release",
                "NAME=\"openSUSE Leap\"\nVERSION=\"15.5\"\nID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\nVERSION_ID=\"15.5\"\nPRETTY_NAME=\"openSUSE Leap 15.5\"\n",
            ),
            Entry::file("usr/lib/sysimage/rpm/Packages.db", ndb_packages(&sqlite)),
            python_metadata(),
        ],
        Compression::Gzip,
    )]);
    assert!(report.files.is_empty(), "{:?}", report.files);
    // Syft's namespace for every openSUSE (`opensuse`), the source rpm as `upstream`.
    let purls: Vec<String> = rpms(&report).into_iter().map(|p| p.3).collect();
    assert_eq!(
        purls,
        [
            "pkg:rpm/opensuse/pwtest@1.2.3-4.el9?arch=noarch&distro=opensuse-leap-15.5&epoch=2&upstream=pwtest-1.2.3-4.el9.src.rpm",
            "pkg:rpm/opensuse/pwtest-libs@1.2.3-4.el9?arch=noarch&distro=opensuse-leap-15.5&epoch=2&upstream=pwtest-1.2.3-4.el9.src.rpm",
            "pkg:rpm/opensuse/python3-pwtest@1.2.3-4.el9?arch=noarch&distro=opensuse-leap-15.5&epoch=2&upstream=pwtest-1.2.3-4.el9.src.rpm",
        ]
    );
    assert!(
        !report
            .packages
            .iter()
            .any(|p| p.kind == PackageType::Python)
    );
    let mut found: Vec<String> = db
        .matches(report.os.as_ref(), &report.packages)
        .unwrap()
        .into_iter()
        .map(|v| format!("{} {} {}", v.id, v.package, v.ecosystem))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "SUSE-SU-2026:0010 pwtest openSUSE:Leap 15.5",
            "SUSE-SU-2026:0010 pwtest-libs openSUSE:Leap 15.5",
            "SUSE-SU-2026:0010 python3-pwtest openSUSE:Leap 15.5",
        ]
    );
}

#[test]
fn broken_and_hostile_rpm_databases_are_findings() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_path = real_sqlite_rpmdb(dir.path());
    let sqlite = std::fs::read(&sqlite_path).unwrap();
    let bdb = std::fs::read(real_bdb_packages(&sqlite_path, dir.path(), false)).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "var/lib/rpm/rpmdb.sqlite",
            sqlite[..sqlite.len() / 2].to_vec(),
        ),
        (
            "var/lib/rpm/rpmdb.sqlite",
            b"SQLite format 3\0garbage".to_vec(),
        ),
        ("var/lib/rpm/Packages", bdb[..bdb.len() - 1024].to_vec()),
        ("var/lib/rpm/Packages", vec![0xff; 8192]),
        ("var/lib/rpm/Packages.db", {
            let mut b = ndb_packages(&sqlite_path);
            // the first slot's blob now starts inside the slot pages
            b[40..44].copy_from_slice(&1u32.to_le_bytes());
            b
        }),
        ("usr/lib/sysimage/rpm/Packages", {
            // every overflow page pointing at page 1: a loop
            let mut b = bdb.clone();
            for page in b.chunks_mut(1024).skip(1) {
                if page[25] == 7 {
                    page[16..20].copy_from_slice(&1u32.to_le_bytes());
                }
            }
            b
        }),
    ];
    for (path, bytes) in cases {
        let r = scan(&[Layer::from_entries(
            &[
                os_release("rocky", "9.3", "Rocky Linux 9.3"),
                Entry::file(path, bytes),
            ],
            Compression::Gzip,
        )]);
        let f: Vec<_> = r
            .files
            .iter()
            .filter(|f| f.kind == FileFindingKind::Malformed && f.path == format!("/{path}"))
            .collect();
        assert_eq!(f.len(), 1, "{path}: {:?}", r.files);
        assert!(f[0].detail.starts_with("rpm database"), "{}", f[0].detail);
    }
}
