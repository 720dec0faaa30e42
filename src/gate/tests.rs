//! The whole PullImage/ImageStatus flow with a fake of every seam and no containerd: a
//! scripted CRI upstream (a queue of expected calls, loud on a surprise), a registry
//! that resolves and signs from tables, a scanner that flags listed digests, verdicts
//! in memory, and containerd's image names in the scripted upstream's own table.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_cri::v1::{ImageSpec, ImageStatusRequest, PullImageRequest};

use super::*;
use crate::config::Config;
use crate::containerd::{ContainerdError, Target};
use crate::cri::fake::{Expect, ScriptedImages, call};
use crate::cri::{IMAGE_STATUS, PULL_IMAGE};
use crate::policy::evaluate::JudgedScan;
use crate::policy::{Decision, Verdict};
use crate::reference::Reference;
use crate::registry::RegistryError;
use crate::report::SignatureReport;
use crate::snapshot::LoadedPolicy;
use crate::verify::VerifyError;

const POLICIES: &str = r#"
[[policy]]
name = "open"
images = ["reg.test/open/*"]
on_error = "allow"
[policy.signatures]
keys = ["/etc/test.pub"]

[[policy]]
name = "audit"
images = ["reg.test/audit/*"]
mode = "audit"
[policy.signatures]
keys = ["/etc/test.pub"]

[[policy]]
name = "free"
images = ["reg.test/free/*"]
mode = "off"

[[policy]]
name = "prod"
images = ["**"]
[policy.signatures]
keys = ["/etc/test.pub"]
"#;

/// How the fake registry fails, when it does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RegistryFault {
    None,
    /// Unreachable: an outage.
    Down,
    /// Answers with an index without this node's platform: content, never an outage.
    Unusable,
}

struct FakeRegistry {
    /// containerd name → the digest the registry resolves it to.
    tags: Mutex<HashMap<String, Digest>>,
    signed: Mutex<HashSet<Digest>>,
    fault: Mutex<RegistryFault>,
    verifications: AtomicUsize,
    /// How long a verification takes (real time: short).
    verify_takes: Duration,
}

impl FakeRegistry {
    fn new(verify_takes: Duration) -> FakeRegistry {
        FakeRegistry {
            tags: Mutex::default(),
            signed: Mutex::default(),
            fault: Mutex::new(RegistryFault::None),
            verifications: AtomicUsize::new(0),
            verify_takes,
        }
    }
}

#[async_trait]
impl SignatureSource for FakeRegistry {
    async fn resolve(
        &self,
        r: &Reference,
        _: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<ResolvedImage, GateError> {
        match *self.fault.lock().unwrap() {
            RegistryFault::None => {}
            RegistryFault::Down => {
                return Err(GateError::Registry(RegistryError::Timeout {
                    registry: r.registry.clone(),
                    url: format!("https://{}/v2/", r.registry),
                }));
            }
            RegistryFault::Unusable => {
                return Err(GateError::from(VerifyError::NoPlatform {
                    reference: r.to_string(),
                    os: "linux".into(),
                    arch: "amd64".into(),
                }));
            }
        }
        let digest = self
            .tags
            .lock()
            .unwrap()
            .get(&r.containerd_name())
            .cloned()
            .unwrap_or_else(|| panic!("the fake registry has no {r}"));
        Ok(ResolvedImage {
            digest,
            platform_digest: None,
        })
    }

    async fn verify(
        &self,
        _: &LoadedPolicy,
        _: &Reference,
        image: &ResolvedImage,
        _: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<SignatureReport, GateError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.verify_takes).await;
        let ok = self.signed.lock().unwrap().contains(&image.digest);
        Ok(SignatureReport {
            required: true,
            satisfied: ok,
            threshold: 1,
            verified_signers: if ok {
                vec!["/etc/test.pub".into()]
            } else {
                vec![]
            },
            checks: vec![],
        })
    }
}

