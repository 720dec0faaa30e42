//! Moving bodies between HTTP/2 streams (the `h2` crate's halves) and `http_body`
//! bodies, the type the gate works with.
//!
//! Written against `h2` rather than through hyper's connection layer so that the
//! frames of a call that are already here leave in one write: a unary request goes to
//! containerd as HEADERS+DATA in one `writev`, a unary answer goes back as
//! HEADERS+DATA+trailers in one. hyper waits for flow-control capacity before every
//! chunk, which splits each of them in two writes and wakes the peer twice.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;

use super::{BoxBody, BoxError};

/// An incoming HTTP/2 stream as an `http_body::Body`. Receive capacity is released as
/// each chunk is handed on (the pump takes the next chunk only once the previous one
/// was accepted), so a slow reader on the other side holds back the sender.
#[derive(Debug)]
pub struct RecvBody {
    inner: h2::RecvStream,
    data_done: bool,
}

impl RecvBody {
    pub fn new(inner: h2::RecvStream) -> RecvBody {
        RecvBody {
            inner,
            data_done: false,
        }
    }

    pub fn boxed(inner: h2::RecvStream) -> BoxBody {
        RecvBody::new(inner)
            .map_err(|e| Box::new(e) as BoxError)
            .boxed_unsync()
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match self.inner.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let _ = self.inner.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => self.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match self.inner.poll_trailers(cx) {
            Poll::Ready(Ok(Some(t))) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// Why a pump stopped early.
#[derive(Debug)]
pub enum PumpError {
    /// The body we read from failed; the stream we write to was reset.
    Source(BoxError),
    /// The stream we write to went away (peer reset or connection gone).
    Sink(h2::Error),
}

/// Copies `body` into `send`, ending the stream, and returns the trailers' gRPC status
/// if the body ended with trailers. Frames that are ready now are handed to h2 without
/// yielding, so they are flushed together; only later chunks wait for flow-control
/// capacity, which bounds what is buffered to one chunk per stream.
pub async fn pump(
    body: BoxBody,
    mut send: h2::SendStream<Bytes>,
) -> Result<Option<tonic::Code>, PumpError> {
    let mut body = std::pin::pin!(body);
    let mut first = true;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                send.send_reset(h2::Reason::INTERNAL_ERROR);
                return Err(PumpError::Source(e));
            }
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                if !first {
                    wait_capacity(&mut send, data.len()).await?;
                }
                first = false;
                let eos = body.is_end_stream();
                send.send_data(data, eos).map_err(PumpError::Sink)?;
                if eos {
                    return Ok(None);
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            let code = super::grpc::grpc_code(&trailers, None);
            send.send_trailers(trailers).map_err(PumpError::Sink)?;
            return Ok(Some(code));
        }
    }
    send.send_data(Bytes::new(), true)
        .map_err(PumpError::Sink)?;
    Ok(None)
}

async fn wait_capacity(send: &mut h2::SendStream<Bytes>, want: usize) -> Result<(), PumpError> {
    if want == 0 {
        return Ok(());
    }
    send.reserve_capacity(want);
    while send.capacity() == 0 {
        match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(PumpError::Sink(e)),
            None => {
                return Err(PumpError::Sink(h2::Error::from(h2::Reason::STREAM_CLOSED)));
            }
        }
    }
    Ok(())
}

/// An answer that is an HTTP/2 stream reset rather than a response: what containerd
/// sent for a call it refused, relayed with the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetStream(pub h2::Reason);

/// A response that [`respond`] turns into RST_STREAM with `reason`.
pub fn reset_response(reason: h2::Reason) -> http::Response<BoxBody> {
    let mut resp = http::Response::new(super::grpc::full_body(Bytes::new(), None));
    resp.extensions_mut().insert(ResetStream(reason));
    resp
}

