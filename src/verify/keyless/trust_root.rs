//! The parts of an offline sigstore `trusted_root.json` that verification needs: CA
//! anchors with their `validFor` windows, Rekor keys by log id, timestamp authorities.

use crate::verify::Rejection;
use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use sigstore::trust::TrustRoot as _;
use sigstore::trust::sigstore::SigstoreTrustRoot;
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

use crate::verify::VerifyError;
use crate::verify::timestamp;

/// The parts of `trusted_root.json` verification needs, owned.
#[derive(Debug, Clone)]
pub struct TrustMaterial {
    pub(super) anchors: Vec<TrustAnchor<'static>>,
    pub(super) intermediates: Vec<CertificateDer<'static>>,
    /// Rekor public keys by hex log id, with the window in which each log signed.
    pub(super) rekor_keys: BTreeMap<String, LogKey>,
    /// Each CA's `validFor` window by the DER subject of its root (a root shared by
    /// several CA entries has several windows).
    pub(super) ca_windows: Vec<(Vec<u8>, Window)>,
    pub(super) timestamp_authorities: Vec<timestamp::Authority>,
}

impl TrustMaterial {
    pub fn load(path: &Path) -> Result<TrustMaterial, VerifyError> {
        let bytes = std::fs::read(path).map_err(|e| VerifyError::TrustRoot {
            path: path.to_path_buf(),
            reason: Rejection::TrustRoot(e.to_string()),
        })?;
        TrustMaterial::from_json(&bytes).map_err(|reason| VerifyError::TrustRoot {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn from_json(bytes: &[u8]) -> Result<TrustMaterial, Rejection> {
        let root = SigstoreTrustRoot::from_trusted_root_json_unchecked(bytes)
            .map_err(|e| Rejection::TrustRoot(format!("does not parse: {e}")))?;
        let certs = root
            .fulcio_certs()
            .map_err(|e| Rejection::TrustRoot(e.to_string()))?;
        let mut anchors = Vec::new();
        let mut intermediates = Vec::new();
        for c in certs {
            let parsed = Certificate::from_der(c.as_ref()).map_err(|e| {
                Rejection::TrustRoot(format!("a CA certificate does not parse: {e}"))
            })?;
            let tbs = parsed.tbs_certificate();
            // The crate flattens each chain; self-issued certificates are the roots.
            if tbs.issuer() == tbs.subject() {
                let a = webpki::anchor_from_trusted_cert(&c)
                    .map_err(|e| {
                        Rejection::TrustRoot(format!(
                            "a CA certificate is not usable as a root: {e}"
                        ))
                    })?
                    .to_owned();
                anchors.push(a);
            } else {
                intermediates.push(c.into_owned());
            }
        }
        if anchors.is_empty() {
            return Err(Rejection::TrustRoot("no root certificate authority".into()));
        }
        let rekor_keys = log_keys(bytes)?;
        let ca_windows = ca_windows(bytes)?;
        let timestamp_authorities = timestamp::authorities_from_json(bytes)?;
        Ok(TrustMaterial {
            anchors,
            intermediates,
            rekor_keys,
            ca_windows,
            timestamp_authorities,
        })
    }

    pub fn timestamp_authorities(&self) -> &[timestamp::Authority] {
        &self.timestamp_authorities
    }

    pub fn has_rekor_keys(&self) -> bool {
        !self.rekor_keys.is_empty()
    }
}

/// A transparency log's key and the window (`validFor`, Unix seconds) in which the log
/// used it. Read from the JSON here rather than through the crate, whose
/// `rekor_keys()` drops every key whose window has ended (so entries a rotated-out
/// key signed while it was current could not be checked) and never compares an
/// entry's time with the window.
#[derive(Debug, Clone)]
pub struct LogKey {
    pub spki: Vec<u8>,
    pub window: Window,
}

/// A trust-root `validFor` window in Unix seconds (open ends allowed).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: Option<i64>,
    pub until: Option<i64>,
}

impl Window {
    pub fn contains(&self, t: i64) -> bool {
        self.from.is_none_or(|s| t >= s) && self.until.is_none_or(|e| t <= e)
    }

    fn read(v: &serde_json::Value, what: &str) -> Result<Window, Rejection> {
        let time = |t: &serde_json::Value, end: &str| -> Result<Option<i64>, Rejection> {
            match t.as_str() {
                None => Ok(None),
                Some(s) => {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .map(|t| Some(t.unix_timestamp()))
                        .map_err(|_| {
                            Rejection::TrustRoot(format!(
                                "{what} validFor.{end} {:?} is not an RFC 3339 time",
                                s.chars().take(40).collect::<String>()
                            ))
                        })
                }
            }
        };
        Ok(Window {
            from: time(&v["start"], "start")?,
            until: time(&v["end"], "end")?,
        })
    }
}

/// The `validFor` window of every certificate authority, by its root's DER subject.
fn ca_windows(bytes: &[u8]) -> Result<Vec<(Vec<u8>, Window)>, Rejection> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Rejection::TrustRoot(format!("does not parse: {e}")))?;
    let mut out = Vec::new();
    let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
    for ca in list(&v["certificateAuthorities"]) {
        let window = Window::read(&ca["validFor"], "certificate authority")?;
        for c in list(&ca["certChain"]["certificates"]) {
            let Some(der) = c["rawBytes"].as_str().and_then(|b| BASE64.decode(b).ok()) else {
                continue;
            };
            let Ok(cert) = Certificate::from_der(&der) else {
                continue;
            };
            let tbs = cert.tbs_certificate();
            if tbs.issuer() == tbs.subject()
                && let Ok(subject) = tbs.subject().to_der()
            {
                out.push((subject, window));
            }
        }
    }
    Ok(out)
}

fn log_keys(bytes: &[u8]) -> Result<BTreeMap<String, LogKey>, Rejection> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Rejection::TrustRoot(format!("does not parse: {e}")))?;
    let mut out = BTreeMap::new();
    for tlog in v["tlogs"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        // Every log listed must be usable: a log we cannot check would only fail every
        // keyless pull later, with the trust root already accepted.
        let id = tlog["logId"]["keyId"]
            .as_str()
            .ok_or_else(|| Rejection::TrustRoot("a tlog entry has no logId.keyId".into()))?;
        let raw = tlog["publicKey"]["rawBytes"]
            .as_str()
            .ok_or_else(|| Rejection::TrustRoot("a tlog entry has no publicKey.rawBytes".into()))?;
        let id = BASE64
            .decode(id)
            .map_err(|_| Rejection::TrustRoot("a tlog keyId is not base64".into()))?;
        let spki = BASE64
            .decode(raw)
            .map_err(|_| Rejection::TrustRoot("a tlog public key is not base64".into()))?;
        crate::verify::keys::canonical_spki(&spki).map_err(|e| {
            Rejection::TrustRoot(format!("a tlog public key is not a usable public key: {e}"))
        })?;
        let window = Window::read(&tlog["publicKey"]["validFor"], "tlog")?;
        out.insert(hex::encode(id), LogKey { spki, window });
    }
    Ok(out)
}
