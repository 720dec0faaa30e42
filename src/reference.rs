//! Image references as the kubelet and containerd spell them, normalized the way
//! containerd does (`nginx` → `docker.io/library/nginx:latest`).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path (`library/nginx`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference {0:?} is longer than 4096 bytes")]
    TooLong(String),
    #[error("image reference {0:?}: {1}")]
    Invalid(String, &'static str),
    #[error("image reference {0:?}: {1}")]
    BadDigest(String, crate::digest::DigestError),
}

const DOCKER_HUB: &str = "docker.io";

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() > 4096 {
            return Err(ReferenceError::TooLong(s.chars().take(64).collect()));
        }
        let bad = |why| ReferenceError::Invalid(s.to_string(), why);
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|e| ReferenceError::BadDigest(s.to_string(), e))?,
                ),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad("invalid tag"));
            }
        }
        if name.is_empty() {
            return Err(bad("missing repository name"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return Err(bad("invalid registry host"));
        }
        for comp in repository.split('/') {
            let ok = !comp.is_empty()
                && comp
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && comp.as_bytes()[0].is_ascii_alphanumeric();
            if !ok {
                return Err(bad(
                    "invalid repository path (lowercase letters, digits, . _ -)",
                ));
            }
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at another digest.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The name containerd stores the image under: `repo@digest` when pinned (a
    /// `repo:tag@digest` reference is stored without its tag), else `repo:tag`.
    pub fn containerd_name(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}/{}@{d}", self.registry, self.repository),
            (None, Some(t)) => format!("{}/{}:{t}", self.registry, self.repository),
            (None, None) => self.name(),
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A normalized reference string with its registry host as policies match it: host
/// names are case-insensitive (RFC 4343) and `:443` is the https default, so
/// `Registry.Example.COM:443/prod/app` is `registry.example.com/prod/app` (containerd pulls
/// both from the same registry). Only the host changes; the path is case-sensitive.
pub fn canonical_host(reference: &str) -> std::borrow::Cow<'_, str> {
    let (host, rest) = match reference.split_once('/') {
        Some((h, r)) => (h, r),
        None => return std::borrow::Cow::Borrowed(reference),
    };
    // `name[:port]`, the name possibly a bracketed IPv6 address.
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p))
            if !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!n.contains(':') || n.ends_with(']')) =>
        {
            (n, Some(p))
        }
        _ => (host, None),
    };
    // Ports as numbers (`:0443` is 443 to containerd), the https default dropped, a
    // fully qualified name's trailing dot dropped.
    let port = port.map(|p| {
        let p = p.trim_start_matches('0');
        if p.is_empty() { "0" } else { p }
    });
    let port = port.filter(|p| *p != "443");
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let canonical = match port {
        Some(p) => format!("{name}:{p}"),
        None => name,
    };
    if canonical == host {
        return std::borrow::Cow::Borrowed(reference);
    }
    std::borrow::Cow::Owned(format!("{canonical}/{rest}"))
}

/// The repository part of a normalized reference string (tag and digest cut off).
pub fn repository_of(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_containerd() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.27", "docker.io/library/nginx:1.27"),
            ("acme/app", "docker.io/acme/app:latest"),
            ("index.docker.io/acme/app:v1", "docker.io/acme/app:v1"),
            (
                "127.0.0.1:5000/demo/signed:v1",
                "127.0.0.1:5000/demo/signed:v1",
            ),
            ("localhost/app", "localhost/app:latest"),
            ("ghcr.io/a/b/c:1.0-rc.1", "ghcr.io/a/b/c:1.0-rc.1"),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<Reference>().unwrap().to_string(), want);
        }
        let d = format!("sha256:{}", "b".repeat(64));
        let r: Reference = format!("127.0.0.1:5000/x@{d}").parse().unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_ref(), d);
        assert_eq!(r.registry, "127.0.0.1:5000");
    }

    #[test]
    fn hosts_as_policies_match_them() {
        for (spelled, canonical) in [
            (
                "Registry.Example.COM/prod/App",
                "registry.example.com/prod/App",
            ),
            (
                "registry.example.com:443/prod/app:v1",
                "registry.example.com/prod/app:v1",
            ),
            (
                "registry.example.com:0443/prod/app",
                "registry.example.com/prod/app",
            ),
            (
                "registry.example.com.:5000/p",
                "registry.example.com:5000/p",
            ),
            ("127.0.0.1:047561/it/x", "127.0.0.1:47561/it/x"),
            ("[::1]:05000/x", "[::1]:5000/x"),
            ("[::1]/x", "[::1]/x"),
            ("localhost:0/x", "localhost:0/x"),
            (
                "docker.io/library/nginx:latest",
                "docker.io/library/nginx:latest",
            ),
        ] {
            assert_eq!(canonical_host(spelled), canonical, "{spelled}");
        }
    }

    #[test]
    fn rejects_hostile() {
        for bad in [
            "",
            "UPPER/case",
            "a//b",
            "a:",
            "a@sha256:zz",
            "reg.io/../etc",
            "a:tag with space",
            "reg.io/a/b:-x",
            "/x",
            "x/",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
        assert!("a".repeat(5000).parse::<Reference>().is_err());
    }

    #[test]
    fn repository_of_cuts_tag_and_digest() {
        assert_eq!(repository_of("127.0.0.1:5000/a/b:v1"), "127.0.0.1:5000/a/b");
        assert_eq!(repository_of("127.0.0.1:5000/a/b"), "127.0.0.1:5000/a/b");
        assert_eq!(
            repository_of("docker.io/library/x@sha256:00"),
            "docker.io/library/x"
        );
    }
}
