//! `pullwarden verdict REF|DIGEST [--json]`: the node's latest verdict for one image.
//! Also holds what every daemon-facing command shares: `--admin`/`--config` and the
//! table helpers.

use std::path::PathBuf;

use anyhow::Context as _;

use super::ConfigArg;
use crate::admin::AdminClient;
use crate::policy::{Decision, Verdict};

/// `--admin SOCKET` (default: `[server] admin` of the config) and `--config FILE`.
#[derive(Debug, clap::Args, Clone)]
pub struct AdminArg {
    /// The daemon's admin socket. Default: `[server] admin` from the config file.
    #[arg(long, value_name = "SOCKET", env = "PULLWARDEN_ADMIN")]
    pub admin: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArg,
}

impl AdminArg {
    /// The client for the chosen socket. The config is read only when `--admin` is not
    /// given, so a broken config file does not stop an operator from asking the daemon.
    pub fn client(&self) -> anyhow::Result<AdminClient> {
        let socket = match &self.admin {
            Some(s) => s.clone(),
            None => self.config.load()?.server.admin,
        };
        Ok(AdminClient::new(socket))
    }
}

#[derive(Debug, clap::Args)]
pub struct VerdictArgs {
    /// Image reference (as pulled, e.g. `nginx:1.27`) or manifest digest (`sha256:…`).
    #[arg(value_name = "REF|DIGEST")]
    pub image: String,
    /// Print the verdict as one JSON document.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArg,
}

pub fn run(args: &VerdictArgs) -> anyhow::Result<i32> {
    let client = args.admin.client()?;
    let v = super::runtime()?.block_on(client.verdict(&args.image))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).context("encoding JSON")?
        );
    } else {
        print!("{}", summary(&v));
    }
    Ok(0)
}

pub(crate) fn decision_word(v: &Verdict) -> String {
    let kind = v
        .deny_kind
        .and_then(|k| serde_json::to_value(k).ok())
        .and_then(|k| k.as_str().map(str::to_string));
    match (v.decision, v.enforced, kind) {
        (Decision::Allow, _, _) => "ALLOW".into(),
        (Decision::Deny, true, Some(k)) => format!("DENY ({k})"),
        (Decision::Deny, true, None) => "DENY".into(),
        (Decision::Deny, false, Some(k)) => {
            format!("DENY (audit: allowed; {k}) — audit mode let the image through")
        }
        (Decision::Deny, false, None) => {
            "DENY (audit: allowed) — audit mode let the image through".into()
        }
    }
}

/// The human summary shared by `verdict` and the head of `explain`.
pub(crate) fn summary(v: &Verdict) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("image", v.reference.clone()),
        ("digest", v.digest.to_string()),
    ];
    if let Some(p) = &v.platform_digest {
        rows.push(("platform", p.to_string()));
    }
    rows.push(("decision", decision_word(v)));
    rows.push(("policy", format!("{} (mode {})", v.policy, v.mode)));
    rows.push(("decided", v.decided_at.clone()));
    let s = &v.signatures;
    rows.push((
        "signatures",
        if s.required {
            format!(
                "{} ({} of {} required signers verified, {} checked)",
                if s.satisfied {
                    "satisfied"
                } else {
                    "NOT satisfied"
                },
                s.verified_signers.len(),
                s.threshold,
                s.checks.len()
            )
        } else {
            "not required by the policy".to_string()
        },
    ));
    rows.push((
        "findings",
        format!(
            "{} secrets, {} vulnerabilities, {} files; {} packages",
            v.findings.secrets.len(),
            v.findings.vulnerabilities.len(),
            v.findings.files.len(),
            v.packages
        ),
    ));
    let mut out = String::new();
    for (k, val) in rows {
        out.push_str(&format!("{k:<11} {val}\n"));
    }
    if v.reasons.is_empty() {
        out.push_str("reasons     none\n");
    } else {
        out.push_str("reasons\n");
        for r in &v.reasons {
            out.push_str(&format!("  - {r}\n"));
        }
    }
    if !v.warnings.is_empty() {
        out.push_str("warnings\n");
        for w in &v.warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    out
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(c);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let t = table(
            &["A", "LONGER", "LAST"],
            &[
                vec!["xxxx".into(), "y".into(), "z z".into()],
                vec!["x".into(), "yyyyyyyy".into(), "".into()],
            ],
        );
        assert_eq!(
            t,
            "A     LONGER    LAST\nxxxx  y         z z\nx     yyyyyyyy\n"
        );
    }
}
