//! Registry failures, classified for `on_error` (outage or not) and for the hostile-content
//! counters.

use std::path::PathBuf;

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("registry {registry} is unreachable: {source}")]
    Unreachable {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {registry} timed out on {url}")]
    Timeout { registry: String, url: String },
    #[error("registry {registry} answered {status} (authentication required) for {url}")]
    Unauthorized {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("registry {registry} denied access ({status}) to {url}")]
    Forbidden {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("not found: {url}")]
    NotFound { url: String },
    #[error("registry {registry} failed with status {status} on {url}")]
    ServerError {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("unexpected status {status} on {url}")]
    UnexpectedStatus { url: String, status: u16 },
    #[error("{url} is larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: u64 },
    #[error("malformed response from {url}: {reason}")]
    Malformed { url: String, reason: String },
    #[error("{url}: content does not match digest {expected} (got {actual})")]
    DigestMismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("token endpoint {realm} failed: {reason}")]
    Token { realm: String, reason: String },
    #[error("registry auth file {path}: {reason}")]
    AuthFile { path: PathBuf, reason: String },
}

impl RegistryError {
    /// An outage, the only registry failure `on_error = "allow"` may let through: the
    /// registry unreachable, timing out, or failing with a 5xx or 429 (`ServerError`).
    /// Refusals (401/403), missing or malformed content and token failures are not.
    pub fn is_outage(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::ServerError { .. } => true,
            RegistryError::Client(_)
            | RegistryError::UnexpectedStatus { .. }
            | RegistryError::Unauthorized { .. }
            | RegistryError::Forbidden { .. }
            | RegistryError::Token { .. }
            | RegistryError::AuthFile { .. }
            | RegistryError::NotFound { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::Malformed { .. }
            | RegistryError::DigestMismatch { .. } => false,
        }
    }

    /// True for content a hostile or broken registry served (not a network fault).
    pub fn is_bad_content(&self) -> bool {
        matches!(
            self,
            RegistryError::TooLarge { .. }
                | RegistryError::Malformed { .. }
                | RegistryError::DigestMismatch { .. }
        )
    }
}
