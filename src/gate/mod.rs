//! The gate: the PullImage and ImageStatus flows of DESIGN.md. Resolve → cached
//! verdict → verify signatures before any layer is pulled → pull → bind by digest →
//! scan → verdict, one evaluation per digest at a time, denied images removed again.

pub mod flight;
pub mod messages;
pub mod real;
pub mod seams;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use k8s_cri::v1::{ImageStatusRequest, ImageStatusResponse, PullImageRequest, RemoveImageRequest};
use prost::Message;
use time::OffsetDateTime;

use crate::admin::Metrics;
use crate::config::{Config, Mode, OnError, Policy};
use crate::cri::{self, BoxBody, ImageGate, InterceptedCall, Upstream, grpc};
use crate::policy::evaluate::{self, Keys, Subject};
use crate::policy::{Decision, Verdict};
use crate::reference::Reference;
use crate::report::SignatureReport;

pub use seams::{
    BufferedResponse, DecisionEvent, ImageScanner, ImageStore, ResolvedImage, SignatureSource,
    VerdictCache, VerdictKey,
};

/// Failures of the parts around the decision. None of them is ever cached as allow.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GateError {
    /// The registry could not be reached, timed out or failed with a 5xx: an outage, the
    /// one registry failure `on_error = "allow"` lets through (→ `RegistryUnavailable:`).
    #[error("{0}")]
    Registry(String),
    /// The registry answered, but with what cannot be used: a missing or malformed
    /// manifest, an index without this node's platform, content that does not match its
    /// digest, a refusal (→ `RegistryUnavailable:`). What an image or its registry serves
    /// is never an outage: it never fails open.
    #[error("{0}")]
    RegistryContent(String),
    /// containerd failed (→ `UNAVAILABLE`).
    #[error("containerd: {0}")]
    Containerd(String),
    /// The verdict store failed.
    #[error("verdict store: {0}")]
    Store(String),
    /// Reading the image's own content failed (a blob missing from the store, …).
    #[error("scan: {0}")]
    Scan(String),
    /// The policy's key files or trust root could not be loaded.
    #[error("policy: {0}")]
    Policy(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// containerd reset the call's stream: its own answer, relayed as a reset with the
    /// same code (never turned into an evaluation failure).
    #[error("containerd reset the call ({0:?})")]
    Reset(h2::Reason),
}

impl GateError {
    /// Whether this is an outage that `on_error = "allow"` may let through: the registry
    /// unreachable, timing out or failing with a 5xx, or containerd down. What the image
    /// or its registry serves, our own broken configuration, the store and the scan never
    /// are (no `_` arm: a new variant needs a decision).
    pub fn is_outage(&self) -> bool {
        match self {
            GateError::Registry(_) | GateError::Containerd(_) => true,
            GateError::RegistryContent(_)
            | GateError::Reset(_)
            | GateError::Store(_)
            | GateError::Scan(_)
            | GateError::Policy(_)
            | GateError::Internal(_) => false,
        }
    }
}

/// The policies in force with their fingerprints; replaced whole on reload.
pub struct PolicyState {
    pub config: Arc<Config>,
    fingerprints: HashMap<String, Result<String, String>>,
}

impl PolicyState {
    /// Fingerprints every policy now (reading key files), so a pull never pays for it.
    pub fn new<E: std::fmt::Display>(
        config: Arc<Config>,
        fingerprint: impl Fn(&Policy) -> Result<String, E>,
    ) -> PolicyState {
        let fingerprints = config
            .policies
            .iter()
            .map(|p| (p.name.clone(), fingerprint(p).map_err(|e| e.to_string())))
            .collect();
        PolicyState {
            config,
            fingerprints,
        }
    }

    pub fn fingerprint(&self, policy: &str) -> Result<&str, GateError> {
        match self.fingerprints.get(policy) {
            Some(Ok(f)) => Ok(f),
            Some(Err(e)) => Err(GateError::Policy(e.clone())),
            None => Err(GateError::Policy(format!(
                "policy {policy:?} is not loaded"
            ))),
        }
    }
}

/// What an evaluation ends in, shared by every caller that joined it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Pass containerd's answer on (allowed, audited, or containerd's own error).
    Forward(BufferedResponse),
    /// Answer with this status.
    Refuse(tonic::Code, String),
}

