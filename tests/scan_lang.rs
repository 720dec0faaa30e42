//! Language ecosystems beyond the OS package managers, end to end: an image holding an
//! installed gem specification, Composer's `installed.json`, a .NET `deps.json` and a
//! Rust binary built with cargo-auditable (its ELF made here byte by byte), scanned
//! through the library and the CLI, and matched against imported OSV records of
//! RubyGems, Packagist, NuGet and crates.io, each in that ecosystem's version order.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use pullwarden::report::{FileFindingKind, PackageType, ScanReport};
use pullwarden::vulndb::VulnDb;

use crate::support::image::{Compression, Entry, Image, Layer};

pub(crate) const GEMSPEC: &str = r#"# -*- encoding: utf-8 -*-
# stub: rack 2.2.8 ruby lib

Gem::Specification.new do |s|
  s.name = "rack".freeze
  s.version = "2.2.8"

  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
  s.require_paths = ["lib".freeze]
  s.authors = ["Leah Neukirchen".freeze]
  s.licenses = ["MIT".freeze]
  s.summary = "A modular Ruby webserver interface".freeze
  s.installed_by_version = "3.4.10" if s.respond_to? :installed_by_version
end
"#;

/// The gem's own source gemspec inside its directory: Ruby code, not an installed
/// specification, never read.
const SOURCE_GEMSPEC: &str =
    "Gem::Specification.new do |s|\n  s.name = \"rack\"\n  s.version = Rack::RELEASE\nend\n";

pub(crate) const INSTALLED_JSON: &str = r#"{
    "packages": [
        {"name": "symfony/http-kernel", "version": "v5.4.0", "version_normalized": "5.4.0.0",
         "type": "library", "license": ["MIT"], "install-path": "../symfony/http-kernel"},
        {"name": "monolog/monolog", "version": "2.9.1", "version_normalized": "2.9.1.0",
         "type": "library", "license": ["MIT"]}
    ],
    "dev": true,
    "dev-package-names": []
}"#;

pub(crate) const DEPS_JSON: &str = r#"{
  "runtimeTarget": {"name": ".NETCoreApp,Version=v8.0", "signature": ""},
  "compilationOptions": {},
  "targets": {".NETCoreApp,Version=v8.0": {
      "MyApp/1.0.0": {"dependencies": {"Newtonsoft.Json": "12.0.3"}, "runtime": {"MyApp.dll": {}}},
      "Newtonsoft.Json/12.0.3": {"runtime": {"lib/netstandard2.0/Newtonsoft.Json.dll": {}}}}},
  "libraries": {
    "MyApp/1.0.0": {"type": "project", "serviceable": false, "sha512": ""},
    "Newtonsoft.Json/12.0.3": {"type": "package", "serviceable": true,
      "sha512": "sha512-abc", "path": "newtonsoft.json/12.0.3",
      "hashPath": "newtonsoft.json.12.0.3.nupkg.sha512"},
    "System.Text.Json/8.0.0": {"type": "package", "serviceable": true}
  }
}"#;

/// What cargo-auditable embeds: the root crate, crates.io runtime and build
/// dependencies, a path dependency.
pub(crate) const DEP_TREE: &str = r#"{"packages":[
    {"name":"rustapp","version":"0.3.0","source":"local","dependencies":[1,2,3,4],"root":true},
    {"name":"serde","version":"1.0.200","source":"crates.io","dependencies":[2]},
    {"name":"serde_derive","version":"1.0.200","source":"crates.io","kind":"build"},
    {"name":"smallvec","version":"1.6.0","source":"crates.io"},
    {"name":"helper","version":"0.1.0","source":"local"}
]}"#;

pub(crate) fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// An x86-64 ELF executable as a linker lays it out: header, `.text` (32 KiB, so the
/// file is the size of a small real binary), `.dep-v0` when given, `.shstrtab`, and
/// the section header table last.
fn rust_elf(dep: Option<&[u8]>) -> Vec<u8> {
    auditable_elf(dep, 32 << 10)
}

