//! A scripted containerd behind [`ImageService`], for flow tests without containerd: a
//! queue of expected calls, each with its answer. A call that is not the next one
//! expected is a surprise: it panics at once, naming the call and what was expected,
//! and [`ScriptedImages::assert_done`] panics again (a panic inside a spawned task may
//! have been turned into a value), as it does for expected calls never made.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use k8s_cri::v1::{
    Image, ImageStatusRequest, ImageStatusResponse, PullImageRequest, PullImageResponse,
};

use super::InterceptedCall;
use super::client::{BufferedResponse, CriError, ImageService};
use crate::digest::Digest;

/// One call containerd expects, with its answer.
#[derive(Debug, Clone)]
pub enum Expect {
    /// `PullImage` of `image` (as the kubelet named it). `Ok`: containerd then stores
    /// `stores` (name → digest); another code: containerd's refusal, nothing stored.
    Pull {
        image: String,
        stores: Option<(String, Digest)>,
        answer: tonic::Code,
    },
    /// `ImageStatus` of `image`, answered OK with `answer`.
    Status {
        image: String,
        answer: Option<Image>,
    },
    /// `RemoveImage` of the image stored as `name`.
    Remove { name: String },
}

impl Expect {
    /// A pull that succeeds and leaves `name → digest` in containerd.
    pub fn pull(image: &str, name: &str, digest: &Digest) -> Expect {
        Expect::Pull {
            image: image.to_string(),
            stores: Some((name.to_string(), digest.clone())),
            answer: tonic::Code::Ok,
        }
    }

    /// A pull containerd refuses with `code`.
    pub fn pull_refused(image: &str, code: tonic::Code) -> Expect {
        Expect::Pull {
            image: image.to_string(),
            stores: None,
            answer: code,
        }
    }

    pub fn status(image: &str, answer: Option<Image>) -> Expect {
        Expect::Status {
            image: image.to_string(),
            answer,
        }
    }

    pub fn remove(name: &str) -> Expect {
        Expect::Remove {
            name: name.to_string(),
        }
    }
}

/// See the module docs.
#[derive(Default)]
pub struct ScriptedImages {
    script: Mutex<VecDeque<Expect>>,
    surprises: Mutex<Vec<String>>,
    /// What containerd stores, name → digest: a scripted pull adds, a removal deletes.
    pub stored: Arc<Mutex<HashMap<String, Digest>>>,
}

impl ScriptedImages {
    pub fn new(script: impl IntoIterator<Item = Expect>) -> ScriptedImages {
        ScriptedImages {
            script: Mutex::new(script.into_iter().collect()),
            ..Default::default()
        }
    }

    /// Adds calls to the end of the script.
    pub fn expect(&self, more: impl IntoIterator<Item = Expect>) {
        self.lock_script().extend(more);
    }

    /// Panics on any surprise so far and on expected calls never made.
    pub fn assert_done(&self) {
        let surprises = self.surprises.lock().unwrap_or_else(|p| p.into_inner());
        assert!(surprises.is_empty(), "unexpected calls: {surprises:?}");
        let left = self.lock_script();
        assert!(left.is_empty(), "expected calls never made: {left:?}");
    }

    fn lock_script(&self) -> std::sync::MutexGuard<'_, VecDeque<Expect>> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self) -> std::sync::MutexGuard<'_, HashMap<String, Digest>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next expected call when `matches` it, else a loud surprise.
    fn next(&self, call: &str, matches: impl Fn(&Expect) -> bool) -> Expect {
        let mut script = self.lock_script();
        match script.front() {
            Some(e) if matches(e) => script.pop_front().unwrap(),
            next => {
                let what = format!("{call} (expected {next:?})");
                self.surprises
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(what.clone());
                panic!("scripted containerd: unexpected call {what}");
            }
        }
    }
}

fn content_type() -> http::HeaderValue {
    http::HeaderValue::from_static("application/grpc")
}

fn refused(code: tonic::Code) -> BufferedResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, content_type());
    headers.insert("grpc-status", http::HeaderValue::from(code as i32));
    headers.insert(
        "grpc-message",
        http::HeaderValue::from_static("scripted refusal"),
    );
    BufferedResponse {
        headers,
        body: Bytes::new(),
        trailers: None,
    }
}

#[async_trait]
impl ImageService for ScriptedImages {
    async fn forward(&self, call: &InterceptedCall) -> Result<BufferedResponse, CriError> {
        let path = call.parts.uri.path().to_string();
        if path.ends_with("/PullImage") {
            let image = call
                .decode::<PullImageRequest>("PullImage")?
                .image
                .map(|i| i.image)
                .unwrap_or_default();
            let Expect::Pull { stores, answer, .. } = self.next(
                &format!("PullImage {image}"),
                |e| matches!(e, Expect::Pull { image: i, .. } if *i == image),
            ) else {
                unreachable!()
            };
            if answer != tonic::Code::Ok {
                return Ok(refused(answer));
            }
            let image_ref = match stores {
                Some((name, digest)) => {
                    self.store().insert(name, digest.clone());
                    digest.to_string()
                }
                None => String::new(),
            };
            return Ok(BufferedResponse::ok(
                &PullImageResponse { image_ref },
                content_type(),
            ));
        }
        if path.ends_with("/ImageStatus") {
            let image = call
                .decode::<ImageStatusRequest>("ImageStatus")?
                .image
                .map(|i| i.image)
                .unwrap_or_default();
            let Expect::Status { answer, .. } = self.next(
                &format!("ImageStatus {image}"),
                |e| matches!(e, Expect::Status { image: i, .. } if *i == image),
            ) else {
                unreachable!()
            };
            return Ok(BufferedResponse::ok(
                &ImageStatusResponse {
                    image: answer,
                    info: Default::default(),
                },
                content_type(),
            ));
        }
        self.next(&format!("{path} (not scriptable)"), |_| false);
        unreachable!()
    }

    async fn remove_image(&self, name: &str) -> Result<(), CriError> {
        self.next(
            &format!("RemoveImage {name}"),
            |e| matches!(e, Expect::Remove { name: n } if n == name),
        );
        self.store().remove(name);
        Ok(())
    }
}

/// An intercepted call carrying `message` on `path`, as the proxy hands it to the gate.
pub fn call(path: &str, message: &impl prost::Message) -> InterceptedCall {
    let mut req = http::Request::new(());
    *req.method_mut() = http::Method::POST;
    if let Ok(uri) = format!("http://localhost{path}").parse() {
        *req.uri_mut() = uri;
    }
    let (parts, ()) = req.into_parts();
    InterceptedCall {
        parts,
        body: super::grpc::frame(&message.encode_to_vec()),
    }
}
