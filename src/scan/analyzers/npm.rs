//! npm packages from every `package.json` with a name and a version (as Syft's
//! javascript-package-cataloger reads `**/package.json`): packages installed under
//! `node_modules/`, packages another package vendors inside itself
//! (`node_modules/bson/vendor/text-encoding/package.json`), and the application's own
//! manifest.

use crate::report::{Package, PackageType};

use super::package;

pub fn parse(bytes: &[u8]) -> Option<Package> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let name = v.get("name")?.as_str()?;
    let version = v.get("version")?.as_str()?;
    if name.is_empty() || version.is_empty() {
        return None;
    }
    let mut p = package(PackageType::Npm, name, version);
    // `"license": "MIT"`, the deprecated `{"type": "MIT"}` and `"licenses": [{"type": …}]`.
    let kind = |l: &serde_json::Value| {
        l.as_str()
            .or_else(|| l.get("type").and_then(|t| t.as_str()))
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(str::to_string)
    };
    p.licenses = match (v.get("license"), v.get("licenses")) {
        (Some(l), _) => kind(l).into_iter().collect(),
        (None, Some(serde_json::Value::Array(ls))) => ls.iter().take(16).filter_map(kind).collect(),
        _ => Vec::new(),
    };
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_json() {
        let j = br#"{"name": "@babel/core", "version": "7.24.0", "license": "MIT", "dependencies": {}}"#;
        let p = parse(j).unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("@babel/core", "7.24.0")
        );
        assert!(parse(br#"{"name": "x"}"#).is_none());
        assert!(parse(b"{not json").is_none());
        // Private application manifests count too, as long as they name a version.
        let app = parse(br#"{"name": "shop", "version": "1.4.2", "private": true}"#).unwrap();
        assert_eq!((app.name.as_str(), app.version.as_str()), ("shop", "1.4.2"));
        assert!(parse(br#"{"name": "", "version": "1.0.0"}"#).is_none());
        assert!(parse(br#"{"name": "x", "version": 1}"#).is_none());
    }
}