/// The gRPC status a client reports for a stream reset with `reason` (the gRPC
/// HTTP/2 spec's table: `PROTOCOL_ERROR` and most others are `INTERNAL`).
pub fn reset_code(reason: h2::Reason) -> tonic::Code {
    match reason {
        h2::Reason::NO_ERROR | h2::Reason::REFUSED_STREAM => tonic::Code::Unavailable,
        h2::Reason::CANCEL => tonic::Code::Cancelled,
        h2::Reason::ENHANCE_YOUR_CALM => tonic::Code::ResourceExhausted,
        h2::Reason::INADEQUATE_SECURITY => tonic::Code::PermissionDenied,
        _ => tonic::Code::Internal,
    }
}

/// Sends `resp` on `respond`: the head, then the body through [`pump`]. Returns the
/// gRPC status the answer carried (`None`: cut short before it was sent). A response
/// marked [`ResetStream`] resets the stream instead.
pub async fn respond(
    mut respond: h2::server::SendResponse<Bytes>,
    resp: http::Response<BoxBody>,
) -> Option<tonic::Code> {
    if let Some(ResetStream(reason)) = resp.extensions().get::<ResetStream>() {
        respond.send_reset(*reason);
        return Some(reset_code(*reason));
    }
    let (parts, body) = resp.into_parts();
    let eos = body.is_end_stream();
    let in_head = parts
        .headers
        .contains_key("grpc-status")
        .then(|| super::grpc::grpc_code(&parts.headers, None));
    let send = match respond.send_response(http::Response::from_parts(parts, ()), eos) {
        Ok(send) => send,
        Err(e) => {
            tracing::debug!(error = %e, "CRI client stream closed before the answer");
            return None;
        }
    };
    if eos {
        return in_head.or(Some(tonic::Code::Unknown));
    }
    match pump(body, send).await {
        Ok(code) => code.or(in_head).or(Some(tonic::Code::Unknown)),
        Err(e) => {
            tracing::debug!(error = ?e, "answer to the CRI client cut short");
            None
        }
    }
}

/// Starts [`pump`] for a request body: polled once right here, so a body that is
/// already complete (every unary call) is queued before the caller yields, and spawned
/// only if it has to wait.
pub async fn start_pump(body: BoxBody, send: h2::SendStream<Bytes>) {
    let mut fut = Box::pin(pump(body, send));
    match futures::poll!(fut.as_mut()) {
        Poll::Ready(Ok(_)) => {}
        Poll::Ready(Err(e)) => tracing::debug!(error = ?e, "request body to containerd cut short"),
        Poll::Pending => {
            tokio::spawn(async move {
                if let Err(e) = fut.await {
                    tracing::debug!(error = ?e, "request body to containerd cut short");
                }
            });
        }
    }
}

/// A response body from containerd that, if the upstream fails mid-stream, ends with
/// gRPC trailers saying so (`UNAVAILABLE`, naming the socket) instead of a bare HTTP/2
/// reset, so the kubelet gets a status it understands.
pub struct EndsInStatus {
    inner: RecvBody,
    socket: std::path::PathBuf,
    done: bool,
}

impl EndsInStatus {
    pub fn new(inner: RecvBody, socket: std::path::PathBuf) -> EndsInStatus {
        EndsInStatus {
            inner,
            socket,
            done: false,
        }
    }
}

impl http_body::Body for EndsInStatus {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                let status = tonic::Status::unavailable(format!(
                    "pullwarden: upstream containerd socket {} failed mid-call: {e}",
                    self.socket.display()
                ));
                let mut trailers = http::HeaderMap::new();
                match status.add_header(&mut trailers) {
                    Ok(()) => Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers)))),
                    Err(_) => Poll::Ready(Some(Err(Box::new(e)))),
                }
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            other => other.map(|o| o.map(|r| r.map_err(|e| Box::new(e) as super::BoxError))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_resets_map_to_the_codes_clients_report() {
        assert_eq!(
            reset_code(h2::Reason::PROTOCOL_ERROR),
            tonic::Code::Internal
        );
        assert_eq!(
            reset_code(h2::Reason::INTERNAL_ERROR),
            tonic::Code::Internal
        );
        assert_eq!(
            reset_code(h2::Reason::REFUSED_STREAM),
            tonic::Code::Unavailable
        );
        assert_eq!(reset_code(h2::Reason::CANCEL), tonic::Code::Cancelled);
    }
}