/// [`rust_elf`] with `.text` of `text_len` bytes (the fuzz seeds are small).
pub(crate) fn auditable_elf(dep: Option<&[u8]>, text_len: usize) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, v: u64, width: usize) {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    let text = vec![0xc3u8; text_len];
    let dep = dep.unwrap_or_default();
    let names: &[u8] = b"\0.text\0.dep-v0\0.shstrtab\0";
    let text_off = 64u64;
    let dep_off = text_off + text.len() as u64;
    let str_off = dep_off + dep.len() as u64;
    let shoff = (str_off + names.len() as u64).next_multiple_of(8);
    let shnum = 4u64;
    let mut out = b"\x7fELF\x02\x01\x01".to_vec();
    out.resize(16, 0);
    put(&mut out, 2, 2); // ET_EXEC
    put(&mut out, 62, 2); // EM_X86_64
    put(&mut out, 1, 4); // EV_CURRENT
    put(&mut out, 0x401000, 8); // e_entry
    put(&mut out, 0, 8); // e_phoff
    put(&mut out, shoff, 8);
    put(&mut out, 0, 4); // e_flags
    put(&mut out, 64, 2); // e_ehsize
    put(&mut out, 0, 2);
    put(&mut out, 0, 2);
    put(&mut out, 64, 2); // e_shentsize
    put(&mut out, shnum, 2);
    put(&mut out, 3, 2); // e_shstrndx
    out.extend_from_slice(&text);
    out.extend_from_slice(dep);
    out.extend_from_slice(names);
    out.resize(shoff as usize, 0);
    let mut header = |name: u64, kind: u64, flags: u64, off: u64, size: u64| {
        put(&mut out, name, 4);
        put(&mut out, kind, 4);
        put(&mut out, flags, 8);
        put(&mut out, 0, 8);
        put(&mut out, off, 8);
        put(&mut out, size, 8);
        put(&mut out, 0, 4);
        put(&mut out, 0, 4);
        put(&mut out, 1, 8);
        put(&mut out, 0, 8);
    };
    header(0, 0, 0, 0, 0);
    header(1, 1, 6, text_off, text.len() as u64);
    // Without a dependency list the slot is a note section named like it is not.
    let dep_name = if dep.is_empty() { 1 } else { 7 };
    header(dep_name, 1, 0, dep_off, dep.len() as u64);
    header(15, 3, 0, str_off, names.len() as u64);
    out
}

fn app_layer() -> Layer {
    Layer::from_entries(
        &[
            Entry::file(
                "usr/local/bundle/specifications/rack-2.2.8.gemspec",
                GEMSPEC,
            ),
            Entry::file(
                "usr/local/bundle/gems/rack-2.2.8/rack.gemspec",
                SOURCE_GEMSPEC,
            ),
            Entry::file(
                "var/www/html/vendor/composer/installed.json",
                INSTALLED_JSON,
            ),
            Entry::file("app/MyApp.deps.json", DEPS_JSON),
            Entry::file_mode(
                "usr/local/bin/rustapp",
                rust_elf(Some(&zlib(DEP_TREE.as_bytes()))),
                0o755,
            ),
        ],
        Compression::Gzip,
    )
}

use crate::scan::scan;

type Row = (PackageType, String, String, String, String);

fn rows(r: &ScanReport) -> Vec<Row> {
    r.packages
        .iter()
        .map(|p| {
            (
                p.kind,
                p.name.clone(),
                p.version.clone(),
                p.purl.clone(),
                p.path.clone(),
            )
        })
        .collect()
}

fn row(kind: PackageType, name: &str, version: &str, purl: &str, path: &str) -> Row {
    (kind, name.into(), version.into(), purl.into(), path.into())
}

fn expected_packages() -> Vec<Row> {
    use PackageType::*;
    let bin = "/usr/local/bin/rustapp";
    let composer = "/var/www/html/vendor/composer/installed.json";
    let deps = "/app/MyApp.deps.json";
    vec![
        row(Rust, "serde", "1.0.200", "pkg:cargo/serde@1.0.200", bin),
        row(Rust, "smallvec", "1.6.0", "pkg:cargo/smallvec@1.6.0", bin),
        row(
            RustBinary,
            "rustapp",
            "0.3.0",
            "pkg:cargo/rustapp@0.3.0",
            bin,
        ),
        row(
            Gem,
            "rack",
            "2.2.8",
            "pkg:gem/rack@2.2.8",
            "/usr/local/bundle/specifications/rack-2.2.8.gemspec",
        ),
        row(
            Composer,
            "monolog/monolog",
            "2.9.1",
            "pkg:composer/monolog/monolog@2.9.1",
            composer,
        ),
        row(
            Composer,
            "symfony/http-kernel",
            "v5.4.0",
            "pkg:composer/symfony/http-kernel@v5.4.0",
            composer,
        ),
        row(
            NuGet,
            "Newtonsoft.Json",
            "12.0.3",
            "pkg:nuget/Newtonsoft.Json@12.0.3",
            deps,
        ),
        row(
            NuGet,
            "System.Text.Json",
            "8.0.0",
            "pkg:nuget/System.Text.Json@8.0.0",
            deps,
        ),
    ]
}

