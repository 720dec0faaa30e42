//! The admin socket's HTTP/1.1 server: peer check per connection, routing, and the
//! translation of store and backend answers into JSON responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::UnixListener;

use super::{AdminBackend, BackendError, PeerAccess, SbomFormat, decode_segment};
use crate::policy::Decision;
use crate::store::{StoreError, VerdictStore};

/// A client that opens a connection and sends nothing is dropped after this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// History events shown with `explain`.
const EXPLAIN_HISTORY: usize = 20;
/// Most history events one request may ask for.
const MAX_HISTORY: usize = 10_000;
/// The most admin connections open at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a draining admin server waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(5);

struct Api {
    store: Arc<VerdictStore>,
    backend: Arc<dyn AdminBackend>,
}

/// Serves the admin API on `listener` (bound with `cri::bind_socket`, 0660 and the
/// socket group) until `shutdown` resolves, then lets requests in flight finish.
/// Every connection's peer is checked against `access` first; a refused peer gets
/// 403 with an explanation on every request.
pub async fn serve<S>(
    listener: UnixListener,
    store: Arc<VerdictStore>,
    backend: Arc<dyn AdminBackend>,
    access: PeerAccess,
    shutdown: S,
) where
    S: std::future::Future<Output = ()>,
{
    let api = Arc::new(Api { store, backend });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    crate::accept::accept_loop(
        &listener,
        MAX_CONNECTIONS,
        "admin",
        shutdown,
        |stream, permit| {
            let refusal = match stream.peer_cred() {
                Ok(cred) => access.check(cred.uid(), cred.gid()).err().inspect(|_| {
                    tracing::warn!(
                        uid = cred.uid(),
                        gid = cred.gid(),
                        pid = ?cred.pid(),
                        "admin connection refused: not root and not in the socket group"
                    );
                }),
                Err(e) => Some(format!(
                    "permission denied: peer credentials unavailable: {e}"
                )),
            };
            let api = api.clone();
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                let refusal = refusal.clone();
                async move {
                    Ok::<_, Infallible>(match refusal {
                        Some(message) => error(StatusCode::FORBIDDEN, message),
                        None => api.handle(req).await,
                    })
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "admin connection ended with an error");
                }
                drop(permit);
            });
        },
    )
    .await;
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("admin drain timeout: closing remaining connections");
    }
}

fn respond(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    respond(status, &json!({ "error": message.into() }))
}

fn store_error(e: StoreError) -> Response<Full<Bytes>> {
    tracing::error!(error = %e, "admin request failed in the verdict store");
    error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn backend_error(e: BackendError) -> Response<Full<Bytes>> {
    match e {
        BackendError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
        BackendError::Failed(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        BackendError::Invalid(m) => error(StatusCode::UNPROCESSABLE_ENTITY, m),
    }
}

fn not_found(what: &str) -> Response<Full<Bytes>> {
    error(
        StatusCode::NOT_FOUND,
        format!("no verdict for {what} on this node (never pulled through pullwarden, or purged)"),
    )
}

/// The value of `name` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Result<Option<String>, String> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            return decode_segment(v)
                .map(Some)
                .ok_or_else(|| format!("query parameter {name} is not valid percent-encoding"));
        }
    }
    Ok(None)
}

/// Runs blocking store/backend work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response<Full<Bytes>>> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "admin request task failed");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the daemon log)",
        )
    })
}

