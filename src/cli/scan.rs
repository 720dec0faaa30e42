//! `pullwarden scan SOURCE`: the gate's scan engine, offline, on an OCI layout
//! (`oci:DIR[:TAG]`), a `docker save` archive (`docker-archive:FILE`) or an image in a
//! registry (`docker://REF`), matched against the offline vulnerability database and
//! judged by the same function as the gate. Exit 0 when the policy allows the image,
//! 1 when it denies it, 2 on error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;

use crate::config::{Config, ScanPolicy};
use crate::policy::evaluate::judge_scan;
use crate::report::ScanReport;
use crate::scan::sbom::{self, SbomSubject};
use crate::scan::{BlobSource, Denylist, DockerArchive, OciLayout, Platform, Progress, Scanner};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SbomFormat {
    #[value(name = "cyclonedx-json")]
    CyclonedxJson,
    #[value(name = "spdx-json")]
    SpdxJson,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// What to scan: oci:DIR[:TAG], docker-archive:FILE, or docker://REF.
    pub source: String,
    /// Config file whose first matching policy judges the findings (default: the
    /// built-in scan policy and limits).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print one JSON document on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write an SBOM in this format to --output.
    #[arg(long, value_name = "FORMAT", requires = "output")]
    pub sbom: Option<SbomFormat>,
    /// Where the SBOM goes.
    #[arg(long, short = 'o', value_name = "FILE", requires = "sbom")]
    pub output: Option<PathBuf>,
    /// Platform of a multi-platform image, os/arch[/variant] (default: linux/<this machine>).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Vulnerability database (default: `<state_dir>/vulndb.redb` from the config;
    /// fill it with `pullwarden db import`). Without one, no vulnerabilities are matched.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// VEX document (OpenVEX or CycloneDX VEX, applied as the operator's own statement)
    /// or DSSE VEX attestation (applied when a trusted key signed it); repeatable.
    #[arg(long, value_name = "FILE")]
    pub vex: Vec<PathBuf>,
}

/// Exit codes of `pullwarden scan`.
pub const EXIT_ALLOW: i32 = 0;
pub const EXIT_DENY: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

pub fn run(args: &ScanArgs) -> anyhow::Result<i32> {
    match scan(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("pullwarden scan: {e:#}");
            Ok(EXIT_ERROR)
        }
    }
}

enum Source {
    Oci { dir: PathBuf, tag: Option<String> },
    DockerArchive(PathBuf),
    Registry(crate::reference::Reference),
}

fn parse_source(s: &str) -> anyhow::Result<Source> {
    if let Some(rest) = s.strip_prefix("oci:") {
        // DIR[:TAG]: a trailing `:tag` is a tag when what precedes it is a directory.
        if let Some((dir, tag)) = rest.rsplit_once(':')
            && !tag.contains('/')
            && Path::new(dir).is_dir()
        {
            return Ok(Source::Oci {
                dir: dir.into(),
                tag: Some(tag.to_string()),
            });
        }
        return Ok(Source::Oci {
            dir: rest.into(),
            tag: None,
        });
    }
    if let Some(rest) = s.strip_prefix("docker-archive:") {
        return Ok(Source::DockerArchive(rest.into()));
    }
    if let Some(rest) = s.strip_prefix("docker://") {
        return Ok(Source::Registry(rest.parse()?));
    }
    bail!("{s:?} is not a scan source: use oci:DIR[:TAG], docker-archive:FILE or docker://REF")
}

fn parse_platform(p: Option<&str>) -> anyhow::Result<Platform> {
    let Some(p) = p else {
        return Ok(Platform::host());
    };
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        [os, arch] => Ok(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: None,
        }),
        [os, arch, variant] => Ok(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: Some(variant.to_string()),
        }),
        _ => bail!("--platform {p:?} is not os/arch[/variant]"),
    }
}

