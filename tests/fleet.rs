//! Scan attestations against the real registry (distribution 2.8: no referrers API, so
//! the `sha256-<hex>` fallback tag carries them): node A scans and publishes, node B
//! finds, verifies and uses the layer results without a blob source at all; every
//! forged, foreign, stale or oversized attestation is ignored with its reason. A
//! scripted registry refuses a push.

use std::time::Duration;

use pullwarden::config::{Config, ScanLimits};
use pullwarden::digest::Digest;
use pullwarden::fleet::attestation::{self, ImageBinding, MAX_ENVELOPE_BYTES, REDACTED};
use pullwarden::fleet::dsse::{self, DSSE_MEDIA_TYPE, Envelope, IN_TOTO_PAYLOAD_TYPE};
use pullwarden::fleet::publish::{ANN_CREATED, ANN_ENVELOPE, ARTIFACT_TYPE};
use pullwarden::fleet::{
    AttestationSigner, ConsumeLimits, IgnoreReason, Lookup, PublishError, Rejection, Trust,
    consume, publish,
};
use pullwarden::reference::Reference;
use pullwarden::registry::{Credentials, RegistryClient};
use pullwarden::scan::image::{Platform, resolve_image};
use pullwarden::scan::{LayerResult, MemoryBlobs, Scanner, compose};
use pullwarden::verify::keys::TrustedKey;
use serde_json::json;
use sigstore::crypto::SigningScheme;
use time::OffsetDateTime;

use crate::support::fake_registry::{FakeRegistry, Route};
use crate::support::image::{Compression, Entry, Image, Layer, push_blob, push_manifest};
use crate::support::{it_env, unique_repo};

const WEEK: Duration = Duration::from_secs(168 * 3600);

fn client(host: &str) -> RegistryClient {
    let cfg = Config::parse(&format!(
        "[registry]\nplain_http = [\"{host}\"]\ntimeout = \"5s\""
    ))
    .unwrap()
    .registry;
    RegistryClient::new(&cfg).unwrap()
}

fn node_key(scheme: SigningScheme) -> AttestationSigner {
    let pem = scheme
        .create_signer()
        .unwrap()
        .to_sigstore_keypair()
        .unwrap()
        .private_key_to_pem()
        .unwrap();
    AttestationSigner::from_pem("node", pem.as_bytes(), b"").unwrap()
}

fn trust(keys: &[&TrustedKey], max_age: Duration) -> Trust {
    Trust {
        keys: keys.iter().map(|k| (*k).clone()).collect(),
        max_age,
    }
}

/// An image with a package database, a secret and a setuid file over two layers.
fn image(salt: &str) -> Image {
    let base = Layer::from_entries(
        &[
            Entry::file(
                "etc/os-release",
                "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
            ),
            Entry::file(
                "var/lib/dpkg/status",
                "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\nArchitecture: amd64\nSource: zlib\n\n",
            ),
        ],
        Compression::Gzip,
    );
    let app = Layer::from_entries(
        &[
            Entry::file(
                "app/config.env",
                format!("# {salt}\nAWS_ACCESS_KEY_ID=AKIAZ7VRSUGVXW3FQ2MN\n"),
            ),
            Entry::file_mode("usr/bin/helper", "x", 0o4755),
        ],
        Compression::Gzip,
    );
    Image::with_platform(vec![base, app], "amd64", salt)
}

/// Node A's side: the image pushed, scanned locally, and what binds it.
struct Scanned {
    reference: Reference,
    binding: ImageBinding,
    results: Vec<LayerResult>,
}

async fn push_and_scan(salt: &str) -> Scanned {
    let reg = &it_env().registry;
    let repo = unique_repo("fleet");
    let img = image(salt);
    img.push(reg, &repo, "v1").await;
    let reference: Reference = format!("{reg}/{repo}:v1").parse().unwrap();
    let blobs = MemoryBlobs::new();
    for l in &img.layers {
        blobs.add(&l.blob);
    }
    blobs.add(&img.config);
    let digest = blobs.add(&img.manifest);
    let resolved = resolve_image(&blobs, &digest, &Platform::host()).unwrap();
    let scanner = Scanner::new(&ScanLimits::default(), None);
    let results = scanner
        .layer_results(&blobs, &resolved.layers, None)
        .unwrap();
    let binding = ImageBinding {
        manifest: digest,
        index: None,
        name: reference.name(),
        layers: resolved.layers,
        analyzer_set: pullwarden::scan::analyzers::ANALYZER_SET_VERSION,
        scan_config: scanner.config_hash().to_string(),
    };
    Scanned {
        reference,
        binding,
        results,
    }
}

