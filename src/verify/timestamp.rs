//! RFC 3161 signed timestamps: the signing time of a keyless signature when the log
//! (Rekor v2) gives no signed entry timestamp. A bundle carries each timestamp as a
//! DER TimeStampToken (CMS SignedData over a TSTInfo) whose message imprint is the
//! hash of the signature bytes. The sigstore crate does not read them.
//!
//! CMS structures are parsed with the `cms` crate; the TSTInfo is read by hand below
//! (four fields and a time) because the RustCrypto `x509-tsp` crate is built on an
//! older `der` than `x509-cert` here, and `der`'s GeneralizedTime rejects the
//! fractional seconds that RFC 3161 allows in genTime. Signatures and the TSA chain
//! go through rustls-webpki, as for Fulcio certificates.

use crate::verify::Rejection;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use serde::Deserialize;
use sha2::Digest as _;
use x509_cert::Certificate;
use x509_cert::der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::der::oid::db::{rfc5911, rfc5912};
use x509_cert::der::{Decode, Encode, Reader, SliceReader, Tag};
use x509_cert::spki::AlgorithmIdentifierOwned;

/// id-kp-timeStamping, 1.3.6.1.5.5.7.3.8, DER content bytes.
const EKU_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];
/// id-ct-TSTInfo, 1.2.840.113549.1.9.16.1.4.
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// A TimeStampToken is a few kilobytes; anything far larger is not one.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// One `timestampAuthorities[]` entry of trusted_root.json.
#[derive(Debug, Clone)]
pub struct Authority {
    anchors: Vec<TrustAnchor<'static>>,
    /// Every certificate of the chain: intermediates for path building, and the TSA
    /// certificate itself when the token does not embed it.
    chain: Vec<CertificateDer<'static>>,
    valid_from: Option<i64>,
    valid_until: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RootJson {
    #[serde(default)]
    timestamp_authorities: Vec<AuthorityJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorityJson {
    cert_chain: Option<ChainJson>,
    valid_for: Option<ValidFor>,
}

#[derive(Deserialize)]
struct ChainJson {
    #[serde(default)]
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct ValidFor {
    start: Option<String>,
    end: Option<String>,
}

fn rfc3339(s: &str) -> Result<i64, Rejection> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| {
            Rejection::Timestamp(format!(
                "timestamp authority validFor {s:?} is not an RFC 3339 time"
            ))
        })
}

/// Reads the timestamp authorities of a trusted_root.json (the sigstore crate parses
/// the file but does not expose them). The chain is leaf first, root last; the last
/// certificate is the anchor.
pub fn authorities_from_json(bytes: &[u8]) -> Result<Vec<Authority>, Rejection> {
    let root: RootJson = serde_json::from_slice(bytes)
        .map_err(|e| Rejection::Timestamp(format!("does not parse: {e}")))?;
    let mut out = Vec::new();
    for a in root.timestamp_authorities {
        let chain = a
            .cert_chain
            .map(|c| c.certificates)
            .unwrap_or_default()
            .iter()
            .map(|c| {
                BASE64
                    .decode(&c.raw_bytes)
                    .map(CertificateDer::from)
                    .map_err(|_| {
                        Rejection::Timestamp(
                            "a timestamp authority certificate is not base64".into(),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(root_cert) = chain.last() else {
            return Err(Rejection::Timestamp(
                "a timestamp authority has no certificates".into(),
            ));
        };
        let anchor = webpki::anchor_from_trusted_cert(root_cert)
            .map_err(|e| {
                Rejection::Timestamp(format!("a timestamp authority root is not usable: {e}"))
            })?
            .to_owned();
        let (valid_from, valid_until) = match a.valid_for {
            None => (None, None),
            Some(v) => (
                v.start.as_deref().map(rfc3339).transpose()?,
                v.end.as_deref().map(rfc3339).transpose()?,
            ),
        };
        out.push(Authority {
            anchors: vec![anchor],
            chain,
            valid_from,
            valid_until,
        });
    }
    Ok(out)
}

/// The parts of a TSTInfo that verification reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TstInfo {
    pub hash_algorithm: ObjectIdentifier,
    pub hashed_message: Vec<u8>,
    /// genTime, Unix seconds (fractions dropped).
    pub gen_time: i64,
}

/// Verifies a DER TimeStampToken over `signature` against the trust root's timestamp
/// authorities; returns the verified genTime (Unix seconds). Errors are stable reasons.
pub fn verify(token: &[u8], signature: &[u8], authorities: &[Authority]) -> Result<i64, Rejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::Timestamp(
            "RFC 3161 timestamp is too large".into(),
        ));
    }
    let ci = ContentInfo::from_der(token)
        .map_err(|_| Rejection::Timestamp("RFC 3161 timestamp does not parse as CMS".into()))?;
    if ci.content_type != rfc5911::ID_SIGNED_DATA {
        return Err(Rejection::Timestamp(
            "RFC 3161 timestamp is not CMS SignedData".into(),
        ));
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|_| Rejection::Timestamp("RFC 3161 timestamp does not parse as CMS".into()))?;
    if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(Rejection::Timestamp(
            "RFC 3161 timestamp does not carry a TSTInfo".into(),
        ));
    }
    let tst_der = sd
        .encap_content_info
        .econtent
        .as_ref()
        .and_then(|a| a.decode_as::<OctetString>().ok())
        .ok_or_else(|| {
            Rejection::Timestamp("RFC 3161 timestamp does not carry a TSTInfo".into())
        })?;
    let tst_der = tst_der.as_bytes();
    let tst = parse_tst_info(tst_der)?;
    let want = hash(&tst.hash_algorithm, signature).ok_or_else(|| {
        Rejection::Timestamp("RFC 3161 timestamp uses an unsupported hash algorithm".into())
    })?;
    if want != tst.hashed_message {
        return Err(Rejection::Timestamp(
            "RFC 3161 timestamp is for another signature".into(),
        ));
    }
    let [si] = sd.signer_infos.0.as_slice() else {
        return Err(Rejection::Timestamp(
            "RFC 3161 timestamp must have exactly one signer".into(),
        ));
    };
    let signed_attrs = check_signed_attributes(si, tst_der)?;

    let embedded: Vec<CertificateDer<'static>> = sd
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|c| match c {
            CertificateChoices::Certificate(c) => c.to_der().ok().map(CertificateDer::from),
            _ => None,
        })
        .take(16)
        .collect();
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(tst.gen_time).map_err(|_| {
            Rejection::Timestamp("RFC 3161 timestamp genTime is before 1970".into())
        })?,
    ));
    // The most specific failure across authorities is reported: a bad signature, an
    // expired or EKU-less certificate or a validFor miss beats "not in the trust root".
    let mut best: Option<String> = None;
    let mut signer_found = false;
    for auth in authorities {
        let Some(signer) = embedded
            .iter()
            .chain(auth.chain.iter())
            .find(|c| signer_matches(&si.sid, c))
        else {
            continue;
        };
        signer_found = true;
        let ee = match webpki::EndEntityCert::try_from(signer) {
            Ok(ee) => ee,
            Err(_) => {
                best.get_or_insert("RFC 3161 timestamp signer certificate does not parse".into());
                continue;
            }
        };
        if !verify_signer_signature(&ee, si, &signed_attrs) {
            best = Some("RFC 3161 timestamp signature does not verify".into());
            continue;
        }
        let mut intermediates = embedded.clone();
        intermediates.extend(auth.chain.iter().cloned());
        let chained = ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &auth.anchors,
            &intermediates,
            at,
            webpki::KeyUsage::required(EKU_TIME_STAMPING),
            None,
            None,
        );
        match chained {
            Ok(_) => {}
            // A CA of the same name that did not sign this certificate is a stranger too.
            Err(webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey) => {
                best.get_or_insert("RFC 3161 timestamp authority is not in the trust root".into());
                continue;
            }
            Err(e) => {
                best = Some(chain_reason(e));
                continue;
            }
        }
        let before = auth.valid_from.is_some_and(|s| tst.gen_time < s);
        let after = auth.valid_until.is_some_and(|e| tst.gen_time >= e);
        if before || after {
            best = Some(
                "RFC 3161 timestamp genTime is outside its authority's validFor window".into(),
            );
            continue;
        }
        return Ok(tst.gen_time);
    }
    Err(if authorities.is_empty() {
        Rejection::Timestamp(
            "RFC 3161 timestamp authority is not in the trust root (it lists none)".into(),
        )
    } else if !signer_found {
        Rejection::Timestamp(
            "RFC 3161 timestamp names a signer certificate it does not carry".into(),
        )
    } else {
        Rejection::Timestamp(
            best.unwrap_or_else(|| "RFC 3161 timestamp authority is not in the trust root".into()),
        )
    })
}

