//! Extensions specific to the HTTP/2 protocol.

use crate::hpack::BytesStr;

use bytes::Bytes;
use std::fmt;

/// Represents the `:protocol` pseudo-header used by
/// the [Extended CONNECT Protocol].
///
/// [Extended CONNECT Protocol]: https://datatracker.ietf.org/doc/html/rfc8441#section-4
#[derive(Clone, Eq, PartialEq)]
pub struct Protocol {
    value: BytesStr,
}

impl Protocol {
    /// Converts a static string to a protocol name.
    pub const fn from_static(value: &'static str) -> Self {
        Self {
            value: BytesStr::from_static(value),
        }
    }

    /// Returns a str representation of the header.
    pub fn as_str(&self) -> &str {
        self.value.as_str()
    }

    pub(crate) fn try_from(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        Ok(Self {
            value: BytesStr::try_from(bytes)?,
        })
    }
}

impl<'a> From<&'a str> for Protocol {
    fn from(value: &'a str) -> Self {
        Self {
            value: BytesStr::from(value),
        }
    }
}

impl AsRef<[u8]> for Protocol {
    fn as_ref(&self) -> &[u8] {
        self.value.as_ref()
    }
}

impl fmt::Debug for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.value.fmt(f)
    }
}

// pullwarden patch (see .cargo/patches/PATCH.md): the two request extensions below.

/// The raw `:authority` of a request whose authority `http::uri::Authority` does not
/// parse (a unix socket path, its percent-encoding, an empty value), or which came
/// without `:scheme`. The request's URI then has no authority.
#[derive(Clone, Eq, PartialEq)]
pub struct RawAuthority {
    value: Bytes,
}

impl RawAuthority {
    pub(crate) fn new(value: Bytes) -> Self {
        Self { value }
    }

    /// The bytes the client sent, unchanged.
    pub fn as_bytes(&self) -> &[u8] {
        &self.value
    }
}

impl fmt::Debug for RawAuthority {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RawAuthority({:?})", String::from_utf8_lossy(&self.value))
    }
}

/// Marks a request whose head upstream h2 would reset with `PROTOCOL_ERROR` (no :path,
/// a malformed :path or :scheme, :status or :protocol on a request). Its URI is `/` and
/// it has no headers; the application answers it (e.g. `SendResponse::send_reset`).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct RefusedRequest {
    reason: String,
    path: Option<String>,
}

impl RefusedRequest {
    pub(crate) fn new(reason: String, path: Option<String>) -> Self {
        Self { reason, path }
    }

    /// Why the head is malformed.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The raw `:path`, if the request had one.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
}
