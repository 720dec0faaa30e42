//! Stored image inventories: what a scan found in an image (packages, OS, secrets,
//! risky files, per-layer facts) and what its signature checks concluded, kept per
//! manifest digest in the `inventory` table so the image can be judged again — under a
//! new vulnerability database or another policy — without reading a layer or asking the
//! registry. Written in the same commit as the verdict it came with.
//!
//! Unlike the layer cache (an LRU a busy node churns through), an inventory lives as
//! long as the image's verdicts: `purge` and the sweep of images gone from the node
//! drop it with them.
//!
//! A record is hostile input on read (a damaged file, another version's layout):
//! [`ImageInventory::decode`] checks size, format, counts and the digest it claims,
//! and a record that fails is skipped with the reason, never trusted.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{StoreError, VerdictKey, VerdictStore, db};
use crate::config::{MAX_DENYLIST_BYTES, Policy};
use crate::digest::Digest;
use crate::fleet::ScanSource;
use crate::policy::Verdict;
use crate::reference::Reference;
use crate::report::{ScanReport, SignatureReport};
use crate::vex::VexSource;

/// Manifest digest → inventory JSON ([`ImageInventory`]).
pub(super) const INVENTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("inventory");

/// Layout version of [`ImageInventory`]; a record of another version is skipped.
pub const INVENTORY_FORMAT: u32 = 1;
/// Largest inventory record read back (a distro image with its packages is ~1 MiB).
pub const MAX_INVENTORY_BYTES: usize = 64 << 20;
/// Most names kept per image.
pub const MAX_REFERENCES: usize = 64;
/// Most signature outcomes kept per image (one per signer set × repository).
pub const MAX_EVIDENCE: usize = 32;
/// Most VEX sources kept per lookup (a node examines at most 32 attestations per
/// digest, for up to two digests).
pub const MAX_VEX_SOURCES: usize = 128;

/// One image as stored for re-judging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInventory {
    /// [`INVENTORY_FORMAT`] of the writer.
    pub format: u32,
    /// Manifest digest (the index digest for a multi-platform image): the key.
    pub digest: Digest,
    /// The platform manifest the inventory is of, when `digest` is an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_digest: Option<Digest>,
    /// Names the image was pulled as (normalized references), newest first.
    pub references: Vec<String>,
    /// OCI platform the layers were chosen for (`linux/amd64`).
    pub platform: String,
    /// [`crate::scan::analyzers::ANALYZER_SET_VERSION`] of the scan.
    pub analyzer_set: u32,
    /// The composed scan (OS, packages, secrets, files, layer diffIDs) without
    /// vulnerabilities, which are matched anew on every judgement. `None` when the
    /// policy that judged the pull did not scan.
    #[serde(default)]
    pub report: Option<ScanReport>,
    /// Where the layer results came from (a local scan, a fleet attestation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_source: Option<ScanSource>,
    /// What signature checks concluded, per signer set and repository, newest first.
    #[serde(default)]
    pub signatures: Vec<SignatureEvidence>,
    /// The VEX pulls looked up for the image, per VEX signer set, newest first (none
    /// when no pull looked: no finding to suppress, or the lookup failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vex: Vec<VexEvidence>,
    /// RFC 3339 UTC of the last write.
    pub recorded_at: String,
}

/// The outcome of one signature verification, reusable while the policy's signature
/// requirement (keys, keyless identities, threshold, trust root) is the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignatureEvidence {
    /// Hash of the signature requirement it was verified under
    /// ([`SignatureEvidence::requirement_of`]).
    pub requirement: String,
    /// The repository the signatures were verified for (cosign binds one), canonical.
    pub repository: String,
    pub report: SignatureReport,
    /// RFC 3339 UTC.
    pub verified_at: String,
}

