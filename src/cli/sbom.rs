//! `pullwarden sbom REF|DIGEST --format cyclonedx-json|spdx-json`: the SBOM of an image
//! the daemon has scanned, printed as one JSON document.

use anyhow::Context as _;

use super::verdict::AdminArg;
use crate::admin::SbomFormat;

#[derive(Debug, clap::Args)]
pub struct SbomArgs {
    /// Image reference or manifest digest.
    #[arg(value_name = "REF|DIGEST")]
    pub image: String,
    #[arg(long, value_enum, default_value = "cyclonedx-json")]
    pub format: SbomFormat,
    #[command(flatten)]
    pub admin: AdminArg,
}

pub fn run(args: &SbomArgs) -> anyhow::Result<i32> {
    let client = args.admin.client()?;
    let doc = super::runtime()?.block_on(client.sbom(&args.image, args.format))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).context("encoding JSON")?
    );
    Ok(0)
}
