//! Secret detection: an Aho-Corasick keyword prefilter (DFA) over each candidate text
//! file decides which rule regexes run at all; regexes have explicit size limits and
//! run over bounded, overlapping chunks. Known example values and placeholders are
//! dropped, binary files and well-known noise paths skipped (as Trivy does), and a
//! match is only ever kept redacted.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::{Regex, RegexBuilder};

struct RuleDef {
    id: &'static str,
    title: &'static str,
    keywords: &'static [&'static str],
    regex: &'static str,
}

/// Capture group 1, when present, is the secret value; otherwise the whole match.
const RULES: &[RuleDef] = &[
    RuleDef {
        id: "aws-access-key-id",
        title: "AWS Access Key ID",
        keywords: &[
            "AKIA", "ASIA", "A3T", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA",
        ],
        regex: r"\b((?:A3T[A-Z0-9]|AKIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ASIA)[A-Z0-9]{16})\b",
    },
    RuleDef {
        id: "aws-secret-access-key",
        title: "AWS Secret Access Key",
        keywords: &[
            "secret_access_key",
            "secretaccesskey",
            "secret-access-key",
            "aws_secret",
            "aws-secret",
            "aws_secret_key",
        ],
        regex: r#"(?i:aws[_\-.]?secret[_\-.]?(?:access[_\-.]?)?key|secret[_\-.]?access[_\-.]?key)["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|$)"#,
    },
    RuleDef {
        id: "github-pat",
        title: "GitHub Personal Access Token",
        keywords: &["ghp_"],
        regex: r"\bghp_[0-9a-zA-Z]{36}\b",
    },
    RuleDef {
        id: "github-oauth",
        title: "GitHub OAuth Access Token",
        keywords: &["gho_"],
        regex: r"\bgho_[0-9a-zA-Z]{36}\b",
    },
    RuleDef {
        id: "github-app-token",
        title: "GitHub App Token",
        keywords: &["ghu_", "ghs_"],
        regex: r"\b(?:ghu|ghs)_[0-9a-zA-Z]{36}\b",
    },
    RuleDef {
        id: "github-refresh-token",
        title: "GitHub Refresh Token",
        keywords: &["ghr_"],
        regex: r"\bghr_[0-9a-zA-Z]{76}\b",
    },
    RuleDef {
        id: "github-fine-grained-pat",
        title: "GitHub Fine-grained Personal Access Token",
        keywords: &["github_pat_"],
        regex: r"\bgithub_pat_[0-9a-zA-Z_]{82}\b",
    },
    RuleDef {
        id: "gitlab-pat",
        title: "GitLab Personal Access Token",
        keywords: &["glpat-"],
        regex: r"\bglpat-[0-9a-zA-Z_\-]{20}\b",
    },
    RuleDef {
        id: "slack-access-token",
        title: "Slack token",
        keywords: &["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"],
        regex: r"\bxox[baprs]-[0-9a-zA-Z]{10,48}(?:-[0-9a-zA-Z]{10,48}){0,3}\b",
    },
    RuleDef {
        id: "slack-web-hook",
        title: "Slack Webhook",
        keywords: &["hooks.slack.com"],
        regex: r"https://hooks\.slack\.com/services/[A-Za-z0-9+/]{43,46}",
    },
    RuleDef {
        id: "stripe-secret-token",
        title: "Stripe Secret Key",
        keywords: &["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
        regex: r"\b(?:sk|rk)_(?:test|live)_[0-9a-zA-Z]{24,99}\b",
    },
    RuleDef {
        id: "npm-access-token",
        title: "npm access token",
        keywords: &["npm_"],
        regex: r"\bnpm_[0-9a-zA-Z]{36}\b",
    },
    RuleDef {
        id: "gcp-api-key",
        title: "Google API key",
        keywords: &["AIza"],
        regex: r"\bAIza[0-9A-Za-z_\-]{35}\b",
    },
    RuleDef {
        id: "gcp-service-account",
        title: "Google (GCP) Service-account",
        keywords: &["service_account"],
        regex: r#""type"\s*:\s*"(service_account)""#,
    },
    RuleDef {
        id: "private-key",
        title: "Asymmetric Private Key",
        keywords: &["PRIVATE KEY"],
        regex: r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----\r?\n?((?:[A-Za-z0-9+/=]\r?\n?){64})",
    },
    RuleDef {
        id: "jwt-token",
        title: "JWT token",
        keywords: &["eyJ"],
        regex: r"\bey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9_\-]{17,}\.[a-zA-Z0-9_\-]{10,}={0,2}",
    },
    RuleDef {
        id: "jwt-secret",
        title: "JWT signing secret",
        keywords: &["jwt"],
        regex: r#"(?i:jwt[_\-.]?(?:secret|signing[_\-.]?key|key))["']?\s*[:=]\s*["']?([A-Za-z0-9+/=_\-!@#$%^&*.]{16,200})"#,
    },
    RuleDef {
        id: "sendgrid-api-token",
        title: "SendGrid API token",
        keywords: &["SG."],
        regex: r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b",
    },
    RuleDef {
        id: "pypi-upload-token",
        title: "PyPI upload token",
        keywords: &["pypi-AgEIcHlwaS5vcmc"],
        regex: r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,300}",
    },
    RuleDef {
        id: "dockerhub-pat",
        title: "Docker Hub personal access token",
        keywords: &["dckr_pat_"],
        regex: r"\bdckr_pat_[A-Za-z0-9_\-]{27}\b",
    },
    RuleDef {
        id: "hugging-face-access-token",
        title: "Hugging Face access token",
        keywords: &["hf_"],
        regex: r"\bhf_[a-zA-Z]{34}\b",
    },
    RuleDef {
        id: "openai-api-key",
        title: "OpenAI API key",
        keywords: &["T3BlbkFJ"],
        regex: r"\bsk-(?:proj-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}\b",
    },
    RuleDef {
        id: "anthropic-api-key",
        title: "Anthropic API key",
        keywords: &["sk-ant-"],
        regex: r"\bsk-ant-(?:api03|admin01)-[A-Za-z0-9_\-]{93}AA\b",
    },
    RuleDef {
        id: "shopify-token",
        title: "Shopify token",
        keywords: &["shpat_", "shpca_", "shppa_", "shpss_"],
        regex: r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
    },
    RuleDef {
        id: "azure-storage-account-key",
        title: "Azure storage account key",
        keywords: &["AccountKey="],
        regex: r"AccountKey=([A-Za-z0-9+/]{86}==)",
    },
    RuleDef {
        id: "digitalocean-pat",
        title: "DigitalOcean personal access token",
        keywords: &["dop_v1_"],
        regex: r"\bdop_v1_[a-f0-9]{64}\b",
    },
];

