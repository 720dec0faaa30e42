//! CRI gRPC server on the unix socket. Every call of `runtime.v1.ImageService` and
//! `runtime.v1.RuntimeService` (and anything else a newer kubelet sends) is forwarded
//! to containerd as HTTP/2 frames, without decoding: status codes, messages, metadata
//! and unknown fields arrive unchanged. `PullImage` and `ImageStatus` are handed to an
//! [`ImageGate`], which decodes a copy of the request, decides, and answers with a
//! [`Reply`]; it reaches containerd through the typed seam of [`client`].

pub mod client;
#[cfg(test)]
pub mod fake;
pub mod grpc;
pub mod io;
pub mod relay;
pub mod server;
pub mod upstream;
pub mod wait;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use prost::Message;

pub use client::{BufferedResponse, CriError, ImageService, Reply, UpstreamImages};
pub use server::{BindError, bind_socket};
pub use upstream::Upstream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub const PULL_IMAGE: &str = "/runtime.v1.ImageService/PullImage";
pub const IMAGE_STATUS: &str = "/runtime.v1.ImageService/ImageStatus";
/// The same two calls under the CRI's older name, which containerd 1.6 and 1.7 still
/// serve (kubelets before 1.26 speak it): the messages are the same on the wire, and
/// a call under this name must meet the same gate.
pub const PULL_IMAGE_V1ALPHA2: &str = "/runtime.v1alpha2.ImageService/PullImage";
pub const IMAGE_STATUS_V1ALPHA2: &str = "/runtime.v1alpha2.ImageService/ImageStatus";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream containerd socket {} is unreachable: {reason}", socket.display())]
    UpstreamUnreachable { socket: PathBuf, reason: String },
    #[error("upstream containerd socket {} failed mid-call: {reason}", socket.display())]
    UpstreamFailed { socket: PathBuf, reason: String },
    /// containerd reset the call's stream before answering (a request head or message
    /// it refuses). The proxy resets the client's stream with the same reason.
    #[error("upstream containerd socket {} refused the call: stream reset with {reason:?}", socket.display())]
    UpstreamReset { socket: PathBuf, reason: h2::Reason },
    #[error("malformed gRPC frame: {0}")]
    BadFrame(&'static str),
    #[error("malformed {method} request: {reason}")]
    BadRequest {
        method: &'static str,
        reason: String,
    },
    #[error("reading the call body failed: {0}")]
    Body(String),
}

impl ProxyError {
    /// The one mapping from proxy failures to gRPC status codes (no `_` arm on purpose).
    pub fn to_status(&self) -> tonic::Status {
        let code = match self {
            ProxyError::UpstreamUnreachable { .. } => tonic::Code::Unavailable,
            ProxyError::UpstreamFailed { .. } => tonic::Code::Unavailable,
            ProxyError::UpstreamReset { reason, .. } => relay::reset_code(*reason),
            ProxyError::BadFrame(_) => tonic::Code::InvalidArgument,
            ProxyError::BadRequest { .. } => tonic::Code::InvalidArgument,
            ProxyError::Body(_) => tonic::Code::Cancelled,
        };
        tonic::Status::new(code, format!("pullwarden: {self}"))
    }
}

/// An intercepted unary call: the request head and its complete, still-encoded body.
#[derive(Debug)]
pub struct InterceptedCall {
    pub parts: http::request::Parts,
    /// The framed request exactly as the kubelet sent it.
    pub body: Bytes,
}

impl InterceptedCall {
    /// Decodes a copy of the message (the original bytes stay what is forwarded).
    pub fn decode<M: Message + Default>(&self, method: &'static str) -> Result<M, ProxyError> {
        let msg = grpc::single_message(&self.body)?;
        M::decode(msg).map_err(|e| ProxyError::BadRequest {
            method,
            reason: e.to_string(),
        })
    }

    /// The request to send upstream: same head, same bytes.
    pub fn into_request(self) -> http::Request<BoxBody> {
        http::Request::from_parts(self.parts, grpc::full_body(self.body, None))
    }

    pub fn clone_request(&self) -> http::Request<BoxBody> {
        let mut builder = http::Request::builder()
            .method(self.parts.method.clone())
            .uri(self.parts.uri.clone())
            .version(self.parts.version);
        if let Some(h) = builder.headers_mut() {
            *h = self.parts.headers.clone();
        }
        builder
            .body(grpc::full_body(self.body.clone(), None))
            .unwrap_or_else(|_| http::Request::new(grpc::full_body(Bytes::new(), None)))
    }
}

