//! Java archives (jar/war/ear): Maven `META-INF/maven/**/pom.properties`, else the
//! `META-INF/MANIFEST.MF` implementation attributes; nested archives
//! (`BOOT-INF/lib/*.jar`, `WEB-INF/lib/*.jar`) are opened recursively, within limits.

use std::io::{Cursor, Read};

use crate::report::{Package, PackageType};

use super::package;

/// Nested archive depth, member size and member count limits (zip bombs).
const MAX_DEPTH: u32 = 3;
const MAX_MEMBER_BYTES: u64 = 64 << 20;
const MAX_MEMBERS: usize = 100_000;
/// Bytes inflated from nested archives per top-level archive, all levels together.
const MAX_NESTED_BYTES: u64 = 512 << 20;

/// Packages of an archive; `path` is where it sits (nested ones get `outer!/inner`).
pub fn parse(bytes: &[u8], path: &str) -> Vec<(String, Package)> {
    let mut out = Vec::new();
    let mut budget = MAX_NESTED_BYTES;
    walk(bytes, path, 0, &mut budget, &mut out);
    out
}

fn read_member(f: impl Read, declared: u64) -> Option<Vec<u8>> {
    if declared > MAX_MEMBER_BYTES {
        return None;
    }
    let mut buf = Vec::with_capacity(declared as usize);
    // Declared sizes can lie: cap what is actually inflated too.
    f.take(MAX_MEMBER_BYTES + 1).read_to_end(&mut buf).ok()?;
    (buf.len() as u64 <= MAX_MEMBER_BYTES).then_some(buf)
}

fn walk(bytes: &[u8], path: &str, depth: u32, budget: &mut u64, out: &mut Vec<(String, Package)>) {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return;
    };
    if zip.len() > MAX_MEMBERS {
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
            out.push((path.to_string(), p));
        }
    } else {
        out.extend(from_pom.into_iter().map(|p| (path.to_string(), p)));
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
    use std::io::Write;

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
}
