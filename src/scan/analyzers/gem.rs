//! Ruby gems: the specification RubyGems writes for every installed gem,
//! `<GEM_HOME>/specifications/<name>-<version>.gemspec` (`GEM_HOME` being
//! `…/gems/<ruby-version>`, `…/ruby/<ruby-version>` as in bundler's `vendor/bundle`, or
//! the official images' `/usr/local/bundle`).
//! The file is Ruby source; it is read as text, never evaluated: the literal
//! `s.name = "rack".freeze` and `s.version = "2.2.8"` assignments, else the
//! `# stub: rack 2.2.8 ruby lib` line RubyGems puts first.

use crate::report::{Package, PackageType};

use super::package;

/// Lines looked at; a real specification is a few dozen.
const MAX_LINES: usize = 10_000;
const MAX_FIELD: usize = 256;

/// True when `dir` is a RubyGems `specifications` directory (`default/` holds the
/// gems that ship with Ruby itself).
pub fn is_specifications_dir(dir: &str) -> bool {
    let dir = dir.strip_suffix("/default").unwrap_or(dir);
    let Some(home) = dir.strip_suffix("/specifications") else {
        return false;
    };
    let mut up = home.rsplit('/');
    let last = up.next().unwrap_or_default();
    // The official ruby images' `GEM_HOME` is `/usr/local/bundle` itself.
    last == "bundle"
        || (matches!(up.next(), Some("gems" | "ruby"))
            && last.as_bytes().first().is_some_and(u8::is_ascii_digit))
}

/// The value of a Ruby string literal at the start of `s` (`"x"`, `'x'`, with an
/// optional `.freeze`); no interpolation or escapes, which names and versions lack.
fn string_literal(s: &str) -> Option<&str> {
    let s = s.trim_start();
    let quote = s.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    let rest = s.get(1..)?;
    let end = rest.find(quote)?;
    let value = rest.get(..end)?;
    if value.contains(['\\', '#']) {
        return None;
    }
    Some(value)
}

/// Every string literal of an array literal (`["MIT".freeze, "Ruby".freeze]`).
fn string_array(s: &str) -> Vec<String> {
    let Some(body) = s.trim_start().strip_prefix('[') else {
        return Vec::new();
    };
    let body = body.split(']').next().unwrap_or_default();
    body.split(',')
        .filter_map(string_literal)
        .filter(|v| valid(v))
        .map(str::to_string)
        .take(16)
        .collect()
}

fn valid(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_FIELD && !v.chars().any(|c| c.is_control() || c == ' ')
}

/// `<var>.<field> = <rest>` → `rest`, for any receiver name (`s`, `spec`).
fn assignment<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let (lhs, rhs) = line.split_once('=')?;
    let (recv, name) = lhs.trim().split_once('.')?;
    (name == field
        && !recv.is_empty()
        && recv.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then_some(rhs)
}

pub fn parse(bytes: &[u8]) -> Option<Package> {
    let text = String::from_utf8_lossy(bytes);
    let (mut name, mut version, mut stub) = (None, None, None);
    let mut licenses = Vec::new();
    for (i, line) in text.lines().take(MAX_LINES).enumerate() {
        let line = line.trim();
        if i == 0
            && let Some(s) = line.strip_prefix("# stub: ")
        {
            let mut f = s.split_whitespace();
            stub = f.next().zip(f.next());
            continue;
        }
        if let Some(v) = assignment(line, "name").and_then(string_literal) {
            name.get_or_insert(v);
        } else if let Some(v) = assignment(line, "version").and_then(string_literal) {
            version.get_or_insert(v);
        } else if let Some(rhs) = assignment(line, "licenses") {
            licenses = string_array(rhs);
        } else if let Some(v) = assignment(line, "license").and_then(string_literal) {
            licenses = vec![v.to_string()];
        }
    }
    let (name, version) = match (name, version) {
        (Some(n), Some(v)) => (n, v),
        _ => stub?,
    };
    if !valid(name) || !valid(version) {
        return None;
    }
    let mut p = package(PackageType::Gem, name, version);
    p.licenses = licenses.into_iter().filter(|l| valid(l)).collect();
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As RubyGems 3.4 writes it (`gem install rack -v 2.2.8`).
    pub const RACK: &str = r#"# -*- encoding: utf-8 -*-
# stub: rack 2.2.8 ruby lib

Gem::Specification.new do |s|
  s.name = "rack".freeze
  s.version = "2.2.8"

  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
  s.metadata = { "bug_tracker_uri" => "https://github.com/rack/rack/issues" } if s.respond_to? :metadata=
  s.require_paths = ["lib".freeze]
  s.authors = ["Leah Neukirchen".freeze]
  s.licenses = ["MIT".freeze]
  s.summary = "A modular Ruby webserver interface".freeze

  s.installed_by_version = "3.4.10" if s.respond_to? :installed_by_version

  s.add_development_dependency(%q<minitest>.freeze, ["~> 5.0"])
end
"#;

    #[test]
    fn installed_specification() {
        let p = parse(RACK.as_bytes()).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("rack", "2.2.8"));
        assert_eq!(p.kind, PackageType::Gem);
        assert_eq!(p.licenses, ["MIT"]);
        // other receiver names, single quotes, a pre-release
        let p = parse(b"Gem::Specification.new do |spec|\n  spec.name = 'nokogiri'\n  spec.version = '1.16.0.rc1'\n  spec.license = 'MIT'\nend\n").unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("nokogiri", "1.16.0.rc1")
        );
        assert_eq!(p.licenses, ["MIT"]);
    }

    #[test]
    fn stub_line_when_assignments_are_missing() {
        let p = parse(b"# stub: json 2.6.3 ruby lib\n# truncated").unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("json", "2.6.3"));
    }

    #[test]
    fn garbage_and_truncation() {
        assert!(parse(b"").is_none());
        assert!(parse(b"\x00\xff\xfe garbage").is_none());
        // truncated inside the literal, or a computed value: not guessed
        assert!(parse(b"s.name = \"ra").is_none());
        assert!(parse(b"s.name = \"x\"\ns.version = Foo::VERSION\n").is_none());
        assert!(parse(b"s.name = \"a b\"\ns.version = \"1\"\n").is_none());
        assert!(parse(b"s.name = \"#{x}\"\ns.version = \"1\"\n").is_none());
        let long = format!("s.name = \"{}\"\ns.version = \"1\"\n", "a".repeat(1000));
        assert!(parse(long.as_bytes()).is_none());
        for cut in 0..RACK.len() {
            let _ = parse(&RACK.as_bytes()[..cut]);
        }
    }

    #[test]
    fn specification_dirs() {
        for d in [
            "usr/local/lib/ruby/gems/3.2.0/specifications",
            "usr/local/lib/ruby/gems/3.2.0/specifications/default",
            "var/lib/gems/3.1.0/specifications",
            "app/vendor/bundle/ruby/3.3.0/specifications",
            "usr/local/bundle/ruby/3.3.0/specifications",
            "usr/local/bundle/specifications",
        ] {
            assert!(is_specifications_dir(d), "{d}");
        }
        for d in [
            "specifications",
            "app/specifications",
            "usr/share/rubygems-integration/all/specifications",
            "usr/local/lib/ruby/gems/3.2.0/gems/rack-2.2.8/specifications",
        ] {
            assert!(!is_specifications_dir(d), "{d}");
        }
    }
}
