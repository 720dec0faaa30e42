//! Validation of `[[policy]]` tables: image and namespace globs, signature rules,
//! scan rules. Errors name the key (`policy[i].…`).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;

use crate::report::Severity;

use super::{
    ConfigError, FindingAction, KeylessIdentity, Mode, OnError, Policy, RawPolicy, RawScanPolicy,
    RawSignatures, ScanPolicy, SignatureLocation, SignaturePolicy, VexPolicy, VulnException,
    invalid, parse_enum,
};

/// `*` stays within one path segment, `**` crosses segments (globset with
/// `literal_separator`), matching how operators write registry paths.
pub(super) fn compile_globs(key: &str, patterns: &[String]) -> Result<GlobSet, ConfigError> {
    let mut b = GlobSetBuilder::new();
    for (i, p) in patterns.iter().enumerate() {
        if p.is_empty() {
            return Err(invalid(format!("{key}[{i}]"), "empty pattern"));
        }
        let g = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| invalid(format!("{key}[{i}]"), format!("bad glob {p:?}: {e}")))?;
        b.add(g);
    }
    b.build().map_err(|e| invalid(key, e.to_string()))
}

pub(super) fn validate_policy(i: usize, p: RawPolicy) -> Result<Policy, ConfigError> {
    let key = |k: &str| format!("policy[{i}].{k}");
    let name = p
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| invalid(key("name"), "every policy needs a name"))?;
    let images = p.images.filter(|v| !v.is_empty()).ok_or_else(|| {
        invalid(
            key("images"),
            "list at least one image glob (\"**\" for all)",
        )
    })?;
    let namespaces = p.namespaces.unwrap_or_else(|| vec!["*".into()]);
    let mode = match p.mode.as_deref() {
        None => Mode::Enforce,
        Some(m) => parse_enum(
            &key("mode"),
            m,
            &[
                ("enforce", Mode::Enforce),
                ("audit", Mode::Audit),
                ("off", Mode::Off),
            ],
        )?,
    };
    let on_error = match p.on_error.as_deref() {
        None => OnError::Deny,
        Some(m) => parse_enum(
            &key("on_error"),
            m,
            &[("deny", OnError::Deny), ("allow", OnError::Allow)],
        )?,
    };
    let image_globs = compile_globs(&key("images"), &images)?;
    let namespace_globs = compile_globs(&key("namespaces"), &namespaces)?;
    let signatures = p
        .signatures
        .map(|s| validate_signatures(&key("signatures"), s))
        .transpose()?;
    let scan = validate_scan_policy(&key("scan"), p.scan.unwrap_or_default())?;
    let vex = p
        .vex
        .map(|v| validate_vex(&key("vex"), v, signatures.as_ref()))
        .transpose()?;
    Ok(Policy {
        name,
        images,
        namespaces,
        mode,
        on_error,
        signatures,
        scan,
        vex,
        image_globs,
        namespace_globs,
        files: Default::default(),
    })
}

fn validate_vex(
    key: &str,
    v: super::raw::RawVex,
    signatures: Option<&SignaturePolicy>,
) -> Result<VexPolicy, ConfigError> {
    let keys = v.keys.unwrap_or_default();
    let keyless = validate_keyless(key, v.keyless.unwrap_or_default())?;
    if keys.is_empty() && keyless.is_empty() {
        return Err(invalid(
            format!("{key}.keys"),
            "a vex section needs at least one key or keyless identity (leave the section out to trust the policy's image signers)",
        ));
    }
    let vex = VexPolicy {
        keys,
        keyless,
        trusted_root: v.trusted_root,
    };
    // A keyless VEX signer without a trust root would trust no one while the operator
    // believes vendor VEX applies: refused.
    if !vex.keyless.is_empty() && vex.trust_root(signatures).is_none() {
        return Err(invalid(
            format!("{key}.keyless"),
            "keyless VEX signers need a trusted_root (sigstore trusted_root.json): set [policy.vex] trusted_root or [policy.signatures] trusted_root",
        ));
    }
    Ok(vex)
}

