//! Which OSV ecosystem an installed package belongs to, how its name is normalised, and
//! which ecosystem strings (`Debian:12`, `Ubuntu:22.04:LTS`, `Alpine:v3.20`,
//! `Red Hat:enterprise_linux:9::baseos`, `Rocky Linux:9`, `AlmaLinux:9`,
//! `openSUSE:Leap 15.5`) apply to the image's distro release.

use crate::report::{Distro, Package, PackageType};

use super::version::{Scheme, pep440};

/// OSV ecosystems pullwarden can order versions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ecosystem {
    Debian,
    Ubuntu,
    Alpine,
    /// `Red Hat:<CPE without cpe:/[oa]:redhat:>`; names are binary or source RPMs.
    RedHat,
    RockyLinux,
    AlmaLinux,
    /// `openSUSE:<PRETTY_NAME without "openSUSE ">`; names are source RPMs.
    OpenSuse,
    PyPI,
    Npm,
    Go,
    Maven,
    CratesIo,
    RubyGems,
    /// PHP Composer packages.
    Packagist,
    NuGet,
}

impl Ecosystem {
    /// The ecosystem of an OSV `affected[].package.ecosystem` string (the part before
    /// the first `:`).
    pub fn from_osv(ecosystem: &str) -> Option<Ecosystem> {
        let base = ecosystem.split(':').next().unwrap_or_default();
        Some(match base {
            "Debian" => Ecosystem::Debian,
            "Ubuntu" => Ecosystem::Ubuntu,
            "Alpine" => Ecosystem::Alpine,
            "Red Hat" => Ecosystem::RedHat,
            "Rocky Linux" => Ecosystem::RockyLinux,
            "AlmaLinux" => Ecosystem::AlmaLinux,
            "openSUSE" => Ecosystem::OpenSuse,
            "PyPI" => Ecosystem::PyPI,
            "npm" => Ecosystem::Npm,
            "Go" => Ecosystem::Go,
            "Maven" => Ecosystem::Maven,
            "crates.io" => Ecosystem::CratesIo,
            "RubyGems" => Ecosystem::RubyGems,
            "Packagist" => Ecosystem::Packagist,
            "NuGet" => Ecosystem::NuGet,
            _ => return None,
        })
    }

    pub fn base(self) -> &'static str {
        match self {
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::Alpine => "Alpine",
            Ecosystem::RedHat => "Red Hat",
            Ecosystem::RockyLinux => "Rocky Linux",
            Ecosystem::AlmaLinux => "AlmaLinux",
            Ecosystem::OpenSuse => "openSUSE",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "Go",
            Ecosystem::Maven => "Maven",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::RubyGems => "RubyGems",
            Ecosystem::Packagist => "Packagist",
            Ecosystem::NuGet => "NuGet",
        }
    }

    /// Version order of `ECOSYSTEM` ranges.
    pub fn scheme(self) -> Scheme {
        match self {
            Ecosystem::Debian | Ecosystem::Ubuntu => Scheme::Dpkg,
            Ecosystem::Alpine => Scheme::Apk,
            Ecosystem::RedHat
            | Ecosystem::RockyLinux
            | Ecosystem::AlmaLinux
            | Ecosystem::OpenSuse => Scheme::Rpm,
            Ecosystem::PyPI => Scheme::Pep440,
            Ecosystem::Npm | Ecosystem::CratesIo => Scheme::Semver,
            Ecosystem::Go => Scheme::Go,
            Ecosystem::Maven => Scheme::Maven,
            Ecosystem::RubyGems => Scheme::RubyGems,
            Ecosystem::Packagist => Scheme::Composer,
            Ecosystem::NuGet => Scheme::NuGet,
        }
    }

    /// Version order of `SEMVER` ranges (Go's need its `v`/toolchain handling).
    pub fn semver_scheme(self) -> Scheme {
        if self == Ecosystem::Go {
            Scheme::Go
        } else {
            Scheme::Semver
        }
    }

    /// Package name as the index stores it.
    pub fn normalize_name(self, name: &str) -> String {
        match self {
            Ecosystem::PyPI => pep440::normalize_name(name),
            // crates.io and npm names are case-insensitive on their registries
            Ecosystem::CratesIo => name.trim().to_ascii_lowercase(),
            // Packagist names are lowercase by rule, NuGet ids case-insensitive.
            Ecosystem::Packagist | Ecosystem::NuGet => name.trim().to_ascii_lowercase(),
            _ => name.trim().to_string(),
        }
    }

    /// Index key prefix for a package: `base \0 normalised-name \0`.
    pub fn index_prefix(self, name: &str) -> String {
        format!("{}\0{}\0", self.base(), self.normalize_name(name))
    }
}

