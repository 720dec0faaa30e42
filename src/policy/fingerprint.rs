//! The policy fingerprint: a hash of everything a verdict depends on besides the image
//! and the vulnerability database — the effective policy, the bytes of every key file,
//! trust root and denylist it names, and the scan limits that can change an outcome.
//! A cached verdict is reused only under the same fingerprint.

use std::path::{Path, PathBuf};

use crate::config::{Policy, ScanLimits};

/// Bumped when what goes into the hash changes, so old cached verdicts stop matching.
const FINGERPRINT_DOMAIN: &[u8] = b"pullwarden policy fingerprint v1\0";

#[derive(Debug, thiserror::Error)]
pub enum FingerprintError {
    #[error("policy {policy}: cannot read {what} {}: {source}", path.display())]
    ReadFile {
        policy: String,
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy {policy}: cannot serialize the effective policy: {source}")]
    Serialize {
        policy: String,
        source: serde_json::Error,
    },
}

/// Hex BLAKE3 of the canonical policy (serde JSON of `config::Policy`: field order fixed,
/// maps ordered), the outcome-relevant scan limits, and the contents of every file the
/// policy names — the bytes read at load (`Policy::files`), which the verifier and the
/// scanner use too. A missing or unreadable file is an error, so the gate fails closed
/// instead of caching under a fingerprint that does not describe what was checked.
///
/// No I/O for a policy whose files were read at load (`Config::check_files`); otherwise
/// blocking file reads: call from `spawn_blocking` (or compute once per reload).
pub fn fingerprint(policy: &Policy, limits: &ScanLimits) -> Result<String, FingerprintError> {
    let mut h = blake3::Hasher::new();
    h.update(FINGERPRINT_DOMAIN);
    let json = serde_json::to_vec(policy).map_err(|source| FingerprintError::Serialize {
        policy: policy.name.clone(),
        source,
    })?;
    field(&mut h, b"policy", &json);
    // Limits that decide whether a layer is a bomb or a file is searched change
    // verdicts; cache size and parallelism do not, so they stay out.
    let limits = [
        limits.max_layer_bytes,
        limits.max_layer_entries,
        limits.max_path_bytes,
        limits.max_secret_file_bytes,
    ];
    let limit_bytes: Vec<u8> = limits.iter().flat_map(|l| l.to_le_bytes()).collect();
    field(&mut h, b"limits", &limit_bytes);

    let mut files: Vec<(&'static str, &Path)> = Vec::new();
    if let Some(s) = &policy.signatures {
        files.extend(s.keys.iter().map(|k| ("key file", k.as_path())));
        if let Some(root) = &s.trusted_root {
            files.push(("trusted root", root.as_path()));
        }
    }
    if let Some(d) = &policy.scan.denylist {
        files.push(("denylist", d.as_path()));
    }
    // VEX signers decide which findings count: a new `[policy.vex] keys` file, or new
    // bytes in one, is a new policy. (Without the section the VEX signers are the
    // signature keys above.)
    if let Some(v) = &policy.vex {
        files.extend(v.keys.iter().map(|k| ("vex key file", k.as_path())));
    }
    for (what, path) in files {
        let bytes = policy
            .files
            .read(path, crate::config::MAX_DENYLIST_BYTES)
            .map_err(|reason| FingerprintError::ReadFile {
                policy: policy.name.clone(),
                what,
                path: path.to_path_buf(),
                source: std::io::Error::other(reason),
            })?;
        field(&mut h, what.as_bytes(), path.as_os_str().as_encoded_bytes());
        field(&mut h, b"contents", &bytes);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Length-prefixed, so no two different inputs can concatenate to the same stream.
fn field(h: &mut blake3::Hasher, tag: &[u8], bytes: &[u8]) {
    h.update(&(tag.len() as u64).to_le_bytes());
    h.update(tag);
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            for (name, body) in [
                ("k1.pub", "key one"),
                ("k2.pub", "key two"),
                ("root.json", "{\"root\":1}"),
                ("deny.txt", "sha256:aa\n"),
            ] {
                std::fs::write(dir.path().join(name), body).unwrap();
            }
            Fixture { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn config(&self, prod_extra: &str, other_extra: &str) -> Config {
            let text = format!(
                r#"
[[policy]]
name = "prod"
images = ["registry.example.com/prod/**"]
{prod_extra}
[policy.signatures]
keys = ["{k1}", "{k2}"]
trusted_root = "{root}"
[[policy.signatures.keyless]]
issuer = "https://issuer"
subject = "me"
[policy.scan]
denylist = "{deny}"

[[policy]]
name = "other"
images = ["**"]
{other_extra}
"#,
                k1 = self.path("k1.pub"),
                k2 = self.path("k2.pub"),
                root = self.path("root.json"),
                deny = self.path("deny.txt"),
            );
            Config::parse(&text).unwrap()
        }

        fn prod(&self, prod_extra: &str, other_extra: &str) -> String {
            let c = self.config(prod_extra, other_extra);
            fingerprint(&c.policies[0], &c.scan).unwrap()
        }
    }

    #[test]
    fn stable_and_hex() {
        let f = Fixture::new();
        let a = f.prod("", "");
        assert_eq!(a, f.prod("", ""));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn policy_changes_change_it() {
        let f = Fixture::new();
        let base = f.prod("", "");
        assert_ne!(base, f.prod("mode = \"audit\"", ""));
        assert_ne!(base, f.prod("on_error = \"allow\"", ""));
        assert_ne!(base, f.prod("namespaces = [\"default\"]", ""));
        // A change in another policy does not.
        assert_eq!(base, f.prod("", "mode = \"audit\""));
        // Scan limits that change outcomes count; the cache size does not.
        let c = f.config("", "");
        let mut limits = c.scan.clone();
        limits.layer_cache_entries = 5;
        assert_eq!(base, fingerprint(&c.policies[0], &limits).unwrap());
        limits.max_layer_bytes = 1;
        assert_ne!(base, fingerprint(&c.policies[0], &limits).unwrap());
    }

    #[test]
    fn file_contents_change_it() {
        let f = Fixture::new();
        let mut seen = vec![f.prod("", "")];
        for name in ["k1.pub", "k2.pub", "root.json", "deny.txt"] {
            std::fs::write(f.dir.path().join(name), "changed").unwrap();
            let now = f.prod("", "");
            assert!(
                !seen.contains(&now),
                "changing {name} did not change the fingerprint"
            );
            seen.push(now);
        }
        // Swapping the contents of two key files changes it too (paths are hashed).
        std::fs::write(f.dir.path().join("k1.pub"), "A").unwrap();
        std::fs::write(f.dir.path().join("k2.pub"), "B").unwrap();
        let ab = f.prod("", "");
        std::fs::write(f.dir.path().join("k1.pub"), "B").unwrap();
        std::fs::write(f.dir.path().join("k2.pub"), "A").unwrap();
        assert_ne!(ab, f.prod("", ""));
    }

    #[test]
    fn vex_signers_change_it() {
        let f = Fixture::new();
        std::fs::write(f.dir.path().join("vex1.pub"), "vex one").unwrap();
        std::fs::write(f.dir.path().join("vex2.pub"), "vex two").unwrap();
        let section = |name: &str| format!("[policy.vex]\nkeys = [\"{}\"]\n", f.path(name));
        let none = f.prod("", "");
        let one = f.prod(&section("vex1.pub"), "");
        let two = f.prod(&section("vex2.pub"), "");
        assert_ne!(none, one, "adding [policy.vex] keys");
        assert_ne!(one, two, "another VEX key file");
        std::fs::write(f.dir.path().join("vex1.pub"), "vex one, rotated").unwrap();
        assert_ne!(
            one,
            f.prod(&section("vex1.pub"), ""),
            "new bytes in the VEX key"
        );
        std::fs::remove_file(f.dir.path().join("vex1.pub")).unwrap();
        let c = f.config(&section("vex1.pub"), "");
        assert!(matches!(
            fingerprint(&c.policies[0], &c.scan),
            Err(FingerprintError::ReadFile {
                what: "vex key file",
                ..
            })
        ));
    }

    #[test]
    fn missing_files_fail_closed() {
        for name in ["k2.pub", "root.json", "deny.txt"] {
            let f = Fixture::new();
            let c = f.config("", "");
            std::fs::remove_file(f.dir.path().join(name)).unwrap();
            let e = fingerprint(&c.policies[0], &c.scan).unwrap_err();
            assert!(
                matches!(&e, FingerprintError::ReadFile { path, .. } if path.ends_with(name)),
                "{e}"
            );
            assert!(e.to_string().contains("prod"), "{e}");
        }
        // A policy naming no files needs none.
        let f = Fixture::new();
        let c = f.config("", "");
        assert!(fingerprint(&c.policies[1], &c.scan).is_ok());
    }
}
