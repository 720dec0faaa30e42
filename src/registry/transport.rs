//! The HTTP exchange under the client: one auth challenge answered (bearer token or basic),
//! tokens cached per (registry, repository, credentials), bodies read under a byte cap.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};

use super::auth::{Challenge, Credentials, parse_challenge};
use super::{MAX_CACHED_TOKENS, RegistryClient, RegistryError};
use crate::reference::Reference;

/// Largest token-endpoint response read (tokens are a few KiB).
const MAX_TOKEN_BYTES: u64 = 64 << 10;

#[derive(Hash, PartialEq, Eq, Clone)]
pub(super) struct TokenKey {
    registry: String,
    repository: String,
    creds: Credentials,
}

#[derive(Clone)]
pub(super) enum CachedToken {
    Bearer { token: String, expires: Instant },
    Basic,
}

#[derive(serde::Deserialize)]
pub(super) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// What a GET returned: status, headers of interest and the capped body.
pub(super) struct Fetched {
    pub(super) content_type: Option<String>,
    pub(super) docker_digest: Option<String>,
    pub(super) body: Bytes,
}

impl RegistryClient {
    pub(super) async fn get(
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

    pub(super) async fn send(
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
    pub(super) async fn send_with_body(
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

    pub(super) async fn send_once(
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
        self.count_request();
        req.send()
            .await
            .map_err(|e| network_error(registry, url, e))
    }

    pub(super) async fn fetch_token(
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
        self.count_request();
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

pub(super) fn network_error(registry: &str, url: &str, e: reqwest::Error) -> RegistryError {
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

pub(super) fn check_status(
    registry: &str,
    url: &str,
    status: StatusCode,
) -> Result<(), RegistryError> {
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
pub(super) async fn read_capped(
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

pub(super) fn urlencode(s: &str) -> String {
    crate::percent::encode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_query_values() {
        assert_eq!(
            urlencode("application/vnd.dev.sigstore.bundle.v0.3+json"),
            "application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson"
        );
    }
}