/// What to look up for one installed package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub ecosystem: Ecosystem,
    /// Release the ecosystem string must name (`12`, `22.04`, `v3.20`); None for
    /// language ecosystems.
    pub release: Option<String>,
    /// Name advisories are published under (the source package for distros).
    pub name: String,
    /// Version compared against the ranges (the source version for distros).
    pub version: String,
}

/// Map an installed package (and the image's distro) to its OSV lookup, or None when
/// the package's ecosystem is not one we can match exactly (e.g. a deb on an unknown
/// distro, an rpm on Fedora or Amazon Linux, which OSV does not cover: guessing the
/// release is how false positives start). The first of [`targets_for`].
pub fn target_for(pkg: &Package, os: Option<&Distro>) -> Option<Target> {
    targets_for(pkg, os).into_iter().next()
}

/// Every OSV lookup for an installed package: one, except on Red Hat, whose records
/// name binary RPMs and sometimes only the source RPM, so both names are looked up.
pub fn targets_for(pkg: &Package, os: Option<&Distro>) -> Vec<Target> {
    let distro_id = os.map(|d| d.id.to_ascii_lowercase());
    let version_id = os.and_then(|d| d.version_id.as_deref()).map(str::trim);
    let major = || {
        version_id
            .and_then(|v| v.split('.').next())
            .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_string)
    };
    let lookup = match pkg.kind {
        PackageType::Deb => match distro_id.as_deref() {
            Some("debian") => major().map(|m| (Ecosystem::Debian, Some(m))),
            Some("ubuntu") => version_id.map(|v| (Ecosystem::Ubuntu, Some(v.to_string()))),
            _ => None,
        },
        PackageType::Apk => match distro_id.as_deref() {
            Some("alpine") => {
                alpine_branch(version_id.unwrap_or_default()).map(|b| (Ecosystem::Alpine, Some(b)))
            }
            _ => None,
        },
        PackageType::Rpm => match distro_id.as_deref() {
            // UBI images say `rhel` too.
            Some("rhel") => major().map(|m| (Ecosystem::RedHat, Some(m))),
            Some("rocky") => major().map(|m| (Ecosystem::RockyLinux, Some(m))),
            Some("almalinux") => major().map(|m| (Ecosystem::AlmaLinux, Some(m))),
            Some("opensuse-leap" | "opensuse-tumbleweed") => {
                opensuse_release(os).map(|r| (Ecosystem::OpenSuse, Some(r)))
            }
            // SLES: SUSE files advisories per product module and support phase
            // (`SUSE:Linux Enterprise Module for Basesystem 15 SP5`, `… 15 SP5-LTSS`),
            // neither of which os-release names; Fedora, Amazon Linux, CentOS: no OSV
            // ecosystem. Inventory only, no guessed release.
            _ => None,
        },
        PackageType::Python => Some((Ecosystem::PyPI, None)),
        PackageType::Npm => Some((Ecosystem::Npm, None)),
        PackageType::Go | PackageType::GoModule => Some((Ecosystem::Go, None)),
        PackageType::Java => Some((Ecosystem::Maven, None)),
        PackageType::Rust => Some((Ecosystem::CratesIo, None)),
        PackageType::Gem => Some((Ecosystem::RubyGems, None)),
        PackageType::Composer => Some((Ecosystem::Packagist, None)),
        PackageType::NuGet => Some((Ecosystem::NuGet, None)),
        // The crate a Rust binary was built from is the application itself, usually a
        // local path: reported, never matched (its crates.io namesake is another crate).
        PackageType::RustBinary => None,
    };
    let Some((ecosystem, release)) = lookup else {
        return Vec::new();
    };
    let target = |name: &str, version: &str| Target {
        ecosystem,
        release: release.clone(),
        name: name.to_string(),
        version: version.to_string(),
    };
    let source = pkg.source_name.as_deref().filter(|s| !s.is_empty());
    // The source version where the analyzer knows it differs (dpkg `Source: x (v)`,
    // an rpm subpackage versioned apart from its source rpm); otherwise the binary's,
    // which for rpm also carries the epoch the source rpm's file name lacks.
    let source_version = pkg
        .source_version
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(&pkg.version);
    match ecosystem {
        // Published per source package.
        Ecosystem::Debian
        | Ecosystem::Ubuntu
        | Ecosystem::Alpine
        | Ecosystem::RockyLinux
        | Ecosystem::AlmaLinux
        | Ecosystem::OpenSuse => vec![target(source.unwrap_or(&pkg.name), source_version)],
        Ecosystem::RedHat => {
            let mut v = vec![target(&pkg.name, &pkg.version)];
            if let Some(src) = source.filter(|s| *s != pkg.name) {
                v.push(target(src, source_version));
            }
            v
        }
        Ecosystem::PyPI
        | Ecosystem::Npm
        | Ecosystem::Go
        | Ecosystem::Maven
        | Ecosystem::CratesIo
        | Ecosystem::RubyGems
        | Ecosystem::NuGet => vec![target(&pkg.name, &pkg.version)],
        // installed.json keeps the tag as written (`v5.4.0`); advisories use `5.4.0`.
        Ecosystem::Packagist => {
            let v = pkg.version.trim();
            let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
            vec![target(&pkg.name, v)]
        }
    }
}

