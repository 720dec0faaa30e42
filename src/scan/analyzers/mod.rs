//! Analyzers: parsers of the files that declare installed software (package
//! databases, language metadata, binaries' build info). Each takes the bytes of one
//! file and returns package records; the layer walk decides which files go where.

pub mod apk;
pub mod auditable;
pub mod composer;
pub mod dotnet;
pub mod dpkg;
pub mod gem;
pub mod gobin;
pub mod java;
pub mod license;
pub mod npm;
pub mod os_release;
pub mod python;
pub mod rpm;
pub mod zipcap;

use crate::report::{Package, PackageType};

/// Bumped whenever an analyzer's output changes, so cached layer results are redone.
pub const ANALYZER_SET_VERSION: u32 = 7;

/// Which analyzer a file goes to, decided from its (normalized) path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    OsRelease,
    DpkgStatus,
    /// `/var/lib/dpkg/status.d/*` (distroless: one file per package).
    DpkgStatusD,
    /// `/var/lib/dpkg/info/*.list`: files owned by dpkg packages.
    DpkgFileList,
    ApkInstalled,
    /// rpm's sqlite database, `rpmdb.sqlite` (rpm ≥ 4.16).
    RpmSqlite,
    /// rpm's Berkeley DB hash database, `Packages` (rpm < 4.16).
    RpmBdb,
    /// rpm's ndb database, `Packages.db` (SUSE).
    RpmNdb,
    /// Python core metadata: `*.dist-info/METADATA`, `*.egg-info/PKG-INFO`,
    /// `*.egg/EGG-INFO/PKG-INFO`, and the single-file `NAME-VER.egg-info` that
    /// `setup.py install` and older Debian packages write.
    PythonMetadata,
    /// A zipped `.egg`: its `EGG-INFO/PKG-INFO`.
    PythonEgg,
    /// Any `package.json` (installed, vendored inside another package, or the
    /// application's own), reported when it names a name and a version (as Syft does).
    NpmPackage,
    Jar,
    /// `…/specifications/<name>-<version>.gemspec` of an installed gem.
    Gemspec,
    /// `vendor/composer/installed.json`.
    ComposerInstalled,
    /// `<app>.deps.json` of a published .NET application.
    DotnetDeps,
    /// `/usr/share/doc/<package>/copyright` of a Debian package: its licenses when the
    /// file is machine-readable (DEP-5).
    DebCopyright,
}

pub fn route(path: &str) -> Option<Route> {
    match path {
        "etc/os-release" | "usr/lib/os-release" => return Some(Route::OsRelease),
        "var/lib/dpkg/status" => return Some(Route::DpkgStatus),
        "lib/apk/db/installed" => return Some(Route::ApkInstalled),
        // Fedora 36+ keeps the database in /usr/lib/sysimage/rpm (/var/lib/rpm is a
        // symlink there).
        "var/lib/rpm/rpmdb.sqlite" | "usr/lib/sysimage/rpm/rpmdb.sqlite" => {
            return Some(Route::RpmSqlite);
        }
        "var/lib/rpm/Packages" | "usr/lib/sysimage/rpm/Packages" => {
            return Some(Route::RpmBdb);
        }
        "var/lib/rpm/Packages.db" | "usr/lib/sysimage/rpm/Packages.db" => {
            return Some(Route::RpmNdb);
        }
        _ => {}
    }
    let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
    if base == "copyright" && deb_copyright_package(path).is_some() {
        return Some(Route::DebCopyright);
    }
    if dir == "var/lib/dpkg/status.d" && !base.ends_with(".md5sums") {
        return Some(Route::DpkgStatusD);
    }
    if dir == "var/lib/dpkg/info" && base.ends_with(".list") {
        return Some(Route::DpkgFileList);
    }
    if (base == "METADATA" && dir.ends_with(".dist-info"))
        || (base == "PKG-INFO" && (dir.ends_with(".egg-info") || dir.ends_with(".egg/EGG-INFO")))
        || base.ends_with(".egg-info")
    {
        return Some(Route::PythonMetadata);
    }
    if base.ends_with(".egg") {
        return Some(Route::PythonEgg);
    }
    if base == "package.json" {
        return Some(Route::NpmPackage);
    }
    if base.ends_with(".gemspec") && gem::is_specifications_dir(dir) {
        return Some(Route::Gemspec);
    }
    if base == "installed.json" && composer::is_installed_json(path) {
        return Some(Route::ComposerInstalled);
    }
    if dotnet::is_deps_json(base) {
        return Some(Route::DotnetDeps);
    }
    let lower = base.to_ascii_lowercase();
    if lower.ends_with(".jar") || lower.ends_with(".war") || lower.ends_with(".ear") {
        return Some(Route::Jar);
    }
    None
}

