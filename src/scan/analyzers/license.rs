//! Declared licenses in SPDX terms (SPDX specification 2.3, annex D, license
//! expressions; the license list of the `spdx` crate): a package manager's license
//! field, a Debian machine-readable copyright file's `License:` short names (DEP-5,
//! https://dep-team.pages.debian.net/deps/dep5/), a Python trove classifier.
//! Analyzers keep what the package declares, as declared; this module says what that is
//! in SPDX: an id, an expression, or (neither) a free-text name.

use spdx::Expression;

/// A declared license as SPDX sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpdxLicense {
    /// One license of the SPDX list, no operator (`MIT`, `GPL-2.0-or-later`).
    Id(String),
    /// A valid SPDX expression of more than one id, or one with `+` or `WITH`
    /// (`GPL-2.0-or-later OR Artistic-1.0-Perl`).
    Expression(String),
    /// Text that is neither (kept as declared, e.g. `public-domain`, `Freely
    /// redistributable`).
    Name(String),
}

impl SpdxLicense {
    /// The form for an SPDX expression field: the id or expression, or
    /// `LicenseRef-<name with only [A-Za-z0-9.-]>` for a name.
    pub fn spdx_expression(&self) -> String {
        match self {
            SpdxLicense::Id(s) | SpdxLicense::Expression(s) => s.clone(),
            SpdxLicense::Name(n) => license_ref(n),
        }
    }
}

/// `LicenseRef-` id of a free-text license name (SPDX 2.3 §10.1: `[A-Za-z0-9.-]+`).
pub fn license_ref(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.truncate(64);
    format!("LicenseRef-{s}")
}

/// Longest declared license considered (a longer field is license text, not a name).
const MAX_DECLARED: usize = 256;

/// `raw` in SPDX terms; `None` for an empty or placeholder value (`UNKNOWN`, `NONE`).
pub fn to_spdx(raw: &str) -> Option<SpdxLicense> {
    let raw = raw.trim();
    if raw.is_empty()
        || raw.len() > MAX_DECLARED
        || ["unknown", "none", "noassertion", "unlicensed"]
            .contains(&raw.to_ascii_lowercase().as_str())
    {
        return None;
    }
    // A whole value that is a license's id or its full name, any case.
    if let Some(id) = lookup(raw) {
        return Some(classify(id.to_string()));
    }
    let mapped = map_terms(raw)?;
    let canonical = match Expression::canonicalize(&mapped) {
        Ok(Some(c)) => c,
        Ok(None) => mapped,
        Err(_) => return Some(SpdxLicense::Name(raw.to_string())),
    };
    match Expression::parse(&canonical) {
        Ok(_) => Some(classify(canonical)),
        Err(_) => Some(SpdxLicense::Name(raw.to_string())),
    }
}

fn classify(s: String) -> SpdxLicense {
    match spdx::license_id(&s) {
        Some(id) if id.name == s && !id.is_deprecated() => SpdxLicense::Id(s),
        _ => SpdxLicense::Expression(s),
    }
}

/// A current (not deprecated) license whose id or full name is `s`, any case.
fn lookup(s: &str) -> Option<&'static str> {
    spdx::identifiers::LICENSES
        .iter()
        .find(|l| {
            (l.name.eq_ignore_ascii_case(s) || l.full_name.eq_ignore_ascii_case(s))
                && l.flags & spdx::flags::IS_DEPRECATED == 0
        })
        .map(|l| l.name)
}