const CRITICAL: &str =
    r#"[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]"#;

fn osv(dir: &Path, id: &str, ecosystem: &str, name: &str, introduced: &str, fixed: &str) {
    let record = format!(
        r#"{{"schema_version": "1.6.0", "id": "{id}", "modified": "2026-01-01T00:00:00Z",
            "summary": "fixture", "severity": {CRITICAL},
            "affected": [{{"package": {{"ecosystem": "{ecosystem}", "name": "{name}"}},
              "ranges": [{{"type": "ECOSYSTEM", "events": [{{"introduced": "{introduced}"}}, {{"fixed": "{fixed}"}}]}}]}}]}}"#
    );
    std::fs::write(dir.join(format!("{id}.json")), record).unwrap();
}

/// For each ecosystem a record the image is affected by and records it is not: the
/// installed version is the fix, or above a pre-release fix in that ecosystem's order,
/// or the package is one the scan rightly does not report.
fn vulndb(dir: &Path) -> PathBuf {
    let osv_dir = dir.join("osv");
    std::fs::create_dir_all(&osv_dir).unwrap();
    #[rustfmt::skip]
    let records = [
        // RubyGems: 2.2.8 < 2.2.8.1; 2.2.8.rc1 < 2.2.8
        ("GHSA-ruby-0001", "RubyGems", "rack", "0", "2.2.8.1"),
        ("GHSA-ruby-0002", "RubyGems", "rack", "0", "2.2.8"),
        ("GHSA-ruby-0003", "RubyGems", "rack", "2.0.0", "2.2.8.rc1"),
        // Packagist: the installed `v5.4.0` is 5.4.0; 5.4.0-RC1 < 5.4.0 < 5.4.0-patch1
        ("GHSA-php-0001", "Packagist", "symfony/http-kernel", "5.0.0", "5.4.20"),
        ("GHSA-php-0002", "Packagist", "symfony/http-kernel", "5.0.0", "5.4.0-RC1"),
        ("GHSA-php-0003", "Packagist", "Monolog/Monolog", "2.0.0", "2.9.1.1"),
        ("GHSA-php-0004", "Packagist", "monolog/monolog", "2.0.0", "2.9.1"),
        // NuGet: ids case-insensitive; 12.0.3-BETA1 < 12.0.3
        ("GHSA-net-0001", "NuGet", "Newtonsoft.Json", "0", "13.0.1"),
        ("GHSA-net-0002", "NuGet", "newtonsoft.json", "12.0.0", "12.0.3-BETA1"),
        ("GHSA-net-0003", "NuGet", "System.Text.Json", "8.0.0", "8.0.4"),
        ("GHSA-net-0004", "NuGet", "System.Text.Json", "8.0.0-rc.1", "8.0.0"),
        // crates.io: runtime crates only; the build-time proc macro and the root crate
        // are not matched
        ("RUSTSEC-2021-0003", "crates.io", "smallvec", "0.6.3", "1.6.1"),
        ("RUSTSEC-2099-0001", "crates.io", "serde", "0", "1.0.200"),
        ("RUSTSEC-2099-0002", "crates.io", "serde_derive", "0", "1.0.201"),
        ("RUSTSEC-2099-0003", "crates.io", "rustapp", "0", "0.4.0"),
    ];
    for (id, ecosystem, name, introduced, fixed) in records {
        osv(&osv_dir, id, ecosystem, name, introduced, fixed);
    }
    let path = dir.join("vulndb.redb");
    let mut db = VulnDb::open(&path).unwrap();
    let report = db.import(&[osv_dir]).unwrap();
    assert_eq!(report.added, records.len() as u64, "{report:?}");
    path
}

const AFFECTED: [(&str, &str, &str); 5] = [
    ("GHSA-net-0001", "Newtonsoft.Json", "13.0.1"),
    ("GHSA-net-0003", "System.Text.Json", "8.0.4"),
    ("GHSA-php-0001", "symfony/http-kernel", "5.4.20"),
    ("GHSA-php-0003", "monolog/monolog", "2.9.1.1"),
    ("GHSA-ruby-0001", "rack", "2.2.8.1"),
];

