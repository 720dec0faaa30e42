//! Registry credentials: from the CRI `AuthConfig` a pull carries, or from a docker
//! `config.json`; and the `WWW-Authenticate` challenge parser for the bearer-token flow.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::RegistryError;

/// Credentials for one registry. Empty means anonymous.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// An OAuth2 refresh token exchanged at the token endpoint (`identitytoken`).
    pub identity_token: Option<String>,
    /// A bearer token sent to the registry as is (`registrytoken`).
    pub registry_token: Option<String>,
}

// Secrets never reach logs or reports through Debug.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "registry_token",
                &self.registry_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Splits a base64 `user:password` (the `auth` field of CRI and docker config).
fn decode_basic(auth: &str) -> Option<(String, String)> {
    let raw = BASE64.decode(auth.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

impl From<&k8s_cri::v1::AuthConfig> for Credentials {
    fn from(a: &k8s_cri::v1::AuthConfig) -> Self {
        let mut c = Credentials {
            username: non_empty(&a.username),
            password: non_empty(&a.password),
            identity_token: non_empty(&a.identity_token),
            registry_token: non_empty(&a.registry_token),
        };
        // The kubelet fills either username/password or the combined `auth`.
        if c.username.is_none()
            && let Some((u, p)) = decode_basic(&a.auth)
        {
            c.username = non_empty(&u);
            c.password = non_empty(&p);
        }
        c
    }
}

impl Credentials {
    pub fn is_anonymous(&self) -> bool {
        self.username.is_none() && self.identity_token.is_none() && self.registry_token.is_none()
    }

    pub fn basic(username: &str, password: &str) -> Credentials {
        Credentials {
            username: non_empty(username),
            password: non_empty(password),
            ..Credentials::default()
        }
    }

    /// `Authorization: Basic …` value, when a username is set.
    pub(crate) fn basic_header(&self) -> Option<String> {
        let user = self.username.as_deref()?;
        let pass = self.password.as_deref().unwrap_or("");
        Some(format!("Basic {}", BASE64.encode(format!("{user}:{pass}"))))
    }
}

/// Credentials per registry host from a docker `config.json` (`auths` only;
/// credential helpers are programs and are not run by a node daemon).
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    by_registry: BTreeMap<String, Credentials>,
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(serde::Deserialize, Default)]
struct DockerAuth {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
    #[serde(default)]
    registrytoken: String,
}

/// `https://index.docker.io/v1/` → `docker.io`; `https://host:5000/x` → `host:5000`.
fn normalize_registry_key(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

impl AuthFile {
    pub fn load(path: &Path) -> Result<AuthFile, RegistryError> {
        let bytes = std::fs::read(path).map_err(|e| RegistryError::AuthFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        AuthFile::parse(&bytes).map_err(|reason| RegistryError::AuthFile {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn parse(bytes: &[u8]) -> Result<AuthFile, String> {
        let cfg: DockerConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut by_registry = BTreeMap::new();
        for (key, a) in cfg.auths {
            let cri = k8s_cri::v1::AuthConfig {
                username: a.username,
                password: a.password,
                auth: a.auth,
                server_address: String::new(),
                identity_token: a.identitytoken,
                registry_token: a.registrytoken,
            };
            by_registry.insert(normalize_registry_key(&key), Credentials::from(&cri));
        }
        Ok(AuthFile { by_registry })
    }

    pub fn get(&self, registry: &str) -> Option<&Credentials> {
        self.by_registry.get(registry)
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
/// Quoted values may contain commas (scopes like `repository:a:pull,push`).
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    let realm = params.remove("realm")?;
    Some(Challenge::Bearer {
        realm,
        service: params.remove("service"),
        scope: params.remove("scope"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_auth_field_is_decoded() {
        let a = k8s_cri::v1::AuthConfig {
            auth: BASE64.encode("alice:s3:cret"),
            ..Default::default()
        };
        let c = Credentials::from(&a);
        assert_eq!(c.username.as_deref(), Some("alice"));
        assert_eq!(c.password.as_deref(), Some("s3:cret"));
        assert!(!format!("{c:?}").contains("s3:cret"));
        let junk = k8s_cri::v1::AuthConfig {
            auth: "!!!not base64".into(),
            ..Default::default()
        };
        assert!(Credentials::from(&junk).is_anonymous());
        let tok = k8s_cri::v1::AuthConfig {
            registry_token: "t".into(),
            ..Default::default()
        };
        assert_eq!(Credentials::from(&tok).registry_token.as_deref(), Some("t"));
    }

    #[test]
    fn docker_config_keys_are_normalized() {
        let f = AuthFile::parse(
            br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"127.0.0.1:5000":{"username":"x","password":"y"}}}"#,
        )
        .unwrap();
        assert_eq!(f.get("docker.io").unwrap().username.as_deref(), Some("u"));
        assert_eq!(
            f.get("127.0.0.1:5000").unwrap().password.as_deref(),
            Some("y")
        );
        assert!(AuthFile::parse(b"[").is_err());
        assert!(AuthFile::parse(b"{\"auths\": 3}").is_err());
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        for bad in [
            "",
            "Bearer",
            "Bearer service=\"x\"",
            "Negotiate abc",
            "Bearer realm=\"unterminated",
        ] {
            let parsed = parse_challenge(bad);
            assert!(
                !matches!(parsed, Some(Challenge::Bearer { ref realm, .. }) if realm.is_empty() && bad != "Bearer realm=\"unterminated"),
                "{bad:?}: {parsed:?}"
            );
        }
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
    }
}