async fn lookup(s: &Scanned, t: &Trust, limits: ConsumeLimits, now: OffsetDateTime) -> Lookup {
    consume(
        &client(&s.reference.registry),
        &s.reference,
        &Credentials::default(),
        &s.binding,
        t,
        limits,
        now,
    )
    .await
    .unwrap()
}

fn reasons(l: &Lookup) -> String {
    l.ignored
        .iter()
        .map(|i| i.reason.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The fallback index of `subject` in `s`'s repository, as JSON.
async fn fallback_index(s: &Scanned, subject: &Digest) -> serde_json::Value {
    let m = client(&s.reference.registry)
        .manifest_by_tag(&s.reference, &subject.tag_form(), &Credentials::default())
        .await
        .unwrap()
        .expect("fallback tag exists");
    serde_json::from_slice(&m.bytes).unwrap()
}

/// Pushes `envelope` as a scan attestation artifact of `subject` and lists it in the
/// fallback index (what a hostile publisher with push rights can do).
async fn push_artifact(
    s: &Scanned,
    subject: &Digest,
    envelope: &[u8],
    declared_size: Option<usize>,
) {
    push_hinted_artifact(s, subject, envelope, declared_size, None).await;
}

/// [`push_artifact`], its index entry naming `envelope_hint` as the envelope.
async fn push_hinted_artifact(
    s: &Scanned,
    subject: &Digest,
    envelope: &[u8],
    declared_size: Option<usize>,
    envelope_hint: Option<&str>,
) {
    let reg = &s.reference.registry;
    let repo = &s.reference.repository;
    let config = push_blob(reg, repo, b"{}").await;
    let layer = push_blob(reg, repo, envelope).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": DSSE_MEDIA_TYPE, "digest": layer, "size": declared_size.unwrap_or(envelope.len())}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.to_string(), "size": 1},
    }))
    .unwrap();
    let md = Digest::sha256_of(&manifest);
    push_manifest(
        reg,
        repo,
        &md.to_string(),
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await;
    let mut entries = match client(reg)
        .manifest_by_tag(&s.reference, &subject.tag_form(), &Credentials::default())
        .await
        .unwrap()
    {
        Some(m) => serde_json::from_slice::<serde_json::Value>(&m.bytes).unwrap()["manifests"]
            .as_array()
            .cloned()
            .unwrap(),
        None => vec![],
    };
    entries.push(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md.to_string(), "size": manifest.len(), "artifactType": ARTIFACT_TYPE,
        "annotations": match envelope_hint {
            Some(h) => json!({ANN_CREATED: "2100-01-01T00:00:00Z", ANN_ENVELOPE: h}),
            None => json!({ANN_CREATED: "2100-01-01T00:00:00Z"}),
        },
    }));
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries,
    }))
    .unwrap();
    push_manifest(
        reg,
        repo,
        &subject.tag_form(),
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .await;
}

