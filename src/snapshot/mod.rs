//! One policy snapshot per load or reload. Every key, trust-root and denylist file a
//! policy names is read once; the policy's verifier, its scanner (with the denylist)
//! and its fingerprint are built from those same bytes, and the whole snapshot is
//! handed around behind one `Arc` (the gate swaps it whole on reload). It stands above
//! `verify/`, `scan/` and `policy/`, which take bytes and parsed values and read nothing.

mod files;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{
    Config, MAX_DENYLIST_BYTES, MAX_TRUST_ROOT_BYTES, Policy, PolicyFiles, ScanLimits,
};
use crate::policy::fingerprint::{FingerprintError, PolicyFile, fingerprint};
use crate::scan::{Denylist, DenylistError, Scanner};
use crate::verify::keys::{MAX_KEY_FILE_BYTES, read_config_file};
use crate::verify::{FileRejection, Verifier, VerifyError};
use crate::vex::signers::VexSigners;

/// Why a policy's own files cannot be used. Cloned to every pull under the policy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {0:?} is not loaded")]
    NotLoaded(String),
    /// Fingerprinting the policy failed at load.
    #[error("{0}")]
    Fingerprint(#[source] Arc<dyn std::error::Error + Send + Sync>),
    #[error("policy {0} has no signatures section")]
    NoSignatures(String),
    /// A key or the trust root does not load.
    #[error("{0}")]
    Keys(#[source] Arc<VerifyError>),
    /// The denylist file cannot be read.
    #[error("denylist {}: {reason}", path.display())]
    DenylistUnreadable {
        path: PathBuf,
        #[source]
        reason: FileRejection,
    },
    #[error("denylist {}: is not UTF-8 text", path.display())]
    DenylistNotText { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Denylist {
        path: PathBuf,
        #[source]
        source: Arc<DenylistError>,
    },
}

/// A policy with what was built from its files' bytes as read at this load.
pub struct LoadedPolicy {
    policy: Policy,
    fingerprint: Result<String, PolicyError>,
    verifier: Result<Arc<Verifier>, PolicyError>,
    scanner: Result<Arc<Scanner>, PolicyError>,
    /// Who may suppress findings with VEX, from the same bytes (an error names the
    /// unusable file).
    vex_signers: Result<Arc<VexSigners>, String>,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("policy", &self.policy.name)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PolicySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySnapshot")
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for LoadedPolicy {
    type Target = Policy;
    fn deref(&self) -> &Policy {
        &self.policy
    }
}

impl LoadedPolicy {
    /// The policy as configured.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Hex BLAKE3 of the policy and the bytes its verifier and scanner were built from.
    pub fn fingerprint(&self) -> Result<&str, PolicyError> {
        self.fingerprint.as_deref().map_err(Clone::clone)
    }

    /// The verifier of `[policy.signatures]`, built from the key and trust-root bytes
    /// that the fingerprint covers.
    pub fn verifier(&self) -> Result<Arc<Verifier>, PolicyError> {
        self.verifier.clone()
    }

    /// The scanner under the scan limits, with the denylist bytes the fingerprint covers.
    pub fn scanner(&self) -> Result<Arc<Scanner>, PolicyError> {
        self.scanner.clone()
    }

    /// The signers trusted for VEX ([`VexSigners::from_files`]), built from the key and
    /// trust-root bytes the fingerprint covers.
    pub fn vex_signers(&self) -> Result<Arc<VexSigners>, String> {
        self.vex_signers.clone()
    }
}

/// The policies in force and what each was built from; replaced whole on reload.
pub struct PolicySnapshot {
    pub config: Arc<Config>,
    policies: HashMap<String, Arc<LoadedPolicy>>,
    /// For a scan outside every policy (an SBOM of an image without a verdict).
    unpoliced: Arc<Scanner>,
}

impl PolicySnapshot {
    /// Builds every policy of `config` from its files: the bytes read at load
    /// (`Config::check_files`), or, for a file not read then (a config built in
    /// memory), read now, once. Blocking file I/O only in that second case.
    pub fn load(config: Arc<Config>) -> PolicySnapshot {
        let limits = config.scan.clone();
        PolicySnapshot::build(config, |p, files| {
            let files = files
                .iter()
                .map(|(what, path, bytes)| match bytes {
                    Ok(b) => Ok(PolicyFile {
                        what,
                        path,
                        bytes: &b[..],
                    }),
                    Err(e) => Err(FingerprintError::ReadFile {
                        policy: p.name.clone(),
                        what,
                        path: path.to_path_buf(),
                        source: std::io::Error::other(e.clone()),
                    }),
                })
                .collect::<Result<Vec<_>, _>>();
            files
                .and_then(|f| fingerprint(p, &limits, &f))
                .map_err(|e| PolicyError::Fingerprint(Arc::new(e)))
        })
    }

    /// [`PolicySnapshot::load`] with the fingerprint computed by `fingerprint` (tests:
    /// fixed fingerprints).
    pub fn new<E: Into<Box<dyn std::error::Error + Send + Sync>>>(
        config: Arc<Config>,
        fingerprint: impl Fn(&Policy) -> Result<String, E>,
    ) -> PolicySnapshot {
        PolicySnapshot::build(config, |p, _| {
            fingerprint(p).map_err(|e| PolicyError::Fingerprint(Arc::from(e.into())))
        })
    }

    fn build(
        config: Arc<Config>,
        fingerprint: impl Fn(&Policy, &[FileRead<'_>]) -> Result<String, PolicyError>,
    ) -> PolicySnapshot {
        let policies = config
            .policies
            .iter()
            .map(|p| {
                let loaded = load_policy(p, &config.scan, &fingerprint);
                (p.name.clone(), Arc::new(loaded))
            })
            .collect();
        let unpoliced = Arc::new(Scanner::new(&config.scan, None));
        PolicySnapshot {
            config,
            policies,
            unpoliced,
        }
    }

    /// The policy named `name` as loaded.
    pub fn policy(&self, name: &str) -> Result<Arc<LoadedPolicy>, PolicyError> {
        self.policies
            .get(name)
            .cloned()
            .ok_or_else(|| PolicyError::NotLoaded(name.to_string()))
    }

    pub fn fingerprint(&self, policy: &str) -> Result<&str, PolicyError> {
        match self.policies.get(policy) {
            Some(p) => p.fingerprint.as_deref().map_err(Clone::clone),
            None => Err(PolicyError::NotLoaded(policy.to_string())),
        }
    }

    /// The scanner of policy `name`, or (`None`) the one for scans outside any policy.
    pub fn scanner(&self, name: Option<&str>) -> Result<Arc<Scanner>, PolicyError> {
        match name {
            Some(n) => self.policy(n)?.scanner(),
            None => Ok(self.unpoliced.clone()),
        }
    }
}

/// One file of a policy as read: what it is ("key file", "trusted root", "denylist"),
/// its path, and its bytes or why they could not be read.
type FileRead<'a> = (&'static str, &'a Path, Result<Arc<[u8]>, FileRejection>);

/// A policy's files, each read once: from the load's snapshot, else from the disk.
struct FileReads<'a> {
    loaded: &'a PolicyFiles,
    read: HashMap<PathBuf, Result<Arc<[u8]>, FileRejection>>,
}

impl FileReads<'_> {
    fn get(&mut self, path: &Path, limit: u64) -> Result<Arc<[u8]>, FileRejection> {
        if let Some(b) = self.loaded.get(path) {
            return Ok(b);
        }
        self.read
            .entry(path.to_path_buf())
            .or_insert_with(|| read_config_file(path, limit).map(Arc::from))
            .clone()
    }
}

fn load_policy(
    p: &Policy,
    limits: &ScanLimits,
    fingerprint: &impl Fn(&Policy, &[FileRead<'_>]) -> Result<String, PolicyError>,
) -> LoadedPolicy {
    let mut reads = FileReads {
        loaded: &p.files,
        read: HashMap::new(),
    };
    // (what, path, bytes) in the order the fingerprint hashes them.
    let mut files: Vec<FileRead<'_>> = Vec::new();
    if let Some(s) = &p.signatures {
        for k in &s.keys {
            files.push(("key file", k, reads.get(k, MAX_KEY_FILE_BYTES)));
        }
        if let Some(root) = &s.trusted_root {
            files.push(("trusted root", root, reads.get(root, MAX_TRUST_ROOT_BYTES)));
        }
    }
    if let Some(d) = &p.scan.denylist {
        files.push(("denylist", d, reads.get(d, MAX_DENYLIST_BYTES)));
    }
    // VEX signers decide which findings count: a new `[policy.vex] keys` file or trust
    // root, or new bytes in one, is a new policy (the keyless identities are in the
    // policy itself). Without the section the VEX signers are the image signers above.
    if let Some(v) = &p.vex {
        for k in &v.keys {
            files.push(("vex key file", k, reads.get(k, MAX_KEY_FILE_BYTES)));
        }
        if let Some(root) = &v.trusted_root {
            files.push((
                "vex trusted root",
                root,
                reads.get(root, MAX_TRUST_ROOT_BYTES),
            ));
        }
    }
    let bytes_of = |path: &Path| {
        files
            .iter()
            .find(|(_, p, _)| *p == path)
            .map(|(_, _, b)| b.clone())
            .unwrap_or_else(|| Err(FileRejection::Missing))
    };

    let verifier = match &p.signatures {
        None => Err(PolicyError::NoSignatures(p.name.clone())),
        Some(sig) => Verifier::from_bytes(sig, |path, _| bytes_of(path))
            .map(Arc::new)
            .map_err(|e| PolicyError::Keys(Arc::new(e))),
    };
    let denylist = match &p.scan.denylist {
        None => Ok(None),
        Some(path) => denylist(path, bytes_of(path)).map(Some),
    };
    let scanner = denylist.map(|d| Arc::new(Scanner::new(limits, d)));
    let vex_signers = VexSigners::from_files(p, |path, _| bytes_of(path).map(|b| b.to_vec()))
        .map(Arc::new)
        .map_err(|e| e.to_string());
    let fingerprint = fingerprint(p, &files);
    LoadedPolicy {
        policy: p.clone(),
        fingerprint,
        verifier,
        scanner,
        vex_signers,
    }
}

fn denylist(path: &Path, bytes: Result<Arc<[u8]>, FileRejection>) -> Result<Denylist, PolicyError> {
    let bytes = bytes.map_err(|reason| PolicyError::DenylistUnreadable {
        path: path.to_path_buf(),
        reason,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| PolicyError::DenylistNotText {
        path: path.to_path_buf(),
    })?;
    Denylist::parse(text).map_err(|source| PolicyError::Denylist {
        path: path.to_path_buf(),
        source: Arc::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::keys::TrustedKey;
    use crate::verify::sign::generate_key;
    use sigstore::crypto::SigningScheme;

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

        /// The fingerprint of "prod", its files read by the snapshot (not checked first).
        fn prod(&self, prod_extra: &str, other_extra: &str) -> String {
            print(self.config(prod_extra, other_extra), None)
        }
    }

    /// The fingerprint of "prod" in `c`, under `limits` when given.
    fn print(mut c: Config, limits: Option<&ScanLimits>) -> String {
        if let Some(l) = limits {
            c.scan = l.clone();
        }
        let s = PolicySnapshot::load(Arc::new(c));
        s.fingerprint("prod").unwrap().to_string()
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
        assert_eq!(base, print(c.clone(), Some(&limits)));
        limits.max_layer_bytes = 1;
        assert_ne!(base, print(c, Some(&limits)));
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
        let s = PolicySnapshot::load(Arc::new(f.config(&section("vex1.pub"), "")));
        let Err(PolicyError::Fingerprint(e)) = s.fingerprint("prod") else {
            panic!("a missing VEX key file did not fail the fingerprint");
        };
        assert!(matches!(
            e.downcast_ref::<FingerprintError>(),
            Some(FingerprintError::ReadFile {
                what: "vex key file",
                ..
            })
        ));
    }

    #[test]
    fn keyless_vex_signers_change_it() {
        let f = Fixture::new();
        std::fs::write(f.dir.path().join("vexroot.json"), "vex root").unwrap();
        let keyless = |subject: &str| {
            format!(
                "[[policy.vex.keyless]]\nissuer = \"https://issuer\"\nsubject = \"{subject}\"\n"
            )
        };
        let none = f.prod("", "");
        let a = f.prod(&keyless("vendor-a"), "");
        assert_ne!(none, a, "adding a keyless VEX signer");
        assert_ne!(
            a,
            f.prod(&keyless("vendor-b"), ""),
            "another keyless VEX signer"
        );
        let rooted = format!(
            "[policy.vex]\ntrusted_root = \"{}\"\n{}",
            f.path("vexroot.json"),
            keyless("vendor-a")
        );
        let r1 = f.prod(&rooted, "");
        assert_ne!(a, r1, "a VEX trust root of its own");
        std::fs::write(f.dir.path().join("vexroot.json"), "vex root, rotated").unwrap();
        assert_ne!(r1, f.prod(&rooted, ""), "new bytes in the VEX trust root");
    }

    #[test]
    fn missing_files_fail_closed() {
        for name in ["k2.pub", "root.json", "deny.txt"] {
            let f = Fixture::new();
            let c = f.config("", "");
            std::fs::remove_file(f.dir.path().join(name)).unwrap();
            let s = PolicySnapshot::load(Arc::new(c));
            let Err(PolicyError::Fingerprint(e)) = s.fingerprint("prod") else {
                panic!("{name}: the fingerprint did not fail");
            };
            let e = e.downcast_ref::<FingerprintError>().unwrap();
            assert!(
                matches!(e, FingerprintError::ReadFile { path, .. } if path.ends_with(name)),
                "{e}"
            );
            assert!(e.to_string().contains("prod"), "{e}");
        }
        // A policy naming no files needs none.
        let f = Fixture::new();
        let s = PolicySnapshot::load(Arc::new(f.config("", "")));
        assert!(s.fingerprint("other").is_ok());
    }

    /// A key file replaced after the load (between the load's read and any later one)
    /// changes neither the verifier nor the fingerprint: both come from the bytes the
    /// load read, and the fingerprint is exactly the hash of those bytes.
    #[test]
    fn fingerprint_and_verifier_come_from_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pub");
        let (_, first) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
        let (_, second) = generate_key(SigningScheme::ECDSA_P256_SHA256_ASN1).unwrap();
        std::fs::write(&key, &first).unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            format!("[[policy]]\nname = \"p\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [{key:?}]\n"),
        )
        .unwrap();
        let mut c = Config::load(&config_path, true).unwrap();
        c.check_files().unwrap();
        // The key is rotated on disk after the load read it, before the snapshot.
        std::fs::write(&key, &second).unwrap();
        let c = Arc::new(c);
        let snapshot = PolicySnapshot::load(c.clone());
        let loaded = snapshot.policy("p").unwrap();

        let trusted = TrustedKey::from_file_bytes("k", first.as_bytes()).unwrap();
        let rotated = TrustedKey::from_file_bytes("k", second.as_bytes()).unwrap();
        let verifier = loaded.verifier().unwrap();
        let keys: Vec<_> = verifier.keys().iter().map(|k| &k.fingerprint).collect();
        assert_eq!(keys, [&trusted.fingerprint]);
        assert_ne!(trusted.fingerprint, rotated.fingerprint);

        let of = |bytes: &[u8]| {
            let file = PolicyFile {
                what: "key file",
                path: &key,
                bytes,
            };
            fingerprint(loaded.policy(), &c.scan, &[file]).unwrap()
        };
        assert_eq!(loaded.fingerprint().unwrap(), of(first.as_bytes()));
        assert_ne!(loaded.fingerprint().unwrap(), of(second.as_bytes()));
    }
}
