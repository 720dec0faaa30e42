//! Image result = layer results composed in order: an upper layer's whiteouts, opaque
//! directories and replaced inventory files hide what lower layers declared. Only the
//! small per-layer lists are needed, never a tree of every file.

use std::collections::HashSet;

use crate::report::{Distro, Package, PackageType, ScanReport};

use super::analyzers::python;
use super::layer::LayerResult;

/// One layer's deletions as sets, so a path is checked against them in time
/// proportional to its depth, not to the number of whiteouts.
struct Deletions<'a> {
    whiteouts: HashSet<&'a str>,
    opaque_dirs: HashSet<&'a str>,
}

/// The layers with their deletions indexed.
struct Stack<'a> {
    layers: &'a [LayerResult],
    deletions: Vec<Deletions<'a>>,
}

impl<'a> Stack<'a> {
    fn new(layers: &'a [LayerResult]) -> Stack<'a> {
        let deletions = layers
            .iter()
            .map(|l| Deletions {
                whiteouts: l.whiteouts.iter().map(String::as_str).collect(),
                opaque_dirs: l.opaque_dirs.iter().map(String::as_str).collect(),
            })
            .collect();
        Stack { layers, deletions }
    }

    /// True when a layer above `index` deletes `path` (normalized) by whiteout (of it
    /// or a parent) or opaque directory (a parent).
    fn deleted_above(&self, index: usize, path: &str) -> bool {
        let parents: Vec<&str> = path
            .match_indices('/')
            .filter_map(|(i, _)| path.get(..i))
            .collect();
        self.deletions.iter().skip(index + 1).any(|d| {
            d.whiteouts.contains(path)
                || parents
                    .iter()
                    .any(|p| d.whiteouts.contains(p) || d.opaque_dirs.contains(p))
        })
    }

    /// True when a layer above `index` puts an entry at `path` (a file, link or
    /// directory there, or a non-directory over one of its parents): the final image
    /// has that, not this layer's file.
    fn replaced_above(&self, index: usize, path: &str) -> bool {
        self.layers
            .iter()
            .skip(index + 1)
            .any(|l| l.paths.replaces(path))
    }

    /// Whether `path` of layer `index` is in the final image as that layer left it.
    fn is_final(&self, index: usize, path: &str) -> bool {
        !self.deleted_above(index, path) && !self.replaced_above(index, path)
    }
}

/// The final os-release: `/etc/os-release` if the final view has one as a regular
/// file, else `/usr/lib/os-release` (Debian's `/etc/os-release` is a symlink to it).
fn final_distro(stack: &Stack<'_>) -> Option<Distro> {
    for wanted in ["etc/os-release", "usr/lib/os-release"] {
        for (i, l) in stack.layers.iter().enumerate().rev() {
            if let Some(o) = l.os_release.iter().rev().find(|o| o.path == wanted)
                && stack.is_final(i, wanted)
            {
                return Some(o.distro.clone());
            }
        }
    }
    None
}

pub fn compose(layers: &[LayerResult]) -> ScanReport {
    let stack = Stack::new(layers);
    let os = final_distro(&stack);
    // The inventory files of the final image.
    let finals: Vec<&super::layer::InventoryFile> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.inventory.iter().map(move |f| (i, f)))
        .filter(|(i, f)| stack.is_final(*i, &f.path))
        .map(|(_, f)| f)
        .collect();
    let debs: HashSet<&str> = finals
        .iter()
        .flat_map(|f| f.packages.iter())
        .filter(|p| p.kind == PackageType::Deb)
        .map(|p| p.name.as_str())
        .collect();
    // What the OS package manager says it installed: only from file lists and databases
    // still in the final image, and a dpkg list only for a package dpkg has (a made-up
    // or stale list owns nothing).
    let mut dpkg_lists = false;
    let mut os_owned: HashSet<&str> = HashSet::new();
    for (i, l) in layers.iter().enumerate() {
        for o in &l.owned {
            if !stack.is_final(i, &o.by) {
                continue;
            }
            if let Some(pkg) = &o.package {
                if !debs.contains(pkg.as_str()) {
                    continue;
                }
                dpkg_lists = true;
            }
            os_owned.extend(o.paths.iter().map(String::as_str));
        }
    }
    let mut packages = Vec::new();
    for f in finals {
        {
            // Python packages dpkg or rpm installed are reported (and matched) once, as
            // the OS package. Their file lists say which; without them (distroless:
            // a dpkg database but no file lists), Debian's layout rule: dpkg installs
            // into /usr/lib/python3/dist-packages, pip into /usr/local or a venv.
            if f.packages.iter().any(|p| p.kind == PackageType::Python) {
                let dist = python::distribution_path(&f.path);
                if os_owned.contains(dist)
                    || (!debs.is_empty()
                        && !dpkg_lists
                        && dist.starts_with("usr/lib/python3/dist-packages/"))
                {
                    continue;
                }
            }
            // Likewise the gems that ship with a distro's ruby (`specifications/default`)
            // and the npm packages of Debian's node-* packages (`usr/share/nodejs`).
            if f.packages
                .iter()
                .any(|p| matches!(p.kind, PackageType::Gem | PackageType::Npm))
                && os_owned.contains(f.path.as_str())
            {
                continue;
            }
            for p in &f.packages {
                let mut p = p.clone();
                p.purl = purl(&p, os.as_ref());
                packages.push(p);
            }
        }
    }
    packages.sort_by(|a, b| {
        (a.kind, &a.name, &a.version, &a.path).cmp(&(b.kind, &b.name, &b.version, &b.path))
    });
    packages.dedup();
    let mut secrets = Vec::new();
    let mut files = Vec::new();
    let mut summaries = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        for s in &l.secrets {
            let mut s = s.clone();
            // Deleted, or replaced by a later entry of its own layer or by an upper
            // layer's file: the bytes still ship in this layer.
            let path = s.path.trim_start_matches('/');
            s.deleted_in_final_image = s.deleted_in_final_image || !stack.is_final(i, path);
            secrets.push(s);
        }
        files.extend(l.files.iter().cloned());
        summaries.push(l.summary.clone());
    }
    ScanReport {
        os,
        packages,
        secrets,
        files,
        vulnerabilities: Vec::new(),
        layers: summaries,
    }
}

