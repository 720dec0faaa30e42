//! Why verification did not accept something: a key or trust-root file, a signature's
//! storage format, its payload, certificate, transparency-log proof or signed time.
//! A rejection is a verification *result* (it lands in a `SignatureCheck`'s `reason`
//! or, for the policy's own files, in a config error naming the key), never an outage.
//! `Display` is the reason as operators read it in `explain` and `policy check`.

use std::sync::Arc;

/// One reason a file, a signature or its evidence was not accepted, by the step that
/// refused it. The text of each step's reason is kept as written by that step.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Rejection {
    /// A key, trust-root, denylist or signing-key file cannot be read as such.
    #[error(transparent)]
    File(#[from] FileRejection),
    /// A public key does not parse or is of an unsupported kind (SPKI, PKCS#1, PEM).
    #[error("{0}")]
    Key(String),
    /// A sigstore `trusted_root.json` is not usable.
    #[error("{0}")]
    TrustRoot(String),
    /// A signature's storage (cosign layer annotations, sigstore bundle, DSSE) is malformed.
    #[error("{0}")]
    Evidence(String),
    /// The signed payload does not parse or does not bind this image.
    #[error("{0}")]
    Payload(String),
    /// The signature does not verify, or binds another digest or repository.
    #[error("{0}")]
    Signature(String),
    /// A Fulcio certificate or its chain does not verify, or names another identity.
    #[error("{0}")]
    Certificate(String),
    /// A Rekor entry, its signed entry timestamp or its inclusion proof does not verify.
    #[error("{0}")]
    Tlog(String),
    /// An RFC 3161 timestamp does not parse or verify.
    #[error("{0}")]
    Timestamp(String),
}

/// Why a configured file cannot be used as read (reasons an operator can act on).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FileRejection {
    #[error("does not exist")]
    Missing,
    #[error("cannot be read (permission denied)")]
    PermissionDenied,
    #[error("cannot be read: {0}")]
    Unreadable(#[source] Arc<std::io::Error>),
    #[error("is a directory, not a file")]
    Directory,
    #[error("is not a regular file")]
    NotRegular,
    /// `len` and `limit` in bytes, as the file's metadata gave its length.
    #[error("is {len} bytes, more than the {limit}-byte limit for this kind of file")]
    TooLarge { len: u64, limit: u64 },
    /// The file grew past `limit` bytes while it was read.
    #[error("is larger than the {limit}-byte limit")]
    GrewPastLimit { limit: u64 },
    /// A key file of nothing but whitespace.
    #[error("is empty")]
    Empty,
}

impl From<std::io::Error> for FileRejection {
    fn from(e: std::io::Error) -> FileRejection {
        match e.kind() {
            std::io::ErrorKind::NotFound => FileRejection::Missing,
            std::io::ErrorKind::PermissionDenied => FileRejection::PermissionDenied,
            _ => FileRejection::Unreadable(Arc::new(e)),
        }
    }
}
