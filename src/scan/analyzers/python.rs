//! Python distributions: `*.dist-info/METADATA` (wheels, pip) and
//! `*.egg-info/PKG-INFO` (setuptools); core metadata is RFC 822 headers.

use crate::report::{Package, PackageType};

use super::{package, rfc822_fields};

pub fn parse(bytes: &[u8]) -> Option<Package> {
    let text = String::from_utf8_lossy(bytes);
    let (mut name, mut version, mut license) = (None, None, None);
    for (k, v) in rfc822_fields(&text) {
        match k {
            "Name" => name = Some(v),
            "Version" => version = Some(v),
            "License-Expression" => license = Some(v),
            "License" if license.is_none() && !v.is_empty() && v != "UNKNOWN" && v.len() < 100 => {
                license = Some(v)
            }
            _ => {}
        }
    }
    let mut p = package(PackageType::Python, name?, version?);
    p.licenses = license.map(|l| vec![l.to_string()]).unwrap_or_default();
    Some(p)
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