fn chain_reason(e: webpki::Error) -> String {
    match e {
        webpki::Error::CertExpired { .. } => {
            "RFC 3161 timestamp authority certificate had expired at genTime".into()
        }
        webpki::Error::CertNotValidYet { .. } => {
            "RFC 3161 timestamp authority certificate was not yet valid at genTime".into()
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "RFC 3161 timestamp authority certificate lacks the timeStamping EKU".into()
        }
        other => format!("RFC 3161 timestamp authority chain does not verify: {other:?}"),
    }
}

/// SHA-2 digests by OID; `None` for anything else.
fn hash(alg: &ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    if *alg == rfc5912::ID_SHA_256 {
        Some(sha2::Sha256::digest(data).to_vec())
    } else if *alg == rfc5912::ID_SHA_384 {
        Some(sha2::Sha384::digest(data).to_vec())
    } else if *alg == rfc5912::ID_SHA_512 {
        Some(sha2::Sha512::digest(data).to_vec())
    } else {
        None
    }
}

/// RFC 5652 §5.4: with signed attributes, the signature covers their DER (as a SET
/// OF), which must name the TSTInfo content type and carry its digest. Returns that DER.
fn check_signed_attributes(si: &SignerInfo, tst_der: &[u8]) -> Result<Vec<u8>, Rejection> {
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| {
        Rejection::Timestamp("RFC 3161 timestamp has no signed attributes".into())
    })?;
    let single = |oid: ObjectIdentifier| {
        attrs
            .iter()
            .find(|a| a.oid == oid)
            .and_then(|a| match a.values.as_slice() {
                [v] => Some(v.clone()),
                _ => None,
            })
    };
    let content_type =
        single(rfc5911::ID_CONTENT_TYPE).and_then(|v| v.decode_as::<ObjectIdentifier>().ok());
    if content_type != Some(ID_CT_TST_INFO) {
        return Err(Rejection::Timestamp(
            "RFC 3161 timestamp signed attributes do not name a TSTInfo".into(),
        ));
    }
    let digest = single(rfc5911::ID_MESSAGE_DIGEST)
        .and_then(|v| v.decode_as::<OctetString>().ok())
        .ok_or_else(|| {
            Rejection::Timestamp(
                "RFC 3161 timestamp signed attributes have no message digest".into(),
            )
        })?;
    let want = hash(&si.digest_alg.oid, tst_der).ok_or_else(|| {
        Rejection::Timestamp("RFC 3161 timestamp uses an unsupported hash algorithm".into())
    })?;
    if digest.as_bytes() != want.as_slice() {
        return Err(Rejection::Timestamp(
            "RFC 3161 timestamp TSTInfo does not match its signed digest".into(),
        ));
    }
    attrs.to_der().map_err(|_| {
        Rejection::Timestamp("RFC 3161 timestamp signed attributes do not encode".into())
    })
}

