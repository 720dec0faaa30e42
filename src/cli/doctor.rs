//! `pullwarden doctor [--config FILE] [--admin SOCKET] [--json]`: proof that this node
//! enforces. The daemon runs the checks (kubelet endpoint, policy keys, config
//! fingerprints, live canary, containerd, last CRI call; see [`crate::doctor`]) and this
//! prints them, one line each with its fix. When the daemon cannot be reached, the
//! kubelet check runs here and the daemon check fails.
//!
//! Exit codes: 0 when the node enforces (no check failed; warnings allowed), 2 when a
//! check failed, 1 when doctor itself could not run, 64 for bad usage.

use anyhow::Context as _;

use super::verdict::AdminArg;
use crate::admin::AdminClientError;
use crate::config::{Config, DEFAULT_CONFIG_PATH};
use crate::doctor::{self, Check, Report};

/// Exit code when a check failed: the node does not (provably) enforce.
pub const EXIT_NOT_ENFORCING: i32 = 2;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Prove that this node enforces. Checks that the running kubelet's image \
endpoint (its command line, --config file and --config-dir drop-ins, read from /proc) is \
pullwarden's socket; that every enforcing policy's keys load and the running policies match \
the config file on disk; that a generated image side-loaded into containerd is visible to \
containerd but hidden by pullwarden (and removed again); that containerd answers; and when \
the kubelet last called. Exit 0 when no check failed, 2 when one did, 1 on error."
)]
pub struct DoctorArgs {
    /// Print the report as one JSON document:
    /// {"enforcing": bool, "checks": [{"name", "status", "detail", "fix"}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArg,
}

pub fn run(args: &DoctorArgs) -> anyhow::Result<i32> {
    let rt = super::runtime()?;
    let report = match args.admin.client() {
        Ok(client) => match rt.block_on(client.doctor()) {
            Ok(r) => match &args.admin.config.config {
                Some(file) => with_file(r, file, rt.block_on(client.status())),
                None => r,
            },
            Err(e @ (AdminClientError::NotRunning { .. } | AdminClientError::Timeout { .. })) => {
                without_daemon(args, &e.to_string())
            }
            Err(e) => return Err(e).context("running the doctor checks in the daemon"),
        },
        Err(e) => return Err(e),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding JSON")?
        );
    } else {
        print!("{}", report.render());
    }
    Ok(if report.enforcing {
        0
    } else {
        EXIT_NOT_ENFORCING
    })
}

/// With an explicit `--config FILE` that is not the file the daemon runs: whether the
/// daemon's running policies are those of FILE (the daemon compares with its own file).
fn with_file(
    report: Report,
    file: &std::path::Path,
    status: Result<serde_json::Value, AdminClientError>,
) -> Report {
    let Ok(status) = status else {
        return report;
    };
    let theirs = status["config"].as_str().map(std::path::PathBuf::from);
    let same = |a: &std::path::Path, b: &std::path::Path| match (a.canonicalize(), b.canonicalize())
    {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if theirs.as_deref().is_some_and(|t| same(t, file)) {
        return report;
    }
    let running: Vec<(String, String)> = status["policies"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let fp = p["fingerprint"].as_str().unwrap_or("error").to_string();
                    (p["name"].as_str().unwrap_or("").to_string(), fp)
                })
                .collect()
        })
        .unwrap_or_default();
    let on_disk = Config::load(file, true)
        .map(|c| {
            let names: Vec<String> = c.policies.iter().map(|p| p.name.clone()).collect();
            let state = crate::app::policy_state(std::sync::Arc::new(c));
            names
                .into_iter()
                .map(|n| {
                    let fp = state
                        .fingerprint(&n)
                        .map(str::to_string)
                        .unwrap_or_else(|_| "error".into());
                    (n, fp)
                })
                .collect()
        })
        .map_err(|e| e.to_string());
    let mut check = doctor::fingerprint_check(&running, on_disk, file);
    if let Some(t) = theirs {
        check.detail = format!("{} (the daemon runs {})", check.detail, t.display());
    }
    let mut checks = report.checks;
    checks.push(check);
    Report::new(checks)
}

/// The report when the daemon does not answer: the daemon check fails, and the kubelet
/// check runs here against the configured listen socket.
fn without_daemon(args: &DoctorArgs, why: &str) -> Report {
    let config = args.admin.config.load().ok();
    let listen = config
        .as_ref()
        .map(|c: &Config| c.server.listen.clone())
        .unwrap_or_else(|| {
            Config::parse("")
                .map(|c| c.server.listen)
                .unwrap_or_default()
        });
    let mut checks = vec![Check::fail(
        "daemon",
        format!("pullwarden does not answer: {why}"),
        format!(
            "start it (systemctl enable --now pullwarden) with the config {}",
            args.admin
                .config
                .config
                .as_deref()
                .unwrap_or(std::path::Path::new(DEFAULT_CONFIG_PATH))
                .display()
        ),
    )];
    checks.extend(doctor::kubelet_checks(
        std::path::Path::new("/proc"),
        &listen,
    ));
    Report::new(checks)
}
