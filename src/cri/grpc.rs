//! The bits of gRPC-over-HTTP/2 the proxy needs by hand: length-prefixed message
//! frames and trailers-only error responses. Hand-written because forwarding must not
//! decode and re-encode messages (prost drops fields it does not know, see CRATES.md),
//! so tonic's codec layer cannot sit on the forwarding path.

// A parser of untrusted bytes: every index is checked (`get`), none may panic.
#![warn(clippy::indexing_slicing)]

use crate::percent::decode_lossy as percent_decode;
use bytes::{Buf, Bytes};
use http_body_util::BodyExt;

use super::{BoxBody, ProxyError};

/// Largest unary request we buffer to inspect (the gRPC default message limit).
pub const MAX_INSPECTED_MESSAGE: usize = 4 << 20;

/// Splits a buffered unary gRPC body into its single message.
/// Compressed messages (flag 1) are refused: the kubelet never compresses CRI calls
/// and an intercepted call must be readable to be judged.
pub fn single_message(body: &Bytes) -> Result<&[u8], ProxyError> {
    let (Some(&flag), Some(prefix), Some(message)) = (body.first(), body.get(1..5), body.get(5..))
    else {
        return Err(ProxyError::BadFrame(
            "message shorter than the 5-byte gRPC prefix",
        ));
    };
    if flag != 0 {
        return Err(ProxyError::BadFrame(
            "compressed or unknown-flag gRPC message on an intercepted call",
        ));
    }
    let prefix: [u8; 4] = prefix.try_into().unwrap_or([0xff; 4]);
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > MAX_INSPECTED_MESSAGE {
        return Err(ProxyError::BadFrame("gRPC message exceeds 4 MiB"));
    }
    if message.len() != len {
        return Err(ProxyError::BadFrame(
            "gRPC length prefix does not match the body (truncated or several messages)",
        ));
    }
    Ok(message)
}

/// Frames one message (uncompressed).
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    // The messages the proxy frames itself are a few hundred bytes; a length over the
    // 32-bit prefix would be a bug, framed as the largest length rather than wrapped.
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// Reads a request or response body to the end, refusing more than `limit` bytes.
/// Returns the data and the trailers (grpc-status lives there on responses).
pub async fn collect_limited<B>(
    body: B,
    limit: usize,
) -> Result<(Bytes, Option<http::HeaderMap>), ProxyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut data = bytes::BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ProxyError::Body(e.to_string()))?;
        match frame.into_data() {
            Ok(mut chunk) => {
                if data.len() + chunk.remaining() > limit + 5 {
                    return Err(ProxyError::BadFrame("gRPC message exceeds 4 MiB"));
                }
                data.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
            }
            Err(frame) => {
                if let Ok(t) = frame.into_trailers() {
                    trailers = Some(t);
                }
            }
        }
    }
    Ok((data.freeze(), trailers))
}

/// A trailers-only gRPC error response (what tonic and grpc-go send for an error
/// before any message): HTTP 200 with `grpc-status` and `grpc-message` as headers.
pub fn status_response(status: tonic::Status) -> http::Response<BoxBody> {
    status.into_http::<BoxBody>()
}

/// The `grpc-status` of a response, from trailers or (trailers-only) headers.
pub fn grpc_code(headers: &http::HeaderMap, trailers: Option<&http::HeaderMap>) -> tonic::Code {
    let read = |h: &http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .map(tonic::Code::from_i32)
    };
    trailers
        .and_then(read)
        .or_else(|| read(headers))
        .unwrap_or(tonic::Code::Unknown)
}

/// The decoded `grpc-message` of a response, for logs and error wrapping.
pub fn grpc_message(headers: &http::HeaderMap, trailers: Option<&http::HeaderMap>) -> String {
    let read = |h: &http::HeaderMap| h.get("grpc-message").map(|v| percent_decode(v.as_bytes()));
    trailers
        .and_then(read)
        .or_else(|| read(headers))
        .unwrap_or_default()
}

/// A body holding one buffered payload and optional trailers. It reports its end
/// exactly (`is_end_stream`), so the relay sends an answer with neither data nor
/// trailers as a single HEADERS frame with END_STREAM: a gRPC trailers-only answer
/// (containerd's errors) stays trailers-only, and the last DATA frame of an answer
/// without trailers carries END_STREAM itself.
pub fn full_body(data: Bytes, trailers: Option<http::HeaderMap>) -> BoxBody {
    BufferedBody {
        data: (!data.is_empty()).then_some(data),
        trailers,
    }
    .boxed_unsync()
}

struct BufferedBody {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl http_body::Body for BufferedBody {
    type Data = Bytes;
    type Error = super::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let frame = match self.data.take() {
            Some(data) => Some(http_body::Frame::data(data)),
            None => self.trailers.take().map(http_body::Frame::trailers),
        };
        std::task::Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_hostile_prefixes_fail() {
        let f = frame(b"hello");
        assert_eq!(single_message(&f).unwrap(), b"hello");
        let empty = frame(b"");
        assert_eq!(single_message(&empty).unwrap(), b"");
        let hostile: Vec<Bytes> = vec![
            Bytes::new(),
            Bytes::from_static(&[0, 0, 0]),
            Bytes::from_static(&[1, 0, 0, 0, 1, 7]), // compressed
            Bytes::from_static(&[0, 0, 0, 0, 9, 1, 2]), // truncated
            Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]), // absurd length
            Bytes::from_static(&[0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 0]), // trailing second frame
        ];
        for h in hostile {
            assert!(single_message(&h).is_err(), "{h:?}");
        }
    }

    #[tokio::test]
    async fn a_buffered_answer_ends_where_its_frames_end() {
        use http_body::Body;
        // Trailers-only (containerd's errors): nothing to send after the head, so the
        // relay ends the stream on the HEADERS frame.
        let empty = full_body(Bytes::new(), None);
        assert!(empty.is_end_stream());
        // Data and trailers come out in that order, and the body says when it is over.
        let mut t = http::HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        let mut body = full_body(frame(b"m"), Some(t.clone()));
        assert!(!body.is_end_stream());
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(data, frame(b"m"));
        assert!(!body.is_end_stream());
        let trailers = body
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_trailers()
            .unwrap();
        assert_eq!(trailers, t);
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
        // Data without trailers: over once the data is out (END_STREAM on the DATA frame).
        let mut body = full_body(frame(b"m"), None);
        body.frame().await.unwrap().unwrap();
        assert!(body.is_end_stream());
    }

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode(b"a%20b"), "a b");
        assert_eq!(percent_decode(b"100%"), "100%");
        assert_eq!(percent_decode(b"%zz%4"), "%zz%4");
    }
}
