//! Every parser against mutated input: a valid seed for each, then thousands of
//! deterministic mutations (bit flips, truncations, spliced and repeated runs, length
//! fields set to extremes, random bytes). Each call must return — an error, an empty
//! result, a finding — and never panic. Stable Rust has no cargo-fuzz, so this is the
//! fuzzing that runs in every CI build; a failure prints the seed and the input.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pullwarden::config::{Config, ScanLimits};
use pullwarden::digest::Digest;
use pullwarden::reference::Reference;
use pullwarden::scan::analyzers;
use pullwarden::scan::{LayerRef, MemoryBlobs, Scanner};
use pullwarden::verify::evidence;
use pullwarden::verify::payload::{self, PayloadKind};
use pullwarden::vulndb::{cvss, osv};

use crate::scan::{go_binary, jar};
use crate::support::image::{Compression, Entry, Layer};

/// xorshift64*: deterministic, so a failure reproduces from its round number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One mutation of `seed` (several stacked now and then).
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(len + 1)),
            2 if len > 0 => {
                // Repeat a run (long lines, duplicated records, nested structures).
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let run = v[a..b].to_vec();
                let at = rng.below(len + 1);
                for _ in 0..1 + rng.below(50) {
                    v.splice(at..at, run.iter().copied());
                }
            }
            3 if len > 0 => {
                // Extremes where length fields and counters live.
                let i = rng.below(len);
                let val = [0x00, 0xff, 0x7f, 0x80, b'9', b'-', b'"', b'\n'][rng.below(8)];
                for b in v.iter_mut().skip(i).take(1 + rng.below(8)) {
                    *b = val;
                }
            }
            4 if len > 1 => {
                let a = rng.below(len);
                let b = (a + rng.below(len - a)).min(len);
                v.drain(a..b);
            }
            5 => {
                let at = rng.below(len + 1);
                let junk: Vec<u8> = (0..1 + rng.below(32)).map(|_| rng.next() as u8).collect();
                v.splice(at..at, junk);
            }
            6 if len > 0 => {
                // Overwrite with printable noise (text formats).
                let i = rng.below(len);
                for b in v.iter_mut().skip(i).take(1 + rng.below(16)) {
                    *b = b' ' + (rng.next() % 95) as u8;
                }
            }
            _ => {
                v = (0..rng.below(512)).map(|_| rng.next() as u8).collect();
            }
        }
    }
    v
}

