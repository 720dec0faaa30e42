//! `pullwarden policy check`: validate the config and print the effective policy;
//! `pullwarden policy test`: what a candidate config would change on this node
//! ([`super::policy_test`]).

use clap::Subcommand;

use super::ConfigArg;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate the config file and every file it names (public keys, trust roots,
    /// denylists: each read and parsed), and print the effective configuration (every
    /// default filled in). Exit 0 when valid, 64 with the offending key and file when
    /// not. Warnings (one key listed twice, in any encoding) go to stderr.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of TOML.
        #[arg(long)]
        json: bool,
    },
    /// What if: judge every image present on this node under a candidate config, from
    /// the inventories and signature outcomes stored when they were pulled (no layer
    /// read; the registry only for signature outcomes not stored, counted), and print
    /// what would change. Talks to the running daemon; changes nothing. Exit 0 when the
    /// test ran, 2 when the candidate config does not load, 1 on other failures.
    Test(super::policy_test::PolicyTestArgs),
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<i32> {
    match cmd {
        PolicyCommand::Test(args) => super::policy_test::run(&args),
        PolicyCommand::Check { config, json } => {
            let mut cfg = config.load()?;
            let files = cfg.check_files()?;
            for w in &files.warnings {
                eprintln!("warning: {w}");
            }
            let effective = crate::config::Effective::from(&cfg);
            if json {
                println!("{}", serde_json::to_string_pretty(&effective)?);
            } else {
                let source = cfg
                    .source
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "built-in defaults".into());
                println!("# effective configuration ({source}); config is valid");
                print!("{}", toml::to_string_pretty(&effective)?);
                if !cfg
                    .policies
                    .iter()
                    .any(|p| p.images.iter().any(|g| g == "**"))
                {
                    eprintln!(
                        "note: no policy matches every image (images = [\"**\"]); pulls that match no policy pass unchecked"
                    );
                }
            }
            Ok(0)
        }
    }
}