fn expected_vulns() -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = AFFECTED
        .iter()
        .chain(&[("RUSTSEC-2021-0003", "smallvec", "1.6.1")])
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn language_packages_are_inventoried_and_matched() {
    let layer = app_layer();
    let report = scan(std::slice::from_ref(&layer));
    assert!(report.files.is_empty(), "{:?}", report.files);
    assert_eq!(rows(&report), expected_packages());
    assert!(report.packages.iter().all(|p| p.layer == layer.digest));
    let rack = report.packages.iter().find(|p| p.name == "rack").unwrap();
    assert_eq!(rack.licenses, ["MIT"]);

    let dir = tempfile::tempdir().unwrap();
    let db = VulnDb::open(vulndb(dir.path())).unwrap();
    let mut got: Vec<(String, String, String)> = db
        .matches(report.os.as_ref(), &report.packages)
        .unwrap()
        .into_iter()
        .map(|v| (v.id, v.package, v.fixed_in.unwrap_or_default()))
        .collect();
    got.sort();
    assert_eq!(got, expected_vulns());
}

#[test]
fn cli_scans_language_packages_with_db_and_sbom() {
    let dir = tempfile::tempdir().unwrap();
    let db = vulndb(dir.path());
    let layout = dir.path().join("oci");
    Image::new(vec![app_layer()]).write_oci_layout(&layout, "lang");
    let src = format!("oci:{}:lang", layout.display());
    let bom_path = dir.path().join("bom.json");
    let out = Command::new(crate::support::bin())
        .args(["scan", &src, "--json", "--platform", "linux/amd64", "--db"])
        .arg(&db)
        .args(["--sbom", "cyclonedx-json", "--output"])
        .arg(&bom_path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let mut pkgs: Vec<(String, String, String, String)> = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap().to_string();
            (s("type"), s("name"), s("version"), s("purl"))
        })
        .collect();
    pkgs.sort();
    let mut want: Vec<(String, String, String, String)> = expected_packages()
        .into_iter()
        .map(|(kind, name, version, purl, _)| {
            let kind = serde_json::to_value(kind).unwrap();
            (kind.as_str().unwrap().to_string(), name, version, purl)
        })
        .collect();
    want.sort();
    assert_eq!(pkgs, want);
    let types: std::collections::BTreeSet<&str> = want.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["composer", "gem", "nuget", "rust", "rust-binary"]
    );
    let mut vulns: Vec<(String, String, String)> = v["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let s = |k: &str| x[k].as_str().unwrap_or_default().to_string();
            (s("id"), s("package"), s("fixed_in"))
        })
        .collect();
    vulns.sort();
    assert_eq!(vulns, expected_vulns());
    assert_eq!(v["decision"], "deny");
    assert_eq!(out.status.code(), Some(1));

    // The SBOM carries every new type and still validates; the binary's own crate is
    // the application.
    let bom: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bom_path).unwrap()).unwrap();
    crate::scan::validate_cyclonedx(&bom);
    let comps = bom["components"].as_array().unwrap();
    assert_eq!(comps.len(), want.len());
    let app = comps.iter().find(|c| c["name"] == "rustapp").unwrap();
    assert_eq!(app["type"], "application");
    assert_eq!(app["purl"], "pkg:cargo/rustapp@0.3.0");
    assert!(
        comps
            .iter()
            .any(|c| c["purl"] == "pkg:nuget/Newtonsoft.Json@12.0.3")
    );
    let spdx_path = dir.path().join("spdx.json");
    let out = Command::new(crate::support::bin())
        .args([
            "scan",
            &src,
            "--platform",
            "linux/amd64",
            "--sbom",
            "spdx-json",
            "--output",
        ])
        .arg(&spdx_path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spdx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spdx_path).unwrap()).unwrap();
    crate::scan::validate_spdx(&spdx);
    let locators: Vec<&str> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().into_iter().flatten())
        .map(|r| r["referenceLocator"].as_str().unwrap())
        .collect();
    for (_, _, _, purl) in &want {
        assert!(locators.contains(&purl.as_str()), "{purl} in {locators:?}");
    }
}

