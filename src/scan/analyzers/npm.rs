//! npm packages installed under `node_modules/` (`node_modules/<name>/package.json`
//! or `node_modules/@scope/<name>/package.json`, at any depth).

use crate::report::{Package, PackageType};

use super::package;

/// True when `dir` is the directory of an installed package.
pub fn is_installed_package_dir(dir: &str) -> bool {
    let mut parts = dir.rsplit('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some("node_modules"), _) => !name.starts_with('@'),
        (Some(_name), Some(scope), Some("node_modules")) => scope.starts_with('@'),
        _ => false,
    }
}

pub fn parse(bytes: &[u8]) -> Option<Package> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let name = v.get("name")?.as_str()?;
    let version = v.get("version")?.as_str()?;
    if name.is_empty() || version.is_empty() {
        return None;
    }
    let mut p = package(PackageType::Npm, name, version);
    if let Some(l) = v.get("license").and_then(|l| l.as_str()) {
        p.licenses = vec![l.to_string()];
    }
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
        assert!(is_installed_package_dir("usr/lib/node_modules/npm"));
        assert!(is_installed_package_dir("app/node_modules/@babel/core"));
        assert!(!is_installed_package_dir("app/node_modules/@babel"));
        assert!(!is_installed_package_dir("app/src"));
    }
}
