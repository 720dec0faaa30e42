//! `pullwarden` subcommands, one file each. `main` parses arguments, loads config where
//! a command needs it and maps failures to exit codes: 64 for bad usage or config
//! (EX_USAGE), 1 for failure, and command-specific codes documented per command.

pub mod cri;
pub mod db;
pub mod doctor;
pub mod explain;
pub mod policy;
pub mod policy_test;
pub mod purge;
pub mod reload;
pub mod render;
pub mod sbom;
pub mod scan;
pub mod serve;
pub mod sign;
pub mod status;
pub mod verdict;
pub mod verdicts;
pub mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};

/// `--format`/`--sbom` values are the SBOM writers' own names.
impl clap::ValueEnum for crate::scan::sbom::SbomFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &crate::scan::sbom::SbomFormat::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Exit code for a config or usage error (sysexits EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "pullwarden",
    version,
    about = "Verify signatures and scan layers of every image pull on a Kubernetes node",
    long_about = "pullwarden sits on the CRI image service socket between the kubelet and \
containerd. Before a pull completes it verifies the image's cosign/sigstore signatures and \
scans its layers (packages, vulnerabilities, secrets, risky files), then records a verdict \
keyed by the image digest. The CLI queries and explains verdicts and scans images offline."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (CRI proxy, admin socket, metrics).
    Serve(serve::ServeArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// A small CRI client (like crictl) for operators and the demo.
    #[command(subcommand)]
    Cri(cri::CriCommand),
    /// The node's verdict for an image.
    Verdict(verdict::VerdictArgs),
    /// Every image's latest verdict on this node.
    Verdicts(verdicts::VerdictsArgs),
    /// Every reason behind a verdict: signatures tried, findings, policy.
    Explain(explain::ExplainArgs),
    /// Forget verdicts so the next pull re-evaluates.
    Purge(purge::PurgeArgs),
    /// Re-read config and keys without a restart (like SIGHUP).
    Reload(reload::ReloadArgs),
    /// Daemon health, upstream reachability, store and database versions.
    Status(status::StatusArgs),
    /// The SBOM of an image the daemon has scanned.
    Sbom(sbom::SbomArgs),
    /// Verify an image's signatures against the matching policy (offline; no daemon).
    /// Exit 0 when the signature requirement holds, 1 when not, 2 on error.
    Verify(verify::VerifyArgs),
    /// Sign an image (cosign legacy .sig tag or sigstore bundle referrer) — the
    /// project's signer for CI and demos.
    Sign(sign::SignArgs),
    /// Generate an ECDSA P-256 key pair for `pullwarden sign`.
    Keygen(sign::KeygenArgs),
    /// Scan an image offline (OCI layout or docker archive): packages, secrets, risky
    /// files, and the policy decision. Exit 0 allow, 1 deny, 2 error.
    Scan(scan::ScanArgs),
    /// The offline OSV vulnerability database.
    Db(db::DbArgs),
    /// Prove this node enforces: kubelet endpoint, policy keys, a live canary.
    /// Exit 0 when no check failed, 2 when one did.
    Doctor(doctor::DoctorArgs),
}

/// `--config FILE` shared by commands that read the config.
#[derive(Debug, clap::Args, Clone)]
pub struct ConfigArg {
    /// Config file (TOML). Default: /etc/pullwarden/config.toml; a missing default file
    /// means built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE", env = "PULLWARDEN_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    pub fn load(&self) -> Result<Config, ConfigError> {
        match &self.config {
            Some(p) => Config::load(p, true),
            None => Config::load(std::path::Path::new(DEFAULT_CONFIG_PATH), false),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    }
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Policy(c) => policy::run(c),
        Command::Cri(c) => cri::run(c),
        Command::Verdict(a) => verdict::run(&a),
        Command::Verdicts(a) => verdicts::run(&a),
        Command::Explain(a) => explain::run(&a),
        Command::Purge(a) => purge::run(&a),
        Command::Reload(a) => reload::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Sbom(a) => sbom::run(&a),
        Command::Verify(a) => verify::run(&a),
        Command::Sign(a) => sign::run(&a),
        Command::Keygen(a) => sign::run_keygen(&a),
        Command::Scan(a) => scan::run(&a),
        Command::Db(a) => db::run(&a),
        Command::Doctor(a) => doctor::run(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pullwarden: {}", error_chain(&e));
            if e.downcast_ref::<ConfigError>().is_some() {
                EXIT_CONFIG
            } else {
                1
            }
        }
    }
}

/// The error and its causes, each cause once: many errors already name their source in
/// their own message, and repeating it ("…: No such file: No such file") reads badly.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// A current-thread tokio runtime for client commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Named {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Named {
            path: "/x".into(),
            source: io,
        })
        .context("loading the config");
        assert_eq!(
            error_chain(&e),
            "loading the config: cannot read /x: no such file"
        );
    }
}