/// Values published in vendor documentation; never real credentials.
const KNOWN_EXAMPLES: &[&str] = &[
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ASIAIOSFODNN7EXAMPLE",
];

/// Chunk size and overlap: regexes run on at most CHUNK+OVERLAP bytes at a time; the
/// overlap is longer than any rule's match, so nothing is missed at a seam.
const CHUNK: usize = 1 << 20;
const OVERLAP: usize = 4096;
/// Matches kept per file (a file of a million tokens is one finding too many already).
const MAX_MATCHES_PER_FILE: usize = 32;

/// One match, already redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMatch {
    pub rule: &'static str,
    pub title: &'static str,
    /// 1-based.
    pub line: u64,
    pub redacted: String,
}

pub struct SecretMatcher {
    prefilter: AhoCorasick,
    /// Keyword pattern index → rule index.
    keyword_rule: Vec<usize>,
    rules: Vec<Regex>,
}

impl SecretMatcher {
    /// The built-in rule set, compiled once per process.
    #[allow(clippy::expect_used)] // a fixed rule set: `compile` is unit-tested to succeed
    pub fn builtin() -> &'static SecretMatcher {
        static M: OnceLock<SecretMatcher> = OnceLock::new();
        M.get_or_init(|| {
            SecretMatcher::compile().expect("built-in secret rules compile (unit-tested)")
        })
    }

    fn compile() -> Result<SecretMatcher, String> {
        let mut keywords = Vec::new();
        let mut keyword_rule = Vec::new();
        let mut rules = Vec::new();
        for (i, r) in RULES.iter().enumerate() {
            for k in r.keywords {
                keywords.push(*k);
                keyword_rule.push(i);
            }
            let re = RegexBuilder::new(r.regex)
                .size_limit(1 << 20)
                .dfa_size_limit(2 << 20)
                .build()
                .map_err(|e| format!("rule {}: {e}", r.id))?;
            rules.push(re);
        }
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&keywords)
            .map_err(|e| e.to_string())?;
        Ok(SecretMatcher {
            prefilter,
            keyword_rule,
            rules,
        })
    }

    /// All (non-placeholder) secrets in `text`, in order of position.
    pub fn scan(&self, text: &[u8]) -> Vec<SecretMatch> {
        let mut out = Vec::new();
        let mut start = 0usize;
        let mut line_at = (0usize, 1u64); // (offset, line number at offset)
        let mut fired = vec![false; RULES.len()];
        while start < text.len() {
            let end = (start + CHUNK + OVERLAP).min(text.len());
            let own_end = if end == text.len() {
                end
            } else {
                start + CHUNK
            };
            let Some(chunk) = text.get(start..end) else {
                break;
            };
            fired.iter_mut().for_each(|f| *f = false);
            let mut any = false;
            for m in self.prefilter.find_overlapping_iter(chunk) {
                if let Some(&r) = self.keyword_rule.get(m.pattern().as_usize())
                    && let Some(f) = fired.get_mut(r)
                {
                    *f = true;
                    any = true;
                }
            }
            if any {
                let mut found: Vec<(usize, usize, String)> = Vec::new();
                for (r, re) in self.rules.iter().enumerate() {
                    if !fired.get(r).copied().unwrap_or(false) {
                        continue;
                    }
                    for caps in re.captures_iter(chunk) {
                        let Some(whole) = caps.get(0) else { continue };
                        if start + whole.start() >= own_end {
                            continue; // the next chunk owns it
                        }
                        let value = caps.get(1).unwrap_or(whole).as_bytes();
                        let value = String::from_utf8_lossy(value).replace(['\r', '\n'], "");
                        if is_placeholder(&value) {
                            continue;
                        }
                        found.push((start + whole.start(), r, value));
                    }
                }
                found.sort();
                for (pos, r, value) in found {
                    if out.len() >= MAX_MATCHES_PER_FILE {
                        return out;
                    }
                    // Lines counted incrementally (matches come in position order).
                    let (from, line) = line_at;
                    let add = text
                        .get(from..pos)
                        .map(|s| memchr::memchr_iter(b'\n', s).count())
                        .unwrap_or(0);
                    line_at = (pos.max(from), line + add as u64);
                    let Some(rule) = RULES.get(r) else { continue };
                    out.push(SecretMatch {
                        rule: rule.id,
                        title: rule.title,
                        line: line_at.1,
                        redacted: redact(&value),
                    });
                }
            }
            if end == text.len() {
                break;
            }
            start += CHUNK;
        }
        out
    }
}