fn signer_matches(sid: &SignerIdentifier, cert: &CertificateDer<'_>) -> bool {
    let Ok(c) = Certificate::from_der(cert.as_ref()) else {
        return false;
    };
    let tbs = c.tbs_certificate();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            isn.issuer == *tbs.issuer() && isn.serial_number == *tbs.serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => tbs
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id.to_string() == "2.5.29.14")
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|v| v.as_bytes() == ski.0.as_bytes()),
    }
}

/// ECDSA (P-256/P-384, any SHA-2) and RSA PKCS#1 v1.5; the algorithm comes from the
/// signer info, the key from the certificate (webpki refuses a mismatch).
fn verify_signer_signature(ee: &webpki::EndEntityCert<'_>, si: &SignerInfo, msg: &[u8]) -> bool {
    use webpki::aws_lc_rs as a;
    let digest = signature_digest(&si.signature_algorithm, &si.digest_alg.oid);
    let candidates: &[&dyn SignatureVerificationAlgorithm] = match digest {
        Some(Sig::Ecdsa(256)) => &[a::ECDSA_P256_SHA256, a::ECDSA_P384_SHA256],
        Some(Sig::Ecdsa(384)) => &[a::ECDSA_P256_SHA384, a::ECDSA_P384_SHA384],
        Some(Sig::Ecdsa(512)) => &[a::ECDSA_P256_SHA512, a::ECDSA_P384_SHA512],
        Some(Sig::Rsa(256)) => &[a::RSA_PKCS1_2048_8192_SHA256],
        Some(Sig::Rsa(384)) => &[a::RSA_PKCS1_2048_8192_SHA384],
        Some(Sig::Rsa(512)) => &[a::RSA_PKCS1_2048_8192_SHA512],
        _ => &[],
    };
    let sig = si.signature.as_bytes();
    candidates
        .iter()
        .any(|alg| ee.verify_signature(*alg, msg, sig).is_ok())
}

enum Sig {
    Ecdsa(u16),
    Rsa(u16),
}