#[tokio::test]
async fn publish_then_consume_round_trip() {
    let a = node_key(SigningScheme::ECDSA_P256_SHA256_ASN1);
    let s = push_and_scan("round-trip").await;
    let c = client(&s.reference.registry);
    let now = OffsetDateTime::now_utc();
    let published = publish(
        &c,
        &s.reference,
        &Credentials::default(),
        &s.binding,
        &s.results,
        &a,
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        published.via, "referrers-tag",
        "distribution 2.8 has no referrers API"
    );
    let index = fallback_index(&s, &s.binding.manifest).await;
    assert_eq!(
        index["manifests"][0]["digest"],
        published.manifest.to_string()
    );
    assert_eq!(index["manifests"][0]["artifactType"], ARTIFACT_TYPE);

    // Node B (trusts A, and only has the registry): the layer results, no blob source.
    let l = lookup(
        &s,
        &trust(&[&a.public], WEEK),
        ConsumeLimits::default(),
        now,
    )
    .await;
    let got = l
        .attested
        .as_ref()
        .unwrap_or_else(|| panic!("{}", reasons(&l)));
    assert_eq!(got.artifact, published.manifest);
    let source = got.scan_source();
    assert_eq!(source.kind, "attested");
    assert_eq!(source.signer.as_deref(), Some(a.public.name.as_str()));
    assert!(source.attested_at.is_some());
    let local = compose(&s.results);
    let attested = compose(&got.verified.layers);
    assert_eq!(attested.packages, local.packages);
    assert!(
        attested
            .packages
            .iter()
            .any(|p| p.name == "zlib1g" && p.purl.starts_with("pkg:deb/debian/zlib1g"))
    );
    assert_eq!(attested.files, local.files);
    assert!(
        attested
            .files
            .iter()
            .any(|f| f.path.ends_with("usr/bin/helper"))
    );
    assert_eq!(attested.secrets.len(), 1, "{:?}", attested.secrets);
    let (sa, sl) = (&attested.secrets[0], &local.secrets[0]);
    assert_eq!((&sa.rule, &sa.path, sa.line), (&sl.rule, &sl.path, sl.line));
    assert_eq!(sa.redacted, REDACTED);
    // Secret text never leaves node A.
    let env = c
        .blob(
            &s.reference,
            &{
                let m = c
                    .manifest_by_digest(&s.reference, &published.manifest, &Credentials::default())
                    .await
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
                v["layers"][0]["digest"].as_str().unwrap().parse().unwrap()
            },
            &Credentials::default(),
        )
        .await
        .unwrap();
    let payload = dsse::open(&env, MAX_ENVELOPE_BYTES, IN_TOTO_PAYLOAD_TYPE)
        .unwrap()
        .payload;
    let text = String::from_utf8_lossy(&payload);
    assert!(
        !text.contains("AKIAZ7VRSUGVXW3FQ2MN") && !text.contains("AKIA"),
        "{text}"
    );
    assert!(text.contains(attestation::PREDICATE_TYPE));

    // Publishing again replaces this signer's entry instead of growing the index.
    let again = publish(
        &c,
        &s.reference,
        &Credentials::default(),
        &s.binding,
        &s.results,
        &a,
        now + time::Duration::seconds(5),
    )
    .await
    .unwrap();
    let index = fallback_index(&s, &s.binding.manifest).await;
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{index}");
    assert_eq!(listed[0]["digest"], again.manifest.to_string());

    // Trusting another key: ignored as untrusted. Too old: ignored as stale.
    let b = node_key(SigningScheme::ED25519);
    let l = lookup(
        &s,
        &trust(&[&b.public], WEEK),
        ConsumeLimits::default(),
        now,
    )
    .await;
    assert!(l.attested.is_none());
    assert!(
        matches!(
            l.ignored[0].reason,
            IgnoreReason::Rejected(Rejection::UntrustedKey { .. })
        ),
        "{}",
        reasons(&l)
    );
    let later = now + time::Duration::hours(2);
    let l = lookup(
        &s,
        &trust(&[&a.public], Duration::from_secs(3600)),
        ConsumeLimits::default(),
        later,
    )
    .await;
    assert!(l.attested.is_none());
    assert!(
        reasons(&l).contains("older than max_age"),
        "{}",
        reasons(&l)
    );

    // An image nobody attested: nothing, no reasons.
    let other = push_and_scan("unattested").await;
    let l = lookup(
        &other,
        &trust(&[&a.public], WEEK),
        ConsumeLimits::default(),
        now,
    )
    .await;
    assert!(l.attested.is_none() && l.ignored.is_empty() && l.listed == 0);
}