/// Percent-encoding of one purl component (everything but unreserved characters).
fn enc(s: &str) -> String {
    crate::percent::encode(s)
}

fn enc_path(s: &str) -> String {
    s.split('/').map(enc).collect::<Vec<_>>().join("/")
}

/// Package URL of a package (purl-spec types deb, apk, rpm, pypi, npm, golang, maven,
/// cargo, gem, composer, nuget).
pub fn purl(p: &Package, os: Option<&Distro>) -> String {
    let ver = enc(&p.version);
    let distro_q = |default_ns: &str| {
        let ns = os
            .map(|d| d.id.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or(default_ns)
            .to_string();
        let mut q = Vec::new();
        if let Some(a) = &p.arch {
            q.push(format!("arch={}", enc(a)));
        }
        if let Some(d) = os {
            match &d.version_id {
                Some(v) => q.push(format!("distro={}-{}", enc(&d.id), enc(v))),
                None => q.push(format!("distro={}", enc(&d.id))),
            }
        }
        (
            ns,
            if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            },
        )
    };
    match p.kind {
        PackageType::Deb => {
            let (ns, q) = distro_q("debian");
            format!("pkg:deb/{}/{}@{ver}{q}", enc(&ns), enc(&p.name))
        }
        PackageType::Apk => {
            let (ns, q) = distro_q("alpine");
            format!("pkg:apk/{}/{}@{ver}{q}", enc(&ns), enc(&p.name))
        }
        PackageType::Rpm => {
            // purl-spec rpm type: the epoch is the `epoch` qualifier, not part of the
            // version; Red Hat's own purls (OSV, VEX) use the `redhat` namespace.
            let (ns, q) = distro_q("redhat");
            let ns = if ns == "rhel" {
                "redhat".to_string()
            } else {
                ns
            };
            let (epoch, vr) = match p.version.split_once(':') {
                Some((e, vr)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                    (Some(e), vr)
                }
                _ => (None, p.version.as_str()),
            };
            let q = match epoch {
                // qualifiers sorted by key: arch, distro, epoch
                Some(e) if q.is_empty() => format!("?epoch={}", enc(e)),
                Some(e) => format!("{q}&epoch={}", enc(e)),
                None => q,
            };
            format!("pkg:rpm/{}/{}@{}{q}", enc(&ns), enc(&p.name), enc(vr))
        }
        PackageType::Python => format!("pkg:pypi/{}@{ver}", enc(&python::normalize_name(&p.name))),
        PackageType::Npm => match p.name.split_once('/') {
            Some((scope, name)) if scope.starts_with('@') => {
                format!("pkg:npm/{}/{}@{ver}", enc(scope), enc(name))
            }
            _ => format!("pkg:npm/{}@{ver}", enc(&p.name)),
        },
        PackageType::Go | PackageType::GoModule => {
            format!("pkg:golang/{}@{ver}", enc_path(&p.name))
        }
        PackageType::Java => match p.name.split_once(':') {
            Some((g, a)) => format!("pkg:maven/{}/{}@{ver}", enc(g), enc(a)),
            None => format!("pkg:maven/{}@{ver}", enc(&p.name)),
        },
        PackageType::Rust | PackageType::RustBinary => {
            format!("pkg:cargo/{}@{ver}", enc(&p.name))
        }
        PackageType::Gem => format!("pkg:gem/{}@{ver}", enc(&p.name)),
        // purl-spec composer type: `vendor/name` is namespace and name, lowercased.
        PackageType::Composer => {
            let lower = p.name.to_ascii_lowercase();
            match lower.split_once('/') {
                Some((vendor, name)) => format!("pkg:composer/{}/{}@{ver}", enc(vendor), enc(name)),
                None => format!("pkg:composer/{}@{ver}", enc(&lower)),
            }
        }
        // purl-spec nuget type: the name keeps its case.
        PackageType::NuGet => format!("pkg:nuget/{}@{ver}", enc(&p.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::analyzers::package;

    #[test]
    fn purls() {
        let d = Distro {
            id: "debian".into(),
            version_id: Some("12".into()),
            ..Default::default()
        };
        let mut libc = package(PackageType::Deb, "libc6", "2.36-9+deb12u10");
        libc.arch = Some("amd64".into());
        assert_eq!(
            purl(&libc, Some(&d)),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64&distro=debian-12"
        );
        let epoch = package(PackageType::Deb, "passwd", "1:4.13+dfsg1-1");
        assert_eq!(
            purl(&epoch, None),
            "pkg:deb/debian/passwd@1%3A4.13%2Bdfsg1-1"
        );
        let rhel = Distro {
            id: "rhel".into(),
            version_id: Some("9.4".into()),
            ..Default::default()
        };
        let mut ssl = package(PackageType::Rpm, "openssl-libs", "1:3.0.7-27.el9");
        ssl.arch = Some("x86_64".into());
        assert_eq!(
            purl(&ssl, Some(&rhel)),
            "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1"
        );
        let rocky = Distro {
            id: "rocky".into(),
            version_id: Some("9.3".into()),
            ..Default::default()
        };
        assert_eq!(
            purl(
                &package(PackageType::Rpm, "bash", "5.1.8-6.el9_1"),
                Some(&rocky)
            ),
            "pkg:rpm/rocky/bash@5.1.8-6.el9_1?distro=rocky-9.3"
        );
        assert_eq!(
            purl(&package(PackageType::Rpm, "gcc-c++", "2:11-1"), None),
            "pkg:rpm/redhat/gcc-c%2B%2B@11-1?epoch=2"
        );
        assert_eq!(
            purl(&package(PackageType::Python, "Flask_Login", "0.6.3"), None),
            "pkg:pypi/flask-login@0.6.3"
        );
        assert_eq!(
            purl(&package(PackageType::Npm, "@babel/core", "7.24.0"), None),
            "pkg:npm/%40babel/core@7.24.0"
        );
        assert_eq!(
            purl(
                &package(PackageType::GoModule, "github.com/google/uuid", "v1.6.0"),
                None
            ),
            "pkg:golang/github.com/google/uuid@v1.6.0"
        );
        assert_eq!(
            purl(
                &package(PackageType::Java, "org.yaml:snakeyaml", "2.2"),
                None
            ),
            "pkg:maven/org.yaml/snakeyaml@2.2"
        );
        assert_eq!(
            purl(&package(PackageType::Gem, "rack", "2.2.8"), None),
            "pkg:gem/rack@2.2.8"
        );
        assert_eq!(
            purl(
                &package(PackageType::Composer, "Symfony/http-kernel", "v5.4.0"),
                None
            ),
            "pkg:composer/symfony/http-kernel@v5.4.0"
        );
        assert_eq!(
            purl(
                &package(PackageType::NuGet, "Newtonsoft.Json", "13.0.1"),
                None
            ),
            "pkg:nuget/Newtonsoft.Json@13.0.1"
        );
        assert_eq!(
            purl(&package(PackageType::Rust, "serde_json", "1.0.120"), None),
            "pkg:cargo/serde_json@1.0.120"
        );
    }
}