/// Known examples and obvious placeholders (`xxxx`, `<your-key>`, `${VAR}`, `changeme`,
/// a value of one or two repeated characters).
fn is_placeholder(value: &str) -> bool {
    if KNOWN_EXAMPLES.contains(&value) || value.contains("EXAMPLE") {
        return true;
    }
    let lower = value.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "example",
        "placeholder",
        "changeme",
        "change_me",
        "your",
        "xxxxxx",
        "dummy",
        "sample",
        "redacted",
        "insert",
        "replace",
        "secret_here",
        "fake",
        "****",
    ];
    if WORDS.iter().any(|w| lower.contains(w)) {
        return true;
    }
    if value.starts_with('<')
        || value.contains("${")
        || value.contains("{{")
        || value.contains("$(")
    {
        return true;
    }
    let mut distinct: Vec<char> = value.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    value.len() >= 8 && distinct.len() <= 3
}

/// Keeps a few characters at each end: `AKIA************MPLE`.
pub fn redact(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let keep = match n {
        0..=7 => 0,
        8..=15 => 2,
        _ => 4,
    };
    let mut s: String = chars.iter().take(keep).collect();
    s.extend(std::iter::repeat_n('*', (n - 2 * keep).min(32)));
    s.extend(chars.iter().skip(n - keep));
    s
}

/// Paths whose content is third-party or generated (documentation, package payloads,
/// vendored dependencies): not searched, as in Trivy's built-in allow rules.
pub fn is_noise_path(path: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "usr/share/",
        "usr/include/",
        "usr/lib/",
        "usr/libexec/",
        "lib/",
        "lib64/",
        "usr/lib64/",
        "var/lib/dpkg/",
        "var/lib/apt/",
        "var/lib/rpm/",
        "var/cache/",
        "proc/",
        "sys/",
        "dev/",
        "usr/src/",
        "usr/local/go/",
        "usr/local/lib/python",
        "usr/local/share/",
    ];
    const SEGMENTS: &[&str] = &[
        "/node_modules/",
        "/site-packages/",
        "/dist-packages/",
        "/.git/",
        "/vendor/",
        "/go/pkg/mod/",
        "/.cargo/registry/",
        "/gems/",
        "/__pycache__/",
        "/.npm/_cacache/",
        "/.cache/pip/",
    ];
    const EXTENSIONS: &[&str] = &[
        ".jpg", ".jpeg", ".png", ".gif", ".ico", ".svg", ".webp", ".bmp", ".woff", ".woff2",
        ".ttf", ".otf", ".eot", ".pdf", ".mp3", ".mp4", ".zip", ".gz", ".tgz", ".bz2", ".xz",
        ".zst", ".tar", ".jar", ".war", ".whl", ".deb", ".rpm", ".apk", ".so", ".a", ".o", ".pyc",
        ".pyo", ".class", ".exe", ".dll", ".bin", ".db", ".sqlite", ".md", ".mo", ".gmo", ".map",
    ];
    if PREFIXES.iter().any(|p| path.starts_with(p)) {
        return true;
    }
    let slashed = format!("/{path}");
    if SEGMENTS.iter().any(|s| slashed.contains(s)) {
        return true;
    }
    let lower = path.to_ascii_lowercase();
    EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

