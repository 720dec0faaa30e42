//! The layer scanner end to end: images built with `support::image` (and raw tar
//! bytes for hostile cases), scanned through the public API and the CLI.

use pullwarden::config::ScanLimits;
use pullwarden::digest::Digest;
use pullwarden::report::{FileFindingKind, PackageType, ScanReport};
use pullwarden::scan::{
    ContainerdContent, Denylist, LayerCache, LayerRef, MemoryBlobs, MemoryLayerCache, OciLayout,
    Platform, Scanner,
};

use crate::support::image::{Compression, Entry, Image, Layer, tar_of};

fn layer_ref(l: &Layer) -> LayerRef {
    LayerRef {
        digest: l.digest.parse().unwrap(),
        diff_id: Some(l.diff_id.parse().unwrap()),
        media_type: l.media_type.clone(),
        size: l.blob.len() as u64,
    }
}

fn scan_with(layers: &[Layer], limits: &ScanLimits, denylist: Option<Denylist>) -> ScanReport {
    let blobs = MemoryBlobs::new();
    for l in layers {
        blobs.add(&l.blob);
    }
    let refs: Vec<LayerRef> = layers.iter().map(layer_ref).collect();
    Scanner::new(limits, denylist)
        .scan_layers(&blobs, &refs, None)
        .unwrap()
}

/// Scans `layers` (bottom first) from memory with the default limits.
pub(crate) fn scan(layers: &[Layer]) -> ScanReport {
    scan_with(layers, &ScanLimits::default(), None)
}

pub(crate) fn names(r: &ScanReport, kind: PackageType) -> Vec<(String, String)> {
    let mut v: Vec<_> = r
        .packages
        .iter()
        .filter(|p| p.kind == kind)
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    v.sort();
    v
}

pub(crate) fn kinds(r: &ScanReport) -> Vec<FileFindingKind> {
    r.files.iter().map(|f| f.kind).collect()
}

// ------------------------------------------------------------------ fixtures

pub(crate) const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

/// Excerpt of a real Debian 12 `/var/lib/dpkg/status`.
pub(crate) const DPKG_STATUS: &str = "Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12985
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: python3-six
Status: install ok installed
Priority: optional
Section: python
Installed-Size: 62
Maintainer: Debian Python Team <team+python@tracker.debian.org>
Architecture: all
Source: six
Version: 1.16.0-4
Depends: python3:any
Description: Python 2 and 3 compatibility library

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14+b1
Description: GCC support library

Package: old-removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Description: gone
";

pub(crate) const SIX_LIST: &str = "/.\n/usr\n/usr/lib\n/usr/lib/python3\n/usr/lib/python3/dist-packages\n/usr/lib/python3/dist-packages/six-1.16.0.egg-info\n/usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO\n/usr/lib/python3/dist-packages/six.py\n";

