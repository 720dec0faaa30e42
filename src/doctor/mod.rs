//! `pullwarden doctor`: proof that this node enforces. Each check says what it looked
//! at, its result (`OK`, `WARN`, `FAIL`) and how to fix a problem. The node enforces
//! when no check failed; warnings (no kubelet on this host, a policy that requires no
//! signature) do not count against it.
//!
//! The checks run in the daemon (`POST /v1/doctor` on the admin socket, and once a
//! minute for the `pullwarden_enforcing` gauge):
//! - `kubelet`: the running kubelet's effective image endpoint ([`kubelet`]) is the
//!   daemon's `listen` socket, else `BYPASSED: kubelet pulls from <endpoint>`;
//! - `policies`: every enforcing policy's keys, trust root and keyless identities load
//!   and can meet its threshold; at least one policy enforces;
//! - `fingerprints`: the running policies are those of the config file on disk;
//! - `canary`: a generated image side-loaded into containerd is visible to containerd's
//!   CRI but absent through pullwarden's socket, and is removed again ([`canary`]);
//! - `containerd`: containerd answers within [`CONTAINERD_HEALTH_TIMEOUT`];
//! - `kubelet-calls`: whether a process named `kubelet` holds a connection to the CRI
//!   socket (peer credentials) and when the last CRI call through pullwarden was.
//!
//! JSON shape (`pullwarden doctor --json`, `/v1/doctor`):
//! `{"enforcing": bool, "checks": [{"name", "status": "OK"|"WARN"|"FAIL", "detail", "fix"}]}`
//! (`fix` is null on OK).

pub mod canary;
pub mod kubelet;

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long containerd may take to answer the health check (`status`, `doctor`).
pub const CONTAINERD_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

pub use crate::config::GAUGE_INTERVAL;

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "WARN")]
    Warn,
    #[serde(rename = "FAIL")]
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check: what was looked at, the result, and the fix (None when OK).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check, and whether the node enforces (no check failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub enforcing: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Report {
        Report {
            enforcing: !checks.iter().any(|c| c.status == Status::Fail),
            checks,
        }
    }

    /// One line per check (`STATUS name: detail`), its fix indented below, and a verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<4} {}: {}\n",
                c.status.as_str(),
                c.name,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("     fix: {fix}\n"));
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        if self.enforcing {
            out.push_str("pullwarden enforces on this node\n");
        } else {
            out.push_str(&format!(
                "NOT ENFORCING: {failed} check{} failed\n",
                if failed == 1 { "" } else { "s" }
            ));
        }
        out
    }
}

/// The `kubelet` checks: one per kubelet process under `proc_root` (normally `/proc`);
/// a WARN when there is none (pullwarden may run on a host without a kubelet, e.g.
/// while a node is being set up).
pub fn kubelet_checks(proc_root: &Path, listen: &Path) -> Vec<Check> {
    let kubelets = kubelet::find_kubelets(proc_root);
    let ours = format!("unix://{}", listen.display());
    if kubelets.is_empty() {
        return vec![Check::warn(
            "kubelet",
            format!("no kubelet process found in {}", proc_root.display()),
            format!(
                "start the kubelet with imageServiceEndpoint: {ours} (README, \"Install\"); \
                 if the kubelet runs in another PID namespace, run doctor where it is visible"
            ),
        )];
    }
    kubelets
        .iter()
        .map(|k| {
            let proc_dir = proc_root.join(k.pid.to_string());
            let flags = kubelet::parse_flags(&k.argv);
            match kubelet::effective_endpoint(&proc_dir, &flags) {
                Err(e) => Check::fail(
                    "kubelet",
                    format!(
                        "cannot tell which image endpoint kubelet (pid {}) uses: {e}",
                        k.pid
                    ),
                    "make the kubelet's --config file and --config-dir drop-ins readable \
                     KubeletConfiguration YAML, then run doctor again",
                ),
                Ok(eff) if kubelet::reaches(&proc_dir, &eff.endpoint, listen) => Check::ok(
                    "kubelet",
                    format!(
                        "kubelet (pid {}) pulls through pullwarden: {} (from {})",
                        k.pid, eff.endpoint, eff.source
                    ),
                ),
                Ok(eff) => {
                    let fix = if eff.source.ends_with("flag") {
                        format!(
                            "the kubelet's command line sets it: remove --image-service-endpoint \
                             (and --container-runtime-endpoint as image endpoint) from \
                             /etc/default/kubelet, KUBELET_EXTRA_ARGS or kubeadm-flags.env, or set \
                             it to {ours}; then restart the kubelet"
                        )
                    } else {
                        format!(
                            "set imageServiceEndpoint: {ours} in a kubelet config drop-in \
                             (config/kubelet-pullwarden.conf as \
                             /etc/kubernetes/kubelet.conf.d/50-pullwarden.conf, with the kubelet's \
                             --config-dir pointing there) and restart the kubelet"
                        )
                    };
                    Check::fail(
                        "kubelet",
                        format!(
                            "BYPASSED: kubelet pulls from {} (from {}; kubelet pid {}), not from \
                             pullwarden's socket {}",
                            eff.endpoint,
                            eff.source,
                            k.pid,
                            listen.display()
                        ),
                        fix,
                    )
                }
            }
        })
        .collect()
}