/// Debian's DEP-5 short names that are not SPDX ids as written (lowercase, without a
/// trailing `+`), and the SPDX id or expression they stand for.
const DEBIAN_NAMES: &[(&str, &str)] = &[
    ("expat", "MIT"),
    ("gpl", "GPL-1.0"),
    ("gpl-1", "GPL-1.0"),
    ("gpl-2", "GPL-2.0"),
    ("gpl-3", "GPL-3.0"),
    ("lgpl-2", "LGPL-2.0"),
    ("lgpl-3", "LGPL-3.0"),
    ("agpl-3", "AGPL-3.0"),
    ("gfdl-1.1", "GFDL-1.1"),
    ("gfdl-1.2", "GFDL-1.2"),
    ("gfdl-1.3", "GFDL-1.3"),
    ("gfdl-nir-1.2", "GFDL-1.2-no-invariants"),
    ("gfdl-nir-1.3", "GFDL-1.3-no-invariants"),
    ("artistic", "Artistic-1.0"),
    ("artistic-1", "Artistic-1.0"),
    ("artistic-2", "Artistic-2.0"),
    ("apache-2", "Apache-2.0"),
    ("mpl-1", "MPL-1.0"),
    ("mpl-2", "MPL-2.0"),
    ("zope", "ZPL-2.1"),
    ("psf-2", "PSF-2.0"),
    ("python", "Python-2.0"),
    // Debian's `Perl` is "Artistic or GPL-1+", the terms Perl is distributed under.
    ("perl", "(Artistic-1.0-Perl OR GPL-1.0+)"),
    ("cc0", "CC0-1.0"),
    ("bsd-2", "BSD-2-Clause"),
    ("bsd-3", "BSD-3-Clause"),
    ("bsd-4", "BSD-4-Clause"),
    ("ssleay", "SSLeay-standalone"),
];

/// `raw` with each term that is not an operator replaced by its SPDX id where one is
/// known; `None` when nothing is left.
fn map_terms(raw: &str) -> Option<String> {
    let spaced = raw
        .replace('(', " ( ")
        .replace(')', " ) ")
        .replace(',', " and ");
    let mut out: Vec<String> = Vec::new();
    for t in spaced.split_whitespace() {
        let lower = t.to_ascii_lowercase();
        let mapped = match lower.as_str() {
            "and" | "&" => "AND".to_string(),
            "or" | "|" => "OR".to_string(),
            "with" => "WITH".to_string(),
            "(" | ")" => t.to_string(),
            _ => {
                let (base, plus) = match lower.strip_suffix('+') {
                    Some(b) => (b, "+"),
                    None => (lower.as_str(), ""),
                };
                let base_orig = t.strip_suffix('+').unwrap_or(t);
                match DEBIAN_NAMES.iter().find(|(k, _)| *k == base) {
                    Some((_, v)) if v.starts_with('(') => v.to_string(),
                    Some((_, v)) => format!("{v}{plus}"),
                    None => match lookup(base_orig) {
                        Some(id) => format!("{id}{plus}"),
                        None => t.to_string(),
                    },
                }
            }
        };
        out.push(mapped);
    }
    (!out.is_empty()).then(|| out.join(" "))
}

/// The license a Python trove classifier (`License :: OSI Approved :: MIT License`)
/// names, when it names one version of one license.
pub fn python_classifier(classifier: &str) -> Option<String> {
    let last = classifier
        .strip_prefix("License ::")?
        .rsplit("::")
        .next()?
        .trim();
    // `GNU General Public License v2 or later (GPLv2+)`: the short form in parentheses.
    let short = last
        .rsplit_once('(')
        .and_then(|(_, s)| s.strip_suffix(')'))
        .map(str::trim);
    let known: &[(&str, &str)] = &[
        ("GPLv2", "GPL-2.0-only"),
        ("GPLv2+", "GPL-2.0-or-later"),
        ("GPLv3", "GPL-3.0-only"),
        ("GPLv3+", "GPL-3.0-or-later"),
        ("LGPLv2", "LGPL-2.0-only"),
        ("LGPLv2+", "LGPL-2.0-or-later"),
        ("LGPLv3", "LGPL-3.0-only"),
        ("LGPLv3+", "LGPL-3.0-or-later"),
        ("MPL 2.0", "MPL-2.0"),
        ("MPL 1.1", "MPL-1.1"),
        ("ISCL", "ISC"),
        ("Unlicense", "Unlicense"),
    ];
    if let Some(s) = short {
        if let Some((_, id)) = known.iter().find(|(k, _)| *k == s) {
            return Some(id.to_string());
        }
        if let Some(id) = lookup(s) {
            return Some(id.to_string());
        }
    }
    match last {
        "MIT License" => Some("MIT".into()),
        "Python Software Foundation License" => Some("PSF-2.0".into()),
        "GNU Affero General Public License v3" => Some("AGPL-3.0-only".into()),
        "GNU Affero General Public License v3 or later (AGPLv3+)" => {
            Some("AGPL-3.0-or-later".into())
        }
        _ => lookup(last).map(str::to_string),
    }
}

