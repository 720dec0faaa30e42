//! The one RFC 3339 formatter for verdicts, history, audit lines and reasons.

/// Formats a time as RFC 3339 (`time`'s well-known format). Out-of-range values (never
/// produced by `OffsetDateTime::now_utc` or a checked Unix timestamp) fall back to the
/// Unix seconds.
pub fn format(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_with_z() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(super::format(t), "2023-11-14T22:13:20Z");
    }
}
