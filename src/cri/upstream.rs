//! The HTTP/2 connection to containerd's socket. One multiplexed connection, opened on
//! first use and re-opened after it breaks, so a containerd restart heals by itself.
//! (The `h2` crate directly rather than a tonic `Channel`: the channel rewrites the
//! `user-agent` header, and the proxy must pass metadata through untouched; see
//! `relay.rs` for why not hyper's client either.)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body as _;

use super::io::UnixIo;
use super::relay::{self, RecvBody};
use super::wait::busy_wait;
use super::{BoxBody, ProxyError};

pub struct Upstream {
    path: PathBuf,
    busy_poll: Duration,
    conn: std::sync::Mutex<Option<Conn>>,
    /// Serialises (re)connecting, so a burst of calls after a break opens one connection.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Conn {
    sender: h2::client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Long enough for containerd to answer every quick call (ImageStatus and ListImages
/// take 0.1 to 1 ms), short enough that a PullImage costs nothing noticeable.
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_millis(2);

impl Upstream {
    pub fn new(path: &Path) -> Upstream {
        Upstream {
            path: path.to_path_buf(),
            busy_poll: DEFAULT_BUSY_POLL,
            conn: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// How long a call waits for containerd's answer by polling before it lets the
    /// How long a call in flight polls before the runtime may sleep (`server.upstream_busy_poll`).
    pub fn busy_poll(&self) -> Duration {
        self.busy_poll
    }

    /// runtime sleep (zero: never polls). See [`busy_wait`].
    pub fn with_busy_poll(mut self, busy_poll: Duration) -> Upstream {
        self.busy_poll = busy_poll;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn live(&self) -> Option<Conn> {
        let guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|c| !c.closed.load(Ordering::Acquire))
            .cloned()
    }

    async fn connection(&self) -> Result<Conn, ProxyError> {
        if let Some(c) = self.live() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.live() {
            return Ok(c);
        }
        let unreachable = |reason: String| ProxyError::UpstreamUnreachable {
            socket: self.path.clone(),
            reason,
        };
        let io = tokio::time::timeout(CONNECT_TIMEOUT, UnixIo::connect(&self.path))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let (sender, connection) = h2::client::Builder::new()
            // Large windows: ListImages/ListContainers answers can be megabytes.
            .initial_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .max_header_list_size(super::server::MAX_HEADER_LIST)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| unreachable(format!("HTTP/2 handshake failed: {e}")))?;
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        let socket = self.path.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(socket = %socket.display(), error = %e, "upstream connection closed");
            }
            flag.store(true, Ordering::Release);
        });
        let conn = Conn { sender, closed };
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Sends one request upstream and returns the response head with its streaming body.
    pub async fn send(
        &self,
        req: http::Request<BoxBody>,
    ) -> Result<http::Response<RecvBody>, ProxyError> {
        // A connection that containerd closed or sent GOAWAY on is noticed here, before
        // anything of this call was sent, and replaced once.
        let mut conn = self.connection().await?;
        let mut sender = match conn.sender.clone().ready().await {
            Ok(s) => s,
            Err(_) => {
                conn.closed.store(true, Ordering::Release);
                conn = self.connection().await?;
                conn.sender.clone().ready().await.map_err(|e| {
                    conn.closed.store(true, Ordering::Release);
                    self.broken(e)
                })?
            }
        };
        let broken = |e: h2::Error| {
            if e.is_io() || e.is_go_away() {
                conn.closed.store(true, Ordering::Release);
            }
            self.broken(e)
        };
        let (parts, body) = req.into_parts();
        let eos = body.is_end_stream();
        let (answer, send) = sender
            .send_request(http::Request::from_parts(parts, ()), eos)
            .map_err(broken)?;
        if !eos {
            relay::start_pump(body, send).await;
        }
        let resp = busy_wait(answer, self.busy_poll).await.map_err(|e| {
            // containerd refusing this call (RST_STREAM before any answer) is its
            // answer, relayed as is; anything else means the connection broke.
            match e.reason() {
                Some(reason) if e.is_reset() && e.is_remote() => ProxyError::UpstreamReset {
                    socket: self.path.clone(),
                    reason,
                },
                _ => broken(e),
            }
        })?;
        Ok(resp.map(RecvBody::new))
    }

    fn broken(&self, e: h2::Error) -> ProxyError {
        ProxyError::UpstreamFailed {
            socket: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn an_unreachable_socket_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.sock");
        let up = Upstream::new(&path);
        let req = http::Request::builder()
            .uri("http://localhost/runtime.v1.RuntimeService/Version")
            .body(super::super::grpc::full_body(Bytes::new(), None))
            .unwrap();
        let err = up.send(req).await.unwrap_err().to_string();
        assert!(
            err.contains("missing.sock") && err.contains("unreachable"),
            "{err}"
        );
    }
}