/// `[[…keyless]]` identities: an issuer, and a subject or subject_regex.
fn validate_keyless(
    key: &str,
    raw: Vec<super::raw::RawKeyless>,
) -> Result<Vec<KeylessIdentity>, ConfigError> {
    let mut keyless = Vec::new();
    for (j, k) in raw.into_iter().enumerate() {
        let kk = format!("{key}.keyless[{j}]");
        let issuer = k
            .issuer
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(format!("{kk}.issuer"), "keyless identities need an issuer"))?;
        if k.subject.is_none() && k.subject_regex.is_none() {
            return Err(invalid(
                kk,
                "set subject or subject_regex (an identity that trusts any subject of an issuer is refused)",
            ));
        }
        let subject_regex = k
            .subject_regex
            .map(|r| {
                Regex::new(&r).map_err(|e| invalid(format!("{kk}.subject_regex"), e.to_string()))
            })
            .transpose()?;
        keyless.push(KeylessIdentity {
            issuer,
            subject: k.subject,
            subject_regex,
            extensions: k.extensions.unwrap_or_default(),
        });
    }
    Ok(keyless)
}

pub(super) fn validate_signatures(
    key: &str,
    s: RawSignatures,
) -> Result<SignaturePolicy, ConfigError> {
    let keys = s.keys.unwrap_or_default();
    let keyless = validate_keyless(key, s.keyless.unwrap_or_default())?;
    if keys.is_empty() && keyless.is_empty() {
        return Err(invalid(
            key,
            "a signatures section needs at least one key or keyless identity",
        ));
    }
    if !keyless.is_empty() && s.trusted_root.is_none() {
        return Err(invalid(
            format!("{key}.trusted_root"),
            "keyless identities need a trusted_root (sigstore trusted_root.json)",
        ));
    }
    let threshold = s.threshold.unwrap_or(1);
    let signers = keys.len() + keyless.len();
    if threshold == 0 || threshold > signers {
        return Err(invalid(
            format!("{key}.threshold"),
            format!("must be between 1 and the number of keys and identities ({signers})"),
        ));
    }
    let require_on = match s.require_on.as_deref() {
        None => SignatureLocation::Any,
        Some(v) => parse_enum(
            &format!("{key}.require_on"),
            v,
            &[
                ("any", SignatureLocation::Any),
                ("platform", SignatureLocation::Platform),
            ],
        )?,
    };
    let allowed_references = s.allowed_references.unwrap_or_default();
    let allowed_reference_globs =
        compile_globs(&format!("{key}.allowed_references"), &allowed_references)?;
    Ok(SignaturePolicy {
        keys,
        threshold,
        trusted_root: s.trusted_root,
        keyless,
        require_on,
        require_tlog: s.require_tlog.unwrap_or(false),
        allowed_references,
        allowed_reference_globs,
    })
}

pub(super) fn validate_scan_policy(key: &str, s: RawScanPolicy) -> Result<ScanPolicy, ConfigError> {
    let d = ScanPolicy::default();
    let secrets = match s.secrets.as_deref() {
        None => d.secrets,
        Some(v) => parse_enum(
            &format!("{key}.secrets"),
            v,
            &[
                ("deny", FindingAction::Deny),
                ("warn", FindingAction::Warn),
                ("ignore", FindingAction::Ignore),
            ],
        )?,
    };
    let max_severity = match s.max_severity.as_deref() {
        None => d.max_severity,
        Some(v) => v
            .parse::<Severity>()
            .map_err(|e| invalid(format!("{key}.max_severity"), e))?,
    };
    let mut allow = Vec::new();
    for (j, a) in s.allow.unwrap_or_default().into_iter().enumerate() {
        let ak = format!("{key}.allow[{j}]");
        let id = a
            .id
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid(format!("{ak}.id"), "an exception needs a vulnerability id"))?;
        let until = a
            .until
            .map(|u| {
                time::Date::parse(
                    &u,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .map_err(|e| {
                    invalid(
                        format!("{ak}.until"),
                        format!("{u:?} is not YYYY-MM-DD: {e}"),
                    )
                })
            })
            .transpose()?;
        allow.push(VulnException {
            id,
            until,
            reason: a.reason.unwrap_or_default(),
        });
    }
    Ok(ScanPolicy {
        enabled: s.enabled.unwrap_or(true),
        secrets,
        max_severity,
        ignore_unfixed: s.ignore_unfixed.unwrap_or(d.ignore_unfixed),
        allow,
        deny_setuid: s.deny_setuid.unwrap_or(d.deny_setuid),
        deny_world_writable: s.deny_world_writable.unwrap_or(d.deny_world_writable),
        deny_devices: s.deny_devices.unwrap_or(d.deny_devices),
        denylist: s.denylist,
    })
}
