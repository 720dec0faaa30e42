//! The files a config names — public keys, sigstore trust roots, denylists — read and
//! parsed at load time, so that a missing, unreadable or malformed file stops `policy
//! check` (exit 64), `serve` (exit 64, before any socket is bound) and `reload` (refused,
//! the running config kept) instead of failing every pull later. Errors name the policy
//! key (`policy[0].signatures.keys[1]`), the file and the reason.

use std::path::Path;
use std::sync::Arc;

use crate::config::{
    Config, ConfigError, FileReport, MAX_DENYLIST_BYTES, MAX_TRUST_ROOT_BYTES, Policy, PolicyFiles,
    invalid,
};
use crate::verify::keyless::TrustMaterial;
use crate::verify::keys::{TrustedKey, read_config_file};

impl Config {
    /// Reads and parses every key file, trust root and denylist of every policy, and the
    /// `[fleet]` key files (their bytes kept in `fleet_files`).
    /// `Err` names the first bad file by its key (inside the config file, when the
    /// config came from one); `Ok` carries warnings (duplicate keys).
    ///
    /// Blocking file I/O; a few small files per policy.
    pub fn check_files(&mut self) -> Result<FileReport, ConfigError> {
        let mut report = FileReport::default();
        check_groups(self, &mut report).map_err(|e| match &self.source {
            Some(path) => ConfigError::InFile {
                path: path.clone(),
                source: Box::new(e),
            },
            None => e,
        })?;
        let source = self.source.clone();
        for (i, p) in self.policies.iter_mut().enumerate() {
            check_policy(i, p, &mut report).map_err(|e| match &source {
                Some(path) => ConfigError::InFile {
                    path: path.clone(),
                    source: Box::new(e),
                },
                None => e,
            })?;
        }
        // Each `[fleet]` file read once; the daemon builds its keys from these bytes.
        let mut fleet_files = PolicyFiles::default();
        self.fleet
            .keys_from(|path, limit| {
                let bytes: Arc<[u8]> = Arc::from(read_config_file(path, limit)?);
                fleet_files.insert(path.to_path_buf(), bytes.clone());
                Ok(bytes)
            })
            .map_err(|e| match &source {
                Some(path) => ConfigError::InFile {
                    path: path.clone(),
                    source: Box::new(e),
                },
                None => e,
            })?;
        self.fleet_files = Some(Arc::new(fleet_files));
        Ok(report)
    }
}

/// The socket groups exist on this host (else `serve` would fail after binding the
/// first socket), and a CRI socket opened to a group is worth a warning.
fn check_groups(c: &Config, report: &mut FileReport) -> Result<(), ConfigError> {
    for (key, group) in [
        ("server.socket_group", &c.server.socket_group),
        ("server.admin_group", &c.server.admin_group),
    ] {
        if nix::unistd::Group::from_name(group)
            .ok()
            .flatten()
            .is_none()
        {
            return Err(invalid(
                key,
                format!("group {group:?} does not exist on this host"),
            ));
        }
    }
    if c.server.socket_group != "root" {
        report.warnings.push(format!(
            "server.socket_group = {:?}: its members reach containerd's whole RuntimeService through the CRI socket (root-equivalent); CLI users need only server.admin_group",
            c.server.socket_group
        ));
    }
    Ok(())
}

fn bad_file(key: String, path: &Path, reason: impl std::fmt::Display) -> ConfigError {
    invalid(key, format!("{}: {reason}", path.display()))
}

