//! The typed seam between the gate and containerd's CRI image service: the gate asks
//! for "forward this call", "remove this image" and "the image is absent", and gets
//! back [`BufferedResponse`]s and [`Reply`]s; every gRPC frame, protobuf message and
//! HTTP body is built here, never in the gate. [`UpstreamImages`] is the real one (the
//! HTTP/2 connection to containerd); `fake.rs` beside it plays a scripted containerd
//! for the gate's flow tests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use k8s_cri::v1::{ImageSpec, ImageStatusResponse, RemoveImageRequest};
use prost::Message;

use super::{BoxBody, InterceptedCall, ProxyError, Upstream, grpc};

/// Largest answer of containerd's that is buffered whole (a PullImage or ImageStatus
/// answer is a few hundred bytes; this only bounds a hostile or broken upstream).
const MAX_BUFFERED_ANSWER: usize = 64 << 20;

/// How long containerd may take to remove a denied image (it deletes metadata; the
/// content goes with its garbage collection).
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(60);

/// containerd's CRI image service as the gate uses it. One per proxy; the calls it
/// forwards are the intercepted ones, sent on unchanged.
#[async_trait]
pub trait ImageService: Send + Sync {
    /// Sends (a copy of) `call` to containerd and buffers its whole answer, whatever its
    /// gRPC status: containerd's own refusals are answers, not errors.
    /// `Err`: containerd could not be asked, or reset the call ([`CriError::reset`]).
    async fn forward(&self, call: &InterceptedCall) -> Result<BufferedResponse, CriError>;

    /// `RemoveImage` of the image containerd stores as `name` (a `NotFound` counts as
    /// removed), bounded by [`REMOVE_TIMEOUT`]: our own call, so a frozen containerd
    /// cannot hold an evaluation and every pull that joined it.
    async fn remove_image(&self, name: &str) -> Result<(), CriError>;

    /// An OK `ImageStatus` answer without an image, shaped like containerd's answer
    /// `like` (its content type): the kubelet then pulls through us.
    fn image_absent(&self, like: &BufferedResponse) -> BufferedResponse {
        image_absent(like)
    }
}

/// Why a call to containerd's CRI failed (its gRPC refusals are answers, not these).
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    #[error(transparent)]
    Upstream(#[from] ProxyError),
    #[error("RemoveImage {name} did not answer within {after:?}")]
    RemoveTimeout { name: String, after: Duration },
    #[error("RemoveImage {name}: {code:?} {message}")]
    RemoveRefused {
        name: String,
        code: tonic::Code,
        message: String,
    },
}

impl CriError {
    /// containerd reset the call's stream: its own answer, to be relayed as a reset with
    /// the same reason.
    pub fn reset(&self) -> Option<h2::Reason> {
        match self {
            CriError::Upstream(ProxyError::UpstreamReset { reason, .. }) => Some(*reason),
            CriError::Upstream(_)
            | CriError::RemoveTimeout { .. }
            | CriError::RemoveRefused { .. } => None,
        }
    }
}

/// What an intercepted call is answered with; [`super::Proxy`] puts it on the wire.
#[derive(Debug)]
pub enum Reply {
    /// Stream the call to containerd and containerd's answer back, untouched.
    Relay(InterceptedCall),
    /// An answer of containerd's, buffered (shared by every caller of one evaluation).
    Answer(BufferedResponse),
    /// A gRPC status of our own (trailers-only).
    Status(tonic::Status),
    /// Reset the stream with this reason (containerd reset ours).
    Reset(h2::Reason),
}

/// A complete gRPC response, buffered so concurrent callers can share it.
#[derive(Debug, Clone)]
pub struct BufferedResponse {
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub trailers: Option<http::HeaderMap>,
}

impl BufferedResponse {
    /// The answer's `grpc-status` (trailers, or the head of a trailers-only answer).
    pub fn code(&self) -> tonic::Code {
        grpc::grpc_code(&self.headers, self.trailers.as_ref())
    }

    /// The answer's decoded `grpc-message`.
    pub fn message(&self) -> String {
        grpc::grpc_message(&self.headers, self.trailers.as_ref())
    }