fn scan(args: &ScanArgs) -> anyhow::Result<i32> {
    let config = match &args.config {
        Some(p) => Config::load(p, true)?,
        None => Config::default(),
    };
    let source = parse_source(&args.source)?;
    let platform = parse_platform(args.platform.as_deref())?;
    let name = args
        .source
        .split_once(':')
        .map(|(_, r)| r)
        .unwrap_or(&args.source)
        .to_string();
    let policy = config.policy_for(&name, "");
    let scan_policy = policy
        .map(|p| p.scan.clone())
        .unwrap_or_else(ScanPolicy::default);
    let denylist = match &scan_policy.denylist {
        Some(p) => Some(Denylist::load(p)?),
        None => None,
    };
    let mut attached = None;
    let (blobs, image): (Box<dyn BlobSource>, _) = match source {
        Source::Oci { dir, tag } => {
            let layout = OciLayout::open(&dir)?;
            let image = layout.resolve(tag.as_deref(), &platform)?;
            (Box::new(layout.blobs), image)
        }
        Source::DockerArchive(path) => {
            let (archive, image) = DockerArchive::open(&path)?;
            (Box::new(archive), image)
        }
        Source::Registry(reference) => {
            let blobs = RegistryBlobs::new(&config, reference)?;
            attached = Some((blobs.client.clone(), blobs.reference.clone()));
            let top = blobs.top.clone();
            let image = crate::scan::resolve_image(&blobs, &top, &platform)?;
            (Box::new(blobs), image)
        }
    };
    let mut scanner = Scanner::new(&config.scan, denylist);
    if std::io::stderr().is_terminal() {
        scanner = scanner.with_progress(|p: &Progress| {
            let state = if p.cached { "cached" } else { "scanned" };
            eprint!(
                "\r\x1b[Klayer {}/{} {state} {}",
                p.layer, p.layers, p.digest
            );
            if p.layer == p.layers {
                eprintln!();
            }
        });
    }
    let report = scanner
        .scan_layers(blobs.as_ref(), &image.layers, None)
        .context("scan failed")?;
    let mut report = report;
    let db_path = args
        .db
        .clone()
        .unwrap_or_else(|| crate::vulndb::VulnDb::default_path(&config.server.state_dir));
    let db = crate::vulndb::VulnDb::open(&db_path)
        .with_context(|| format!("vulnerability database {}", db_path.display()))?;
    report.vulnerabilities = db
        .matches(report.os.as_ref(), &report.packages)
        .context("matching vulnerabilities")?;
    let vex = crate::vex::cli::apply_for_scan(
        &args.vex,
        policy,
        attached.as_ref(),
        &image.manifest_digest,
        &mut report,
    )?;
    let judged = judge_scan(report, &scan_policy, time::OffsetDateTime::now_utc().date());
    let report = &judged.report;
    let denied = !judged.deny_reasons.is_empty();
    let decision = if denied { "deny" } else { "allow" };
    if let (Some(format), Some(out)) = (args.sbom, &args.output) {
        let subject = SbomSubject {
            name: name.clone(),
            digest: image.manifest_digest.to_string(),
            created: time::OffsetDateTime::now_utc(),
        };
        let doc = match format {
            SbomFormat::CyclonedxJson => sbom::cyclonedx(&subject, report),
            SbomFormat::SpdxJson => sbom::spdx(&subject, report),
        };
        std::fs::write(out, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("cannot write SBOM to {}", out.display()))?;
    }
    if args.json {
        let doc = json!({
            "source": args.source,
            "digest": image.manifest_digest.to_string(),
            "config_digest": image.config_digest.to_string(),
            "platform": format!("{}/{}", image.os, image.architecture),
            "os": report.os,
            "policy": policy.map(|p| p.name.clone()),
            "db_version": db.version(),
            "decision": decision,
            "reasons": judged.deny_reasons,
            "warnings": judged.warnings,
            "packages": report.packages,
            "secrets": report.secrets,
            "vulnerabilities": report.vulnerabilities,
            "vex": vex,
            "files": report.files,
            "layers": report.layers,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_table(&args.source, &image.manifest_digest.to_string(), report);
        println!();
        let pname = policy
            .map(|p| p.name.as_str())
            .unwrap_or("default scan policy");
        println!("Decision: {decision} ({pname})");
        for r in &judged.deny_reasons {
            println!("  deny: {r}");
        }
        for w in &judged.warnings {
            println!("  warn: {w}");
        }
        for s in &vex.suppressed {
            println!(
                "  vex: {} in {} {} {} ({}) by {}",
                s.id,
                s.package,
                s.installed_version,
                s.status,
                s.justification.as_deref().unwrap_or("-"),
                s.signer
            );
        }
        for i in &vex.ignored {
            println!(
                "  vex ignored: {} from {}: {}",
                i.vulnerability, i.source, i.reason
            );
        }
    }
    Ok(if denied { EXIT_DENY } else { EXIT_ALLOW })
}

fn short(d: &str) -> String {
    d.chars().take(19).collect()
}

fn table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::from("  ");
        for (i, cell) in r.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn print_table(source: &str, digest: &str, r: &ScanReport) {
    println!("Image:  {source} ({digest})");
    if let Some(os) = &r.os {
        println!(
            "OS:     {}",
            os.pretty_name.clone().unwrap_or_else(|| format!(
                "{} {}",
                os.id,
                os.version_id.clone().unwrap_or_default()
            ))
        );
    }
    let (c, u): (u64, u64) = r.layers.iter().fold((0, 0), |(c, u), l| {
        (c + l.compressed_bytes, u + l.uncompressed_bytes)
    });
    println!(
        "Layers: {} ({:.1} MB compressed, {:.1} MB uncompressed)",
        r.layers.len(),
        c as f64 / 1e6,
        u as f64 / 1e6
    );
    println!("\nPackages ({})", r.packages.len());
    let mut rows = vec![vec![
        "TYPE".into(),
        "NAME".into(),
        "VERSION".into(),
        "LAYER".into(),
        "PATH".into(),
    ]];
    for p in &r.packages {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        rows.push(vec![
            kind,
            p.name.clone(),
            p.version.clone(),
            short(&p.layer),
            p.path.clone(),
        ]);
    }
    table(&rows);
    println!("\nSecrets ({})", r.secrets.len());
    let mut rows = vec![vec![
        "RULE".into(),
        "PATH".into(),
        "LINE".into(),
        "MATCH".into(),
        "LAYER".into(),
    ]];
    for s in &r.secrets {
        let path = if s.deleted_in_final_image {
            format!("{} (deleted later)", s.path)
        } else {
            s.path.clone()
        };
        rows.push(vec![
            s.rule.clone(),
            path,
            s.line.to_string(),
            s.redacted.clone(),
            short(&s.layer),
        ]);
    }
    table(&rows);
    println!("\nFiles ({})", r.files.len());
    let mut rows = vec![vec!["KIND".into(), "PATH".into(), "DETAIL".into()]];
    for f in &r.files {
        let kind = serde_json::to_value(f.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        rows.push(vec![kind, f.path.clone(), f.detail.clone()]);
    }
    table(&rows);
}

/// Blobs straight from a registry, fetched as the scanner asks for them (so about
/// `parallel_layers` layers are in memory at once), digest-verified by the client.
/// The top manifest (and an index's platform manifest) are fetched up front.
struct RegistryBlobs {
    client: crate::registry::RegistryClient,
    reference: crate::reference::Reference,
    creds: crate::registry::Credentials,
    runtime: tokio::runtime::Runtime,
    manifests: std::collections::HashMap<crate::digest::Digest, Vec<u8>>,
    top: crate::digest::Digest,
}

impl RegistryBlobs {
    fn new(
        config: &Config,
        reference: crate::reference::Reference,
    ) -> anyhow::Result<RegistryBlobs> {
        // Layers are blobs too: allow them up to the per-layer scan limit.
        let mut registry = config.registry.clone();
        registry.max_blob_bytes = registry.max_blob_bytes.max(config.scan.max_layer_bytes);
        let client = crate::registry::RegistryClient::new(&registry)?;
        let creds = crate::registry::Credentials::default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let mut manifests = std::collections::HashMap::new();
        let top = runtime.block_on(client.resolve(&reference, &creds))?;
        // Every manifest an index lists, so the platform choice stays the scanner's.
        if let Ok(index) = serde_json::from_slice::<serde_json::Value>(&top.bytes)
            && let Some(list) = index.get("manifests").and_then(|m| m.as_array())
        {
            for d in list
                .iter()
                .filter_map(|m| m.get("digest")?.as_str()?.parse().ok())
            {
                let m = runtime.block_on(client.manifest_by_digest(&reference, &d, &creds))?;
                manifests.insert(m.digest, m.bytes.to_vec());
            }
        }
        let digest = top.digest.clone();
        manifests.insert(top.digest, top.bytes.to_vec());
        Ok(RegistryBlobs {
            client,
            reference,
            creds,
            runtime,
            manifests,
            top: digest,
        })
    }
}

impl BlobSource for RegistryBlobs {
    fn open(
        &self,
        digest: &crate::digest::Digest,
    ) -> Result<crate::scan::Blob, crate::scan::ScanError> {
        if let Some(m) = self.manifests.get(digest) {
            return Ok(crate::scan::Blob::from_bytes(m.clone()));
        }
        let bytes = self
            .runtime
            .block_on(self.client.blob(&self.reference, digest, &self.creds))
            .map_err(|e| crate::scan::ScanError::BlobRead {
                digest: digest.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(crate::scan::Blob::from_bytes(bytes.to_vec()))
    }
}