pub(crate) fn jar(members: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn varstr(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = s.len() as u64;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(s.as_bytes());
    out
}

/// An ELF file carrying a Go 1.18+ `.go.buildinfo` section (inline strings).
pub(crate) fn go_binary() -> Vec<u8> {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(300_000, 0x90);
    let mut info = b"\xff Go buildinf:".to_vec();
    info.push(8);
    info.push(2);
    info.resize(32, 0);
    info.extend(varstr("go1.22.5"));
    let modinfo = "path\texample.com/server\nmod\texample.com/server\tv1.4.0\th1:x=\ndep\tgithub.com/google/uuid\tv1.6.0\th1:y=\ndep\tgolang.org/x/net\tv0.20.0\th1:z=\n=>\tgolang.org/x/net\tv0.23.0\th1:w=\n";
    info.extend(varstr(&format!(
        "{}{}{}",
        "0".repeat(16),
        modinfo,
        "1".repeat(16)
    )));
    elf.extend(info);
    elf.resize(400_000, 0);
    elf
}

// ------------------------------------------------------------------ analyzers

#[test]
fn every_analyzer_on_real_formats() {
    let base = Layer::from_entries(
        &[
            Entry::file("usr/lib/os-release", OS_RELEASE),
            Entry::symlink("etc/os-release", "../usr/lib/os-release"),
            Entry::file("var/lib/dpkg/status", DPKG_STATUS),
            Entry::file("var/lib/dpkg/info/python3-six.list", SIX_LIST),
            Entry::file(
                "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
                "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n",
            ),
            Entry::file(
                "var/lib/dpkg/status.d/tzdata",
                "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
            ),
        ],
        Compression::Gzip,
    );
    let app = Layer::from_entries(
        &[
            Entry::file(
                "usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n",
            ),
            Entry::file(
                "app/node_modules/@babel/core/package.json",
                r#"{"name":"@babel/core","version":"7.24.0","license":"MIT"}"#,
            ),
            Entry::file("app/node_modules/@babel/core/lib/package.json", r#"{"name":"x","version":"0"}"#),
            Entry::file("app/package.json", r#"{"name":"the-app","version":"1.0.0"}"#),
            Entry::file(
                "opt/app/app.jar",
                jar(&[
                    ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nImplementation-Title: app\r\nImplementation-Version: 3.1\r\n"),
                    (
                        "BOOT-INF/lib/snakeyaml-2.2.jar",
                        &jar(&[("META-INF/maven/org.yaml/snakeyaml/pom.properties", b"groupId=org.yaml\nartifactId=snakeyaml\nversion=2.2\n")]),
                    ),
                ]),
            ),
            Entry::file_mode("usr/local/bin/server", go_binary(), 0o755),
            Entry::file(
                "lib/apk/db/installed",
                "P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\n\nP:libcrypto3\nV:3.3.2-r1\nA:x86_64\no:openssl\n",
            ),
        ],
        Compression::Zstd,
    );
    let r = scan(&[base, app]);
    let os = r.os.clone().unwrap();
    assert_eq!(
        (os.id.as_str(), os.version_id.as_deref()),
        ("debian", Some("12"))
    );
    assert_eq!(
        names(&r, PackageType::Deb),
        [
            ("libc6".into(), "2.36-9+deb12u10".into()),
            ("libgcc-s1".into(), "12.2.0-14+b1".into()),
            ("python3-six".into(), "1.16.0-4".into()),
            ("tzdata".into(), "2024a-0+deb12u1".into()),
        ]
    );
    let libc = r.packages.iter().find(|p| p.name == "libc6").unwrap();
    assert_eq!(
        libc.purl,
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc"
    );
    assert_eq!(libc.source_name.as_deref(), Some("glibc"));
    assert_eq!(libc.path, "/var/lib/dpkg/status");
    let gcc = r.packages.iter().find(|p| p.name == "libgcc-s1").unwrap();
    assert_eq!(
        (gcc.source_name.as_deref(), gcc.source_version.as_deref()),
        (Some("gcc-12"), Some("12.2.0-14"))
    );
    // six is dpkg's (python3-six); only pip's requests is a Python package.
    assert_eq!(
        names(&r, PackageType::Python),
        [("requests".into(), "2.31.0".into())]
    );
    // Every package.json with a name and a version, as Syft reads them: the installed
    // package, one vendored below it, and the application's own manifest.
    assert_eq!(
        names(&r, PackageType::Npm),
        [
            ("@babel/core".into(), "7.24.0".into()),
            ("the-app".into(), "1.0.0".into()),
            ("x".into(), "0".into()),
        ]
    );
    assert_eq!(
        names(&r, PackageType::Java),
        [
            ("app".into(), "3.1".into()),
            ("org.yaml:snakeyaml".into(), "2.2".into())
        ]
    );
    assert_eq!(
        names(&r, PackageType::GoModule),
        [
            ("example.com/server".into(), "v1.4.0".into()),
            ("github.com/google/uuid".into(), "v1.6.0".into()),
            ("golang.org/x/net".into(), "v0.23.0".into()),
        ]
    );
    assert_eq!(
        names(&r, PackageType::Go),
        [("stdlib".into(), "v1.22.5".into())]
    );
    assert_eq!(names(&r, PackageType::Apk).len(), 2);
    let crypto = r.packages.iter().find(|p| p.name == "libcrypto3").unwrap();
    assert_eq!(crypto.source_name.as_deref(), Some("openssl"));
    let go = r
        .packages
        .iter()
        .find(|p| p.name == "github.com/google/uuid")
        .unwrap();
    assert_eq!(go.purl, "pkg:golang/github.com/google/uuid@v1.6.0");
    assert_eq!(go.path, "/usr/local/bin/server");
    let yaml = r
        .packages
        .iter()
        .find(|p| p.name == "org.yaml:snakeyaml")
        .unwrap();
    assert_eq!(yaml.purl, "pkg:maven/org.yaml/snakeyaml@2.2");
    assert_eq!(
        yaml.path,
        "/opt/app/app.jar!/BOOT-INF/lib/snakeyaml-2.2.jar"
    );
    for p in &r.packages {
        assert!(p.purl.starts_with("pkg:"), "{p:?}");
        assert!(p.layer.starts_with("sha256:"), "{p:?}");
    }
    assert!(r.files.is_empty(), "{:?}", r.files);
}

// ------------------------------------------------------------------ whiteouts

#[test]
fn whiteouts_and_opaque_dirs_shape_the_final_inventory() {
    let base = Layer::from_entries(
        &[
            Entry::file("usr/lib/os-release", OS_RELEASE),
            Entry::file("var/lib/dpkg/status", DPKG_STATUS),
            Entry::file(
                "app/node_modules/left-pad/package.json",
                r#"{"name":"left-pad","version":"1.3.0"}"#,
            ),
            Entry::file(
                "app/node_modules/kept/package.json",
                r#"{"name":"kept","version":"2.0.0"}"#,
            ),
            Entry::file(
                "opt/py/lib/python3.11/site-packages/flask-3.0.0.dist-info/METADATA",
                "Name: Flask\nVersion: 3.0.0\n",
            ),
            Entry::file("app/.env", "AWS_ACCESS_KEY_ID=AKIA2E0A8F3B244C9986\n"),
            Entry::file("etc/app/token", "GITLAB=glpat-Ab3dE6gH9jK2mN5pQ8sT\n"),
        ],
        Compression::Gzip,
    );
    let upper = Layer::from_entries(
        &[
            Entry::whiteout("app/node_modules/left-pad"),
            Entry::whiteout("app/.env"),
            Entry::dir("opt/py"),
            Entry::file("opt/py/.wh..wh..opq", Vec::new()),
            // apt in the upper layer rewrote the status file: it replaces the lower one.
            Entry::file(
                "var/lib/dpkg/status",
                "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u11\n",
            ),
        ],
        Compression::Gzip,
    );
    let r = scan(&[base.clone(), upper.clone()]);
    assert_eq!(
        names(&r, PackageType::Npm),
        [("kept".into(), "2.0.0".into())]
    );
    assert!(names(&r, PackageType::Python).is_empty());
    assert_eq!(
        names(&r, PackageType::Deb),
        [("libc6".into(), "2.36-9+deb12u11".into())]
    );
    // Secrets stay reportable: the deleted one is flagged, not dropped.
    let env = r.secrets.iter().find(|s| s.path == "/app/.env").unwrap();
    assert!(env.deleted_in_final_image);
    assert_eq!(env.layer, base.digest);
    let tok = r
        .secrets
        .iter()
        .find(|s| s.path == "/etc/app/token")
        .unwrap();
    assert!(!tok.deleted_in_final_image);

    // A cached lower layer composed with a new upper layer gives the same result.
    let blobs = MemoryBlobs::new();
    blobs.add(&base.blob);
    blobs.add(&upper.blob);
    let cache = MemoryLayerCache::new(10);
    let scanner = Scanner::new(&ScanLimits::default(), None);
    let only_base = scanner
        .scan_layers(&blobs, &[layer_ref(&base)], Some(&cache))
        .unwrap();
    assert_eq!(names(&only_base, PackageType::Npm).len(), 2);
    assert!(!only_base.layers[0].cached);
    let both = scanner
        .scan_layers(&blobs, &[layer_ref(&base), layer_ref(&upper)], Some(&cache))
        .unwrap();
    assert!(both.layers[0].cached && !both.layers[1].cached);
    assert_eq!(both.packages, r.packages);
    assert_eq!(both.secrets, r.secrets);
    assert_eq!(cache.len(), 2);
}

#[test]
fn a_replaced_go_binary_takes_its_modules_with_it() {
    let go = Layer::from_entries(
        &[Entry::file_mode("usr/local/bin/server", go_binary(), 0o755)],
        Compression::Gzip,
    );
    let mut plain_elf = b"\x7fELF\x02\x01\x01".to_vec();
    plain_elf.resize(300_000, 0);
    let c = Layer::from_entries(
        &[Entry::file_mode("usr/local/bin/server", plain_elf, 0o755)],
        Compression::Gzip,
    );
    assert_eq!(
        names(&scan(std::slice::from_ref(&go)), PackageType::GoModule).len(),
        3
    );
    assert!(names(&scan(&[go, c]), PackageType::GoModule).is_empty());
}

#[test]
fn layer_cache_is_bounded_and_keyed_by_config() {
    let l = Layer::from_entries(&[Entry::file("a", "x")], Compression::Gzip);
    let blobs = MemoryBlobs::new();
    blobs.add(&l.blob);
    let cache = MemoryLayerCache::new(1);
    let s1 = Scanner::new(&ScanLimits::default(), None);
    let s2 = Scanner::new(
        &ScanLimits {
            max_secret_file_bytes: 10,
            ..ScanLimits::default()
        },
        None,
    );
    assert_ne!(s1.cache_key(&layer_ref(&l)), s2.cache_key(&layer_ref(&l)));
    s1.scan_layers(&blobs, &[layer_ref(&l)], Some(&cache))
        .unwrap();
    assert!(cache.get(&s1.cache_key(&layer_ref(&l))).is_some());
    s2.scan_layers(&blobs, &[layer_ref(&l)], Some(&cache))
        .unwrap();
    assert_eq!(cache.len(), 1);
    assert!(cache.get(&s1.cache_key(&layer_ref(&l))).is_none());
}

// ------------------------------------------------------------------ hostile input

/// A raw ustar header (the `tar` crate refuses to write hostile names).
fn header(name: &str, typeflag: u8, size: u64, link: &str, mode: u32) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.as_bytes();
    h[..n.len().min(100)].copy_from_slice(&n[..n.len().min(100)]);
    h[100..108].copy_from_slice(format!("{mode:07o}\0").as_bytes());
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn raw_file(tar: &mut Vec<u8>, name: &str, data: &[u8]) {
    tar.extend_from_slice(&header(name, b'0', data.len() as u64, "", 0o644));
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

fn end(tar: &mut Vec<u8>) {
    tar.extend_from_slice(&[0u8; 1024]);
}

#[test]
fn traversal_absolute_paths_and_links_out_of_root() {
    let mut t = Vec::new();
    raw_file(&mut t, "../../etc/cron.d/evil", b"* * * * * root sh\n");
    raw_file(&mut t, "/etc/os-release", OS_RELEASE.as_bytes());
    t.extend_from_slice(&header(
        "usr/lib/escape",
        b'2',
        0,
        "../../../../host/etc/shadow",
        0o777,
    ));
    t.extend_from_slice(&header("usr/lib/fine", b'2', 0, "../../etc/passwd", 0o777));
    t.extend_from_slice(&header(
        "usr/bin/abs",
        b'2',
        0,
        "/etc/alternatives/x",
        0o777,
    ));
    t.extend_from_slice(&header("hard", b'1', 0, "../outside", 0o644));
    end(&mut t);
    let r = scan(&[Layer::from_tar(t, Compression::Gzip)]);
    let trav: Vec<_> = r
        .files
        .iter()
        .filter(|f| f.kind == FileFindingKind::PathTraversal)
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(trav, ["../../etc/cron.d/evil", "/usr/lib/escape", "/hard"]);
    // An absolute member path lands inside the root (as containerd applies it).
    assert_eq!(r.os.unwrap().id, "debian");
}

#[test]
fn decompression_bomb_and_entry_flood_hit_limits() {
    let big = vec![0u8; 4 << 20];
    let bomb = Layer::from_entries(&[Entry::file("zeros", big)], Compression::Gzip);
    let limits = ScanLimits {
        max_layer_bytes: 1 << 20,
        ..ScanLimits::default()
    };
    let r = scan_with(&[bomb], &limits, None);
    assert!(
        kinds(&r).contains(&FileFindingKind::LimitExceeded),
        "{:?}",
        r.files
    );

    let many: Vec<Entry> = (0..500)
        .map(|i| Entry::file(&format!("f{i}"), "x"))
        .collect();
    let flood = Layer::from_entries(&many, Compression::Zstd);
    let limits = ScanLimits {
        max_layer_entries: 100,
        ..ScanLimits::default()
    };
    let r = scan_with(&[flood], &limits, None);
    assert_eq!(kinds(&r), [FileFindingKind::LimitExceeded]);
    assert!(r.files[0].detail.contains("max_layer_entries"));
    assert_eq!(r.layers[0].entries, 101);

    let long = format!("{}/x", "d".repeat(300));
    let l = Layer::from_entries(
        &[Entry::file(&long, "x"), Entry::file("ok", "y")],
        Compression::None,
    );
    let limits = ScanLimits {
        max_path_bytes: 100,
        ..ScanLimits::default()
    };
    let r = scan_with(&[l], &limits, None);
    assert_eq!(kinds(&r), [FileFindingKind::LimitExceeded]);
    assert!(r.files[0].detail.contains("max_path_bytes"));
}

#[test]
fn truncated_and_corrupt_streams_are_malformed() {
    let entries = [
        Entry::file("etc/os-release", OS_RELEASE),
        Entry::file("data", vec![7u8; 300_000]),
    ];
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let l = Layer::from_entries(&entries, c);
        let cut = l.blob[..l.blob.len() / 2].to_vec();
        let r = scan(&[Layer {
            digest: Digest::sha256_of(&cut).to_string(),
            blob: cut,
            ..l.clone()
        }]);
        assert_eq!(
            kinds(&r),
            [FileFindingKind::Malformed],
            "{c:?}: {:?}",
            r.files
        );
    }
    // Bad header checksum.
    let mut t = tar_of(&[Entry::file("a", "x"), Entry::file("b", "y")]);
    t[512 + 512 + 10] ^= 0x55; // second header's name
    let r = scan(&[Layer::from_tar(t, Compression::Gzip)]);
    assert_eq!(kinds(&r), [FileFindingKind::Malformed]);
    assert!(
        r.files[0].detail.contains("checksum"),
        "{}",
        r.files[0].detail
    );
    // PAX header declaring an absurd size.
    let rec = "30 size=99999999999999999999\n";
    let mut t = Vec::new();
    t.extend_from_slice(&header("pax", b'x', rec.len() as u64, "", 0o644));
    let mut r = rec.as_bytes().to_vec();
    r.resize(512, 0);
    t.extend_from_slice(&r);
    raw_file(&mut t, "victim", b"abc");
    end(&mut t);
    let rep = scan(&[Layer::from_tar(t, Compression::Gzip)]);
    assert!(
        matches!(
            kinds(&rep).as_slice(),
            [FileFindingKind::Malformed | FileFindingKind::LimitExceeded]
        ),
        "{:?}",
        rep.files
    );
    // Garbage that is not any compression or tar.
    let junk = b"this is not a layer at all, just text that goes on".repeat(20);
    let rep = scan(&[Layer::from_tar(junk, Compression::None)]);
    assert_eq!(kinds(&rep), [FileFindingKind::Malformed]);
}

#[test]
fn digest_mismatch_is_a_finding_and_not_cached() {
    let l = Layer::from_entries(&[Entry::file("a", "x")], Compression::Gzip);
    let blobs = MemoryBlobs::new();
    let mut tampered = l.blob.clone();
    let n = tampered.len();
    tampered[n - 5] ^= 1; // gzip trailer: content still inflates, bytes differ
    blobs.insert(l.digest.parse().unwrap(), tampered);
    let cache = MemoryLayerCache::new(4);
    let scanner = Scanner::new(&ScanLimits::default(), None);
    let r = scanner
        .scan_layers(&blobs, &[layer_ref(&l)], Some(&cache))
        .unwrap();
    assert!(
        kinds(&r).contains(&FileFindingKind::DigestMismatch),
        "{:?}",
        r.files
    );
    assert!(cache.is_empty());
}

#[test]
fn finding_floods_are_capped_and_deny() {
    let entries: Vec<Entry> = (0..10_050)
        .map(|i| Entry::file_mode(&format!("s/{i}"), "x", 0o4755))
        .collect();
    let r = scan(&[Layer::from_entries(&entries, Compression::Gzip)]);
    assert!(r.files.len() <= 10_001, "{}", r.files.len());
    assert_eq!(r.files.last().unwrap().kind, FileFindingKind::LimitExceeded);
}

#[test]
fn containerd_paths_are_committed_blobs_only() {
    let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    let p = ContainerdContent::new("/var/lib/containerd").blob_path(&d);
    assert_eq!(
        p,
        std::path::Path::new("/var/lib/containerd/io.containerd.content.v1.content/blobs/sha256")
            .join("ab".repeat(32))
    );
    assert!(matches!(
        pullwarden::scan::BlobSource::open(&ContainerdContent::new("/nonexistent"), &d),
        Err(pullwarden::scan::ScanError::BlobNotFound { .. })
    ));
}

// ------------------------------------------------------------------ files

#[test]
fn risky_files_and_denylist() {
    let mut t = Vec::new();
    t.extend_from_slice(&header("dev/mem", b'3', 0, "", 0o600));
    t.extend_from_slice(&header("tmp", b'5', 0, "", 0o1777));
    t.extend_from_slice(&header("shared", b'5', 0, "", 0o777));
    t.extend_from_slice(&header("lnk", b'2', 0, "target", 0o777));
    end(&mut t);
    let special = Layer::from_tar(t, Compression::None);
    let files = Layer::from_entries(
        &[
            Entry::file_mode("usr/bin/sudo", "x", 0o4755),
            Entry::file_mode("usr/bin/wall", "y", 0o2755),
            Entry::file_mode("app/open", "z", 0o666),
            Entry::file("opt/miner", "evil payload bytes"),
        ],
        Compression::Gzip,
    );
    let deny = Denylist::parse(&format!(
        "# bad\n{}\n",
        Digest::sha256_of(b"evil payload bytes")
    ))
    .unwrap();
    let r = scan_with(&[special, files], &ScanLimits::default(), Some(deny));
    let got: Vec<_> = r.files.iter().map(|f| (f.kind, f.path.as_str())).collect();
    assert_eq!(
        got,
        [
            (FileFindingKind::DeviceNode, "/dev/mem"),
            (FileFindingKind::WorldWritable, "/shared"),
            (FileFindingKind::Setuid, "/usr/bin/sudo"),
            (FileFindingKind::Setgid, "/usr/bin/wall"),
            (FileFindingKind::WorldWritable, "/app/open"),
            (FileFindingKind::Denylisted, "/opt/miner"),
        ]
    );
}

#[test]
fn secrets_in_layers_with_examples_ignored_and_big_files_reported() {
    let l = Layer::from_entries(
        &[
            Entry::file(
                "app/config/.env",
                "# settings\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nSTRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc9fXz\n",
            ),
            Entry::file(
                "usr/share/doc/pkg/README",
                "token ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R\n",
            ),
            Entry::file(
                "app/bin",
                b"\x7fELF ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R".to_vec(),
            ),
            Entry::file("app/big.txt", "a".repeat(5000)),
        ],
        Compression::Gzip,
    );
    let limits = ScanLimits {
        max_secret_file_bytes: 4096,
        ..ScanLimits::default()
    };
    let r = scan_with(&[l], &limits, None);
    let got: Vec<_> = r
        .secrets
        .iter()
        .map(|s| (s.rule.as_str(), s.path.as_str(), s.line))
        .collect();
    assert_eq!(got, [("stripe-secret-token", "/app/config/.env", 3)]);
    assert!(
        !r.secrets[0]
            .redacted
            .contains("4eC39HqLyjWDarjtT1zdp7dc9fXz")
    );
    assert_eq!(kinds(&r), [FileFindingKind::NotExamined]);
    assert_eq!(r.files[0].path, "/app/big.txt");
}

// ------------------------------------------------------------------ sources

#[test]
fn containerd_content_store_is_mapped_and_oci_layouts_resolve() {
    let l1 = Layer::from_entries(
        &[
            Entry::file("usr/lib/os-release", OS_RELEASE),
            Entry::file("var/lib/dpkg/status", DPKG_STATUS),
        ],
        Compression::Gzip,
    );
    let l2 = Layer::from_entries(&[Entry::whiteout("var/lib/dpkg/status")], Compression::Zstd);
    let img = Image::new(vec![l1, l2]);
    let dir = tempfile::tempdir().unwrap();
    // containerd's layout: <root>/io.containerd.content.v1.content/blobs/sha256/<hex>.
    let root = dir.path().join("containerd");
    let blobs = root.join("io.containerd.content.v1.content/blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for (d, b) in img.layers.iter().map(|l| (&l.digest, &l.blob)).chain([
        (&img.config_digest, &img.config),
        (&img.digest, &img.manifest),
    ]) {
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b).unwrap();
    }
    let content = ContainerdContent::new(&root);
    let resolved = pullwarden::scan::resolve_image(
        &content,
        &img.digest.parse().unwrap(),
        &Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        },
    )
    .unwrap();
    assert_eq!(resolved.layers.len(), 2);
    assert_eq!(
        resolved.layers[1].diff_id.as_ref().unwrap().to_string(),
        img.layers[1].diff_id
    );
    let r = Scanner::new(&ScanLimits::default(), None)
        .scan_layers(&content, &resolved.layers, None)
        .unwrap();
    assert!(r.packages.is_empty(), "status deleted in layer 2");
    assert_eq!(r.os.unwrap().id, "debian");

    let layout = dir.path().join("oci");
    img.write_oci_layout(&layout, "v1");
    let oci = OciLayout::open(&layout).unwrap();
    let res = oci.resolve(Some("v1"), &Platform::host()).or_else(|_| {
        oci.resolve(
            Some("v1"),
            &Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            },
        )
    });
    assert_eq!(res.unwrap().manifest_digest.to_string(), img.digest);
    assert!(matches!(
        oci.resolve(Some("nope"), &Platform::host()),
        Err(pullwarden::scan::ScanError::TagNotFound { .. })
    ));
    // A manifest blob that does not match its digest is refused.
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(img.digest.trim_start_matches("sha256:")),
        b"{}",
    )
    .unwrap();
    assert!(matches!(
        oci.resolve(Some("v1"), &Platform::host()),
        Err(pullwarden::scan::ScanError::DocumentDigestMismatch { .. })
    ));
}

