//! The one scan pipeline of the node and of `pullwarden scan`: an image's layers →
//! inventory and findings (`scan`), inventory → vulnerabilities (`vulndb`), findings →
//! judgement under `[policy.scan]` (`policy`). The gate's scanner adapter and the CLI
//! call these two functions and nothing else of the pipeline, so CI and the node find
//! and decide alike. Where the blobs come from (containerd, a registry, a layout) and
//! which cache holds layer results stay the caller's.

use crate::config::{Config, Policy, ScanPolicy};
use crate::policy::evaluate::{JudgedScan, judge_scan};
use crate::reference::Reference;
use crate::report::ScanReport;
use crate::scan::{BlobSource, LayerCache, LayerRef, LayerResult, ScanError, Scanner, compose};
use crate::vulndb::{VulnDb, VulnDbError};

/// Why an image could not be scanned or matched. Neither is a verdict: the caller
/// decides (the gate by `on_error`, the CLI by exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("scan failed: {0}")]
    Scan(#[source] ScanError),
    #[error("matching vulnerabilities: {0}")]
    Match(#[source] VulnDbError),
}

/// The policy that judges a pull of `reference` by a pod in `namespace` (empty: no
/// pod): the first whose image globs match the normalised reference
/// (`docker.io/library/nginx:latest`, `127.0.0.1:5055/team/app:1`) and whose
/// namespace globs match. The gate and `pullwarden scan docker://…` choose alike.
pub fn policy_for<'a>(
    config: &'a Config,
    reference: &Reference,
    namespace: &str,
) -> Option<&'a Policy> {
    config.policy_for(&reference.to_string(), namespace)
}

/// Scans `layers` (bottom first, as the manifest lists them) from `blobs` with
/// `scanner`, reusing and filling `cache`, then matches the inventory against `db`.
/// The report is not judged (SBOMs and `explain` use it as it is). Blocking: run it
/// off an async runtime's worker threads.
pub fn report(
    scanner: &Scanner,
    blobs: &dyn BlobSource,
    layers: &[LayerRef],
    cache: Option<&dyn LayerCache>,
    db: &VulnDb,
) -> Result<ScanReport, EngineError> {
    let results = scanner
        .layer_results(blobs, layers, cache)
        .map_err(EngineError::Scan)?;
    from_layers(&results, db)
}

/// The image's report from its per-layer results (bottom first), however they were
/// obtained (scanned here, from the layer cache, or from a trusted fleet attestation):
/// composed as the image will run, then matched against `db`.
pub fn from_layers(results: &[LayerResult], db: &VulnDb) -> Result<ScanReport, EngineError> {
    let mut report = compose(results);
    report.vulnerabilities = db
        .matches(report.os.as_ref(), &report.packages)
        .map_err(EngineError::Match)?;
    Ok(report)
}

/// Judges a report under `policy` as of `today` (UTC): the verdict's scan part.
pub fn judge(report: ScanReport, policy: &ScanPolicy, today: time::Date) -> JudgedScan {
    judge_scan(report, policy, today)
}