/// Decides intercepted calls (the daemon's [`crate::gate::Gate`] verifies and scans),
/// reaching containerd through `images`.
pub trait ImageGate: Send + Sync + 'static {
    fn pull_image(
        self: Arc<Self>,
        call: InterceptedCall,
        images: Arc<dyn ImageService>,
    ) -> BoxFuture<'static, Reply>;

    fn image_status(
        self: Arc<Self>,
        call: InterceptedCall,
        images: Arc<dyn ImageService>,
    ) -> BoxFuture<'static, Reply>;
}

/// Forwards one request upstream; upstream failures become gRPC `UNAVAILABLE`.
pub async fn forward(upstream: &Upstream, req: http::Request<BoxBody>) -> http::Response<BoxBody> {
    match upstream.send(absolute(req)).await {
        Ok(resp) => {
            let socket = upstream.path().to_path_buf();
            resp.map(|b| relay::EndsInStatus::new(b, socket).boxed_unsync())
        }
        Err(ProxyError::UpstreamReset { reason, .. }) => relay::reset_response(reason),
        Err(e) => {
            tracing::warn!(error = %e, "upstream call failed");
            grpc::status_response(e.to_status())
        }
    }
}

/// HTTP/2 needs `:scheme` and `:authority`; a request that came without them gets the
/// same defaults grpc clients use for unix sockets.
fn absolute(mut req: http::Request<BoxBody>) -> http::Request<BoxBody> {
    if req.uri().scheme().is_none() || req.uri().authority().is_none() {
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        if let Ok(uri) = format!("http://localhost{pq}").parse() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// The proxy service: routes intercepted methods to the gate, streams the rest.
#[derive(Clone)]
pub struct Proxy {
    upstream: Arc<Upstream>,
    /// The same upstream, as the gate's typed seam.
    images: Arc<dyn ImageService>,
    gate: Arc<dyn ImageGate>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Proxy {
    /// How long a client connection keeps polling for the client's next call after one
    /// arrived (the same budget as [`Upstream::busy_poll`]).
    pub fn linger(&self) -> std::time::Duration {
        self.upstream.busy_poll()
    }

    pub fn new(upstream: Arc<Upstream>, gate: Arc<dyn ImageGate>) -> Proxy {
        Proxy {
            images: Arc::new(UpstreamImages::new(upstream.clone())),
            upstream,
            gate,
            metrics: None,
        }
    }

    /// Counts every call and its latency in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Proxy {
        self.metrics = Some(metrics);
        self
    }

    pub(crate) fn record_call(
        &self,
        path: &str,
        code: Option<tonic::Code>,
        took: std::time::Duration,
    ) {
        if let Some(m) = &self.metrics {
            m.record_call(path, code, took);
        }
    }

    /// Notes a client connection from process `pid` (SO_PEERCRED); the guard marks its end.
    pub(crate) fn peer(&self, pid: Option<i32>) -> Option<crate::metrics::PeerGuard> {
        self.metrics.as_ref().map(|m| m.cri_peer(pid))
    }

    pub async fn handle(&self, req: http::Request<BoxBody>) -> http::Response<BoxBody> {
        let path = req.uri().path();
        let is_pull = path == PULL_IMAGE || path == PULL_IMAGE_V1ALPHA2;
        let intercepted = is_pull || path == IMAGE_STATUS || path == IMAGE_STATUS_V1ALPHA2;
        if !intercepted {
            return forward(&self.upstream, req).await;
        }
        // The gate sends (clones of) this request upstream itself: give it the scheme
        // and authority HTTP/2 needs now, whatever the client sent.
        let (parts, body) = absolute(req).into_parts();
        let body = match grpc::collect_limited(body, grpc::MAX_INSPECTED_MESSAGE).await {
            Ok((data, _)) => data,
            Err(e) => return grpc::status_response(e.to_status()),
        };
        let call = InterceptedCall { parts, body };
        let gate = self.gate.clone();
        let images = self.images.clone();
        let reply = if is_pull {
            gate.pull_image(call, images).await
        } else {
            gate.image_status(call, images).await
        };
        match reply {
            Reply::Relay(call) => forward(&self.upstream, call.into_request()).await,
            Reply::Answer(resp) => resp.to_response(),
            Reply::Status(status) => grpc::status_response(status),
            Reply::Reset(reason) => relay::reset_response(reason),
        }
    }
}