impl Api {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let Some(rest) = path.strip_prefix("/v1/") else {
            return error(StatusCode::NOT_FOUND, format!("no such endpoint {path}"));
        };
        let (endpoint, arg) = match rest.split_once('/') {
            Some((e, a)) => (e, Some(a)),
            None => (rest, None),
        };
        let arg = match arg.map(decode_segment) {
            None => None,
            Some(Some(a)) if !a.is_empty() => Some(a),
            Some(Some(_)) => return error(StatusCode::BAD_REQUEST, "empty image argument"),
            Some(None) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "path is not valid percent-encoding",
                );
            }
        };
        let result = match (&method, endpoint, arg) {
            (&Method::GET, "verdicts", None) => self.verdicts(&query).await,
            (&Method::GET, "verdict", Some(a)) => self.verdict(a).await,
            (&Method::GET, "explain", Some(a)) => self.explain(a).await,
            (&Method::GET, "history", None) => self.history(&query).await,
            (&Method::POST, "purge", Some(a)) => self.purge(a).await,
            (&Method::POST, "purge-all", None) => self.purge_all().await,
            (&Method::POST, "reload", None) => self.reload().await,
            (&Method::GET, "status", None) => self.status().await,
            (&Method::POST, "doctor", None) => self.doctor().await,
            (&Method::GET, "sbom", Some(a)) => self.sbom(a, &query).await,
            (&Method::POST, "policy-test", None) => self.policy_test(&query).await,
            (
                _,
                "verdicts" | "verdict" | "explain" | "history" | "purge" | "purge-all" | "reload"
                | "status" | "sbom" | "doctor" | "policy-test",
                _,
            ) => Err(error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} {path} is not supported"),
            )),
            _ => Err(error(
                StatusCode::NOT_FOUND,
                format!("no such endpoint {path}"),
            )),
        };
        result.unwrap_or_else(|r| r)
    }

    async fn verdicts(&self, query: &str) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let decision = match query_param(query, "decision")
            .map_err(|m| error(StatusCode::BAD_REQUEST, m))?
            .as_deref()
        {
            None | Some("") => None,
            Some("allow") => Some(Decision::Allow),
            Some("deny") => Some(Decision::Deny),
            Some(other) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("decision {other:?} is not allow or deny"),
                ));
            }
        };
        let store = self.store.clone();
        let list = blocking(move || store.list(decision))
            .await?
            .map_err(store_error)?;
        Ok(respond(StatusCode::OK, &json!(list)))
    }

    async fn verdict(&self, what: String) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let store = self.store.clone();
        let q = what.clone();
        match blocking(move || store.latest(&q))
            .await?
            .map_err(store_error)?
        {
            Some(v) => Ok(respond(StatusCode::OK, &json!(v))),
            None => Err(not_found(&what)),
        }
    }

    async fn explain(&self, what: String) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let store = self.store.clone();
        let q = what.clone();
        let found = blocking(move || {
            let v = store.latest(&q)?;
            let h = match &v {
                Some(v) => store.history_of(&v.digest.to_string(), EXPLAIN_HISTORY)?,
                None => Vec::new(),
            };
            Ok::<_, StoreError>(v.map(|v| (v, h)))
        })
        .await?
        .map_err(store_error)?;
        let Some((verdict, history)) = found else {
            return Err(not_found(&what));
        };
        // The verdict's own fields at the top level, so `explain --json` is a verdict
        // document with the history added.
        let mut doc = json!(verdict);
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("history".into(), json!(history));
        }
        Ok(respond(StatusCode::OK, &doc))
    }

    async fn history(&self, query: &str) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let limit =
            match query_param(query, "limit").map_err(|m| error(StatusCode::BAD_REQUEST, m))? {
                None => 100,
                Some(l) => l.parse::<usize>().map_err(|_| {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("limit {l:?} is not a number"),
                    )
                })?,
            }
            .min(MAX_HISTORY);
        let store = self.store.clone();
        let h = blocking(move || store.history(limit))
            .await?
            .map_err(store_error)?;
        Ok(respond(StatusCode::OK, &json!(h)))
    }

    async fn purge(&self, what: String) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let store = self.store.clone();
        let q = what.clone();
        let (digest, n) = blocking(move || {
            let d = store.resolve(&q)?;
            let n = store.purge(&q)?;
            Ok::<_, StoreError>((d, n))
        })
        .await?
        .map_err(store_error)?;
        if n == 0 {
            return Err(not_found(&what));
        }
        tracing::info!(image = %what, verdicts = n, "verdicts purged through the admin API");
        Ok(respond(
            StatusCode::OK,
            &json!({ "purged": n, "digest": digest }),
        ))
    }

    async fn purge_all(&self) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let store = self.store.clone();
        let n = blocking(move || store.purge_all())
            .await?
            .map_err(store_error)?;
        tracing::info!(verdicts = n, "all verdicts purged through the admin API");
        Ok(respond(StatusCode::OK, &json!({ "purged": n })))
    }

    async fn reload(&self) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let backend = self.backend.clone();
        let message = blocking(move || backend.reload())
            .await?
            .map_err(backend_error)?;
        Ok(respond(StatusCode::OK, &json!({ "message": message })))
    }

    /// `POST /v1/policy-test?config=PATH`: every present image judged under the config
    /// file at PATH (absolute), nothing stored. 422 when that config does not load.
    async fn policy_test(
        &self,
        query: &str,
    ) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let Some(path) = query_param(query, "config")
            .map_err(|m| error(StatusCode::BAD_REQUEST, m))?
            .filter(|p| p.starts_with('/'))
        else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "policy-test needs config=ABSOLUTE_PATH",
            ));
        };
        let backend = self.backend.clone();
        let report = blocking(move || backend.policy_test(std::path::Path::new(&path)))
            .await?
            .map_err(backend_error)?;
        Ok(respond(StatusCode::OK, &report))
    }

    async fn doctor(&self) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let backend = self.backend.clone();
        let report = blocking(move || backend.doctor())
            .await?
            .map_err(backend_error)?;
        Ok(respond(StatusCode::OK, &report))
    }

    async fn status(&self) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let backend = self.backend.clone();
        let store = self.store.clone();
        let (daemon, stats) = blocking(move || (backend.status(), store.stats())).await?;
        let stats = stats.map_err(store_error)?;
        let mut doc = match daemon {
            Value::Object(o) => Value::Object(o),
            other => json!({ "daemon": other }),
        };
        if let Some(o) = doc.as_object_mut() {
            o.insert("store".into(), json!(stats));
        }
        Ok(respond(StatusCode::OK, &doc))
    }

    async fn sbom(
        &self,
        what: String,
        query: &str,
    ) -> Result<Response<Full<Bytes>>, Response<Full<Bytes>>> {
        let format = query_param(query, "format")
            .map_err(|m| error(StatusCode::BAD_REQUEST, m))?
            .unwrap_or_else(|| "cyclonedx-json".into())
            .parse::<SbomFormat>()
            .map_err(|m| error(StatusCode::BAD_REQUEST, m))?;
        let store = self.store.clone();
        let q = what.clone();
        let Some(digest) = blocking(move || store.resolve(&q))
            .await?
            .map_err(store_error)?
        else {
            return Err(not_found(&what));
        };
        let backend = self.backend.clone();
        let sbom = blocking(move || backend.sbom(&digest, format))
            .await?
            .map_err(backend_error)?;
        Ok(respond(StatusCode::OK, &sbom))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        assert_eq!(
            query_param("a=1&decision=deny", "decision"),
            Ok(Some("deny".into()))
        );
        assert_eq!(query_param("", "decision"), Ok(None));
        assert_eq!(
            query_param("format=spdx%2Djson", "format"),
            Ok(Some("spdx-json".into()))
        );
        assert!(query_param("limit=%zz", "limit").is_err());
        assert_eq!(query_param("flag", "flag"), Ok(Some(String::new())));
    }
}
