//! The gate's seams: one small trait per outside part, so the pull flow can be tested
//! with fakes and run with the real registry, scanner, store and containerd.

use async_trait::async_trait;
use bytes::Bytes;

use super::GateError;
use crate::config::Policy;
use crate::containerd::Target;
use crate::digest::Digest;
use crate::policy::Verdict;
use crate::policy::evaluate::JudgedScan;
use crate::reference::Reference;
use crate::report::SignatureReport;

/// What the registry says a reference is, before anything is pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The digest the reference resolves to (an index for multi-platform images).
    pub digest: Digest,
    /// The manifest for this node's platform when `digest` is an index.
    pub platform_digest: Option<Digest>,
}

/// Registry side: resolve references and verify signatures, with the pull's own
/// credentials (the CRI `AuthConfig`).
#[async_trait]
pub trait SignatureSource: Send + Sync {
    async fn resolve(
        &self,
        reference: &Reference,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<ResolvedImage, GateError>;

    /// `Err` only for infrastructure failures; a failed verification is a report.
    async fn verify(
        &self,
        policy: &Policy,
        reference: &Reference,
        image: &ResolvedImage,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<SignatureReport, GateError>;
}

/// Scans an image that containerd has stored, and judges it against the policy.
#[async_trait]
pub trait ImageScanner: Send + Sync {
    async fn scan(&self, policy: &Policy, target: &Target) -> Result<JudgedScan, GateError>;

    /// Version of the vulnerability database the scan matches against (part of the key).
    fn db_version(&self) -> String;
}

/// The verdict cache key (the store's own).
pub use crate::store::VerdictKey;

/// One decision event for the history and the audit log.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DecisionEvent {
    pub at: String,
    pub reference: String,
    pub digest: String,
    pub policy: String,
    pub mode: String,
    pub decision: String,
    /// `evaluated`, `cached`, `shared` (joined a concurrent evaluation) or `error`.
    pub how: String,
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// Where verdicts live. Synchronous: `get` must be quick (it runs on the async thread);
/// `put` may block (it runs on the blocking pool).
pub trait VerdictCache: Send + Sync {
    fn get(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError>;
    fn put(&self, key: &VerdictKey, verdict: &Verdict) -> Result<(), GateError>;
    fn record(&self, event: &DecisionEvent);
}

/// containerd operations the flow needs beyond forwarding CRI calls.
#[async_trait]
pub trait ImageStore: Send + Sync {
    async fn target(&self, name: &str) -> Result<Option<Target>, GateError>;
}

/// A complete gRPC response, buffered so concurrent callers can share it.
#[derive(Debug, Clone)]
pub struct BufferedResponse {
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub trailers: Option<http::HeaderMap>,
}

impl BufferedResponse {
    pub fn code(&self) -> tonic::Code {
        crate::cri::grpc::grpc_code(&self.headers, self.trailers.as_ref())
    }

    pub fn to_response(&self) -> http::Response<crate::cri::BoxBody> {
        let mut resp = http::Response::new(crate::cri::grpc::full_body(
            self.body.clone(),
            self.trailers.clone(),
        ));
        *resp.headers_mut() = self.headers.clone();
        resp
    }
}
