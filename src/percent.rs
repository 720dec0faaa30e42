//! The one percent-encoder and decoder (RFC 3986 section 2.1), on the `percent-encoding`
//! crate. Encoding: every byte but the unreserved characters (`ALPHA / DIGIT / "-" /
//! "." / "_" / "~"`, section 2.3) becomes `%XX` with upper-case hex; used for URL query
//! values, admin API path segments and purl components. Decoding comes in two
//! strengths: [`decode`] refuses what is malformed (admin API paths and queries, the
//! kubelet's endpoint URL), [`decode_lossy`] never fails (gRPC's `grpc-message`, which
//! is only shown).

use percent_encoding::{
    AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_decode_str, utf8_percent_encode,
};

/// Everything but RFC 3986 unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// A path segment: unreserved characters plus `:` and `@` (both legal in a segment,
/// and common in digests and references) stay as they are.
const SEGMENT: &AsciiSet = &UNRESERVED.remove(b':').remove(b'@');

/// Percent-encodes everything but RFC 3986 unreserved characters (query values, purl
/// components).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Percent-encodes one URL path segment, keeping `:` and `@`.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Decodes `%XX` escapes (either case of hex). `None` when a `%` is not followed by two
/// hex digits, or when the decoded bytes are not UTF-8 (as Go's `url.PathUnescape`).
pub fn decode(s: &str) -> Option<String> {
    let mut rest = s.as_bytes();
    while let Some(at) = rest.iter().position(|&c| c == b'%') {
        let hex = rest.get(at + 1..at + 3)?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        rest = rest.get(at + 3..)?;
    }
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Decodes `%XX` escapes without failing: a malformed escape stays as written and
/// bytes that are not UTF-8 become U+FFFD (gRPC's `grpc-message`, PROTOCOL-HTTP2).
pub fn decode_lossy(v: &[u8]) -> String {
    percent_decode(v).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_strictly_or_leniently() {
        assert_eq!(super::decode("a%20b%2fc").as_deref(), Some("a b/c"));
        for bad in ["%", "%4", "%zz", "%+1", "a%2", "%ff"] {
            assert_eq!(super::decode(bad), None, "{bad}");
        }
        assert_eq!(super::decode_lossy(b"a%20b"), "a b");
        assert_eq!(super::decode_lossy(b"%zz%4 100%"), "%zz%4 100%");
        assert_eq!(super::decode_lossy(b"%ff"), "\u{fffd}");
    }

    #[test]
    fn encodes_all_but_unreserved() {
        assert_eq!(super::encode("a-b._~/+ :@é"), "a-b._~%2F%2B%20%3A%40%C3%A9");
        assert_eq!(
            super::encode_segment("sha256:ab/c d@x"),
            "sha256:ab%2Fc%20d@x"
        );
    }
}
