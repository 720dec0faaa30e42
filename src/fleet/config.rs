//! `[fleet]`: whether this node publishes its scans, with which key, and whose
//! attestations replace a scan here. Two stages like the rest of the config: [`RawFleet`]
//! mirrors the TOML, [`FleetConfig::try_from`] validates it; [`FleetConfig::load_keys`]
//! reads and parses the key files at load, so a bad file stops `serve` (exit 64).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::consume::{ConsumeLimits, Trust};
use super::keys::AttestationSigner;
use crate::config::ConfigError;
use crate::verify::keys::{MAX_KEY_FILE_BYTES, TrustedKey, read_config_file, read_key_file};

/// Default `max_age`: a week.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(168 * 3600);

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// Publish a signed scan attestation after each local scan (default false).
    pub publish: Option<bool>,
    /// This node's signing key: PKCS#8 PEM or a cosign key, ECDSA P-256 or Ed25519.
    pub key: Option<PathBuf>,
    /// File holding the password of an encrypted cosign `key` (default: empty password).
    pub key_password_file: Option<PathBuf>,
    /// Public keys whose scan attestations replace a local scan.
    pub trusted: Option<Vec<PathBuf>>,
    /// How old an attestation may be (default "168h").
    pub max_age: Option<String>,
    /// Attestations examined per image at most (default 16).
    pub max_examined: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetConfig {
    pub publish: bool,
    pub key: Option<PathBuf>,
    pub key_password_file: Option<PathBuf>,
    pub trusted: Vec<PathBuf>,
    #[serde(serialize_with = "ser_duration")]
    pub max_age: Duration,
    pub max_examined: usize,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            publish: false,
            key: None,
            key_password_file: None,
            trusted: Vec::new(),
            max_age: DEFAULT_MAX_AGE,
            max_examined: ConsumeLimits::default().max_examined,
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("fleet.{key}"),
        message: message.into(),
    }
}

impl TryFrom<RawFleet> for FleetConfig {
    type Error = ConfigError;

    fn try_from(raw: RawFleet) -> Result<Self, ConfigError> {
        let d = FleetConfig::default();
        let max_age = match raw.max_age {
            None => d.max_age,
            Some(s) => humantime::parse_duration(&s).map_err(|e| {
                invalid(
                    "max_age",
                    format!("{s:?} is not a duration like \"168h\": {e}"),
                )
            })?,
        };
        if max_age.is_zero() {
            return Err(invalid("max_age", "must be more than 0s"));
        }
        let publish = raw.publish.unwrap_or(false);
        if publish && raw.key.is_none() {
            return Err(invalid("key", "publish = true needs a signing key file"));
        }
        let max_examined = raw.max_examined.unwrap_or(d.max_examined);
        if !(1..=1024).contains(&max_examined) {
            return Err(invalid("max_examined", "must be between 1 and 1024"));
        }
        Ok(FleetConfig {
            publish,
            key: raw.key,
            key_password_file: raw.key_password_file,
            trusted: raw.trusted.unwrap_or_default(),
            max_age,
            max_examined,
        })
    }
}

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
        let bad = |key: String, path: &PathBuf, r: String| ConfigError::Invalid {
            key,
            message: format!("{}: {r}", path.display()),
        };
        let signer = match (&self.key, self.publish) {
            (Some(path), true) => {
                let pem = read_config_file(path, MAX_KEY_FILE_BYTES)
                    .map_err(|r| bad("fleet.key".into(), path, r))?;
                let password = match &self.key_password_file {
                    None => Vec::new(),
                    Some(p) => {
                        let mut b = read_config_file(p, 4096)
                            .map_err(|r| bad("fleet.key_password_file".into(), p, r))?;
                        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                            b.pop();
                        }
                        b
                    }
                };
                let s = AttestationSigner::from_pem(&path.display().to_string(), &pem, &password)
                    .map_err(|e| bad("fleet.key".into(), path, e.to_string()))?;
                Some(Arc::new(s))
            }
            _ => None,
        };
        let mut keys: Vec<TrustedKey> = Vec::with_capacity(self.trusted.len());
        for (i, path) in self.trusted.iter().enumerate() {
            let key = format!("fleet.trusted[{i}]");
            let bytes = read_key_file(path).map_err(|r| bad(key.clone(), path, r))?;
            let k = TrustedKey::from_file_bytes(&path.display().to_string(), &bytes)
                .map_err(|r| bad(key, path, r))?;
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

    fn parse(text: &str) -> Result<FleetConfig, ConfigError> {
        let raw: RawFleet = toml::from_str(text).unwrap();
        FleetConfig::try_from(raw)
    }

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = parse("").unwrap();
        assert!(!c.publish);
        assert_eq!(c.max_age, DEFAULT_MAX_AGE);
        let e = parse("publish = true").unwrap_err().to_string();
        assert!(e.starts_with("fleet.key:"), "{e}");
        let e = parse("max_age = \"soon\"").unwrap_err().to_string();
        assert!(e.starts_with("fleet.max_age:"), "{e}");
        let e = parse("max_age = \"0s\"").unwrap_err().to_string();
        assert!(e.starts_with("fleet.max_age:"), "{e}");
        assert!(toml::from_str::<RawFleet>("pubish = true").is_err());
    }

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
