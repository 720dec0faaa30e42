//! Keyless (Fulcio certificate + Rekor) checks against an offline sigstore trust root.
//!
//! The sigstore crate parses the operator's `trusted_root.json`
//! (`SigstoreTrustRoot::from_trusted_root_json_unchecked`, no TUF, no network). The rest
//! goes around the crate: its certificate pool is crate-private and tied to its own
//! registry client, and its legacy keyless path skips the layer-signature and the
//! Rekor-body checks. Here, for every keyless signature:
//! 1. the transparency entry's SET verifies with a trusted Rekor key — this signs the
//!    integrated time; an inclusion proof, when present, must reach a checkpoint
//!    signed by the same log (RFC 6962 audit path + signed note). Rekor v2 entries have
//!    no SET: their signing time comes from RFC 3161 timestamps (`timestamp`) instead,
//!    and every proof present (SET, timestamps) must verify;
//! 2. the certificate chains to a trusted CA (rustls-webpki, code-signing EKU) with its
//!    validity checked *at every signed time* (integrated time, each genTime);
//! 3. the signature verifies with the certificate's key over the signed bytes;
//! 4. the Rekor entry body names this signature, this payload hash and this
//!    certificate (`hashedrekord` 0.0.1/0.0.2, or `dsse` 0.0.1/0.0.2 and `intoto`
//!    0.0.2 for DSSE envelopes);
//! 5. the identity (issuer exact, subject exact/regex, Fulcio extensions) matches.

use crate::verify::Rejection;
use std::collections::BTreeMap;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

mod rekor;
mod trust_root;

use crate::config::KeylessIdentity;

/// Code signing EKU, 1.3.6.1.5.5.7.3.3, DER content bytes.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
const FULCIO_OID_PREFIX: &str = "1.3.6.1.4.1.57264.1.";

pub use rekor::{BodyKey, verify_tlog};
pub use trust_root::{LogKey, TrustMaterial, Window};

/// What a verified Fulcio certificate says about its holder.
#[derive(Debug, Clone)]
pub struct CertIdentity {
    pub issuer: Option<String>,
    /// SAN email or URI.
    pub subject: Option<String>,
    /// Fulcio extensions by dotted OID.
    pub extensions: BTreeMap<String, String>,
}

/// Where a signed time comes from, for the reasons that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedTime {
    /// The Rekor integrated time, signed by the SET.
    Integrated(i64),
    /// An RFC 3161 timestamp's verified genTime.
    Timestamp(i64),
}

impl SignedTime {
    fn secs(self) -> i64 {
        match self {
            SignedTime::Integrated(t) | SignedTime::Timestamp(t) => t,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SignedTime::Integrated(_) => "the Rekor integrated time",
            SignedTime::Timestamp(_) => "the RFC 3161 timestamp's genTime",
        }
    }
}

/// Chains the leaf to a trusted CA at each signed time (all must hold) and reads its
/// identity.
pub fn verify_certificate(
    trust: &TrustMaterial,
    chain: &[Vec<u8>],
    times: &[SignedTime],
) -> Result<CertIdentity, Rejection> {
    if times.is_empty() {
        return Err(Rejection::Certificate(
            "missing transparency proof (no signed time for the certificate)".into(),
        ));
    }
    for t in times {
        verify_certificate_at(trust, chain, *t)?;
    }
    read_identity(
        chain
            .first()
            .ok_or_else(|| Rejection::Certificate("no certificate".into()))?,
    )
}

