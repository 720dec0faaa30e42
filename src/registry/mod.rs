//! OCI distribution client for manifests, referrers and signature blobs, with the pull's
//! own credentials. Every read is size-capped while streaming and every by-digest read is
//! digest-verified, so a hostile registry gets a specific error, never our memory.
//! Written on reqwest rather than oci-client to own those caps and the error taxonomy.

mod auth;
mod cache;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};

pub use auth::{AuthFile, Credentials};
use auth::{Challenge, parse_challenge};
use cache::ContentCache;

use crate::config;
use crate::digest::Digest;
use crate::reference::Reference;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// Bearer tokens kept at most.
const MAX_CACHED_TOKENS: usize = 1024;
/// Largest token-endpoint response read (tokens are a few KiB).
const MAX_TOKEN_BYTES: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("registry {registry} is unreachable: {source}")]
    Unreachable {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {registry} timed out on {url}")]
    Timeout { registry: String, url: String },
    #[error("registry {registry} answered {status} (authentication required) for {url}")]
    Unauthorized {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("registry {registry} denied access ({status}) to {url}")]
    Forbidden {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("not found: {url}")]
    NotFound { url: String },
    #[error("registry {registry} failed with status {status} on {url}")]
    ServerError {
        registry: String,
        url: String,
        status: u16,
    },
    #[error("unexpected status {status} on {url}")]
    UnexpectedStatus { url: String, status: u16 },
    #[error("{url} is larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: u64 },
    #[error("malformed response from {url}: {reason}")]
    Malformed { url: String, reason: String },
    #[error("{url}: content does not match digest {expected} (got {actual})")]
    DigestMismatch {
        url: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("token endpoint {realm} failed: {reason}")]
    Token { realm: String, reason: String },
    #[error("registry auth file {path}: {reason}")]
    AuthFile { path: PathBuf, reason: String },
}

impl RegistryError {
    /// An outage, the only registry failure `on_error = "allow"` may let through: the
    /// registry unreachable, timing out, or failing with a 5xx or 429 (`ServerError`).
    /// Refusals (401/403), missing or malformed content and token failures are not.
    pub fn is_outage(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::ServerError { .. } => true,
            RegistryError::Client(_)
            | RegistryError::UnexpectedStatus { .. }
            | RegistryError::Unauthorized { .. }
            | RegistryError::Forbidden { .. }
            | RegistryError::Token { .. }
            | RegistryError::AuthFile { .. }
            | RegistryError::NotFound { .. }
            | RegistryError::TooLarge { .. }
            | RegistryError::Malformed { .. }
            | RegistryError::DigestMismatch { .. } => false,
        }
    }

    /// True for content a hostile or broken registry served (not a network fault).
    pub fn is_bad_content(&self) -> bool {
        matches!(
            self,
            RegistryError::TooLarge { .. }
                | RegistryError::Malformed { .. }
                | RegistryError::DigestMismatch { .. }
        )
    }
}

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
}

const REFERRERS_ABSENT_TTL: Duration = Duration::from_secs(300);

#[derive(Hash, PartialEq, Eq, Clone)]
struct TokenKey {
    registry: String,
    repository: String,
    creds: Credentials,
}

