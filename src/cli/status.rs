//! `pullwarden status [--json]`: daemon health, upstream reachability, store and
//! vulnerability database versions, as the daemon reports them. Exit 0 when the daemon
//! answers, 2 when it answers but reports itself unhealthy (`"healthy": false`, with the
//! reasons in `problems`: containerd not answering within 2 s, an enforcing policy whose
//! keys do not load), 1 when it cannot be reached.

use anyhow::Context as _;
use serde_json::Value;

use super::verdict::AdminArg;

/// Exit code when the daemon reports `"healthy": false`.
pub const EXIT_UNHEALTHY: i32 = 2;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as one JSON document.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArg,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<i32> {
    let client = args.admin.client()?;
    let status = super::runtime()?.block_on(client.status())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status).context("encoding JSON")?
        );
    } else {
        println!("pullwarden on {}", client.socket().display());
        print!("{}", render(&status, 0));
        if let Some(Value::Array(problems)) = status.get("problems") {
            for p in problems.iter().filter_map(Value::as_str) {
                eprintln!("pullwarden: unhealthy: {p}");
            }
        }
    }
    Ok(match status.get("healthy") {
        Some(Value::Bool(false)) => EXIT_UNHEALTHY,
        _ => 0,
    })
}

/// Nested JSON as indented `key: value` lines.
fn render(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                match val {
                    Value::Object(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}{k}:\n{}", render(val, indent + 2)));
                    }
                    Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        for item in items {
                            out.push_str(&format!("{pad}  -\n{}", render(item, indent + 4)));
                        }
                    }
                    other => out.push_str(&format!("{pad}{k}: {}\n", scalar(other))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Object(o) if o.is_empty() => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested() {
        let v = serde_json::json!({
            "healthy": true,
            "upstream": {"containerd": "reachable", "latency_ms": 3},
            "db": {"version": null},
            "tags": ["a", "b"],
        });
        let t = render(&v, 0);
        assert!(t.contains("healthy: true\n"), "{t}");
        assert!(
            t.contains("upstream:\n  containerd: reachable\n  latency_ms: 3\n"),
            "{t}"
        );
        assert!(t.contains("db:\n  version: -\n"), "{t}");
        assert!(t.contains("tags: a, b\n"), "{t}");
    }
}
