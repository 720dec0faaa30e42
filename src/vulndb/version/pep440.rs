//! Python package versions, PEP 440: `[N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]`,
//! parsed with the PEP's normalisation rules (case, `alpha`/`beta`/`c`/`pre`/`preview`
//! spellings, `-`/`_`/`.` separators, implicit numbers, `-N` post-releases, `v` prefix).
//! Ordering: epoch, release (trailing zeros ignored), then dev < pre < final < post, and a
//! local label sorts after the same public version.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440 {
    epoch: u64,
    release: Vec<u64>,
    /// (0 = a, 1 = b, 2 = rc, number)
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<LocalPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LocalPart {
    Num(u64),
    Str(String),
}

impl Ord for LocalPart {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (LocalPart::Num(a), LocalPart::Num(b)) => a.cmp(b),
            (LocalPart::Str(a), LocalPart::Str(b)) => a.cmp(b),
            // numeric segments sort after alphanumeric ones
            (LocalPart::Num(_), LocalPart::Str(_)) => Ordering::Greater,
            (LocalPart::Str(_), LocalPart::Num(_)) => Ordering::Less,
        }
    }
}
impl PartialOrd for LocalPart {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Longest accepted version string; longer ones are junk, not versions.
const MAX_LEN: usize = 256;

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn eat_sep(&mut self) -> bool {
        matches!(self.peek(), Some(b'-' | b'_' | b'.')) && {
            self.i += 1;
            true
        }
    }
    fn number(&mut self) -> Option<Option<u64>> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if self.i == start {
            return Some(None);
        }
        // Components beyond u64 are absurd: reject the version rather than misorder it.
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse::<u64>()
            .ok()
            .map(Some)
    }
    /// Match one of `words` (longest first) at the cursor.
    fn word(&mut self, words: &[&str]) -> Option<usize> {
        let rest = &self.s[self.i..];
        let (idx, w) = words
            .iter()
            .enumerate()
            .filter(|(_, w)| rest.starts_with(w.as_bytes()))
            .max_by_key(|(_, w)| w.len())?;
        self.i += w.len();
        Some(idx)
    }
}

impl Pep440 {
    pub fn parse(input: &str) -> Option<Pep440> {
        let lower = input.trim().to_ascii_lowercase();
        if lower.is_empty() || lower.len() > MAX_LEN {
            return None;
        }
        let mut c = Cursor {
            s: lower.as_bytes(),
            i: 0,
        };
        c.eat(b'v');
        let mut first = c.number()??;
        let mut epoch = 0;
        if c.eat(b'!') {
            epoch = first;
            first = c.number()??;
        }
        let mut release = vec![first];
        while c.peek() == Some(b'.') && c.s.get(c.i + 1).is_some_and(u8::is_ascii_digit) {
            c.i += 1;
            release.push(c.number()??);
        }
        if release.len() > 64 {
            return None;
        }
        // pre-release
        let mut pre = None;
        let save = c.i;
        c.eat_sep();
        const PRE: [&str; 7] = ["a", "alpha", "b", "beta", "c", "rc", "pre"];
        match c.word(&["a", "alpha", "b", "beta", "c", "rc", "pre", "preview"]) {
            Some(k) => {
                let kind = match PRE.get(k).copied().unwrap_or("rc") {
                    "a" | "alpha" => 0,
                    "b" | "beta" => 1,
                    _ => 2,
                };
                let save2 = c.i;
                c.eat_sep();
                let n = match c.number()? {
                    Some(n) => n,
                    None => {
                        c.i = save2;
                        0
                    }
                };
                pre = Some((kind, n));
            }
            None => c.i = save,
        }
        // post-release: `-N` or [sep](post|rev|r)[sep][N]
        let mut post = None;
        let save = c.i;
        if c.eat(b'-') && c.peek().is_some_and(|ch| ch.is_ascii_digit()) {
            post = c.number()?;
        } else {
            c.i = save;
            c.eat_sep();
            if c.word(&["post", "rev", "r"]).is_some() {
                let save2 = c.i;
                c.eat_sep();
                post = Some(match c.number()? {
                    Some(n) => n,
                    None => {
                        c.i = save2;
                        0
                    }
                });
            } else {
                c.i = save;
            }
        }
        // dev-release
        let mut dev = None;
        let save = c.i;
        c.eat_sep();
        if c.word(&["dev"]).is_some() {
            let save2 = c.i;
            c.eat_sep();
            dev = Some(match c.number()? {
                Some(n) => n,
                None => {
                    c.i = save2;
                    0
                }
            });
        } else {
            c.i = save;
        }
        // local version label
        let mut local = Vec::new();
        if c.eat(b'+') {
            let rest = std::str::from_utf8(&c.s[c.i..]).ok()?;
            for part in rest.split(['.', '-', '_']) {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return None;
                }
                local.push(if part.bytes().all(|b| b.is_ascii_digit()) {
                    LocalPart::Num(part.parse().ok()?)
                } else {
                    LocalPart::Str(part.to_string())
                });
            }
            c.i = c.s.len();
        }
        if c.i != c.s.len() {
            return None;
        }
        Some(Pep440 {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    fn release_trimmed(&self) -> &[u64] {
        let n = self
            .release
            .iter()
            .rposition(|&x| x != 0)
            .map_or(0, |i| i + 1);
        &self.release[..n]
    }

    /// Pre-release key: a bare dev release sorts before every pre-release of the same
    /// release, a final release after all of them.
    fn pre_key(&self) -> (i8, u8, u64) {
        match (self.pre, self.post, self.dev) {
            (None, None, Some(_)) => (-1, 0, 0),
            (None, _, _) => (1, 0, 0),
            (Some((k, n)), _, _) => (0, k, n),
        }
    }
}

impl Ord for Pep440 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.release_trimmed().cmp(other.release_trimmed()))
            .then_with(|| self.pre_key().cmp(&other.pre_key()))
            // no post < any post
            .then_with(|| {
                self.post
                    .map(|p| p as i128)
                    .unwrap_or(-1)
                    .cmp(&other.post.map(|p| p as i128).unwrap_or(-1))
            })
            // any dev < no dev
            .then_with(|| {
                self.dev
                    .map(|d| d as i128)
                    .unwrap_or(i128::MAX)
                    .cmp(&other.dev.map(|d| d as i128).unwrap_or(i128::MAX))
            })
            .then_with(|| self.local.cmp(&other.local))
    }
}
impl PartialOrd for Pep440 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(Pep440::parse(a)?.cmp(&Pep440::parse(b)?))
}