#[tokio::test]
async fn forged_foreign_and_oversized_attestations_are_ignored_with_reasons() {
    let a = node_key(SigningScheme::ED25519);
    let t = trust(&[&a.public], WEEK);
    let now = OffsetDateTime::now_utc();
    let x = push_and_scan("forgery-x").await;
    let y = push_and_scan("forgery-y").await;
    let good_x = attestation::build_attestation(&x.binding, &x.results, now, &a).unwrap();

    // Tampered: the payload changed under the signature.
    let mut env: Envelope = serde_json::from_slice(&good_x).unwrap();
    let opened = dsse::open(&good_x, MAX_ENVELOPE_BYTES, IN_TOTO_PAYLOAD_TYPE).unwrap();
    let text = String::from_utf8(opened.payload.clone()).unwrap();
    let tampered_text = text.replace("zlib1g", "zlib1h");
    assert_ne!(text, tampered_text);
    use base64::Engine as _;
    env.payload = base64::engine::general_purpose::STANDARD.encode(tampered_text.as_bytes());
    push_artifact(&x, &x.binding.manifest, &env.to_vec(), None).await;
    let l = lookup(&x, &t, ConsumeLimits::default(), now).await;
    assert!(l.attested.is_none());
    assert!(reasons(&l).contains("does not verify"), "{}", reasons(&l));

    // A valid signature over X's statement, listed as Y's attestation.
    push_artifact(&y, &y.binding.manifest, &good_x, None).await;
    let l = lookup(&y, &t, ConsumeLimits::default(), now).await;
    assert!(l.attested.is_none());
    assert!(
        matches!(
            l.ignored[0].reason,
            IgnoreReason::Rejected(Rejection::OtherSubject { .. })
        ),
        "{}",
        reasons(&l)
    );

    // Signed by the trusted key, about Y, but claiming X's layers.
    let mut lying = y.binding.clone();
    lying.layers = x.binding.layers.clone();
    let forged = attestation::build_attestation(&lying, &x.results, now, &a).unwrap();
    push_artifact(&y, &y.binding.manifest, &forged, None).await;
    let l = lookup(&y, &t, ConsumeLimits::default(), now).await;
    assert!(l.attested.is_none());
    assert!(
        matches!(
            l.ignored[0].reason,
            IgnoreReason::Rejected(Rejection::OtherLayer { .. })
        ),
        "{}",
        reasons(&l)
    );

    // A signature of the wrong algorithm for the key it names.
    let p256 = node_key(SigningScheme::ECDSA_P256_SHA256_ASN1);
    let mut swapped: Envelope = serde_json::from_slice(
        &attestation::build_attestation(&y.binding, &y.results, now, &p256).unwrap(),
    )
    .unwrap();
    swapped.signatures[0].keyid = dsse::keyid_of(&a.public);
    push_artifact(&y, &y.binding.manifest, &swapped.to_vec(), None).await;
    let l = lookup(&y, &t, ConsumeLimits::default(), now).await;
    assert!(
        matches!(
            l.ignored[0].reason,
            IgnoreReason::Rejected(Rejection::KeyTypeMismatch { .. })
        ),
        "{}",
        reasons(&l)
    );

    // The index entry's envelope hint names a valid envelope by the trusted key, but
    // the manifest lists a stranger's: the hint is never the envelope judged.
    let w = push_and_scan("hint-lies").await;
    let stranger = node_key(SigningScheme::ED25519);
    let by_stranger =
        attestation::build_attestation(&w.binding, &w.results, now, &stranger).unwrap();
    let good_w = attestation::build_attestation(&w.binding, &w.results, now, &a).unwrap();
    let hinted = push_blob(&w.reference.registry, &w.reference.repository, &good_w).await;
    push_hinted_artifact(&w, &w.binding.manifest, &by_stranger, None, Some(&hinted)).await;
    let l = lookup(&w, &t, ConsumeLimits::default(), now).await;
    assert!(l.attested.is_none(), "the hinted envelope was used");
    assert!(
        matches!(
            l.ignored[0].reason,
            IgnoreReason::Rejected(Rejection::UntrustedKey { .. })
        ),
        "{}",
        reasons(&l)
    );
    // A hint at a blob larger than the envelope limit is not read past the limit, and
    // the envelope the manifest lists still counts.
    let big = push_blob(
        &w.reference.registry,
        &w.reference.repository,
        &vec![b' '; MAX_ENVELOPE_BYTES + 1],
    )
    .await;
    push_hinted_artifact(&w, &w.binding.manifest, &good_w, None, Some(&big)).await;
    let l = lookup(&w, &t, ConsumeLimits::default(), now).await;
    assert!(l.attested.is_some(), "{}", reasons(&l));

    // Oversized: declared so (not fetched), or lying about its size (fetched, refused).
    let z = push_and_scan("oversized").await;
    let good_z = attestation::build_attestation(&z.binding, &z.results, now, &a).unwrap();
    let small = ConsumeLimits {
        max_envelope_bytes: good_z.len() - 1,
        ..ConsumeLimits::default()
    };
    push_artifact(&z, &z.binding.manifest, &good_z, None).await;
    let l = lookup(&z, &t, small, now).await;
    assert!(l.attested.is_none());
    assert!(
        matches!(l.ignored[0].reason, IgnoreReason::TooLarge { .. }),
        "{}",
        reasons(&l)
    );
    let w = push_and_scan("lying-size").await;
    let good_w = attestation::build_attestation(&w.binding, &w.results, now, &a).unwrap();
    push_artifact(&w, &w.binding.manifest, &good_w, Some(10)).await;
    let l = lookup(
        &w,
        &t,
        ConsumeLimits {
            max_envelope_bytes: good_w.len() - 1,
            ..ConsumeLimits::default()
        },
        now,
    )
    .await;
    assert!(l.attested.is_none());
    assert!(reasons(&l).contains("limit"), "{}", reasons(&l));
    // The same envelope within limits is accepted: the refusals above were the limits.
    let l = lookup(&w, &t, ConsumeLimits::default(), now).await;
    assert!(l.attested.is_some(), "{}", reasons(&l));
}

