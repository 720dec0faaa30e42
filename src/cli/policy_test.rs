//! `pullwarden policy test --config NEW.toml [--json]`: what would change on this node
//! under a candidate configuration. The running daemon judges every image present in
//! containerd from the inventories and signature outcomes it stored when the images
//! were pulled (no layer read), asking the registry only for signature outcomes it
//! does not hold. Nothing is stored and nothing changes on the node.
//!
//! Exit codes: 0 the test ran (whatever it found), 2 the candidate config does not
//! load (the config error on stderr), 1 any other failure (daemon not running, …).

use std::path::PathBuf;

use anyhow::Context as _;

use crate::admin::{AdminClient, AdminClientError};
use crate::rescore::what_if::Report;

/// Exit code for a candidate config that does not load.
pub const EXIT_BAD_CANDIDATE: i32 = 2;

#[derive(Debug, clap::Args)]
pub struct PolicyTestArgs {
    /// The candidate config (TOML) to judge the node's images under. Its key, trust-root
    /// and denylist files are read as a reload would read them; its `[server]` section
    /// is not used.
    #[arg(long, value_name = "NEW.toml")]
    pub config: PathBuf,
    /// Print one JSON document: `{"images": [{"digest", "reference", "decision",
    /// "was", "reasons", "changed"}], "changed", "skipped", "registry_calls", "db_version"}`.
    #[arg(long)]
    pub json: bool,
    /// Print every image, not only those whose decision would change.
    #[arg(long)]
    pub all: bool,
    /// The running daemon's admin socket. Default: `[server] admin` of the running
    /// config (`--running-config`).
    #[arg(long, value_name = "SOCKET", env = "PULLWARDEN_ADMIN")]
    pub admin: Option<PathBuf>,
    /// The running daemon's config, read only to find its admin socket.
    #[arg(long, value_name = "FILE", env = "PULLWARDEN_CONFIG")]
    pub running_config: Option<PathBuf>,
}

pub fn run(args: &PolicyTestArgs) -> anyhow::Result<i32> {
    // The candidate is checked here first, so a typo is reported with its key and file
    // without a daemon; the daemon loads it again (it reads the files as root).
    if let Err(e) = crate::app::load_candidate(&args.config) {
        eprintln!(
            "pullwarden: candidate config {}: {e}",
            args.config.display()
        );
        return Ok(EXIT_BAD_CANDIDATE);
    }
    let config = std::path::absolute(&args.config)
        .with_context(|| format!("resolving {}", args.config.display()))?;
    let socket = match &args.admin {
        Some(s) => s.clone(),
        None => {
            super::ConfigArg {
                config: args.running_config.clone(),
            }
            .load()?
            .server
            .admin
        }
    };
    let client = AdminClient::new(socket);
    let value = match super::runtime()?.block_on(client.policy_test(&config)) {
        Ok(v) => v,
        Err(AdminClientError::Status {
            status: 422,
            message,
        }) => {
            eprintln!(
                "pullwarden: candidate config {}: {message}",
                config.display()
            );
            return Ok(EXIT_BAD_CANDIDATE);
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    let report: Report = serde_json::from_value(value).context("decoding the daemon's answer")?;
    print!("{}", render(&report, args.all));
    Ok(0)
}

fn decision(d: Option<crate::policy::Decision>) -> &'static str {
    match d {
        Some(crate::policy::Decision::Allow) => "allow",
        Some(crate::policy::Decision::Deny) => "deny",
        None => "-",
    }
}

/// The table of images whose decision would change (every image with `all`), and a
/// summary line.
pub fn render(r: &Report, all: bool) -> String {
    let rows: Vec<Vec<String>> = r
        .images
        .iter()
        .filter(|i| all || i.changed || i.decision.is_none())
        .map(|i| {
            vec![
                i.reference.clone(),
                super::render::short_digest(&i.digest),
                decision(i.was).to_string(),
                decision(i.decision).to_string(),
                i.reasons.join("; "),
            ]
        })
        .collect();
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&super::render::plain_table(
            &["IMAGE", "DIGEST", "NOW", "UNDER NEW", "REASONS"],
            &rows,
        ));
        out.push('\n');
    }
    out.push_str(&format!(
        "{} images on the node: {} would change, {} not judged from the store, {} registry calls (vulnerability db {})\n",
        r.images.len(),
        r.changed,
        r.skipped,
        r.registry_calls,
        r.db_version
    ));
    out
}
