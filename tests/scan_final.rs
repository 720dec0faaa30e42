//! The scan sees the image as it will run (issue 11): hard links followed, the last of
//! duplicate entries kept, files replaced by upper layers judged as the final image has
//! them, every Python metadata form, vendored and application npm manifests. Each case
//! is the test an attacker would write to hide a package or a secret, on layers built
//! with the project's own layer builder.

use pullwarden::report::{FileFindingKind, PackageType, ScanReport};

use crate::scan::{DPKG_STATUS, OS_RELEASE, SIX_LIST, go_binary, jar, kinds, names, scan};
use crate::support::image::{Compression, Entry, Layer};

const AWS_ENV: &str = "AWS_ACCESS_KEY_ID=AKIAZ4QW7XKJ2BPLMN3R\nAWS_SECRET_ACCESS_KEY=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\n";

fn layer(entries: &[Entry]) -> Layer {
    Layer::from_entries(entries, Compression::Gzip)
}

fn deb(r: &ScanReport) -> Vec<String> {
    names(r, PackageType::Deb)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

fn secret_paths(r: &ScanReport) -> Vec<(String, bool)> {
    let mut v: Vec<_> = r
        .secrets
        .iter()
        .filter(|s| s.rule == "aws-access-key-id")
        .map(|s| (s.path.clone(), s.deleted_in_final_image))
        .collect();
    v.sort();
    v
}

const NPM_LEFTPAD: &str = r#"{"name":"left-pad","version":"1.1.0"}"#;
const REQUESTS_METADATA: &str = "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n";
const APK_INSTALLED: &str = "P:musl\nV:1.2.5-r0\nA:x86_64\no:musl\n\n";

// ------------------------------------------------------------------ hard links

#[test]
fn a_hard_link_carries_its_targets_content_to_every_analyzer() {
    // Every target sits at an unremarkable path; only the link's path says what it is.
    let r = scan(&[layer(&[
        Entry::file("usr/lib/os-release", OS_RELEASE),
        Entry::file("a/1", DPKG_STATUS),
        Entry::hardlink("var/lib/dpkg/status", "a/1"),
        Entry::file("a/2", APK_INSTALLED),
        Entry::hardlink("lib/apk/db/installed", "a/2"),
        Entry::file("a/3", NPM_LEFTPAD),
        Entry::hardlink("app/node_modules/left-pad/package.json", "a/3"),
        Entry::file("a/4", REQUESTS_METADATA),
        Entry::hardlink(
            "usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
            "a/4",
        ),
        Entry::file(
            "a/5",
            jar(&[(
                "META-INF/maven/org.yaml/snakeyaml/pom.properties",
                b"groupId=org.yaml\nartifactId=snakeyaml\nversion=2.2\n",
            )]),
        ),
        Entry::hardlink("opt/app/snakeyaml.jar", "a/5"),
    ])]);
    assert_eq!(deb(&r), ["libc6", "libgcc-s1", "python3-six"]);
    let libc = r.packages.iter().find(|p| p.name == "libc6").unwrap();
    assert_eq!(libc.path, "/var/lib/dpkg/status");
    assert_eq!(
        names(&r, PackageType::Apk),
        [("musl".into(), "1.2.5-r0".into())]
    );
    assert_eq!(
        names(&r, PackageType::Npm),
        [("left-pad".into(), "1.1.0".into())]
    );
    assert_eq!(
        names(&r, PackageType::Python),
        [("requests".into(), "2.31.0".into())]
    );
    assert_eq!(
        names(&r, PackageType::Java),
        [("org.yaml:snakeyaml".into(), "2.2".into())]
    );
    assert!(r.files.is_empty(), "{:?}", r.files);
}

#[test]
fn a_saved_copy_of_the_package_database_linked_into_place_is_read_in_one_pass() {
    // A snapshot of dpkg's database archived before /var/lib: its files are kept (they
    // are named like package metadata), so the links are examined in the walk itself.
    let r = scan(&[
        layer(&[
            Entry::file("var/cache/dpkg-snapshot/status", DPKG_STATUS),
            Entry::file("var/cache/dpkg-snapshot/info/python3-six.list", SIX_LIST),
            Entry::file(
                "usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO",
                "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n",
            ),
            Entry::hardlink(
                "var/lib/dpkg/info/python3-six.list",
                "var/cache/dpkg-snapshot/info/python3-six.list",
            ),
            Entry::hardlink("var/lib/dpkg/status", "var/cache/dpkg-snapshot/status"),
        ]),
        layer(&[Entry::whiteout("var/cache/dpkg-snapshot")]),
    ]);
    assert_eq!(deb(&r), ["libc6", "libgcc-s1", "python3-six"]);
    // The linked file list still says dpkg owns six: not reported twice.
    assert!(names(&r, PackageType::Python).is_empty());
}

#[test]
fn a_go_binary_reached_by_a_hard_link_keeps_its_modules_when_the_target_is_deleted() {
    let r = scan(&[
        layer(&[
            Entry::file_mode("build/server", go_binary(), 0o755),
            Entry::hardlink("usr/local/bin/server", "build/server"),
        ]),
        layer(&[Entry::whiteout("build")]),
    ]);
    let uuid = r
        .packages
        .iter()
        .find(|p| p.name == "github.com/google/uuid")
        .expect("the linked binary's modules");
    assert_eq!(uuid.path, "/usr/local/bin/server");
    assert!(r.packages.iter().all(|p| !p.path.starts_with("/build/")));
}

#[test]
fn uv_installs_by_hard_link_from_its_cache_and_the_cache_is_removed() {
    // `uv pip install` links site-packages from its cache; `rm -rf /root/.cache` in a
    // later layer must not take the installed distribution with it.
    let cache = "root/.cache/uv/archive-v0/Xq3/requests-2.31.0.dist-info/METADATA";
    let site = "usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA";
    let r = scan(&[
        layer(&[
            Entry::file(cache, REQUESTS_METADATA),
            Entry::hardlink(site, cache),
        ]),
        layer(&[Entry::whiteout("root/.cache")]),
    ]);
    let py: Vec<_> = r
        .packages
        .iter()
        .filter(|p| p.kind == PackageType::Python)
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(py, [format!("/{site}")]);
}

#[test]
fn a_secret_hidden_behind_a_hard_link_from_a_skipped_path_is_found() {
    // `usr/share/doc` is not searched for secrets (noise); the link puts the same bytes
    // at a path that is.
    let r = scan(&[layer(&[
        Entry::file("usr/share/doc/app/notes", AWS_ENV),
        Entry::hardlink("app/.env", "usr/share/doc/app/notes"),
    ])]);
    assert_eq!(secret_paths(&r), [("/app/.env".to_string(), false)]);
    // A secret at a searched path, linked elsewhere, the original deleted: still there.
    let r = scan(&[
        layer(&[
            Entry::file("tmp/creds", AWS_ENV),
            Entry::hardlink("app/.env", "tmp/creds"),
        ]),
        layer(&[Entry::whiteout("tmp/creds")]),
    ]);
    assert_eq!(
        secret_paths(&r),
        [
            ("/app/.env".to_string(), false),
            ("/tmp/creds".to_string(), true)
        ]
    );
}

#[test]
fn links_to_links_resolve_and_links_out_of_the_layer_are_not_followed() {
    let r = scan(&[layer(&[
        Entry::file("b/1", DPKG_STATUS),
        Entry::hardlink("b/2", "b/1"),
        Entry::hardlink("var/lib/dpkg/status", "b/2"),
    ])]);
    assert_eq!(deb(&r), ["libc6", "libgcc-s1", "python3-six"]);

    // The target is in a lower layer: cross-layer links are not followed; the layer is
    // denied rather than its package database taken on trust.
    let r = scan(&[
        layer(&[Entry::file("a/1", DPKG_STATUS)]),
        layer(&[Entry::hardlink("var/lib/dpkg/status", "a/1")]),
    ]);
    assert!(deb(&r).is_empty());
    assert_eq!(kinds(&r), [FileFindingKind::Malformed]);
    assert!(
        r.files[0]
            .detail
            .contains("not an earlier file of this layer"),
        "{:?}",
        r.files
    );
    assert!(FileFindingKind::Malformed.is_integrity_failure());

    // A link to an entry that comes later in the archive is the same.
    let r = scan(&[layer(&[
        Entry::hardlink("var/lib/dpkg/status", "a/1"),
        Entry::file("a/1", DPKG_STATUS),
    ])]);
    assert_eq!(kinds(&r), [FileFindingKind::Malformed]);

    // A link that climbs out of the root is path traversal, as before.
    let r = scan(&[layer(&[Entry::hardlink("etc/x", "../../etc/shadow")])]);
    assert_eq!(kinds(&r), [FileFindingKind::PathTraversal]);
}

#[test]
fn thousands_of_links_to_one_file_are_bounded() {
    // Links that need no examination cost nothing, however many.
    let mut entries = vec![Entry::file("usr/share/doc/x/notes", "plain text\n")];
    for i in 0..5_000 {
        entries.push(Entry::hardlink(
            &format!("usr/share/doc/x/copy-{i}"),
            "usr/share/doc/x/notes",
        ));
    }
    let r = scan(&[layer(&entries)]);
    assert!(r.files.is_empty(), "{:?}", r.files);

    // Links that would each be parsed as a package database: a limit, and a deny.
    let mut entries = vec![Entry::file("a/1", DPKG_STATUS)];
    for i in 0..5_000 {
        entries.push(Entry::hardlink(
            &format!("var/lib/dpkg/status.d/p{i}"),
            "a/1",
        ));
    }
    let r = scan(&[layer(&entries)]);
    assert!(
        kinds(&r).contains(&FileFindingKind::LimitExceeded),
        "{:?}",
        kinds(&r)
    );
    assert!(r.packages.len() < 5_000 * 3);
}

// ------------------------------------------------------------------ duplicates, replacements

#[test]
fn duplicate_entries_keep_the_last_one() {
    let older =
        "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.2-0\n";
    let newer = "Package: openssl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 3.0.15-1~deb12u1\n";
    let r = scan(&[layer(&[
        Entry::file("var/lib/dpkg/status", older),
        Entry::file("var/lib/dpkg/status", newer),
    ])]);
    assert_eq!(
        names(&r, PackageType::Deb),
        [("openssl".into(), "3.0.15-1~deb12u1".into())]
    );
    // A later entry of another kind replaces the database too.
    let r = scan(&[layer(&[
        Entry::file("lib/apk/db/installed", APK_INSTALLED),
        Entry::symlink("lib/apk/db/installed", "/dev/null"),
    ])]);
    assert!(names(&r, PackageType::Apk).is_empty());
    // A secret in the first copy still ships in the layer's bytes: found, and marked
    // as not in the final image.
    let r = scan(&[layer(&[
        Entry::file("app/.env", AWS_ENV),
        Entry::file("app/.env", "DEBUG=0\n"),
    ])]);
    assert_eq!(secret_paths(&r), [("/app/.env".to_string(), true)]);
    // The same update spread over two layers was already right; it stays so.
    let r = scan(&[
        layer(&[Entry::file("var/lib/dpkg/status", older)]),
        layer(&[Entry::file("var/lib/dpkg/status", newer)]),
    ]);
    assert_eq!(
        names(&r, PackageType::Deb),
        [("openssl".into(), "3.0.15-1~deb12u1".into())]
    );
}

#[test]
fn files_replaced_in_an_upper_layer_are_judged_as_the_final_image_has_them() {
    let base = layer(&[
        Entry::file("var/lib/dpkg/status", DPKG_STATUS),
        Entry::file("app/.env", AWS_ENV),
        Entry::file("srv/conf/.env", AWS_ENV),
    ]);
    let r = scan(&[
        base.clone(),
        layer(&[
            // A plain file without the secret over the one with it.
            Entry::file("app/.env", "DEBUG=0\n"),
            // An empty package database: the image has no dpkg packages.
            Entry::file("var/lib/dpkg/status", ""),
            // A symlink where the directory was hides everything below it.
            Entry::symlink("srv/conf", "/etc/conf"),
        ]),
    ]);
    assert!(deb(&r).is_empty(), "{:?}", deb(&r));
    assert_eq!(
        secret_paths(&r),
        [
            ("/app/.env".to_string(), true),
            ("/srv/conf/.env".to_string(), true)
        ]
    );
    // Untouched, they are in the final image.
    let r = scan(&[base]);
    assert_eq!(deb(&r).len(), 3);
    assert_eq!(
        secret_paths(&r),
        [
            ("/app/.env".to_string(), false),
            ("/srv/conf/.env".to_string(), false)
        ]
    );
}

// ------------------------------------------------------------------ Python, npm

#[test]
fn every_python_metadata_form_is_read_with_the_os_ownership_rule() {
    let chardet_list = "/usr/lib/python3/dist-packages/chardet-5.1.0.egg-info\n";
    let r = scan(&[layer(&[
        Entry::file("usr/lib/os-release", OS_RELEASE),
        Entry::file(
            "var/lib/dpkg/status",
            format!(
                "{DPKG_STATUS}\nPackage: python3-chardet\nStatus: install ok installed\nArchitecture: all\nSource: chardet\nVersion: 5.1.0+dfsg-2\n"
            ),
        ),
        Entry::file("var/lib/dpkg/info/python3-six.list", SIX_LIST),
        Entry::file("var/lib/dpkg/info/python3-chardet.list", chardet_list),
        // dpkg's, as a single file: reported once, as the deb.
        Entry::file(
            "usr/lib/python3/dist-packages/chardet-5.1.0.egg-info",
            "Metadata-Version: 2.1\nName: chardet\nVersion: 5.1.0\n",
        ),
        // `setup.py install`: the single-file form, not the OS's.
        Entry::file(
            "usr/local/lib/python3.11/dist-packages/legacy_tool-0.9.egg-info",
            "Metadata-Version: 1.1\nName: legacy-tool\nVersion: 0.9\n",
        ),
        // An unpacked egg, and a zipped one.
        Entry::file(
            "usr/local/lib/python3.11/site-packages/eggy-1.2-py3.11.egg/EGG-INFO/PKG-INFO",
            "Metadata-Version: 1.2\nName: eggy\nVersion: 1.2\n",
        ),
        Entry::file(
            "usr/local/lib/python3.11/site-packages/zipped-3.0-py3.11.egg",
            jar(&[(
                "EGG-INFO/PKG-INFO",
                b"Metadata-Version: 1.2\nName: zipped\nVersion: 3.0\n",
            )]),
        ),
        Entry::file(
            "usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA",
            REQUESTS_METADATA,
        ),
    ])]);
    assert_eq!(
        names(&r, PackageType::Python),
        [
            ("eggy".into(), "1.2".into()),
            ("legacy-tool".into(), "0.9".into()),
            ("requests".into(), "2.31.0".into()),
            ("zipped".into(), "3.0".into()),
        ]
    );
    assert!(deb(&r).contains(&"python3-chardet".to_string()));
    let legacy = r.packages.iter().find(|p| p.name == "legacy-tool").unwrap();
    assert_eq!(legacy.purl, "pkg:pypi/legacy-tool@0.9");
}

/// A zipped egg or a jar whose central directory declares more entries than the
/// analyzers open is not parsed (its directory alone would cost memory many times its
/// size) and is named in a NotExamined finding rather than silently missing.
#[test]
fn oversized_zip_directories_are_named_not_opened() {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..100_001u32 {
        w.start_file(format!("{i:x}"), opts).unwrap();
    }
    let big = w.finish().unwrap().into_inner();
    let egg = "usr/local/lib/python3.11/site-packages/zipped-3.0-py3.11.egg";
    let r = scan(&[layer(&[
        Entry::file(egg, big.clone()),
        Entry::file("opt/app/app.jar", big),
    ])]);
    let mut refused: Vec<_> = r
        .files
        .iter()
        .filter(|f| f.kind == FileFindingKind::NotExamined)
        .map(|f| f.path.as_str())
        .collect();
    refused.sort();
    let egg = format!("/{egg}");
    assert_eq!(refused, ["/opt/app/app.jar", egg.as_str()], "{:?}", r.files);
    assert!(r.packages.is_empty());
}

#[test]
fn vendored_and_application_npm_manifests_are_reported() {
    let r = scan(&[layer(&[
        Entry::file(
            "app/package.json",
            r#"{"name":"shop","version":"2.3.0","private":true,"dependencies":{"bson":"^4"}}"#,
        ),
        Entry::file(
            "app/node_modules/bson/package.json",
            r#"{"name":"bson","version":"4.7.2"}"#,
        ),
        Entry::file(
            "app/node_modules/bson/vendor/text-encoding/package.json",
            r#"{"name":"text-encoding","version":"0.7.0"}"#,
        ),
        // No version: not a package.
        Entry::file("app/config/package.json", r#"{"name":"settings"}"#),
    ])]);
    assert_eq!(
        names(&r, PackageType::Npm),
        [
            ("bson".into(), "4.7.2".into()),
            ("shop".into(), "2.3.0".into()),
            ("text-encoding".into(), "0.7.0".into()),
        ]
    );
    let vendored = r
        .packages
        .iter()
        .find(|p| p.name == "text-encoding")
        .unwrap();
    assert_eq!(
        vendored.path,
        "/app/node_modules/bson/vendor/text-encoding/package.json"
    );
    // Debian's node packages are the OS package's, reported once.
    let r = scan(&[layer(&[
        Entry::file(
            "var/lib/dpkg/status",
            "Package: node-semver\nStatus: install ok installed\nArchitecture: all\nVersion: 7.3.8+~7.3.9-1\n",
        ),
        Entry::file(
            "var/lib/dpkg/info/node-semver.list",
            "/usr/share/nodejs/semver\n/usr/share/nodejs/semver/package.json\n",
        ),
        Entry::file(
            "usr/share/nodejs/semver/package.json",
            r#"{"name":"semver","version":"7.3.8"}"#,
        ),
    ])]);
    assert!(names(&r, PackageType::Npm).is_empty());
    assert_eq!(deb(&r), ["node-semver"]);
}
