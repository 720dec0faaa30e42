//! Package URLs (https://github.com/package-url/purl-spec) of installed packages, built
//! with the `packageurl` crate in the spec's canonical encoding, with Syft's choice of
//! namespace and qualifiers per type (so a purl from us names what Syft's names):
//!
//! - deb `pkg:deb/<distro id>/NAME@VERSION?arch=A&distro=<id>-<version_id>&upstream=SRC`
//!   (`upstream=SRC@SRCVERSION` when the source version differs);
//! - apk `pkg:apk/<distro id>/NAME@VERSION?arch=A&distro=…&upstream=ORIGIN` (origin
//!   only when it differs from the name);
//! - rpm `pkg:rpm/<distro id>/NAME@VERSION-RELEASE?arch=A&distro=…&epoch=E&upstream=SRPM`
//!   (`rhel` is `redhat`; the epoch is a qualifier; SRPM is the source rpm's file name);
//! - pypi (PEP 503 name), npm (scope as namespace), golang, maven (group as namespace),
//!   cargo, gem, composer (lowercased `vendor/name`), nuget (case kept).
//!
//! Encoding: the spec's test suite's, which is the crate's: `+` and `@` are
//! percent-encoded, `:` is not (`pkg:deb/debian/passwd@1:4.13%2Bdfsg1-1`). Syft's Go
//! library also encodes `:` (`1%3A4.13…`); both parse to the same purl.

use packageurl::PackageUrl;

use crate::report::{Distro, Package, PackageType};

use super::analyzers::python;

/// The purl of `p` in an image whose os-release is `os`. Never fails: a component the
/// crate refuses (an empty name) gives the best-effort string the spec's grammar allows.
pub fn purl(p: &Package, os: Option<&Distro>) -> String {
    build(p, os).unwrap_or_else(|_| format!("pkg:generic/{}", p.name.replace(['/', '@'], "_")))
}

fn build(p: &Package, os: Option<&Distro>) -> Result<String, packageurl::Error> {
    let distro_id = os
        .map(|d| d.id.to_ascii_lowercase())
        .filter(|s| !s.is_empty());
    let distro_q = os
        .filter(|d| !d.id.is_empty())
        .map(|d| match &d.version_id {
            Some(v) if !v.is_empty() => format!("{}-{v}", d.id),
            _ => d.id.clone(),
        });
    let version = p.version.as_str();
    let s = match p.kind {
        PackageType::Deb => {
            let mut u = PackageUrl::new("deb", p.name.as_str())?;
            u.with_namespace(distro_id.as_deref().unwrap_or("debian"))?;
            u.with_version(version)?;
            os_qualifiers(&mut u, p, distro_q.as_deref())?;
            if let Some(src) = upstream(p) {
                u.add_qualifier("upstream", src)?;
            }
            u.to_string()
        }
        PackageType::Apk => {
            let mut u = PackageUrl::new("apk", p.name.as_str())?;
            u.with_namespace(distro_id.as_deref().unwrap_or("alpine"))?;
            u.with_version(version)?;
            os_qualifiers(&mut u, p, distro_q.as_deref())?;
            if let Some(origin) = p.source_name.as_deref().filter(|o| *o != p.name) {
                u.add_qualifier("upstream", origin)?;
            }
            u.to_string()
        }
        PackageType::Rpm => {
            let ns = match distro_id.as_deref() {
                None | Some("rhel") => "redhat",
                Some(id) if id.starts_with("opensuse") => "opensuse",
                Some(id) => id,
            };
            let (epoch, vr) = split_epoch(version);
            let mut u = PackageUrl::new("rpm", p.name.as_str())?;
            u.with_namespace(ns)?;
            u.with_version(vr)?;
            os_qualifiers(&mut u, p, distro_q.as_deref())?;
            if let Some(e) = epoch {
                u.add_qualifier("epoch", e)?;
            }
            if let Some(srpm) = source_rpm(p, vr) {
                u.add_qualifier("upstream", srpm)?;
            }
            u.to_string()
        }
        PackageType::Python => {
            let mut u = PackageUrl::new("pypi", python::normalize_name(&p.name))?;
            u.with_version(version)?;
            u.to_string()
        }
        PackageType::Npm => {
            let mut u = match p.name.split_once('/') {
                Some((scope, name)) if scope.starts_with('@') => {
                    let mut u = PackageUrl::new("npm", name)?;
                    u.with_namespace(scope)?;
                    u
                }
                _ => PackageUrl::new("npm", p.name.as_str())?,
            };
            u.with_version(version)?;
            u.to_string()
        }
        PackageType::Go | PackageType::GoModule => {
            // The module path's last element is the name, the rest the namespace. The
            // toolchain is `stdlib@1.22.1` (Syft's form; the record keeps Go's `v1.22.1`).
            let version = match p.name.as_str() {
                "stdlib" => version.trim_start_matches("go").trim_start_matches('v'),
                _ => version,
            };
            let mut u = match p.name.rsplit_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                    let mut u = PackageUrl::new("golang", name)?;
                    u.with_namespace(ns)?;
                    u
                }
                _ => PackageUrl::new("golang", p.name.as_str())?,
            };
            u.with_version(version)?;
            u.to_string()
        }
        PackageType::Java => {
            let mut u = match p.name.split_once(':') {
                Some((g, a)) if !g.is_empty() && !a.is_empty() => {
                    let mut u = PackageUrl::new("maven", a)?;
                    u.with_namespace(g)?;
                    u
                }
                _ => PackageUrl::new("maven", p.name.as_str())?,
            };
            u.with_version(version)?;
            u.to_string()
        }
        PackageType::Rust | PackageType::RustBinary => {
            let mut u = PackageUrl::new("cargo", p.name.as_str())?;
            u.with_version(version)?;
            u.to_string()
        }
        PackageType::Gem => {
            let mut u = PackageUrl::new("gem", p.name.as_str())?;
            u.with_version(version)?;
            u.to_string()
        }
        PackageType::Composer => {
            let lower = p.name.to_ascii_lowercase();
            let mut u = match lower.split_once('/') {
                Some((vendor, name)) if !vendor.is_empty() && !name.is_empty() => {
                    let mut u = PackageUrl::new("composer", name)?;
                    u.with_namespace(vendor)?;
                    u
                }
                _ => PackageUrl::new("composer", lower.as_str())?,
            };
            u.with_version(version)?;
            u.to_string()
        }
        PackageType::NuGet => {
            let mut u = PackageUrl::new("nuget", p.name.as_str())?;
            u.with_version(version)?;
            u.to_string()
        }
    };
    Ok(s)
}

