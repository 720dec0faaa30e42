//! Java archives (jar/war/ear): Maven `META-INF/maven/**/pom.properties`, else the
//! `META-INF/MANIFEST.MF` implementation attributes; nested archives
//! (`BOOT-INF/lib/*.jar`, `WEB-INF/lib/*.jar`) are opened recursively, within limits.

use std::io::Read;

use crate::report::{Package, PackageType};

use super::package;
use super::zipcap::{self, Refused};

/// Nested archive depth, member size and member count limits (zip bombs).
const MAX_DEPTH: u32 = 3;
const MAX_MEMBER_BYTES: u64 = 64 << 20;
const MAX_MEMBERS: usize = 100_000;
/// Bytes inflated from nested archives per top-level archive, all levels together.
const MAX_NESTED_BYTES: u64 = 512 << 20;

/// What one archive yields: its packages and the archives (itself or nested ones) not
/// opened because their central directory is over [`zipcap`]'s limits.
#[derive(Debug, Default)]
pub struct Parsed {
    pub packages: Vec<(String, Package)>,
    /// `(path, why)`; nested ones as `outer!/inner`.
    pub refused: Vec<(String, Refused)>,
}

/// Packages of an archive; `path` is where it sits (nested ones get `outer!/inner`).
/// Refused archives are dropped: use [`parse_all`] to report them.
pub fn parse(bytes: &[u8], path: &str) -> Vec<(String, Package)> {
    parse_all(bytes, path).packages
}

/// Packages of an archive and the archives refused unopened.
pub fn parse_all(bytes: &[u8], path: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut budget = MAX_NESTED_BYTES;
    walk(bytes, path, 0, &mut budget, &mut out);
    out
}

fn read_member(f: impl Read, declared: u64) -> Option<Vec<u8>> {
    if declared > MAX_MEMBER_BYTES {
        return None;
    }
    let mut buf = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
    // Declared sizes can lie: cap what is actually inflated too.
    f.take(MAX_MEMBER_BYTES + 1).read_to_end(&mut buf).ok()?;
    (buf.len() as u64 <= MAX_MEMBER_BYTES).then_some(buf)
}

fn walk(bytes: &[u8], path: &str, depth: u32, budget: &mut u64, out: &mut Parsed) {
    // The central directory's declared size is checked before the crate parses it.
    let mut zip = match zipcap::open(bytes) {
        Ok(z) => z,
        Err(Some(why)) => {
            out.refused.push((path.to_string(), why));
            return;
        }
        Err(None) => return,
    };
    if zip.len() > MAX_MEMBERS {
        out.refused
            .push((path.to_string(), Refused::TooManyEntries(zip.len() as u64)));
        return;
    }
    let mut from_pom = Vec::new();
    let mut manifest = None;
    let mut nested = Vec::new();
    for i in 0..zip.len() {
        let Ok(f) = zip.by_index(i) else { continue };
        let name = f.name().to_string();
        let lower = name.to_ascii_lowercase();
        if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
            let size = f.size();
            if let Some(b) = read_member(f, size) {
                from_pom.extend(pom_properties(&b));
            }
        } else if name == "META-INF/MANIFEST.MF" {
            let size = f.size();
            manifest = read_member(f, size);
        } else if depth < MAX_DEPTH && (lower.ends_with(".jar") || lower.ends_with(".war")) {
            nested.push((i, name));
        }
    }
    if from_pom.is_empty() {
        if let Some(p) = manifest.as_deref().and_then(manifest_package) {
            out.packages.push((path.to_string(), p));
        }
    } else {
        out.packages
            .extend(from_pom.into_iter().map(|p| (path.to_string(), p)));
    }
    // One nested archive in memory at a time, within the shared budget.
    for (i, name) in nested {
        let Ok(f) = zip.by_index(i) else { continue };
        let size = f.size();
        if size > *budget {
            break;
        }
        if let Some(b) = read_member(f, size) {
            *budget = budget.saturating_sub(b.len() as u64);
            walk(&b, &format!("{path}!/{name}"), depth + 1, budget, out);
        }
    }
}

fn pom_properties(b: &[u8]) -> Option<Package> {
    let text = String::from_utf8_lossy(b);
    let (mut g, mut a, mut v) = (None, None, None);
    for line in text.lines() {
        let Some((k, val)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "groupId" => g = Some(val.trim()),
            "artifactId" => a = Some(val.trim()),
            "version" => v = Some(val.trim()),
            _ => {}
        }
    }
    Some(package(PackageType::Java, &format!("{}:{}", g?, a?), v?))
}

