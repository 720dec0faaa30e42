//! Denylist of known-bad file contents: a text file with one `sha256:<hex>` or
//! `blake3:<hex>` per line (`#` comments). Regular files are hashed only when a
//! denylist is configured, and only with the algorithms it uses.

use std::collections::HashSet;
use std::path::Path;

use sha2::Digest as _;

#[derive(Debug, thiserror::Error)]
pub enum DenylistError {
    #[error("cannot read denylist {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("denylist line {line}: {text:?} is not sha256:<64 hex> or blake3:<64 hex>")]
    BadLine { line: usize, text: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denylist {
    sha256: HashSet<[u8; 32]>,
    blake3: HashSet<[u8; 32]>,
}

impl Denylist {
    pub fn load(path: &Path) -> Result<Denylist, DenylistError> {
        let text = std::fs::read_to_string(path).map_err(|source| DenylistError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Denylist::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Denylist, DenylistError> {
        let mut d = Denylist::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = || DenylistError::BadLine {
                line: i + 1,
                text: line.chars().take(80).collect(),
            };
            let (alg, hex) = line.split_once(':').ok_or_else(bad)?;
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hex.to_ascii_lowercase(), &mut bytes).map_err(|_| bad())?;
            match alg.to_ascii_lowercase().as_str() {
                "sha256" => d.sha256.insert(bytes),
                "blake3" => d.blake3.insert(bytes),
                _ => return Err(bad()),
            };
        }
        Ok(d)
    }

    pub fn len(&self) -> usize {
        self.sha256.len() + self.blake3.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A stable fingerprint of the entries (part of the layer cache key).
    pub fn fingerprint(&self) -> String {
        let mut all: Vec<String> = self
            .sha256
            .iter()
            .map(|h| format!("sha256:{}", hex::encode(h)))
            .chain(
                self.blake3
                    .iter()
                    .map(|h| format!("blake3:{}", hex::encode(h))),
            )
            .collect();
        all.sort();
        hex::encode(sha2::Sha256::digest(all.join("\n").as_bytes()))
    }

    pub(crate) fn hashers(&self) -> FileHashers {
        FileHashers {
            sha256: (!self.sha256.is_empty()).then(sha2::Sha256::new),
            blake3: (!self.blake3.is_empty()).then(blake3::Hasher::new),
        }
    }

    /// The matching entry (`alg:hex`), if the file's hashes are listed.
    pub(crate) fn check(&self, h: FileHashers) -> Option<String> {
        if let Some(s) = h.sha256 {
            let d: [u8; 32] = s.finalize().into();
            if self.sha256.contains(&d) {
                return Some(format!("sha256:{}", hex::encode(d)));
            }
        }
        if let Some(b) = h.blake3 {
            let d = *b.finalize().as_bytes();
            if self.blake3.contains(&d) {
                return Some(format!("blake3:{}", hex::encode(d)));
            }
        }
        None
    }
}

pub(crate) struct FileHashers {
    sha256: Option<sha2::Sha256>,
    blake3: Option<blake3::Hasher>,
}

impl FileHashers {
    pub fn update(&mut self, b: &[u8]) {
        if let Some(h) = &mut self.sha256 {
            h.update(b);
        }
        if let Some(h) = &mut self.blake3 {
            h.update(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let evil = b"evil payload";
        let text = format!(
            "# known bad\n\nsha256:{}  # miner\nblake3:{}\n",
            hex::encode(sha2::Sha256::digest(evil)),
            blake3::hash(b"other").to_hex()
        );
        let d = Denylist::parse(&text).unwrap();
        assert_eq!(d.len(), 2);
        let mut h = d.hashers();
        h.update(b"evil ");
        h.update(b"payload");
        assert!(d.check(h).unwrap().starts_with("sha256:"));
        let mut h = d.hashers();
        h.update(b"other");
        assert!(d.check(h).unwrap().starts_with("blake3:"));
        let mut h = d.hashers();
        h.update(b"fine");
        assert_eq!(d.check(h), None);
        for bad in [
            "md5:abcd",
            "sha256:xyz",
            "sha256",
            &format!("sha256:{}", "a".repeat(63)),
        ] {
            assert!(
                matches!(
                    Denylist::parse(bad),
                    Err(DenylistError::BadLine { line: 1, .. })
                ),
                "{bad}"
            );
        }
    }
}
