//! The CLI's side of the admin socket: one HTTP/1.1 request per connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{SbomFormat, encode_segment};
use crate::policy::{Decision, Verdict};
use crate::store::HistoryEvent;

/// Largest answer accepted (an SBOM of a big image is the largest thing we fetch).
const MAX_RESPONSE_BYTES: usize = 512 << 20;
/// A daemon that does not answer within this is reported as hung, not waited on forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    #[error(
        "pullwarden is not running (nothing listening on the admin socket {}: {source}); start it with `systemctl start pullwarden` or pass --admin",
        socket.display()
    )]
    NotRunning {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "permission denied on the admin socket {}: run as root or as a member of the configured server.admin_group",
        socket.display()
    )]
    SocketPermission { socket: PathBuf },
    #[error("connecting to the admin socket {}: {source}", socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to pullwarden on {}: {source}", socket.display())]
    Http {
        socket: PathBuf,
        source: hyper::Error,
    },
    #[error("pullwarden on {} did not answer within {:?}", socket.display(), REQUEST_TIMEOUT)]
    Timeout { socket: PathBuf },
    #[error("reading the answer from {}: {message}", socket.display())]
    Body { socket: PathBuf, message: String },
    /// 404: the image (or endpoint) is unknown to the daemon.
    #[error("{message}")]
    NotFound { message: String },
    /// 403 from the daemon's peer check.
    #[error("{message}")]
    Forbidden { message: String },
    #[error("pullwarden answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("pullwarden's answer is not the expected JSON: {source}")]
    Decode { source: serde_json::Error },
}

#[derive(Debug, Clone)]
pub struct AdminClient {
    socket: PathBuf,
}

impl AdminClient {
    pub fn new(socket: impl Into<PathBuf>) -> AdminClient {
        AdminClient {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub async fn verdicts(
        &self,
        decision: Option<Decision>,
    ) -> Result<Vec<Verdict>, AdminClientError> {
        let path = match decision {
            None => "/v1/verdicts".to_string(),
            Some(Decision::Allow) => "/v1/verdicts?decision=allow".to_string(),
            Some(Decision::Deny) => "/v1/verdicts?decision=deny".to_string(),
        };
        typed(self.request(Method::GET, &path).await?)
    }

    pub async fn verdict(&self, digest_or_ref: &str) -> Result<Verdict, AdminClientError> {
        let path = format!("/v1/verdict/{}", encode_segment(digest_or_ref));
        typed(self.request(Method::GET, &path).await?)
    }

    /// The verdict document with a `history` field added.
    pub async fn explain(&self, digest_or_ref: &str) -> Result<Value, AdminClientError> {
        let path = format!("/v1/explain/{}", encode_segment(digest_or_ref));
        self.request(Method::GET, &path).await
    }

    pub async fn history(&self, limit: usize) -> Result<Vec<HistoryEvent>, AdminClientError> {
        typed(
            self.request(Method::GET, &format!("/v1/history?limit={limit}"))
                .await?,
        )
    }

    /// `{"purged": N, "digest": "..."}`.
    pub async fn purge(&self, digest_or_ref: &str) -> Result<Value, AdminClientError> {
        let path = format!("/v1/purge/{}", encode_segment(digest_or_ref));
        self.request(Method::POST, &path).await
    }

    /// `{"purged": N}`.
    pub async fn purge_all(&self) -> Result<Value, AdminClientError> {
        self.request(Method::POST, "/v1/purge-all").await
    }

    /// The daemon's summary of the reloaded configuration.
    pub async fn reload(&self) -> Result<String, AdminClientError> {
        let v = self.request(Method::POST, "/v1/reload").await?;
        Ok(v.get("message")
            .and_then(Value::as_str)
            .unwrap_or("reloaded")
            .to_string())
    }

    /// Runs the daemon's doctor checks: a [`crate::doctor::Report`].
    pub async fn doctor(&self) -> Result<crate::doctor::Report, AdminClientError> {
        typed(self.request(Method::POST, "/v1/doctor").await?)
    }

    /// `pullwarden policy test`: the images on the node judged under the config file
    /// `config` (absolute path, read by the daemon); a
    /// [`crate::rescore::what_if::Report`] as JSON. A config the daemon cannot load is
    /// `Status { status: 422, .. }`.
    pub async fn policy_test(&self, config: &Path) -> Result<Value, AdminClientError> {
        let path = format!(
            "/v1/policy-test?config={}",
            encode_segment(&config.display().to_string())
        );
        self.request(Method::POST, &path).await
    }

    pub async fn status(&self) -> Result<Value, AdminClientError> {
        self.request(Method::GET, "/v1/status").await
    }

    pub async fn sbom(
        &self,
        digest_or_ref: &str,
        format: SbomFormat,
    ) -> Result<Value, AdminClientError> {
        let path = format!(
            "/v1/sbom/{}?format={}",
            encode_segment(digest_or_ref),
            format.as_str()
        );
        self.request(Method::GET, &path).await
    }

    /// One request; a non-2xx answer becomes an error carrying the daemon's message.
    pub async fn request(&self, method: Method, path: &str) -> Result<Value, AdminClientError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.request_inner(method, path)).await {
            Ok(r) => r,
            Err(_) => Err(AdminClientError::Timeout {
                socket: self.socket.clone(),
            }),
        }
    }

    async fn request_inner(&self, method: Method, path: &str) -> Result<Value, AdminClientError> {
        let socket = || self.socket.clone();
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    AdminClientError::NotRunning {
                        socket: socket(),
                        source,
                    }
                }
                std::io::ErrorKind::PermissionDenied => {
                    AdminClientError::SocketPermission { socket: socket() }
                }
                _ => AdminClientError::Connect {
                    socket: socket(),
                    source,
                },
            })?;
        let http = |source| AdminClientError::Http {
            socket: socket(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "pullwarden")
            .body(Empty::<Bytes>::new())
            .map_err(|e| AdminClientError::Body {
                socket: socket(),
                message: e.to_string(),
            })?;
        let resp = sender.send_request(req).await.map_err(http)?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| AdminClientError::Body {
                socket: socket(),
                message: e.to_string(),
            })?
            .to_bytes();
        let value: Result<Value, _> = serde_json::from_slice(&body);
        if status.is_success() {
            return value.map_err(|source| AdminClientError::Decode { source });
        }
        let message = value
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(match status {
            StatusCode::NOT_FOUND => AdminClientError::NotFound { message },
            StatusCode::FORBIDDEN => AdminClientError::Forbidden { message },
            s => AdminClientError::Status {
                status: s.as_u16(),
                message,
            },
        })
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, AdminClientError> {
    serde_json::from_value(v).map_err(|source| AdminClientError::Decode { source })
}