fn manifest_package(b: &[u8]) -> Option<Package> {
    let text = String::from_utf8_lossy(b);
    let (mut title, mut version, mut vendor) = (None, None, None);
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Implementation-Title" => title = Some(v),
            "Bundle-SymbolicName" if title.is_none() => {
                title = Some(v.split(';').next().unwrap_or(v))
            }
            "Implementation-Version" => version = Some(v),
            "Bundle-Version" if version.is_none() => version = Some(v),
            "Implementation-Vendor-Id" => vendor = Some(v),
            _ => {}
        }
    }
    let name = match vendor {
        Some(g) => format!("{g}:{}", title?),
        None => title?.to_string(),
    };
    Some(package(PackageType::Java, &name, version?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    pub fn jar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in members {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn pom_manifest_and_nested() {
        let inner = jar(&[(
            "META-INF/maven/org.yaml/snakeyaml/pom.properties",
            b"#Generated by Maven\nartifactId=snakeyaml\ngroupId=org.yaml\nversion=2.2\n",
        )]);
        let outer = jar(&[
            (
                "META-INF/MANIFEST.MF",
                b"Manifest-Version: 1.0\r\nImplementation-Title: demo\r\nImplementation-Version: 1.0.0\r\n",
            ),
            ("BOOT-INF/lib/snakeyaml-2.2.jar", &inner),
        ]);
        let got = parse(&outer, "/app/app.jar");
        let names: Vec<_> = got
            .iter()
            .map(|(p, k)| (p.as_str(), k.name.as_str(), k.version.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("/app/app.jar", "demo", "1.0.0"),
                (
                    "/app/app.jar!/BOOT-INF/lib/snakeyaml-2.2.jar",
                    "org.yaml:snakeyaml",
                    "2.2"
                )
            ]
        );
        assert!(parse(b"PK\x03\x04 not a zip", "/x.jar").is_empty());
    }

    #[test]
    fn nesting_depth_is_bounded() {
        let pom = |n: usize| format!("groupId=g\nartifactId=a{n}\nversion=1\n");
        let mut inner = jar(&[("META-INF/maven/g/a5/pom.properties", pom(5).as_bytes())]);
        for n in (0..5).rev() {
            let name = format!("META-INF/maven/g/a{n}/pom.properties");
            inner = jar(&[
                (name.as_str(), pom(n).as_bytes()),
                ("lib/inner.jar", &inner),
            ]);
        }
        let got = parse(&inner, "/deep.jar");
        assert_eq!(got.len(), MAX_DEPTH as usize + 1);
    }

    #[test]
    fn an_oversized_nested_directory_is_refused_and_named() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..(zipcap::MAX_ENTRIES + 1) as u32 {
            w.start_file(format!("{i:x}"), zip::write::SimpleFileOptions::default())
                .unwrap();
        }
        let bomb = w.finish().unwrap().into_inner();
        let pom = b"groupId=g\nartifactId=a\nversion=1\n";
        // Deflated, so the bomb's end records are not visible in the outer bytes.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        w.start_file("META-INF/maven/g/a/pom.properties", deflated)
            .unwrap();
        w.write_all(pom).unwrap();
        w.start_file("BOOT-INF/lib/bomb.jar", deflated).unwrap();
        w.write_all(&bomb).unwrap();
        let outer = w.finish().unwrap().into_inner();
        let got = parse_all(&outer, "/app.jar");
        assert_eq!(got.packages.len(), 1);
        assert_eq!(
            got.refused,
            [(
                "/app.jar!/BOOT-INF/lib/bomb.jar".to_string(),
                Refused::TooManyEntries(zipcap::MAX_ENTRIES + 1)
            )]
        );
        // The bomb on its own, and stored inside another archive (its end records are
        // then seen in the outer bytes): refused before the crate parses it.
        assert_eq!(parse_all(&bomb, "/b.jar").refused.len(), 1);
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        w.start_file("lib/bomb.jar", opts).unwrap();
        w.write_all(&bomb).unwrap();
        let stored = w.finish().unwrap().into_inner();
        let got = parse_all(&stored, "/s.jar");
        assert!(got.packages.is_empty());
        assert_eq!(got.refused[0].0, "/s.jar");
    }
}
