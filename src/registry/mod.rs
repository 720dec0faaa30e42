//! OCI distribution client for manifests, referrers and signature blobs, with the pull's
//! own credentials. Every read is size-capped while streaming and every by-digest read is
//! digest-verified, so a hostile registry gets a specific error, never our memory.
//! Written on reqwest rather than oci-client to own those caps and the error taxonomy.

mod auth;
mod cache;
mod error;
mod transport;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

pub use auth::{AuthFile, Credentials};
use cache::ContentCache;
pub use error::RegistryError;
use transport::{CachedToken, Fetched, TokenKey, check_status, urlencode};

use crate::config;
use crate::digest::Digest;
use crate::reference::Reference;

pub use crate::oci::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Bearer tokens kept at most (and registries remembered without the referrers API).
const MAX_CACHED_TOKENS: usize = 1024;

/// A manifest or index as fetched: its digest (verified), media type and bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// OCI distribution client. Cheap to clone: clones share the connection pool, the
/// token cache and the content cache.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    plain_http: Vec<String>,
    max_manifest_bytes: u64,
    max_blob_bytes: u64,
    auth_file: AuthFile,
    /// Bearer tokens by (registry, repository, credentials): a token is scoped to a
    /// repository and must never serve a pull made with other credentials.
    tokens: Mutex<HashMap<TokenKey, CachedToken>>,
    /// Content-addressed manifests and small blobs. Only by-digest reads are served
    /// from it, so it can never serve stale content.
    cache: Mutex<ContentCache>,
    /// Registries seen without the referrers API, and when: the API is not asked again
    /// for `REFERRERS_ABSENT_TTL` (the fallback tag serves meanwhile).
    referrers_absent: Mutex<HashMap<String, Instant>>,
    /// Counts every HTTP request sent (token requests included), once set.
    requests: std::sync::OnceLock<prometheus_client::metrics::counter::Counter>,
}

const REFERRERS_ABSENT_TTL: Duration = Duration::from_secs(300);

/// Entries and bytes the content cache holds at most.
const CACHE_ENTRIES: usize = 512;
const CACHE_BYTES: usize = 32 << 20;

impl RegistryClient {
    pub fn new(cfg: &config::Registry) -> Result<RegistryClient, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("pullwarden/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(RegistryError::Client)?;
        let auth_file = match &cfg.auth_file {
            Some(p) => AuthFile::load(p)?,
            None => AuthFile::default(),
        };
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                plain_http: cfg.plain_http.clone(),
                max_manifest_bytes: cfg.max_manifest_bytes,
                max_blob_bytes: cfg.max_blob_bytes,
                auth_file,
                tokens: Mutex::new(HashMap::new()),
                cache: Mutex::new(ContentCache::new(CACHE_ENTRIES, CACHE_BYTES)),
                referrers_absent: Mutex::new(HashMap::new()),
                requests: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Counts every HTTP request this client (and its clones) sends from now on in
    /// `counter` (`pullwarden_registry_requests_total`): one per request on the wire,
    /// token requests included, answered or not; content-cache hits send none. Only the
    /// first counter set counts.
    pub fn count_requests(&self, counter: prometheus_client::metrics::counter::Counter) {
        let _ = self.inner.requests.set(counter);
    }

    fn count_request(&self) {
        if let Some(c) = self.inner.requests.get() {
            c.inc();
        }
    }

    pub fn max_manifest_bytes(&self) -> u64 {
        self.inner.max_manifest_bytes
    }

    fn base(&self, registry: &str) -> String {
        let scheme = if self.inner.plain_http.iter().any(|h| h == registry) {
            "http"
        } else {
            "https"
        };
        // Docker Hub's API host differs from its reference name.
        let host = if registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            registry
        };
        format!("{scheme}://{host}")
    }

    /// The pull's credentials, or the auth file's for this registry when it has none.
    fn effective_creds(&self, registry: &str, creds: &Credentials) -> Credentials {
        if creds.is_anonymous()
            && let Some(c) = self.inner.auth_file.get(registry)
        {
            return c.clone();
        }
        creds.clone()
    }

    /// Resolves a reference (tag or digest) to its manifest or index.
    pub async fn resolve(
        &self,
        reference: &Reference,
        creds: &Credentials,
    ) -> Result<Manifest, RegistryError> {
        match &reference.digest {
            Some(d) => self.manifest_by_digest(reference, d, creds).await,
            None => {
                let tag = reference.manifest_ref();
                self.manifest_by_tag_uncached(reference, &tag, creds).await
            }
        }
    }

