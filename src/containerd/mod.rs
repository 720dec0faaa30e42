//! containerd API access for the gate: what an image name points to, content blobs
//! (path for mapping, gRPC read as the fallback), leases that hold content against
//! garbage collection while we scan, and where the content store lives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::{
    AddResourceRequest, CreateRequest as CreateLeaseRequest, DeleteRequest as DeleteLeaseRequest,
    GetImageRequest, ListImagesRequest, PluginsRequest, ReadContentRequest, Resource,
    content_client::ContentClient, images_client::ImagesClient,
    introspection_client::IntrospectionClient, leases_client::LeasesClient,
};
use tonic::transport::{Channel, Endpoint};

use crate::digest::Digest;

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("containerd at {} is unreachable: {reason}", socket.display())]
    Unreachable { socket: PathBuf, reason: String },
    #[error("containerd {call} failed: {status}")]
    Call {
        call: &'static str,
        status: tonic::Status,
    },
    #[error("containerd returned a malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("blob {digest} is larger than {limit} bytes")]
    TooLarge { digest: Digest, limit: u64 },
    #[error("containerd reports no content store root (introspection); set server.containerd_root")]
    NoContentRoot,
}

/// A descriptor as containerd stores it for an image name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub digest: Digest,
    pub media_type: String,
    pub size: i64,
}

/// containerd's own API (images, content, leases, introspection) on its socket, in
/// one namespace. Cheap to clone; the channel connects lazily and reconnects.
#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
    namespace: String,
    socket: PathBuf,
    busy_poll: Duration,
}

impl Containerd {
    pub fn new(socket: &Path, namespace: &str) -> Result<Containerd, ContainerdError> {
        let path = socket.to_path_buf();
        let channel = Endpoint::from_static("http://localhost")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }));
        Ok(Containerd {
            channel,
            namespace: namespace.to_string(),
            socket: socket.to_path_buf(),
            busy_poll: Duration::ZERO,
        })
    }

    /// Lookups on the kubelet's call path poll for the answer this long before the
    /// runtime sleeps (see [`crate::cri::upstream::busy_wait`]).
    pub fn with_busy_poll(mut self, busy_poll: Duration) -> Containerd {
        self.busy_poll = busy_poll;
        self
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Ok(ns) = self.namespace.parse() {
            req.metadata_mut().insert("containerd-namespace", ns);
        }
        req
    }

    fn err(&self, call: &'static str) -> impl Fn(tonic::Status) -> ContainerdError + '_ {
        move |status| {
            if status.code() == tonic::Code::Unavailable {
                ContainerdError::Unreachable {
                    socket: self.socket.clone(),
                    reason: status.message().to_string(),
                }
            } else {
                ContainerdError::Call { call, status }
            }
        }
    }

    /// What the image `name` (a normalized reference) points to, if containerd has it.
    pub async fn image_target(&self, name: &str) -> Result<Option<Target>, ContainerdError> {
        let resp = ImagesClient::new(self.channel.clone())
            .get(self.request(GetImageRequest {
                name: name.to_string(),
            }))
            .await;
        let image = match resp {
            Ok(r) => r.into_inner().image,
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(None),
            Err(s) => return Err(self.err("images.Get")(s)),
        };
        let Some(target) = image.and_then(|i| i.target) else {
            return Ok(None);
        };
        let digest = target
            .digest
            .parse()
            .map_err(|e: crate::digest::DigestError| ContainerdError::Malformed {
                what: "image target digest",
                reason: e.to_string(),
            })?;
        Ok(Some(Target {
            digest,
            media_type: target.media_type,
            size: target.size,
        }))
    }

    /// The target digest of every image in the namespace (what verdicts are keyed by).
    pub async fn image_digests(
        &self,
    ) -> Result<std::collections::HashSet<String>, ContainerdError> {
        let resp = ImagesClient::new(self.channel.clone())
            .list(self.request(ListImagesRequest { filters: vec![] }))
            .await
            .map_err(self.err("images.List"))?;
        Ok(resp
            .into_inner()
            .images
            .into_iter()
            .filter_map(|i| i.target.map(|t| t.digest))
            .collect())
    }

    /// The content store directory, from the content plugin's introspection exports.
    pub async fn content_root(&self) -> Result<PathBuf, ContainerdError> {
        let resp = IntrospectionClient::new(self.channel.clone())
            .plugins(self.request(PluginsRequest {
                filters: vec!["type==io.containerd.content.v1".into()],
            }))
            .await
            .map_err(self.err("introspection.Plugins"))?
            .into_inner();
        resp.plugins
            .iter()
            .find_map(|p| p.exports.get("root"))
            .map(PathBuf::from)
            .ok_or(ContainerdError::NoContentRoot)
    }

    /// Reads a whole blob through the content API (the fallback when the content
    /// directory cannot be mapped), refusing more than `limit` bytes.
    pub async fn read_blob(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, ContainerdError> {
        let mut stream = ContentClient::new(self.channel.clone())
            .read(self.request(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(self.err("content.Read"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(self.err("content.Read"))? {
            if out.len() as u64 + chunk.data.len() as u64 > limit {
                return Err(ContainerdError::TooLarge {
                    digest: digest.clone(),
                    limit,
                });
            }
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    }

    /// Creates a lease that expires by itself after `ttl` (so a crash cannot pin
    /// content forever) and adds `digests` to it.
    pub async fn lease(&self, digests: &[Digest], ttl: Duration) -> Result<Lease, ContainerdError> {
        let id = format!(
            "pullwarden-{}-{}",
            std::process::id(),
            LEASE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let expire = time::OffsetDateTime::now_utc() + ttl;
        let labels = HashMap::from([(
            "containerd.io/gc.expire".to_string(),
            expire
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        )]);
        let mut leases = LeasesClient::new(self.channel.clone());
        leases
            .create(self.request(CreateLeaseRequest {
                id: id.clone(),
                labels,
            }))
            .await
            .map_err(self.err("leases.Create"))?;
        for d in digests {
            leases
                .add_resource(self.request(AddResourceRequest {
                    id: id.clone(),
                    resource: Some(Resource {
                        id: d.to_string(),
                        r#type: "content".into(),
                    }),
                }))
                .await
                .map_err(self.err("leases.AddResource"))?;
        }
        Ok(Lease {
            id,
            containerd: self.clone(),
        })
    }

    async fn delete_lease(&self, id: &str) -> Result<(), ContainerdError> {
        LeasesClient::new(self.channel.clone())
            .delete(self.request(DeleteLeaseRequest {
                id: id.to_string(),
                sync: false,
            }))
            .await
            .map_err(self.err("leases.Delete"))?;
        Ok(())
    }
}

static LEASE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A held lease; [`Lease::release`] deletes it (and the expiry label cleans up after a crash).
pub struct Lease {
    id: String,
    containerd: Containerd,
}

impl Lease {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub async fn release(self) {
        if let Err(e) = self.containerd.delete_lease(&self.id).await {
            tracing::warn!(lease = %self.id, error = %e, "could not delete lease; it expires by itself");
        }
    }
}

/// Path of a committed blob in containerd's content store (never `ingest/`).
pub fn blob_path(content_root: &Path, digest: &Digest) -> PathBuf {
    content_root
        .join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

#[async_trait::async_trait]
impl crate::gate::ImageStore for Containerd {
    async fn target(&self, name: &str) -> Result<Option<Target>, crate::gate::GateError> {
        crate::cri::upstream::busy_wait(self.image_target(name), self.busy_poll)
            .await
            .map_err(|e| crate::gate::GateError::Containerd(e.to_string()))
    }
}