/// Reads, parses and keeps (in `p.files`) every file of policy `i`.
fn check_policy(i: usize, p: &mut Policy, report: &mut FileReport) -> Result<(), ConfigError> {
    let mut files = PolicyFiles::default();
    if let Some(v) = &p.vex {
        for (j, path) in v.keys.iter().enumerate() {
            let bad = |r: crate::verify::Rejection| {
                bad_file(format!("policy[{i}].vex.keys[{j}]"), path, r)
            };
            let bytes = crate::verify::keys::read_key_file(path).map_err(|e| bad(e.into()))?;
            TrustedKey::from_file_bytes(&path.display().to_string(), &bytes).map_err(bad)?;
            files.insert(path.clone(), Arc::from(bytes));
        }
        if let Some(path) = &v.trusted_root {
            let key = format!("policy[{i}].vex.trusted_root");
            let bytes = read_config_file(path, MAX_TRUST_ROOT_BYTES)
                .map_err(|r| bad_file(key.clone(), path, r))?;
            TrustMaterial::from_json(&bytes).map_err(|r| {
                bad_file(
                    key.clone(),
                    path,
                    format!("not a usable sigstore trusted_root.json: {r}"),
                )
            })?;
            files.insert(path.clone(), Arc::from(bytes));
        }
    }
    if let Some(s) = &p.signatures {
        let base = format!("policy[{i}].signatures");
        // (index, path, fingerprint) of each distinct key, first listing wins.
        let mut distinct: Vec<(usize, &Path, crate::digest::Digest)> = Vec::new();
        for (j, path) in s.keys.iter().enumerate() {
            let bad = |r: crate::verify::Rejection| bad_file(format!("{base}.keys[{j}]"), path, r);
            let bytes = crate::verify::keys::read_key_file(path).map_err(|e| bad(e.into()))?;
            let key =
                TrustedKey::from_file_bytes(&path.display().to_string(), &bytes).map_err(bad)?;
            files.insert(path.clone(), Arc::from(bytes));
            match distinct.iter().find(|(_, _, f)| *f == key.fingerprint) {
                Some((first, first_path, _)) => report.warnings.push(format!(
                    "{base}.keys[{j}]: {} is the same public key as keys[{first}] ({}); it counts as one signer",
                    path.display(),
                    first_path.display()
                )),
                None => distinct.push((j, path.as_path(), key.fingerprint)),
            }
        }
        let signers = distinct.len() + s.keyless.len();
        if s.threshold > signers {
            return Err(invalid(
                format!("{base}.threshold"),
                format!(
                    "{} but the policy lists only {signers} distinct signers ({} distinct keys, {} keyless identities): one key listed twice, in any encoding, is one signer",
                    s.threshold,
                    distinct.len(),
                    s.keyless.len()
                ),
            ));
        }
        if let Some(path) = &s.trusted_root {
            let bytes = read_config_file(path, MAX_TRUST_ROOT_BYTES)
                .map_err(|r| bad_file(format!("{base}.trusted_root"), path, r))?;
            TrustMaterial::from_json(&bytes).map_err(|r| {
                bad_file(
                    format!("{base}.trusted_root"),
                    path,
                    format!("not a usable sigstore trusted_root.json: {r}"),
                )
            })?;
            files.insert(path.clone(), Arc::from(bytes));
        }
    }
    if let Some(path) = &p.scan.denylist {
        let key = format!("policy[{i}].scan.denylist");
        let bytes = read_config_file(path, MAX_DENYLIST_BYTES)
            .map_err(|r| bad_file(key.clone(), path, r))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| bad_file(key.clone(), path, "is not UTF-8 text"))?;
        crate::scan::Denylist::parse(text).map_err(|e| bad_file(key.clone(), path, e))?;
        files.insert(path.clone(), Arc::from(bytes));
    }
    p.files = Arc::new(files);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::sign::generate_key;
    use sigstore::crypto::SigningScheme;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            let dir = tempfile::tempdir().unwrap();
            let (_, public) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
            std::fs::write(dir.path().join("good.pub"), public).unwrap();
            std::fs::write(
                dir.path().join("deny.txt"),
                format!("# known bad\nsha256:{}\n", "a".repeat(64)),
            )
            .unwrap();
            Files { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn write(&self, name: &str, body: impl AsRef<[u8]>) -> String {
            std::fs::write(self.dir.path().join(name), body).unwrap();
            self.path(name)
        }

        /// A config (from a file, so errors name it) with `keys`, a trust root and a
        /// denylist as given.
        fn config(&self, keys: &[String], root: Option<&str>, deny: Option<&str>) -> Config {
            let list: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
            let mut text = format!(
                "[[policy]]\nname = \"p\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [{}]\n",
                list.join(", ")
            );
            if let Some(r) = root {
                text.push_str(&format!("trusted_root = {r:?}\n"));
            }
            if let Some(d) = deny {
                text.push_str(&format!("[policy.scan]\ndenylist = {d:?}\n"));
            }
            let path = self.dir.path().join("config.toml");
            std::fs::write(&path, text).unwrap();
            Config::load(&path, true).unwrap()
        }
    }

    fn error(c: &Config) -> String {
        c.clone().check_files().unwrap_err().to_string()
    }

    #[test]
    fn good_files_pass() {
        let f = Files::new();
        let mut c = f.config(&[f.path("good.pub")], None, Some(&f.path("deny.txt")));
        assert!(!c.policies[0].files.is_loaded());
        assert_eq!(c.check_files().unwrap(), FileReport::default());
        // The bytes read at load are kept: removing the files afterwards changes nothing.
        let files = c.policies[0].files.clone();
        assert!(files.is_loaded());
        let key = std::fs::read(f.dir.path().join("good.pub")).unwrap();
        std::fs::remove_file(f.dir.path().join("good.pub")).unwrap();
        std::fs::remove_file(f.dir.path().join("deny.txt")).unwrap();
        assert_eq!(
            &*files.get(&f.dir.path().join("good.pub")).unwrap(),
            &key[..]
        );
        assert!(files.get(&f.dir.path().join("deny.txt")).is_some());
        assert!(files.get(&f.dir.path().join("other")).is_none());
    }

    #[test]
    fn each_bad_key_file_names_key_file_and_reason() {
        let f = Files::new();
        std::fs::create_dir(f.dir.path().join("dir.pub")).unwrap();
        nix::unistd::mkfifo(
            &f.dir.path().join("fifo.pub"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let (private, _) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
        // secp256k1 (1.3.132.0.10): a well-formed SPKI of an unsupported curve.
        let mut k1 = vec![
            0x30, 0x56, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        ];
        k1.extend([
            0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a, 0x03, 0x42, 0x00,
        ]);
        k1.push(0x04);
        k1.extend([7u8; 64]);
        let k1_spki = crate::verify::keys::to_pem("PUBLIC KEY", &k1);
        let cases: Vec<(String, &str)> = vec![
            (f.path("missing.pub"), "does not exist"),
            (f.path("dir.pub"), "is a directory"),
            (f.path("fifo.pub"), "is not a regular file"),
            (f.write("empty.pub", "\n"), "is empty"),
            (f.write("private.pem", &private), "private key"),
            (
                f.write(
                    "cert.pem",
                    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                ),
                "a certificate",
            ),
            (
                f.write("text.pub", "hello, I am a key"),
                "is not a public key",
            ),
            (
                f.write(
                    "badb64.pub",
                    "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n",
                ),
                "not valid base64",
            ),
            (f.write("junk.der", [0x30, 0x03, 0x02, 0x01]), "is DER but"),
            (
                f.write("k1.pub", &k1_spki),
                "unsupported EC curve 1.3.132.0.10",
            ),
            (f.write("big.pub", vec![b'A'; 70_000]), "byte limit"),
        ];
        for (path, want) in cases {
            let c = f.config(&[f.path("good.pub"), path.clone()], None, None);
            let e = error(&c);
            assert!(
                e.contains("config.toml")
                    && e.contains("policy[0].signatures.keys[1]")
                    && e.contains(&path)
                    && e.contains(want),
                "{path}: want {want:?} in {e}"
            );
        }
    }

    #[test]
    fn bad_trust_roots_and_denylists_are_named() {
        let f = Files::new();
        let good = f.path("good.pub");
        for (body, want) in [
            ("{}", "not a usable sigstore trusted_root.json"),
            ("not json", "not a usable sigstore trusted_root.json"),
        ] {
            let root = f.write("root.json", body);
            let e = error(&f.config(std::slice::from_ref(&good), Some(&root), None));
            assert!(
                e.contains("policy[0].signatures.trusted_root")
                    && e.contains(&root)
                    && e.contains(want),
                "{e}"
            );
        }
        let e = error(&f.config(
            std::slice::from_ref(&good),
            Some(&f.path("nope.json")),
            None,
        ));
        assert!(
            e.contains("trusted_root") && e.contains("does not exist"),
            "{e}"
        );

        for (body, want) in [
            ("sha256:abc\n".to_string(), "line 1"),
            (
                format!("sha256:{}\nmd5:{}\n", "b".repeat(64), "c".repeat(32)),
                "line 2",
            ),
        ] {
            let deny = f.write("bad-deny.txt", body);
            let e = error(&f.config(std::slice::from_ref(&good), None, Some(&deny)));
            assert!(
                e.contains("policy[0].scan.denylist") && e.contains(&deny) && e.contains(want),
                "{e}"
            );
        }
        let deny = f.write("bin-deny.txt", [0xff, 0xfe, 0x00]);
        assert!(
            error(&f.config(std::slice::from_ref(&good), None, Some(&deny))).contains("not UTF-8")
        );
        let e = error(&f.config(&[good], None, Some(&f.dir.path().display().to_string())));
        assert!(
            e.contains("policy[0].scan.denylist") && e.contains("is a directory"),
            "{e}"
        );
    }

    #[test]
    fn socket_groups_must_exist() {
        let mut c = Config::parse("[server]\nadmin_group = \"no-such-group-pw\"").unwrap();
        let e = c.clone().check_files().unwrap_err().to_string();
        assert!(
            e.starts_with("server.admin_group") && e.contains("does not exist"),
            "{e}"
        );
        c.source = Some("/etc/pw.toml".into());
        assert!(
            c.check_files()
                .unwrap_err()
                .to_string()
                .contains("/etc/pw.toml")
        );
        let mut c = Config::parse("[server]\nsocket_group = \"no-such-group-pw\"").unwrap();
        assert!(
            c.check_files()
                .unwrap_err()
                .to_string()
                .starts_with("server.socket_group")
        );
        let mut c = Config::parse("[server]\nsocket_group = \"daemon\"").unwrap();
        let w = c.check_files().unwrap().warnings;
        assert!(w.len() == 1 && w[0].contains("root-equivalent"), "{w:?}");
    }

    #[test]
    fn duplicate_keys_warn_and_cannot_meet_a_threshold() {
        let f = Files::new();
        let copy = f.write(
            "copy.pub",
            std::fs::read(f.dir.path().join("good.pub")).unwrap(),
        );
        let mut c = f.config(&[f.path("good.pub"), copy.clone()], None, None);
        let report = c.check_files().unwrap();
        assert_eq!(report.warnings.len(), 1, "{report:?}");
        assert!(
            report.warnings[0].starts_with("policy[0].signatures.keys[1]")
                && report.warnings[0].contains("same public key as keys[0]"),
            "{report:?}"
        );
        let text = std::fs::read_to_string(f.dir.path().join("config.toml")).unwrap();
        let path = f.dir.path().join("config.toml");
        std::fs::write(&path, text.replace("keys = [", "threshold = 2\nkeys = [")).unwrap();
        let c = Config::load(&path, true).unwrap();
        let e = error(&c);
        assert!(
            e.contains("policy[0].signatures.threshold") && e.contains("1 distinct signers"),
            "{e}"
        );
    }
}