/// `arch` and `distro` (`<id>-<version_id>`, as Syft and the OSV purls of distros).
fn os_qualifiers(
    u: &mut PackageUrl<'_>,
    p: &Package,
    distro: Option<&str>,
) -> Result<(), packageurl::Error> {
    if let Some(a) = p.arch.as_deref().filter(|a| !a.is_empty()) {
        u.add_qualifier("arch", a.to_string())?;
    }
    if let Some(d) = distro {
        u.add_qualifier("distro", d.to_string())?;
    }
    Ok(())
}

/// dpkg's `Source:` as Syft writes it: `SRC`, or `SRC@VERSION` when the source is
/// versioned apart from the binary; nothing for a package that is its own source.
fn upstream(p: &Package) -> Option<String> {
    let src = p.source_name.as_deref().filter(|s| !s.is_empty())?;
    match p.source_version.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => Some(format!("{src}@{v}")),
        None if src != p.name => Some(src.to_string()),
        None => None,
    }
}

/// The epoch of an rpm `E:V-R` and the rest.
fn split_epoch(version: &str) -> (Option<&str>, &str) {
    match version.split_once(':') {
        Some((e, vr)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => (Some(e), vr),
        _ => (None, version),
    }
}

/// The source rpm's file name (`SOURCERPM`, `NAME-VERSION-RELEASE.src.rpm`, no epoch),
/// from the source name and version the analyzer kept.
fn source_rpm(p: &Package, binary_vr: &str) -> Option<String> {
    let src = p.source_name.as_deref().filter(|s| !s.is_empty())?;
    let vr = match p.source_version.as_deref() {
        Some(v) => split_epoch(v).1,
        None => binary_vr,
    };
    Some(format!("{src}-{vr}.src.rpm"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::analyzers::package;

    fn distro(id: &str, v: &str) -> Distro {
        Distro {
            id: id.into(),
            version_id: Some(v.into()),
            ..Default::default()
        }
    }

    /// Syft's purl for the same package, as its catalogers build it (namespace from the
    /// distro, sorted qualifiers, `distro=<id>-<version>`), with Go's `QueryEscape`
    /// of the version. Equal to ours but for `:`, which the spec leaves unencoded.
    fn syft_form(ours: &str) -> String {
        match ours.split_once('@') {
            Some((head, rest)) if !head.contains('?') => {
                let (ver, q) = rest.split_once('?').map_or((rest, ""), |(v, q)| (v, q));
                let q = if q.is_empty() {
                    String::new()
                } else {
                    format!("?{q}")
                };
                format!("{head}@{}{q}", ver.replace(':', "%3A"))
            }
            _ => ours.to_string(),
        }
    }

    #[test]
    fn deb_purls_carry_upstream_and_distro() {
        let d = distro("debian", "12");
        let mut libc = package(PackageType::Deb, "libc6", "2.36-9+deb12u10");
        libc.arch = Some("amd64".into());
        libc.source_name = Some("glibc".into());
        assert_eq!(
            purl(&libc, Some(&d)),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12&upstream=glibc"
        );
        let mut gcc = package(PackageType::Deb, "libgcc-s1", "12.2.0-14+b1");
        gcc.arch = Some("amd64".into());
        gcc.source_name = Some("gcc-12".into());
        gcc.source_version = Some("12.2.0-14".into());
        assert_eq!(
            purl(&gcc, Some(&d)),
            "pkg:deb/debian/libgcc-s1@12.2.0-14%2Bb1?arch=amd64&distro=debian-12&upstream=gcc-12%4012.2.0-14"
        );
        // Its own source: no upstream. An epoch keeps its colon.
        let mut passwd = package(PackageType::Deb, "passwd", "1:4.13+dfsg1-1+b1");
        passwd.arch = Some("amd64".into());
        passwd.source_name = Some("shadow".into());
        passwd.source_version = Some("1:4.13+dfsg1-1".into());
        let ours = purl(&passwd, Some(&d));
        assert_eq!(
            ours,
            "pkg:deb/debian/passwd@1:4.13%2Bdfsg1-1%2Bb1?arch=amd64&distro=debian-12&upstream=shadow%401:4.13%2Bdfsg1-1"
        );
        let mut bash = package(PackageType::Deb, "bash", "5.2.15-2+b2");
        bash.source_name = Some("bash".into());
        assert_eq!(
            purl(&bash, Some(&d)),
            "pkg:deb/debian/bash@5.2.15-2%2Bb2?distro=debian-12"
        );
    }

    #[test]
    fn parsed_back_by_the_crate() {
        let d = distro("debian", "12");
        let mut passwd = package(PackageType::Deb, "passwd", "1:4.13+dfsg1-1");
        passwd.source_name = Some("shadow".into());
        let s = purl(&passwd, Some(&d));
        let u: PackageUrl = s.parse().unwrap();
        assert_eq!(u.version(), Some("1:4.13+dfsg1-1"));
        assert_eq!(
            u.qualifiers().get("upstream").map(|v| v.as_ref()),
            Some("shadow")
        );
        // Syft's spelling of the same purl parses to the same components.
        let syft: PackageUrl = syft_form(&s).parse().unwrap();
        assert_eq!(syft, u);
    }

    #[test]
    fn rpm_apk_and_languages() {
        let rhel = distro("rhel", "9.4");
        let mut ssl = package(PackageType::Rpm, "openssl-libs", "1:3.0.7-27.el9");
        ssl.arch = Some("x86_64".into());
        ssl.source_name = Some("openssl".into());
        assert_eq!(
            purl(&ssl, Some(&rhel)),
            "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1&upstream=openssl-3.0.7-27.el9.src.rpm"
        );
        let mut carp = package(PackageType::Rpm, "perl-Carp", "1.50-460.el9");
        carp.arch = Some("noarch".into());
        carp.source_name = Some("perl".into());
        carp.source_version = Some("4:5.32.1-480.el9".into());
        assert_eq!(
            purl(&carp, Some(&distro("rocky", "9.3"))),
            "pkg:rpm/rocky/perl-Carp@1.50-460.el9?arch=noarch&distro=rocky-9.3&upstream=perl-5.32.1-480.el9.src.rpm"
        );
        let mut ssl3 = package(PackageType::Apk, "libssl3", "3.3.2-r0");
        ssl3.arch = Some("x86_64".into());
        ssl3.source_name = Some("openssl".into());
        assert_eq!(
            purl(&ssl3, Some(&distro("alpine", "3.20.3"))),
            "pkg:apk/alpine/libssl3@3.3.2-r0?arch=x86_64&distro=alpine-3.20.3&upstream=openssl"
        );
        let mut musl = package(PackageType::Apk, "musl", "1.2.5-r0");
        musl.arch = Some("x86_64".into());
        musl.source_name = Some("musl".into());
        assert_eq!(
            purl(&musl, Some(&distro("alpine", "3.20.3"))),
            "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3"
        );
        for (kind, name, version, want) in [
            (
                PackageType::Python,
                "Flask_Login",
                "0.6.3",
                "pkg:pypi/flask-login@0.6.3",
            ),
            (
                PackageType::Npm,
                "@babel/core",
                "7.24.0",
                "pkg:npm/%40babel/core@7.24.0",
            ),
            (
                PackageType::GoModule,
                "github.com/google/uuid",
                "v1.6.0",
                "pkg:golang/github.com/google/uuid@v1.6.0",
            ),
            (
                PackageType::Go,
                "stdlib",
                "v1.22.1",
                "pkg:golang/stdlib@1.22.1",
            ),
            (
                PackageType::Java,
                "org.yaml:snakeyaml",
                "2.2",
                "pkg:maven/org.yaml/snakeyaml@2.2",
            ),
            (PackageType::Gem, "rack", "2.2.8", "pkg:gem/rack@2.2.8"),
            (
                PackageType::Composer,
                "Symfony/http-kernel",
                "v5.4.0",
                "pkg:composer/symfony/http-kernel@v5.4.0",
            ),
            (
                PackageType::NuGet,
                "Newtonsoft.Json",
                "13.0.1",
                "pkg:nuget/Newtonsoft.Json@13.0.1",
            ),
            (
                PackageType::Rust,
                "serde_json",
                "1.0.120",
                "pkg:cargo/serde_json@1.0.120",
            ),
        ] {
            assert_eq!(purl(&package(kind, name, version), None), want);
        }
    }
}
