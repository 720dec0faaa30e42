//! The admin API: HTTP/1.1 + JSON on the second unix socket (`[server] admin`), for the
//! node CLI. Only root and members of `admin_group` may use it (checked per connection
//! with SO_PEERCRED, on top of the socket's 0660 mode). Also the Prometheus metrics.
//!
//! Endpoints (all answers are JSON; errors are `{"error": "..."}` with a 4xx/5xx status):
//! - `GET  /v1/verdicts[?decision=allow|deny]`  latest verdict of every image
//! - `GET  /v1/verdict/{digest-or-ref}`          one image's latest verdict
//! - `GET  /v1/explain/{digest-or-ref}`          the verdict plus its decision history
//! - `GET  /v1/history[?limit=N]`                recent decisions, newest first
//! - `POST /v1/purge/{digest-or-ref}`            forget an image's verdicts
//! - `POST /v1/purge-all`                        forget every verdict
//! - `POST /v1/reload`                           re-read config and keys
//! - `GET  /v1/status`                           daemon health plus store counts
//! - `POST /v1/doctor`                           run the doctor checks (live canary included)
//! - `GET  /v1/sbom/{digest-or-ref}?format=cyclonedx-json|spdx-json`
//!
//! Path segments are percent-encoded by the client (references hold `/`, `:` and `@`).

mod client;
mod peer;
mod server;

pub use crate::metrics::{
    FLEET_IGNORE_REASONS, FLEET_PUBLISH_RESULTS, Metrics, PeerGuard, REGISTRY_CLIENTS, VulnDbFacts,
    serve_metrics,
};
pub use client::{AdminClient, AdminClientError};
pub use peer::{PeerAccess, PeerError, peer_allowed};
pub use server::serve;

/// SBOM formats the daemon can produce (the one definition, beside the SBOM writers).
pub use crate::scan::sbom::SbomFormat;

/// Why the daemon could not do what the admin API asked of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Answered with 404 (e.g. no scan report kept for that image).
    #[error("{0}")]
    NotFound(String),
    /// Answered with 500 (e.g. the new config does not validate).
    #[error("{0}")]
    Failed(String),
    /// Answered with 422: the request names something unusable (a candidate config
    /// that does not load).
    #[error("{0}")]
    Invalid(String),
}

/// What the admin API needs from the daemon beyond the verdict store. The daemon
/// implements it; tests use a fake. Methods are called on a blocking thread
/// (`spawn_blocking`), so they may do file I/O.
pub trait AdminBackend: Send + Sync {
    /// Re-reads the config and keys; returns a one-line summary of what is now in force.
    fn reload(&self) -> Result<String, BackendError>;
    /// Health, upstream reachability, vulnerability database version, and whatever
    /// else the daemon knows. Should be a JSON object; the API adds a `store` field.
    fn status(&self) -> serde_json::Value;
    /// Runs the doctor checks (see [`crate::doctor`]); a [`crate::doctor::Report`] as JSON.
    fn doctor(&self) -> Result<serde_json::Value, BackendError> {
        Err(BackendError::NotFound(
            "this daemon does not run doctor checks".into(),
        ))
    }
    /// `pullwarden policy test`: the images present on the node judged under the config
    /// file `config` (a [`crate::rescore::what_if::Report`] as JSON).
    fn policy_test(&self, _config: &std::path::Path) -> Result<serde_json::Value, BackendError> {
        Err(BackendError::NotFound(
            "this daemon does not test policies".into(),
        ))
    }
    /// The SBOM of the image with manifest digest `digest`.
    fn sbom(&self, digest: &str, format: SbomFormat) -> Result<serde_json::Value, BackendError>;
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved characters and
/// `:`/`@` (both legal in a segment, and common in digests and references).
pub fn encode_segment(s: &str) -> String {
    crate::percent::encode_segment(s)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
pub use crate::percent::decode as decode_segment;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        for s in [
            "sha256:abc",
            "registry.example.com:5000/prod/app:v1",
            "nginx@sha256:00",
            "weird %/?#&= ü",
            "",
        ] {
            let e = encode_segment(s);
            assert!(
                !e.contains('/') && !e.contains('?') && !e.contains('#'),
                "{e}"
            );
            assert_eq!(decode_segment(&e).as_deref(), Some(s));
        }
        for bad in ["%", "%4", "%zz", "%ff%fe", "a%4g"] {
            assert_eq!(decode_segment(bad), None, "{bad}");
        }
    }

    #[test]
    fn sbom_formats() {
        for f in [SbomFormat::CyclonedxJson, SbomFormat::SpdxJson] {
            assert_eq!(f.as_str().parse::<SbomFormat>(), Ok(f));
        }
        assert!("cyclonedx-xml".parse::<SbomFormat>().is_err());
    }
}
