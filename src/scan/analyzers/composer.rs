//! PHP packages Composer installed: `vendor/composer/installed.json`, a JSON array of
//! packages (Composer 1) or `{"packages": [...]}` (Composer 2). Versions are kept as
//! written (`v5.4.0`); matching drops the `v`.

use serde_json::Value;

use crate::report::{Package, PackageType};

use super::package;

/// Packages read from one file; real projects have hundreds.
const MAX_PACKAGES: usize = 50_000;
const MAX_FIELD: usize = 256;

pub fn is_installed_json(path: &str) -> bool {
    path == "vendor/composer/installed.json" || path.ends_with("/vendor/composer/installed.json")
}

fn text(v: &Value, key: &str) -> Option<String> {
    let s = v.get(key)?.as_str()?.trim();
    (!s.is_empty() && s.len() <= MAX_FIELD && !s.chars().any(char::is_control))
        .then(|| s.to_string())
}

pub fn parse(bytes: &[u8]) -> Vec<Package> {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let list = match &doc {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("packages") {
            Some(Value::Array(a)) => a,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    list.iter()
        .take(MAX_PACKAGES)
        .filter_map(|entry| {
            let name = text(entry, "name")?;
            // `vendor/name`, as Composer requires.
            let (vendor, short) = name.split_once('/')?;
            if vendor.is_empty() || short.is_empty() || short.contains('/') {
                return None;
            }
            let version = text(entry, "version")?;
            let mut p = package(PackageType::Composer, &name, &version);
            p.licenses = match entry.get("license") {
                Some(Value::Array(l)) => l
                    .iter()
                    .filter_map(|l| l.as_str())
                    .filter(|l| !l.is_empty() && l.len() <= MAX_FIELD)
                    .take(16)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(l)) if !l.is_empty() && l.len() <= MAX_FIELD => {
                    vec![l.clone()]
                }
                _ => Vec::new(),
            };
            Some(p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[Package]) -> Vec<(&str, &str)> {
        v.iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect()
    }

    #[test]
    fn composer_2_and_1_forms() {
        let v2 = br#"{"packages": [
            {"name": "symfony/http-kernel", "version": "v5.4.0", "version_normalized": "5.4.0.0",
             "type": "library", "license": ["MIT"]},
            {"name": "monolog/monolog", "version": "2.9.1", "license": ["MIT"]}
        ], "dev": true, "dev-package-names": []}"#;
        let p = parse(v2);
        assert_eq!(
            names(&p),
            [
                ("symfony/http-kernel", "v5.4.0"),
                ("monolog/monolog", "2.9.1")
            ]
        );
        assert_eq!(p[0].kind, PackageType::Composer);
        assert_eq!(p[0].licenses, ["MIT"]);
        let v1 = br#"[{"name": "guzzlehttp/guzzle", "version": "6.5.5", "license": "MIT"}]"#;
        let p = parse(v1);
        assert_eq!(names(&p), [("guzzlehttp/guzzle", "6.5.5")]);
        assert_eq!(p[0].licenses, ["MIT"]);
    }

    #[test]
    fn wrong_types_and_junk() {
        assert!(parse(b"").is_empty());
        assert!(parse(b"{\"packages\": ").is_empty());
        assert!(parse(b"42").is_empty());
        assert!(parse(br#"{"packages": {"a": 1}}"#).is_empty());
        let mixed = br#"{"packages": [
            {"name": 5, "version": "1.0"}, {"name": "a/b", "version": ["1"]},
            {"name": "no-vendor", "version": "1.0"}, {"name": "a/b/c", "version": "1.0"},
            "string", null, [], {"name": "ok/pkg", "version": "1.0", "license": {"x": 1}}
        ]}"#;
        assert_eq!(names(&parse(mixed)), [("ok/pkg", "1.0")]);
        // a huge array is read only up to the cap
        let mut big = String::from("[");
        for i in 0..MAX_PACKAGES + 10 {
            big.push_str(&format!("{{\"name\":\"v/p{i}\",\"version\":\"1\"}},"));
        }
        big.push_str("{}]");
        assert_eq!(parse(big.as_bytes()).len(), MAX_PACKAGES);
    }
}