#[derive(Default)]
struct FakeScanner {
    /// Digests whose layers hold a secret.
    leaky: Mutex<HashSet<Digest>>,
    broken: AtomicBool,
    scans: AtomicUsize,
    /// Each prefetch: the platform manifest digest, and whether containerd had the
    /// image stored by then (read from `stored`, when set).
    prefetched: Mutex<Vec<(Digest, bool)>>,
    stored: Mutex<Option<StoredImages>>,
}

/// containerd's image names and their digests, as the scripted upstream stored them.
type StoredImages = Arc<Mutex<HashMap<String, Digest>>>;

#[async_trait]
impl ImageScanner for FakeScanner {
    async fn scan(&self, _: &LoadedPolicy, target: &Target) -> Result<JudgedScan, GateError> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return Err(GateError::Scan(crate::scan::ScanError::BlobNotFound {
                digest: target.digest.to_string(),
            }));
        }
        let mut judged = JudgedScan::default();
        if self.leaky.lock().unwrap().contains(&target.digest) {
            judged
                .deny_reasons
                .push("secret aws-access-key-id in /app/.env (line 3)".into());
        }
        Ok(judged)
    }

    fn prefetch(
        &self,
        _: &LoadedPolicy,
        reference: &Reference,
        image: &ResolvedImage,
        _: Option<&k8s_cri::v1::AuthConfig>,
    ) {
        let stored = self
            .stored
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|s| s.lock().unwrap().contains_key(&reference.containerd_name()));
        let subject = image
            .platform_digest
            .clone()
            .unwrap_or(image.digest.clone());
        self.prefetched.lock().unwrap().push((subject, stored));
    }

    fn db_version(&self) -> String {
        "db-1".into()
    }
}

#[derive(Default)]
struct MemVerdicts {
    map: Mutex<HashMap<VerdictKey, Verdict>>,
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

/// containerd's image names, read from the scripted upstream's table (what its pulls
/// stored); `down` makes every lookup fail as an unreachable containerd does.
struct FakeImages {
    stored: Arc<Mutex<HashMap<String, Digest>>>,
    down: AtomicBool,
}

#[async_trait]
impl ImageStore for FakeImages {
    async fn target(&self, name: &str) -> Result<Option<Target>, GateError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(GateError::Containerd(ContainerdError::Unreachable {
                socket: "/run/containerd/containerd.sock".into(),
                reason: "connection refused".into(),
            }));
        }
        Ok(self.stored.lock().unwrap().get(name).map(|d| Target {
            digest: d.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1234,
        }))
    }
}

struct Flow {
    gate: Arc<Gate>,
    upstream: Arc<ScriptedImages>,
    registry: Arc<FakeRegistry>,
    scanner: Arc<FakeScanner>,
    verdicts: Arc<MemVerdicts>,
    images: Arc<FakeImages>,
}

impl Flow {
    fn new() -> Flow {
        Flow::with_verify_time(Duration::ZERO)
    }

    fn with_verify_time(verify_takes: Duration) -> Flow {
        let config = Arc::new(Config::parse(POLICIES).unwrap());
        let state = PolicyState::new(config, |p| Ok::<_, String>(format!("fp-{}", p.name)));
        let upstream = Arc::new(ScriptedImages::default());
        let registry = Arc::new(FakeRegistry::new(verify_takes));
        let scanner = Arc::new(FakeScanner::default());
        *scanner.stored.lock().unwrap() = Some(upstream.stored.clone());
        let verdicts = Arc::new(MemVerdicts::default());
        let images = Arc::new(FakeImages {
            stored: upstream.stored.clone(),
            down: AtomicBool::new(false),
        });
        let gate = Arc::new(Gate::new(
            state,
            registry.clone(),
            scanner.clone(),
            verdicts.clone(),
            images.clone(),
        ));
        Flow {
            gate,
            upstream,
            registry,
            scanner,
            verdicts,
            images,
        }
    }

    /// An image `name` (as the kubelet names it) the registry resolves to a digest of
    /// its own, signed or not.
    fn publish(&self, name: &str, signed: bool) -> Digest {
        let digest = Digest::sha256_of(name.as_bytes());
        self.retag(name, &digest);
        if signed {
            self.registry.signed.lock().unwrap().insert(digest.clone());
        }
        digest
    }

