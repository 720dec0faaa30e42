//! Log lines that journald and log shippers can read: the JSON event format of
//! `log_format = "json"` (one object per line, fields flat, lists as JSON arrays,
//! addresses and paths as plain strings) and the helpers the audit line uses.
//!
//! tracing's own JSON formatter writes every non-primitive field as a Debug string
//! (`"reasons": "[\"no signatures found\"]"`), and a tracing `Value` cannot be a list.
//! So list fields are recorded with [`JsonList`], whose text is a JSON array, and
//! [`JsonLines`] embeds the fields named in [`JSON_FIELDS`] as JSON when they parse.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Fields whose value is JSON text (written with [`JsonList`]) and is embedded as JSON.
pub const JSON_FIELDS: &[&str] = &["reasons"];

/// A list of strings that displays as a JSON array (`["a","b"]`): readable in text
/// logs, and an array in JSON logs (see [`JSON_FIELDS`]).
pub struct JsonList<'a>(pub &'a [String]);

impl fmt::Display for JsonList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self.0) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// The JSON event format: one object per line with `timestamp` (RFC 3339, UTC),
/// `level`, `target`, `message`, every field flat (numbers and bools as such, every
/// other value as its Display/Debug text, [`JSON_FIELDS`] as JSON) and, inside spans,
/// `spans` (their names, outermost first).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        let now = crate::rfc3339::format(time::OffsetDateTime::now_utc());
        line.insert("timestamp".into(), Value::String(now));
        line.insert("level".into(), Value::String(meta.level().to_string()));
        line.insert("target".into(), Value::String(meta.target().to_string()));
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        for (k, v) in fields.0 {
            // The line's own keys win over a field of the same name.
            line.entry(k).or_insert(v);
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope
                .from_root()
                .map(|s| Value::String(s.name().to_string()))
                .collect();
            if !spans.is_empty() {
                line.entry("spans").or_insert(Value::Array(spans));
            }
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, field: &Field, v: Value) {
        self.0.insert(field.name().to_string(), v);
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.to_string()));
        self.put(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if JSON_FIELDS.contains(&field.name())
            && let Ok(v @ (Value::Array(_) | Value::Object(_))) = serde_json::from_str(&text)
        {
            self.put(field, v);
            return;
        }
        self.put(field, Value::String(text));
    }
}

/// Whether log output to stderr may carry ANSI colour: only on a terminal, and never
/// with `NO_COLOR` set (<https://no-color.org>). journald and files get plain text.
pub fn stderr_wants_colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_lists_as_arrays_and_addresses_as_strings() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .event_format(JsonLines)
            .finish();
        let reasons = vec!["no signatures found".to_string(), "say \"hi\"".to_string()];
        let addr: std::net::SocketAddr = "127.0.0.1:9469".parse().unwrap();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("pull");
            let _g = span.enter();
            tracing::info!(
                target: "pullwarden::audit",
                reasons = %JsonList(&reasons),
                addr = %addr,
                socket = %std::path::Path::new("/run/pw/cri.sock").display(),
                enforced = false,
                count = 3u64,
                "pull decision"
            );
            tracing::info!(reasons = %JsonList(&[]), "none");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let v = &lines[0];
        assert_eq!(v["reasons"], serde_json::json!(reasons));
        assert_eq!(v["addr"], "127.0.0.1:9469");
        assert_eq!(v["socket"], "/run/pw/cri.sock");
        assert_eq!(v["enforced"], false);
        assert_eq!(v["count"], 3);
        assert_eq!(v["message"], "pull decision");
        assert_eq!(v["target"], "pullwarden::audit");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["spans"], serde_json::json!(["pull"]));
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["reasons"], serde_json::json!([]));
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn only_json_fields_are_embedded() {
        // A field outside JSON_FIELDS that happens to look like JSON stays a string.
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(other = %"[1,2]", reasons = %"not json", "x");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["other"], "[1,2]");
        assert_eq!(v["reasons"], "not json");
    }
}
