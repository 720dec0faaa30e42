//! dpkg's database: `/var/lib/dpkg/status` (paragraphs; only `install ok installed`
//! counts), distroless `/var/lib/dpkg/status.d/*` (same format, no `Status:`), and
//! `/var/lib/dpkg/info/*.list` (owned files, used to spot Python packages that dpkg
//! installed so they are not reported twice).

use crate::report::{Package, PackageType};

use super::package;

/// Packages of a status file. `require_installed`: honour `Status:` (the main status
/// file lists removed-but-configured packages too).
pub fn parse_status(bytes: &[u8], require_installed: bool) -> Vec<Package> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        let mut source = None;
        let mut status = None;
        let mut depends: Vec<String> = Vec::new();
        let mut provides: Vec<String> = Vec::new();
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => name = Some(v),
                "Version" => version = Some(v),
                "Architecture" => arch = Some(v),
                "Source" => source = Some(v),
                "Status" => status = Some(v),
                "Depends" | "Pre-Depends" => depends.extend(relation_names(v)),
                "Provides" => provides.extend(relation_names(v)),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            continue;
        };
        if require_installed || status.is_some() {
            // "want flag status": the package is there only when the last word is
            // `installed` (not half-installed, config-files, …).
            if status.and_then(|s| s.split_whitespace().nth(2)) != Some("installed") {
                continue;
            }
        }
        let mut p = package(PackageType::Deb, name, version);
        p.arch = arch.map(str::to_string);
        depends.sort();
        depends.dedup();
        p.depends = depends;
        p.provides = provides;
        // `Source: name` or `Source: name (version)` when the binary version differs.
        match source.map(|s| s.split_once(' ').map_or((s, None), |(n, v)| (n, Some(v)))) {
            Some((src, ver)) => {
                p.source_name = Some(src.trim().to_string());
                p.source_version = ver
                    .map(|v| {
                        v.trim()
                            .trim_start_matches('(')
                            .trim_end_matches(')')
                            .to_string()
                    })
                    .filter(|v| !v.is_empty() && v != version);
            }
            None => p.source_name = Some(name.to_string()),
        }
        out.push(p);
    }
    out
}

/// Package names of a dpkg relationship field (`a (>= 1), b:any | c`): every
/// alternative, without version constraints or architecture qualifiers; at most 256.
fn relation_names(field: &str) -> impl Iterator<Item = String> + '_ {
    field
        .split([',', '|'])
        .filter_map(|alt| alt.split_whitespace().next())
        .map(|n| n.split(':').next().unwrap_or(n))
        .filter(|n| !n.is_empty() && n.len() <= 128)
        .take(256)
        .map(str::to_string)
}

/// From a `.list` file: the language-package metadata it owns (normalized, no leading
/// slash): Python `.dist-info` / `.egg-info` (directory or file) / `.egg`, gem
/// specifications and npm `package.json` files (Debian's `usr/share/nodejs`). A
/// package the OS package manager installed is reported once, as the OS package.
pub fn python_dirs_in_list(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| l.trim().trim_start_matches('/'))
        .filter(|l| {
            l.ends_with(".dist-info")
                || l.ends_with(".egg-info")
                || l.ends_with(".egg")
                || l.ends_with(".gemspec")
                || l.ends_with("/package.json")
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Excerpt of /var/lib/dpkg/status from debian:12 (bookworm), verbatim.
    pub const BOOKWORM_STATUS: &str = "Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12985
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u10
Replaces: libc6-amd64
Depends: libgcc-s1
Recommends: libidn2-0 (>= 2.0.5~)
Suggests: glibc-doc, debconf | debconf-2.0, libc-l10n, locales, libnss-nis, libnss-nisplus
Breaks: aide (<< 0.17.3-4+b3), busybox (<< 1.30.1-6), chrony (<< 4.2-3~), fakechroot (<< 2.19-3.5), firefox (<< 91~), firefox-esr (<< 91~), gnumach-image-1.8-486 (<< 2:1.8+git20210923~), hurd (<< 1:0.9.git20220301-2), ioquake3 (<< 1.36+u20200211.f2c61c1~dfsg-2~), iraf-fitsutil (<< 2018.07.06-4), libgegl-0.4-0 (<< 0.4.18), libtirpc1 (<< 0.2.3), locales (<< 2.36), locales-all (<< 2.36), macs (<< 2.2.7.1-3~), nocache (<< 1.1-1~), nscd (<< 2.36), openarena (<< 0.8.8+dfsg-4~), openssh-server (<< 1:8.1p1-5), python3-iptables (<< 1.0.0-2), r-cran-later (<< 0.7.5+dfsg-2), tinydns (<< 1:1.05-14), valgrind (<< 1:3.19.0-1~), wcc (<< 0.0.2+dfsg-3)
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system. This package includes shared versions of the standard C library
 and the standard math library, as well as many others.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: bash
Essential: yes
Status: install ok installed
Priority: required
Section: shells
Installed-Size: 7164
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Version: 5.2.15-2+b7
Replaces: bash-completion (<< 20060301-0), bash-doc (<= 2.05-1)
Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)
Pre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6.1)
Recommends: bash-completion (>= 20060301-0)
Suggests: bash-doc
Conflicts: bash-completion (<< 20060301-0)
Conffiles:
 /etc/bash.bashrc 89269e1298235f1b12b4c16e4065ad0d
 /etc/skel/.bash_logout 22bfb8c1dd94b5f3813a2b25da67463f
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter.
Homepage: http://tiswww.case.edu/php/chet/bash/bashtop.html