    /// The image an `ImageStatus` answer describes; `None` when it names none or does
    /// not decode (then it is passed on as containerd sent it).
    pub fn status_image(&self) -> Option<k8s_cri::v1::Image> {
        grpc::single_message(&self.body)
            .ok()
            .and_then(|m| ImageStatusResponse::decode(m).ok())
            .and_then(|r| r.image)
    }

    pub fn to_response(&self) -> http::Response<BoxBody> {
        let mut resp =
            http::Response::new(grpc::full_body(self.body.clone(), self.trailers.clone()));
        *resp.headers_mut() = self.headers.clone();
        resp
    }

    /// An OK answer holding `message` (gRPC-framed, `grpc-status: 0` in the trailers).
    pub fn ok(message: &impl Message, content_type: http::HeaderValue) -> BufferedResponse {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, content_type);
        BufferedResponse {
            headers,
            body: grpc::frame(&message.encode_to_vec()),
            trailers: Some(trailers),
        }
    }
}

/// See [`ImageService::image_absent`].
pub fn image_absent(like: &BufferedResponse) -> BufferedResponse {
    let content_type = like
        .headers
        .get(http::header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(http::HeaderValue::from_static("application/grpc"));
    BufferedResponse::ok(&ImageStatusResponse::default(), content_type)
}

/// containerd's image service over the proxy's upstream connection.
pub struct UpstreamImages {
    upstream: Arc<Upstream>,
}

impl UpstreamImages {
    pub fn new(upstream: Arc<Upstream>) -> UpstreamImages {
        UpstreamImages { upstream }
    }

    /// Sends a request upstream and buffers the whole answer.
    async fn buffered(&self, req: http::Request<BoxBody>) -> Result<BufferedResponse, CriError> {
        let resp = self.upstream.send(req).await?;
        let (parts, body) = resp.into_parts();
        let (data, trailers) = grpc::collect_limited(body, MAX_BUFFERED_ANSWER).await?;
        Ok(BufferedResponse {
            headers: parts.headers,
            body: data,
            trailers,
        })
    }
}

#[async_trait]
impl ImageService for UpstreamImages {
    async fn forward(&self, call: &InterceptedCall) -> Result<BufferedResponse, CriError> {
        self.buffered(call.clone_request()).await
    }

    /// Through containerd's CRI (not its images API), so the CRI plugin's own image
    /// index stays in step.
    async fn remove_image(&self, name: &str) -> Result<(), CriError> {
        let msg = RemoveImageRequest {
            image: Some(ImageSpec {
                image: name.to_string(),
                ..Default::default()
            }),
        };
        // Built in place from constants: nothing here can fail.
        let mut req = http::Request::new(grpc::full_body(grpc::frame(&msg.encode_to_vec()), None));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() =
            http::Uri::from_static("http://localhost/runtime.v1.ImageService/RemoveImage");
        let headers = req.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        headers.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
        let resp = tokio::time::timeout(REMOVE_TIMEOUT, self.buffered(req))
            .await
            .map_err(|_| CriError::RemoveTimeout {
                name: name.to_string(),
                after: REMOVE_TIMEOUT,
            })??;
        match resp.code() {
            tonic::Code::Ok | tonic::Code::NotFound => Ok(()),
            code => Err(CriError::RemoveRefused {
                name: name.to_string(),
                code,
                message: resp.message(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_absent_answer_is_an_ok_image_status_without_an_image() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc+proto"),
        );
        let like = BufferedResponse {
            headers,
            body: Bytes::new(),
            trailers: None,
        };
        let absent = image_absent(&like);
        assert_eq!(absent.code(), tonic::Code::Ok);
        assert_eq!(
            absent.headers[http::header::CONTENT_TYPE],
            "application/grpc+proto"
        );
        assert_eq!(absent.status_image(), None);
        let msg = grpc::single_message(&absent.body).unwrap();
        assert_eq!(
            ImageStatusResponse::decode(msg).unwrap(),
            ImageStatusResponse::default()
        );
    }
}