    /// Points `name` at `digest` in the registry.
    fn retag(&self, name: &str, digest: &Digest) {
        let r: Reference = name.parse().unwrap();
        self.registry
            .tags
            .lock()
            .unwrap()
            .insert(r.containerd_name(), digest.clone());
    }

    fn expect(&self, calls: impl IntoIterator<Item = Expect>) {
        self.upstream.expect(calls);
    }

    async fn pull(&self, image: &str) -> Reply {
        let req = PullImageRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let images: Arc<dyn ImageService> = self.upstream.clone();
        self.gate
            .clone()
            .pull_image(call(PULL_IMAGE, &req), images)
            .await
    }

    async fn status(&self, image: &str) -> Reply {
        let req = ImageStatusRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        let images: Arc<dyn ImageService> = self.upstream.clone();
        self.gate
            .clone()
            .image_status(call(IMAGE_STATUS, &req), images)
            .await
    }

    fn events(&self, how: How) -> usize {
        self.verdicts
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.how == how)
            .count()
    }

    fn stored_verdicts(&self) -> Vec<Verdict> {
        self.verdicts
            .map
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }
}

/// containerd's (buffered) answer was passed on, with this code.
fn answered(reply: &Reply) -> tonic::Code {
    match reply {
        Reply::Answer(resp) => resp.code(),
        other => panic!("expected containerd's answer, got {other:?}"),
    }
}

/// The gate answered with its own status.
fn refused(reply: Reply) -> (tonic::Code, String) {
    match reply {
        Reply::Status(s) => (s.code(), s.message().to_string()),
        other => panic!("expected a status of the gate's, got {other:?}"),
    }
}

const WEB: &str = "reg.test/app/web:v1";
const WEB_NAME: &str = "reg.test/app/web:v1";

#[tokio::test]
async fn an_unsigned_image_is_denied_before_anything_is_pulled() {
    let f = Flow::new();
    let digest = f.publish(WEB, false);
    // No call is expected of containerd: the scripted upstream panics on any.
    let (code, msg) = refused(f.pull(WEB).await);
    assert_eq!(code, tonic::Code::Unknown);
    assert!(
        msg.starts_with(&format!(
            "SignatureValidationFailed: pullwarden: image {WEB} ({digest}) denied by policy prod: "
        )),
        "{msg}"
    );
    assert_eq!(f.scanner.scans.load(Ordering::SeqCst), 0);
    let v = f.stored_verdicts();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].decision, v[0].digest == digest),
        (Decision::Deny, true)
    );
    f.upstream.assert_done();
}

#[tokio::test]
async fn a_signed_clean_image_is_pulled_scanned_and_then_answered_from_its_verdict() {
    let f = Flow::new();
    let digest = f.publish(WEB, true);
    f.expect([Expect::pull(WEB, WEB_NAME, &digest)]);
    assert_eq!(answered(&f.pull(WEB).await), tonic::Code::Ok);
    assert_eq!(f.scanner.scans.load(Ordering::SeqCst), 1);
    assert_eq!(f.events(How::Evaluated), 1);

    // Again: containerd pulls (it has the content), nothing is verified or scanned.
    f.expect([Expect::pull(WEB, WEB_NAME, &digest)]);
    assert_eq!(answered(&f.pull(WEB).await), tonic::Code::Ok);
    assert_eq!(f.registry.verifications.load(Ordering::SeqCst), 1);
    assert_eq!(f.scanner.scans.load(Ordering::SeqCst), 1);
    assert_eq!((f.events(How::Evaluated), f.events(How::Cached)), (1, 1));
    f.upstream.assert_done();
}