/// Runs `f` on `rounds` mutations of each seed (times `PW_FUZZ_ROUNDS`, default 1, for
/// a deeper local run; `PW_FUZZ_SEED` varies the sequence) and fails listing the
/// inputs that panicked.
fn survive(name: &str, seeds: &[&[u8]], rounds: usize, f: impl Fn(&[u8])) {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let rounds = rounds * env("PW_FUZZ_ROUNDS", 1) as usize;
    let mut rng =
        Rng((0x9E37_79B9_7F4A_7C15 ^ name.len() as u64).wrapping_add(env("PW_FUZZ_SEED", 0)) | 1);
    let mut failures = Vec::new();
    for (s, seed) in seeds.iter().enumerate() {
        // The seed itself must be fine too.
        if catch_unwind(AssertUnwindSafe(|| f(seed))).is_err() {
            failures.push(format!("seed {s} itself"));
        }
        for round in 0..rounds {
            let input = mutate(seed, &mut rng);
            if catch_unwind(AssertUnwindSafe(|| f(&input))).is_err() {
                let shown: String = String::from_utf8_lossy(&input).chars().take(300).collect();
                failures.push(format!("seed {s} round {round}: {shown:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{name} panicked on:\n{}",
        failures.join("\n")
    );
}

const DPKG: &[u8] = b"Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 12984\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc (2.36-9+deb12u4)\nVersion: 2.36-9+deb12u4\nDepends: libgcc-s1\nDescription: GNU C Library\n multi line\n .\n more\n\nPackage: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\nSource: zlib\n";
const APK: &[u8] = b"C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nI:622592\nT:the musl c library\nU:https://musl.libc.org/\nL:MIT\no:musl\nm:Maintainer <m@example.org>\nt:1700000000\nc:abc\n\nP:busybox\nV:1.36.1-r5\no:busybox\n";
const METADATA: &[u8] = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nSummary: HTTP\nLicense: Apache 2.0\nRequires-Dist: idna\n\nbody text\n";
const PACKAGE_JSON: &[u8] = br#"{"name":"@scope/left-pad","version":"1.3.0","license":"MIT","dependencies":{"a":"^1"},"_resolved":"https://registry.npmjs.org/x"}"#;
const OS_RELEASE: &[u8] = b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n";
const OSV: &[u8] = br#"{"schema_version":"1.6.0","id":"DSA-5000-1","aliases":["CVE-2024-0001"],"modified":"2024-05-01T00:00:00Z","published":"2024-04-01T00:00:00Z","summary":"s","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"affected":[{"package":{"ecosystem":"Debian:12","name":"glibc","purl":"pkg:deb/debian/glibc"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.36-9+deb12u5"}]}],"versions":["2.36-9"],"ecosystem_specific":{"urgency":"high"},"database_specific":{"severity":"HIGH"}},{"package":{"ecosystem":"npm","name":"left-pad"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"last_affected":"1.3.0"}]}]}]}"#;
const CONFIG: &[u8] = br#"[server]
listen = "/run/pullwarden/cri.sock"
upstream_busy_poll = "2ms"
[registry]
plain_http = ["127.0.0.1:5000"]
timeout = "10s"
[[policy]]
name = "prod"
images = ["registry.example.com/prod/**"]
namespaces = ["*"]
mode = "enforce"
on_error = "deny"
[policy.signatures]
keys = ["/etc/pullwarden/keys/a.pub"]
threshold = 1
[policy.scan]
secrets = "deny"
max_severity = "high"
allow = [{ id = "CVE-2024-0001", until = "2027-01-01", reason = "r" }]
"#;

#[test]
fn vex_parsers() {
    let openvex: &[u8] = br#"{"@context":"https://openvex.dev/ns/v0.2.0","@id":"x","timestamp":"2026-11-01T00:00:00Z","statements":[{"vulnerability":{"name":"CVE-2024-1","aliases":["DSA-1-1"]},"products":[{"@id":"pkg:oci/app@sha256%3Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","subcomponents":[{"@id":"pkg:deb/debian/libc6@2.36-9"}]}],"status":"not_affected","justification":"component_not_present"}]}"#;
    let cdx: &[u8] = br#"{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{"component":{"bom-ref":"img","purl":"pkg:oci/app@sha256%3Aaa"}},"components":[{"bom-ref":"c","purl":"pkg:npm/x@1"}],"vulnerabilities":[{"id":"CVE-1","analysis":{"state":"not_affected","justification":"code_not_reachable"},"affects":[{"ref":"c"}]}]}"#;
    let digest = format!("sha256:{}", "a".repeat(64));
    let mut report = pullwarden::report::ScanReport::default();
    report
        .vulnerabilities
        .push(pullwarden::report::Vulnerability {
            id: "DSA-1-1".into(),
            aliases: vec!["CVE-2024-1".into()],
            package: "libc6".into(),
            installed_version: "2.36-9".into(),
            ecosystem: "Debian:12".into(),
            fixed_in: None,
            fix_channel: None,
            severity: pullwarden::report::Severity::High,
            score: None,
            summary: None,
            purl: "pkg:deb/debian/libc6@2.36-9".into(),
            layer: String::new(),
        });
    survive("OpenVEX and CycloneDX VEX", &[openvex, cdx], 10000, |b| {
        if let Ok(doc) = pullwarden::vex::parse(b) {
            let src = pullwarden::vex::VexSource {
                origin: "f".into(),
                signer: Some("k".into()),
                untrusted_reason: None,
                document: doc,
            };
            let _ = pullwarden::vex::apply(&mut report.clone(), &digest, &[src]);
        }
    });
    let statement = pullwarden::vex::attestation::openvex_statement(
        &digest,
        "app",
        &serde_json::from_slice(openvex).unwrap(),
    );
    let env = pullwarden::vex::attestation::envelope(&statement, "", |_| vec![1, 2, 3]);
    survive("VEX DSSE envelope", &[&env], 5000, |b| {
        let _ = pullwarden::vex::attestation::verify(b, &digest, &[]);
        let _ = pullwarden::vex::attestation::read_unverified(b, &digest);
    });
}

/// Keyless VEX carriers (an `.att` layer's envelope and Rekor bundle annotation, a
/// sigstore bundle) from a genuine keyless attestation, mutated, through the whole check.
#[test]
fn keyless_vex_carriers() {
    use pullwarden::verify::evidence::{self, ANN_BUNDLE};
    use pullwarden::vex::attestation::verify_signed;
    let (_ts, signers, k) = crate::vex_keyless::fixture();
    let digest = crate::vex_keyless::DIGEST;
    survive("keyless VEX .att envelope", &[&k.envelope], 1500, |b| {
        let ev = evidence::from_dsse_layer(b, &k.annotations);
        let _ = verify_signed(b, Some(&ev), digest, &signers);
    });
    let bundle_annotation = k.annotations[ANN_BUNDLE].clone();
    survive(
        "keyless VEX Rekor bundle annotation",
        &[bundle_annotation.as_bytes()],
        1500,
        |b| {
            let mut a = k.annotations.clone();
            a.insert(ANN_BUNDLE.into(), String::from_utf8_lossy(b).into_owned());
            let ev = evidence::from_dsse_layer(&k.envelope, &a);
            let _ = verify_signed(&k.envelope, Some(&ev), digest, &signers);
        },
    );
    survive("keyless VEX sigstore bundle", &[&k.bundle], 1500, |b| {
        let ev = evidence::from_bundle(b, None);
        let env = serde_json::from_slice::<serde_json::Value>(b)
            .ok()
            .and_then(|v| serde_json::to_vec(&v["dsseEnvelope"]).ok())
            .unwrap_or_default();
        let _ = verify_signed(&env, Some(&ev), digest, &signers);
    });
}

#[test]
fn package_database_parsers() {
    survive("dpkg status", &[DPKG], 10000, |b| {
        let _ = analyzers::dpkg::parse_status(b, true);
        let _ = analyzers::dpkg::python_dirs_in_list(b);
    });
    survive("apk installed", &[APK], 10000, |b| {
        let _ = analyzers::apk::parse(b);
    });
    survive("python METADATA", &[METADATA], 10000, |b| {
        let _ = analyzers::python::parse(b);
    });
    survive("npm package.json", &[PACKAGE_JSON], 10000, |b| {
        let _ = analyzers::npm::parse(b);
    });
    let egg = jar(&[("EGG-INFO/PKG-INFO", METADATA)]);
    survive("zipped egg", &[&egg], 3000, |b| {
        let _ = analyzers::python::parse_egg(b);
    });
    let mut paths = pullwarden::scan::paths::PathSetBuilder::default();
    paths.insert("var/lib/dpkg/status", false);
    paths.insert("app", true);
    let paths = serde_json::to_vec(&paths.finish()).unwrap();
    survive("layer path set", &[&paths], 3000, |b| {
        if let Ok(set) = serde_json::from_slice::<pullwarden::scan::paths::PathSet>(b) {
            let _ = set.replaces("app/x");
        }
    });
    survive("os-release", &[OS_RELEASE], 10000, |b| {
        let _ = analyzers::os_release::parse(b);
    });
    let dep5: &[u8] = b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+ or Artistic\n\nFiles: x/*\nLicense: (MIT OR Apache-2.0) and BSD-3-clause WITH Classpath-exception-2.0\n";
    survive("Debian copyright and SPDX licenses", &[dep5], 10000, |b| {
        for l in analyzers::license::debian_copyright(b) {
            let _ = analyzers::license::to_spdx(&l);
        }
        let _ = analyzers::license::to_spdx(&String::from_utf8_lossy(b));
        let _ = analyzers::license::python_classifier(&String::from_utf8_lossy(b));
    });
    survive(
        "gemspec",
        &[crate::scan_lang::GEMSPEC.as_bytes()],
        10000,
        |b| {
            let _ = analyzers::gem::parse(b);
        },
    );
    let composer_1 = br#"[{"name":"guzzlehttp/guzzle","version":"6.5.5","license":"MIT"}]"#;
    survive(
        "composer installed.json",
        &[crate::scan_lang::INSTALLED_JSON.as_bytes(), composer_1],
        10000,
        |b| {
            let _ = analyzers::composer::parse(b);
        },
    );
    survive(
        "deps.json",
        &[crate::scan_lang::DEPS_JSON.as_bytes()],
        10000,
        |b| {
            let _ = analyzers::dotnet::parse(b);
        },
    );
    survive(
        "path routing",
        &[b"usr/lib/python3/dist-packages/x.dist-info/METADATA"],
        2000,
        |b| {
            let _ = analyzers::route(&String::from_utf8_lossy(b));
        },
    );
}

#[test]
fn binary_parsers() {
    let elf = go_binary();
    // A 400 kB binary: fewer rounds than the text formats.
    survive("go build info", &[&elf], 1000, |b| {
        let _ = analyzers::gobin::parse(b);
    });
    let jar = jar(&[
        (
            "META-INF/maven/org.acme/lib/pom.properties",
            b"groupId=org.acme\nartifactId=lib\nversion=1.2.3\n",
        ),
        (
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\nImplementation-Title: lib\nImplementation-Version: 1.2.3\n",
        ),
    ]);
    let dep = crate::scan_lang::zlib(crate::scan_lang::DEP_TREE.as_bytes());
    let elf = crate::scan_lang::auditable_elf(Some(&dep), 64);
    survive("cargo-auditable ELF", &[&elf], 10000, |b| {
        let _ = analyzers::auditable::parse_elf(b);
    });
    // Mutated JSON inside a valid zlib stream (mutated zlib mostly fails to inflate).
    survive(
        "cargo-auditable dependency list",
        &[crate::scan_lang::DEP_TREE.as_bytes()],
        5000,
        |b| {
            let _ = analyzers::auditable::parse_section(&crate::scan_lang::zlib(b));
        },
    );
    survive("jar", &[&jar], 1500, |b| {
        let _ = analyzers::java::parse_all(b, "app/lib.jar");
    });
    // The central-directory bounds read before the zip crate sees an archive: a plain
    // zip, one with a comment, and a ZIP64 one (saturated 32-bit count, locator and
    // record at the end) cut down to its tail so mutations reach the end records.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..65_536u32 {
        w.start_file(format!("{i:x}"), zip::write::SimpleFileOptions::default())
            .unwrap();
    }
    let zip64 = w.finish().unwrap().into_inner();
    let zip64_tail = &zip64[zip64.len() - 200..];
    let mut commented = jar.clone();
    let n = commented.len();
    commented[n - 2..].copy_from_slice(&7u16.to_le_bytes());
    commented.extend_from_slice(b"PK\x05\x06!!");
    survive(
        "zip end records",
        &[&jar, &commented, zip64_tail],
        10000,
        |b| {
            if let Ok(Some(d)) = analyzers::zipcap::check(b) {
                assert!(d.entries <= analyzers::zipcap::MAX_ENTRIES);
                assert!(d.end_record + 22 <= b.len());
            }
        },
    );
}

/// rpm databases: an sqlite `rpmdb.sqlite` holding a real header (stored by rpm 4.18),
/// the header itself, and junk for the Berkeley DB and ndb readers. (Their own tests
/// flip every byte of real databases; this adds stacked mutations.)
#[test]
fn rpm_databases() {
    let header = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/rpm/python3-pwtest.header"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rpmdb.sqlite");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);",
        )
        .unwrap();
        c.execute("INSERT INTO Packages (blob) VALUES (?1)", [&header])
            .unwrap();
    }
    let sqlite = std::fs::read(&db).unwrap();
    assert_eq!(
        analyzers::rpm::parse_sqlite(&sqlite)
            .map(|d| d.packages.len())
            .ok(),
        Some(1),
        "the seed database must read"
    );
    survive("rpmdb.sqlite", &[&sqlite], 300, |b| {
        let _ = analyzers::rpm::parse_sqlite(b);
    });
    survive(
        "rpm Packages (Berkeley DB) and Packages.db (ndb)",
        &[&header, &sqlite],
        3000,
        |b| {
            let _ = analyzers::rpm::parse_bdb(b);
            let _ = analyzers::rpm::parse_ndb(b);
        },
    );
}

/// Whole layers: tar, gzip and zstd streams, mutated after compression, through the
/// scanner (stored under their own digest so the digest check passes and the content
/// is really parsed).
#[test]
fn layers_through_the_scanner() {
    let entries = [
        Entry::dir("etc/"),
        Entry::file("etc/os-release", OS_RELEASE.to_vec()),
        Entry::file("var/lib/dpkg/status", DPKG.to_vec()),
        Entry::file(
            "app/.env",
            b"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n".to_vec(),
        ),
        Entry::symlink("app/link", "../etc/os-release"),
        Entry::whiteout("app/old"),
        // Hard links (resolved in the walk and on the second pass) and a duplicate.
        Entry::file("a/1", DPKG.to_vec()),
        Entry::hardlink("var/lib/dpkg/status.d/x", "a/1"),
        Entry::hardlink("srv/.env", "app/.env"),
        Entry::hardlink("b/2", "var/lib/dpkg/status.d/x"),
        Entry::file(
            "var/lib/dpkg/status",
            b"Package: dup\nVersion: 1\n".to_vec(),
        ),
    ];
    let scanner = Scanner::new(&ScanLimits::default(), None);
    for (compression, media_type, rounds) in [
        (
            Compression::None,
            "application/vnd.oci.image.layer.v1.tar",
            600,
        ),
        (
            Compression::Gzip,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            300,
        ),
        (
            Compression::Zstd,
            "application/vnd.oci.image.layer.v1.tar+zstd",
            300,
        ),
    ] {
        let layer = Layer::from_entries(&entries, compression);
        survive(media_type, &[&layer.blob], rounds, |b| {
            let blobs = MemoryBlobs::new();
            let digest = blobs.add(b);
            let r = LayerRef {
                digest,
                diff_id: None,
                media_type: media_type.to_string(),
                size: b.len() as u64,
            };
            let _ = scanner.scan_layer(&blobs, &r);
        });
    }
}

#[test]
fn vulnerability_records_and_scores() {
    survive("OSV record", &[OSV], 10000, |b| {
        let mut notes = osv::ParseNotes::default();
        let _ = osv::parse(b, &mut notes);
    });
    survive(
        "CVSS vectors",
        &[
            b"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            b"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        ],
        3000,
        |b| {
            let s = String::from_utf8_lossy(b);
            let _ = cvss::v3_base_score(&s);
            let _ = cvss::v4_score(&s);
        },
    );
    survive(
        "version orderings",
        &[
            b"1:2.36-9+deb12u4~rc1 2.36-10",
            b"1.2.4-r2 1.2.4_rc1-r0",
            b"1.0.0-alpha.1+b 1.0.0",
            b"2.31.0.post1 2.31.0rc1.dev3",
        ],
        3000,
        |b| {
            let s = String::from_utf8_lossy(b);
            let (a, c) = s.split_once(' ').unwrap_or((&s, "1"));
            let _ = pullwarden::vulndb::version::dpkg::compare(a, c);
            let _ = pullwarden::vulndb::version::apk::compare(a, c);
            let _ = pullwarden::vulndb::version::semver::compare(a, c);
            let _ = pullwarden::vulndb::version::semver::compare_go(a, c);
            let _ = pullwarden::vulndb::version::pep440::compare(a, c);
            let _ = pullwarden::vulndb::version::maven::compare(a, c);
            let _ = pullwarden::vulndb::version::rubygems::compare(a, c);
        },
    );
}

#[test]
fn signature_formats() {
    let digest = Digest::sha256_of(b"manifest");
    let simple = pullwarden::verify::sign::simple_signing_payload("r.io/app", &digest);
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"r.io/app","digest":{{"sha256":"{}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#,
        digest.hex()
    );
    survive("simple-signing payload", &[&simple], 2000, |b| {
        let _ = payload::parse_claim(PayloadKind::SimpleSigning, b);
    });
    survive("in-toto statement", &[statement.as_bytes()], 2000, |b| {
        let _ = payload::parse_claim(PayloadKind::InToto, b);
    });
    let bundle = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"MIIB"},"tlogEntries":[{"logIndex":"42","logId":{"keyId":"AAAA"},"kindVersion":{"kind":"hashedrekord","version":"0.0.1"},"integratedTime":"1700000000","inclusionPromise":{"signedEntryTimestamp":"AAAA"},"inclusionProof":{"logIndex":"42","treeSize":"100","rootHash":"AAAA","hashes":["AAAA"],"checkpoint":{"envelope":"rekor\n100\nAAAA\n\n- rekor AAAA\n"}},"canonicalizedBody":"e30="}]},"messageSignature":{"messageDigest":{"algorithm":"SHA2_256","digest":"AAAA"},"signature":"AAAA"}}"#;
    let dsse = br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"k"}},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AAAA"}]}}"#;
    survive("sigstore bundle", &[bundle, dsse], 10000, |b| {
        let _ = evidence::from_bundle(b, Some(simple.clone()));
    });
    let legacy_bundle = r#"{"SignedEntryTimestamp":"AAAA","Payload":{"body":"e30=","integratedTime":1700000000,"logIndex":1,"logID":"abcd"}}"#;
    survive(
        "legacy signature annotations",
        &[legacy_bundle.as_bytes()],
        2000,
        |b| {
            let mut ann = BTreeMap::new();
            ann.insert(evidence::ANN_SIGNATURE.to_string(), "AAAA".to_string());
            ann.insert(
                evidence::ANN_CERTIFICATE.to_string(),
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_string(),
            );
            ann.insert(
                evidence::ANN_BUNDLE.to_string(),
                String::from_utf8_lossy(b).into_owned(),
            );
            let _ = evidence::from_legacy_layer(simple.clone(), &ann);
        },
    );
    let trusted_root = br#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[{"baseUrl":"https://rekor.test","hashAlgorithm":"SHA2_256","publicKey":{"rawBytes":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE","keyDetails":"PKIX_ECDSA_P256_SHA_256","validFor":{"start":"2020-01-01T00:00:00Z"}},"logId":{"keyId":"AAAA"}}],"certificateAuthorities":[{"subject":{"organization":"o","commonName":"c"},"uri":"https://fulcio.test","certChain":{"certificates":[{"rawBytes":"MIIB"}]},"validFor":{"start":"2020-01-01T00:00:00Z"}}],"ctlogs":[],"timestampAuthorities":[]}"#;
    // An RFC 3161 token's outer shape (SEQUENCE { contentType, [0] SignedData }) with
    // junk inside: the CMS and TSTInfo readers see it all.
    let token: &[u8] = &[
        0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0, 0x0d,
        0x30, 0x0b, 0x02, 0x01, 0x03, 0x31, 0x00, 0x30, 0x04, 0x06, 0x02, 0x2a, 0x03,
    ];
    survive("RFC 3161 token", &[token], 5000, |b| {
        let _ = pullwarden::verify::timestamp::verify(b, b"signature", &[]);
        let _ = pullwarden::verify::timestamp::parse_tst_info(b);
    });
    survive("trusted_root.json", &[trusted_root], 2000, |b| {
        let _ = pullwarden::verify::timestamp::authorities_from_json(b);
        let _ = pullwarden::verify::keyless::TrustMaterial::from_json(b);
    });
    survive(
        "PEM and keys",
        &[b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAAAA\n-----END PUBLIC KEY-----\n"],
        2000,
        |b| {
            let s = String::from_utf8_lossy(b);
            if let Some(der) = pullwarden::verify::keys::pem_block(&s, "PUBLIC KEY") {
                let _ = pullwarden::verify::keys::TrustedKey::from_spki_der("k", &der);
                let _ = pullwarden::verify::keys::verify_with_spki(&der, b"sig", b"msg");
            }
            let _ = pullwarden::verify::keyless::certificate_spki(b);
        },
    );
    // Key files as operators list them: PEM SPKI, DER SPKI, compressed EC, PKCS#1.
    let mut key_files: Vec<Vec<u8>> = Vec::new();
    for scheme in [
        sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1,
        sigstore::crypto::SigningScheme::ECDSA_P384_SHA384_ASN1,
        sigstore::crypto::SigningScheme::ED25519,
        sigstore::crypto::SigningScheme::RSA_PKCS1_SHA256(2048),
    ] {
        let (_, public) = pullwarden::verify::sign::generate_key(scheme).unwrap();
        let der = pullwarden::verify::keys::pem_block(&public, "PUBLIC KEY").unwrap();
        key_files.push(public.into_bytes());
        for (_, form) in crate::verify::key_encodings(&der) {
            key_files.push(form);
        }
    }
    let seeds: Vec<&[u8]> = key_files.iter().map(Vec::as_slice).collect();
    survive("key files in every encoding", &seeds, 3000, |b| {
        let _ = pullwarden::verify::keys::TrustedKey::from_file_bytes("k", b);
        let _ = pullwarden::verify::keys::canonical_spki(b);
    });
    survive(
        "denylist",
        &[format!(
            "# bad\nsha256:{}\nBLAKE3:{}  # x\n",
            "a".repeat(64),
            "B".repeat(64)
        )
        .as_bytes()],
        2000,
        |b| {
            let _ = pullwarden::scan::Denylist::parse(&String::from_utf8_lossy(b));
        },
    );
}

#[test]
fn names_config_and_frames() {
    survive(
        "image references and digests",
        &[
            b"registry.example.com:5000/team/app:v1.2@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            b"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ],
        3000,
        |b| {
            let s = String::from_utf8_lossy(b);
            let _ = s.parse::<Reference>().map(|r| r.to_string());
            let _ = s.parse::<Digest>();
        },
    );
    survive("config TOML", &[CONFIG], 2000, |b| {
        let _ = Config::parse(&String::from_utf8_lossy(b));
    });
    let frame = pullwarden::cri::grpc::frame(b"\x0a\x05hello");
    survive("gRPC message frames", &[&frame], 2000, |b| {
        let _ = pullwarden::cri::grpc::single_message(&bytes::Bytes::copy_from_slice(b));
    });
    survive("secret matcher", &[b"token: ghp_0123456789abcdefghijABCDEFGHIJ012345\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"], 1500, |b| {
        let _ = pullwarden::scan::secrets::SecretMatcher::builtin().scan(b);
    });
}

/// HTTP/2 request heads as a CRI client sends them (HPACK, literal fields), mutated,
/// into the patched h2 server the CRI socket runs on (`.cargo/patches/PATCH.md`): every
/// head is accepted as a request, handed over as a refused request, or a stream or
/// connection error — never a panic, never a hang.
#[test]
fn request_heads_into_the_http2_server() {
    fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
        out.push(0x00); // literal header field without indexing, new name
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.push(value.len() as u8);
        out.extend_from_slice(value);
    }
    let mut grpc_c = Vec::new();
    for (n, v) in [
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", b"/runtime.v1.ImageService/ImageStatus"),
        (b":authority", b"tmp%2Fx%2Fcri.sock"),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
        (b"grpc-timeout", b"10S"),
    ] {
        literal(&mut grpc_c, n, v);
    }
    let mut bare = Vec::new();
    for (n, v) in [
        (&b":path"[..], &b"/runtime.v1.RuntimeService/Version"[..]),
        (b":authority", b""),
    ] {
        literal(&mut bare, n, v);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // One head on a fresh connection; returns the path and authority of the request
    // the server handed over, if it did.
    let drive = |block: &[u8]| -> Option<(String, Option<Vec<u8>>)> {
        let block = &block[..block.len().min(16_000)];
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        wire.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
        let len = block.len() as u32;
        wire.extend_from_slice(&len.to_be_bytes()[1..]);
        wire.extend_from_slice(&[1, 0x4 | 0x1, 0, 0, 0, 1]); // HEADERS, END_HEADERS|END_STREAM, stream 1
        wire.extend_from_slice(block);
        // A PING behind it: once its ACK is back, the head has been read.
        wire.extend_from_slice(&[0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        rt.block_on(async {
            use tokio::io::AsyncWriteExt;
            let (mut client, server) = tokio::io::duplex(1 << 17);
            let served = tokio::spawn(async move {
                let mut seen = None;
                let Ok(mut conn) = h2::server::handshake(server).await else {
                    return seen;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    // What the CRI server reads of every request.
                    if let Some(r) = req.extensions().get::<h2::ext::RefusedRequest>() {
                        let _ = (r.reason().len(), r.path().map(str::len));
                    }
                    let raw = req
                        .extensions()
                        .get::<h2::ext::RawAuthority>()
                        .map(|a| a.as_bytes().to_vec());
                    seen = Some((req.uri().path().to_string(), raw));
                    let respond: &mut h2::server::SendResponse<bytes::Bytes> = &mut respond;
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
                seen
            });
            let _ = client.write_all(&wire).await;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                use tokio::io::AsyncReadExt;
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    // Walk the server's frames for the PING ACK.
                    let mut at = 0;
                    while got.len() >= at + 9 {
                        let len =
                            u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
                        if got[at + 3] == 6 && got[at + 4] & 1 == 1 {
                            return;
                        }
                        at += 9 + len;
                    }
                }
            })
            .await;
            let _ = client.shutdown().await;
            drop(client);
            match tokio::time::timeout(std::time::Duration::from_secs(2), served).await {
                Ok(Ok(seen)) => seen,
                Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => panic!("the HTTP/2 server hung on a request head"),
            }
        })
    };
    // The seeds are served: grpc C-core's head with its percent-encoded socket path,
    // and a head with only :path and an empty :authority.
    assert_eq!(
        drive(&grpc_c),
        Some((
            "/runtime.v1.ImageService/ImageStatus".to_string(),
            Some(b"tmp%2Fx%2Fcri.sock".to_vec())
        ))
    );
    assert_eq!(
        drive(&bare),
        Some((
            "/runtime.v1.RuntimeService/Version".to_string(),
            Some(vec![])
        ))
    );
    survive("HTTP/2 request heads", &[&grpc_c, &bare], 1500, |block| {
        let _ = drive(block);
    });
}

/// Image documents (index → manifest → config) resolved from a blob source, each
/// mutated document stored under its own digest so it is really parsed; and the
/// docker `config.json` credentials file.
#[test]
fn image_documents_and_credentials() {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
    let config_digest = Digest::sha256_of(config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":32}}]}}"#,
        config.len()
    );
    let manifest_digest = Digest::sha256_of(manifest.as_bytes());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        manifest.len()
    );
    let platform = pullwarden::scan::Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    let blobs = MemoryBlobs::new();
    blobs.add(config);
    blobs.add(manifest.as_bytes());
    survive(
        "image index and manifest",
        &[index.as_bytes(), manifest.as_bytes()],
        3000,
        |b| {
            let d = blobs.add(b);
            let _ = pullwarden::scan::resolve_image(&blobs, &d, &platform);
        },
    );
    let mutated_config_blobs = MemoryBlobs::new();
    survive("image config", &[config], 3000, |b| {
        let d = mutated_config_blobs.add(b);
        let m = manifest.replace(&config_digest.to_string(), &d.to_string());
        let md = mutated_config_blobs.add(m.as_bytes());
        let _ = pullwarden::scan::resolve_image(&mutated_config_blobs, &md, &platform);
    });
    survive(
        "docker config.json",
        &[br#"{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"},"https://index.docker.io/v1/":{"username":"u","password":"p"}},"credHelpers":{"x":"y"}}"#],
        5000,
        |b| {
            let _ = pullwarden::registry::AuthFile::parse(b);
        },
    );
}

/// The shared OCI document parsers and the one index selector: OCI and Docker indexes
/// (variants, attestation entries, duplicates) through `parse_document` and
/// `select_manifest` for several platforms, manifests, image configs and the media-type
/// sniff the registry client uses.
#[test]
fn oci_documents_and_the_index_selector() {
    use pullwarden::oci;
    use pullwarden::platform::Platform;
    let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":7,"platform":{{"architecture":"unknown","os":"unknown"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":7,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":7,"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":7,"platform":{{"architecture":"amd64","os":"linux","variant":"v3"}}}}],"annotations":{{"a":"b"}}}}"#,
        d('a'),
        d('b'),
        d('c'),
        d('e')
    );
    let list = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{}","size":528,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}},{{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{}","size":528,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        d('a'),
        d('b')
    );
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"{}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2479,"digest":"{}"}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"{}"}}}}"#,
        d('c'),
        d('a'),
        d('b')
    );
    let config = br#"{"architecture":"amd64","os":"linux","variant":"v3","config":{"Env":["PATH=/bin"],"ExposedPorts":{"80/tcp":{}},"Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"x","empty_layer":true}]}"#;
    // The seeds are accepted, so mutations reach the selector and every field.
    let amd64 = Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    };
    for (seed, expect) in [(&index, d('c')), (&list, d('b'))] {
        let Ok(oci::Document::Index(i)) = oci::parse_document(seed.as_bytes()) else {
            panic!("seed index refused");
        };
        assert_eq!(
            oci::select_manifest_digest(&i, &amd64).unwrap().to_string(),
            expect
        );
    }
    assert!(oci::parse_manifest(manifest.as_bytes()).is_ok());
    assert!(oci::parse_image_config(config).is_ok());
    let platforms: Vec<Platform> = [
        ("linux", "amd64", None),
        ("linux", "amd64", Some("v3")),
        ("linux", "arm64", Some("v8")),
        ("linux", "arm", None),
        ("unknown", "unknown", None),
    ]
    .into_iter()
    .map(|(os, a, v)| Platform {
        os: os.into(),
        architecture: a.into(),
        variant: v.map(str::to_string),
    })
    .collect();
    survive(
        "OCI index, manifest list and manifest",
        &[index.as_bytes(), list.as_bytes(), manifest.as_bytes()],
        3000,
        |b| {
            let _ = oci::media_type(b, Some("application/vnd.oci.image.manifest.v1+json"));
            let _ = oci::parse_manifest(b);
            if let Ok(oci::Document::Index(i)) = oci::parse_document(b) {
                for p in &platforms {
                    let _ = oci::select_manifest_digest(&i, p);
                }
            }
        },
    );
    survive("OCI image config", &[config], 3000, |b| {
        if let Ok(c) = oci::parse_image_config(b) {
            let _ = (c.os().to_string(), c.rootfs().diff_ids().len());
        }
    });
}

/// What `pullwarden doctor` reads of the kubelet: KubeletConfiguration files and
/// drop-ins (YAML or JSON, aliases and anchors included) and its command line.
#[test]
fn kubelet_configuration_and_flags() {
    use pullwarden::doctor::kubelet;
    let yaml: &[u8] = b"apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nimageServiceEndpoint: unix:///run/pullwarden/cri.sock\ncontainerRuntimeEndpoint: &rt unix:///run/containerd/containerd.sock\nauthentication:\n  anonymous: {enabled: false}\nevictionHard: {memory.available: \"100Mi\"}\nother: *rt\ntags: [a, b, 'c']\n";
    let json: &[u8] = br#"{"kind":"KubeletConfiguration","imageServiceEndpoint":"unix:///run/pullwarden/cri.sock","x":[1,{"y":null}]}"#;
    let bombs: &[u8] = b"a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: &d [*c, *c, *c, *c]\ne: [*d, *d, *d, *d]\n";
    survive("kubelet configuration", &[yaml, json, bombs], 3000, |b| {
        let _ = kubelet::parse_config(&String::from_utf8_lossy(b), std::path::Path::new("c"));
    });
    let flags: &[u8] = b"/usr/bin/kubelet\0--config=/var/lib/kubelet/config.yaml\0--config-dir\0/etc/kubernetes/kubelet.conf.d\0--image-service-endpoint\0unix:///run/pullwarden/cri.sock\0-v=2\0--\0";
    let underscored: &[u8] = b"/usr/bin/kubelet\0--image_service_endpoint=unix:///run/containerd/containerd.sock\0--container_runtime_endpoint\0unix:///run/containerd/containerd.sock\0--config_dir=/etc/k_d\0";
    survive("kubelet command lines", &[flags, underscored], 3000, |b| {
        let argv: Vec<String> = b
            .split(|c| *c == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let f = kubelet::parse_flags(&argv);
        for e in [f.image_service_endpoint, f.container_runtime_endpoint] {
            let _ = e.as_deref().map(kubelet::endpoint_path);
        }
    });
}

#[test]
fn scan_attestations() {
    use pullwarden::fleet::attestation::{
        ImageBinding, MAX_ENVELOPE_BYTES, build_attestation, verify_attestation,
    };
    use pullwarden::fleet::dsse::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
    use pullwarden::fleet::{AttestationSigner, PREDICATE_TYPE};

    let pem = sigstore::crypto::SigningScheme::ED25519
        .create_signer()
        .unwrap()
        .to_sigstore_keypair()
        .unwrap()
        .private_key_to_pem()
        .unwrap();
    let signer = AttestationSigner::from_pem("k", pem.as_bytes(), b"").unwrap();
    let layer = Layer::from_entries(
        &[
            Entry::file("var/lib/dpkg/status", DPKG),
            Entry::file("etc/os-release", OS_RELEASE),
            Entry::file("app/.env", "AWS_ACCESS_KEY_ID=AKIAZ7VRSUGVXW3FQ2MN\n"),
        ],
        Compression::Gzip,
    );
    let blobs = MemoryBlobs::new();
    let digest = blobs.add(&layer.blob);
    let lref = LayerRef {
        digest,
        diff_id: Some(layer.diff_id.parse().unwrap()),
        media_type: layer.media_type.clone(),
        size: layer.blob.len() as u64,
    };
    let scanner = Scanner::new(&ScanLimits::default(), None);
    let results = scanner
        .layer_results(&blobs, std::slice::from_ref(&lref), None)
        .unwrap();
    let image = ImageBinding {
        manifest: Digest::sha256_of(b"manifest"),
        index: Some(Digest::sha256_of(b"index")),
        name: "r.io/app".into(),
        layers: vec![lref],
        analyzer_set: analyzers::ANALYZER_SET_VERSION,
        scan_config: scanner.config_hash().to_string(),
    };
    let now = time::OffsetDateTime::now_utc();
    let envelope = build_attestation(&image, &results, now, &signer).unwrap();
    let trusted = vec![signer.public.clone()];
    let week = std::time::Duration::from_secs(7 * 86_400);
    // The seed is accepted, so mutations reach every check.
    assert!(verify_attestation(&envelope, MAX_ENVELOPE_BYTES, &trusted, &image, week, now).is_ok());
    survive("DSSE envelope", &[&envelope], 3000, |b| {
        let _ = verify_attestation(b, MAX_ENVELOPE_BYTES, &trusted, &image, week, now);
    });
    // Mutated statements signed by the trusted key: the predicate parser and the
    // binding checks see hostile content the signature check would otherwise stop.
    let payload = dsse::open(&envelope, MAX_ENVELOPE_BYTES, IN_TOTO_PAYLOAD_TYPE)
        .unwrap()
        .payload;
    let keyid = dsse::keyid_of(&signer.public);
    survive("signed scan statement", &[&payload], 3000, |b| {
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b, &keyid, |m| signer.sign(m)).unwrap();
        let _ = verify_attestation(
            &env.to_vec(),
            MAX_ENVELOPE_BYTES,
            &trusted,
            &image,
            week,
            now,
        );
        let _ = dsse::parse_statement::<serde_json::Value>(b, PREDICATE_TYPE);
    });
}

/// Stored image inventories are read back from the store file (hostile on read): a
/// mutated record decodes to an error, or to an inventory the re-judging survives.
#[test]
fn stored_inventories() {
    use pullwarden::store::ImageInventory;
    use pullwarden::vulndb::VulnDb;

    let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let seed = format!(
        r#"{{"format":1,"digest":"{digest}","references":["127.0.0.1:5000/app:v1"],"platform":"linux/amd64","analyzer_set":7,
        "report":{{"os":{{"id":"debian","version_id":"12","codename":"bookworm","pretty_name":null}},
        "packages":[{{"name":"libc6","version":"2.36-9","type":"deb","purl":"pkg:deb/debian/libc6@2.36-9","layer":"sha256:00","path":"var/lib/dpkg/status","source_name":"glibc"}}],
        "secrets":[{{"rule":"aws-access-key-id","title":"AWS","path":"app/.env","layer":"sha256:00","line":1,"redacted":"AKIA****"}}],
        "files":[{{"kind":"setuid","path":"bin/su","layer":"sha256:00","detail":"04755"}}],
        "vulnerabilities":[],"layers":[{{"digest":"sha256:00","diff_id":null,"media_type":"m","compressed_bytes":1,"uncompressed_bytes":2,"entries":3,"cached":false}}]}},
        "signatures":[{{"requirement":"r","repository":"127.0.0.1:5000/app","report":{{"required":true,"satisfied":true,"threshold":1,"verified_signers":["k"],"checks":[]}},"verified_at":"2026-11-30T00:00:00Z"}}],
        "vex":[{{"requirement":"v","looked_up_at":"2026-11-30T00:00:00Z","sources":[{{"origin":"attestation sha256:11","signer":"key k","untrusted_reason":null,
          "document":{{"format":"openvex","id":null,"statements":[{{"vulnerability":["CVE-2026-1"],"products":["{digest}"],"subcomponents":[],"status":"not_affected","justification":"component_not_present","impact_statement":null,"timestamp":null}}]}}}}]}}],
        "recorded_at":"2026-11-30T00:00:00Z"}}"#
    );
    assert!(ImageInventory::decode(digest, seed.as_bytes()).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let db = VulnDb::open(dir.path().join("db.redb")).unwrap();
    let config = pullwarden::config::Config::parse(
        "[[policy]]\nname = \"p\"\nimages = [\"**\"]\n[policy.scan]\nsecrets = \"deny\"\ndeny_setuid = true\n",
    )
    .unwrap();
    let policy = &config.policies[0];
    let reference: pullwarden::reference::Reference = "127.0.0.1:5000/app:v1".parse().unwrap();
    let matcher = db.matcher().unwrap();
    survive("stored inventory", &[seed.as_bytes()], 400, |b| {
        if let Ok(inv) = ImageInventory::decode(digest, b) {
            let keys = pullwarden::policy::evaluate::Keys {
                policy_fingerprint: "fp",
                db_version: "db",
            };
            let _ = pullwarden::rescore::judge(
                &inv,
                &reference,
                policy,
                &keys,
                pullwarden::rescore::judge::not_required(),
                &matcher,
                time::OffsetDateTime::now_utc(),
            );
        }
    });
}
