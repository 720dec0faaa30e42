//! `pullwarden scan SOURCE`: the gate's scan engine, offline, on an OCI layout
//! (`oci:DIR[:TAG]`), a `docker save` archive (`docker-archive:FILE`) or an image in a
//! registry (`docker://REF`), matched against the offline vulnerability database and
//! judged by the same function as the gate. Exit 0 when the policy allows the image,
//! 1 when it denies it, 2 on error.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use super::render::{self, DbFacts, ScanView};
use crate::config::{Config, Mode, ScanPolicy};
use crate::policy::evaluate::mode_name;
use crate::scan::sbom::{SbomFormat, SbomSubject};
use crate::scan::{BlobSource, Denylist, DockerArchive, OciLayout, Platform, Progress, Scanner};
use crate::vulndb::VulnDb;

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
    /// Where the SBOM goes; `-` is standard output (the report then goes to stderr).
    #[arg(long, short = 'o', value_name = "FILE", requires = "sbom")]
    pub output: Option<PathBuf>,
    /// Platform of a multi-platform image, os/arch[/variant] (default: linux/<this machine>).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Vulnerability database (default: `<state_dir>/vulndb.redb` from the config;
    /// fill it with `pullwarden db import`). A path given here must exist; without
    /// any database the scan warns that vulnerabilities were not looked for.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// VEX document (OpenVEX or CycloneDX VEX, applied as the operator's own statement)
    /// or DSSE VEX attestation (applied when a trusted key signed it); repeatable.
    #[arg(long, value_name = "FILE")]
    pub vex: Vec<PathBuf>,
    /// A registry (`host[:port]`) reached over plain HTTP, added to the config's
    /// `[registry] plain_http`. Repeatable.
    #[arg(long = "plain-http", value_name = "HOST")]
    pub plain_http: Vec<String>,
}

/// Exit codes of `pullwarden scan`.
pub const EXIT_ALLOW: i32 = 0;
pub const EXIT_DENY: i32 = 1;
pub const EXIT_ERROR: i32 = 2;

pub fn run(args: &ScanArgs) -> anyhow::Result<i32> {
    match scan(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            let mut msg = format!("{e:#}");
            if let Some(hint) = plain_http_hint(&msg, &args.source) {
                msg.push_str(&hint);
            }
            eprintln!("pullwarden scan: {msg}");
            Ok(EXIT_ERROR)
        }
    }
}

/// TLS spoken to a registry that answers plain HTTP fails deep in rustls ("received
/// corrupt message of type InvalidContentType"): name the setting that fixes it.
fn plain_http_hint(error: &str, source: &str) -> Option<String> {
    let tls_met_http = error.contains("InvalidContentType")
        || error.contains("corrupt message")
        || error.contains("http request to an https server")
        || error.contains("wrong version number");
    if !tls_met_http {
        return None;
    }
    let host = source
        .strip_prefix("docker://")
        .and_then(|r| r.parse::<crate::reference::Reference>().ok())
        .map(|r| r.registry)
        .unwrap_or_else(|| "HOST".into());
    Some(format!(
        "\n  hint: the registry {host} seems to answer plain HTTP, not TLS; if that is \
         intended, list it in the config's [registry] plain_http (registry.plain_http) \
         or pass --plain-http {host}"
    ))
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

/// The progress line on stderr: shown only on a terminal, and only once a scan has run
/// for a second (a cached or small image prints nothing).
struct ProgressLine {
    bar: indicatif::ProgressBar,
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ProgressLine {
    fn start() -> Option<ProgressLine> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::hidden());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message("resolving the image");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, d) = (bar.clone(), done.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(1));
            if !d.load(std::sync::atomic::Ordering::Acquire) {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                b.enable_steady_tick(Duration::from_millis(120));
            }
        });
        Some(ProgressLine { bar, done })
    }

    fn finish(&self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        self.bar.finish_and_clear();
    }
}

/// The vulnerability database for this scan: `--db` (which must exist), else the
/// config's. None with a warning when there is none (or it is empty).
fn open_db(args: &ScanArgs, config: &Config) -> anyhow::Result<(VulnDb, Option<String>)> {
    let path = match &args.db {
        Some(p) => {
            if !p.exists() {
                bail!(
                    "vulnerability database {} does not exist (create it with `pullwarden db import --db {} OSV...`, or leave out --db)",
                    p.display(),
                    p.display()
                );
            }
            p.clone()
        }
        None => VulnDb::default_path(&config.server.state_dir),
    };
    let db = VulnDb::open(&path)?;
    let warning = (db.version() == crate::vulndb::EMPTY_VERSION).then(|| {
        format!(
            "no vulnerability database at {}: vulnerabilities were not looked for \
             (import OSV data with `pullwarden db import`, or pass --db PATH)",
            path.display()
        )
    });
    Ok((db, warning))
}

