//! The PullImage/ImageStatus flow on real containerd and a real registry, with fake
//! signature and scan parts (their real versions have their own tests), so each step
//! of DESIGN.md's flow is pinned down: verify before pull, bind by digest, single
//! flight, cached verdicts, error shapes, removal of denied images.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_cri::v1::ImageStatusRequest;
use pullwarden::config::Config;
use pullwarden::containerd::{Containerd, Target};
use pullwarden::gate::{
    DecisionEvent, Gate, GateError, ImageScanner, PolicyState, ResolvedImage, SignatureSource,
    VerdictCache, VerdictKey,
};
use pullwarden::policy::Verdict;
use pullwarden::policy::evaluate::JudgedScan;
use pullwarden::reference::Reference;
use pullwarden::registry::RegistryError;
use pullwarden::report::{SignatureCheck, SignatureReport};
use pullwarden::snapshot::LoadedPolicy;

use crate::support::cri::{images, pull_request, spec};
use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{it_env, unique_repo};

#[derive(Default)]
pub(crate) struct FakeSignatures {
    /// Digests signed for whatever repository holds them.
    pub(crate) signed: Mutex<HashSet<String>>,
    /// `registry/repository@digest`: signed for that repository only (cosign's
    /// `docker-reference`).
    signed_for: Mutex<HashSet<String>>,
    registry_down: AtomicBool,
    pub(crate) verifications: AtomicUsize,
}

#[async_trait]
impl SignatureSource for FakeSignatures {
    async fn resolve(
        &self,
        r: &Reference,
        _: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<ResolvedImage, GateError> {
        if self.registry_down.load(Ordering::SeqCst) {
            return Err(GateError::Registry(RegistryError::Timeout {
                registry: r.registry.clone(),
                url: "connection refused".into(),
            }));
        }
        let resp = reqwest::Client::new()
            .head(format!("http://{}/v2/{}/manifests/{}", r.registry, r.repository, r.manifest_ref()))
            .header("accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
            .send()
            .await
            .map_err(|source| {
                GateError::Registry(RegistryError::Unreachable {
                    registry: r.registry.clone(),
                    source,
                })
            })?;
        let d = resp.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        Ok(ResolvedImage {
            digest: d,
            platform_digest: None,
        })
    }

    async fn verify(
        &self,
        _: &LoadedPolicy,
        r: &Reference,
        image: &ResolvedImage,
        _: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<SignatureReport, GateError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        let ok = self
            .signed
            .lock()
            .unwrap()
            .contains(&image.digest.to_string())
            || self
                .signed_for
                .lock()
                .unwrap()
                .contains(&format!("{}/{}@{}", r.registry, r.repository, image.digest));
        let check = SignatureCheck {
            subject: image.digest.to_string(),
            source: if ok {
                "legacy-tag".into()
            } else {
                "none".into()
            },
            artifact: None,
            signer: ok.then(|| "test-key".to_string()),
            verified: ok,
            reason: if ok {
                "verified".into()
            } else {
                "no signature".into()
            },
        };
        Ok(SignatureReport {
            required: true,
            satisfied: ok,
            threshold: 1,
            verified_signers: if ok { vec!["test-key".into()] } else { vec![] },
            checks: vec![check],
        })
    }
}

#[derive(Default)]
pub(crate) struct FakeScanner {
    bad: Mutex<HashSet<String>>,
    pub(crate) scans: AtomicUsize,
}

#[async_trait]
impl ImageScanner for FakeScanner {
    async fn scan(&self, _: &LoadedPolicy, target: &Target) -> Result<JudgedScan, GateError> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut j = JudgedScan::default();
        if self
            .bad
            .lock()
            .unwrap()
            .contains(&target.digest.to_string())
        {
            j.deny_reasons
                .push("secret aws-access-key-id in /app/.env (line 1)".into());
        }
        Ok(j)
    }
    fn db_version(&self) -> String {
        "test-db-1".into()
    }
}

#[derive(Default)]
struct MemVerdicts {
    map: Mutex<std::collections::HashMap<VerdictKey, Verdict>>,
    events: Mutex<Vec<DecisionEvent>>,
}

impl VerdictCache for MemVerdicts {
    fn get(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError> {
        Ok(self.map.lock().unwrap().get(key).cloned())
    }
    fn put(&self, key: &VerdictKey, v: &Verdict) -> Result<(), GateError> {
        self.map.lock().unwrap().insert(key.clone(), v.clone());
        Ok(())
    }
    fn record(&self, e: &DecisionEvent) {
        self.events.lock().unwrap().push(e.clone());
    }
}

pub(crate) struct Harness {
    _dir: tempfile::TempDir,
    pub(crate) listen: PathBuf,
    gate: Arc<Gate>,
    pub(crate) sigs: Arc<FakeSignatures>,
    pub(crate) scanner: Arc<FakeScanner>,
    verdicts: Arc<MemVerdicts>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn config(registry: &str) -> Arc<Config> {
    config_with(registry, "")
}

/// [`config`] with a `[server]` section of `server` lines.
fn config_with(registry: &str, server: &str) -> Arc<Config> {
    Arc::new(
        Config::parse(&format!(
            r#"
[server]
{server}

[[policy]]
name = "failopen"
images = ["{registry}/it/failopen-*"]
on_error = "allow"
[policy.signatures]
keys = ["/etc/test.pub"]

[[policy]]
name = "failopen-broken"
images = ["{registry}/it/brokenkey-*"]
on_error = "allow"
[policy.signatures]
keys = ["/etc/test.pub"]

[[policy]]
name = "audit"
images = ["{registry}/it/audit-*"]
mode = "audit"
[policy.signatures]
keys = ["/etc/test.pub"]

[[policy]]
name = "kube-system"
images = ["**"]
namespaces = ["kube-system"]
mode = "off"

[[policy]]
name = "prod"
images = ["**"]
[policy.signatures]
keys = ["/etc/test.pub"]
"#
        ))
        .unwrap(),
    )
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with("").await
    }