Package: libgcc-s1
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 140
Maintainer: Debian GCC Maintainers <debian-gcc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14
Depends: gcc-12-base (= 12.2.0-14), libc6 (>= 2.35)
Description: GCC support library

Package: e2fsprogs-l10n
Status: deinstall ok config-files
Priority: optional
Section: localization
Architecture: all
Source: e2fsprogs
Version: 1.47.0-2
Description: ext2/ext3/ext4 file system utilities - translations

Package: libzstd1
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: libzstd
Version: 1.5.4+dfsg2-5
Description: fast lossless compression algorithm

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2025b-0+deb12u1
Description: time zone and daylight-saving time data

Package: gpgv
Status: install ok installed
Architecture: amd64
Source: gnupg2 (2.2.40-1.1)
Version: 2.2.40-1.1
Description: GNU privacy guard - signature verification tool

Package: libpam-runtime
Status: install ok installed
Architecture: all
Source: pam (1.5.2-6+deb12u1)
Version: 1.5.2-6+deb12u1
Description: Runtime support for the PAM library

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.16-1~deb12u1
";

    #[test]
    fn bookworm_status() {
        let pkgs = parse_status(BOOKWORM_STATUS.as_bytes(), true);
        let names: Vec<_> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "libc6",
                "bash",
                "libgcc-s1",
                "libzstd1",
                "tzdata",
                "gpgv",
                "libpam-runtime",
                "libssl3"
            ]
        );
        let libc = &pkgs[0];
        assert_eq!(libc.version, "2.36-9+deb12u10");
        assert_eq!(libc.source_name.as_deref(), Some("glibc"));
        assert_eq!(libc.source_version, None);
        assert_eq!(
            pkgs[1].depends,
            ["base-files", "debianutils", "libc6", "libtinfo6"]
        );
        assert_eq!(libc.arch.as_deref(), Some("amd64"));
        assert_eq!(pkgs[1].source_name.as_deref(), Some("bash"));
        assert_eq!(pkgs[2].source_name.as_deref(), Some("gcc-12"));
        // Source version equal to the binary version is not repeated.
        assert_eq!(pkgs[2].source_version, None);
        assert_eq!(pkgs[7].version, "3.0.16-1~deb12u1");
    }

    #[test]
    fn source_version_differs_and_distroless_status_d() {
        let s = b"Package: libgcc-s1\nVersion: 12.2.0-14+b1\nArchitecture: arm64\nSource: gcc-12 (12.2.0-14)\n";
        let p = parse_status(s, false);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].source_name.as_deref(), Some("gcc-12"));
        assert_eq!(p[0].source_version.as_deref(), Some("12.2.0-14"));
        // Without Status the strict parser (main status file) drops it.
        assert!(parse_status(s, true).is_empty());
        assert!(parse_status(b"\xff\xfe\x00garbage: x\n\n\n:", true).is_empty());
    }

    #[test]
    fn list_files_name_gem_specifications() {
        let l = b"/usr/lib/ruby/gems/3.1.0/specifications/default\n/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec\n/usr/lib/ruby/3.1.0/json.rb\n";
        assert_eq!(
            python_dirs_in_list(l),
            ["usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec"]
        );
    }

    #[test]
    fn list_files_name_python_dirs() {
        let l = b"/.\n/usr\n/usr/lib/python3/dist-packages/six-1.16.0.dist-info\n/usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA\n/usr/lib/python3/dist-packages/six.py\n";
        assert_eq!(
            python_dirs_in_list(l),
            ["usr/lib/python3/dist-packages/six-1.16.0.dist-info"]
        );
    }
}