fn db_facts(db: &VulnDb, now: time::OffsetDateTime) -> Option<DbFacts> {
    if db.version() == crate::vulndb::EMPTY_VERSION {
        return None;
    }
    let newest = db.status().ok().and_then(|s| s.newest_modified);
    let age_days = newest.as_deref().and_then(|n| {
        let t =
            time::OffsetDateTime::parse(n, &time::format_description::well_known::Rfc3339).ok()?;
        Some((now - t).whole_days().max(0))
    });
    Some(DbFacts {
        version: db.version(),
        newest,
        age_days,
    })
}

/// Per vulnerability: until when an exception of `policy` allows it (as `judge` applies
/// them on `today`).
fn allowed_until(
    vulns: &[crate::report::Vulnerability],
    policy: &ScanPolicy,
    today: time::Date,
) -> Vec<Option<String>> {
    vulns
        .iter()
        .map(|v| {
            crate::policy::vulns::active_exception(v, policy, today).map(|e| match e.until {
                Some(u) => u.to_string(),
                None => "no end date".to_string(),
            })
        })
        .collect()
}

fn scan(args: &ScanArgs) -> anyhow::Result<i32> {
    let mut config = match &args.config {
        Some(p) => Config::load(p, true)?,
        None => Config::default(),
    };
    for host in &args.plain_http {
        if !config.registry.plain_http.contains(host) {
            config.registry.plain_http.push(host.clone());
        }
    }
    if args.json && args.output.as_deref() == Some(Path::new("-")) {
        bail!("--json and --output - would both write to standard output; give the SBOM a file");
    }
    let source = parse_source(&args.source)?;
    let platform = parse_platform(args.platform.as_deref())?;
    // A registry reference is normalised as the gate normalises the kubelet's
    // (`docker://127.0.0.1:5055/team/app:1` → `127.0.0.1:5055/team/app:1`), so the
    // same policy judges; a layout or archive is matched by the path as given.
    let (name, policy) = match &source {
        Source::Registry(r) => (r.to_string(), crate::engine::policy_for(&config, r, "")),
        _ => {
            let name = args
                .source
                .split_once(':')
                .map(|(_, r)| r)
                .unwrap_or(&args.source)
                .to_string();
            let policy = config.policy_for(&name, "");
            (name, policy)
        }
    };
    let mode = policy.map(|p| p.mode).unwrap_or(Mode::Enforce);
    let policy_name = policy
        .map(|p| p.name.clone())
        .unwrap_or_else(|| "default scan policy".into());
    let scan_policy = policy
        .map(|p| p.scan.clone())
        .unwrap_or_else(ScanPolicy::default);
    let denylist = match &scan_policy.denylist {
        Some(p) => Some(Denylist::load(p)?),
        None => None,
    };
    let (db, db_warning) = open_db(args, &config)?;
    if let Some(w) = &db_warning {
        eprintln!("warning: {w}");
    }
    let progress = ProgressLine::start();
    let mut attached = None;
    let result = (|| {
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
                let blobs = RegistryBlobs::new(&config, reference, &platform)?;
                attached = Some((blobs.client.clone(), blobs.reference.clone()));
                let top = blobs.top.clone();
                let image = crate::scan::resolve_image(&blobs, &top, &platform)?;
                (Box::new(blobs), image)
            }
        };
        let mut scanner = Scanner::new(&config.scan, denylist);
        if let Some(p) = &progress {
            let bar = p.bar.clone();
            bar.set_message(format!("scanning {} layers", image.layers.len()));
            scanner = scanner.with_progress(move |p: &Progress| {
                let state = if p.cached { "cached" } else { "scanned" };
                bar.set_message(format!(
                    "layer {}/{} {state} {}",
                    p.layer,
                    p.layers,
                    render::short_digest(&p.digest)
                ));
            });
        }
        let today = time::OffsetDateTime::now_utc().date();
        let mut report = crate::engine::report(&scanner, blobs.as_ref(), &image.layers, None, &db)?;
        // VEX applies between matching and judging: a suppressed finding is not judged.
        let vex = crate::vex::cli::apply_for_scan(
            &args.vex,
            policy,
            attached.as_ref(),
            &image.manifest_digest,
            &mut report,
        )?;
        let judged = crate::engine::judge(report, &scan_policy, today);
        anyhow::Ok((image, judged, vex))
    })();
    if let Some(p) = &progress {
        p.finish();
    }
    let (image, judged, vex) = result?;
    let now = time::OffsetDateTime::now_utc();
    let report = &judged.report;
    // `mode = "off"`: the node lets such pulls through unexamined; CI reports the
    // findings and does not fail.
    let judged_deny = !judged.deny_reasons.is_empty();
    let denied = judged_deny && mode != Mode::Off;
    let decision = if denied { "deny" } else { "allow" };
    let mut warnings: Vec<String> = db_warning.into_iter().collect();
    if mode == Mode::Off && judged_deny {
        warnings.push(format!(
            "policy {policy_name} has mode = \"off\": the findings below would deny and are not enforced"
        ));
    }
    warnings.extend(judged.warnings.iter().cloned());
    let reasons: &[String] = if mode == Mode::Off {
        &[]
    } else {
        &judged.deny_reasons
    };
    let sbom_to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if let (Some(format), Some(out)) = (args.sbom, &args.output) {
        let subject = SbomSubject {
            name: name.clone(),
            digest: image.manifest_digest.to_string(),
            created: now,
        };
        let doc = serde_json::to_vec_pretty(&format.render(&subject, report))?;
        if sbom_to_stdout {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&doc)
                .and_then(|()| stdout.write_all(b"\n"))
                .context("cannot write the SBOM to standard output")?;
        } else {
            std::fs::write(out, doc)
                .with_context(|| format!("cannot write SBOM to {}", out.display()))?;
        }
    }
    let db = db_facts(&db, now);
    if args.json {
        let doc = json!({
            "source": args.source,
            "reference": name,
            "digest": image.manifest_digest.to_string(),
            "config_digest": image.config_digest.to_string(),
            "platform": format!("{}/{}", image.os, image.architecture),
            "os": report.os,
            "policy": policy.map(|p| p.name.clone()),
            "mode": mode_name(mode),
            "db_version": db.as_ref().map_or(crate::vulndb::EMPTY_VERSION.to_string(), |d| d.version.clone()),
            "db_newest_record": db.as_ref().and_then(|d| d.newest.clone()),
            "decision": decision,
            "reasons": reasons,
            "warnings": warnings,
            "packages": report.packages,
            "secrets": report.secrets,
            "vulnerabilities": report.vulnerabilities,
            "vex": vex,
            "files": report.files,
            "layers": report.layers,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let platform = format!("{}/{}", image.os, image.architecture);
        let digest = image.manifest_digest.to_string();
        let until = allowed_until(&report.vulnerabilities, &scan_policy, now.date());
        let view = ScanView {
            image: &args.source,
            digest: &digest,
            platform: &platform,
            db,
            report,
            allowed_until: &until,
            decision,
            policy: &policy_name,
            mode: mode_name(mode),
            reasons,
            warnings: &warnings,
        };
        let terminal = if sbom_to_stdout {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let mut text = render::scan_report(&view, render::colour_enabled(terminal));
        for v in &vex.suppressed {
            text.push_str(&format!(
                "  vex: {} in {} {} {} ({}) by {}\n",
                v.id,
                v.package,
                v.installed_version,
                v.status,
                v.justification.as_deref().unwrap_or("-"),
                v.signer
            ));
        }
        for i in &vex.ignored {
            text.push_str(&format!(
                "  vex ignored: {} from {}: {}\n",
                i.vulnerability, i.source, i.reason
            ));
        }
        // With the SBOM on stdout, the report goes to stderr.
        if sbom_to_stdout {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    Ok(if denied { EXIT_DENY } else { EXIT_ALLOW })
}

/// Blobs straight from a registry, fetched as the scanner asks for them (so about
/// `parallel_layers` layers are in memory at once), digest-verified by the client.
/// The top manifest (and an index's manifest for the scanned platform) are fetched up
/// front.
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
        platform: &Platform,
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
        // An index's platform manifest, chosen by the one selector as the scanner will
        // choose it again; when nothing matches, the scanner says so.
        if let Ok(crate::oci::Document::Index(index)) = crate::oci::parse_document(&top.bytes)
            && let Ok(d) = crate::oci::select_manifest_digest(&index, platform)
        {
            let m = runtime.block_on(client.manifest_by_digest(&reference, &d, &creds))?;
            manifests.insert(m.digest, m.bytes.to_vec());
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