#[derive(Clone)]
enum CachedToken {
    Bearer { token: String, expires: Instant },
    Basic,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Entries and bytes the content cache holds at most.
const CACHE_ENTRIES: usize = 512;
const CACHE_BYTES: usize = 32 << 20;

/// What a GET returned: status, headers of interest and the capped body.
struct Fetched {
    content_type: Option<String>,
    docker_digest: Option<String>,
    body: Bytes,
}

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
            }),
        })
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
        if let Some((_, bytes)) = self.cache_get(digest) {
            return Ok(bytes);
        }
        let url = format!(
            "{}/v2/{}/blobs/{}",
            self.base(&reference.registry),
            reference.repository,
            digest
        );
        let f = self
            .get(reference, &url, None, self.inner.max_blob_bytes, creds)
            .await?;
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

    async fn get(
        &self,
        reference: &Reference,
        url: &str,
        accept: Option<&str>,
        limit: u64,
        creds: &Credentials,
    ) -> Result<Fetched, RegistryError> {
        let resp = self
            .send(reference, reqwest::Method::GET, url, accept, creds)
            .await?;
        check_status(&reference.registry, url, resp.status())?;
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE.as_str());
        let docker_digest = header("docker-content-digest");
        let body = read_capped(&reference.registry, url, resp, limit).await?;
        Ok(Fetched {
            content_type,
            docker_digest,
            body,
        })
    }

    async fn send(
        &self,
        reference: &Reference,
        method: reqwest::Method,
        url: &str,
        accept: Option<&str>,
        creds: &Credentials,
    ) -> Result<reqwest::Response, RegistryError> {
        self.send_with_body(reference, method, url, accept, None, creds)
            .await
    }

    /// Sends a request, answering one auth challenge (bearer token or basic).
    async fn send_with_body(
        &self,
        reference: &Reference,
        method: reqwest::Method,
        url: &str,
        accept: Option<&str>,
        body: Option<(&Bytes, &str)>,
        creds: &Credentials,
    ) -> Result<reqwest::Response, RegistryError> {
        let creds = self.effective_creds(&reference.registry, creds);
        let key = TokenKey {
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            creds: creds.clone(),
        };
        let cached = self
            .inner
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&key).cloned());
        let auth_header = match cached {
            Some(CachedToken::Bearer { token, expires }) if expires > Instant::now() => {
                Some(format!("Bearer {token}"))
            }
            Some(CachedToken::Basic) => creds.basic_header(),
            _ => creds.registry_token.as_ref().map(|t| format!("Bearer {t}")),
        };
        let resp = self
            .send_once(
                &reference.registry,
                method.clone(),
                url,
                accept,
                body,
                auth_header.as_deref(),
            )
            .await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let header = match challenge {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let scope =
                    scope.unwrap_or_else(|| format!("repository:{}:pull", reference.repository));
                let plain_ok = self.inner.plain_http.contains(&reference.registry);
                let (token, ttl) = self
                    .fetch_token(&realm, service.as_deref(), &scope, &creds, plain_ok)
                    .await?;
                if let Ok(mut t) = self.inner.tokens.lock() {
                    // Tokens expire; keep them a little less than their lifetime.
                    let now = Instant::now();
                    let expires = now + ttl.saturating_sub(Duration::from_secs(10));
                    // Bounded: one entry per (repository, credentials) a node pulls with.
                    if t.len() >= MAX_CACHED_TOKENS {
                        t.retain(|_, v| matches!(v, CachedToken::Bearer { expires, .. } if *expires > now));
                        if t.len() >= MAX_CACHED_TOKENS {
                            t.clear();
                        }
                    }
                    t.insert(
                        key,
                        CachedToken::Bearer {
                            token: token.clone(),
                            expires,
                        },
                    );
                }
                format!("Bearer {token}")
            }
            Some(Challenge::Basic) => match creds.basic_header() {
                Some(h) => {
                    if let Ok(mut t) = self.inner.tokens.lock() {
                        t.insert(key, CachedToken::Basic);
                    }
                    h
                }
                None => return Ok(resp),
            },
            None => return Ok(resp),
        };
        self.send_once(
            &reference.registry,
            method,
            url,
            accept,
            body,
            Some(&header),
        )
        .await
    }

    async fn send_once(
        &self,
        registry: &str,
        method: reqwest::Method,
        url: &str,
        accept: Option<&str>,
        body: Option<(&Bytes, &str)>,
        auth: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut req = self.inner.http.request(method, url);
        if let Some((b, ct)) = body {
            req = req.header(CONTENT_TYPE, ct).body(b.clone());
        }
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        req.send()
            .await
            .map_err(|e| network_error(registry, url, e))
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: &Credentials,
        plain_http_allowed: bool,
    ) -> Result<(String, Duration), RegistryError> {
        let token_err = |reason: String| RegistryError::Token {
            realm: realm.to_string(),
            reason,
        };
        // The realm is chosen by the registry: only http(s) URLs are followed.
        let realm_url = reqwest::Url::parse(realm).map_err(|e| token_err(e.to_string()))?;
        // Credentials go to the realm: never in clear text unless the registry itself
        // is one the operator allowed over plain HTTP.
        match realm_url.scheme() {
            "https" => {}
            "http" if plain_http_allowed => {}
            _ => return Err(token_err("realm is not an https URL".into())),
        }
        let req = if let Some(refresh) = &creds.identity_token {
            // OAuth2 refresh-token grant (docker's identity tokens).
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", "pullwarden"),
                ("scope", scope),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&");
            self.inner
                .http
                .post(realm_url)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
        } else {
            let mut u = realm_url;
            {
                let mut q = u.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                q.append_pair("scope", scope);
            }
            let mut r = self.inner.http.get(u);
            if let Some(h) = creds.basic_header() {
                r = r.header(AUTHORIZATION, h);
            }
            r
        };
        let resp = req.send().await.map_err(|e| token_err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(token_err(format!("status {}", resp.status().as_u16())));
        }
        let body = read_capped(realm, realm, resp, MAX_TOKEN_BYTES)
            .await
            .map_err(|e| token_err(e.to_string()))?;
        let t: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| token_err(e.to_string()))?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_err("response has no token".into()))?;
        // Default lifetime per the distribution token spec: 60 s.
        let ttl = Duration::from_secs(t.expires_in.unwrap_or(60).clamp(10, 3600));
        Ok((token, ttl))
    }
}