/// The VEX one pull looked up for the image, reusable while the policy's VEX signers
/// are the same: re-judging applies it as the pull did, with no registry call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VexEvidence {
    /// Hash of the VEX signer set it was verified with ([`VexEvidence::requirement_of`]).
    pub requirement: String,
    /// Every VEX attestation found: trusted (with its signer) or not (with why).
    pub sources: Vec<VexSource>,
    /// RFC 3339 UTC of the lookup.
    pub looked_up_at: String,
}

impl VexEvidence {
    /// Hex BLAKE3 of a policy's VEX signer set: the `[policy.vex]` section as loaded
    /// and, since without it the image signers are the VEX signers, the
    /// `[policy.signatures]` section, with the bytes of every key file and trust root
    /// both name. Equal hashes mean stored VEX was verified by the same signers.
    /// `Err`: a named file that was not loaded and cannot be read now.
    pub fn requirement_of(policy: &Policy) -> Result<String, String> {
        let sections =
            serde_json::to_vec(&(&policy.vex, &policy.signatures)).map_err(|e| e.to_string())?;
        let sig = policy.signatures.iter();
        let vex = policy.vex.iter();
        let files = vex
            .clone()
            .flat_map(|v| v.keys.iter().chain(v.trusted_root.iter()))
            .chain(sig.flat_map(|s| s.keys.iter().chain(s.trusted_root.iter())));
        requirement_hash(b"pullwarden vex requirement v1\0", &sections, files, policy)
    }
}

impl SignatureEvidence {
    /// Hex BLAKE3 of a policy's signature requirement: the `[policy.signatures]` section
    /// as loaded (keys, threshold, keyless identities, trust root path) and the bytes of
    /// every key file and trust root it names. Equal hashes mean a stored verification
    /// outcome answers the same question. `Ok(None)`: the policy requires no signature.
    /// `Err`: a named file that was not loaded and cannot be read now.
    pub fn requirement_of(policy: &Policy) -> Result<Option<String>, String> {
        let Some(sig) = &policy.signatures else {
            return Ok(None);
        };
        let json = serde_json::to_vec(sig).map_err(|e| e.to_string())?;
        let files = sig.keys.iter().chain(sig.trusted_root.iter());
        requirement_hash(
            b"pullwarden signature requirement v1\0",
            &json,
            files,
            policy,
        )
        .map(Some)
    }

    /// The repository a signature outcome is bound to (cosign's `docker-reference`), as
    /// verdict keys spell it.
    pub fn repository_of(reference: &Reference) -> String {
        crate::reference::canonical_host(&reference.name()).into_owned()
    }
}