fn signature_digest(alg: &AlgorithmIdentifierOwned, digest: &ObjectIdentifier) -> Option<Sig> {
    let bits = |d: &ObjectIdentifier| {
        if *d == rfc5912::ID_SHA_256 {
            Some(256)
        } else if *d == rfc5912::ID_SHA_384 {
            Some(384)
        } else if *d == rfc5912::ID_SHA_512 {
            Some(512)
        } else {
            None
        }
    };
    let o = &alg.oid;
    Some(if *o == rfc5912::ECDSA_WITH_SHA_256 {
        Sig::Ecdsa(256)
    } else if *o == rfc5912::ECDSA_WITH_SHA_384 {
        Sig::Ecdsa(384)
    } else if *o == rfc5912::ECDSA_WITH_SHA_512 {
        Sig::Ecdsa(512)
    } else if *o == rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
        Sig::Rsa(256)
    } else if *o == rfc5912::SHA_384_WITH_RSA_ENCRYPTION {
        Sig::Rsa(384)
    } else if *o == rfc5912::SHA_512_WITH_RSA_ENCRYPTION {
        Sig::Rsa(512)
    } else if *o == rfc5912::RSA_ENCRYPTION {
        // Many TSAs name the key algorithm here and the digest in digestAlgorithm.
        Sig::Rsa(bits(digest)?)
    } else if *o == rfc5912::ID_EC_PUBLIC_KEY {
        Sig::Ecdsa(bits(digest)?)
    } else {
        return None;
    })
}

/// TSTInfo ::= SEQUENCE { version, policy, messageImprint, serialNumber, genTime, … }.
/// The optional tail (accuracy, ordering, nonce, tsa, extensions) is skipped as TLVs.
pub fn parse_tst_info(der: &[u8]) -> Result<TstInfo, Rejection> {
    let bad = |_| Rejection::Timestamp("RFC 3161 timestamp TSTInfo does not parse".into());
    let mut r = SliceReader::new(der).map_err(bad)?;
    let (hash_algorithm, hashed_message, gen_time) = r
        .sequence(|r| {
            let version: u8 = r.decode()?;
            let _policy: ObjectIdentifier = r.decode()?;
            let (alg, digest) = r.sequence(|r| {
                let alg: AlgorithmIdentifierOwned = r.decode()?;
                let digest: OctetString = r.decode()?;
                Ok::<_, x509_cert::der::Error>((alg, digest))
            })?;
            let _serial: x509_cert::der::asn1::Int = r.decode()?;
            let header = x509_cert::der::Header::peek(r)?;
            if header.tag() != Tag::GeneralizedTime {
                return Err(Tag::GeneralizedTime.value_error().into());
            }
            let gen_time = r.tlv_bytes()?;
            while !r.is_finished() {
                r.tlv_bytes()?;
            }
            Ok::<_, x509_cert::der::Error>((version, alg, digest, gen_time.to_vec()))
        })
        .map_err(bad)
        .and_then(|(version, alg, digest, gen_time)| {
            if version != 1 {
                return Err(Rejection::Timestamp(
                    "RFC 3161 timestamp TSTInfo has an unknown version".into(),
                ));
            }
            Ok((alg.oid, digest.as_bytes().to_vec(), gen_time))
        })?;
    r.finish().map_err(bad)?;
    // Skip the tag and (short) length: a GeneralizedTime is well under 128 bytes.
    let value = match gen_time.as_slice() {
        [_, len, rest @ ..] if usize::from(*len) == rest.len() => rest,
        _ => {
            return Err(Rejection::Timestamp(
                "RFC 3161 timestamp genTime does not parse".into(),
            ));
        }
    };
    Ok(TstInfo {
        hash_algorithm,
        hashed_message,
        gen_time: generalized_time(value)?,
    })
}