pub struct Gate {
    policies: RwLock<Arc<PolicyState>>,
    signatures: Arc<dyn SignatureSource>,
    scanner: Arc<dyn ImageScanner>,
    verdicts: Arc<dyn VerdictCache>,
    images: Arc<dyn ImageStore>,
    flights: flight::Group<VerdictKey, Result<Outcome, GateError>>,
    clock: fn() -> OffsetDateTime,
    metrics: Arc<Metrics>,
    allowed_names: AllowedNames,
}

/// Image name → the digest it had when last allowed (under a policy fingerprint).
/// Only a hint for finding the stored verdict: every answer from it is bound to what
/// containerd actually stored. Bounded: cleared whole when full.
#[derive(Default)]
struct AllowedNames(std::sync::Mutex<HashMap<(String, String), crate::digest::Digest>>);

const ALLOWED_NAMES_MAX: usize = 10_000;

impl AllowedNames {
    fn get(&self, name: &str, fingerprint: &str) -> Option<crate::digest::Digest> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(name.to_string(), fingerprint.to_string()))
            .cloned()
    }

    fn put(&self, name: String, fingerprint: &str, digest: crate::digest::Digest) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= ALLOWED_NAMES_MAX {
            map.clear();
        }
        map.insert((name, fingerprint.to_string()), digest);
    }
}

struct PullCtx {
    reference: Reference,
    /// The image string exactly as the kubelet sent it (used in messages).
    requested: String,
    auth: Option<k8s_cri::v1::AuthConfig>,
    policy: Policy,
    /// The policy fingerprint as verdict keys carry it: scoped to the repository when
    /// the policy requires signatures (see [`verdict_scope`]).
    fingerprint: String,
    /// `server.recheck_denied_after` of the config this pull runs under.
    recheck_denied_after: std::time::Duration,
    call: Arc<InterceptedCall>,
    upstream: Arc<Upstream>,
}

impl Gate {
    pub fn new(
        policies: PolicyState,
        signatures: Arc<dyn SignatureSource>,
        scanner: Arc<dyn ImageScanner>,
        verdicts: Arc<dyn VerdictCache>,
        images: Arc<dyn ImageStore>,
    ) -> Gate {
        Gate {
            policies: RwLock::new(Arc::new(policies)),
            signatures,
            scanner,
            verdicts,
            images,
            flights: flight::Group::default(),
            clock: OffsetDateTime::now_utc,
            metrics: Arc::new(Metrics::new()),
            allowed_names: AllowedNames::default(),
        }
    }