/// Hex BLAKE3 of `tag`, the `section` JSON, and each of `files` (path and bytes): the
/// bytes read at load (as the verifier was built from them), else the file as it is now
/// (a config that was not checked).
fn requirement_hash<'a>(
    tag: &[u8],
    section: &[u8],
    files: impl Iterator<Item = &'a std::path::PathBuf>,
    policy: &Policy,
) -> Result<String, String> {
    let mut h = blake3::Hasher::new();
    h.update(tag);
    field(&mut h, section);
    for path in files {
        let bytes: std::sync::Arc<[u8]> = match policy.files.get(path) {
            Some(b) => b,
            None => crate::verify::keys::read_config_file(path, MAX_DENYLIST_BYTES)
                .map_err(|e| format!("policy {}: {}: {e}", policy.name, path.display()))?
                .into(),
        };
        field(&mut h, path.as_os_str().as_encoded_bytes());
        field(&mut h, &bytes);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// One length-prefixed field of a hash input.
fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// Why a stored inventory was not used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("stored inventory is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("stored inventory does not decode: {0}")]
    Decode(#[source] serde_json::Error),
    #[error(
        "stored inventory has layout version {found}, this pullwarden reads {INVENTORY_FORMAT}"
    )]
    Format { found: u32 },
    #[error("stored inventory under {key} claims to be of {found}")]
    OtherDigest { key: String, found: String },
    #[error("stored inventory lists {count} {what}, more than {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

impl ImageInventory {
    /// The inventory a pull's verdict `v` under `policy` leaves behind for `reference`:
    /// the composed scan `report` without its vulnerabilities (they are matched anew at
    /// each judging), the signature outcome under the policy's requirement, and the VEX
    /// sources the pull looked up (`None`: it did not look, or the lookup failed).
    pub fn of_pull(
        v: &Verdict,
        policy: &Policy,
        reference: &Reference,
        report: Option<ScanReport>,
        vex: Option<Vec<VexSource>>,
    ) -> ImageInventory {
        let report = report.map(|mut r| {
            r.vulnerabilities.clear();
            r
        });
        let signatures = match SignatureEvidence::requirement_of(policy) {
            Ok(Some(requirement)) => vec![SignatureEvidence {
                requirement,
                repository: SignatureEvidence::repository_of(reference),
                report: v.signatures.clone(),
                verified_at: v.decided_at.clone(),
            }],
            // No requirement: nothing to keep. A key file that cannot be read: the
            // outcome is not reusable (the next re-judging skips it for that policy).
            Ok(None) | Err(_) => Vec::new(),
        };
        let vex = match (vex, VexEvidence::requirement_of(policy)) {
            (Some(sources), Ok(requirement)) => vec![VexEvidence {
                requirement,
                sources,
                looked_up_at: v.decided_at.clone(),
            }],
            _ => Vec::new(),
        };
        ImageInventory {
            format: INVENTORY_FORMAT,
            digest: v.digest.clone(),
            platform_digest: v.platform_digest.clone(),
            references: vec![reference.to_string()],
            platform: crate::platform::Platform::host().to_string(),
            analyzer_set: crate::scan::analyzers::ANALYZER_SET_VERSION,
            scan_source: if report.is_some() {
                v.scan_source.clone()
            } else {
                None
            },
            report,
            signatures,
            vex,
            recorded_at: v.decided_at.clone(),
        }
    }

    /// JSON, as stored.
    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|source| StoreError::Encode {
            what: "image inventory",
            source,
        })
    }

    /// Decodes the record stored under `key` (a manifest digest), checking it before
    /// any of it is used: size, layout version, the digest it claims, and counts.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<ImageInventory, InventoryError> {
        if bytes.len() > MAX_INVENTORY_BYTES {
            return Err(InventoryError::TooLarge {
                len: bytes.len(),
                max: MAX_INVENTORY_BYTES,
            });
        }
        let inv: ImageInventory = serde_json::from_slice(bytes).map_err(InventoryError::Decode)?;
        if inv.format != INVENTORY_FORMAT {
            return Err(InventoryError::Format { found: inv.format });
        }
        if inv.digest != key {
            return Err(InventoryError::OtherDigest {
                key: key.to_string(),
                found: inv.digest.to_string(),
            });
        }
        for (what, count, max) in [
            ("references", inv.references.len(), MAX_REFERENCES),
            ("signature outcomes", inv.signatures.len(), MAX_EVIDENCE),
            ("VEX lookups", inv.vex.len(), MAX_EVIDENCE),
            (
                "VEX sources",
                inv.vex.iter().map(|e| e.sources.len()).max().unwrap_or(0),
                MAX_VEX_SOURCES,
            ),
        ] {
            if count > max {
                return Err(InventoryError::TooMany { what, count, max });
            }
        }
        Ok(inv)
    }

    /// This (newer) inventory with what `older` knew and this one does not: other
    /// names, and signature outcomes for other signer sets or repositories.
    pub fn merged_with(mut self, older: ImageInventory) -> ImageInventory {
        for r in older.references {
            if self.references.len() >= MAX_REFERENCES {
                break;
            }
            if !self.references.contains(&r) {
                self.references.push(r);
            }
        }
        for e in older.signatures {
            if self.signatures.len() >= MAX_EVIDENCE {
                break;
            }
            if !self
                .signatures
                .iter()
                .any(|n| n.requirement == e.requirement && n.repository == e.repository)
            {
                self.signatures.push(e);
            }
        }
        for e in older.vex {
            if self.vex.len() >= MAX_EVIDENCE {
                break;
            }
            if !self.vex.iter().any(|n| n.requirement == e.requirement) {
                self.vex.push(e);
            }
        }
        if self.report.is_none() {
            self.report = older.report;
            self.scan_source = self.scan_source.or(older.scan_source);
        }
        self
    }

    /// The stored VEX lookup for the VEX signer set `requirement`, if any.
    pub fn vex_evidence(&self, requirement: &str) -> Option<&VexEvidence> {
        self.vex.iter().find(|e| e.requirement == requirement)
    }

    /// The stored signature outcome for `requirement` and `repository`, if any.
    pub fn evidence(&self, requirement: &str, repository: &str) -> Option<&SignatureEvidence> {
        self.signatures
            .iter()
            .find(|e| e.requirement == requirement && e.repository == repository)
    }
}

