//! Shared test support: the environment started by `integration/test.sh` (a real
//! registry and a real containerd), and a small OCI image builder that writes
//! layouts and pushes to the registry, so fixtures need no external tool.

#![allow(dead_code)]

pub mod cri;
pub mod daemon;
pub mod fake_registry;
pub mod image;

use std::path::PathBuf;
use std::sync::OnceLock;

/// The real services started by `integration/services.sh` (via `integration/test.sh`).
pub struct ItEnv {
    pub dir: PathBuf,
    /// `127.0.0.1:PORT`, plain HTTP.
    pub registry: String,
    pub containerd_sock: PathBuf,
    pub containerd_root: PathBuf,
    /// A second containerd ("node B"), when the harness started one.
    pub containerd2_sock: Option<PathBuf>,
}

pub fn it_env() -> &'static ItEnv {
    it_env_opt().unwrap_or_else(|| {
        panic!(
            "PW_IT_* is not set: integration tests need the real registry and containerd; \
             run them with `bash integration/test.sh` (it starts both)"
        )
    })
}

/// The harness environment when the tests run under `integration/test.sh`.
pub fn it_env_opt() -> Option<&'static ItEnv> {
    static ENV: OnceLock<Option<ItEnv>> = OnceLock::new();
    ENV.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok();
        Some(ItEnv {
            dir: var("PW_IT_DIR")?.into(),
            registry: var("PW_IT_REGISTRY")?,
            containerd_sock: var("PW_IT_CONTAINERD_SOCK")?.into(),
            containerd_root: var("PW_IT_CONTAINERD_ROOT")?.into(),
            containerd2_sock: var("PW_IT_CONTAINERD2_SOCK").map(PathBuf::from),
        })
    })
    .as_ref()
}

/// A repository name unique to this test run, so tests never share images by accident.
pub fn unique_repo(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("it/{prefix}-{}-{n}", std::process::id())
}

/// Path of the built `pullwarden` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pullwarden"))
}
