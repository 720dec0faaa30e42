//! `pullwarden verify REF`: offline check of an image's signatures against the policy
//! that matches it — the same discovery and checks the daemon runs before a pull.
//! Exit 0 when the policy's signature requirement holds, 1 when not, 2 on error.

use super::ConfigArg;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::SignatureReport;
use crate::verify::{ImageDigests, Verifier, resolve_image};

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Image reference (tag or digest), e.g. 127.0.0.1:5000/app:v1.
    pub reference: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Outcome<'a> {
    reference: String,
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<String>,
    policy: Option<&'a str>,
    signatures: SignatureReport,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<i32> {
    match run_inner(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("pullwarden verify: {e:#}");
            Ok(2)
        }
    }
}

fn run_inner(args: &VerifyArgs) -> anyhow::Result<i32> {
    let cfg = args.config.load()?;
    let reference: Reference = args.reference.parse()?;
    let policy = crate::engine::policy_for(&cfg, &reference, "");
    let verifier = policy
        .and_then(|p| p.signatures.as_ref())
        .map(Verifier::load)
        .transpose()?;
    let client = RegistryClient::new(&cfg.registry)?;
    let rt = super::runtime()?;
    let creds = Credentials::default();
    let (digests, report) = rt.block_on(async {
        let digests: ImageDigests = resolve_image(&client, &reference, &creds).await?;
        let report = match &verifier {
            Some(v) => v.verify(&client, &reference, &digests, &creds).await?,
            None => SignatureReport {
                satisfied: true,
                ..SignatureReport::default()
            },
        };
        anyhow::Ok((digests, report))
    })?;
    let outcome = Outcome {
        reference: reference.to_string(),
        digest: digests.manifest.to_string(),
        index: digests.index.as_ref().map(|d| d.to_string()),
        policy: policy.map(|p| p.name.as_str()),
        signatures: report,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_text(&outcome);
    }
    Ok(if outcome.signatures.satisfied { 0 } else { 1 })
}

fn print_text(o: &Outcome<'_>) {
    let r = &o.signatures;
    let policy = o.policy.unwrap_or("(none)");
    println!("{} ({})", o.reference, o.digest);
    if let Some(i) = &o.index {
        println!("  index {i}");
    }
    if !r.required {
        println!("policy {policy}: no signature requirement");
        return;
    }
    println!(
        "policy {policy}: signatures {} ({} of {} required signers verified)",
        if r.satisfied {
            "SATISFIED"
        } else {
            "NOT SATISFIED"
        },
        r.verified_signers.len(),
        r.threshold
    );
    for s in &r.verified_signers {
        println!("  verified signer: {s}");
    }
    for c in &r.checks {
        let mark = if c.verified { "ok  " } else { "FAIL" };
        let signer = c.signer.as_deref().unwrap_or("-");
        let artifact = c.artifact.as_deref().unwrap_or("-");
        println!(
            "  {mark} on {} via {} [{artifact}] signer {signer}: {}",
            c.subject, c.source, c.reason
        );
    }
}
