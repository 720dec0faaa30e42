//! `pullwarden purge DIGEST|--all`: forget verdicts so the next pull re-evaluates.

use super::verdict::AdminArg;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["image", "all"])))]
pub struct PurgeArgs {
    /// Manifest digest (or reference) of the image whose verdicts to forget.
    #[arg(value_name = "DIGEST")]
    pub image: Option<String>,
    /// Forget every verdict on this node.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub admin: AdminArg,
}

pub fn run(args: &PurgeArgs) -> anyhow::Result<i32> {
    let client = args.admin.client()?;
    let rt = super::runtime()?;
    let answer = match &args.image {
        Some(image) if !args.all => rt.block_on(client.purge(image))?,
        _ => rt.block_on(client.purge_all())?,
    };
    let n = answer.get("purged").and_then(|v| v.as_u64()).unwrap_or(0);
    match answer.get("digest").and_then(|v| v.as_str()) {
        Some(d) => println!("purged {n} verdict(s) of {d}; the next pull re-evaluates it"),
        None => println!("purged {n} verdict(s); the next pull of every image re-evaluates it"),
    }
    Ok(0)
}
