//! What loading a config's files produces, as plain data: the bytes of each file read
//! once (the policy snapshot's loader reads and checks them) and the load's warnings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A sigstore `trusted_root.json` larger than this is refused (the public-good one is
/// about 10 KiB; a private deployment with many CAs and logs stays far below).
pub const MAX_TRUST_ROOT_BYTES: u64 = 4 << 20;
/// A denylist larger than this is refused: 64 MiB is about 900,000 digests.
pub const MAX_DENYLIST_BYTES: u64 = 64 << 20;

/// What loading the config's files found that is worth saying but not fatal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    /// One line each, naming the key, e.g. "policy[0].signatures.keys[1]: … is the same
    /// key as keys[0] …; it counts as one signer".
    pub warnings: Vec<String>,
}

/// The contents of a policy's files, read once at load. Empty for a config that was
/// not checked (built in memory by tests): the policy snapshot then reads them, once.
#[derive(Debug, Default)]
pub struct PolicyFiles {
    bytes: BTreeMap<PathBuf, Arc<[u8]>>,
}

impl PolicyFiles {
    /// The bytes of `path` as read at load, if it was.
    pub fn get(&self, path: &Path) -> Option<Arc<[u8]>> {
        self.bytes.get(path).cloned()
    }

    /// Keeps `bytes` as the contents of `path` (the loader, once per file).
    pub fn insert(&mut self, path: PathBuf, bytes: Arc<[u8]>) {
        self.bytes.insert(path, bytes);
    }

    /// Whether the files were read at load.
    pub fn is_loaded(&self) -> bool {
        !self.bytes.is_empty()
    }
}
