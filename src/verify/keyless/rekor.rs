//! Transparency-log checks: a Rekor entry's SET, its inclusion proof and signed
//! checkpoint, and that its body records exactly this signature, payload and key.

use crate::verify::Rejection;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::Digest as _;

use crate::verify::evidence::{Evidence, InclusionProof, TlogEntry};
use crate::verify::keys::{pem_block, verify_with_spki};
use crate::verify::payload::PayloadKind;

use super::TrustMaterial;

/// Verifies a transparency entry: its SET and/or inclusion proof + signed checkpoint
/// with a trusted Rekor key (each one present must verify), and that its body records
/// exactly this signature. Returns the integrated time when a SET signs it (Rekor v2
/// entries have none). `need_signed_time`: no other source (RFC 3161) gives the signing
/// time, so a SET is required. Errors are stable reasons.
pub fn verify_tlog(
    trust: &TrustMaterial,
    tlog: Option<&TlogEntry>,
    evidence: &Evidence,
    signer_key_or_cert_pem: &BodyKey<'_>,
    need_signed_time: bool,
    timestamps: &[i64],
) -> Result<Option<i64>, Rejection> {
    let entry =
        tlog.ok_or_else(|| Rejection::Tlog("missing transparency proof (no Rekor entry)".into()))?;
    let log = trust.rekor_keys.get(&entry.log_id).ok_or_else(|| {
        Rejection::Tlog("transparency entry is from a log not in the trust root".into())
    })?;
    let key = &log.spki;
    // The log's key must have been current when it vouched for the entry: at the
    // integrated time its SET signs, and at each verified timestamp.
    let signed_at = entry
        .set
        .as_ref()
        .map(|_| entry.integrated_time)
        .into_iter()
        .chain(timestamps.iter().copied());
    for t in signed_at {
        if !log.window.contains(t) {
            return Err(Rejection::Tlog(format!(
                "the transparency log's key was not valid at {} (outside its validFor window in the trust root)",
                crate::rfc3339::format(
                    time::OffsetDateTime::from_unix_timestamp(t)
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                )
            )));
        }
    }
    let mut proven = false;
    if let Some(set) = &entry.set {
        let canonical = format!(
            r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
            BASE64.encode(&entry.body),
            entry.integrated_time,
            entry.log_id,
            entry.log_index
        );
        if !verify_with_spki(key, set, canonical.as_bytes()) {
            return Err(Rejection::Tlog(
                "Rekor signed entry timestamp does not verify".into(),
            ));
        }
        proven = true;
    }
    if let Some(proof) = &entry.inclusion_proof {
        verify_inclusion(proof, &entry.body, key)?;
        proven = true;
    }
    if !proven {
        return Err(Rejection::Tlog(
            "missing transparency proof (no SET and no inclusion proof)".into(),
        ));
    }
    // Only the SET signs the integrated time; an inclusion proof alone proves the entry
    // exists but not when, and certificate validity is judged at that time.
    if need_signed_time && entry.set.is_none() {
        return Err(Rejection::Tlog(
            "missing transparency proof (no signed entry timestamp and no RFC 3161 timestamp for the signing time)"
                .into(),
        ));
    }
    check_body(&entry.body, evidence, signer_key_or_cert_pem)?;
    Ok(entry.set.is_some().then_some(entry.integrated_time))
}