fn verify_certificate_at(
    trust: &TrustMaterial,
    chain: &[Vec<u8>],
    when: SignedTime,
) -> Result<(), Rejection> {
    let at = when.secs();
    let leaf_der = chain
        .first()
        .ok_or_else(|| Rejection::Certificate("no certificate".into()))?;
    let leaf = CertificateDer::from(leaf_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|e| Rejection::Certificate(format!("certificate does not parse: {e}")))?;
    let mut intermediates: Vec<CertificateDer<'_>> = chain
        .iter()
        .skip(1)
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    intermediates.extend(trust.intermediates.iter().cloned());
    let secs =
        u64::try_from(at).map_err(|_| Rejection::Certificate("signed time is negative".into()))?;
    let time = UnixTime::since_unix_epoch(Duration::from_secs(secs));
    let path = ee
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &trust.anchors,
            &intermediates,
            time,
            webpki::KeyUsage::required(EKU_CODE_SIGNING),
            None,
            None,
        )
        .map_err(|e| {
            Rejection::Certificate(match e {
                webpki::Error::CertExpired { .. } => {
                    format!("certificate had expired at {}", when.name())
                }
                webpki::Error::CertNotValidYet { .. } => {
                    format!("certificate was not yet valid at {}", when.name())
                }
                webpki::Error::UnknownIssuer => {
                    "certificate is not issued by a trusted CA".to_string()
                }
                other => format!("certificate chain does not verify: {other:?}"),
            })
        })?;
    // The CA must have been issuing then too: a CA the trust root retired (its
    // `validFor` ended) vouches for nothing signed afterwards.
    let root: &[u8] = path.anchor().subject.as_ref();
    let windows: Vec<&Window> = trust
        .ca_windows
        .iter()
        .filter(|(subject, _)| strip_sequence(subject) == Some(root) || subject.as_slice() == root)
        .map(|(_, w)| w)
        .collect();
    if !windows.is_empty() && !windows.iter().any(|w| w.contains(at)) {
        return Err(Rejection::Certificate(format!(
            "the certificate authority was not valid at {} (outside its validFor window in the trust root)",
            when.name()
        )));
    }
    Ok(())
}

/// The content of a DER SEQUENCE: webpki keeps a trust anchor's subject without its
/// outer SEQUENCE header, x509-cert encodes the whole Name.
fn strip_sequence(der: &[u8]) -> Option<&[u8]> {
    if der.first() != Some(&0x30) {
        return None;
    }
    let (len, hdr) = match *der.get(1)? {
        l if l < 0x80 => (l as usize, 2),
        0x81 => (*der.get(2)? as usize, 3),
        0x82 => (u16::from_be_bytes([*der.get(2)?, *der.get(3)?]) as usize, 4),
        _ => return None,
    };
    der.get(hdr..hdr + len)
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn certificate_spki(der: &[u8]) -> Result<Vec<u8>, Rejection> {
    let c = Certificate::from_der(der)
        .map_err(|_| Rejection::Certificate("certificate does not parse".into()))?;
    c.tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| Rejection::Certificate("certificate key does not encode".into()))
}

fn read_identity(der: &[u8]) -> Result<CertIdentity, Rejection> {
    let c = Certificate::from_der(der)
        .map_err(|_| Rejection::Certificate("certificate does not parse".into()))?;
    let mut subject = None;
    let mut extensions = BTreeMap::new();
    for ext in c.tbs_certificate().extensions().into_iter().flatten() {
        let oid = ext.extn_id.to_string();
        let value = ext.extn_value.as_bytes();
        if oid == "2.5.29.17" {
            let san = SubjectAltName::from_der(value)
                .map_err(|_| Rejection::Certificate("SAN does not parse".into()))?;
            for name in san.0 {
                match name {
                    GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                        subject.get_or_insert(s.to_string());
                    }
                    _ => {}
                }
            }
        } else if let Some(n) = oid.strip_prefix(FULCIO_OID_PREFIX) {
            // 1.1–1.6 hold raw strings; 1.8 and later hold DER UTF8Strings.
            let v2 = n.parse::<u32>().is_ok_and(|n| n >= 8);
            let text = if v2 {
                x509_cert::der::asn1::Utf8StringRef::from_der(value)
                    .map(|s| s.as_str().to_string())
                    .map_err(|_| {
                        Rejection::Certificate(format!(
                            "Fulcio extension {oid} is not a UTF8String"
                        ))
                    })?
            } else {
                String::from_utf8_lossy(value).into_owned()
            };
            extensions.insert(oid, text);
        }
    }
    let issuer = extensions
        .get("1.3.6.1.4.1.57264.1.8")
        .or_else(|| extensions.get("1.3.6.1.4.1.57264.1.1"))
        .cloned();
    Ok(CertIdentity {
        issuer,
        subject,
        extensions,
    })
}