/// Whether a policy's signature requirement can ever be met with what loads now:
/// `Ok(None)` when it requires no signature, `Ok(Some(n))` with the number of distinct
/// signers (keys by public key, keyless identities) that load, `Err` with the reason
/// when a key file or the trust root does not load, or fewer signers than `threshold`
/// load. Blocking file I/O.
pub fn policy_signers(policy: &crate::config::Policy) -> Result<Option<usize>, String> {
    let Some(sig) = &policy.signatures else {
        return Ok(None);
    };
    crate::verify::Verifier::load(sig).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for path in &sig.keys {
        let k = crate::verify::keys::TrustedKey::load(path).map_err(|e| e.to_string())?;
        if !keys.contains(&k.fingerprint) {
            keys.push(k.fingerprint);
        }
    }
    let keyless = if sig.trusted_root.is_some() {
        sig.keyless.len()
    } else {
        0
    };
    let n = keys.len() + keyless;
    if n == 0 {
        return Err("no key and no keyless identity (with a trusted_root) to verify with".into());
    }
    if n < sig.threshold {
        return Err(format!(
            "threshold {} but only {n} distinct signer{} configured: no image can pass",
            sig.threshold,
            if n == 1 { "" } else { "s" }
        ));
    }
    Ok(Some(n))
}

/// The `policies` checks: every enforcing policy's signature material loads; at least
/// one policy enforces.
pub fn policy_checks(config: &crate::config::Config) -> Vec<Check> {
    use crate::config::Mode;
    let enforcing: Vec<_> = config
        .policies
        .iter()
        .filter(|p| p.mode == Mode::Enforce)
        .collect();
    if enforcing.is_empty() {
        return vec![Check::fail(
            "policies",
            "no policy has mode = \"enforce\": every pull passes (audit and off only record)",
            "set mode = \"enforce\" on the policies that must hold, then pullwarden reload",
        )];
    }
    enforcing
        .iter()
        .map(|p| match policy_signers(p) {
            Ok(Some(n)) => Check::ok(
                "policies",
                format!(
                    "policy {}: {n} signer(s) loaded (keys, keyless identities)",
                    p.name
                ),
            ),
            Ok(None) => Check::warn(
                "policies",
                format!(
                    "policy {} enforces scans only: it requires no signature",
                    p.name
                ),
                "add [policy.signatures] keys or keyless identities if images must be signed",
            ),
            Err(e) => Check::fail(
                "policies",
                format!(
                    "policy {} cannot verify any signature, so every pull under it is denied: {e}",
                    p.name
                ),
                "fix the key files or trusted_root the policy names (pullwarden policy check \
                 shows which), then pullwarden reload",
            ),
        })
        .collect()
}

/// The `fingerprints` check: `running` and `on_disk` are (policy name, fingerprint or
/// error text) in config order.
pub fn fingerprint_check(
    running: &[(String, String)],
    on_disk: Result<Vec<(String, String)>, String>,
    config_path: &Path,
) -> Check {
    let fix = "run pullwarden reload (or systemctl reload pullwarden)";
    let disk = match on_disk {
        Ok(d) => d,
        Err(e) => {
            return Check::fail(
                "fingerprints",
                format!(
                    "the config file {} no longer loads, so a reload would be refused and a \
                     restart would fail: {e}",
                    config_path.display()
                ),
                "fix the file (pullwarden policy check), then pullwarden reload",
            );
        }
    };
    if running == disk.as_slice() {
        return Check::ok(
            "fingerprints",
            format!(
                "the {} running policies match {}",
                running.len(),
                config_path.display()
            ),
        );
    }
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let detail = if names(running) != names(&disk) {
        format!(
            "running policies [{}] but {} has [{}]: edited without a reload",
            names(running).join(", "),
            config_path.display(),
            names(&disk).join(", ")
        )
    } else {
        let changed: Vec<String> = running
            .iter()
            .zip(&disk)
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0.clone())
            .collect();
        format!(
            "policies {} changed in {} (config or key files) since the last reload: the daemon \
             still enforces the old ones",
            changed.join(", "),
            config_path.display()
        )
    };
    Check::fail("fingerprints", detail, fix)
}

