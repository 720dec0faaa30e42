//! Alpine's `/lib/apk/db/installed`: one-letter fields (`P:` name, `V:` version,
//! `A:` arch, `o:` origin = source package, `L:` license), blank line between packages.

use crate::report::{Package, PackageType};

use super::package;

pub fn parse(bytes: &[u8]) -> Vec<Package> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let (mut name, mut version, mut arch, mut origin, mut license) =
            (None, None, None, None, None);
        let (mut depends, mut provides) = (Vec::new(), Vec::new());
        for line in para.lines() {
            match line.split_once(':') {
                // `D:so:libc.musl-x86_64.so.1 cmd:sh /bin/sh busybox>=1.36`, `p:cmd:ls=1.36`:
                // names without constraints; a `!name` conflict is no dependency.
                Some(("D", v)) => depends.extend(
                    v.split_whitespace()
                        .filter(|d| !d.starts_with('!'))
                        .map(apk_name)
                        .take(256),
                ),
                Some(("p", v)) => provides.extend(v.split_whitespace().map(apk_name).take(256)),
                Some(("P", v)) => name = Some(v),
                Some(("V", v)) => version = Some(v),
                Some(("A", v)) => arch = Some(v),
                Some(("o", v)) => origin = Some(v),
                Some(("L", v)) => license = Some(v),
                _ => {}
            }
        }
        let (Some(name), Some(version)) = (name, version) else {
            continue;
        };
        let mut p = package(PackageType::Apk, name, version);
        p.arch = arch.map(str::to_string);
        p.source_name = Some(origin.unwrap_or(name).to_string());
        p.licenses = license.map(|l| vec![l.to_string()]).unwrap_or_default();
        p.depends = depends;
        p.provides = provides;
        out.push(p);
    }
    out
}

/// An apk dependency or provided name without its version constraint.
fn apk_name(d: &str) -> String {
    d.split(['=', '<', '>', '~'])
        .next()
        .unwrap_or(d)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpine_installed_db() {
        // Excerpt of alpine:3.20 /lib/apk/db/installed.
        let db = b"C:Q1Ef6OsyJe8s7Ru2ySNjzt6Lbg3Y8=
P:musl
V:1.2.5-r0
A:x86_64
S:411604
I:649216
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1711999209
c:c8f9e3b5d6c1b0a7e6a4a2d3e1f0c9b8a7d6e5f4
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755

C:Q1hiSOV8CQrjcCqYhH8trhWC3Dw5Q=
P:libcrypto3
V:3.3.2-r1
A:x86_64
L:Apache-2.0
o:openssl
F:usr/lib

P:broken-without-version
A:x86_64
";
        let p = parse(db);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("musl", "1.2.5-r0")
        );
        assert_eq!(p[1].source_name.as_deref(), Some("openssl"));
        assert_eq!(p[1].licenses, ["Apache-2.0"]);
        assert_eq!(p[1].arch.as_deref(), Some("x86_64"));
    }
}
