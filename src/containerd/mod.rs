//! containerd API access for the gate: what an image name points to, content blobs
//! (path for mapping, gRPC read as the fallback), leases that hold content against
//! garbage collection while we scan, and where the content store lives; and the few
//! writes `pullwarden doctor`'s canary needs (content write, image create, delete).
//!
//! Every call has a deadline: a unary call [`CALL_TIMEOUT`] (10 s), each message of a
//! streamed blob read [`STREAM_STALL_TIMEOUT`] (30 s without a chunk), connecting 5 s.
//! A frozen containerd (stopped, deadlocked) thus becomes [`ContainerdError::Timeout`]
//! instead of a call that never returns; the CRI proxy's own forwarding is separate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::{
    AddResourceRequest, CreateImageRequest, CreateRequest as CreateLeaseRequest,
    DeleteContentRequest, DeleteImageRequest, DeleteRequest as DeleteLeaseRequest, GetImageRequest,
    Image, InfoRequest, ListImagesRequest, PluginsRequest, ReadContentRequest, Resource,
    WriteAction, WriteContentRequest, content_client::ContentClient, images_client::ImagesClient,
    introspection_client::IntrospectionClient, leases_client::LeasesClient,
    version_client::VersionClient,
};
use containerd_client::types::Descriptor;
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
    #[error("containerd at {} did not answer {call} within {after:?} (frozen or overloaded)", socket.display())]
    Timeout {
        socket: PathBuf,
        call: &'static str,
        after: Duration,
    },
}

