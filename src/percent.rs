//! The one percent-encoder (RFC 3986 section 2.1), on the `percent-encoding` crate: every
//! byte but the unreserved characters (`ALPHA / DIGIT / "-" / "." / "_" / "~"`, section
//! 2.3) becomes `%XX` with upper-case hex. Used for URL query values, admin API path
//! segments and purl components.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

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

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_all_but_unreserved() {
        assert_eq!(super::encode("a-b._~/+ :@é"), "a-b._~%2F%2B%20%3A%40%C3%A9");
        assert_eq!(
            super::encode_segment("sha256:ab/c d@x"),
            "sha256:ab%2Fc%20d@x"
        );
    }
}
