//! Which OSV ecosystem an installed package belongs to, how its name is normalised, and
//! which ecosystem strings (`Debian:12`, `Ubuntu:22.04:LTS`, `Alpine:v3.20`) apply to the
//! image's distro release.

use crate::report::{Distro, Package, PackageType};

use super::version::{Scheme, pep440};

/// OSV ecosystems pullwarden can order versions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ecosystem {
    Debian,
    Ubuntu,
    Alpine,
    PyPI,
    Npm,
    Go,
    Maven,
    CratesIo,
    RubyGems,
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
            "PyPI" => Ecosystem::PyPI,
            "npm" => Ecosystem::Npm,
            "Go" => Ecosystem::Go,
            "Maven" => Ecosystem::Maven,
            "crates.io" => Ecosystem::CratesIo,
            "RubyGems" => Ecosystem::RubyGems,
            _ => return None,
        })
    }

    pub fn base(self) -> &'static str {
        match self {
            Ecosystem::Debian => "Debian",
            Ecosystem::Ubuntu => "Ubuntu",
            Ecosystem::Alpine => "Alpine",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "Go",
            Ecosystem::Maven => "Maven",
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::RubyGems => "RubyGems",
        }
    }

    /// Version order of `ECOSYSTEM` ranges.
    pub fn scheme(self) -> Scheme {
        match self {
            Ecosystem::Debian | Ecosystem::Ubuntu => Scheme::Dpkg,
            Ecosystem::Alpine => Scheme::Apk,
            Ecosystem::PyPI => Scheme::Pep440,
            Ecosystem::Npm | Ecosystem::CratesIo => Scheme::Semver,
            Ecosystem::Go => Scheme::Go,
            Ecosystem::Maven => Scheme::Maven,
            Ecosystem::RubyGems => Scheme::RubyGems,
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
/// the package's ecosystem is not one we can match exactly (e.g. rpm, or a deb on an
/// unknown distro: guessing the release is how false positives start).
pub fn target_for(pkg: &Package, os: Option<&Distro>) -> Option<Target> {
    let distro_id = os.map(|d| d.id.to_ascii_lowercase());
    let version_id = os.and_then(|d| d.version_id.as_deref()).map(str::trim);
    let (ecosystem, release) = match pkg.kind {
        PackageType::Deb => match distro_id.as_deref()? {
            "debian" => (
                Ecosystem::Debian,
                Some(version_id?.split('.').next()?.to_string()),
            ),
            "ubuntu" => (Ecosystem::Ubuntu, Some(version_id?.to_string())),
            _ => return None,
        },
        PackageType::Apk => match distro_id.as_deref()? {
            "alpine" => (Ecosystem::Alpine, Some(alpine_branch(version_id?)?)),
            _ => return None,
        },
        PackageType::Python => (Ecosystem::PyPI, None),
        PackageType::Npm => (Ecosystem::Npm, None),
        PackageType::Go | PackageType::GoModule => (Ecosystem::Go, None),
        PackageType::Java => (Ecosystem::Maven, None),
        PackageType::Rust => (Ecosystem::CratesIo, None),
        PackageType::Rpm => return None,
    };
    let distro = matches!(
        ecosystem,
        Ecosystem::Debian | Ecosystem::Ubuntu | Ecosystem::Alpine
    );
    let (name, version) = if distro {
        (
            pkg.source_name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| pkg.name.clone()),
            pkg.source_version
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| pkg.version.clone()),
        )
    } else {
        (pkg.name.clone(), pkg.version.clone())
    };
    Some(Target {
        ecosystem,
        release,
        name,
        version,
    })
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

/// Does the OSV ecosystem string of an affected entry apply to this target?
pub fn applies(osv_ecosystem: &str, target: &Target) -> bool {
    let mut parts = osv_ecosystem.split(':');
    if parts.next() != Some(target.ecosystem.base()) {
        return false;
    }
    match (&target.release, target.ecosystem) {
        // Ubuntu: `22.04`, `22.04:LTS`; not `Pro:…` (fixes only Ubuntu Pro ships) nor
        // FIPS streams.
        (Some(rel), Ecosystem::Ubuntu) => {
            parts.next() == Some(rel.as_str()) && parts.all(|p| p == "LTS")
        }
        // Debian and Alpine: exactly the release; a bare `Debian` applies to all.
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
        assert!(!applies("Ubuntu:Pro:22.04:LTS", &t));
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

        // no distro, unknown distro, rpm: nothing to look up
        assert!(target_for(&p, None).is_none());
        assert!(target_for(&p, Some(&distro("kali", "2024"))).is_none());
        assert!(
            target_for(
                &pkg(PackageType::Rpm, "x", "1", None),
                Some(&distro("rhel", "9"))
            )
            .is_none()
        );
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