// ------------------------------------------------------------------ CLI

fn run_cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(crate::support::bin())
        .arg("scan")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn docker_archive(img: &Image, path: &std::path::Path) {
    docker_archive_with(img, path, false)
}

/// `docker save` output: legacy `<id>/layer.tar` names, or (docker 25+) `blobs/sha256/<hex>`.
fn docker_archive_with(img: &Image, path: &std::path::Path, by_digest: bool) {
    let mut entries = Vec::new();
    let mut layer_names = Vec::new();
    for (i, l) in img.layers.iter().enumerate() {
        // docker save stores uncompressed layer tars.
        let raw = match l.media_type.as_str() {
            m if m.ends_with("gzip") => {
                let mut d = flate2::read::GzDecoder::new(&l.blob[..]);
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut d, &mut v).unwrap();
                v
            }
            _ => l.blob.clone(),
        };
        let name = if by_digest {
            format!("blobs/sha256/{}", Digest::sha256_of(&raw).hex())
        } else {
            format!("layer{i}/layer.tar")
        };
        entries.push(Entry::file(&name, raw));
        layer_names.push(name);
    }
    let cfg_name = format!("{}.json", img.config_digest.trim_start_matches("sha256:"));
    entries.push(Entry::file(&cfg_name, img.config.clone()));
    let manifest =
        serde_json::json!([{ "Config": cfg_name, "RepoTags": ["demo:1"], "Layers": layer_names }]);
    entries.push(Entry::file(
        "manifest.json",
        serde_json::to_vec(&manifest).unwrap(),
    ));
    std::fs::write(path, tar_of(&entries)).unwrap();
}