    /// Counts pulls, errors and latencies into `metrics` (served on `/metrics`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Gate {
        self.metrics = metrics;
        self
    }

    pub fn policies(&self) -> Arc<PolicyState> {
        self.policies
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn set_policies(&self, state: PolicyState) {
        let state = Arc::new(state);
        match self.policies.write() {
            Ok(mut w) => *w = state,
            Err(p) => *p.into_inner() = state,
        }
    }

    async fn pull(
        self: Arc<Self>,
        call: InterceptedCall,
        upstream: Arc<Upstream>,
    ) -> http::Response<BoxBody> {
        let req = match call.decode::<PullImageRequest>("PullImage") {
            Ok(r) => r,
            Err(e) => return grpc::status_response(e.to_status()),
        };
        let requested = req
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let namespace = req
            .sandbox_config
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .map(|m| m.namespace.clone())
            .unwrap_or_default();
        let reference: Reference = match requested.parse() {
            Ok(r) => r,
            Err(e) => {
                return grpc::status_response(tonic::Status::invalid_argument(format!(
                    "pullwarden: {e}"
                )));
            }
        };
        let state = self.policies();
        let policy = match state.config.policy_for(&reference.to_string(), &namespace) {
            Some(p) if p.mode != Mode::Off => p.clone(),
            _ => return cri::forward(&upstream, call.into_request()).await,
        };
        let fingerprint = state
            .fingerprint(&policy.name)
            .map(|fp| verdict_scope(&policy, fp, &reference));
        let ctx = Arc::new(PullCtx {
            reference,
            requested,
            auth: req.auth,
            policy,
            fingerprint: fingerprint.clone().unwrap_or_default(),
            recheck_denied_after: state.config.server.recheck_denied_after,
            call: Arc::new(call),
            upstream,
        });
        let outcome = match fingerprint {
            Ok(_) => self.clone().decide(ctx.clone()).await,
            Err(e) => Err(e),
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(GateError::Reset(reason)) => return crate::cri::relay::reset_response(reason),
            Err(e) => self.error_outcome(&ctx, e).await,
        };
        match outcome {
            Outcome::Forward(resp) => resp.to_response(),
            Outcome::Refuse(code, msg) => grpc::status_response(tonic::Status::new(code, msg)),
        }
    }

    async fn decide(self: Arc<Self>, ctx: Arc<PullCtx>) -> Result<Outcome, GateError> {
        let name = ctx.reference.containerd_name();
        let db_version = self.scanner.db_version();
        let key_for = |digest: &crate::digest::Digest| VerdictKey {
            digest: digest.to_string(),
            policy_fingerprint: ctx.fingerprint.clone(),
            db_version: db_version.clone(),
        };
        // Already in containerd with a verdict: answer without asking the registry. The
        // digest this name had at its last allowed pull saves asking containerd; the
        // bind check after the pull catches a name that has moved since.
        let remembered = self.allowed_names.get(&name, &ctx.fingerprint);
        let present = match remembered {
            Some(d) => Some(d),
            None => self.images.target(&name).await?.map(|t| t.digest),
        };
        if let Some(present) = present
            && let Some(v) = self.lookup(&key_for(&present)).await?
            && let Some(o) = self.answer_from_verdict(&ctx, &v, &present).await?
        {
            self.record(&ctx, &v, "cached");
            return Ok(o);
        }
        let resolved = self
            .signatures
            .resolve(&ctx.reference, ctx.auth.as_ref())
            .await?;
        let key = key_for(&resolved.digest);
        let resolved_digest = resolved.digest.clone();
        if let Some(v) = self.lookup(&key).await?
            && let Some(o) = self.answer_from_verdict(&ctx, &v, &resolved.digest).await?
        {
            self.record(&ctx, &v, "cached");
            return Ok(o);
        }
        let this = self.clone();
        let c = ctx.clone();
        let (result, role) = self
            .flights
            .run(
                key.clone(),
                move || async move { this.evaluate(c, resolved, key).await },
                |panic| Err(GateError::Internal(panic)),
            )
            .await;
        if role != flight::Role::Joined {
            return result;
        }
        tracing::debug!(image = %ctx.requested, "joined an evaluation in flight");
        // The evaluation pulled the leader's name; this caller may have asked for the
        // same image by another (a tag and a digest at once): that name must be in
        // containerd too, bound to the digest that was judged.
        let result = match result {
            Ok(Outcome::Forward(resp)) if resp.code() == tonic::Code::Ok => {
                self.bind_joined_name(&ctx, &resolved_digest, resp).await
            }
            other => other,
        };
        let mode = evaluate::mode_name(ctx.policy.mode);
        let decision = match &result {
            Ok(Outcome::Forward(_)) => Some(Decision::Allow),
            Ok(Outcome::Refuse(..)) => Some(Decision::Deny),
            Err(_) => None,
        };
        if let Some(d) = decision {
            self.metrics.record_pull(&ctx.policy.name, mode, d, true);
        }
        self.verdicts.record(&DecisionEvent {
            at: evaluate::rfc3339((self.clock)()),
            reference: ctx.reference.to_string(),
            digest: resolved_digest.to_string(),
            policy: ctx.policy.name.clone(),
            mode: mode.into(),
            decision: match decision {
                Some(Decision::Allow) => "allow".into(),
                Some(Decision::Deny) => "deny".into(),
                None => "error".into(),
            },
            how: "shared".into(),
            reasons: Vec::new(),
        });
        result
    }

    /// A stored verdict answers the pull: a deny at once (nothing is pulled), an allow
    /// by letting containerd pull and checking it stored the digest the verdict is for.
    /// `None` means the tag moved under us: evaluate afresh.
    async fn answer_from_verdict(
        &self,
        ctx: &PullCtx,
        v: &Verdict,
        digest: &crate::digest::Digest,
    ) -> Result<Option<Outcome>, GateError> {
        if self.recheck_due(ctx, v) {
            tracing::info!(image = %ctx.requested, digest = %digest, decided_at = %v.decided_at,
                "a signature deny is older than server.recheck_denied_after: verifying again");
            return Ok(None);
        }
        if v.decision == Decision::Deny && ctx.policy.mode == Mode::Enforce {
            self.remove_if_present(ctx).await?;
            let (code, msg) = messages::deny(&ctx.requested, v);
            return Ok(Some(Outcome::Refuse(code, msg)));
        }
        let resp = self.forward_buffered(ctx).await?;
        if resp.code() != tonic::Code::Ok {
            return Ok(Some(Outcome::Forward(resp)));
        }
        match self.images.target(&ctx.reference.containerd_name()).await? {
            Some(t) if &t.digest == digest => Ok(Some(Outcome::Forward(resp))),
            _ => Ok(None),
        }
    }

    /// Whether a stored verdict is a deny that rests on what the registry says (no
    /// signature, no trusted signer, a signature that failed to verify: CI pipelines sign
    /// after the push, a registry recovers) and is older than
    /// `server.recheck_denied_after`. Such a verdict is re-evaluated, which reads
    /// signatures only until they pass; denies from the image's own bytes stay cached.
    fn recheck_due(&self, ctx: &PullCtx, v: &Verdict) -> bool {
        if v.decision != Decision::Deny || v.deny_kind != Some(crate::policy::DenyKind::Signature) {
            return false;
        }
        let decided = OffsetDateTime::parse(
            &v.decided_at,
            &time::format_description::well_known::Rfc3339,
        );
        match decided {
            Ok(at) => (self.clock)() - at >= ctx.recheck_denied_after,
            // A timestamp we cannot read cannot show the verdict is fresh.
            Err(_) => true,
        }
    }

    /// A joined caller's own name, after the evaluation it shared allowed the image:
    /// already bound to the judged digest in containerd, or pulled now (the content is
    /// there, so containerd only records the name) and bound by digest like any pull.
    async fn bind_joined_name(
        &self,
        ctx: &PullCtx,
        judged: &crate::digest::Digest,
        shared: BufferedResponse,
    ) -> Result<Outcome, GateError> {
        let name = ctx.reference.containerd_name();
        if let Some(t) = self.images.target(&name).await?
            && &t.digest == judged
        {
            return Ok(Outcome::Forward(shared));
        }
        let resp = self.forward_buffered(ctx).await?;
        if resp.code() != tonic::Code::Ok {
            return Ok(Outcome::Forward(resp));
        }
        match self.images.target(&name).await? {
            Some(t) if &t.digest == judged => Ok(Outcome::Forward(resp)),
            stored => {
                if ctx.policy.mode == Mode::Enforce {
                    self.remove(ctx).await?;
                }
                let stored = stored.map(|t| t.digest).unwrap_or_else(|| judged.clone());
                let (code, msg) = messages::moved(&ctx.requested, judged, &stored);
                Ok(Outcome::Refuse(code, msg))
            }
        }
    }

    async fn evaluate(
        self: Arc<Self>,
        ctx: Arc<PullCtx>,
        resolved: ResolvedImage,
        key: VerdictKey,
    ) -> Result<Outcome, GateError> {
        let policy = &ctx.policy;
        let name = ctx.reference.to_string();
        let digest = resolved.digest.to_string();
        let platform = resolved.platform_digest.as_ref().map(|d| d.to_string());
        let subject = Subject {
            reference: &name,
            digest: &digest,
            platform_digest: platform.as_deref(),
        };
        let keys = Keys {
            policy_fingerprint: &key.policy_fingerprint,
            db_version: &key.db_version,
        };
        // Signatures first: an image nobody trusted signed costs no download.
        let signatures = match &policy.signatures {
            Some(_) => {
                let started = std::time::Instant::now();
                let report = self
                    .signatures
                    .verify(policy, &ctx.reference, &resolved, ctx.auth.as_ref())
                    .await?;
                self.metrics.observe_verify(started.elapsed().as_secs_f64());
                report
            }
            None => SignatureReport {
                required: false,
                satisfied: true,
                ..Default::default()
            },
        };
        if signatures.required && !signatures.satisfied && policy.mode == Mode::Enforce {
            let v = evaluate::evaluate(policy, &subject, signatures, None, &keys, (self.clock)());
            self.store(&key, &v).await?;
            self.record(&ctx, &v, "evaluated");
            // Nothing was pulled for this verdict, but the name may already point
            // somewhere in containerd (side-loaded, or a tag that moved): take it out.
            self.remove_if_present(&ctx).await?;
            let (code, msg) = messages::deny(&ctx.requested, &v);
            return Ok(Outcome::Refuse(code, msg));
        }

        let resp = self.forward_buffered(&ctx).await?;
        if resp.code() != tonic::Code::Ok {
            // containerd's own failure (not found, auth, …): its answer, nothing judged.
            return Ok(Outcome::Forward(resp));
        }
        // From here the image is in containerd: whatever goes wrong, an enforcing
        // policy takes it out again.
        match self
            .judge_pulled(&ctx, &resolved, &subject, signatures, &keys, &key)
            .await
        {
            Ok(v) => {
                if v.decision == Decision::Deny && policy.mode == Mode::Enforce {
                    self.remove(&ctx).await?;
                    let (code, msg) = messages::deny(&ctx.requested, &v);
                    Ok(Outcome::Refuse(code, msg))
                } else {
                    Ok(Outcome::Forward(resp))
                }
            }
            Err(Moved(stored)) => {
                if policy.mode == Mode::Enforce {
                    self.remove(&ctx).await?;
                }
                let (code, msg) = messages::moved(&ctx.requested, &resolved.digest, &stored);
                Ok(Outcome::Refuse(code, msg))
            }
            Err(Failed(e)) => Err(self.after_pull_failure(&ctx, e).await),
        }
    }

    async fn judge_pulled(
        &self,
        ctx: &PullCtx,
        resolved: &ResolvedImage,
        subject: &Subject<'_>,
        signatures: SignatureReport,
        keys: &Keys<'_>,
        key: &VerdictKey,
    ) -> Result<Verdict, PostPull> {
        // containerd answered the pull: an image it then does not have is no outage, and
        // never fails open.
        let target = self
            .images
            .target(&ctx.reference.containerd_name())
            .await
            .map_err(Failed)?
            .ok_or_else(|| {
                Failed(GateError::Internal(format!(
                    "{} missing from containerd right after its pull",
                    ctx.reference.containerd_name()
                )))
            })?;
        // Bind by digest: what containerd stored must be what was verified.
        if target.digest != resolved.digest {
            return Err(Moved(target.digest));
        }
        let judged = if ctx.policy.scan.enabled {
            let started = std::time::Instant::now();
            let judged = self
                .scanner
                .scan(&ctx.policy, &target)
                .await
                .map_err(Failed)?;
            let bytes = judged
                .report
                .layers
                .iter()
                .map(|l| l.uncompressed_bytes)
                .sum();
            self.metrics
                .observe_scan(started.elapsed().as_secs_f64(), bytes);
            Some(judged)
        } else {
            None
        };
        let v = evaluate::evaluate(
            &ctx.policy,
            subject,
            signatures,
            judged,
            keys,
            (self.clock)(),
        );
        self.store(key, &v).await.map_err(Failed)?;
        self.record(ctx, &v, "evaluated");
        Ok(v)
    }

    /// A failure after containerd stored the image: under an enforcing, fail-closed
    /// policy the unjudged image must not stay behind.
    async fn after_pull_failure(&self, ctx: &PullCtx, e: GateError) -> GateError {
        if ctx.policy.mode == Mode::Enforce
            && !fails_open(&ctx.policy, &e)
            && let Err(re) = self.remove(ctx).await
        {
            tracing::error!(image = %ctx.requested, error = %re, "could not remove an unjudged image");
        }
        e
    }

    async fn error_outcome(&self, ctx: &PullCtx, e: GateError) -> Outcome {
        self.metrics.record_error(match &e {
            GateError::Registry(_) | GateError::RegistryContent(_) => "registry",
            GateError::Containerd(_) => "containerd",
            GateError::Store(_) => "store",
            GateError::Scan(_) => "scan",
            GateError::Policy(_) => "policy",
            GateError::Internal(_) => "internal",
            GateError::Reset(_) => "containerd",
        });
        tracing::error!(
            target: "pullwarden::audit",
            reference = %ctx.reference,
            policy = %ctx.policy.name,
            error = %e,
            on_error = ?ctx.policy.on_error,
            "evaluation failed"
        );
        self.verdicts.record(&DecisionEvent {
            at: evaluate::rfc3339((self.clock)()),
            reference: ctx.reference.to_string(),
            digest: String::new(),
            policy: ctx.policy.name.clone(),
            mode: evaluate::mode_name(ctx.policy.mode).into(),
            decision: "error".into(),
            how: "error".into(),
            reasons: vec![e.to_string()],
        });
        if fails_open(&ctx.policy, &e) {
            // Fail open, as configured, for an outage only. Nothing is cached.
            return match self.forward_buffered(ctx).await {
                Ok(r) => Outcome::Forward(r),
                Err(e2) => {
                    let (code, msg) = messages::infrastructure(&ctx.requested, &e2);
                    Outcome::Refuse(code, msg)
                }
            };
        }
        let (code, msg) = messages::infrastructure(&ctx.requested, &e);
        Outcome::Refuse(code, msg)
    }

    async fn forward_buffered(&self, ctx: &PullCtx) -> Result<BufferedResponse, GateError> {
        buffered(&ctx.upstream, ctx.call.clone_request()).await
    }

    /// Removes the image through containerd's CRI (so the CRI plugin's own image
    /// index stays in step), by the name it was pulled as.
    async fn remove(&self, ctx: &PullCtx) -> Result<(), GateError> {
        let msg = RemoveImageRequest {
            image: Some(k8s_cri::v1::ImageSpec {
                image: ctx.reference.containerd_name(),
                ..Default::default()
            }),
        };
        let req = http::Request::builder()
            .method("POST")
            .uri("http://localhost/runtime.v1.ImageService/RemoveImage")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(grpc::full_body(grpc::frame(&msg.encode_to_vec()), None))
            .map_err(|e| GateError::Internal(e.to_string()))?;
        // Our own call: a frozen containerd must not hold the evaluation (and every
        // pull that joined it) forever.
        let resp = tokio::time::timeout(REMOVE_TIMEOUT, buffered(&ctx.upstream, req))
            .await
            .map_err(|_| {
                GateError::Containerd(format!(
                    "RemoveImage {} did not answer within {REMOVE_TIMEOUT:?}",
                    ctx.reference
                ))
            })??;
        match resp.code() {
            tonic::Code::Ok | tonic::Code::NotFound => Ok(()),
            code => Err(GateError::Containerd(format!(
                "RemoveImage {}: {code:?} {}",
                ctx.reference,
                grpc::grpc_message(&resp.headers, resp.trailers.as_ref())
            ))),
        }
    }

    async fn remove_if_present(&self, ctx: &PullCtx) -> Result<(), GateError> {
        if self
            .images
            .target(&ctx.reference.containerd_name())
            .await?
            .is_some()
        {
            self.remove(ctx).await?;
        }
        Ok(())
    }

    /// A verdict read is a redb read transaction and one JSON decode (tens of µs), done
    /// in place: a hop to the blocking pool would cost about as much. Writes (fsync)
    /// go to the blocking pool.
    async fn lookup(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError> {
        self.verdicts.get(key)
    }

    async fn store(&self, key: &VerdictKey, v: &Verdict) -> Result<(), GateError> {
        let store = self.verdicts.clone();
        let (key, v) = (key.clone(), v.clone());
        tokio::task::spawn_blocking(move || store.put(&key, &v))
            .await
            .map_err(|e| GateError::Internal(e.to_string()))?
    }

    /// History event plus one JSON-friendly audit log line per decision.
    fn record(&self, ctx: &PullCtx, v: &Verdict, how: &str) {
        let decision = match v.decision {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        };
        self.metrics
            .record_pull(&v.policy, &v.mode, v.decision, how != "evaluated");
        if v.decision == Decision::Allow
            && let Ok(d) = v.digest.parse()
        {
            self.allowed_names
                .put(ctx.reference.containerd_name(), &ctx.fingerprint, d);
        }
        tracing::info!(
            target: "pullwarden::audit",
            reference = %ctx.requested,
            digest = %v.digest,
            policy = %v.policy,
            mode = %v.mode,
            decision,
            enforced = v.enforced,
            how,
            reasons = %crate::audit::JsonList(&v.reasons),
            "pull decision"
        );
        self.verdicts.record(&DecisionEvent {
            at: evaluate::rfc3339((self.clock)()),
            reference: ctx.reference.to_string(),
            digest: v.digest.clone(),
            policy: v.policy.clone(),
            mode: v.mode.clone(),
            decision: decision.into(),
            how: how.into(),
            reasons: v.reasons.clone(),
        });
    }

    async fn status(
        self: Arc<Self>,
        call: InterceptedCall,
        upstream: Arc<Upstream>,
    ) -> http::Response<BoxBody> {
        let req = match call.decode::<ImageStatusRequest>("ImageStatus") {
            Ok(r) => r,
            Err(e) => return grpc::status_response(e.to_status()),
        };
        let requested = req.image.map(|i| i.image).unwrap_or_default();
        if !self.may_hide(&requested) {
            // No enforcing policy can cover this image: containerd's answer as it streams.
            return cri::forward(&upstream, call.into_request()).await;
        }
        let resp = match buffered(&upstream, call.into_request()).await {
            Ok(r) => r,
            Err(GateError::Reset(reason)) => return crate::cri::relay::reset_response(reason),
            Err(e) => {
                let (code, msg) = messages::infrastructure("", &e);
                return grpc::status_response(tonic::Status::new(code, msg));
            }
        };
        if resp.code() != tonic::Code::Ok {
            return resp.to_response();
        }
        let Some(image) = grpc::single_message(&resp.body)
            .ok()
            .and_then(|m| ImageStatusResponse::decode(m).ok())
            .and_then(|r| r.image)
        else {
            return resp.to_response();
        };
        if self.admitted(&requested, &image).await {
            resp.to_response()
        } else {
            tracing::info!(image = %requested, "present in containerd without an allow verdict: reported absent");
            absent_response(&resp)
        }
    }

    /// Whether ImageStatus for `requested` might have to be answered "absent": some
    /// policy other than `off` could cover it. An image id (not a reference) is named
    /// only by containerd's answer, so it always might.
    fn may_hide(&self, requested: &str) -> bool {
        let state = self.policies();
        let active = state.config.policies.iter().filter(|p| p.mode != Mode::Off);
        match requested.parse::<Reference>() {
            Ok(r) if !is_image_id(requested) => {
                let name = r.to_string();
                active.into_iter().any(|p| p.matches_image(&name))
            }
            _ => active.count() > 0,
        }
    }

    /// Whether an image containerd has may be reported present: no enforcing policy
    /// covers it, or a current verdict admits it (allow, or a deny under audit). Asked by
    /// image id, the image is present when any of its names is admitted.
    async fn admitted(&self, requested: &str, image: &k8s_cri::v1::Image) -> bool {
        let state = self.policies();
        if state.config.policies.is_empty() {
            return true;
        }
        let asked = if is_image_id(requested) {
            None
        } else {
            requested.parse::<Reference>().ok()
        };
        let names: Vec<Reference> = match asked {
            Some(r) => vec![r],
            None => image
                .repo_tags
                .iter()
                .chain(image.repo_digests.iter())
                .filter_map(|t| t.parse::<Reference>().ok())
                .collect(),
        };
        if names.is_empty() {
            // No name at all: no policy can match it.
            return true;
        }
        // containerd's own answer names the image's digests (repo_digests): an allowed
        // image is admitted from those, without another containerd call. Only when none
        // admits is the name's current target asked for as well.
        let mut digests: Vec<String> = image
            .repo_digests
            .iter()
            .filter_map(|d| d.split_once('@').map(|(_, d)| d.to_string()))
            .collect();
        digests.sort();
        digests.dedup();
        for reference in &names {
            if self.name_admitted(&state, reference, &digests).await {
                return true;
            }
        }
        false
    }

    async fn name_admitted(
        &self,
        state: &PolicyState,
        reference: &Reference,
        digests: &[String],
    ) -> bool {
        let name = reference.to_string();
        // ImageStatus names no pod namespace: the image is present only when every
        // policy that could judge a pull of it admits it (an image allowed in `dev` is
        // not thereby present for a `prod` pod). Policies after one that covers every
        // namespace can never apply to this image.
        let mut matching: Vec<&Policy> = Vec::new();
        for p in state
            .config
            .policies
            .iter()
            .filter(|p| p.matches_image(&name))
        {
            matching.push(p);
            if p.namespaces.iter().any(|n| n == "*" || n == "**") {
                break;
            }
        }
        let judging: Vec<&Policy> = matching
            .into_iter()
            .filter(|p| p.mode != Mode::Off)
            .collect();
        if judging.is_empty() {
            return true;
        }
        let mut target: Option<String> = None;
        for p in judging {
            if self.admits(state, p, reference, digests).await {
                continue;
            }
            // The name's current target, asked of containerd once, when containerd's
            // own answer named other digests.
            if target.is_none()
                && let Ok(Some(t)) = self.images.target(&reference.containerd_name()).await
            {
                target = Some(t.digest.to_string());
            }
            match &target {
                Some(t) if !digests.contains(t) => {
                    if !self
                        .admits(state, p, reference, std::slice::from_ref(t))
                        .await
                    {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// Whether a current verdict for one of `digests` under `policy` (not off), for
    /// `reference`'s repository where the verdict rests on signatures, admits the image:
    /// an allow, or any verdict under audit.
    async fn admits(
        &self,
        state: &PolicyState,
        policy: &Policy,
        reference: &Reference,
        digests: &[String],
    ) -> bool {
        let Ok(fp) = state.fingerprint(&policy.name) else {
            return false;
        };
        let scope = verdict_scope(policy, fp, reference);
        let db_version = self.scanner.db_version();
        for d in digests {
            let key = VerdictKey {
                digest: d.clone(),
                policy_fingerprint: scope.clone(),
                db_version: db_version.clone(),
            };
            if let Ok(Some(v)) = self.lookup(&key).await
                && (v.decision == Decision::Allow || policy.mode == Mode::Audit)
            {
                return true;
            }
        }
        false
    }
}

/// `sha256:<hex>` or bare hex, which containerd may resolve as an image id (or an id
/// prefix): ImageStatus by id rather than by name, judged by the names containerd's
/// answer gives the image.
fn is_image_id(s: &str) -> bool {
    s.starts_with("sha256:")
        || (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

enum PostPull {
    Moved(crate::digest::Digest),
    Failed(GateError),
}
use PostPull::{Failed, Moved};

/// How long containerd may take to remove a denied image (it deletes metadata; the
/// content goes with its garbage collection).
const REMOVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a failed evaluation lets the pull through: always under `audit` (which never
/// blocks), and under `on_error = "allow"` for outages only ([`GateError::is_outage`]).
fn fails_open(policy: &Policy, e: &GateError) -> bool {
    policy.mode == Mode::Audit || (policy.on_error == OnError::Allow && e.is_outage())
}

/// The policy part of a verdict key. A signature binds a repository (cosign's
/// `docker-reference`), not only a digest: a verdict that rests on signatures holds only
/// for the repository it was verified for, so the same digest pushed to a second
/// repository is judged there on its own (never allowed, never denied, from the other's
/// verdict). Without a signature requirement the verdict rests on the bytes alone and is
/// shared by every name of the digest.
pub fn verdict_scope(policy: &Policy, fingerprint: &str, reference: &Reference) -> String {
    if policy.signatures.is_some() {
        let name = reference.name();
        format!("{fingerprint}@{}", crate::reference::canonical_host(&name))
    } else {
        fingerprint.to_string()
    }
}

/// Sends a request upstream and buffers the whole answer.
async fn buffered(
    upstream: &Upstream,
    req: http::Request<BoxBody>,
) -> Result<BufferedResponse, GateError> {
    let resp = upstream.send(req).await.map_err(|e| match e {
        crate::cri::ProxyError::UpstreamReset { reason, .. } => GateError::Reset(reason),
        e => GateError::Containerd(e.to_string()),
    })?;
    let (parts, body) = resp.into_parts();
    let (data, trailers) = grpc::collect_limited(body, 64 << 20)
        .await
        .map_err(|e| GateError::Containerd(e.to_string()))?;
    Ok(BufferedResponse {
        headers: parts.headers,
        body: data,
        trailers,
    })
}

/// An OK ImageStatus answer with no image: the kubelet then pulls through us.
fn absent_response(like: &BufferedResponse) -> http::Response<BoxBody> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        like.headers
            .get(http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(http::HeaderValue::from_static("application/grpc")),
    );
    BufferedResponse {
        headers,
        body: grpc::frame(&ImageStatusResponse::default().encode_to_vec()),
        trailers: Some(trailers),
    }
    .to_response()
}

impl ImageGate for Gate {
    fn pull_image(
        self: Arc<Self>,
        call: InterceptedCall,
        upstream: Arc<Upstream>,
    ) -> BoxFuture<'static, http::Response<BoxBody>> {
        Box::pin(self.pull(call, upstream))
    }

    fn image_status(
        self: Arc<Self>,
        call: InterceptedCall,
        upstream: Arc<Upstream>,
    ) -> BoxFuture<'static, http::Response<BoxBody>> {
        Box::pin(self.status(call, upstream))
    }
}
