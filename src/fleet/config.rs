//! `[fleet]`: whether this node publishes its scans, with which key, and whose
//! attestations replace a scan here. Two stages like the rest of the config: [`RawFleet`]
//! mirrors the TOML, [`FleetConfig::try_from`] validates it; [`FleetConfig::load_keys`]
//! reads and parses the key files at load, so a bad file stops `serve` (exit 64).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::consume::{ConsumeLimits, Trust};
use super::keys::AttestationSigner;
use crate::config::ConfigError;
pub use crate::config::{DEFAULT_MAX_AGE, FleetConfig, RawFleet};
use crate::verify::FileRejection;
use crate::verify::keys::{MAX_KEY_FILE_BYTES, TrustedKey, read_config_file};

/// The keys `[fleet]` names, read and parsed.
#[derive(Debug, Clone)]
pub struct FleetKeys {
    /// Present when `publish = true`.
    pub signer: Option<Arc<AttestationSigner>>,
    pub trust: Trust,
    pub limits: ConsumeLimits,
}

impl FleetKeys {
    /// Whether anything would consult the registry for attestations.
    pub fn consumes(&self) -> bool {
        !self.trust.keys.is_empty()
    }
}

impl FleetConfig {
    /// Reads the signing key (when publishing) and every trusted key. Errors name the
    /// key (`fleet.trusted[1]`), the file and the reason. Blocking I/O; the scrypt of an
    /// encrypted cosign key takes a fraction of a second.
    pub fn load_keys(&self) -> Result<FleetKeys, ConfigError> {
        self.keys_from(|path, limit| read_config_file(path, limit).map(Arc::from))
    }

    /// [`FleetConfig::load_keys`] from the bytes `read` gives for each file (with the
    /// size limit of that kind of file, in bytes): the load reads each file once and
    /// keeps its bytes for the daemon to build the keys from.
    pub fn keys_from(
        &self,
        mut read: impl FnMut(&Path, u64) -> Result<Arc<[u8]>, FileRejection>,
    ) -> Result<FleetKeys, ConfigError> {
        let bad = |key: String, path: &PathBuf, r: &dyn std::fmt::Display| ConfigError::Invalid {
            key,
            message: format!("{}: {r}", path.display()),
        };
        let signer = match (&self.key, self.publish) {
            (Some(path), true) => {
                let pem = read(path, MAX_KEY_FILE_BYTES)
                    .map_err(|r| bad("fleet.key".into(), path, &r))?;
                let password = match &self.key_password_file {
                    None => Vec::new(),
                    Some(p) => {
                        let mut b = read(p, 4096)
                            .map_err(|r| bad("fleet.key_password_file".into(), p, &r))?
                            .to_vec();
                        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                            b.pop();
                        }
                        b
                    }
                };
                let s = AttestationSigner::from_pem(&path.display().to_string(), &pem, &password)
                    .map_err(|e| bad("fleet.key".into(), path, &e))?;
                Some(Arc::new(s))
            }
            _ => None,
        };
        let mut keys: Vec<TrustedKey> = Vec::with_capacity(self.trusted.len());
        for (i, path) in self.trusted.iter().enumerate() {
            let key = format!("fleet.trusted[{i}]");
            let bytes = read(path, MAX_KEY_FILE_BYTES)
                .and_then(|b| match b.iter().all(|c| c.is_ascii_whitespace()) {
                    true => Err(FileRejection::Empty),
                    false => Ok(b),
                })
                .map_err(|r| bad(key.clone(), path, &r))?;
            let k = TrustedKey::from_file_bytes(&path.display().to_string(), &bytes)
                .map_err(|r| bad(key, path, &r))?;
            if !keys.iter().any(|have| have.fingerprint == k.fingerprint) {
                keys.push(k);
            }
        }
        Ok(FleetKeys {
            signer,
            trust: Trust {
                keys,
                max_age: self.max_age,
            },
            limits: ConsumeLimits {
                max_examined: self.max_examined,
                ..ConsumeLimits::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_read_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let pair = sigstore::crypto::SigningScheme::ED25519
            .create_signer()
            .unwrap()
            .to_sigstore_keypair()
            .unwrap();
        let private = dir.path().join("node.key");
        std::fs::write(
            &private,
            pair.private_key_to_encrypted_pem(b"s3cret")
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let public = dir.path().join("node.pub");
        std::fs::write(&public, pair.public_key_to_pem().unwrap()).unwrap();
        let c = FleetConfig {
            publish: true,
            key: Some(private.clone()),
            key_password_file: Some(pw),
            trusted: vec![public.clone(), public.clone()],
            ..FleetConfig::default()
        };
        let k = c.load_keys().unwrap();
        assert_eq!(k.trust.keys.len(), 1, "one key listed twice is one key");
        assert_eq!(
            k.signer.unwrap().public.fingerprint,
            k.trust.keys[0].fingerprint
        );
        // The private key where a public one belongs, a missing file, a wrong password.
        let e = FleetConfig {
            trusted: vec![public.clone(), private.clone()],
            ..FleetConfig::default()
        }
        .load_keys()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("fleet.trusted[1]:") && e.contains("private key"),
            "{e}"
        );
        let e = FleetConfig {
            trusted: vec![dir.path().join("absent.pub")],
            ..FleetConfig::default()
        }
        .load_keys()
        .unwrap_err()
        .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = FleetConfig {
            publish: true,
            key: Some(private),
            ..FleetConfig::default()
        }
        .load_keys()
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("fleet.key:"), "{e}");
    }
}
