//! `pullwarden explain REF|DIGEST [--json]`: every reason behind an image's verdict —
//! each signature location and signer tried with its outcome, each finding with its
//! layer and path, the policy and mode, warnings, and the recent decisions.

use anyhow::Context as _;
use serde_json::Value;

use super::verdict::{AdminArg, summary, table};
use crate::policy::Verdict;
use crate::store::HistoryEvent;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// Image reference (as pulled) or manifest digest.
    #[arg(value_name = "REF|DIGEST")]
    pub image: String,
    /// Print the verdict (with a `history` field) as one JSON document.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArg,
}

pub fn run(args: &ExplainArgs) -> anyhow::Result<i32> {
    let client = args.admin.client()?;
    let doc = super::runtime()?.block_on(client.explain(&args.image))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("encoding JSON")?
        );
        return Ok(0);
    }
    let history: Vec<HistoryEvent> = doc
        .get("history")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .context("the daemon's history is not in the expected shape")?
        .unwrap_or_default();
    let verdict: Verdict = serde_json::from_value(strip_history(doc))
        .context("the daemon's verdict is not in the expected shape")?;
    print!("{}", explain(&verdict, &history));
    Ok(0)
}

fn strip_history(mut doc: Value) -> Value {
    if let Some(o) = doc.as_object_mut() {
        o.remove("history");
    }
    doc
}

fn or_dash(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

pub(crate) fn explain(v: &Verdict, history: &[HistoryEvent]) -> String {
    let mut out = summary(v);
    out.push_str(&format!(
        "fingerprint {} (vulnerability db {})\n",
        v.policy_fingerprint, v.db_version
    ));
    if let Some(src) = &v.scan_source {
        // `local`: layers read on this node; `attested`: a trusted fleet scan attestation.
        out.push_str(&format!("scan_source: {}", src.kind));
        if let Some(signer) = &src.signer {
            out.push_str(&format!(", signer {signer}"));
        }
        if let Some(at) = &src.attested_at {
            out.push_str(&format!(", attested_at {at}"));
        }
        out.push('\n');
    }

    let s = &v.signatures;
    out.push_str(&format!("\nSIGNATURES ({} checked)\n", s.checks.len()));
    if !s.required {
        out.push_str("  the policy does not require signatures\n");
    } else {
        out.push_str(&format!(
            "  threshold {}; verified signers: {}\n",
            s.threshold,
            if s.verified_signers.is_empty() {
                "none".to_string()
            } else {
                s.verified_signers.join(", ")
            }
        ));
    }
    if !s.checks.is_empty() {
        let rows: Vec<Vec<String>> = s
            .checks
            .iter()
            .map(|c| {
                vec![
                    if c.verified { "ok" } else { "FAIL" }.to_string(),
                    c.source.clone(),
                    c.subject.clone(),
                    or_dash(&c.artifact),
                    or_dash(&c.signer),
                    c.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &[
                "RESULT", "SOURCE", "SUBJECT", "ARTIFACT", "SIGNER", "REASON",
            ],
            &rows,
        )));
    }

    let f = &v.findings;
    out.push_str(&format!("\nSECRETS ({})\n", f.secrets.len()));
    if !f.secrets.is_empty() {
        let rows: Vec<Vec<String>> = f
            .secrets
            .iter()
            .map(|s| {
                vec![
                    s.rule.clone(),
                    format!("{}:{}", s.path, s.line),
                    s.layer.clone(),
                    s.redacted.clone(),
                    if s.deleted_in_final_image {
                        "deleted in a later layer (bytes still shipped)".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &["RULE", "PATH:LINE", "LAYER", "MATCH", "NOTE"],
            &rows,
        )));
    }
    out.push_str(&format!(
        "\nVULNERABILITIES ({})\n",
        f.vulnerabilities.len()
    ));
    if !f.vulnerabilities.is_empty() {
        let rows: Vec<Vec<String>> = f
            .vulnerabilities
            .iter()
            .map(|x| {
                vec![
                    x.id.clone(),
                    x.severity.to_string(),
                    x.package.clone(),
                    x.installed_version.clone(),
                    match (&x.fixed_in, x.fix_channel.as_deref()) {
                        (Some(f), Some("ubuntu-pro")) => format!("{f} (Ubuntu Pro/ESM)"),
                        (Some(f), _) => f.clone(),
                        (None, _) => "(no fix)".into(),
                    },
                    x.layer.clone(),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &[
                "ID",
                "SEVERITY",
                "PACKAGE",
                "INSTALLED",
                "FIXED IN",
                "LAYER",
            ],
            &rows,
        )));
    }
    out.push_str(&vex_sections(&v.vex));
    out.push_str(&format!("\nFILES ({})\n", f.files.len()));
    if !f.files.is_empty() {
        let rows: Vec<Vec<String>> = f
            .files
            .iter()
            .map(|x| {
                let kind = serde_json::to_value(x.kind)
                    .ok()
                    .and_then(|k| k.as_str().map(str::to_string))
                    .unwrap_or_default();
                vec![kind, x.path.clone(), x.layer.clone(), x.detail.clone()]
            })
            .collect();
        out.push_str(&indent(&table(&["KIND", "PATH", "LAYER", "DETAIL"], &rows)));
    }
    if !history.is_empty() {
        out.push_str(&format!("\nRECENT DECISIONS ({})\n", history.len()));
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|h| {
                vec![
                    h.at.clone(),
                    h.decision.as_str().to_string(),
                    // Events recorded before `how` existed say only whether cached.
                    h.how
                        .map(|how| how.as_str())
                        .unwrap_or(if h.cached { "cached" } else { "evaluated" })
                        .to_string(),
                    h.policy.clone(),
                    h.reference.clone(),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &["AT", "DECISION", "HOW", "POLICY", "REFERENCE"],
            &rows,
        )));
    }
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// "SUPPRESSED BY VEX" (each finding a trusted VEX statement removed, with status,
/// justification, signer and source) and "VEX NOT APPLIED" (statements about this
/// image's findings that did not count, with the reason); nothing when VEX played no
/// part.
fn vex_sections(vex: &crate::vex::VexOutcome) -> String {
    let mut out = String::new();
    if !vex.suppressed.is_empty() {
        out.push_str(&format!("\nSUPPRESSED BY VEX ({})\n", vex.suppressed.len()));
        let rows: Vec<Vec<String>> = vex
            .suppressed
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.finding.severity.to_string(),
                    s.package.clone(),
                    s.installed_version.clone(),
                    s.status.to_string(),
                    or_dash(&s.justification),
                    s.signer.clone(),
                    s.source.clone(),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &[
                "ID",
                "SEVERITY",
                "PACKAGE",
                "INSTALLED",
                "STATUS",
                "JUSTIFICATION",
                "SIGNER",
                "SOURCE",
            ],
            &rows,
        )));
    }
    if !vex.ignored.is_empty() {
        out.push_str(&format!("\nVEX NOT APPLIED ({})\n", vex.ignored.len()));
        let rows: Vec<Vec<String>> = vex
            .ignored
            .iter()
            .map(|i| vec![i.vulnerability.clone(), i.source.clone(), i.reason.clone()])
            .collect();
        out.push_str(&indent(&table(&["ID", "SOURCE", "REASON"], &rows)));
    }
    out
}