/// True for content that is not text: ELF, or a NUL in the first KiB.
pub fn is_binary(head: &[u8]) -> bool {
    let head = head.get(..1024).unwrap_or(head);
    head.starts_with(b"\x7fELF") || memchr::memchr(0, head).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_of(text: &str) -> Vec<(&'static str, u64)> {
        SecretMatcher::builtin()
            .scan(text.as_bytes())
            .into_iter()
            .map(|m| (m.rule, m.line))
            .collect()
    }

    #[test]
    fn all_rules_compile() {
        let m = SecretMatcher::compile().unwrap();
        assert_eq!(m.rules.len(), RULES.len());
    }

    #[test]
    fn finds_common_secrets_with_lines() {
        let text = "# config\nAWS_ACCESS_KEY_ID=AKIA2E0A8F3B244C9986\naws_secret_access_key = \"Xy7K2pQ9vR4tL8mN3bW6zF1hJ5sD0gA7cE2uI9oP\"\n\
token: ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R\ngitlab=glpat-Ab3dE6gH9jK2mN5pQ8sT\n\
slack xoxb-2837465019-9283746501928-a8Bc7De6Fg5Hi4Jk3Lm2No1P\nstripe sk_live_4eC39HqLyjWDarjtT1zdp7dc9fXz\n\
//registry.npmjs.org/:_authToken=npm_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\nkey=AIzaSyD3fK9xQ2mN7pL4vR8tW1yB6hJ0cE5gU2i\n";
        let got = rules_of(text);
        assert_eq!(
            got,
            [
                ("aws-access-key-id", 2),
                ("aws-secret-access-key", 3),
                ("github-pat", 4),
                ("gitlab-pat", 5),
                ("slack-access-token", 6),
                ("stripe-secret-token", 7),
                ("npm-access-token", 8),
                ("gcp-api-key", 9),
            ]
        );
    }

    #[test]
    fn private_keys_service_accounts_and_jwt_secrets() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi8HcoONhKyHW8aPzJeuw1b0P0u\n4kTJ0tWk3vZ3qP7Yg0W1qCBmiMiJZGc2u7p0uJrV1jZt0oJZ2FqH1Ehp8yDnM2pE\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(rules_of(pem), [("private-key", 1)]);
        let sa = r#"{
  "type": "service_account",
  "project_id": "demo-123",
  "private_key_id": "4f0c2d9e8b7a"
}"#;
        assert_eq!(rules_of(sa), [("gcp-service-account", 2)]);
        assert_eq!(
            rules_of("app:\n  jwt_secret: \"q8Zr4Lm2Vx9Pt6Ws3Ny7\"\n"),
            [("jwt-secret", 2)]
        );
    }

    #[test]
    fn examples_and_placeholders_are_not_findings() {
        let text = "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\naws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n\
jwt_secret: ${JWT_SECRET_FROM_ENV_VAR}\njwt_secret=changeme-changeme-please\nGITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n\
-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n";
        assert_eq!(rules_of(text), []);
    }

    #[test]
    fn matches_across_chunk_seams_are_found_once() {
        let mut text = "x".repeat(CHUNK - 10);
        text.push_str(" ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R\n");
        text.push_str(&"y\n".repeat(10));
        text.push_str("AKIA2E0A8F3B244C9986\n");
        let got = rules_of(&text);
        assert_eq!(got, [("github-pat", 1), ("aws-access-key-id", 12)]);
    }

    #[test]
    fn redaction_keeps_ends_only() {
        assert_eq!(redact("AKIA2E0A8F3B244C9986"), "AKIA************9986");
        assert_eq!(redact("short"), "*****");
        let long = "a".repeat(100);
        assert!(redact(&long).len() < 50);
    }

    #[test]
    fn noise_and_binary() {
        assert!(is_noise_path("usr/share/doc/x/README"));
        assert!(is_noise_path("app/node_modules/x/index.js"));
        assert!(is_noise_path("app/logo.PNG"));
        assert!(!is_noise_path("app/.env"));
        assert!(!is_noise_path("etc/app/config.yaml"));
        assert!(is_binary(b"\x7fELF\x02\x01"));
        assert!(is_binary(b"abc\0def"));
        assert!(!is_binary(b"plain text\n"));
    }
}