    /// A manifest by digest; served from the cache when present, digest-verified otherwise.
    pub async fn manifest_by_digest(
        &self,
        reference: &Reference,
        digest: &Digest,
        creds: &Credentials,
    ) -> Result<Manifest, RegistryError> {
        if let Some((media_type, bytes)) = self.cache_get(digest) {
            return Ok(Manifest {
                digest: digest.clone(),
                media_type,
                bytes,
            });
        }
        let (url, f) = self
            .fetch_manifest(reference, &digest.to_string(), creds)
            .await?;
        verify_digest(&url, digest, &f.body)?;
        let media_type = manifest_media_type(&url, f.content_type.as_deref(), &f.body)?;
        self.cache_put(digest, &media_type, &f.body);
        Ok(Manifest {
            digest: digest.clone(),
            media_type,
            bytes: f.body,
        })
    }

    /// GET `/v2/<name>/manifests/<tag or digest>` under the manifest size cap.
    async fn fetch_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
        creds: &Credentials,
    ) -> Result<(String, Fetched), RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base(&reference.registry),
            reference.repository,
            tag_or_digest
        );
        let f = self
            .get(
                reference,
                &url,
                Some(MANIFEST_ACCEPT),
                self.inner.max_manifest_bytes,
                creds,
            )
            .await?;
        Ok((url, f))
    }

    /// A manifest by tag, always from the registry (tags move). The digest is computed
    /// from the bytes; a `Docker-Content-Digest` header that disagrees is an error.
    async fn manifest_by_tag_uncached(
        &self,
        reference: &Reference,
        tag: &str,
        creds: &Credentials,
    ) -> Result<Manifest, RegistryError> {
        let (url, f) = self.fetch_manifest(reference, tag, creds).await?;
        let digest = Digest::sha256_of(&f.body);
        if let Some(h) = f.docker_digest.as_deref()
            && let Ok(claimed) = h.parse::<Digest>()
            && !claimed.matches(&f.body)
        {
            return Err(RegistryError::DigestMismatch {
                url,
                expected: claimed,
                actual: digest,
            });
        }
        let media_type = manifest_media_type(&url, f.content_type.as_deref(), &f.body)?;
        self.cache_put(&digest, &media_type, &f.body);
        Ok(Manifest {
            digest,
            media_type,
            bytes: f.body,
        })
    }

    /// A manifest by tag, or None when the tag does not exist. Always a GET: signature
    /// manifests are small, so a HEAD-then-cached-GET costs the same round trip and
    /// doubles it on a miss (measured in benches/verify.rs).
    pub async fn manifest_by_tag(
        &self,
        reference: &Reference,
        tag: &str,
        creds: &Credentials,
    ) -> Result<Option<Manifest>, RegistryError> {
        match self.manifest_by_tag_uncached(reference, tag, creds).await {
            Ok(m) => Ok(Some(m)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The OCI 1.1 referrers API. `Ok(None)` when the registry does not implement it
    /// (404), so the caller falls back to the `sha256-<hex>` tag.
    pub async fn referrers(
        &self,
        reference: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
        creds: &Credentials,
    ) -> Result<Option<Bytes>, RegistryError> {
        let absent_since = self
            .inner
            .referrers_absent
            .lock()
            .ok()
            .and_then(|m| m.get(&reference.registry).copied());
        if absent_since.is_some_and(|t| t.elapsed() < REFERRERS_ABSENT_TTL) {
            return Ok(None);
        }
        let result = self
            .referrers_uncached(reference, subject, artifact_type, creds)
            .await;
        if let (Ok(None), Ok(mut m)) = (&result, self.inner.referrers_absent.lock()) {
            if m.len() > MAX_CACHED_TOKENS {
                m.clear();
            }
            m.insert(reference.registry.clone(), Instant::now());
        }
        result
    }

    async fn referrers_uncached(
        &self,
        reference: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
        creds: &Credentials,
    ) -> Result<Option<Bytes>, RegistryError> {
        let mut url = format!(
            "{}/v2/{}/referrers/{}",
            self.base(&reference.registry),
            reference.repository,
            subject
        );
        if let Some(t) = artifact_type {
            url.push_str("?artifactType=");
            url.push_str(&urlencode(t));
        }
        match self
            .get(
                reference,
                &url,
                Some(OCI_INDEX),
                self.inner.max_manifest_bytes,
                creds,
            )
            .await
        {
            Ok(f) => {
                // A registry without the API may answer 200 with something else
                // (an HTML page, a v2 error document); only an OCI index counts.
                let ct = f.content_type.as_deref().unwrap_or("");
                if !ct.starts_with(OCI_INDEX) {
                    return Ok(None);
                }
                Ok(Some(f.body))
            }
            // Registries without the API answer 404, or 400/405/406/501 for a path
            // they do not route; none of these is an outage.
            Err(RegistryError::NotFound { .. })
            | Err(RegistryError::UnexpectedStatus {
                status: 400 | 405 | 406,
                ..
            })
            | Err(RegistryError::ServerError { status: 501, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A blob by digest, capped at `max_blob_bytes` and digest-verified.
    pub async fn blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        creds: &Credentials,
    ) -> Result<Bytes, RegistryError> {
        self.blob_limited(reference, digest, u64::MAX, creds).await
    }

    /// A blob by digest, capped at `limit` bytes (and at `max_blob_bytes`), and
    /// digest-verified: [`RegistryError::TooLarge`] past the cap.
    pub async fn blob_limited(
        &self,
        reference: &Reference,
        digest: &Digest,
        limit: u64,
        creds: &Credentials,
    ) -> Result<Bytes, RegistryError> {
        let limit = limit.min(self.inner.max_blob_bytes);
        if let Some((_, bytes)) = self.cache_get(digest)
            && bytes.len() as u64 <= limit
        {
            return Ok(bytes);
        }
        let url = format!(
            "{}/v2/{}/blobs/{}",
            self.base(&reference.registry),
            reference.repository,
            digest
        );
        let f = self.get(reference, &url, None, limit, creds).await?;
        verify_digest(&url, digest, &f.body)?;
        // Only small blobs (signatures, bundles) are worth keeping.
        if f.body.len() <= 256 << 10 {
            self.cache_put(digest, "", &f.body);
        }
        Ok(f.body)
    }

    /// Uploads a blob (monolithic POST + PUT) unless the registry has it already.
    /// Used by the project's signer (`pullwarden sign`).
    pub async fn push_blob(
        &self,
        reference: &Reference,
        blob: &Bytes,
        creds: &Credentials,
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::sha256_of(blob);
        let base = self.base(&reference.registry);
        let url = format!("{base}/v2/{}/blobs/{digest}", reference.repository);
        let head = self
            .send(reference, reqwest::Method::HEAD, &url, None, creds)
            .await?;
        if head.status().is_success() {
            return Ok(digest);
        }
        let start = format!("{base}/v2/{}/blobs/uploads/", reference.repository);
        let resp = self
            .send(reference, reqwest::Method::POST, &start, None, creds)
            .await?;
        check_status(&reference.registry, &start, resp.status())?;
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Malformed {
                url: start.clone(),
                reason: "upload response has no Location".into(),
            })?;
        let mut put = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{base}{location}")
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str(&format!("digest={}", urlencode(&digest.to_string())));
        let resp = self
            .send_with_body(
                reference,
                reqwest::Method::PUT,
                &put,
                None,
                Some((blob, "application/octet-stream")),
                creds,
            )
            .await?;
        check_status(&reference.registry, &put, resp.status())?;
        Ok(digest)
    }

    /// PUTs a manifest under a tag or digest.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        tag_or_digest: &str,
        media_type: &str,
        body: &Bytes,
        creds: &Credentials,
    ) -> Result<Digest, RegistryError> {
        let url = format!(
            "{}/v2/{}/manifests/{tag_or_digest}",
            self.base(&reference.registry),
            reference.repository
        );
        let resp = self
            .send_with_body(
                reference,
                reqwest::Method::PUT,
                &url,
                None,
                Some((body, media_type)),
                creds,
            )
            .await?;
        check_status(&reference.registry, &url, resp.status())?;
        Ok(Digest::sha256_of(body))
    }

    fn cache_get(&self, d: &Digest) -> Option<(String, Bytes)> {
        self.inner.cache.lock().ok()?.get(d)
    }

    fn cache_put(&self, d: &Digest, media_type: &str, bytes: &Bytes) {
        if let Ok(mut c) = self.inner.cache.lock() {
            c.put(d.clone(), media_type.to_string(), bytes.clone());
        }
    }
}

fn verify_digest(url: &str, expected: &Digest, body: &[u8]) -> Result<(), RegistryError> {
    if expected.matches(body) {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            url: url.to_string(),
            expected: expected.clone(),
            actual: Digest::sha256_of(body),
        })
    }
}

/// The manifest's media type: its own `mediaType` field wins over the Content-Type
/// header (the digest covers the former, not the latter); see [`crate::oci::media_type`].
/// Checks that it is JSON with `schemaVersion` 2.
fn manifest_media_type(
    url: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<String, RegistryError> {
    crate::oci::media_type(body, content_type).map_err(|e| RegistryError::Malformed {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_body_wins() {
        let b = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert_eq!(
            manifest_media_type("u", Some(OCI_MANIFEST), b).unwrap(),
            OCI_INDEX
        );
        let b = br#"{"schemaVersion":2,"layers":[]}"#;
        assert_eq!(
            manifest_media_type(
                "u",
                Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
                b
            )
            .unwrap(),
            DOCKER_MANIFEST
        );
        for bad in [
            &b"<html>"[..],
            b"{}",
            br#"{"schemaVersion":1}"#,
            b"",
            b"\xff\xfe",
        ] {
            assert!(matches!(
                manifest_media_type("u", None, bad),
                Err(RegistryError::Malformed { .. })
            ));
        }
    }
}