/// The public key material a Rekor body must name.
pub enum BodyKey<'a> {
    /// Leaf certificate (DER).
    Certificate(&'a [u8]),
    /// A key's DER SPKI.
    Spki(&'a [u8]),
}

/// Checks that the Rekor entry body records this signature, this payload and this key.
/// The crate trusts the SET alone, which would let any logged entry vouch for any
/// layer. Entry kinds: `hashedrekord` (message signatures, cosign's legacy layers)
/// and, for DSSE envelopes, `dsse` 0.0.1 (cosign v3) and `intoto` 0.0.2; Rekor v2 logs
/// `hashedrekord` and `dsse` 0.0.2, protobuf-JSON shaped (base64 bytes, DER keys).
fn check_body(body: &[u8], e: &Evidence, key: &BodyKey<'_>) -> Result<(), Rejection> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| Rejection::Tlog("Rekor entry body does not parse".into()))?;
    let kind = v["kind"].as_str().unwrap_or("");
    let version = v["apiVersion"].as_str().unwrap_or("");
    let dsse = e.payload_kind == PayloadKind::InToto;
    match (kind, version) {
        ("hashedrekord", "0.0.2") => check_hashedrekord_v2(&v["spec"]["hashedRekordV002"], e, key),
        ("hashedrekord", _) => check_hashedrekord(&v["spec"], e, key),
        ("dsse", "0.0.2") if dsse => check_dsse_v2(&v["spec"]["dsseV002"], e, key),
        ("dsse", "0.0.1") if dsse => check_dsse(&v["spec"], e, key),
        ("intoto", "0.0.2") if dsse => check_intoto(&v["spec"], e, key),
        ("dsse" | "intoto", _) if !dsse => Err(Rejection::Tlog(
            "Rekor entry records a DSSE envelope, but this is a message signature".into(),
        )),
        _ => Err(Rejection::Tlog(format!(
            "unsupported Rekor entry kind {:?} version {:?}",
            kind.chars().take(32).collect::<String>(),
            version.chars().take(16).collect::<String>()
        ))),
    }
}

fn check_hashedrekord(
    spec: &serde_json::Value,
    e: &Evidence,
    key: &BodyKey<'_>,
) -> Result<(), Rejection> {
    let sig = spec["signature"]["content"]
        .as_str()
        .and_then(|s| BASE64.decode(s).ok())
        .ok_or_else(|| Rejection::Tlog("Rekor entry body has no signature".into()))?;
    if sig != e.signature {
        return Err(Rejection::Tlog(
            "Rekor entry is for another signature".into(),
        ));
    }
    check_hash(&spec["data"]["hash"], &e.signed)?;
    let pem = spec["signature"]["publicKey"]["content"]
        .as_str()
        .and_then(decode_pem_b64)
        .ok_or_else(|| Rejection::Tlog("Rekor entry body has no public key".into()))?;
    check_key(&pem, key)
}

/// `dsse` 0.0.1: the payload's hash and a list of (signature, verifier) pairs, one of
/// which must be this signature with this key. (The envelope hash is over Rekor's own
/// serialization and is not recomputed: the payload hash plus the signature, which
/// covers the payload type, pin the envelope.)
fn check_dsse(spec: &serde_json::Value, e: &Evidence, key: &BodyKey<'_>) -> Result<(), Rejection> {
    check_hash(&spec["payloadHash"], &e.payload)?;
    let sigs = spec["signatures"]
        .as_array()
        .ok_or_else(|| Rejection::Tlog("Rekor entry body has no signature".into()))?;
    let mut ours = sigs.iter().filter(|s| {
        s["signature"]
            .as_str()
            .and_then(|b| BASE64.decode(b).ok())
            .as_deref()
            == Some(&e.signature[..])
    });
    let Some(sig) = ours.next() else {
        return Err(Rejection::Tlog(
            "Rekor entry is for another signature".into(),
        ));
    };
    let pem = sig["verifier"]
        .as_str()
        .and_then(decode_pem_b64)
        .ok_or_else(|| Rejection::Tlog("Rekor entry body has no public key".into()))?;
    check_key(&pem, key)
}

/// `intoto` 0.0.2: the envelope (payload omitted) with its signatures, each `sig`
/// base64-encoded once more than in the envelope, and the payload's hash.
fn check_intoto(
    spec: &serde_json::Value,
    e: &Evidence,
    key: &BodyKey<'_>,
) -> Result<(), Rejection> {
    let content = &spec["content"];
    check_hash(&content["payloadHash"], &e.payload)?;
    let envelope = &content["envelope"];
    if envelope["payloadType"].as_str() != Some(crate::verify::payload::IN_TOTO_PAYLOAD_TYPE) {
        return Err(Rejection::Tlog("Rekor entry is for another payload".into()));
    }
    let sigs = envelope["signatures"]
        .as_array()
        .ok_or_else(|| Rejection::Tlog("Rekor entry body has no signature".into()))?;
    let decode_sig = |s: &str| -> Option<Vec<u8>> {
        let once = BASE64.decode(s).ok()?;
        if once == e.signature {
            return Some(once);
        }
        BASE64.decode(&once).ok()
    };
    let Some(sig) = sigs
        .iter()
        .find(|s| s["sig"].as_str().and_then(decode_sig).as_deref() == Some(&e.signature[..]))
    else {
        return Err(Rejection::Tlog(
            "Rekor entry is for another signature".into(),
        ));
    };
    let pem = sig["publicKey"]
        .as_str()
        .and_then(decode_pem_b64)
        .ok_or_else(|| Rejection::Tlog("Rekor entry body has no public key".into()))?;
    check_key(&pem, key)
}

/// `hashedrekord` 0.0.2: `{data: {algorithm, digest}, signature: {content, verifier}}`;
/// the digest is over the signed bytes.
fn check_hashedrekord_v2(
    spec: &serde_json::Value,
    e: &Evidence,
    key: &BodyKey<'_>,
) -> Result<(), Rejection> {
    let sig = b64_field(&spec["signature"]["content"])
        .ok_or_else(|| Rejection::Tlog("Rekor entry body has no signature".into()))?;
    if sig != e.signature {
        return Err(Rejection::Tlog(
            "Rekor entry is for another signature".into(),
        ));
    }
    check_hash_v2(&spec["data"], &e.signed)?;
    check_verifier_v2(&spec["signature"]["verifier"], key)
}

/// `dsse` 0.0.2: `{payloadHash: {algorithm, digest}, signatures: [{content, verifier}]}`.
fn check_dsse_v2(
    spec: &serde_json::Value,
    e: &Evidence,
    key: &BodyKey<'_>,
) -> Result<(), Rejection> {
    check_hash_v2(&spec["payloadHash"], &e.payload)?;
    let sigs = spec["signatures"]
        .as_array()
        .ok_or_else(|| Rejection::Tlog("Rekor entry body has no signature".into()))?;
    let Some(sig) = sigs
        .iter()
        .find(|s| b64_field(&s["content"]).as_deref() == Some(&e.signature[..]))
    else {
        return Err(Rejection::Tlog(
            "Rekor entry is for another signature".into(),
        ));
    };
    check_verifier_v2(&sig["verifier"], key)
}

fn b64_field(v: &serde_json::Value) -> Option<Vec<u8>> {
    v.as_str().and_then(|s| BASE64.decode(s).ok())
}

/// A protobuf `HashOutput`: algorithm enum name and base64 digest.
fn check_hash_v2(hash: &serde_json::Value, data: &[u8]) -> Result<(), Rejection> {
    let want = match hash["algorithm"].as_str() {
        Some("SHA2_256") => sha2::Sha256::digest(data).to_vec(),
        Some("SHA2_384") => sha2::Sha384::digest(data).to_vec(),
        Some("SHA2_512") => sha2::Sha512::digest(data).to_vec(),
        _ => return Err(Rejection::Tlog("Rekor entry is for another payload".into())),
    };
    if b64_field(&hash["digest"]) != Some(want) {
        return Err(Rejection::Tlog("Rekor entry is for another payload".into()));
    }
    Ok(())
}

/// A Rekor v2 `Verifier`: an X.509 certificate or a public key, both DER.
fn check_verifier_v2(verifier: &serde_json::Value, key: &BodyKey<'_>) -> Result<(), Rejection> {
    let cert = b64_field(&verifier["x509Certificate"]["rawBytes"]);
    let spki = b64_field(&verifier["publicKey"]["rawBytes"]);
    if cert.is_none() && spki.is_none() {
        return Err(Rejection::Tlog("Rekor entry body has no public key".into()));
    }
    let matches = match key {
        BodyKey::Certificate(der) => cert.as_deref() == Some(*der),
        BodyKey::Spki(der) => spki.as_deref() == Some(*der),
    };
    if !matches {
        return Err(Rejection::Tlog(
            "Rekor entry is for another key or certificate".into(),
        ));
    }
    Ok(())
}

fn check_hash(hash: &serde_json::Value, data: &[u8]) -> Result<(), Rejection> {
    let alg = hash["algorithm"].as_str().unwrap_or("");
    let value = hash["value"].as_str().unwrap_or("");
    let want = hex::encode(sha2::Sha256::digest(data));
    if alg != "sha256" || !value.eq_ignore_ascii_case(&want) {
        return Err(Rejection::Tlog("Rekor entry is for another payload".into()));
    }
    Ok(())
}

fn decode_pem_b64(s: &str) -> Option<String> {
    BASE64
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

fn check_key(pem: &str, key: &BodyKey<'_>) -> Result<(), Rejection> {
    let matches = match key {
        BodyKey::Certificate(der) => pem_block(pem, "CERTIFICATE").as_deref() == Some(*der),
        // `der` is canonical (a trusted key); the entry may encode the key otherwise.
        BodyKey::Spki(der) => {
            pem_block(pem, "PUBLIC KEY").and_then(|k| crate::verify::keys::canonical_spki(&k).ok())
                == Some(der.to_vec())
        }
    };
    if !matches {
        return Err(Rejection::Tlog(
            "Rekor entry is for another key or certificate".into(),
        ));
    }
    Ok(())
}

/// RFC 6962/9162 inclusion proof to the root hash, and the checkpoint (signed note)
/// naming that root and tree size, signed by the log.
fn verify_inclusion(p: &InclusionProof, body: &[u8], key: &[u8]) -> Result<(), Rejection> {
    let bad = || Rejection::Tlog("Rekor inclusion proof does not verify".into());
    if p.log_index >= p.tree_size {
        return Err(bad());
    }
    let leaf = {
        let mut h = sha2::Sha256::new();
        h.update([0u8]);
        h.update(body);
        h.finalize().to_vec()
    };
    let node = |l: &[u8], r: &[u8]| {
        let mut h = sha2::Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().to_vec()
    };
    let (mut f_n, mut s_n) = (p.log_index, p.tree_size - 1);
    let mut r = leaf;
    for h in &p.hashes {
        if s_n == 0 {
            return Err(bad());
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node(h, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node(&r, h);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 || r != p.root_hash {
        return Err(bad());
    }
    let Some(note) = &p.checkpoint else {
        return Err(Rejection::Tlog(
            "Rekor inclusion proof has no checkpoint".into(),
        ));
    };
    // Signed note: body lines, a blank line, then "— name base64(keyhint[4] || sig)".
    let (text, sigs) = note
        .split_once("\n\n")
        .ok_or_else(|| Rejection::Tlog("Rekor checkpoint is malformed".into()))?;
    let signed = format!("{text}\n");
    let mut lines = text.lines();
    let _origin = lines.next();
    let size: u64 = lines
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Rejection::Tlog("Rekor checkpoint is malformed".into()))?;
    let root = lines
        .next()
        .and_then(|s| BASE64.decode(s).ok())
        .ok_or_else(|| Rejection::Tlog("Rekor checkpoint is malformed".into()))?;
    if size != p.tree_size || root != p.root_hash {
        return Err(Rejection::Tlog(
            "Rekor checkpoint does not match the inclusion proof".into(),
        ));
    }
    let ok = sigs.lines().any(|l| {
        l.strip_prefix("\u{2014} ")
            .and_then(|rest| rest.rsplit_once(' '))
            .and_then(|(_, b)| BASE64.decode(b).ok())
            .is_some_and(|raw| raw.len() > 4 && verify_with_spki(key, &raw[4..], signed.as_bytes()))
    });
    if ok {
        Ok(())
    } else {
        Err(Rejection::Tlog(
            "Rekor checkpoint signature does not verify".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_proof_rejects_junk() {
        let p = InclusionProof {
            log_index: 5,
            tree_size: 3,
            root_hash: vec![0; 32],
            hashes: vec![],
            checkpoint: None,
        };
        assert!(verify_inclusion(&p, b"x", b"k").is_err());
        let p = InclusionProof {
            log_index: 0,
            tree_size: 1,
            root_hash: vec![0; 32],
            hashes: vec![vec![1; 32]; 3],
            checkpoint: None,
        };
        assert!(verify_inclusion(&p, b"x", b"k").is_err());
    }

    fn leaf_hash(b: &[u8]) -> Vec<u8> {
        let mut h = sha2::Sha256::new();
        h.update([0u8]);
        h.update(b);
        h.finalize().to_vec()
    }

    fn node(l: &[u8], r: &[u8]) -> Vec<u8> {
        let mut h = sha2::Sha256::new();
        h.update([1u8]);
        h.update(l);
        h.update(r);
        h.finalize().to_vec()
    }

    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// RFC 6962 MTH and PATH, written from the definitions (recursive), as the oracle.
    fn mth(leaves: &[Vec<u8>]) -> Vec<u8> {
        if leaves.len() == 1 {
            return leaves[0].clone();
        }
        let k = split(leaves.len());
        node(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Vec<u8>> {
        if leaves.len() == 1 {
            return Vec::new();
        }
        let k = split(leaves.len());
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn inclusion_proofs_and_checkpoints_verify() {
        // Rekor v1 signs checkpoints with ECDSA, Rekor v2 logs may use Ed25519.
        for scheme in [
            sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1,
            sigstore::crypto::SigningScheme::ED25519,
        ] {
            inclusion_proofs_with(scheme);
        }
    }

    fn inclusion_proofs_with(scheme: sigstore::crypto::SigningScheme) {
        let (private, public) = crate::verify::sign::generate_key(scheme).unwrap();
        let log = crate::verify::sign::ImageSigner::from_pem(private.as_bytes(), false).unwrap();
        let key = pem_block(&public, "PUBLIC KEY").unwrap();
        for n in 1..=9usize {
            let bodies: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
            let leaves: Vec<Vec<u8>> = bodies.iter().map(|b| leaf_hash(b)).collect();
            let root = mth(&leaves);
            let text = format!("rekor.test - 1\n{n}\n{}\n", BASE64.encode(&root));
            let mut sig = vec![1, 2, 3, 4];
            sig.extend(log.sign(text.as_bytes()).unwrap());
            let note = format!("{text}\n\u{2014} rekor.test {}\n", BASE64.encode(&sig));
            for (m, body) in bodies.iter().enumerate() {
                let proof = InclusionProof {
                    log_index: m as u64,
                    tree_size: n as u64,
                    root_hash: root.clone(),
                    hashes: path(m, &leaves),
                    checkpoint: Some(note.clone()),
                };
                verify_inclusion(&proof, body, &key).unwrap_or_else(|e| panic!("n={n} m={m}: {e}"));
                // Another body, another index, a tampered path, a forged note: all fail.
                assert!(verify_inclusion(&proof, b"forged", &key).is_err());
                if n > 1 {
                    let mut other = proof.clone();
                    other.log_index = ((m + 1) % n) as u64;
                    assert!(verify_inclusion(&other, body, &key).is_err(), "n={n} m={m}");
                    let mut tampered = proof.clone();
                    tampered.hashes[0][0] ^= 1;
                    assert!(verify_inclusion(&tampered, body, &key).is_err());
                }
                let mut forged = proof.clone();
                forged.checkpoint = Some(note.replace(" - 1\n", " - 2\n"));
                assert_eq!(
                    verify_inclusion(&forged, body, &key)
                        .unwrap_err()
                        .to_string(),
                    "Rekor checkpoint signature does not verify"
                );
            }
        }
    }

    fn evidence(kind: PayloadKind) -> Evidence {
        Evidence {
            payload_kind: kind,
            payload: b"payload".to_vec(),
            signed: b"signed".to_vec(),
            signature: b"sig".to_vec(),
            certificates: vec![b"cert".to_vec()],
            tlog: None,
            timestamps: Vec::new(),
        }
    }

    #[test]
    fn rekor_v2_bodies_bind_signature_payload_and_key() {
        let b64 = |b: &[u8]| BASE64.encode(b);
        let sha = |b: &[u8]| b64(&sha2::Sha256::digest(b));
        let cert = BodyKey::Certificate(b"cert");
        let hashed = |sig: &[u8], data: &[u8], alg: &str, verifier: serde_json::Value| {
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "0.0.2", "kind": "hashedrekord",
                "spec": {"hashedRekordV002": {
                    "data": {"algorithm": alg, "digest": sha(data)},
                    "signature": {"content": b64(sig), "verifier": verifier},
                }},
            }))
            .unwrap()
        };
        let by_cert = serde_json::json!({"x509Certificate": {"rawBytes": b64(b"cert")}});
        let e = evidence(PayloadKind::SimpleSigning);
        let ok = hashed(b"sig", b"signed", "SHA2_256", by_cert.clone());
        check_body(&ok, &e, &cert).unwrap();
        // The same entry does not vouch for a key-signed signature (publicKey absent).
        assert_eq!(
            check_body(&ok, &e, &BodyKey::Spki(b"cert"))
                .unwrap_err()
                .to_string(),
            "Rekor entry is for another key or certificate"
        );
        for (body, want) in [
            (
                hashed(b"other", b"signed", "SHA2_256", by_cert.clone()),
                "Rekor entry is for another signature",
            ),
            (
                hashed(b"sig", b"payload", "SHA2_256", by_cert.clone()),
                "Rekor entry is for another payload",
            ),
            (
                hashed(b"sig", b"signed", "SHA1", by_cert.clone()),
                "Rekor entry is for another payload",
            ),
            (
                hashed(b"sig", b"signed", "SHA2_256", serde_json::json!({})),
                "Rekor entry body has no public key",
            ),
            (
                hashed(
                    b"sig",
                    b"signed",
                    "SHA2_256",
                    serde_json::json!({"x509Certificate": {"rawBytes": b64(b"another")}}),
                ),
                "Rekor entry is for another key or certificate",
            ),
            (
                br#"{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{}}"#.to_vec(),
                "Rekor entry body has no signature",
            ),
        ] {
            assert_eq!(check_body(&body, &e, &cert).unwrap_err().to_string(), want);
        }
        let dsse = |hash_of: &[u8], sig: &[u8]| {
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "0.0.2", "kind": "dsse",
                "spec": {"dsseV002": {
                    "payloadHash": {"algorithm": "SHA2_256", "digest": sha(hash_of)},
                    "signatures": [{"content": b64(sig), "verifier": by_cert.clone()}],
                }},
            }))
            .unwrap()
        };
        let e = evidence(PayloadKind::InToto);
        check_body(&dsse(b"payload", b"sig"), &e, &cert).unwrap();
        assert_eq!(
            check_body(&dsse(b"signed", b"sig"), &e, &cert)
                .unwrap_err()
                .to_string(),
            "Rekor entry is for another payload"
        );
        assert_eq!(
            check_body(&dsse(b"payload", b"other"), &e, &cert)
                .unwrap_err()
                .to_string(),
            "Rekor entry is for another signature"
        );
        // A DSSE entry never vouches for a message signature.
        assert!(
            check_body(
                &dsse(b"payload", b"sig"),
                &evidence(PayloadKind::SimpleSigning),
                &cert
            )
            .is_err()
        );
    }
}