/// Registry-only work for the scan (the fleet's attestation lookup) starts as the pull
/// is forwarded, before containerd has the image, and only for an image that is then
/// pulled: never for one its signatures already denied, never for a cached verdict.
#[tokio::test]
async fn the_scan_prefetch_starts_before_the_pull_and_only_for_pulled_images() {
    let f = Flow::new();
    let digest = f.publish(WEB, true);
    let unsigned = f.publish("reg.test/app/unsigned:v1", false);
    f.expect([Expect::pull(WEB, WEB_NAME, &digest)]);
    assert_eq!(answered(&f.pull(WEB).await), tonic::Code::Ok);
    assert_eq!(
        *f.scanner.prefetched.lock().unwrap(),
        vec![(digest.clone(), false)],
        "one prefetch, for the verified digest, before containerd stored the image"
    );
    f.expect([Expect::pull(WEB, WEB_NAME, &digest)]);
    assert_eq!(answered(&f.pull(WEB).await), tonic::Code::Ok);
    let _ = refused(f.pull("reg.test/app/unsigned:v1").await);
    assert_eq!(f.scanner.prefetched.lock().unwrap().len(), 1, "{unsigned}");
    f.upstream.assert_done();
}

#[tokio::test]
async fn a_tag_that_moves_during_the_pull_is_removed_and_refused() {
    let f = Flow::new();
    let verified = f.publish(WEB, true);
    let swapped = Digest::sha256_of(b"pushed over the tag mid-pull");
    // containerd stores another digest than the one verified: taken out again.
    f.expect([
        Expect::pull(WEB, WEB_NAME, &swapped),
        Expect::remove(WEB_NAME),
    ]);
    let (code, msg) = refused(f.pull(WEB).await);
    assert_eq!(code, tonic::Code::Unavailable);
    assert!(
        msg.contains(&format!("verified {verified}, containerd stored {swapped}")),
        "{msg}"
    );
    assert!(f.upstream.stored.lock().unwrap().is_empty());
    assert_eq!(f.scanner.scans.load(Ordering::SeqCst), 0);
    assert!(
        f.stored_verdicts().is_empty(),
        "nothing judged, nothing cached"
    );

    // An allowed verdict does not follow the name to new content: the cached allow
    // lets containerd pull, containerd stores the new digest, and that is evaluated
    // on its own (unsigned here: denied, and the name taken out again).
    f.expect([Expect::pull(WEB, WEB_NAME, &verified)]);
    assert_eq!(answered(&f.pull(WEB).await), tonic::Code::Ok);
    f.retag(WEB, &swapped);
    f.expect([
        Expect::pull(WEB, WEB_NAME, &swapped),
        Expect::remove(WEB_NAME),
    ]);
    let (code, msg) = refused(f.pull(WEB).await);
    assert_eq!(code, tonic::Code::Unknown, "{msg}");
    assert!(msg.contains(&format!("({swapped})")), "{msg}");
    assert!(f.upstream.stored.lock().unwrap().is_empty());
    f.upstream.assert_done();
}

#[tokio::test]
async fn concurrent_pulls_of_one_image_share_one_evaluation_and_one_pull() {
    let f = Arc::new(Flow::with_verify_time(Duration::from_millis(100)));
    let digest = f.publish(WEB, true);
    f.expect([Expect::pull(WEB, WEB_NAME, &digest)]);
    let pulls: Vec<_> = (0..8)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { answered(&f.pull(WEB).await) })
        })
        .collect();
    for p in pulls {
        assert_eq!(p.await.unwrap(), tonic::Code::Ok);
    }
    assert_eq!(f.registry.verifications.load(Ordering::SeqCst), 1);
    assert_eq!(f.scanner.scans.load(Ordering::SeqCst), 1);
    assert_eq!((f.events(How::Evaluated), f.events(How::Shared)), (1, 7));
    assert_eq!(f.gate.flights.in_flight(), 0);
    f.upstream.assert_done();
}

