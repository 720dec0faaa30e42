//! .NET applications: the `<app>.deps.json` the SDK publishes beside the assembly. Its
//! `libraries` map names every dependency as `Name/Version`; entries of type `package`
//! came from NuGet (`project` and `reference` entries are the app's own code).

use serde_json::Value;

use crate::report::{Package, PackageType};

use super::package;

/// Libraries read from one file; large apps have a few hundred.
const MAX_LIBRARIES: usize = 50_000;
const MAX_FIELD: usize = 256;

pub fn is_deps_json(base: &str) -> bool {
    base.len() > ".deps.json".len() && base.ends_with(".deps.json")
}

pub fn parse(bytes: &[u8]) -> Vec<Package> {
    let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let Some(Value::Object(libraries)) = doc.get("libraries") else {
        return Vec::new();
    };
    libraries
        .iter()
        .take(MAX_LIBRARIES)
        .filter(|(_, lib)| lib.get("type").and_then(Value::as_str) == Some("package"))
        .filter_map(|(key, _)| {
            let (name, version) = key.split_once('/')?;
            let ok = |s: &str| {
                !s.is_empty()
                    && s.len() <= MAX_FIELD
                    && !s.contains('/')
                    && !s.chars().any(|c| c.is_control() || c.is_whitespace())
            };
            (ok(name) && ok(version)).then(|| package(PackageType::NuGet, name, version))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from `dotnet publish` of a console app (SDK 8).
    pub const DEPS: &str = r#"{
  "runtimeTarget": {"name": ".NETCoreApp,Version=v8.0", "signature": ""},
  "compilationOptions": {},
  "targets": {".NETCoreApp,Version=v8.0": {
      "app/1.0.0": {"dependencies": {"Newtonsoft.Json": "13.0.1"}, "runtime": {"app.dll": {}}},
      "Newtonsoft.Json/13.0.1": {"runtime": {"lib/net6.0/Newtonsoft.Json.dll": {}}}}},
  "libraries": {
    "app/1.0.0": {"type": "project", "serviceable": false, "sha512": ""},
    "Newtonsoft.Json/13.0.1": {"type": "package", "serviceable": true,
      "sha512": "sha512-ppPFpBcvxdsfUonNcvITKqLl3bqxWbDCZIzDWHzjpdAHRFfZe0Dw9HmA0+za13IdyrgJwpkDTDA9fHaxOrt20A==",
      "path": "newtonsoft.json/13.0.1", "hashPath": "newtonsoft.json.13.0.1.nupkg.sha512"},
    "System.Text.Json/8.0.0-rc.1.23419.4": {"type": "package"},
    "Lib.Local/2.0.0": {"type": "reference"}
  }
}"#;

    #[test]
    fn published_app() {
        let p = parse(DEPS.as_bytes());
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("Newtonsoft.Json", "13.0.1", PackageType::NuGet),
                ("System.Text.Json", "8.0.0-rc.1.23419.4", PackageType::NuGet)
            ]
        );
        assert!(is_deps_json("app.deps.json"));
        assert!(!is_deps_json(".deps.json"));
        assert!(!is_deps_json("app.runtimeconfig.json"));
    }

    #[test]
    fn wrong_types_and_junk() {
        assert!(parse(b"").is_empty());
        assert!(parse(b"[1,2]").is_empty());
        assert!(parse(br#"{"libraries": []}"#).is_empty());
        assert!(parse(br#"{"libraries": {"A/1": {"type": 5}, "B": {"type": "package"}, "/1": {"type": "package"}, "C/": {"type": "package"}, "D/1/2": {"type": "package"}, "E/1": "package"}}"#).is_empty());
        for cut in 0..DEPS.len() {
            let _ = parse(&DEPS.as_bytes()[..cut]);
        }
        let mut big = String::from("{\"libraries\": {");
        for i in 0..MAX_LIBRARIES + 10 {
            big.push_str(&format!("\"P{i}/1.0\": {{\"type\": \"package\"}},"));
        }
        big.push_str("\"x/1\": {}}}");
        assert_eq!(parse(big.as_bytes()).len(), MAX_LIBRARIES);
    }
}