/// The licenses a Debian copyright file declares: the distinct `License:` short names
/// (first line of the field) of a machine-readable file (DEP-5, `Format:` naming the
/// copyright-format spec). Empty for a free-form file (no license names to trust).
pub fn debian_copyright(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let machine_readable = text.lines().take(5).any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("format") && v.contains("copyright-format")
        })
    });
    if !machine_readable {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if !k.eq_ignore_ascii_case("license") {
            continue;
        }
        let v = v.trim();
        if v.is_empty() || v.len() > MAX_DECLARED || out.iter().any(|o| o == v) {
            continue;
        }
        out.push(v.to_string());
        if out.len() >= 64 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Option<SpdxLicense> {
        Some(SpdxLicense::Id(s.into()))
    }
    fn expr(s: &str) -> Option<SpdxLicense> {
        Some(SpdxLicense::Expression(s.into()))
    }

    #[test]
    fn declared_values_in_spdx_terms() {
        assert_eq!(to_spdx("MIT"), id("MIT"));
        assert_eq!(to_spdx("mit"), id("MIT"));
        assert_eq!(to_spdx("Apache-2.0"), id("Apache-2.0"));
        assert_eq!(to_spdx("GPL-2+"), id("GPL-2.0-or-later"));
        assert_eq!(to_spdx("GPL-2"), id("GPL-2.0-only"));
        assert_eq!(to_spdx("LGPL-2.1+"), id("LGPL-2.1-or-later"));
        assert_eq!(to_spdx("BSD-3-clause"), id("BSD-3-Clause"));
        assert_eq!(to_spdx("Expat"), id("MIT"));
        assert_eq!(
            to_spdx("GNU General Public License v2.0 only"),
            id("GPL-2.0-only")
        );
        assert_eq!(
            to_spdx("GPL-2+ or Artistic"),
            expr("GPL-2.0-or-later OR Artistic-1.0")
        );
        assert_eq!(to_spdx("(MIT OR Apache-2.0)"), expr("(MIT OR Apache-2.0)"));
        assert_eq!(to_spdx("MIT/Apache-2.0"), expr("MIT OR Apache-2.0"));
        assert_eq!(
            to_spdx("Perl"),
            expr("(Artistic-1.0-Perl OR GPL-1.0-or-later)")
        );
        assert_eq!(
            to_spdx("public-domain"),
            Some(SpdxLicense::Name("public-domain".into()))
        );
        assert_eq!(
            to_spdx("GPL-2+ with OpenSSL exception"),
            Some(SpdxLicense::Name("GPL-2+ with OpenSSL exception".into()))
        );
        assert_eq!(to_spdx("UNKNOWN"), None);
        assert_eq!(to_spdx("  "), None);
        assert_eq!(
            SpdxLicense::Name("Freely redistributable".into()).spdx_expression(),
            "LicenseRef-Freely-redistributable"
        );
    }

    #[test]
    fn classifiers() {
        assert_eq!(
            python_classifier("License :: OSI Approved :: MIT License").as_deref(),
            Some("MIT")
        );
        assert_eq!(
            python_classifier(
                "License :: OSI Approved :: GNU General Public License v2 or later (GPLv2+)"
            )
            .as_deref(),
            Some("GPL-2.0-or-later")
        );
        assert_eq!(
            python_classifier("License :: OSI Approved :: Apache Software License"),
            None
        );
        assert_eq!(python_classifier("Programming Language :: Python"), None);
    }

    #[test]
    fn dep5_copyright() {
        let text = b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: bash

Files: *
Copyright: 1987-2022 Free Software Foundation, Inc.
License: GPL-3+

Files: lib/readline/*
Copyright: 1987-2022 Free Software Foundation, Inc.
License: GPL-3+

Files: doc/*
License: GFDL-NIV-1.3

License: GPL-3+
 This program is free software; you can redistribute it
 License: not-a-field
";
        assert_eq!(debian_copyright(text), ["GPL-3+", "GFDL-NIV-1.3"]);
        assert!(
            debian_copyright(b"This is the Debian prepackaged version of bash.\nLicense: GPL\n")
                .is_empty()
        );
    }
}