#[tokio::test]
async fn thousands_of_referrers_are_capped() {
    let a = node_key(SigningScheme::ED25519);
    let s = push_and_scan("many").await;
    let c = client(&s.reference.registry);
    let now = OffsetDateTime::now_utc();
    publish(
        &c,
        &s.reference,
        &Credentials::default(),
        &s.binding,
        &s.results,
        &a,
        now,
    )
    .await
    .unwrap();
    // One artifact signed by a key nobody trusts, listed 5,000 times after the real
    // one, all claiming to be newer (distribution checks that listed manifests exist).
    let stranger = node_key(SigningScheme::ECDSA_P256_SHA256_ASN1);
    let junk = attestation::build_attestation(&s.binding, &s.results, now, &stranger).unwrap();
    push_artifact(&s, &s.binding.manifest, &junk, None).await;
    let mut entries = fallback_index(&s, &s.binding.manifest).await["manifests"]
        .as_array()
        .cloned()
        .unwrap();
    assert_eq!(entries.len(), 2);
    let junk_entry = entries[1].clone();
    for _ in 1..5000 {
        entries.push(junk_entry.clone());
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries,
    }))
    .unwrap();
    push_manifest(
        &s.reference.registry,
        &s.reference.repository,
        &s.binding.manifest.tag_form(),
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .await;
    let t = trust(&[&a.public], WEEK);
    let started = std::time::Instant::now();
    let l = lookup(&s, &t, ConsumeLimits::default(), now).await;
    assert!(l.attested.is_none(), "the real one is past the cap");
    assert_eq!(l.listed, 5001);
    let text = reasons(&l);
    assert!(
        text.contains("4985 more scan attestations not examined"),
        "{text}"
    );
    assert_eq!(
        l.ignored
            .iter()
            .filter(|i| matches!(
                i.reason,
                IgnoreReason::Rejected(Rejection::UntrustedKey { .. })
            ))
            .count(),
        16,
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_refused_push_is_a_typed_error() {
    let a = node_key(SigningScheme::ED25519);
    let s = push_and_scan("refused").await;
    let fake = FakeRegistry::start().await;
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let manifest = client(&s.reference.registry)
        .manifest_by_digest(&s.reference, &s.binding.manifest, &Credentials::default())
        .await
        .unwrap();
    fake.json(
        &format!("/v2/x/app/manifests/{}", s.binding.manifest),
        mt,
        &manifest.bytes,
    );
    fake.route(
        "/v2/x/app/blobs/uploads/",
        Route::Body(
            403,
            "application/json".into(),
            br#"{"errors":[{"code":"DENIED"}]}"#.to_vec(),
        ),
    );
    let r: Reference = format!("{}/x/app:v1", fake.addr).parse().unwrap();
    let e = publish(
        &client(&fake.addr),
        &r,
        &Credentials::default(),
        &s.binding,
        &s.results,
        &a,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PublishError::Registry { .. }), "{e}");
    assert_eq!(e.kind(), "refused", "{e}");
    // A registry that is down: also typed, counted apart.
    let down: Reference = "127.0.0.1:9/x/app:v1".parse().unwrap();
    let e = publish(
        &client("127.0.0.1:9"),
        &down,
        &Credentials::default(),
        &s.binding,
        &s.results,
        &a,
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), "unavailable", "{e}");
}