/// Fulcio extension names as cosign's `--certificate-*` flags spell them.
pub fn extension_oid(name: &str) -> Option<String> {
    let n = match name {
        "issuer" => 8,
        "github_workflow_trigger" => 2,
        "github_workflow_sha" => 3,
        "github_workflow_name" => 4,
        "github_workflow_repository" => 5,
        "github_workflow_ref" => 6,
        "build_signer_uri" => 9,
        "build_signer_digest" => 10,
        "runner_environment" => 11,
        "source_repository_uri" => 12,
        "source_repository_digest" => 13,
        "source_repository_ref" => 14,
        "source_repository_identifier" => 15,
        "source_repository_owner_uri" => 16,
        "source_repository_owner_identifier" => 17,
        "build_config_uri" => 18,
        "build_config_digest" => 19,
        "build_trigger" => 20,
        "run_invocation_uri" => 21,
        "source_repository_visibility_at_signing" => 22,
        dotted if dotted.split('.').all(|p| p.parse::<u64>().is_ok()) => {
            return Some(dotted.to_string());
        }
        _ => return None,
    };
    Some(format!("{FULCIO_OID_PREFIX}{n}"))
}

/// The report name of a keyless identity (used for threshold counting).
pub fn identity_name(id: &KeylessIdentity) -> String {
    let subject = match (&id.subject, &id.subject_regex) {
        (Some(s), _) => format!("subject={s}"),
        (None, Some(r)) => format!("subject~{}", r.as_str()),
        (None, None) => String::new(),
    };
    format!("keyless issuer={} {subject}", id.issuer)
}

/// Why a certificate does not match an identity, or Ok.
pub fn match_identity(id: &KeylessIdentity, cert: &CertIdentity) -> Result<(), Rejection> {
    let issuer = cert.issuer.as_deref().unwrap_or("");
    if issuer != id.issuer {
        return Err(Rejection::Certificate(format!(
            "identity mismatch: certificate issuer {:?} is not {:?}",
            issuer.chars().take(200).collect::<String>(),
            id.issuer
        )));
    }
    let subject = cert.subject.as_deref().unwrap_or("");
    if let Some(s) = &id.subject
        && subject != s
    {
        return Err(Rejection::Certificate(format!(
            "identity mismatch: certificate subject {:?} is not {s:?}",
            subject.chars().take(200).collect::<String>()
        )));
    }
    if let Some(r) = &id.subject_regex
        && !r.is_match(subject)
    {
        return Err(Rejection::Certificate(format!(
            "identity mismatch: certificate subject {:?} does not match /{}/",
            subject.chars().take(200).collect::<String>(),
            r.as_str()
        )));
    }
    for (name, want) in &id.extensions {
        let Some(oid) = extension_oid(name) else {
            return Err(Rejection::Certificate(format!(
                "unknown Fulcio extension name {name:?}"
            )));
        };
        match cert.extensions.get(&oid) {
            Some(v) if v == want => {}
            Some(v) => {
                return Err(Rejection::Certificate(format!(
                    "identity mismatch: certificate extension {name} is {:?}, not {want:?}",
                    v.chars().take(200).collect::<String>()
                )));
            }
            None => {
                return Err(Rejection::Certificate(format!(
                    "identity mismatch: certificate has no extension {name}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_names() {
        assert_eq!(
            extension_oid("github_workflow_repository").as_deref(),
            Some("1.3.6.1.4.1.57264.1.5")
        );
        assert_eq!(extension_oid("1.2.3").as_deref(), Some("1.2.3"));
        assert_eq!(extension_oid("nope"), None);
    }

    #[test]
    fn trust_root_junk_is_an_error() {
        assert!(TrustMaterial::from_json(b"{").is_err());
        assert!(TrustMaterial::from_json(b"{}").is_err());
    }
}