#[test]
fn cli_scans_layouts_and_archives_with_json_sbom_and_exit_codes() {
    let clean = Layer::from_entries(
        &[
            Entry::file("usr/lib/os-release", OS_RELEASE),
            Entry::file("var/lib/dpkg/status", DPKG_STATUS),
            Entry::file(
                "app/node_modules/express/package.json",
                r#"{"name":"express","version":"4.18.2"}"#,
            ),
        ],
        Compression::Gzip,
    );
    let leaky = Layer::from_entries(
        &[Entry::file(
            "app/.env",
            "GITHUB_TOKEN=ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R\n",
        )],
        Compression::Gzip,
    );
    let dir = tempfile::tempdir().unwrap();
    let ok_img = Image::new(vec![clean.clone()]);
    let bad_img = Image::new(vec![clean, leaky]);
    let layout = dir.path().join("oci");
    ok_img.write_oci_layout(&layout, "ok");
    let layout2 = dir.path().join("oci2");
    bad_img.write_oci_layout(&layout2, "bad");

    let src = format!("oci:{}:ok", layout.display());
    let sbom_path = dir.path().join("bom.json");
    let (code, out, err) = run_cli(&[
        &src,
        "--json",
        "--platform",
        "linux/amd64",
        "--sbom",
        "cyclonedx-json",
        "--output",
        sbom_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["digest"], ok_img.digest);
    let pkgs = v["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 4);
    for p in pkgs {
        for k in ["name", "version", "type", "purl", "layer", "path"] {
            assert!(p[k].is_string(), "{k} in {p}");
        }
    }
    assert!(v["vulnerabilities"].as_array().unwrap().is_empty());
    assert!(v["secrets"].as_array().unwrap().is_empty());
    let bom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sbom_path).unwrap()).unwrap();
    assert_eq!(bom["bomFormat"], "CycloneDX");
    assert_eq!(bom["specVersion"], "1.6");
    assert_eq!(bom["components"].as_array().unwrap().len(), 5); // OS + 4 packages
    validate_cyclonedx(&bom);

    let spdx_path = dir.path().join("spdx.json");
    let (code, _, err) = run_cli(&[
        &src,
        "--platform",
        "linux/amd64",
        "--sbom",
        "spdx-json",
        "--output",
        spdx_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let spdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spdx_path).unwrap()).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    validate_spdx(&spdx);

    // A secret denies under the default policy: exit 1 with a stable reason.
    let src2 = format!("oci:{}:bad", layout2.display());
    let (code, out, _) = run_cli(&[&src2, "--json", "--platform", "linux/amd64"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"], "deny");
    let reason = v["reasons"][0].as_str().unwrap();
    assert!(
        reason.starts_with("secret github-pat in /app/.env (layer sha256:"),
        "{reason}"
    );
    assert_eq!(v["secrets"][0]["line"], 1);
    // ... unless the config says secrets only warn.
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[[policy]]\nname = \"lenient\"\nimages = [\"**\"]\n[policy.scan]\nsecrets = \"warn\"\n",
    )
    .unwrap();
    let (code, out, err) = run_cli(&[
        &src2,
        "--json",
        "--platform",
        "linux/amd64",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["policy"], "lenient");
    // One warning of the policy's (the secret); the warning that no vulnerability
    // database was found (issue 14) is not the policy's.
    let policy_warnings = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| !w.as_str().unwrap().starts_with("no vulnerability database"))
        .count();
    assert_eq!(policy_warnings, 1);

    // The human table lists the packages.
    let (code, out, _) = run_cli(&[&src, "--platform", "linux/amd64"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("libc6") && out.contains("2.36-9+deb12u10") && out.contains("Decision: allow"),
        "{out}"
    );

    // docker save archive of the same image.
    let archive = dir.path().join("img.tar");
    docker_archive(&bad_img, &archive);
    let (code, out, err) = run_cli(&[&format!("docker-archive:{}", archive.display()), "--json"]);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["packages"].as_array().unwrap().len(), 4);
    assert_eq!(v["secrets"].as_array().unwrap().len(), 1);
    assert!(v["files"].as_array().unwrap().is_empty(), "{}", v["files"]);

    // Errors exit 2.
    // A registry that is not there (loopback, nothing listening): an error, not an allow.
    let (code, _, err) = run_cli(&["docker://127.0.0.1:1/x:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    let (code, _, _) = run_cli(&[&format!("oci:{}", dir.path().join("missing").display())]);
    assert_eq!(code, 2);
    let (code, _, _) = run_cli(&[&format!("oci:{}:nope", layout.display())]);
    assert_eq!(code, 2);
}

#[test]
fn docker_archives_new_and_broken() {
    let l = Layer::from_entries(
        &[Entry::file("var/lib/dpkg/status", DPKG_STATUS)],
        Compression::Gzip,
    );
    let img = Image::new(vec![l]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("new.tar");
    docker_archive_with(&img, &p, true);
    let (archive, resolved) = pullwarden::scan::DockerArchive::open(&p).unwrap();
    assert_eq!(resolved.layers[0].digest.to_string(), img.layers[0].diff_id);
    let r = Scanner::new(&ScanLimits::default(), None)
        .scan_layers(&archive, &resolved.layers, None)
        .unwrap();
    assert_eq!(names(&r, PackageType::Deb).len(), 3);
    assert!(r.files.is_empty(), "{:?}", r.files);

    // No manifest.json; a manifest naming a missing layer; not a tar at all.
    let broken = dir.path().join("broken.tar");
    std::fs::write(&broken, tar_of(&[Entry::file("x.json", "{}")])).unwrap();
    assert!(pullwarden::scan::DockerArchive::open(&broken).is_err());
    let m = serde_json::json!([{ "Config": "c.json", "Layers": ["missing/layer.tar"] }]);
    std::fs::write(
        &broken,
        tar_of(&[
            Entry::file("manifest.json", serde_json::to_vec(&m).unwrap()),
            Entry::file("c.json", img.config.clone()),
        ]),
    )
    .unwrap();
    let err = pullwarden::scan::DockerArchive::open(&broken)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing/layer.tar"), "{err}");
    std::fs::write(&broken, b"garbage".repeat(100)).unwrap();
    assert!(pullwarden::scan::DockerArchive::open(&broken).is_err());

    // An OCI layout whose index.json is not JSON.
    let layout = dir.path().join("oci");
    img.write_oci_layout(&layout, "t");
    std::fs::write(layout.join("index.json"), b"{not json").unwrap();
    assert!(matches!(
        OciLayout::open(&layout)
            .unwrap()
            .resolve(Some("t"), &Platform::host()),
        Err(pullwarden::scan::ScanError::BadLayout { .. })
    ));
}

#[test]
fn layers_scan_in_parallel_with_the_same_result() {
    let layers: Vec<Layer> = (0..6)
        .map(|i| {
            Layer::from_entries(
                &[Entry::file(
                    &format!("app/node_modules/p{i}/package.json"),
                    format!(r#"{{"name":"p{i}","version":"1.0.{i}"}}"#),
                )],
                if i % 2 == 0 {
                    Compression::Gzip
                } else {
                    Compression::Zstd
                },
            )
        })
        .collect();
    let one = scan_with(
        &layers,
        &ScanLimits {
            parallel_layers: 1,
            ..ScanLimits::default()
        },
        None,
    );
    let four = scan_with(
        &layers,
        &ScanLimits {
            parallel_layers: 4,
            ..ScanLimits::default()
        },
        None,
    );
    assert_eq!(one, four);
    assert_eq!(one.packages.len(), 6);
}

// ------------------------------------------------------------------ SBOM validity

fn schema(name: &str) -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scan/schemas")
        .join(name);
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Against the official CycloneDX 1.6 JSON schema (vendored, see SOURCE.md there).
pub(crate) fn validate_cyclonedx(bom: &serde_json::Value) {
    let registry = jsonschema::Registry::new()
        .add(
            "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json",
            schema("spdx.SNAPSHOT.schema.json"),
        )
        .unwrap()
        .add(
            "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json",
            schema("jsf-0.82.SNAPSHOT.schema.json"),
        )
        .unwrap()
        .prepare()
        .unwrap();
    let validator = jsonschema::options()
        .with_registry(&registry)
        .should_validate_formats(true)
        .build(&schema("bom-1.6.SNAPSHOT.schema.json"))
        .unwrap();
    let errors: Vec<String> = validator
        .iter_errors(bom)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "CycloneDX schema errors: {errors:#?}");
    // The validator itself must reject a broken document (the test is not vacuous).
    let mut broken = bom.clone();
    broken["components"][0]["type"] = serde_json::json!("not-a-type");
    assert!(!validator.is_valid(&broken));
}

/// The SPDX 2.3 schema's required fields and patterns, checked by hand (no registry
/// ships the schema file; see tests/fixtures/scan/schemas/SOURCE.md).
pub(crate) fn validate_spdx(doc: &serde_json::Value) {
    let id_ok = |s: &str| {
        s.strip_prefix("SPDXRef-").is_some_and(|r| {
            !r.is_empty()
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
    };
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
    assert!(doc["name"].as_str().is_some_and(|s| !s.is_empty()));
    let ns = doc["documentNamespace"].as_str().unwrap();
    assert!(ns.starts_with("https://") && !ns.contains('#'), "{ns}");
    let created = doc["creationInfo"]["created"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    let creators = doc["creationInfo"]["creators"].as_array().unwrap();
    assert!(
        !creators.is_empty()
            && creators
                .iter()
                .all(|c| c.as_str().unwrap().starts_with("Tool: "))
    );
    let mut ids = std::collections::HashSet::new();
    for p in doc["packages"].as_array().unwrap() {
        let id = p["SPDXID"].as_str().unwrap();
        assert!(id_ok(id), "{id}");
        assert!(ids.insert(id.to_string()), "duplicate {id}");
        assert!(p["name"].is_string() && p["downloadLocation"].is_string());
        assert_eq!(p["filesAnalyzed"], false);
        for r in p["externalRefs"].as_array().into_iter().flatten() {
            assert_eq!(r["referenceCategory"], "PACKAGE-MANAGER");
            assert_eq!(r["referenceType"], "purl");
            assert!(r["referenceLocator"].as_str().unwrap().starts_with("pkg:"));
        }
    }
    ids.insert("SPDXRef-DOCUMENT".into());
    for r in doc["relationships"].as_array().unwrap() {
        assert!(ids.contains(r["spdxElementId"].as_str().unwrap()));
        assert!(ids.contains(r["relatedSpdxElement"].as_str().unwrap()));
    }
    for d in doc["documentDescribes"].as_array().unwrap() {
        assert!(ids.contains(d.as_str().unwrap()));
    }
}