// ------------------------------------------------------------ two nodes, two daemons

fn write_key_pair(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let pair = SigningScheme::ED25519
        .create_signer()
        .unwrap()
        .to_sigstore_keypair()
        .unwrap();
    let private = dir.join(format!("{name}.key"));
    std::fs::write(&private, pair.private_key_to_pem().unwrap().as_bytes()).unwrap();
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&public, pair.public_key_to_pem().unwrap()).unwrap();
    (private, public)
}

/// A daemon in front of `upstream` with an audit policy that denies secrets, metrics on
/// a loopback port, and `fleet` as its `[fleet]` section.
fn fleet_node(upstream: &std::path::Path, fleet: &str) -> (crate::support::daemon::Daemon, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policy = format!(
        "[[policy]]\nname = \"fleet\"\nimages = [\"{}/it/**\"]\nmode = \"audit\"\n[policy.scan]\nsecrets = \"deny\"\n\n{fleet}",
        it_env().registry
    );
    let mut d = crate::support::daemon::Daemon::start_with_upstream(upstream, &policy);
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("metrics = \"\"", &format!("metrics = \"127.0.0.1:{port}\""));
    std::fs::write(&d.config, text).unwrap();
    d.stop();
    d.spawn();
    (d, format!("127.0.0.1:{port}"))
}

async fn metrics(addr: &str) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in:\n{text}"))
}