impl VerdictStore {
    /// [`VerdictStore::put`] and the image's inventory in one durable commit: the
    /// inventory is merged into the one stored for the digest (a damaged stored one is
    /// replaced).
    pub fn put_with_inventory(
        &self,
        key: &VerdictKey,
        v: &Verdict,
        inventory: &ImageInventory,
    ) -> Result<(), StoreError> {
        let digest = inventory.digest.to_string();
        let wtx = self.db.begin_write().map_err(db("begin write"))?;
        self.write_verdict(&wtx, key, v)?;
        {
            let mut table = wtx.open_table(INVENTORY).map_err(db("open inventory"))?;
            let older = table
                .get(digest.as_str())
                .map_err(db("read inventory"))?
                .and_then(|b| ImageInventory::decode(&digest, b.value()).ok());
            let merged = match older {
                Some(o) => inventory.clone().merged_with(o),
                None => inventory.clone(),
            };
            let bytes = merged.encode()?;
            table
                .insert(digest.as_str(), bytes.as_slice())
                .map_err(db("insert inventory"))?;
        }
        wtx.commit().map_err(db("commit verdict and inventory"))?;
        Ok(())
    }

    /// Stores many verdicts (each as [`VerdictStore::put`] would) in one durable commit:
    /// re-judging a node's images costs one `fsync` per batch, not per image.
    pub fn put_many(&self, verdicts: &[(VerdictKey, Verdict)]) -> Result<(), StoreError> {
        let wtx = self.db.begin_write().map_err(db("begin write"))?;
        for (key, v) in verdicts {
            self.write_verdict(&wtx, key, v)?;
        }
        wtx.commit().map_err(db("commit verdicts"))?;
        Ok(())
    }

    /// The inventory stored for manifest digest `digest`: `None` when there is none,
    /// `Some(Err(_))` when the record is there but unusable (the caller skips the image
    /// with that reason).
    pub fn inventory(
        &self,
        digest: &str,
    ) -> Result<Option<Result<ImageInventory, InventoryError>>, StoreError> {
        let rtx = self.db.begin_read().map_err(db("begin read"))?;
        let table = rtx.open_table(INVENTORY).map_err(db("open inventory"))?;
        Ok(table
            .get(digest)
            .map_err(db("read inventory"))?
            .map(|b| ImageInventory::decode(digest, b.value())))
    }