/// `YYYYMMDDHHMMSS[.f…]Z`, the DER form RFC 3161 §2.4.2 prescribes (UTC, fractions
/// without trailing zeros). Fractions are dropped: validity is judged to the second.
fn generalized_time(v: &[u8]) -> Result<i64, Rejection> {
    let bad = || Rejection::Timestamp("RFC 3161 timestamp genTime does not parse".into());
    let s = std::str::from_utf8(v).map_err(|_| bad())?;
    let s = s.strip_suffix('Z').ok_or_else(bad)?;
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if let Some(f) = frac
        && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) || f.ends_with('0'))
    {
        return Err(bad());
    }
    let n = |a: usize, b: usize| whole[a..b].parse::<u32>().map_err(|_| bad());
    let year = i32::try_from(n(0, 4)?).map_err(|_| bad())?;
    let month = u8::try_from(n(4, 6)?)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let small = |a, b| n(a, b).and_then(|v| u8::try_from(v).map_err(|_| bad()));
    let date = time::Date::from_calendar_date(year, month, small(6, 8)?).map_err(|_| bad())?;
    let t =
        time::Time::from_hms(small(8, 10)?, small(10, 12)?, small(12, 14)?).map_err(|_| bad())?;
    Ok(time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tst(gen_time: &str, tail: &[u8]) -> Vec<u8> {
        // version 1, policy 1.2.3, imprint sha256 of 32 zero bytes, serial 7, genTime.
        let mut body = vec![0x02, 0x01, 0x01, 0x06, 0x02, 0x2a, 0x03];
        let mut imprint = vec![
            0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
            0x00, 0x04, 0x20,
        ];
        imprint.extend([0u8; 32]);
        body.extend([0x30, imprint.len() as u8]);
        body.extend(imprint);
        body.extend([0x02, 0x01, 0x07, 0x18, gen_time.len() as u8]);
        body.extend(gen_time.as_bytes());
        body.extend(tail);
        assert!(body.len() < 128);
        let mut out = vec![0x30, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn tst_info_parses_with_and_without_fractions_and_tail() {
        let t = parse_tst_info(&tst("20261127001500Z", &[])).unwrap();
        assert_eq!(t.gen_time, 1_795_738_500);
        assert_eq!(t.hash_algorithm, rfc5912::ID_SHA_256);
        assert_eq!(t.hashed_message, vec![0; 32]);
        // Fractions and an optional tail (ordering FALSE, nonce) are accepted.
        let t = parse_tst_info(&tst(
            "20261127001500.25Z",
            &[0x01, 0x01, 0x00, 0x02, 0x01, 0x05],
        ))
        .unwrap();
        assert_eq!(t.gen_time, 1_795_738_500);
    }

    #[test]
    fn hostile_tst_info_is_a_reason() {
        let good = tst("20261127001500Z", &[]);
        for n in 0..good.len() {
            assert!(parse_tst_info(&good[..n]).is_err(), "truncated at {n}");
        }
        for gen_time in [
            "20261127001500",
            "2026112700150Z",
            "20261327001500Z",
            "20261127001500.Z",
            "20261127001500.50Z",
            "2026112700150xZ",
            "20261127251500Z",
        ] {
            assert!(parse_tst_info(&tst(gen_time, &[])).is_err(), "{gen_time}");
        }
        let mut v2 = good.clone();
        v2[4] = 2;
        assert_eq!(
            parse_tst_info(&v2).unwrap_err().to_string(),
            "RFC 3161 timestamp TSTInfo has an unknown version"
        );
        // Trailing junk after the sequence.
        let mut junk = good.clone();
        junk.push(0);
        assert!(parse_tst_info(&junk).is_err());
    }

    #[test]
    fn hostile_tokens_are_reasons_not_panics() {
        let sig = b"signature";
        assert_eq!(
            verify(b"", sig, &[]).unwrap_err().to_string(),
            "RFC 3161 timestamp does not parse as CMS"
        );
        assert_eq!(
            verify(&[0x30, 0x82, 0xff], sig, &[])
                .unwrap_err()
                .to_string(),
            "RFC 3161 timestamp does not parse as CMS"
        );
        // A ContentInfo of type id-data.
        let data = [
            0x30, 0x0f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0,
            0x02, 0x04, 0x00,
        ];
        assert_eq!(
            verify(&data, sig, &[]).unwrap_err().to_string(),
            "RFC 3161 timestamp is not CMS SignedData"
        );
        assert_eq!(
            verify(&vec![0x30; MAX_TOKEN_BYTES + 1], sig, &[])
                .unwrap_err()
                .to_string(),
            "RFC 3161 timestamp is too large"
        );
        // Random bytes never panic.
        let mut x: u32 = 1;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            assert!(verify(&bytes, sig, &[]).is_err());
        }
    }

    #[test]
    fn authorities_junk_is_an_error() {
        assert!(authorities_from_json(b"{").is_err());
        assert!(authorities_from_json(b"{}").unwrap().is_empty());
        assert!(
            authorities_from_json(
                br#"{"timestampAuthorities":[{"certChain":{"certificates":[]}}]}"#
            )
            .is_err()
        );
        assert!(
            authorities_from_json(
                br#"{"timestampAuthorities":[{"certChain":{"certificates":[{"rawBytes":"!!"}]}}]}"#
            )
            .is_err()
        );
    }
}