fn explain(d: &crate::support::daemon::Daemon, reference: &str) -> serde_json::Value {
    let out = d.cli(&["explain", "--json", reference]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Node A (containerd 1) pulls an image with a secret, scans it and publishes; node B
/// (containerd 2) trusting A's key pulls it without reading a layer and reaches the same
/// verdict; node C (containerd 2 too) trusting another key scans itself.
#[tokio::test(flavor = "multi_thread")]
async fn node_b_pulls_with_node_a_scan_and_reads_no_layer() {
    let env = it_env();
    let Some(sock2) = env.containerd2_sock.clone() else {
        panic!("integration/services.sh starts a second containerd (PW_IT_CONTAINERD2_SOCK)");
    };
    let keys = tempfile::tempdir().unwrap();
    let (a_key, a_pub) = write_key_pair(keys.path(), "node-a");
    let (_, other_pub) = write_key_pair(keys.path(), "other");
    let img = image("two-nodes");
    let repo = unique_repo("fleet2");
    img.push(&env.registry, &repo, "v1").await;
    let reference = format!("{}/{repo}:v1", env.registry);
    let digest: Digest = img.digest.parse().unwrap();

    let (a, a_metrics) = fleet_node(
        &env.containerd_sock,
        &format!("[fleet]\npublish = true\nkey = {a_key:?}\n"),
    );
    let mut cri = crate::support::cri::images(&a.listen).await;
    cri.pull_image(crate::support::cri::pull_request(&reference, "default"))
        .await
        .unwrap();
    let va = explain(&a, &reference);
    assert_eq!(va["decision"], "deny", "{va}");
    assert_eq!(va["scan_source"]["kind"], "local", "{va}");
    let ma = metrics(&a_metrics).await;
    assert!(metric(&ma, "pullwarden_scanned_bytes_total") > 0);
    assert_eq!(metric(&ma, "pullwarden_scans_total{source=\"local\"}"), 1);
    // The publish runs in the background: wait for the fallback tag.
    let r: Reference = reference.parse().unwrap();
    let c = client(&env.registry);
    let mut published = false;
    for _ in 0..100 {
        if c.manifest_by_tag(&r, &digest.tag_form(), &Credentials::default())
            .await
            .unwrap()
            .is_some()
        {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(published, "node A did not publish: {}", a.log());
    // The publish is counted once it returned (just after the tag was written).
    let mut ok = 0;
    for _ in 0..100 {
        ok = metric(
            &metrics(&a_metrics).await,
            "pullwarden_fleet_publish_total{result=\"ok\"}",
        );
        if ok > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ok, 1, "{}", a.log());
    let ma = metrics(&a_metrics).await;
    assert!(metric(&ma, "pullwarden_registry_requests_total{client=\"fleet\"}") > 0);

    let (b, b_metrics) = fleet_node(&sock2, &format!("[fleet]\ntrusted = [{a_pub:?}]\n"));
    let mut cri = crate::support::cri::images(&b.listen).await;
    cri.pull_image(crate::support::cri::pull_request(&reference, "default"))
        .await
        .unwrap();
    let vb = explain(&b, &reference);
    assert_eq!(vb["scan_source"]["kind"], "attested", "{vb}\n{}", b.log());
    assert!(
        vb["scan_source"]["signer"]
            .as_str()
            .unwrap()
            .contains("node-a.pub"),
        "{vb}"
    );
    assert!(vb["scan_source"]["attested_at"].is_string());
    assert_eq!(vb["decision"], va["decision"]);
    assert_eq!(vb["reasons"], va["reasons"]);
    let rules = |v: &serde_json::Value| -> Vec<(String, String, u64)> {
        v["findings"]["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["rule"].as_str().unwrap().to_string(),
                    s["path"].as_str().unwrap().to_string(),
                    s["line"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert!(!rules(&va).is_empty());
    assert_eq!(rules(&vb), rules(&va));
    let mb = metrics(&b_metrics).await;
    assert_eq!(
        metric(&mb, "pullwarden_scanned_bytes_total"),
        0,
        "no layer byte read"
    );
    assert_eq!(
        metric(&mb, "pullwarden_scans_total{source=\"attested\"}"),
        1
    );
    assert_eq!(metric(&mb, "pullwarden_scans_total{source=\"local\"}"), 0);
    // The lookup: the referrers API, the fallback tag, the artifact manifest, the envelope.
    assert_eq!(
        metric(&mb, "pullwarden_registry_requests_total{client=\"fleet\"}"),
        4,
        "{mb}"
    );
    assert_eq!(
        metric(
            &mb,
            "pullwarden_fleet_attestations_ignored_total{reason=\"untrusted\"}"
        ),
        0
    );

    // Node C trusts another key: A's attestation is ignored with a reason; it scans.
    let (c_node, c_metrics) = fleet_node(&sock2, &format!("[fleet]\ntrusted = [{other_pub:?}]\n"));
    let mut cri = crate::support::cri::images(&c_node.listen).await;
    cri.pull_image(crate::support::cri::pull_request(&reference, "default"))
        .await
        .unwrap();
    let vc = explain(&c_node, &reference);
    assert_eq!(vc["scan_source"]["kind"], "local", "{vc}");
    assert_eq!(vc["decision"], va["decision"]);
    let mc = metrics(&c_metrics).await;
    assert!(metric(&mc, "pullwarden_scanned_bytes_total") > 0);
    assert!(c_node.log().contains("not trusted"), "{}", c_node.log());
    assert_eq!(
        metric(
            &mc,
            "pullwarden_fleet_attestations_ignored_total{reason=\"untrusted\"}"
        ),
        1,
        "{mc}"
    );
    assert_eq!(
        metric(&mc, "pullwarden_scans_total{source=\"attested\"}"),
        0
    );
}

/// The publish and ignore outcomes as the metrics endpoint serves them: a publish the
/// registry refuses counts `result="refused"` (and nothing as ok), one to a registry that
/// is down `result="unavailable"`, a successful one `ok`; an attestation by a key this
/// node does not trust counts `reason="untrusted"`.
#[tokio::test]
async fn publish_and_ignore_outcomes_are_counted_on_the_metrics_endpoint() {
    use pullwarden::admin::{Metrics, serve_metrics};
    use pullwarden::fleet::{Fleet, FleetKeys};
    use std::sync::Arc;

    let m = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_metrics(listener, m.clone(), async {
        let _ = stopped.await;
    }));
    let signer = Arc::new(node_key(SigningScheme::ED25519));
    let stranger = node_key(SigningScheme::ECDSA_P256_SHA256_ASN1);
    let fleet = |trusted: &TrustedKey| {
        Fleet::new(FleetKeys {
            signer: Some(signer.clone()),
            trust: trust(&[trusted], WEEK),
            limits: ConsumeLimits::default(),
        })
        .with_metrics(m.clone())
    };
    let before = metrics(&addr).await;
    for r in ["ok", "refused", "unavailable"] {
        assert_eq!(
            metric(
                &before,
                &format!("pullwarden_fleet_publish_total{{result=\"{r}\"}}")
            ),
            0
        );
    }

    // Refused: a registry that answers 403 to the upload.
    let s = push_and_scan("metrics-refused").await;
    let fake = FakeRegistry::start().await;
    let manifest = client(&s.reference.registry)
        .manifest_by_digest(&s.reference, &s.binding.manifest, &Credentials::default())
        .await
        .unwrap();
    fake.json(
        &format!("/v2/x/app/manifests/{}", s.binding.manifest),
        "application/vnd.oci.image.manifest.v1+json",
        &manifest.bytes,
    );
    fake.route(
        "/v2/x/app/blobs/uploads/",
        Route::Body(
            403,
            "application/json".into(),
            br#"{"errors":[{"code":"DENIED"}]}"#.to_vec(),
        ),
    );
    let refused: Reference = format!("{}/x/app:v1", fake.addr).parse().unwrap();
    let node = fleet(&signer.public);
    let now = OffsetDateTime::now_utc();
    let r = publish(
        &client(&fake.addr),
        &refused,
        &Credentials::default(),
        &s.binding,
        &s.results,
        &signer,
        now,
    )
    .await;
    assert!(r.is_err());
    node.record_publish(&s.binding.manifest, r);
    let down: Reference = "127.0.0.1:9/x/app:v1".parse().unwrap();
    let r = publish(
        &client("127.0.0.1:9"),
        &down,
        &Credentials::default(),
        &s.binding,
        &s.results,
        &signer,
        now,
    )
    .await;
    node.record_publish(&s.binding.manifest, r);
    let t = metrics(&addr).await;
    assert_eq!(
        metric(&t, "pullwarden_fleet_publish_total{result=\"refused\"}"),
        1,
        "{t}"
    );
    assert_eq!(
        metric(&t, "pullwarden_fleet_publish_total{result=\"unavailable\"}"),
        1,
        "{t}"
    );
    assert_eq!(
        metric(&t, "pullwarden_fleet_publish_total{result=\"ok\"}"),
        0,
        "{t}"
    );

    // Published for real, then looked up by a node trusting only another key.
    let c = client(&s.reference.registry);
    let r = publish(
        &c,
        &s.reference,
        &Credentials::default(),
        &s.binding,
        &s.results,
        &signer,
        now,
    )
    .await;
    node.record_publish(&s.binding.manifest, r);
    let other = fleet(&stranger.public);
    assert!(
        other
            .lookup(&c, &s.reference, &Credentials::default(), &s.binding, None)
            .await
            .is_none()
    );
    // The node trusting the signer takes it, looked up afresh, from a lookup started
    // ahead of the pull, and from one started for another manifest (looked up again);
    // nothing more is ignored.
    let creds = Credentials::default();
    assert!(
        node.lookup(&c, &s.reference, &creds, &s.binding, None)
            .await
            .is_some()
    );
    let ahead = node.prefetch(
        c.clone(),
        s.reference.clone(),
        creds.clone(),
        s.binding.manifest.clone(),
    );
    assert!(ahead.is_some(), "a node trusting a key looks ahead");
    assert!(
        node.lookup(&c, &s.reference, &creds, &s.binding, ahead)
            .await
            .is_some()
    );
    let elsewhere = node.prefetch(
        c.clone(),
        s.reference.clone(),
        creds.clone(),
        Digest::sha256_of(b"another manifest"),
    );
    assert!(
        node.lookup(&c, &s.reference, &creds, &s.binding, elsewhere)
            .await
            .is_some()
    );
    let t = metrics(&addr).await;
    assert_eq!(
        metric(&t, "pullwarden_fleet_publish_total{result=\"ok\"}"),
        1,
        "{t}"
    );
    // Every lookup's wait is observed: the stranger's and the node's three.
    assert_eq!(
        metric(&t, "pullwarden_fleet_lookup_wait_seconds_count"),
        4,
        "{t}"
    );
    assert_eq!(
        metric(
            &t,
            "pullwarden_fleet_attestations_ignored_total{reason=\"untrusted\"}"
        ),
        1,
        "{t}"
    );
    assert_eq!(
        metric(
            &t,
            "pullwarden_fleet_attestations_ignored_total{reason=\"forged\"}"
        ),
        0,
        "{t}"
    );
    let _ = stop.send(());
    let _ = server.await;
}
