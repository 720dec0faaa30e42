//! Python distributions in every form Syft reads: `*.dist-info/METADATA` (wheels, pip,
//! uv), `*.egg-info/PKG-INFO` (setuptools), the single-file `NAME-VER.egg-info`
//! (`setup.py install`, older Debian packages: the file is the metadata), and eggs,
//! unpacked (`*.egg/EGG-INFO/PKG-INFO`) or zipped (`*.egg`). Core metadata is RFC 822
//! headers (https://packaging.python.org/en/latest/specifications/core-metadata/).

use crate::report::{Package, PackageType};

use super::{license, package, rfc822_fields, zipcap};

pub fn parse(bytes: &[u8]) -> Option<Package> {
    let text = String::from_utf8_lossy(bytes);
    let (mut name, mut version, mut expression, mut license) = (None, None, None, None);
    let mut classified: Vec<String> = Vec::new();
    for (k, v) in rfc822_fields(&text) {
        match k {
            "Name" => name = Some(v),
            "Version" => version = Some(v),
            // PEP 639: an SPDX expression, preferred over everything else.
            "License-Expression" if !v.is_empty() => expression = Some(v),
            "License" if !v.is_empty() && v != "UNKNOWN" && v.len() < 100 => license = Some(v),
            "Classifier" if classified.len() < 16 => {
                if let Some(l) = license::python_classifier(v)
                    && !classified.contains(&l)
                {
                    classified.push(l);
                }
            }
            _ => {}
        }
    }
    let mut p = package(PackageType::Python, name?, version?);
    // License-Expression, else the License field, else the trove classifiers.
    p.licenses = match expression.or(license) {
        Some(l) => vec![l.to_string()],
        None => classified,
    };
    Some(p)
}

/// Largest `EGG-INFO/PKG-INFO` read from a zipped egg.
const MAX_EGG_PKG_INFO: u64 = 1 << 20;

/// The distribution a zipped `.egg` declares in its `EGG-INFO/PKG-INFO`; `None` for an
/// archive that is not a zip, has no such member, or one over 1 MiB, and for one
/// refused by [`zipcap`] (use [`parse_egg_checked`] to report that).
pub fn parse_egg(bytes: &[u8]) -> Option<Package> {
    parse_egg_checked(bytes).ok().flatten()
}

/// [`parse_egg`], with `Err` for an archive whose central directory is over
/// [`zipcap`]'s limits (not opened at all).
pub fn parse_egg_checked(bytes: &[u8]) -> Result<Option<Package>, zipcap::Refused> {
    match zipcap::open(bytes) {
        Ok(mut zip) => Ok(egg_pkg_info(&mut zip)),
        Err(Some(why)) => Err(why),
        Err(None) => Ok(None),
    }
}

fn egg_pkg_info(zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>) -> Option<Package> {
    use std::io::Read;
    let member = zip.by_name("EGG-INFO/PKG-INFO").ok()?;
    if member.size() > MAX_EGG_PKG_INFO {
        return None;
    }
    let mut text = Vec::new();
    member.take(MAX_EGG_PKG_INFO).read_to_end(&mut text).ok()?;
    parse(&text)
}

/// Where a Python metadata file's distribution lives: the `.dist-info`, `.egg-info` or
/// `.egg` directory holding it, or the file itself for the single-file `.egg-info` and a
/// zipped `.egg`. Package managers' file lists name this path.
pub fn distribution_path(metadata: &str) -> &str {
    let (dir, base) = metadata.rsplit_once('/').unwrap_or(("", metadata));
    match base {
        "METADATA" => dir,
        "PKG-INFO" => dir.strip_suffix("/EGG-INFO").unwrap_or(dir),
        _ => metadata,
    }
}

/// PEP 503 normalized name, as purls use it.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_dash {
                out.push('-');
            }
            last_dash = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_dash = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_metadata() {
        let m = b"Metadata-Version: 2.1
Name: Flask_Login
Version: 0.6.3
Summary: User authentication and session management for Flask.
License: MIT
Requires-Dist: Flask>=1.0.4

Long description: Name: not-this
";
        let p = parse(m).unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("Flask_Login", "0.6.3")
        );
        assert_eq!(p.licenses, ["MIT"]);
        assert_eq!(normalize_name(&p.name), "flask-login");
        assert!(parse(b"Metadata-Version: 2.1\nName: x\n").is_none());
        assert!(parse(b"\x00\x01\x02").is_none());
    }
}
