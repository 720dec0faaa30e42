//! `pullwarden verdicts [--decision allow|deny] [--json]`: the latest verdict of every
//! image this node has decided, newest first.

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
    let list = super::runtime()?.block_on(client.verdicts(decision))?;
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
            let decision = match (v.decision, v.would_deny) {
                (Decision::Allow, false) => "allow",
                (Decision::Allow, true) => "allow*",
                (Decision::Deny, _) => "deny",
            };
            vec![
                decision.to_string(),
                v.policy.clone(),
                v.mode.clone(),
                v.decided_at.clone(),
                v.digest.clone(),
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
    if list
        .iter()
        .any(|v| v.would_deny && v.decision == Decision::Allow)
    {
        println!("(* allowed in audit mode; enforce would deny — see `pullwarden explain`)");
    }
    Ok(0)
}
