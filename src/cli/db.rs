//! `pullwarden db import|status|update`: manage the offline OSV vulnerability database at
//! `<state_dir>/vulndb.redb` (or `--db PATH`). `import` and `status` never touch the
//! network; `update` is the one command that downloads (osv.dev's per-ecosystem exports).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::ConfigArg;
use crate::vulndb::{ImportReport, VulnDb};

#[derive(Debug, clap::Args)]
pub struct DbArgs {
    #[command(subcommand)]
    pub command: DbCommand,
}

/// Where the database is: `--db`, else `<state_dir>/vulndb.redb` from the config.
#[derive(Debug, clap::Args, Clone)]
pub struct DbLocation {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Database file (overrides `[server] state_dir` of the config).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

impl DbLocation {
    fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.db {
            return Ok(p.clone());
        }
        let cfg = self.config.load()?;
        Ok(VulnDb::default_path(&cfg.server.state_dir))
    }
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Import OSV records: osv.dev `all.zip` exports, directories of OSV JSON files, or
    /// single JSON files. Re-importing replaces changed records and drops withdrawn ones.
    /// Exit 0 on success (malformed records are skipped and counted), 1 when a source
    /// could not be read at all.
    Import {
        #[command(flatten)]
        location: DbLocation,
        /// Print the import report as JSON.
        #[arg(long)]
        json: bool,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Record counts per ecosystem, newest `modified`, and the database version.
    Status {
        #[command(flatten)]
        location: DbLocation,
        #[arg(long)]
        json: bool,
    },
    /// Download osv.dev's `all.zip` for the given ecosystems and import them (needs
    /// network access; everything else works offline).
    Update {
        #[command(flatten)]
        location: DbLocation,
        /// OSV ecosystem names as osv.dev spells them.
        #[arg(long = "ecosystem", value_name = "NAME", default_values_t = default_ecosystems())]
        ecosystems: Vec<String>,
        /// Base URL of the export bucket.
        #[arg(
            long,
            default_value = "https://osv-vulnerabilities.storage.googleapis.com"
        )]
        base_url: String,
        #[arg(long)]
        json: bool,
    },
}

fn default_ecosystems() -> Vec<String> {
    [
        "Debian",
        "Ubuntu",
        "Alpine",
        "PyPI",
        "npm",
        "Go",
        "Maven",
        "crates.io",
        "RubyGems",
        "Packagist",
        "NuGet",
    ]
    .map(String::from)
    .to_vec()
}

pub fn run(args: &DbArgs) -> anyhow::Result<i32> {
    match &args.command {
        DbCommand::Import {
            location,
            json,
            paths,
        } => {
            let path = location.path()?;
            let mut db = VulnDb::open(&path)?;
            let report = db.import(paths)?;
            print_report(&report, *json)?;
            Ok(if report.failed_sources.is_empty() {
                0
            } else {
                1
            })
        }
        DbCommand::Status { location, json } => {
            let path = location.path()?;
            let db = VulnDb::open(&path)?;
            let st = db.status()?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                println!(
                    "database: {}{}",
                    st.path,
                    if st.exists { "" } else { " (not created yet)" }
                );
                println!("version:  {}", st.version);
                println!(
                    "records:  {}{}",
                    st.records,
                    st.newest_modified
                        .as_deref()
                        .map(|m| format!(" (newest modified {m})"))
                        .unwrap_or_default()
                );
                let width = st.ecosystems.keys().map(String::len).max().unwrap_or(0);
                for (eco, n) in &st.ecosystems {
                    println!("  {eco:width$}  {n}");
                }
            }
            Ok(0)
        }
        DbCommand::Update {
            location,
            ecosystems,
            base_url,
            json,
        } => {
            let path = location.path()?;
            let download_dir = path
                .parent()
                .map(|p| p.join("osv-downloads"))
                .unwrap_or_else(|| PathBuf::from("osv-downloads"));
            std::fs::create_dir_all(&download_dir)
                .with_context(|| format!("creating {}", download_dir.display()))?;
            let files =
                super::runtime()?.block_on(download(base_url, ecosystems, &download_dir))?;
            let mut db = VulnDb::open(&path)?;
            let report = db.import(&files)?;
            print_report(&report, *json)?;
            Ok(if report.failed_sources.is_empty() {
                0
            } else {
                1
            })
        }
    }
}

/// Fetch `<base>/<ecosystem>/all.zip` for each ecosystem into `dir` (written to a
/// temporary name, then renamed, so an interrupted download is never imported).
async fn download(
    base: &str,
    ecosystems: &[String],
    dir: &std::path::Path,
) -> anyhow::Result<Vec<PathBuf>> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(600))
        .build()?;
    let mut out = Vec::new();
    for eco in ecosystems {
        let url = format!("{}/{}/all.zip", base.trim_end_matches('/'), eco);
        let resp = client
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("downloading {url}"))?;
        let file = dir.join(format!("{}.zip", eco.replace(['/', ':'], "_")));
        let tmp = file.with_extension("zip.part");
        let mut f = tokio::fs::File::create(&tmp).await?;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            f.write_all(&chunk.with_context(|| format!("downloading {url}"))?)
                .await?;
        }
        f.sync_all().await?;
        tokio::fs::rename(&tmp, &file).await?;
        eprintln!("downloaded {url}");
        out.push(file);
    }
    Ok(out)
}

fn print_report(r: &ImportReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "read {} records in {:.1}s: {} added, {} updated, {} unchanged, {} stale, {} withdrawn removed, {} not applicable, {} skipped",
        r.records_read,
        r.seconds,
        r.added,
        r.updated,
        r.unchanged,
        r.stale,
        r.withdrawn_removed,
        r.not_applicable,
        r.skipped
    );
    if r.skipped > 0 {
        let reasons: Vec<String> = r
            .skipped_by_reason
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!("skipped by reason: {}", reasons.join(", "));
        for ex in &r.skipped_examples {
            eprintln!("  skipped {ex}");
        }
    }
    println!(
        "not evaluated: {} GIT ranges, {} unknown range types, {} ranges with unparseable bounds, {} entries in unsupported ecosystems",
        r.git_ranges_ignored, r.unknown_range_types, r.unparseable_ranges, r.unsupported_affected
    );
    for f in &r.failed_sources {
        eprintln!("pullwarden: could not read source {f}");
    }
    println!(
        "database version: {} (was {})",
        r.version_after, r.version_before
    );
    Ok(())
}