#[tokio::test]
async fn a_denied_image_is_removed_under_enforce_and_its_deny_is_answered_from_the_cache() {
    let f = Flow::new();
    let digest = f.publish(WEB, true);
    f.scanner.leaky.lock().unwrap().insert(digest.clone());
    f.expect([
        Expect::pull(WEB, WEB_NAME, &digest),
        Expect::remove(WEB_NAME),
    ]);
    let (code, msg) = refused(f.pull(WEB).await);
    assert_eq!(code, tonic::Code::PermissionDenied);
    assert_eq!(
        msg,
        format!(
            "pullwarden: image {WEB} ({digest}) denied by policy prod: secret aws-access-key-id in /app/.env (line 3); run \"pullwarden explain {digest}\" on the node"
        )
    );
    assert!(f.upstream.stored.lock().unwrap().is_empty());

    // The same pull again: the stored deny answers, nothing reaches containerd, and the
    // message is the same.
    let (code, again) = refused(f.pull(WEB).await);
    assert_eq!((code, again), (tonic::Code::PermissionDenied, msg));
    assert_eq!(f.scanner.scans.load(Ordering::SeqCst), 1);
    assert_eq!(f.events(How::Cached), 1);
    f.upstream.assert_done();
}

#[tokio::test]
async fn an_audit_deny_is_recorded_and_the_image_stays() {
    let f = Flow::new();
    let image = "reg.test/audit/web:v1";
    let digest = f.publish(image, true);
    f.scanner.leaky.lock().unwrap().insert(digest.clone());
    // No removal is expected: the scripted upstream would panic on one.
    f.expect([Expect::pull(image, image, &digest)]);
    assert_eq!(answered(&f.pull(image).await), tonic::Code::Ok);
    assert_eq!(f.upstream.stored.lock().unwrap().get(image), Some(&digest));
    let v = f.stored_verdicts();
    assert_eq!(
        (v[0].decision, v[0].mode, v[0].enforced, v[0].would_deny),
        (Decision::Deny, crate::config::Mode::Audit, false, true)
    );
    f.upstream.assert_done();
}

#[tokio::test]
async fn a_registry_outage_fails_closed_under_deny_and_open_under_allow_caching_nothing() {
    let f = Flow::new();
    f.publish(WEB, true);
    *f.registry.fault.lock().unwrap() = RegistryFault::Down;
    let (code, msg) = refused(f.pull(WEB).await);
    assert_eq!(code, tonic::Code::Unknown);
    assert!(
        msg.starts_with(&format!(
            "RegistryUnavailable: pullwarden: image {WEB}: registry unavailable: registry reg.test timed out"
        )),
        "{msg}"
    );

    let open = "reg.test/open/web:v1";
    let digest = f.publish(open, true);
    f.expect([Expect::pull(open, open, &digest)]);
    assert_eq!(answered(&f.pull(open).await), tonic::Code::Ok);
    assert!(f.stored_verdicts().is_empty());
    assert_eq!(f.events(How::Error), 2);
    f.upstream.assert_done();
}

#[tokio::test]
async fn what_a_registry_serves_never_fails_open() {
    let f = Flow::new();
    let open = "reg.test/open/web:v1";
    f.publish(open, true);
    *f.registry.fault.lock().unwrap() = RegistryFault::Unusable;
    let (code, msg) = refused(f.pull(open).await);
    assert_eq!(code, tonic::Code::Unknown);
    assert!(
        msg.starts_with(&format!(
            "RegistryUnavailable: pullwarden: image {open}: registry answered unusably: "
        )),
        "{msg}"
    );
    f.upstream.assert_done();
}

#[tokio::test]
async fn a_containerd_failure_is_unavailable_and_its_own_refusal_is_passed_on() {
    let f = Flow::new();
    f.publish(WEB, true);
    f.images.down.store(true, Ordering::SeqCst);
    let (code, msg) = refused(f.pull(WEB).await);
    assert_eq!(code, tonic::Code::Unavailable);
    assert!(
        msg.starts_with(&format!(
            "pullwarden: image {WEB}: cannot be evaluated: containerd: containerd at /run/containerd/containerd.sock is unreachable"
        )),
        "{msg}"
    );
    f.images.down.store(false, Ordering::SeqCst);

    // containerd cannot pull it (its own NotFound): its answer, nothing judged.
    f.expect([Expect::pull_refused(WEB, tonic::Code::NotFound)]);
    assert_eq!(answered(&f.pull(WEB).await), tonic::Code::NotFound);
    assert_eq!(f.scanner.scans.load(Ordering::SeqCst), 0);
    f.upstream.assert_done();
}