/// Whether a file named `base` would go to an analyzer if it sat in the right directory
/// (a package database or metadata file under another directory, as the first of a set
/// of hard links often is: a saved copy of dpkg's database, a cache the installer links
/// from). The layer walk keeps such files' bytes, bounded, so a hard link that gives them
/// their analyzer path later in the archive is examined without a second pass.
pub fn routes_elsewhere(base: &str) -> bool {
    matches!(
        base,
        "status"
            | "installed"
            | "METADATA"
            | "PKG-INFO"
            | "installed.json"
            | "os-release"
            | "rpmdb.sqlite"
            | "Packages"
            | "Packages.db"
    ) || base.ends_with(".list")
        || base.ends_with(".gemspec")
}

/// The package a `usr/share/doc/<package>/copyright` path belongs to.
pub fn deb_copyright_package(path: &str) -> Option<&str> {
    let name = path
        .strip_prefix("usr/share/doc/")?
        .strip_suffix("/copyright")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// A package record before the image's distro is known (the purl is filled in when
/// the layers are composed).
pub(crate) fn package(kind: PackageType, name: &str, version: &str) -> Package {
    Package {
        name: name.to_string(),
        version: version.to_string(),
        kind,
        purl: String::new(),
        layer: String::new(),
        path: String::new(),
        source_name: None,
        source_version: None,
        arch: None,
        licenses: Vec::new(),
        depends: Vec::new(),
        provides: Vec::new(),
    }
}

/// `Key: value` header lines (RFC 822 style) until the first blank line; folded
/// continuation lines are ignored.
pub(crate) fn rfc822_fields(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path() {
        assert_eq!(route("etc/os-release"), Some(Route::OsRelease));
        assert_eq!(route("var/lib/dpkg/status"), Some(Route::DpkgStatus));
        assert_eq!(
            route("var/lib/dpkg/status.d/base"),
            Some(Route::DpkgStatusD)
        );
        assert_eq!(route("var/lib/dpkg/status.d/base.md5sums"), None);
        assert_eq!(
            route("var/lib/dpkg/info/libc6:amd64.list"),
            Some(Route::DpkgFileList)
        );
        assert_eq!(
            route("usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"),
            Some(Route::PythonMetadata)
        );
        assert_eq!(
            route("app/node_modules/@types/node/package.json"),
            Some(Route::NpmPackage)
        );
        // Vendored inside another package, and the application's own manifest.
        assert_eq!(
            route("app/node_modules/bson/vendor/text-encoding/package.json"),
            Some(Route::NpmPackage)
        );
        assert_eq!(route("app/package.json"), Some(Route::NpmPackage));
        assert_eq!(route("app/package.json.bak"), None);
        // Every Python form.
        for p in [
            "usr/lib/python3/dist-packages/chardet-5.1.0.egg-info",
            "usr/local/lib/python3.11/site-packages/x-1.0.egg-info/PKG-INFO",
            "usr/local/lib/python3.11/site-packages/x-1.0-py3.11.egg/EGG-INFO/PKG-INFO",
        ] {
            assert_eq!(route(p), Some(Route::PythonMetadata), "{p}");
        }
        assert_eq!(
            route("usr/local/lib/python3.11/site-packages/x-1.0-py3.11.egg"),
            Some(Route::PythonEgg)
        );
        assert_eq!(route("app/EGG-INFO/PKG-INFO"), None);
        assert_eq!(route("opt/app/lib/app.JAR"), Some(Route::Jar));
        assert_eq!(route("var/lib/rpm/rpmdb.sqlite"), Some(Route::RpmSqlite));
        assert_eq!(
            route("usr/lib/sysimage/rpm/rpmdb.sqlite"),
            Some(Route::RpmSqlite)
        );
        assert_eq!(route("var/lib/rpm/Packages"), Some(Route::RpmBdb));
        assert_eq!(
            route("usr/lib/sysimage/rpm/Packages.db"),
            Some(Route::RpmNdb)
        );
        assert_eq!(route("var/lib/rpm/rpmdb.sqlite-wal"), None);
        assert_eq!(route("var/lib/rpm/Name"), None);
        assert_eq!(route("etc/passwd"), None);
        assert_eq!(
            route("usr/local/lib/ruby/gems/3.2.0/specifications/rack-2.2.8.gemspec"),
            Some(Route::Gemspec)
        );
        assert_eq!(
            route("app/vendor/bundle/ruby/3.3.0/specifications/default/json-2.7.1.gemspec"),
            Some(Route::Gemspec)
        );
        assert_eq!(
            route("usr/local/lib/ruby/gems/3.2.0/gems/rack-2.2.8/rack.gemspec"),
            None
        );
        assert_eq!(
            route("var/www/vendor/composer/installed.json"),
            Some(Route::ComposerInstalled)
        );
        assert_eq!(
            route("vendor/composer/installed.json"),
            Some(Route::ComposerInstalled)
        );
        assert_eq!(route("var/www/composer/installed.json"), None);
        assert_eq!(route("app/MyApp.deps.json"), Some(Route::DotnetDeps));
        assert_eq!(route("app/MyApp.runtimeconfig.json"), None);
        assert_eq!(
            route("usr/share/doc/libc6/copyright"),
            Some(Route::DebCopyright)
        );
        assert_eq!(route("usr/share/doc/libc6/examples/copyright"), None);
        assert_eq!(route("usr/share/doc/copyright"), None);
    }
}
