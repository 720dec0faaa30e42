//! `[fleet]`: whether this node publishes its scans, with which key, and whose
//! attestations replace a scan here. Two stages like the rest of the config: [`RawFleet`]
//! mirrors the TOML, [`FleetConfig::try_from`] validates it; the key files are read and
//! parsed at load by the fleet module, so a bad file stops `serve` (exit 64).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Default `max_examined`: attestations examined per image at most.
pub const DEFAULT_MAX_EXAMINED: usize = 16;

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
            max_examined: DEFAULT_MAX_EXAMINED,
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
}
