//! What a signature signs: the cosign simple-signing payload (or an in-toto statement
//! in a DSSE envelope), and the binding of that payload to the digest and repository
//! being verified.

use crate::verify::Rejection;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const COSIGN_SIGNATURE_TYPE: &str = "cosign container image signature";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The cosign simple-signing payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    #[serde(default)]
    pub optional: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    pub fn new(docker_reference: &str, digest: &Digest) -> SimpleSigning {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_string(),
                },
                image: Image {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: COSIGN_SIGNATURE_TYPE.to_string(),
            },
            optional: None,
        }
    }
}

/// What the signed payload claims: the digest and, for simple signing, the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub digests: Vec<Digest>,
    pub docker_reference: Option<String>,
}

/// How the signed bytes are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    SimpleSigning,
    InToto,
}

/// Parses the claim out of a payload. Errors are stable report reasons.
pub fn parse_claim(kind: PayloadKind, payload: &[u8]) -> Result<Claim, Rejection> {
    match kind {
        PayloadKind::SimpleSigning => {
            let p: SimpleSigning = serde_json::from_slice(payload).map_err(|_| {
                Rejection::Payload("signed payload is not a cosign simple-signing document".into())
            })?;
            if p.critical.kind != COSIGN_SIGNATURE_TYPE {
                return Err(Rejection::Payload(format!(
                    "signed payload has type {:?}, not {COSIGN_SIGNATURE_TYPE:?}",
                    truncate(&p.critical.kind)
                )));
            }
            let d = p
                .critical
                .image
                .docker_manifest_digest
                .parse::<Digest>()
                .map_err(|_| {
                    Rejection::Payload(
                        "signed payload has an invalid docker-manifest-digest".into(),
                    )
                })?;
            Ok(Claim {
                digests: vec![d],
                docker_reference: Some(p.critical.identity.docker_reference),
            })
        }
        PayloadKind::InToto => {
            #[derive(Deserialize)]
            struct Statement {
                #[serde(rename = "_type")]
                kind: String,
                subject: Vec<Subject>,
            }
            #[derive(Deserialize)]
            struct Subject {
                #[serde(default)]
                digest: std::collections::BTreeMap<String, String>,
            }
            let s: Statement = serde_json::from_slice(payload).map_err(|_| {
                Rejection::Payload("signed payload is not an in-toto statement".into())
            })?;
            if !s.kind.starts_with("https://in-toto.io/Statement/") {
                return Err(Rejection::Payload(
                    "signed payload is not an in-toto statement".into(),
                ));
            }
            let digests = s
                .subject
                .iter()
                .filter_map(|sub| sub.digest.get("sha256"))
                .filter_map(|h| format!("sha256:{h}").parse().ok())
                .collect();
            Ok(Claim {
                digests,
                docker_reference: None,
            })
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// DSSE pre-authentication encoding: what a DSSE signature covers.
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_signing_round_trip_and_hostile() {
        let d = Digest::sha256_of(b"x");
        let p = serde_json::to_vec(&SimpleSigning::new("r.io/a", &d)).unwrap();
        let c = parse_claim(PayloadKind::SimpleSigning, &p).unwrap();
        assert_eq!(c.digests, vec![d]);
        assert_eq!(c.docker_reference.as_deref(), Some("r.io/a"));
        for bad in [
            &b""[..],
            b"null",
            b"{\"critical\":{}}",
            br#"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"sha256:zz"},"type":"cosign container image signature"}}"#,
            br#"{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"sha256:aa"},"type":"other"}}"#,
        ] {
            assert!(parse_claim(PayloadKind::SimpleSigning, bad).is_err());
        }
    }

    #[test]
    fn in_toto_subjects() {
        let hex = "a".repeat(64);
        let s = format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"x","digest":{{"sha256":"{hex}"}}}}],"predicateType":"p"}}"#
        );
        let c = parse_claim(PayloadKind::InToto, s.as_bytes()).unwrap();
        assert_eq!(c.digests[0].hex(), hex);
        assert!(parse_claim(PayloadKind::InToto, b"{\"_type\":\"x\",\"subject\":[]}").is_err());
        assert_eq!(dsse_pae("t", b"ab"), b"DSSEv1 1 t 2 ab");
    }
}
