//! `pullwarden verdicts [--decision allow|deny] [--enforced[=true|false]] [--json]`: the
//! latest verdict of every image this node has decided, newest first.

use anyhow::Context as _;

use super::verdict::{AdminArg, table};
use crate::policy::Decision;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DecisionFilter {
    Allow,
    Deny,
}

#[derive(Debug, clap::Args)]
pub struct VerdictsArgs {
    /// Only verdicts with this decision.
    #[arg(long, value_enum)]
    pub decision: Option<DecisionFilter>,
    /// Only verdicts that took effect (`--enforced`, `--enforced=true`: enforce mode) or
    /// only audit-mode ones (`--enforced=false`). `--decision deny --enforced` lists the
    /// images actually refused; `--decision deny --enforced=false` the ones audit let
    /// through.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub enforced: Option<bool>,
    /// Print a JSON array of verdicts.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArg,
}

pub fn run(args: &VerdictsArgs) -> anyhow::Result<i32> {
    let client = args.admin.client()?;
    let decision = args.decision.map(|d| match d {
        DecisionFilter::Allow => Decision::Allow,
        DecisionFilter::Deny => Decision::Deny,
    });
    let mut list = super::runtime()?.block_on(client.verdicts(decision))?;
    if let Some(enforced) = args.enforced {
        list.retain(|v| v.enforced == enforced);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&list).context("encoding JSON")?
        );
        return Ok(0);
    }
    if list.is_empty() {
        println!("no verdicts recorded on this node");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|v| {
            let decision = match (v.decision, v.enforced) {
                (Decision::Allow, _) => "allow",
                (Decision::Deny, true) => "deny",
                (Decision::Deny, false) => "deny (audit: allowed)",
            };
            vec![
                decision.to_string(),
                v.policy.clone(),
                v.mode.to_string(),
                v.decided_at.clone(),
                v.digest.to_string(),
                v.reference.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "DECISION",
                "POLICY",
                "MODE",
                "DECIDED",
                "DIGEST",
                "REFERENCE"
            ],
            &rows
        )
    );
    if list.iter().any(|v| v.audit_allowed()) {
        println!(
            "(audit: allowed = the policy is in audit mode: the image was let through; enforce would deny — see `pullwarden explain`)"
        );
    }
    Ok(0)
}
