//! Which paths a layer holds, compactly: enough for the composition to tell that an
//! upper layer replaced a lower layer's file (a plain file over a package database or a
//! secret, a symlink over a directory) without keeping a tree of every file.
//!
//! Each entry is 8 bytes: the first 8 bytes of BLAKE3 over the normalized path, the
//! lowest bit replaced by whether the entry is a directory. A lower file wrongly judged
//! replaced would drop its packages from the inventory, so an attacker would need an
//! upper-layer path whose 63-bit key equals that of a chosen lower path: a second
//! preimage, about 2^63 BLAKE3 evaluations. Secrets in replaced files still deny either
//! way ("deleted in a later layer but still shipped").

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every entry path of one layer (not its whiteouts), sorted for lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathSet(Vec<u64>);

/// The path's key: the first 8 bytes of BLAKE3 over the path, with the lowest bit
/// saying whether the entry is a directory (one hash serves both kinds).
fn base_key(path: &str) -> u64 {
    let hash = blake3::hash(path.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(hash.as_bytes().get(..8).unwrap_or(&[0; 8]));
    u64::from_le_bytes(first) & !1
}

fn key(path: &str, dir: bool) -> u64 {
    base_key(path) | u64::from(dir)
}

/// Collects a layer's paths during the walk; a later entry at a path replaces an
/// earlier one's kind (a file then a directory at one path is a directory, as extracted).
#[derive(Debug, Default)]
pub struct PathSetBuilder(std::collections::HashMap<u64, u64>);

impl PathSetBuilder {
    /// Records an entry at `path` (normalized, no leading `/`).
    pub fn insert(&mut self, path: &str, dir: bool) {
        let base = base_key(path);
        self.0.insert(base, base | u64::from(dir));
    }

    pub fn finish(self) -> PathSet {
        let mut keys: Vec<u64> = self.0.into_values().collect();
        keys.sort_unstable();
        keys.dedup();
        PathSet(keys)
    }
}

impl PathSet {
    fn contains(&self, k: u64) -> bool {
        self.0.binary_search(&k).is_ok()
    }

    /// Whether this layer puts something at `path` (normalized) that replaces what a
    /// lower layer had there: an entry at the path itself (a file, a link, a directory),
    /// or a non-directory at one of its ancestors (a symlink or file over a directory
    /// hides everything the lower layers had below it).
    pub fn replaces(&self, path: &str) -> bool {
        let base = base_key(path);
        if self.contains(base) || self.contains(base | 1) {
            return true;
        }
        path.match_indices('/')
            .any(|(i, _)| self.contains(key(path.get(..i).unwrap_or(""), false)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// Stored in the layer cache as base64 of the little-endian keys: a tenth of the size of
// a JSON array of numbers.
impl Serialize for PathSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        let bytes: Vec<u8> = self.0.iter().flat_map(|k| k.to_le_bytes()).collect();
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for PathSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PathSet, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        if bytes.len() % 8 != 0 {
            return Err(serde::de::Error::custom(
                "path set is not a whole number of 8-byte keys",
            ));
        }
        let mut keys: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut k = [0u8; 8];
                k.copy_from_slice(c);
                u64::from_le_bytes(k)
            })
            .collect();
        // A cached value is re-sorted rather than trusted to be sorted.
        keys.sort_unstable();
        keys.dedup();
        Ok(PathSet(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_paths() {
        let mut b = PathSetBuilder::default();
        b.insert("var/lib/dpkg/status", false);
        b.insert("app", false); // a symlink or file where a directory was
        b.insert("etc", true);
        let set = b.finish();
        assert!(set.replaces("var/lib/dpkg/status"));
        assert!(
            set.replaces("app/.env"),
            "a non-directory hides what was below it"
        );
        assert!(set.replaces("etc"));
        assert!(
            !set.replaces("etc/passwd"),
            "a directory entry merges, hides nothing"
        );
        assert!(!set.replaces("var/lib/dpkg/status-old"));
        assert!(!set.replaces("var/lib/dpkg"));
        // The last entry at a path decides its kind.
        let mut b = PathSetBuilder::default();
        b.insert("var/lib/dpkg", false);
        b.insert("var/lib/dpkg", true);
        let set = b.finish();
        assert!(!set.replaces("var/lib/dpkg/status"));
        assert!(set.replaces("var/lib/dpkg"));
        let json = serde_json::to_string(&set).unwrap();
        let back: PathSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
        assert!(serde_json::from_str::<PathSet>("\"AAEC\"").is_err());
    }
}