/// openSUSE's release as OSV spells it: `PRETTY_NAME` without the vendor
/// (`openSUSE Leap 15.5` → `Leap 15.5`, `openSUSE Tumbleweed` → `Tumbleweed`).
fn opensuse_release(os: Option<&Distro>) -> Option<String> {
    let pretty = os?.pretty_name.as_deref()?.trim();
    let rest = pretty.strip_prefix("openSUSE ")?.trim();
    (rest == "Tumbleweed" || rest.starts_with("Leap ")).then(|| rest.to_string())
}

/// Alpine `VERSION_ID` `3.20.3` → `v3.20` (also `3.21_alpha20240807` → `v3.21`).
pub fn alpine_branch(version_id: &str) -> Option<String> {
    let mut parts = version_id.split('.');
    let major = parts.next()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    if major.is_empty() || minor.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("v{major}.{minor}"))
}

/// Whether an OSV ecosystem string is an Ubuntu Pro (ESM) stream (`Ubuntu:Pro:22.04:LTS`).
pub fn is_ubuntu_pro(osv_ecosystem: &str) -> bool {
    osv_ecosystem.starts_with("Ubuntu:Pro:")
}

/// Does the OSV ecosystem string of an affected entry apply to this target?
pub fn applies(osv_ecosystem: &str, target: &Target) -> bool {
    let mut parts = osv_ecosystem.split(':');
    if parts.next() != Some(target.ecosystem.base()) {
        return false;
    }
    match (&target.release, target.ecosystem) {
        // Ubuntu: `22.04`, `22.04:LTS`, and `Pro:22.04:LTS`: advisories whose fix only
        // Ubuntu Pro (ESM) ships still leave the release's own package affected (the
        // match says the fix is Pro's, see [`is_ubuntu_pro`]). Not the FIPS streams.
        (Some(rel), Ecosystem::Ubuntu) => {
            let mut first = parts.next();
            if first == Some("Pro") {
                first = parts.next();
            }
            first == Some(rel.as_str()) && parts.all(|p| p == "LTS")
        }
        // Red Hat: the main RHEL stream of the major release, any repository
        // (`enterprise_linux:9::baseos`, `::appstream`, `::crb`). Not the EUS/AUS/E4S
        // streams (`rhel_eus:9.2::baseos`), whose fixes a UBI or plain RHEL image
        // does not get, nor other products (`openshift:4.14::el9`).
        (Some(rel), Ecosystem::RedHat) => {
            parts.next() == Some("enterprise_linux") && parts.next() == Some(rel.as_str())
        }
        // openSUSE: `Leap 15.5`, and its `NonFree` repository.
        (Some(rel), Ecosystem::OpenSuse) => {
            let rest = osv_ecosystem
                .split_once(':')
                .map(|(_, r)| r)
                .unwrap_or_default();
            rest == rel
                || rest
                    .strip_prefix(rel.as_str())
                    .is_some_and(|s| s == " NonFree")
        }
        // Debian, Alpine, Rocky, Alma: exactly the release; a bare name applies to all.
        (Some(rel), _) => match (parts.next(), parts.next()) {
            (None, _) => true,
            (Some(r), None) => r == rel,
            _ => false,
        },
        // Language ecosystems carry no release.
        (None, _) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(kind: PackageType, name: &str, version: &str, source: Option<(&str, &str)>) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            kind,
            purl: String::new(),
            layer: String::new(),
            path: String::new(),
            source_name: source.map(|s| s.0.to_string()),
            source_version: source.map(|s| s.1.to_string()),
            arch: None,
            licenses: vec![],
            depends: vec![],
            provides: vec![],
        }
    }

    fn distro(id: &str, ver: &str) -> Distro {
        Distro {
            id: id.into(),
            version_id: Some(ver.into()),
            ..Default::default()
        }
    }

    #[test]
    fn distro_targets_use_source_package_and_release() {
        let p = pkg(
            PackageType::Deb,
            "libssl3",
            "3.0.11-1~deb12u1",
            Some(("openssl", "3.0.11-1~deb12u1")),
        );
        let t = target_for(&p, Some(&distro("debian", "12"))).unwrap();
        assert_eq!(t.ecosystem, Ecosystem::Debian);
        assert_eq!(t.release.as_deref(), Some("12"));
        assert_eq!(t.name, "openssl");
        assert!(applies("Debian:12", &t));
        assert!(!applies("Debian:11", &t));
        assert!(!applies("Ubuntu:12", &t));

        let t = target_for(&p, Some(&distro("ubuntu", "22.04"))).unwrap();
        assert!(applies("Ubuntu:22.04", &t));
        assert!(applies("Ubuntu:22.04:LTS", &t));
        assert!(applies("Ubuntu:Pro:22.04:LTS", &t));
        assert!(!applies("Ubuntu:Pro:20.04:LTS", &t));
        assert!(!applies("Ubuntu:Pro:FIPS:22.04:LTS", &t));
        assert!(!applies("Ubuntu:FIPS:22.04:LTS", &t));
        assert!(!applies("Ubuntu:20.04:LTS", &t));

        let a = pkg(
            PackageType::Apk,
            "libcrypto3",
            "3.3.2-r0",
            Some(("openssl", "")),
        );
        let t = target_for(&a, Some(&distro("alpine", "3.20.3"))).unwrap();
        assert_eq!(t.release.as_deref(), Some("v3.20"));
        assert_eq!(t.name, "openssl");
        assert_eq!(t.version, "3.3.2-r0");
        assert!(applies("Alpine:v3.20", &t));
        assert!(!applies("Alpine:v3.2", &t));

        // no distro, unknown distro: nothing to look up
        assert!(target_for(&p, None).is_none());
        assert!(target_for(&p, Some(&distro("kali", "2024"))).is_none());
    }

    #[test]
    fn rpm_targets() {
        let libs = pkg(
            PackageType::Rpm,
            "openssl-libs",
            "1:3.0.7-27.el9",
            Some(("openssl", "")),
        );
        // Red Hat (and UBI): binary and source name, the major release, only the
        // main RHEL stream.
        let t = targets_for(&libs, Some(&distro("rhel", "9.4")));
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].name.as_str(), t[1].name.as_str()),
            ("openssl-libs", "openssl")
        );
        assert!(t.iter().all(|t| t.version == "1:3.0.7-27.el9"));
        assert_eq!(t[0].ecosystem, Ecosystem::RedHat);
        assert_eq!(
            t[0].ecosystem.index_prefix(&t[0].name),
            "Red Hat\0openssl-libs\0"
        );
        assert!(applies("Red Hat:enterprise_linux:9::appstream", &t[0]));
        assert!(applies("Red Hat:enterprise_linux:9::baseos", &t[0]));
        assert!(applies("Red Hat:enterprise_linux:9", &t[0]));
        assert!(!applies("Red Hat:enterprise_linux:8::baseos", &t[0]));
        assert!(!applies("Red Hat:rhel_eus:9.2::baseos", &t[0]));
        assert!(!applies("Red Hat:openshift:4.14::el9", &t[0]));
        assert!(!applies("Red Hat", &t[0]));
        assert!(!applies("Rocky Linux:9", &t[0]));
        // binary named like its source: one lookup
        let o = pkg(
            PackageType::Rpm,
            "openssl",
            "1:3.0.7-27.el9",
            Some(("openssl", "")),
        );
        assert_eq!(targets_for(&o, Some(&distro("rhel", "9.4"))).len(), 1);

        // Rocky and Alma: source package, major release.
        let t = target_for(&libs, Some(&distro("rocky", "9.3"))).unwrap();
        assert_eq!(
            (t.ecosystem, t.name.as_str()),
            (Ecosystem::RockyLinux, "openssl")
        );
        assert_eq!(t.version, "1:3.0.7-27.el9");
        assert!(applies("Rocky Linux:9", &t));
        assert!(!applies("Rocky Linux:8", &t));
        assert!(!applies("AlmaLinux:9", &t));
        let t = target_for(&libs, Some(&distro("almalinux", "9.4"))).unwrap();
        assert!(applies("AlmaLinux:9", &t));
        assert!(!applies("AlmaLinux:8", &t));

        // openSUSE: the release is PRETTY_NAME without the vendor.
        let leap = Distro {
            id: "opensuse-leap".into(),
            version_id: Some("15.5".into()),
            pretty_name: Some("openSUSE Leap 15.5".into()),
            ..Default::default()
        };
        let ssl = pkg(
            PackageType::Rpm,
            "libopenssl1_1",
            "1.1.1l-150500.17.34.1",
            Some(("openssl-1_1", "")),
        );
        let t = target_for(&ssl, Some(&leap)).unwrap();
        assert_eq!(t.release.as_deref(), Some("Leap 15.5"));
        assert_eq!(t.name, "openssl-1_1");
        assert!(applies("openSUSE:Leap 15.5", &t));
        assert!(applies("openSUSE:Leap 15.5 NonFree", &t));
        assert!(!applies("openSUSE:Leap 15.6", &t));
        assert!(!applies("openSUSE:Leap 15.55", &t));
        assert!(!applies("openSUSE:Tumbleweed", &t));
        let tw = Distro {
            id: "opensuse-tumbleweed".into(),
            version_id: Some("20240801".into()),
            pretty_name: Some("openSUSE Tumbleweed".into()),
            ..Default::default()
        };
        assert!(applies(
            "openSUSE:Tumbleweed",
            &target_for(&ssl, Some(&tw)).unwrap()
        ));

        // No OSV ecosystem, or a release os-release cannot name: nothing is guessed.
        for (id, ver) in [
            ("fedora", "40"),
            ("amzn", "2023"),
            ("centos", "9"),
            ("sles", "15.5"),
        ] {
            assert!(target_for(&libs, Some(&distro(id, ver))).is_none(), "{id}");
        }
        assert!(target_for(&libs, None).is_none());
        assert!(target_for(&libs, Some(&distro("rhel", "x"))).is_none());
        // an rpm is never matched against a Debian image's ecosystem, nor a deb on RHEL
        assert!(target_for(&libs, Some(&distro("debian", "12"))).is_none());
        let deb = pkg(
            PackageType::Deb,
            "libssl3",
            "3.0.11-1",
            Some(("openssl", "")),
        );
        assert!(target_for(&deb, Some(&distro("rhel", "9.4"))).is_none());
    }

    #[test]
    fn language_targets() {
        let t = target_for(&pkg(PackageType::Python, "Django_Rest", "1.0", None), None).unwrap();
        assert_eq!(t.ecosystem.index_prefix(&t.name), "PyPI\0django-rest\0");
        let t = target_for(
            &pkg(PackageType::GoModule, "golang.org/x/net", "v0.17.0", None),
            None,
        )
        .unwrap();
        assert_eq!(t.ecosystem, Ecosystem::Go);
        assert!(applies("Go", &t));
        let t = target_for(
            &pkg(
                PackageType::Java,
                "org.apache.logging.log4j:log4j-core",
                "2.14.1",
                None,
            ),
            None,
        )
        .unwrap();
        assert_eq!(t.ecosystem, Ecosystem::Maven);

        let t = target_for(&pkg(PackageType::Gem, "rack", "2.2.8", None), None).unwrap();
        assert_eq!(t.ecosystem.index_prefix(&t.name), "RubyGems\0rack\0");
        assert!(applies("RubyGems", &t));
        let t = target_for(
            &pkg(PackageType::Composer, "Symfony/HTTP-Kernel", "v5.4.0", None),
            None,
        )
        .unwrap();
        assert_eq!(
            t.ecosystem.index_prefix(&t.name),
            "Packagist\0symfony/http-kernel\0"
        );
        assert_eq!(t.version, "5.4.0");
        let t = target_for(
            &pkg(PackageType::NuGet, "Newtonsoft.Json", "13.0.1", None),
            None,
        )
        .unwrap();
        assert_eq!(
            t.ecosystem.index_prefix(&t.name),
            "NuGet\0newtonsoft.json\0"
        );
        assert!(applies("NuGet", &t));
        assert!(!applies("npm", &t));
        let t = target_for(&pkg(PackageType::Rust, "Smallvec", "1.6.0", None), None).unwrap();
        assert_eq!(t.ecosystem.index_prefix(&t.name), "crates.io\0smallvec\0");
        assert!(target_for(&pkg(PackageType::RustBinary, "app", "0.1.0", None), None).is_none());
        for e in ["RubyGems", "Packagist", "NuGet", "crates.io"] {
            assert_eq!(Ecosystem::from_osv(e).map(Ecosystem::base), Some(e));
        }
    }

    #[test]
    fn alpine_branches() {
        assert_eq!(alpine_branch("3.20.3").as_deref(), Some("v3.20"));
        assert_eq!(
            alpine_branch("3.21_alpha20240807").as_deref(),
            Some("v3.21")
        );
        assert_eq!(alpine_branch("3").as_deref(), None);
        assert_eq!(alpine_branch("edge").as_deref(), None);
    }
}