fn network_error(registry: &str, url: &str, e: reqwest::Error) -> RegistryError {
    if e.is_timeout() {
        RegistryError::Timeout {
            registry: registry.to_string(),
            url: url.to_string(),
        }
    } else {
        RegistryError::Unreachable {
            registry: registry.to_string(),
            source: e,
        }
    }
}

fn check_status(registry: &str, url: &str, status: StatusCode) -> Result<(), RegistryError> {
    let s = status.as_u16();
    match s {
        200..=299 => Ok(()),
        401 => Err(RegistryError::Unauthorized {
            registry: registry.to_string(),
            url: url.to_string(),
            status: s,
        }),
        403 => Err(RegistryError::Forbidden {
            registry: registry.to_string(),
            url: url.to_string(),
            status: s,
        }),
        404 => Err(RegistryError::NotFound {
            url: url.to_string(),
        }),
        500..=599 | 429 => Err(RegistryError::ServerError {
            registry: registry.to_string(),
            url: url.to_string(),
            status: s,
        }),
        _ => Err(RegistryError::UnexpectedStatus {
            url: url.to_string(),
            status: s,
        }),
    }
}

/// Reads a body, refusing a `Content-Length` over the limit up front and stopping the
/// stream as soon as the limit is passed (a lying or absent length cannot get past it).
async fn read_capped(
    registry: &str,
    url: &str,
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<Bytes, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        url: url.to_string(),
        limit,
    };
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let initial = declared.unwrap_or(0).min(limit).min(1 << 20);
    let mut buf = Vec::with_capacity(usize::try_from(initial).unwrap_or(0));
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| network_error(registry, url, e))?;
        let Some(chunk) = chunk else { break };
        if (buf.len() as u64).saturating_add(chunk.len() as u64) > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
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
/// header (the digest covers the former, not the latter). Checks that it is JSON.
fn manifest_media_type(
    url: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<String, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion", default)]
        schema_version: Option<u32>,
    }
    let head: Head = serde_json::from_slice(body).map_err(|e| RegistryError::Malformed {
        url: url.to_string(),
        reason: format!("not a JSON manifest: {e}"),
    })?;
    if head.schema_version != Some(2) {
        return Err(RegistryError::Malformed {
            url: url.to_string(),
            reason: "schemaVersion is not 2".into(),
        });
    }
    Ok(head
        .media_type
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
        .unwrap_or_else(|| OCI_MANIFEST.to_string()))
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

    #[test]
    fn encodes_query_values() {
        assert_eq!(
            urlencode("application/vnd.dev.sigstore.bundle.v0.3+json"),
            "application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson"
        );
    }
}
