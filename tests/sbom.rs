//! SBOMs of a scanned image: purls as Syft writes them for the same packages, licenses
//! in SPDX terms, dependency relationships and vulnerabilities, both formats valid
//! against their schemas.

use std::collections::HashMap;

use pullwarden::report::{ScanReport, Severity, Vulnerability};
use pullwarden::scan::sbom::{self, SbomSubject};

use crate::scan::{OS_RELEASE, scan, validate_cyclonedx, validate_spdx};
use crate::support::image::{Compression, Entry, Layer};

const STATUS: &str = "Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u10
Depends: libgcc-s1

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14+b1
Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)

Package: gcc-12-base
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14

Package: passwd
Status: install ok installed
Architecture: amd64
Source: shadow
Version: 1:4.13+dfsg1-1+b1
Pre-Depends: libc6 (>= 2.34)
Depends: libpam-modules | libpam0g

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
Pre-Depends: libc6 (>= 2.36)
";

const GLIBC_COPYRIGHT: &str =
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: GNU C Library

Files: *
Copyright: 1991-2023 Free Software Foundation, Inc.
License: LGPL-2.1+

Files: sunrpc/*
Copyright: 2010 Oracle America, Inc.
License: BSD-3-clause

Files: debian/*
License: GPL-2+ or Artistic

Files: timezone/*
License: public-domain
";

fn image() -> Vec<Layer> {
    let base = Layer::from_entries(
        &[
            Entry::file("usr/lib/os-release", OS_RELEASE),
            Entry::symlink("etc/os-release", "../usr/lib/os-release"),
            Entry::file("var/lib/dpkg/status", STATUS),
            Entry::file("usr/share/doc/libc6/copyright", GLIBC_COPYRIGHT),
            // Free-form (not DEP-5): no license names taken from it.
            Entry::file(
                "usr/share/doc/bash/copyright",
                "This is Debian GNU/Linux's prepackaged version of bash.\nLicense: GPL\n",
            ),
            Entry::file(
                "usr/share/doc/passwd/copyright",
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: BSD-3-clause\n",
            ),
        ],
        Compression::Gzip,
    );
    let app = Layer::from_entries(
        &[
            Entry::file(
                "usr/local/lib/python3.11/site-packages/Flask_Login-0.6.3.dist-info/METADATA",
                "Metadata-Version: 2.1\nName: Flask-Login\nVersion: 0.6.3\nClassifier: License :: OSI Approved :: MIT License\n",
            ),
            Entry::file(
                "usr/local/lib/python3.11/site-packages/attrs-23.2.0.dist-info/METADATA",
                "Metadata-Version: 2.4\nName: attrs\nVersion: 23.2.0\nLicense-Expression: MIT OR Apache-2.0\nLicense: MIT\n",
            ),
            Entry::file(
                "app/node_modules/@babel/core/package.json",
                r#"{"name":"@babel/core","version":"7.24.0","license":{"type":"MIT"}}"#,
            ),
            Entry::file(
                "app/node_modules/old/package.json",
                r#"{"name":"old","version":"0.1.0","licenses":[{"type":"BSD-2-Clause"}]}"#,
            ),
            Entry::file(
                "var/www/vendor/composer/installed.json",
                r#"{"packages":[{"name":"monolog/monolog","version":"2.9.1","license":["MIT"]}]}"#,
            ),
            // passwd's copyright replaced by a later layer: the later one counts.
            Entry::file(
                "usr/share/doc/passwd/copyright",
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n",
            ),
        ],
        Compression::Zstd,
    );
    vec![base, app]
}

fn subject() -> SbomSubject {
    SbomSubject {
        name: "registry.example/app:1".into(),
        digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111".into(),
        created: time::OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap(),
    }
}

fn purls(r: &ScanReport) -> HashMap<String, String> {
    r.packages
        .iter()
        .map(|p| (p.name.clone(), p.purl.clone()))
        .collect()
}

/// Syft's purls for these packages (its catalogers' namespace and qualifiers, sorted;
/// `upstream=SRC` or `SRC@VERSION`; `distro=<id>-<version_id>`). Syft's Go library
/// percent-encodes `:` in a version (`1%3A4.13…`) where the purl spec's test suite
/// does not (`pkg:deb/debian/attr@1:2.4.47-2`): ours is the spec's; both parse the same.
const SYFT: &[(&str, &str)] = &[
    (
        "libc6",
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc",
    ),
    (
        "libgcc-s1",
        "pkg:deb/debian/libgcc-s1@12.2.0-14%2Bb1?arch=amd64&distro=debian-12&upstream=gcc-12%4012.2.0-14",
    ),
    (
        "gcc-12-base",
        "pkg:deb/debian/gcc-12-base@12.2.0-14?arch=amd64&distro=debian-12&upstream=gcc-12",
    ),
    (
        "passwd",
        "pkg:deb/debian/passwd@1%3A4.13%2Bdfsg1-1%2Bb1?arch=amd64&distro=debian-12&upstream=shadow",
    ),
    (
        "bash",
        "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12",
    ),
    ("Flask-Login", "pkg:pypi/flask-login@0.6.3"),
    ("attrs", "pkg:pypi/attrs@23.2.0"),
    ("@babel/core", "pkg:npm/%40babel/core@7.24.0"),
    ("old", "pkg:npm/old@0.1.0"),
    ("monolog/monolog", "pkg:composer/monolog/monolog@2.9.1"),
];

#[test]
fn purls_are_syfts() {
    let r = scan(&image());
    let ours = purls(&r);
    for (name, syft) in SYFT {
        let got = ours
            .get(*name)
            .unwrap_or_else(|| panic!("{name} not found"));
        assert_eq!(*got, syft.replace("%3A", ":"), "{name}");
        // Same components when parsed, Syft's spelling or ours.
        let a: packageurl::PackageUrl = got.parse().unwrap();
        let b: packageurl::PackageUrl = syft.parse().unwrap();
        assert_eq!(a, b, "{name}");
    }
}

fn component<'a>(bom: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the BOM"))
}

fn with_vulnerabilities(mut r: ScanReport) -> ScanReport {
    let libc = r
        .packages
        .iter()
        .find(|p| p.name == "libc6")
        .unwrap()
        .clone();
    r.vulnerabilities.push(Vulnerability {
        id: "DSA-5678-1".into(),
        aliases: vec!["CVE-2024-2961".into()],
        package: libc.name.clone(),
        installed_version: libc.version.clone(),
        ecosystem: "Debian:12".into(),
        fixed_in: Some("2.36-9+deb12u7".into()),
        fix_channel: None,
        severity: Severity::High,
        // The f32 nearest 8.8, as a database stores it.
        score: Some(8.8_f32),
        summary: Some("glibc: out-of-bounds write in iconv".into()),
        purl: libc.purl.clone(),
        layer: libc.layer.clone(),
    });
    r
}

#[test]
fn cyclonedx_licenses_dependencies_and_vulnerabilities() {
    let r = with_vulnerabilities(scan(&image()));
    let bom = sbom::cyclonedx(&subject(), &r);
    validate_cyclonedx(&bom);
    // One SPDX id: `license.id`; several: each its own; an expression: `expression`.
    assert_eq!(
        component(&bom, "Flask-Login")["licenses"],
        serde_json::json!([{"license": {"id": "MIT"}}])
    );
    assert_eq!(
        component(&bom, "attrs")["licenses"],
        serde_json::json!([{"expression": "MIT OR Apache-2.0"}])
    );
    assert_eq!(
        component(&bom, "@babel/core")["licenses"],
        serde_json::json!([{"license": {"id": "MIT"}}])
    );
    assert_eq!(
        component(&bom, "old")["licenses"],
        serde_json::json!([{"license": {"id": "BSD-2-Clause"}}])
    );
    // glibc's DEP-5 file: every distinct License, an expression among them, so one
    // expression; the free-text name as a LicenseRef.
    assert_eq!(
        component(&bom, "libc6")["licenses"],
        serde_json::json!([{"expression": "LGPL-2.1-or-later AND BSD-3-Clause AND (GPL-2.0-or-later OR Artistic-1.0) AND LicenseRef-public-domain"}])
    );
    // The upper layer's copyright file wins; a free-form file gives nothing.
    assert_eq!(
        component(&bom, "passwd")["licenses"],
        serde_json::json!([{"license": {"id": "GPL-2.0-or-later"}}])
    );
    assert!(component(&bom, "bash").get("licenses").is_none());

    // dependsOn from dpkg's Depends/Pre-Depends, to packages that are installed.
    let refs: HashMap<&str, &str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["bom-ref"].as_str().unwrap()))
        .collect();
    let deps: HashMap<&str, Vec<&str>> = bom["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["ref"].as_str().unwrap(),
                d["dependsOn"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    let mut gcc = deps[refs["libgcc-s1"]].clone();
    gcc.sort();
    let mut want = vec![refs["gcc-12-base"], refs["libc6"]];
    want.sort();
    assert_eq!(gcc, want);
    // libpam-* are not installed: only libc6.
    assert_eq!(deps[refs["passwd"]], [refs["libc6"]]);
    assert_eq!(deps[refs["bash"]], [refs["libc6"]]);
    assert!(deps[refs["Flask-Login"]].is_empty());

    // The vulnerability, rated and pointing at libc6's component.
    let vulns = bom["vulnerabilities"].as_array().unwrap();
    assert_eq!(vulns.len(), 1);
    let v = &vulns[0];
    assert_eq!(v["id"], "DSA-5678-1");
    assert_eq!(v["source"]["name"], "Debian");
    assert_eq!(v["ratings"][0]["severity"], "high");
    assert_eq!(v["ratings"][0]["score"], 8.8);
    assert_eq!(v["affects"][0]["ref"], refs["libc6"]);
    assert_eq!(v["references"][0]["id"], "CVE-2024-2961");
    // No vulnerabilities in the report: no section.
    let plain = sbom::cyclonedx(&subject(), &scan(&image()));
    assert!(plain.get("vulnerabilities").is_none());
}

#[test]
fn spdx_declared_licenses_and_depends_on() {
    let r = scan(&image());
    let doc = sbom::spdx(&subject(), &r);
    validate_spdx(&doc);
    let pkg = |name: &str| {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(pkg("Flask-Login")["licenseDeclared"], "MIT");
    assert_eq!(pkg("attrs")["licenseDeclared"], "MIT OR Apache-2.0");
    assert_eq!(pkg("bash")["licenseDeclared"], "NOASSERTION");
    assert_eq!(
        pkg("libc6")["licenseDeclared"],
        "LGPL-2.1-or-later AND BSD-3-Clause AND (GPL-2.0-or-later OR Artistic-1.0) AND LicenseRef-public-domain"
    );
    // Every declared license is a valid SPDX expression (a LicenseRef defined in the
    // document), NOASSERTION otherwise.
    let refs: Vec<&str> = doc["hasExtractedLicensingInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["licenseId"].as_str().unwrap())
        .collect();
    assert_eq!(refs, ["LicenseRef-public-domain"]);
    for p in doc["packages"].as_array().unwrap() {
        let d = p["licenseDeclared"].as_str().unwrap();
        if d != "NOASSERTION" {
            let e = spdx::Expression::parse(d).unwrap_or_else(|e| panic!("{d}: {e}"));
            for req in e.requirements() {
                if let spdx::LicenseItem::Other(r) = &req.req.license {
                    let lic_ref = &r.lic_ref;
                    assert!(refs.contains(&format!("LicenseRef-{lic_ref}").as_str()));
                }
            }
        }
        assert_eq!(p["licenseConcluded"], "NOASSERTION");
    }
    let id = |name: &str| pkg(name)["SPDXID"].as_str().unwrap().to_string();
    let depends: Vec<(String, String)> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "DEPENDS_ON")
        .map(|r| {
            (
                r["spdxElementId"].as_str().unwrap().to_string(),
                r["relatedSpdxElement"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(depends.contains(&(id("libgcc-s1"), id("gcc-12-base"))));
    assert!(depends.contains(&(id("libgcc-s1"), id("libc6"))));
    assert!(depends.contains(&(id("passwd"), id("libc6"))));
    assert_eq!(depends.len(), 5, "{depends:?}");
}
