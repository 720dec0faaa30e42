//! The HTTP/2 connection to containerd's socket. One multiplexed connection, opened on
//! first use and re-opened after it breaks, so a containerd restart heals by itself.
//! (hyper's low-level client rather than a tonic `Channel`: the channel rewrites the
//! `user-agent` header, and the proxy must pass metadata through untouched.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tokio::sync::Mutex;

use super::{BoxBody, ProxyError};

pub struct Upstream {
    path: PathBuf,
    sender: Mutex<Option<SendRequest<BoxBody>>>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Upstream {
    pub fn new(path: &Path) -> Upstream {
        Upstream {
            path: path.to_path_buf(),
            sender: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn sender(&self) -> Result<SendRequest<BoxBody>, ProxyError> {
        let mut guard = self.sender.lock().await;
        if let Some(s) = guard.as_ref()
            && !s.is_closed()
        {
            return Ok(s.clone());
        }
        *guard = None;
        let unreachable = |reason: String| ProxyError::UpstreamUnreachable {
            socket: self.path.clone(),
            reason,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(&self.path))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            // Large windows: ListImages/ListContainers answers can be megabytes.
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(8 << 20)
            .keep_alive_interval(Duration::from_secs(30))
            .timer(hyper_util::rt::TokioTimer::new())
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(format!("HTTP/2 handshake failed: {e}")))?;
        let socket = self.path.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(socket = %socket.display(), error = %e, "upstream connection closed");
            }
        });
        *guard = Some(sender.clone());
        Ok(sender)
    }

    /// Sends one request upstream and returns the response head with its streaming body.
    pub async fn send(
        &self,
        req: http::Request<BoxBody>,
    ) -> Result<http::Response<hyper::body::Incoming>, ProxyError> {
        let mut sender = self.sender().await?;
        sender.ready().await.map_err(|e| self.broken(e))?;
        sender.send_request(req).await.map_err(|e| self.broken(e))
    }

    fn broken(&self, e: hyper::Error) -> ProxyError {
        ProxyError::UpstreamFailed {
            socket: self.path.clone(),
            reason: e.to_string(),
        }
    }
}