    /// Stores `bytes` as the inventory record of `digest` as they are, unchecked: for
    /// tests of damaged records and for repair tools. The daemon writes through
    /// [`VerdictStore::put_with_inventory`].
    pub fn put_inventory_raw(&self, digest: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let wtx = self.db.begin_write().map_err(db("begin write"))?;
        {
            let mut table = wtx.open_table(INVENTORY).map_err(db("open inventory"))?;
            table
                .insert(digest, bytes)
                .map_err(db("insert inventory"))?;
        }
        wtx.commit().map_err(db("commit inventory"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Distro, Package, PackageType};

    pub(crate) fn sample(digest: &Digest) -> ImageInventory {
        ImageInventory {
            format: INVENTORY_FORMAT,
            digest: digest.clone(),
            platform_digest: None,
            references: vec!["127.0.0.1:5000/app:v1".into()],
            platform: "linux/amd64".into(),
            analyzer_set: 7,
            report: Some(ScanReport {
                os: Some(Distro {
                    id: "debian".into(),
                    version_id: Some("12".into()),
                    codename: Some("bookworm".into()),
                    pretty_name: None,
                }),
                packages: vec![Package {
                    name: "base-files".into(),
                    version: "12.4+deb12u5".into(),
                    kind: PackageType::Deb,
                    purl: "pkg:deb/debian/base-files@12.4+deb12u5".into(),
                    layer: "sha256:00".into(),
                    path: "var/lib/dpkg/status".into(),
                    source_name: None,
                    source_version: None,
                    arch: Some("amd64".into()),
                    licenses: vec![],
                    depends: vec![],
                    provides: vec![],
                }],
                ..Default::default()
            }),
            scan_source: None,
            signatures: vec![SignatureEvidence {
                requirement: "r1".into(),
                repository: "127.0.0.1:5000/app".into(),
                report: SignatureReport::default(),
                verified_at: "2026-11-30T00:00:00Z".into(),
            }],
            vex: vec![VexEvidence {
                requirement: "v1".into(),
                sources: vec![VexSource {
                    origin: "attestation sha256:11 (sha256-00.att)".into(),
                    signer: Some("key vendor.pub (sha256:22)".into()),
                    untrusted_reason: None,
                    document: crate::vex::VexDocument {
                        format: "openvex",
                        id: Some("https://example.com/vex/1".into()),
                        statements: vec![crate::vex::Statement {
                            vulnerability: vec!["CVE-2026-1".into()],
                            products: vec![digest.to_string()],
                            subcomponents: vec![],
                            status: crate::vex::Status::NotAffected,
                            justification: Some("vulnerable_code_not_present".into()),
                            impact_statement: None,
                            timestamp: Some("2026-11-01T00:00:00Z".into()),
                        }],
                    },
                }],
                looked_up_at: "2026-11-30T00:00:00Z".into(),
            }],
            recorded_at: "2026-11-30T00:00:00Z".into(),
        }
    }

    #[test]
    fn round_trip_and_checks() {
        let d = Digest::sha256_of(b"image");
        let inv = sample(&d);
        let bytes = inv.encode().unwrap();
        assert_eq!(ImageInventory::decode(&d.to_string(), &bytes).unwrap(), inv);
        // Stored under another digest: not this image's.
        let other = Digest::sha256_of(b"other").to_string();
        assert!(matches!(
            ImageInventory::decode(&other, &bytes),
            Err(InventoryError::OtherDigest { .. })
        ));
        let mut future = inv.clone();
        future.format = 99;
        assert!(matches!(
            ImageInventory::decode(&d.to_string(), &future.encode().unwrap()),
            Err(InventoryError::Format { found: 99 })
        ));
        let mut many = inv.clone();
        many.references = (0..=MAX_REFERENCES).map(|i| format!("r/{i}")).collect();
        assert!(matches!(
            ImageInventory::decode(&d.to_string(), &many.encode().unwrap()),
            Err(InventoryError::TooMany { .. })
        ));
        let mut many = inv.clone();
        many.vex[0].sources = vec![many.vex[0].sources[0].clone(); MAX_VEX_SOURCES + 1];
        assert!(matches!(
            ImageInventory::decode(&d.to_string(), &many.encode().unwrap()),
            Err(InventoryError::TooMany {
                what: "VEX sources",
                ..
            })
        ));
        // A stored VEX document of a format this build does not parse is not trusted.
        let bogus = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"format\":\"openvex\"", "\"format\":\"bogus\"");
        assert_ne!(bogus.as_bytes(), &bytes[..]);
        assert!(matches!(
            ImageInventory::decode(&d.to_string(), bogus.as_bytes()),
            Err(InventoryError::Decode(_))
        ));
        assert!(matches!(
            ImageInventory::decode(&d.to_string(), b"{\"format\":1"),
            Err(InventoryError::Decode(_))
        ));
        assert!(matches!(
            ImageInventory::decode(&d.to_string(), &vec![b' '; MAX_INVENTORY_BYTES + 1]),
            Err(InventoryError::TooLarge { .. })
        ));
    }

    /// Stored VEX answers only for the signers it was verified with: another VEX key,
    /// other key bytes under the same path, or other image signers when those are the
    /// VEX signers, each make another requirement.
    #[test]
    fn a_vex_requirement_names_the_signers_and_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let key = |name: &str, bytes: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p.display().to_string()
        };
        let (img, vex1, vex2) = (
            key("img.pub", "img"),
            key("v1.pub", "one"),
            key("v2.pub", "two"),
        );
        let req = |extra: &str| {
            let cfg = crate::config::Config::parse(&format!(
                "[[policy]]\nname = \"p\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [\"{img}\"]\n{extra}"
            ))
            .unwrap();
            VexEvidence::requirement_of(&cfg.policies[0]).unwrap()
        };
        let by_image_signers = req("");
        let by_vex1 = req(&format!("[policy.vex]\nkeys = [\"{vex1}\"]\n"));
        assert_eq!(
            by_vex1,
            req(&format!("[policy.vex]\nkeys = [\"{vex1}\"]\n"))
        );
        assert_ne!(by_vex1, by_image_signers);
        assert_ne!(
            by_vex1,
            req(&format!("[policy.vex]\nkeys = [\"{vex2}\"]\n"))
        );
        key("v1.pub", "one, rotated");
        assert_ne!(
            by_vex1,
            req(&format!("[policy.vex]\nkeys = [\"{vex1}\"]\n"))
        );
        key("img.pub", "img, rotated");
        assert_ne!(by_image_signers, req(""));
    }

    #[test]
    fn merging_keeps_other_names_and_signer_sets() {
        let d = Digest::sha256_of(b"image");
        let old = sample(&d);
        let mut new = sample(&d);
        new.references = vec!["127.0.0.1:5000/app:v2".into()];
        new.signatures[0].requirement = "r2".into();
        new.vex[0].requirement = "v2".into();
        new.report = None;
        let m = new.merged_with(old.clone());
        assert_eq!(m.references.len(), 2);
        assert_eq!(m.references[0], "127.0.0.1:5000/app:v2");
        assert!(m.evidence("r1", "127.0.0.1:5000/app").is_some());
        assert!(m.evidence("r2", "127.0.0.1:5000/app").is_some());
        assert!(m.vex_evidence("v1").is_some() && m.vex_evidence("v2").is_some());
        assert_eq!(
            m.report, old.report,
            "a scan-less verdict keeps the stored scan"
        );
    }

    #[test]
    fn stored_with_the_verdict_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = VerdictStore::open(dir.path(), 16).unwrap();
        let d = Digest::sha256_of(b"image").to_string();
        let v = super::super::tests::verdict(
            &d,
            "127.0.0.1:5000/app:v1",
            crate::policy::Decision::Allow,
            "fp",
            "db1",
        );
        let key = VerdictKey::of(&v);
        let inv = sample(&v.digest);
        store.put_with_inventory(&key, &v, &inv).unwrap();
        assert_eq!(store.get(&key).unwrap().unwrap().digest, v.digest);
        let back = store
            .inventory(&v.digest.to_string())
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, inv);
        store
            .put_inventory_raw(&v.digest.to_string(), b"\xff garbage")
            .unwrap();
        assert!(
            store
                .inventory(&v.digest.to_string())
                .unwrap()
                .unwrap()
                .is_err()
        );
        // A damaged record is replaced by the next write.
        store.put_with_inventory(&key, &v, &inv).unwrap();
        assert!(
            store
                .inventory(&v.digest.to_string())
                .unwrap()
                .unwrap()
                .is_ok()
        );
        store.purge(&v.digest.to_string()).unwrap();
        assert!(store.inventory(&v.digest.to_string()).unwrap().is_none());
    }
}