#[test]
fn upper_layers_replace_and_delete_language_inventory() {
    // The binary rebuilt without cargo-auditable, installed.json deleted, the gem
    // specification replaced by a newer release's.
    let upper = Layer::from_entries(
        &[
            Entry::file_mode("usr/local/bin/rustapp", rust_elf(None), 0o755),
            Entry::whiteout("var/www/html/vendor/composer/installed.json"),
            Entry::file(
                "usr/local/bundle/specifications/rack-2.2.8.gemspec",
                GEMSPEC.replace("2.2.8", "2.2.8.1"),
            ),
        ],
        Compression::Zstd,
    );
    let report = scan(&[app_layer(), upper.clone()]);
    assert!(report.files.is_empty(), "{:?}", report.files);
    let got: Vec<(PackageType, &str, &str)> = report
        .packages
        .iter()
        .map(|p| (p.kind, p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (PackageType::Gem, "rack", "2.2.8.1"),
            (PackageType::NuGet, "Newtonsoft.Json", "12.0.3"),
            (PackageType::NuGet, "System.Text.Json", "8.0.0"),
        ]
    );
    let rack = &report.packages[0];
    assert_eq!(rack.layer, upper.digest);
}

/// Ruby's own gems in a distro's ruby package are the OS package's (matched as such);
/// a gem installed with `gem install` is a gem.
#[test]
fn gems_the_os_package_manager_owns_are_not_reported_again() {
    let default_gem = "usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec";
    let layer = Layer::from_entries(
        &[
            Entry::file(
                "var/lib/dpkg/status",
                "Package: libruby3.1\nStatus: install ok installed\nArchitecture: amd64\nSource: ruby3.1\nVersion: 3.1.2-7+deb12u1\n",
            ),
            Entry::file(
                "var/lib/dpkg/info/libruby3.1:amd64.list",
                format!("/.\n/usr/lib/ruby/3.1.0/json.rb\n/{default_gem}\n"),
            ),
            Entry::file(
                default_gem,
                "# stub: json 2.6.1 ruby lib\nGem::Specification.new do |s|\n  s.name = \"json\".freeze\n  s.version = \"2.6.1\"\nend\n",
            ),
            Entry::file(
                "var/lib/gems/3.1.0/specifications/rack-2.2.8.gemspec",
                GEMSPEC,
            ),
        ],
        Compression::Gzip,
    );
    let report = scan(&[layer]);
    let got: Vec<(PackageType, &str)> = report
        .packages
        .iter()
        .map(|p| (p.kind, p.name.as_str()))
        .collect();
    assert_eq!(
        got,
        [(PackageType::Deb, "libruby3.1"), (PackageType::Gem, "rack")]
    );
}

#[test]
fn a_bad_dependency_list_is_reported_not_fatal() {
    // A decompression bomb in .dep-v0 (64 MiB of spaces) and a list that is not a
    // dependency list are reported as not examined, never as integrity failures.
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..64 {
        z.write_all(&spaces).unwrap();
    }
    let bomb = z.finish().unwrap();
    let layer = Layer::from_entries(
        &[
            Entry::file_mode("usr/bin/bomb", rust_elf(Some(&bomb)), 0o755),
            Entry::file_mode(
                "usr/bin/junk",
                rust_elf(Some(&zlib(b"{\"packages\": 5}"))),
                0o755,
            ),
            Entry::file_mode("usr/bin/plain", rust_elf(None), 0o755),
            // Section headers that point nowhere: an odd ELF, not a dependency list.
            Entry::file_mode(
                "usr/bin/odd",
                {
                    let mut e = b"\x7fELF\x02\x01\x01".to_vec();
                    e.resize(40 << 10, 0x90);
                    e
                },
                0o755,
            ),
        ],
        Compression::Gzip,
    );
    let report = scan(&[layer]);
    assert!(report.packages.is_empty(), "{:?}", report.packages);
    let mut found: Vec<(FileFindingKind, &str)> = report
        .files
        .iter()
        .map(|f| (f.kind, f.path.as_str()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            (FileFindingKind::NotExamined, "/usr/bin/bomb"),
            (FileFindingKind::NotExamined, "/usr/bin/junk"),
        ]
    );
    assert!(
        report.files[0].detail.contains(".dep-v0"),
        "{:?}",
        report.files
    );
    assert!(!report.files.iter().any(|f| f.kind.is_integrity_failure()));
}