    /// A harness whose config has these `[server]` lines. The `failopen-broken` policy's
    /// keys "do not load" (its fingerprint fails, as a key file that is not a key does).
    async fn start_with(server: &str) -> Harness {
        Harness::start_config(config_with(&it_env().registry, server)).await
    }

    /// A harness under `policies` (TOML; `{registry}` becomes the test registry); no
    /// policy's keys fail to load.
    pub(crate) async fn start_policies(policies: &str) -> Harness {
        let text = policies.replace("{registry}", &it_env().registry);
        Harness::start_config(Arc::new(Config::parse(&text).unwrap())).await
    }

    async fn start_config(config: Arc<Config>) -> Harness {
        let env = it_env();
        let dir = tempfile::tempdir().unwrap();
        let listen = dir.path().join("cri.sock");
        let sigs = Arc::new(FakeSignatures::default());
        let scanner = Arc::new(FakeScanner::default());
        let verdicts = Arc::new(MemVerdicts::default());
        let state = PolicyState::new(config, |p| {
            if p.name == "failopen-broken" {
                Err("key file /etc/test.pub: not a public key".to_string())
            } else {
                Ok(format!("fp-{}", p.name))
            }
        });
        let gate = Arc::new(Gate::new(
            state,
            sigs.clone(),
            scanner.clone(),
            verdicts.clone(),
            Arc::new(Containerd::new(&env.containerd_sock, "k8s.io").unwrap()),
        ));
        let listener = pullwarden::cri::bind_socket(&listen, "root").unwrap();
        let upstream = Arc::new(pullwarden::cri::Upstream::new(&env.containerd_sock));
        let proxy = pullwarden::cri::Proxy::new(upstream, gate.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(pullwarden::cri::server::serve(
            listener,
            proxy,
            async {
                let _ = rx.await;
            },
            Duration::from_secs(1),
        ));
        Harness {
            _dir: dir,
            listen,
            gate,
            sigs,
            scanner,
            verdicts,
            _stop: tx,
        }
    }

    fn sign(&self, digest: &str) {
        self.sigs.signed.lock().unwrap().insert(digest.to_string());
    }

    /// Signs `digest` for the repository of `image` only.
    fn sign_for(&self, image: &str, digest: &str) {
        let r: Reference = image.parse().unwrap();
        self.sigs
            .signed_for
            .lock()
            .unwrap()
            .insert(format!("{}/{}@{digest}", r.registry, r.repository));
    }

    fn evaluations(&self, digest: &str) -> usize {
        self.verdicts
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.digest.as_ref().is_some_and(|d| d == digest) && e.how == "evaluated")
            .count()
    }
}

pub(crate) async fn push(prefix: &str, salt: &str) -> (String, Image) {
    let env = it_env();
    let repo = unique_repo(prefix);
    let img = Image::with_platform(
        vec![Layer::from_entries(
            &[Entry::file("etc/motd", salt.to_string())],
            Compression::Gzip,
        )],
        "amd64",
        salt,
    );
    img.push(&env.registry, &repo, "v1").await;
    (format!("{}/{repo}:v1", env.registry), img)
}

async fn present_in_containerd(image: &str) -> bool {
    crate::support::cri::present(&it_env().containerd_sock, image).await
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_clean_image_is_allowed_then_answered_from_the_cache() {
    let h = Harness::start().await;
    let (image, img) = push("signed", "signed").await;
    h.sign(&img.digest);
    let mut cri = images(&h.listen).await;
    let r = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.image_ref, img.config_digest);
    assert_eq!(h.scanner.scans.load(Ordering::SeqCst), 1);
    // Second pull: cached verdict, no new verification or scan.
    cri.pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    assert_eq!(h.scanner.scans.load(Ordering::SeqCst), 1);
    assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), 1);
    let events = h.verdicts.events.lock().unwrap().clone();
    assert_eq!(
        events.iter().map(|e| e.how.as_str()).collect::<Vec<_>>(),
        ["evaluated", "cached"]
    );
    // Present through the proxy: it has an allow verdict.
    assert!(crate::support::cri::present(&h.listen, &image).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_image_is_denied_before_any_layer_is_pulled() {
    let h = Harness::start().await;
    let (image, img) = push("unsigned", "unsigned").await;
    let mut cri = images(&h.listen).await;
    let err = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unknown);
    assert_eq!(
        err.message(),
        format!(
            "SignatureValidationFailed: pullwarden: image {image} ({}) denied by policy prod: no signature found (need 1 trusted signer)",
            img.digest
        )
    );
    assert!(
        !present_in_containerd(&image).await,
        "denied image was pulled"
    );
    assert_eq!(h.scanner.scans.load(Ordering::SeqCst), 0);
    // Same digest, same policy: the same message, from the cache, still nothing pulled.
    let again = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert_eq!(again.message(), err.message());
    // Side-loaded into containerd behind our back: the next pull through us removes it.
    images(&it_env().containerd_sock)
        .await
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    assert!(present_in_containerd(&image).await);
    let third = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert_eq!(third.message(), err.message());
    assert!(!present_in_containerd(&image).await);
    assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn scan_deny_removes_the_image_and_names_explain() {
    let h = Harness::start().await;
    let (image, img) = push("secret", "secret").await;
    h.sign(&img.digest);
    h.scanner.bad.lock().unwrap().insert(img.digest.clone());
    let mut cri = images(&h.listen).await;
    let err = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        err.message(),
        format!(
            "pullwarden: image {image} ({d}) denied by policy prod: secret aws-access-key-id in /app/.env (line 1); run \"pullwarden explain {d}\" on the node",
            d = img.digest
        )
    );
    assert!(
        !present_in_containerd(&image).await,
        "denied image left in containerd"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_mode_allows_and_records_the_deny() {
    let h = Harness::start().await;
    let (image, img) = push("audit", "audit").await; // unsigned, under the audit policy
    let mut cri = images(&h.listen).await;
    cri.pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    assert!(present_in_containerd(&image).await);
    let map = h.verdicts.map.lock().unwrap();
    let v = map
        .values()
        .find(|v| v.digest == img.digest)
        .expect("verdict recorded");
    assert_eq!((v.policy.as_str(), v.mode.as_str()), ("audit", "audit"));
    assert_eq!(v.decision, pullwarden::policy::Decision::Deny);
    assert!(v.would_deny);
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_picks_the_policy() {
    let h = Harness::start().await;
    let (image, _) = push("ns", "ns").await; // unsigned
    let mut cri = images(&h.listen).await;
    // kube-system: mode off, plain passthrough.
    cri.pull_image(pull_request(&image, "kube-system"))
        .await
        .unwrap();
    assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), 0);
    // default: prod, enforced.
    let err = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert!(
        err.message().contains("denied by policy prod"),
        "{}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn side_loaded_images_are_absent_until_verified() {
    let h = Harness::start().await;
    let (image, img) = push("side", "side").await;
    // Pulled straight into containerd, around pullwarden.
    images(&it_env().containerd_sock)
        .await
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    let mut cri = images(&h.listen).await;
    assert!(
        !crate::support::cri::present(&h.listen, &image).await,
        "side-loaded image reported present"
    );
    h.sign(&img.digest);
    cri.pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    let st = cri
        .image_status(ImageStatusRequest {
            image: spec(&image),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.image.unwrap().id, img.config_digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_moved_tag_is_evaluated_again() {
    let h = Harness::start().await;
    let env = it_env();
    let (image, first) = push("moved", "one").await;
    h.sign(&first.digest);
    let mut cri = images(&h.listen).await;
    cri.pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    // Re-point the tag at an unsigned image.
    let repo = image
        .trim_start_matches(&format!("{}/", env.registry))
        .trim_end_matches(":v1")
        .to_string();
    let second = Image::with_platform(
        vec![Layer::from_entries(
            &[Entry::file("etc/motd", "two")],
            Compression::Gzip,
        )],
        "amd64",
        "two",
    );
    second.push(&env.registry, &repo, "v1").await;
    let err = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert!(err.message().contains(&second.digest), "{}", err.message());
    assert!(err.message().starts_with("SignatureValidationFailed: "));
    assert_eq!(h.evaluations(&second.digest), 1);
    assert!(
        !present_in_containerd(&image).await,
        "unsigned image behind a moved tag left in containerd"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_pulls_share_one_evaluation() {
    let h = Harness::start().await;
    let (image, img) = push("concurrent", "concurrent").await;
    h.sign(&img.digest);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (listen, image) = (h.listen.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            images(&listen)
                .await
                .pull_image(pull_request(&image, "default"))
                .await
                .map(|r| r.into_inner().image_ref)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), img.config_digest);
    }
    assert_eq!(h.scanner.scans.load(Ordering::SeqCst), 1);
    assert_eq!(h.evaluations(&img.digest), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_change_invalidates_cached_verdicts() {
    let h = Harness::start().await;
    let (image, img) = push("policychange", "policychange").await;
    h.sign(&img.digest);
    let mut cri = images(&h.listen).await;
    cri.pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    h.gate
        .set_policies(PolicyState::new(config(&it_env().registry), |p| {
            Ok::<_, String>(format!("fp2-{}", p.name))
        }));
    cri.pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    assert_eq!(h.evaluations(&img.digest), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_down_fails_closed_and_caches_nothing() {
    let h = Harness::start().await;
    let (image, img) = push("down", "down").await;
    h.sign(&img.digest);
    h.sigs.registry_down.store(true, Ordering::SeqCst);
    let mut cri = images(&h.listen).await;
    let err = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unknown);
    assert!(
        err.message()
            .starts_with("RegistryUnavailable: pullwarden: image "),
        "{}",
        err.message()
    );
    assert!(h.verdicts.map.lock().unwrap().is_empty());
    assert!(!present_in_containerd(&image).await);
    h.sigs.registry_down.store(false, Ordering::SeqCst);
    cri.pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
}

/// Pushes one image (same bytes, same digest) to a repository of each prefix.
async fn push_to_each(prefixes: &[&str], salt: &str) -> (Vec<String>, Image) {
    let env = it_env();
    let img = Image::with_platform(
        vec![Layer::from_entries(
            &[Entry::file("etc/motd", salt.to_string())],
            Compression::Gzip,
        )],
        "amd64",
        salt,
    );
    let mut refs = Vec::new();
    for prefix in prefixes {
        let repo = unique_repo(prefix);
        img.push(&env.registry, &repo, "v1").await;
        refs.push(format!("{}/{repo}:v1", env.registry));
    }
    (refs, img)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_deny_is_verified_again_after_the_recheck_interval() {
    let h = Harness::start_with("recheck_denied_after = \"1500ms\"").await;
    let (image, img) = push("signlater", "signlater").await;
    let mut cri = images(&h.listen).await;
    let err = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("SignatureValidationFailed: "),
        "{}",
        err.message()
    );
    // CI signs a moment after the push.
    h.sign(&img.digest);
    // The kubelet's quick retry inside the interval: the one stable answer, from the
    // store, with no registry call.
    let again = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert_eq!(again.message(), err.message());
    assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), 1);
    assert!(!present_in_containerd(&image).await);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // After it: verified again, now signed, pulled and scanned for the first time.
    cri.pull_image(pull_request(&image, "default"))
        .await
        .unwrap();
    assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), 2);
    assert_eq!(h.scanner.scans.load(Ordering::SeqCst), 1);
    assert!(present_in_containerd(&image).await);
    assert!(crate::support::cri::present(&h.listen, &image).await);
    assert_eq!(h.evaluations(&img.digest), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scan_deny_stays_cached_past_the_recheck_interval() {
    let h = Harness::start_with("recheck_denied_after = \"0s\"").await;
    let (image, img) = push("scandeny-recheck", "scandeny-recheck").await;
    h.sign(&img.digest);
    h.scanner.bad.lock().unwrap().insert(img.digest.clone());
    let mut cri = images(&h.listen).await;
    for _ in 0..3 {
        let err = cri
            .pull_image(pull_request(&image, "default"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
    }
    // The image's own bytes decided: one verification, one scan, then the store.
    assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), 1);
    assert_eq!(h.scanner.scans.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recheck_that_still_fails_denies_and_restarts_the_interval() {
    let h = Harness::start_with("recheck_denied_after = \"0s\"").await;
    let (image, _) = push("stillunsigned", "stillunsigned").await;
    let mut cri = images(&h.listen).await;
    for n in 1..=3 {
        let err = cri
            .pull_image(pull_request(&image, "default"))
            .await
            .unwrap_err();
        assert!(err.message().starts_with("SignatureValidationFailed: "));
        assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), n);
    }
    assert_eq!(
        h.scanner.scans.load(Ordering::SeqCst),
        0,
        "no layer is read"
    );
    assert!(!present_in_containerd(&image).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_verdict_holds_only_for_the_repository_it_was_verified_for() {
    let h = Harness::start().await;
    let mut cri = images(&h.listen).await;
    // Order 1: the unsigned repository first. Its deny must not deny the signed one.
    let (refs, img) = push_to_each(&["bindsigned", "bindcopy"], "bind-order-1").await;
    let (signed, copy) = (&refs[0], &refs[1]);
    h.sign_for(signed, &img.digest);
    let err = cri
        .pull_image(pull_request(copy, "default"))
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("SignatureValidationFailed: "),
        "{}",
        err.message()
    );
    cri.pull_image(pull_request(signed, "default"))
        .await
        .expect("the signed repository is judged on its own");
    assert!(present_in_containerd(signed).await);

    // Order 2: the signed repository first. Its allow must not admit the copy.
    let (refs, img) = push_to_each(&["bindsigned", "bindcopy"], "bind-order-2").await;
    let (signed, copy) = (&refs[0], &refs[1]);
    h.sign_for(signed, &img.digest);
    cri.pull_image(pull_request(signed, "default"))
        .await
        .unwrap();
    let err = cri
        .pull_image(pull_request(copy, "default"))
        .await
        .unwrap_err();
    assert!(
        err.message().starts_with("SignatureValidationFailed: "),
        "{}",
        err.message()
    );
    assert!(!present_in_containerd(copy).await);
    assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), 4);
    // The copy's name given to containerd by hand (as `ctr tag` would) is still absent
    // through the proxy: the allow belongs to the signed repository.
    let mut direct = images(&it_env().containerd_sock).await;
    direct
        .pull_image(pull_request(copy, "default"))
        .await
        .unwrap();
    assert!(!crate::support::cri::present(&h.listen, copy).await);
    assert!(crate::support::cri::present(&h.listen, signed).await);
    // By image id, the image is present: one of its names is allowed.
    let id = direct
        .image_status(ImageStatusRequest {
            image: spec(copy),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap()
        .id;
    assert!(crate::support::cri::present(&h.listen, &id).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_error_allow_lets_an_outage_through_and_nothing_else() {
    let h = Harness::start().await;
    let mut cri = images(&h.listen).await;
    // An outage (the registry unreachable for the verifier): fail open, as configured.
    let (image, _) = push("failopen-outage", "failopen-outage").await;
    h.sigs.registry_down.store(true, Ordering::SeqCst);
    cri.pull_image(pull_request(&image, "default"))
        .await
        .expect("an outage fails open under on_error = allow");
    h.sigs.registry_down.store(false, Ordering::SeqCst);
    assert!(h.verdicts.map.lock().unwrap().is_empty(), "nothing cached");
    // Our own broken configuration is never an outage: denied, nothing pulled.
    let (image, _) = push("brokenkey", "brokenkey").await;
    let err = cri
        .pull_image(pull_request(&image, "default"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{}", err.message());
    assert!(
        err.message().contains("not a public key"),
        "{}",
        err.message()
    );
    assert!(!present_in_containerd(&image).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_and_a_digest_pulled_together_both_end_up_in_containerd() {
    let h = Harness::start().await;
    let mut shared = 0;
    for round in 0..3 {
        let (image, img) = push("tagdigest", &format!("tagdigest-{round}")).await;
        h.sign(&img.digest);
        let by_digest = format!("{}@{}", image.rsplit_once(':').unwrap().0, img.digest);
        let mut names = Vec::new();
        for i in 0..4 {
            names.push(if i % 2 == 0 {
                image.clone()
            } else {
                by_digest.clone()
            });
        }
        let calls = names.iter().map(|name| {
            let listen = h.listen.clone();
            let name = name.clone();
            async move {
                images(&listen)
                    .await
                    .pull_image(pull_request(&name, "default"))
                    .await
            }
        });
        for r in futures::future::join_all(calls).await {
            r.expect("every caller of an allowed image is answered OK");
        }
        for name in [&image, &by_digest] {
            assert!(
                present_in_containerd(name).await,
                "{name} missing from containerd"
            );
            assert!(
                crate::support::cri::present(&h.listen, name).await,
                "{name} absent through the proxy"
            );
        }
        assert_eq!(h.evaluations(&img.digest), 1);
        shared += h
            .verdicts
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.digest.as_ref().is_some_and(|d| *d == img.digest) && e.how == "shared")
            .count();
    }
    assert!(
        shared > 0,
        "no pull joined an evaluation: the race was not exercised"
    );
}
