//! A tiny scripted HTTP registry on 127.0.0.1 for what the real registry will not do:
//! the OCI referrers API (distribution 2.8 lacks it), hostile answers (endless or
//! lying bodies, junk), and bearer-token auth.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Clone)]
pub enum Route {
    /// status, content type, body
    Body(u16, String, Vec<u8>),
    /// 200 with a body that never ends (no Content-Length).
    Endless(String),
    /// 200 claiming a huge Content-Length.
    HugeLength(String),
}

#[derive(Clone, Default)]
pub struct Routes {
    pub map: HashMap<String, Route>,
    /// When set, every /v2/ path needs `Authorization: Bearer <token>`; the token is
    /// handed out at /token to basic `user:password`.
    pub bearer: Option<(String, String, String)>,
}

pub struct FakeRegistry {
    pub addr: String,
    pub routes: Arc<Mutex<Routes>>,
}

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

impl FakeRegistry {
    pub async fn start() -> FakeRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let routes = Arc::new(Mutex::new(Routes::default()));
        let r = routes.clone();
        let a = addr.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let r = r.clone();
                let a = a.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let r = r.clone();
                        let a = a.clone();
                        async move { Ok::<_, Infallible>(handle(&r, &a, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeRegistry { addr, routes }
    }

    pub fn route(&self, path: &str, route: Route) {
        self.routes
            .lock()
            .unwrap()
            .map
            .insert(path.to_string(), route);
    }

    pub fn json(&self, path: &str, content_type: &str, body: &[u8]) {
        self.route(
            path,
            Route::Body(200, content_type.to_string(), body.to_vec()),
        );
    }
}

fn handle(
    routes: &Mutex<Routes>,
    addr: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let routes = routes.lock().unwrap().clone();
    let path = req.uri().path().to_string();
    if let Some((user, pass, token)) = &routes.bearer {
        use base64::Engine as _;
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if path == "/token" {
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            if auth != want {
                return Response::builder().status(401).body(full("")).unwrap();
            }
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(full(format!(r#"{{"token":"{token}","expires_in":300}}"#)))
                .unwrap();
        }
        if auth != format!("Bearer {token}") {
            return Response::builder()
                .status(401)
                .header(
                    "www-authenticate",
                    format!(r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:x:pull""#),
                )
                .body(full(""))
                .unwrap();
        }
    }
    let head = req.method() == hyper::Method::HEAD;
    match routes.map.get(&path) {
        None => Response::builder().status(404).body(full("")).unwrap(),
        Some(Route::Body(status, ct, body)) => Response::builder()
            .status(*status)
            .header("content-type", ct)
            .body(if head { full("") } else { full(body.clone()) })
            .unwrap(),
        Some(Route::Endless(ct)) => {
            let chunk = Bytes::from(vec![b' '; 64 << 10]);
            let stream = futures::stream::repeat_with(move || {
                Ok::<_, Infallible>(Frame::data(chunk.clone()))
            });
            Response::builder()
                .status(200)
                .header("content-type", ct)
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
        Some(Route::HugeLength(ct)) => Response::builder()
            .status(200)
            .header("content-type", ct)
            .header("content-length", "1099511627776")
            // A body of unknown size, so hyper sends the lying header as is.
            .body(BodyExt::boxed(StreamBody::new(
                futures::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                    b"{}",
                )))])
                .chain(futures::stream::pending()),
            )))
            .unwrap(),
    }
}