#[tokio::test]
async fn a_failed_scan_removes_the_unjudged_image_and_is_unavailable() {
    let f = Flow::new();
    let digest = f.publish(WEB, true);
    f.scanner.broken.store(true, Ordering::SeqCst);
    f.expect([
        Expect::pull(WEB, WEB_NAME, &digest),
        Expect::remove(WEB_NAME),
    ]);
    let (code, msg) = refused(f.pull(WEB).await);
    assert_eq!(code, tonic::Code::Unavailable);
    assert!(
        msg.starts_with(&format!(
            "pullwarden: image {WEB}: cannot be evaluated: scan: "
        )),
        "{msg}"
    );
    assert!(f.stored_verdicts().is_empty());
    f.upstream.assert_done();
}

#[tokio::test]
async fn image_status_hides_an_image_without_an_allow_verdict() {
    let f = Flow::new();
    let digest = f.publish(WEB, true);
    let image = k8s_cri::v1::Image {
        id: digest.to_string(),
        repo_tags: vec![WEB_NAME.into()],
        repo_digests: vec![format!("reg.test/app/web@{digest}")],
        ..Default::default()
    };
    // Side-loaded, never judged: reported absent, so the kubelet pulls through us.
    f.upstream
        .stored
        .lock()
        .unwrap()
        .insert(WEB_NAME.into(), digest.clone());
    f.expect([Expect::status(WEB, Some(image.clone()))]);
    match f.status(WEB).await {
        Reply::Answer(resp) => {
            assert_eq!(resp.code(), tonic::Code::Ok);
            assert_eq!(resp.status_image(), None);
        }
        other => panic!("{other:?}"),
    }

    // Once allowed, containerd's answer is passed on.
    f.expect([
        Expect::pull(WEB, WEB_NAME, &digest),
        Expect::status(WEB, Some(image.clone())),
    ]);
    assert_eq!(answered(&f.pull(WEB).await), tonic::Code::Ok);
    match f.status(WEB).await {
        Reply::Answer(resp) => assert_eq!(resp.status_image(), Some(image)),
        other => panic!("{other:?}"),
    }
    f.upstream.assert_done();
}

#[tokio::test]
async fn calls_no_policy_judges_are_relayed_untouched() {
    let f = Flow::new();
    let free = "reg.test/free/tool:v1";
    assert!(matches!(f.pull(free).await, Reply::Relay(_)));
    assert_eq!(f.registry.verifications.load(Ordering::SeqCst), 0);
    // ImageStatus: the catch-all `prod` could cover the name, so containerd's answer is
    // read; the first policy that matches is `off`, so it is passed on as it came.
    let image = k8s_cri::v1::Image {
        id: Digest::sha256_of(b"tool").to_string(),
        repo_tags: vec![free.into()],
        ..Default::default()
    };
    f.expect([Expect::status(free, Some(image.clone()))]);
    match f.status(free).await {
        Reply::Answer(resp) => assert_eq!(resp.status_image(), Some(image)),
        other => panic!("{other:?}"),
    }
    // With no policy that could judge it at all, the call is relayed untouched.
    f.gate.set_policies(PolicyState::new(
        Arc::new(
            Config::parse("[[policy]]\nname = \"free\"\nimages = [\"**\"]\nmode = \"off\"\n")
                .unwrap(),
        ),
        |p| Ok::<_, String>(format!("fp-{}", p.name)),
    ));
    assert!(matches!(f.status(free).await, Reply::Relay(_)));
    f.upstream.assert_done();
}

#[tokio::test]
#[should_panic(expected = "scripted containerd: unexpected call PullImage")]
async fn the_scripted_upstream_fails_loudly_on_a_surprise() {
    let f = Flow::new();
    let upstream: Arc<dyn ImageService> = f.upstream.clone();
    let req = PullImageRequest {
        image: Some(ImageSpec {
            image: WEB.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let _ = upstream.forward(&call(PULL_IMAGE, &req)).await;
}
