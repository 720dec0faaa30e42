//! Image result = layer results composed in order: an upper layer's whiteouts, opaque
//! directories and replaced inventory files hide what lower layers declared. Only the
//! small per-layer lists are needed, never a tree of every file.

use std::collections::HashSet;

use crate::report::{Distro, PackageType, ScanReport};

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
    // Debian copyright files still in the final image: licenses by package name.
    let copyrights: std::collections::HashMap<&str, &[String]> = finals
        .iter()
        .filter(|f| !f.licenses.is_empty())
        .filter_map(|f| {
            super::analyzers::deb_copyright_package(&f.path).map(|n| (n, f.licenses.as_slice()))
        })
        .collect();
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
                if p.kind == PackageType::Deb
                    && p.licenses.is_empty()
                    && let Some(l) = copyrights.get(p.name.as_str())
                {
                    p.licenses = l.to_vec();
                }
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

pub use super::purl::purl;