/// PyPI project names compare after PEP 503 normalisation: lowercase, and every run of
/// `-`, `_`, `.` is one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for ch in name.trim().chars() {
        if matches!(ch, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(ch.to_lowercase());
            in_sep = false;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Scheme;
    use super::super::testutil::{assert_ascending, assert_cases};
    use std::cmp::Ordering::*;

    #[test]
    fn pep440_ascending() {
        // The ordering example of PEP 440 itself, plus epochs and locals.
        assert_ascending(
            Scheme::Pep440,
            &[
                "1.0.dev456",
                "1.0a1",
                "1.0a2.dev456",
                "1.0a12.dev456",
                "1.0a12",
                "1.0b1.dev456",
                "1.0b2",
                "1.0b2.post345.dev456",
                "1.0b2.post345",
                "1.0rc1.dev456",
                "1.0rc1",
                "1.0",
                "1.0+abc.5",
                "1.0+abc.7",
                "1.0+5",
                "1.0.post456.dev34",
                "1.0.post456",
                "1.0.15",
                "1.1.dev1",
                "2.0",
                "1!0.1",
                "1!1.0",
            ],
        );
    }

    #[test]
    fn pep440_normalisation() {
        assert_cases(
            Scheme::Pep440,
            &[
                ("1.0", "1.0.0", Equal),
                ("1.0", "1", Equal),
                ("v1.0", "1.0", Equal),
                ("1.0ALPHA1", "1.0a1", Equal),
                ("1.0-alpha.1", "1.0a1", Equal),
                ("1.0beta", "1.0b0", Equal),
                ("1.0c1", "1.0rc1", Equal),
                ("1.0pre1", "1.0rc1", Equal),
                ("1.0preview1", "1.0rc1", Equal),
                ("1.0-1", "1.0.post1", Equal),
                ("1.0rev1", "1.0.post1", Equal),
                ("1.0-r1", "1.0.post1", Equal),
                ("1.0.post", "1.0.post0", Equal),
                ("1.0-dev", "1.0.dev0", Equal),
                ("1.0+ubuntu-1", "1.0+ubuntu.1", Equal),
                ("0!1.0", "1.0", Equal),
                ("2.31.0", "2.4.0", Greater),
                ("1.26.18", "1.26.5", Greater),
                ("42.0.0", "41.0.7", Greater),
                ("2.0.0rc1", "2.0.0", Less),
                ("1.0.0.0.0", "1", Equal),
                ("1.0a1", "1.0a1.post1", Less),
                ("1.0a1.post1", "1.0a2.dev1", Less),
                ("1.0.dev1", "1.0a1.dev1", Less),
                ("1.0.post1.dev1", "1.0.post1", Less),
                ("1.0.post1.dev1", "1.0", Greater),
                ("1.0+local", "1.0.post1", Less),
                ("1.0+1.a", "1.0+1.1", Less),
                ("1.0+abc", "1.0+abc.1", Less),
                ("1!1.0", "2.0", Greater),
                (" 1.0 ", "1.0", Equal),
            ],
        );
    }

    #[test]
    fn pep440_rejects_junk() {
        for s in [
            "",
            "abc",
            "1.0+",
            "1.0+a..b",
            "1..0",
            "1.0junk",
            "1!",
            "!1",
            "99999999999999999999999999.0",
            "1.0.post-",
            "1.0a1b1",
        ] {
            assert_eq!(super::compare(s, "1.0"), None, "{s:?}");
        }
    }

    #[test]
    fn pypi_names() {
        assert_eq!(
            super::normalize_name("Django_REST.framework"),
            "django-rest-framework"
        );
        assert_eq!(super::normalize_name("zope..interface"), "zope-interface");
        assert_eq!(super::normalize_name("PyYAML"), "pyyaml");
    }
}