/// Deadline of one unary containerd API call (connecting included). containerd answers
/// lookups in about a millisecond and lease or content calls in a few; ten seconds is
/// only ever reached by a containerd that is not answering at all.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for the next chunk of a streamed blob read.
pub const STREAM_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The name of the label that marks images `pullwarden doctor` side-loaded.
pub const CANARY_LABEL: &str = "io.pullwarden.canary";

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
    call_timeout: Duration,
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
            call_timeout: CALL_TIMEOUT,
        })
    }

    /// Lookups on the kubelet's call path poll for the answer this long before the
    /// runtime sleeps (see [`crate::cri::wait::busy_wait`]).
    pub fn with_busy_poll(mut self, busy_poll: Duration) -> Containerd {
        self.busy_poll = busy_poll;
        self
    }

    /// How long lookups on the kubelet's call path poll (see [`Containerd::with_busy_poll`]).
    pub fn busy_poll(&self) -> Duration {
        self.busy_poll
    }

    /// Deadline of each unary call (default [`CALL_TIMEOUT`]).
    pub fn with_call_timeout(mut self, call_timeout: Duration) -> Containerd {
        self.call_timeout = call_timeout;
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

    /// Runs one call under [`CALL_TIMEOUT`], mapping its status with [`Self::err`].
    async fn deadline<T>(
        &self,
        call: &'static str,
        answer: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<Result<T, tonic::Status>, ContainerdError> {
        self.deadline_of(call, self.call_timeout, answer).await
    }

    async fn deadline_of<T>(
        &self,
        call: &'static str,
        after: Duration,
        answer: impl std::future::Future<Output = T>,
    ) -> Result<T, ContainerdError> {
        tokio::time::timeout(after, answer)
            .await
            .map_err(|_| ContainerdError::Timeout {
                socket: self.socket.clone(),
                call,
                after,
            })
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
        let mut client = ImagesClient::new(self.channel.clone());
        let resp = self
            .deadline(
                "images.Get",
                client.get(self.request(GetImageRequest {
                    name: name.to_string(),
                })),
            )
            .await?;
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

    /// Every image record in the namespace (containerd's `images.List`, no filter).
    async fn list_images(&self) -> Result<Vec<Image>, ContainerdError> {
        let mut client = ImagesClient::new(self.channel.clone());
        let resp = self
            .deadline(
                "images.List",
                client.list(self.request(ListImagesRequest { filters: vec![] })),
            )
            .await?
            .map_err(self.err("images.List"))?;
        Ok(resp.into_inner().images)
    }

    /// The target digest of every image in the namespace (what verdicts are keyed by).
    pub async fn image_digests(
        &self,
    ) -> Result<std::collections::HashSet<String>, ContainerdError> {
        Ok(self
            .list_images()
            .await?
            .into_iter()
            .filter_map(|i| i.target.map(|t| t.digest))
            .collect())
    }

    /// Every image in the namespace: its name and target digest, in containerd's order.
    /// Names whose target does not parse as a digest are left out.
    pub async fn image_names(&self) -> Result<Vec<(String, Digest)>, ContainerdError> {
        Ok(self
            .list_images()
            .await?
            .into_iter()
            .filter_map(|i| Some((i.name, i.target?.digest.parse().ok()?)))
            .collect())
    }

    /// The content store directory, from the content plugin's introspection exports.
    pub async fn content_root(&self) -> Result<PathBuf, ContainerdError> {
        let mut client = IntrospectionClient::new(self.channel.clone());
        let resp = self
            .deadline(
                "introspection.Plugins",
                client.plugins(self.request(PluginsRequest {
                    filters: vec!["type==io.containerd.content.v1".into()],
                })),
            )
            .await?
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
        let mut client = ContentClient::new(self.channel.clone());
        let mut stream = self
            .deadline(
                "content.Read",
                client.read(self.request(ReadContentRequest {
                    digest: digest.to_string(),
                    offset: 0,
                    size: 0,
                })),
            )
            .await?
            .map_err(self.err("content.Read"))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = self
            .deadline_of("content.Read", STREAM_STALL_TIMEOUT, stream.message())
            .await?
            .map_err(self.err("content.Read"))?
        {
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
            crate::rfc3339::format(expire),
        )]);
        let mut leases = LeasesClient::new(self.channel.clone());
        self.deadline(
            "leases.Create",
            leases.create(self.request(CreateLeaseRequest {
                id: id.clone(),
                labels,
            })),
        )
        .await?
        .map_err(self.err("leases.Create"))?;
        for d in digests {
            self.deadline(
                "leases.AddResource",
                leases.add_resource(self.request(AddResourceRequest {
                    id: id.clone(),
                    resource: Some(Resource {
                        id: d.to_string(),
                        r#type: "content".into(),
                    }),
                })),
            )
            .await?
            .map_err(self.err("leases.AddResource"))?;
        }
        Ok(Lease {
            id,
            containerd: self.clone(),
        })
    }

    async fn delete_lease(&self, id: &str) -> Result<(), ContainerdError> {
        let mut client = LeasesClient::new(self.channel.clone());
        self.deadline(
            "leases.Delete",
            client.delete(self.request(DeleteLeaseRequest {
                id: id.to_string(),
                sync: false,
            })),
        )
        .await?
        .map_err(self.err("leases.Delete"))?;
        Ok(())
    }

    /// containerd's version (`version.Version`): the health check. Fails with
    /// [`ContainerdError::Timeout`] when containerd accepts the connection but does not
    /// answer (a stopped process still completes connects from its listen backlog).
    pub async fn version(&self, within: Duration) -> Result<String, ContainerdError> {
        let mut client = VersionClient::new(self.channel.clone());
        let v = self
            .deadline_of("version.Version", within, client.version(()))
            .await?
            .map_err(self.err("version.Version"))?
            .into_inner();
        Ok(v.version)
    }

    /// Writes `data` as a committed blob with digest `digest`, held by `lease`
    /// (so garbage collection cannot take it before an image names it). A blob that is
    /// already present is fine.
    pub async fn write_blob(
        &self,
        lease: &Lease,
        digest: &Digest,
        data: &[u8],
        labels: HashMap<String, String>,
    ) -> Result<(), ContainerdError> {
        let mut req = tonic::Request::new(tokio_stream::iter(vec![WriteContentRequest {
            action: WriteAction::Commit as i32,
            r#ref: format!("pullwarden-{}", digest.hex()),
            total: data.len() as i64,
            expected: digest.to_string(),
            offset: 0,
            data: data.to_vec(),
            labels,
        }]));
        self.with_headers(req.metadata_mut(), Some(lease.id()));
        let mut client = ContentClient::new(self.channel.clone());
        let answer = async {
            let mut stream = client.write(req).await?.into_inner();
            while stream.message().await?.is_some() {}
            Ok(())
        };
        match self.deadline("content.Write", answer).await? {
            Ok(()) => Ok(()),
            Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
            Err(s) => Err(self.err("content.Write")(s)),
        }
    }

    /// Whether a blob is in the content store.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool, ContainerdError> {
        let mut client = ContentClient::new(self.channel.clone());
        match self
            .deadline(
                "content.Info",
                client.info(self.request(InfoRequest {
                    digest: digest.to_string(),
                })),
            )
            .await?
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(false),
            Err(s) => Err(self.err("content.Info")(s)),
        }
    }

    /// Deletes a blob; one that is already gone is fine.
    pub async fn delete_blob(&self, digest: &Digest) -> Result<(), ContainerdError> {
        let mut client = ContentClient::new(self.channel.clone());
        match self
            .deadline(
                "content.Delete",
                client.delete(self.request(DeleteContentRequest {
                    digest: digest.to_string(),
                })),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(self.err("content.Delete")(s)),
        }
    }

    /// Creates the image `name` pointing at `target`, with `labels`, under `lease`.
    pub async fn create_image(
        &self,
        lease: &Lease,
        name: &str,
        target: &Target,
        labels: HashMap<String, String>,
    ) -> Result<(), ContainerdError> {
        let mut req = tonic::Request::new(CreateImageRequest {
            image: Some(Image {
                name: name.to_string(),
                labels,
                target: Some(Descriptor {
                    media_type: target.media_type.clone(),
                    digest: target.digest.to_string(),
                    size: target.size,
                    annotations: HashMap::new(),
                }),
                created_at: None,
                updated_at: None,
            }),
            source_date_epoch: None,
        });
        self.with_headers(req.metadata_mut(), Some(lease.id()));
        let mut client = ImagesClient::new(self.channel.clone());
        self.deadline("images.Create", client.create(req))
            .await?
            .map_err(self.err("images.Create"))?;
        Ok(())
    }

    /// Deletes the image `name` (synchronously: its content is garbage-collected before
    /// this returns, unless something else holds it). An image already gone is fine.
    pub async fn delete_image(&self, name: &str) -> Result<(), ContainerdError> {
        let mut client = ImagesClient::new(self.channel.clone());
        match self
            .deadline(
                "images.Delete",
                client.delete(self.request(DeleteImageRequest {
                    name: name.to_string(),
                    sync: true,
                    target: None,
                })),
            )
            .await?
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(self.err("images.Delete")(s)),
        }
    }

    /// Every image carrying `label`: name, target and the label's value.
    pub async fn images_labelled(
        &self,
        label: &str,
    ) -> Result<Vec<(String, Option<Target>, String)>, ContainerdError> {
        let mut client = ImagesClient::new(self.channel.clone());
        let resp = self
            .deadline(
                "images.List",
                client.list(self.request(ListImagesRequest {
                    filters: vec![format!("labels.\"{label}\"")],
                })),
            )
            .await?
            .map_err(self.err("images.List"))?;
        Ok(resp
            .into_inner()
            .images
            .into_iter()
            .map(|i| {
                let target = i.target.and_then(|t| {
                    Some(Target {
                        digest: t.digest.parse().ok()?,
                        media_type: t.media_type,
                        size: t.size,
                    })
                });
                let value = i.labels.get(label).cloned().unwrap_or_default();
                (i.name, target, value)
            })
            .collect())
    }

    fn with_headers(&self, md: &mut tonic::metadata::MetadataMap, lease: Option<&str>) {
        if let Ok(ns) = self.namespace.parse() {
            md.insert("containerd-namespace", ns);
        }
        if let Some(l) = lease.and_then(|l| l.parse().ok()) {
            md.insert("containerd-lease", l);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that accepts (from the listen backlog) and never answers: what a stopped
    /// containerd looks like. Every call ends with a timeout naming the call.
    #[tokio::test]
    async fn calls_to_a_containerd_that_never_answers_time_out() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("frozen.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let c = Containerd::new(&sock, "k8s.io")
            .unwrap()
            .with_call_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let e = c.image_target("docker.io/library/x:1").await.unwrap_err();
        assert!(
            matches!(
                e,
                ContainerdError::Timeout {
                    call: "images.Get",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("frozen.sock"), "{e}");
        assert!(matches!(
            c.image_digests().await,
            Err(ContainerdError::Timeout { .. })
        ));
        assert!(matches!(
            c.version(Duration::from_millis(300)).await,
            Err(ContainerdError::Timeout {
                call: "version.Version",
                ..
            })
        ));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
