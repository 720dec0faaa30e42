//! `pullwarden reload`: the daemon re-reads its config and keys (like SIGHUP) and
//! answers whether the new configuration took effect.

use super::verdict::AdminArg;

#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub admin: AdminArg,
}

pub fn run(args: &ReloadArgs) -> anyhow::Result<i32> {
    let client = args.admin.client()?;
    let message = super::runtime()?
        .block_on(client.reload())
        .map_err(|e| anyhow::anyhow!("reload rejected, the running configuration is kept: {e}"))?;
    println!("{message}");
    Ok(0)
}