/// The `kubelet-calls` check from the time of the last CRI call through pullwarden
/// (`since_last`: None when none since start), the daemon's uptime, and the CRI
/// connections open now from a process named `kubelet` (count, pid of the last one,
/// from the peer credentials of each connection).
pub fn calls_check(
    since_last: Option<Duration>,
    uptime: Duration,
    kubelet: (u64, Option<u32>),
) -> Check {
    const QUIET: Duration = Duration::from_secs(300);
    let last = match since_last {
        Some(d) => format!("last CRI call through pullwarden {}s ago", d.as_secs()),
        None => format!(
            "no CRI call through pullwarden since it started {}s ago",
            uptime.as_secs()
        ),
    };
    if let (n @ 1.., pid) = kubelet {
        let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        return Check::ok(
            "kubelet-calls",
            format!(
                "the kubelet{pid} is connected to pullwarden's socket ({n} connection(s)); {last}"
            ),
        );
    }
    let fix = "check that the kubelet's image endpoint is pullwarden's socket (the kubelet \
               check) and that the kubelet runs";
    let quiet = match since_last {
        Some(d) => d > QUIET,
        None => uptime > QUIET,
    };
    if quiet {
        Check::warn(
            "kubelet-calls",
            format!(
                "{last}; no kubelet is connected, and a kubelet using pullwarden calls every few seconds"
            ),
            fix,
        )
    } else {
        Check::ok("kubelet-calls", format!("{last}; no kubelet connected now"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_enforces_unless_a_check_fails() {
        let r = Report::new(vec![Check::ok("a", "fine"), Check::warn("b", "hm", "look")]);
        assert!(r.enforcing);
        let t = r.render();
        assert!(t.contains("OK   a: fine\n"), "{t}");
        assert!(t.contains("WARN b: hm\n     fix: look\n"), "{t}");
        assert!(t.ends_with("pullwarden enforces on this node\n"), "{t}");
        let r = Report::new(vec![Check::ok("a", "x"), Check::fail("c", "bad", "do")]);
        assert!(!r.enforcing);
        assert!(r.render().ends_with("NOT ENFORCING: 1 check failed\n"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["checks"][1]["status"], "FAIL");
        assert_eq!(v["checks"][0]["fix"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<Report>(v).unwrap(), r);
    }

    #[test]
    fn fingerprints_compare() {
        let p = Path::new("/etc/pullwarden/config.toml");
        let run = vec![("prod".to_string(), "aa".to_string())];
        assert_eq!(
            fingerprint_check(&run, Ok(run.clone()), p).status,
            Status::Ok
        );
        let c = fingerprint_check(&run, Ok(vec![("prod".into(), "bb".into())]), p);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("prod"), "{}", c.detail);
        assert!(c.fix.unwrap().contains("pullwarden reload"));
        let c = fingerprint_check(&run, Ok(vec![]), p);
        assert!(c.detail.contains("edited without a reload"), "{}", c.detail);
        let c = fingerprint_check(&run, Err("bad toml".into()), p);
        assert_eq!(c.status, Status::Fail);
    }

    #[test]
    fn quiet_kubelet_is_a_warning() {
        let m = Duration::from_secs(60);
        let none = (0, None);
        assert_eq!(calls_check(Some(m), m * 100, none).status, Status::Ok);
        assert_eq!(
            calls_check(Some(m * 10), m * 100, none).status,
            Status::Warn
        );
        assert_eq!(calls_check(None, m, none).status, Status::Ok);
        assert_eq!(calls_check(None, m * 100, none).status, Status::Warn);
        let c = calls_check(None, m * 100, (1, Some(42)));
        assert_eq!(c.status, Status::Ok);
        assert!(
            c.detail.contains("kubelet (pid 42) is connected"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn signers_are_distinct_keys_and_must_reach_the_threshold() {
        let d = tempfile::tempdir().unwrap();
        let scheme = sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1;
        let (_, a) = crate::verify::sign::generate_key(scheme).unwrap();
        let (_, b) = crate::verify::sign::generate_key(scheme).unwrap();
        for (name, pem) in [("a.pub", &a), ("a-again.pub", &a), ("b.pub", &b)] {
            std::fs::write(d.path().join(name), pem).unwrap();
        }
        std::fs::write(d.path().join("bad.pub"), "not a key").unwrap();
        let policy = |keys: &[&str], threshold: usize| {
            let keys: Vec<String> = keys
                .iter()
                .map(|k| format!("{:?}", d.path().join(k).display().to_string()))
                .collect();
            // A config that validates key files at load may refuse the bad one itself.
            crate::config::Config::parse(&format!(
                "[[policy]]\nname = \"p\"\nimages = [\"**\"]\n[policy.signatures]\nkeys = [{}]\nthreshold = {threshold}\n",
                keys.join(", ")
            ))
            .map_err(|e| e.to_string())
            .and_then(|c| policy_signers(&c.policies[0]))
        };
        assert_eq!(policy(&["a.pub", "b.pub"], 2), Ok(Some(2)));
        // One key in two files is one signer: threshold 2 can never be met.
        let e = policy(&["a.pub", "a-again.pub"], 2).unwrap_err();
        assert!(e.contains("threshold 2 but only 1 distinct signer"), "{e}");
        let e = policy(&["a.pub", "bad.pub"], 1).unwrap_err();
        assert!(e.contains("bad.pub"), "{e}");
        let none =
            crate::config::Config::parse("[[policy]]\nname = \"p\"\nimages = [\"**\"]\n").unwrap();
        assert_eq!(policy_signers(&none.policies[0]), Ok(None));
        let checks = policy_checks(&none);
        assert_eq!(checks[0].status, Status::Warn);
    }

    #[test]
    fn no_kubelet_in_an_empty_proc_is_a_warning() {
        let d = tempfile::tempdir().unwrap();
        let c = kubelet_checks(d.path(), Path::new("/run/pullwarden/cri.sock"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::Warn);
    }
}
