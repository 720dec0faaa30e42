//! The PullImage flow: resolve → cached verdict → verify signatures before any layer
//! is pulled → pull → bind by digest → scan → verdict, one evaluation per digest at a
//! time (single flight), denied images removed again.

use std::sync::Arc;

use k8s_cri::v1::PullImageRequest;
use time::OffsetDateTime;

use super::error::GateError;
use super::{
    BufferedResponse, DecisionEvent, Gate, How, Outcome, ResolvedImage, VerdictKey, flight,
    messages, verdict_scope,
};
use crate::config::{Mode, OnError, Policy};
use crate::cri::{ImageService, InterceptedCall, Reply};
use crate::digest::Digest;
use crate::policy::evaluate::{self, Keys, Subject};
use crate::policy::{Decision, DenyKind, Verdict};
use crate::reference::Reference;
use crate::report::SignatureReport;
use crate::snapshot::LoadedPolicy;
use crate::store::ImageInventory;

struct PullCtx {
    reference: Reference,
    /// The image string exactly as the kubelet sent it (used in messages).
    requested: String,
    auth: Option<k8s_cri::v1::AuthConfig>,
    /// The policy as loaded: with the verifier, scanner and fingerprint of its files.
    policy: Arc<LoadedPolicy>,
    /// The policy fingerprint as verdict keys carry it: scoped to the repository when
    /// the policy requires signatures (see [`verdict_scope`]).
    fingerprint: String,
    /// `server.recheck_denied_after` of the config this pull runs under.
    recheck_denied_after: std::time::Duration,
    call: Arc<InterceptedCall>,
    images: Arc<dyn ImageService>,
}

impl Gate {
    pub(super) async fn pull(
        self: Arc<Self>,
        call: InterceptedCall,
        images: Arc<dyn ImageService>,
    ) -> Reply {
        let req = match call.decode::<PullImageRequest>("PullImage") {
            Ok(r) => r,
            Err(e) => return Reply::Status(e.to_status()),
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
                return Reply::Status(tonic::Status::invalid_argument(format!("pullwarden: {e}")));
            }
        };
        let state = self.policies();
        let policy = match crate::engine::policy_for(&state.config, &reference, &namespace) {
            Some(p) if p.mode != Mode::Off => state.policy(&p.name),
            _ => return Reply::Relay(call),
        };
        // The snapshot is built from the same config: every policy of it is loaded.
        let policy = match policy {
            Ok(p) => p,
            Err(e) => {
                let (code, message) = GateError::from(e).status(&requested);
                return Reply::Status(tonic::Status::new(code, message));
            }
        };
        let fingerprint = policy
            .fingerprint()
            .map(|fp| verdict_scope(&policy, fp, &reference))
            .map_err(GateError::from);
        let ctx = Arc::new(PullCtx {
            reference,
            requested,
            auth: req.auth,
            fingerprint: fingerprint.as_deref().unwrap_or_default().to_string(),
            policy,
            recheck_denied_after: state.config.server.recheck_denied_after,
            call: Arc::new(call),
            images,
        });
        let outcome = match fingerprint {
            Ok(_) => self.clone().decide(ctx.clone()).await,
            Err(e) => Err(Arc::new(e)),
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                // containerd's own answer to the call, relayed as it came.
                if let GateError::Reset(reason) = *e {
                    return Reply::Reset(reason);
                }
                self.error_outcome(&ctx, &e).await
            }
        };
        outcome.reply()
    }

    async fn decide(self: Arc<Self>, ctx: Arc<PullCtx>) -> Result<Outcome, Arc<GateError>> {
        let name = ctx.reference.containerd_name();
        let db_version = self.scanner.db_version();
        let key_for = |digest: &Digest| VerdictKey {
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
            && let Some(v) = self.lookup_for_pull(&key_for(&present)).await?
            && let Some(o) = self.answer_from_verdict(&ctx, &v, &present).await?
        {
            self.record(&ctx, &v, How::Cached);
            return Ok(o);
        }
        let resolved = self
            .signatures
            .resolve(&ctx.reference, ctx.auth.as_ref())
            .await?;
        let key = key_for(&resolved.digest);
        let resolved_digest = resolved.digest.clone();
        if let Some(v) = self.lookup_for_pull(&key).await?
            && let Some(o) = self.answer_from_verdict(&ctx, &v, &resolved.digest).await?
        {
            self.record(&ctx, &v, How::Cached);
            return Ok(o);
        }
        let this = self.clone();
        let c = ctx.clone();
        let (result, role) = self
            .flights
            .run(
                key.clone(),
                move || async move { this.evaluate(c, resolved, key).await.map_err(Arc::new) },
                |e| Err(Arc::new(GateError::Task(e))),
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
            Ok(Outcome::Forward(resp)) if resp.code() == tonic::Code::Ok => self
                .bind_joined_name(&ctx, &resolved_digest, resp)
                .await
                .map_err(Arc::new),
            other => other,
        };
        let decision = match &result {
            Ok(Outcome::Forward(_)) => Some(Decision::Allow),
            Ok(Outcome::Refuse(..)) => Some(Decision::Deny),
            Err(_) => None,
        };
        if let Some(d) = decision {
            self.metrics
                .record_pull(&ctx.policy.name, ctx.policy.mode.as_str(), d.as_str(), true);
        }
        self.verdicts.record(&DecisionEvent {
            at: evaluate::rfc3339((self.clock)()),
            reference: ctx.reference.to_string(),
            digest: Some(resolved_digest.clone()),
            policy: ctx.policy.name.clone(),
            mode: ctx.policy.mode,
            decision,
            how: How::Shared,
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
        digest: &Digest,
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
        if v.decision != Decision::Deny || v.deny_kind != Some(DenyKind::Signature) {
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
        judged: &Digest,
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
        let subject = Subject {
            reference: &name,
            digest: resolved.digest.clone(),
            platform_digest: resolved.platform_digest.clone(),
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
            let mut v =
                evaluate::evaluate(policy, &subject, signatures, None, &keys, (self.clock)());
            v.how = Some(How::Evaluated);
            self.store(&key, &v).await?;
            self.record(&ctx, &v, How::Evaluated);
            // Nothing was pulled for this verdict, but the name may already point
            // somewhere in containerd (side-loaded, or a tag that moved): take it out.
            self.remove_if_present(&ctx).await?;
            let (code, msg) = messages::deny(&ctx.requested, &v);
            return Ok(Outcome::Refuse(code, msg));
        }

        if policy.scan.enabled {
            self.scanner
                .prefetch(policy, &ctx.reference, &resolved, ctx.auth.as_ref());
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
                Failed(GateError::Vanished {
                    name: ctx.reference.containerd_name(),
                })
            })?;
        // Bind by digest: what containerd stored must be what was verified.
        if target.digest != resolved.digest {
            return Err(Moved(target.digest));
        }
        let mut scan_source = None;
        let mut judged = if ctx.policy.scan.enabled {
            let started = std::time::Instant::now();
            let (judged, source) = self
                .scanner
                .scan_pulled(&ctx.policy, &target, &ctx.reference, ctx.auth.as_ref())
                .await
                .map_err(Failed)?;
            self.metrics.record_scan_source(&source.kind);
            if let Some(lookup) = judged.vex_lookup {
                self.metrics.record_vex_lookup(lookup);
            }
            scan_source = Some(source);
            // An attested scan read no layer here.
            let bytes = if scan_source.as_ref().is_some_and(|s| s.kind == "attested") {
                0
            } else {
                judged
                    .report
                    .layers
                    .iter()
                    .map(|l| l.uncompressed_bytes)
                    .sum()
            };
            self.metrics
                .observe_scan(started.elapsed().as_secs_f64(), bytes);
            Some(judged)
        } else {
            None
        };
        // What the scan found stays with the verdict, so the image can be judged again
        // (a new database, another policy) without reading a layer.
        // So does the VEX the pull looked up, so re-judging applies the same.
        let inventory_report = judged.as_ref().map(|j| j.report.clone());
        let vex_sources = judged.as_mut().and_then(|j| j.vex_sources.take());
        let mut v = evaluate::evaluate(
            &ctx.policy,
            subject,
            signatures,
            judged,
            keys,
            (self.clock)(),
        );
        v.scan_source = scan_source;
        v.how = Some(How::Evaluated);
        self.store_with_inventory(ctx, key, &v, inventory_report, vex_sources)
            .await
            .map_err(Failed)?;
        self.record(ctx, &v, How::Evaluated);
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

    async fn error_outcome(&self, ctx: &PullCtx, e: &GateError) -> Outcome {
        self.metrics.record_error(e.metric_kind());
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
            digest: None,
            policy: ctx.policy.name.clone(),
            mode: ctx.policy.mode,
            decision: None,
            how: How::Error,
            reasons: vec![e.to_string()],
        });
        if fails_open(&ctx.policy, e) {
            // Fail open, as configured, for an outage only. Nothing is cached.
            return match self.forward_buffered(ctx).await {
                Ok(r) => Outcome::Forward(r),
                Err(e2) => {
                    let (code, msg) = e2.status(&ctx.requested);
                    Outcome::Refuse(code, msg)
                }
            };
        }
        let (code, msg) = e.status(&ctx.requested);
        Outcome::Refuse(code, msg)
    }

    async fn forward_buffered(&self, ctx: &PullCtx) -> Result<BufferedResponse, GateError> {
        Ok(ctx.images.forward(&ctx.call).await?)
    }

    /// Removes the image by the name it was pulled as.
    async fn remove(&self, ctx: &PullCtx) -> Result<(), GateError> {
        Ok(ctx
            .images
            .remove_image(&ctx.reference.containerd_name())
            .await?)
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
    pub(super) async fn lookup(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError> {
        self.verdicts.get(key)
    }

    /// The verdict a pull may answer from: [`Gate::lookup`], except a verdict made by
    /// re-judging the stored inventory (`how = "rescored"`). That one answers
    /// ImageStatus; a pull judges the image in full (signatures checked at the
    /// registry again, layers from the layer cache), so what a pull answers does not
    /// depend on whether a re-judging has finished yet.
    async fn lookup_for_pull(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError> {
        Ok(self
            .lookup(key)
            .await?
            .filter(|v| v.how != Some(How::Rescored)))
    }

    async fn store(&self, key: &VerdictKey, v: &Verdict) -> Result<(), GateError> {
        let store = self.verdicts.clone();
        let (key, v) = (key.clone(), v.clone());
        tokio::task::spawn_blocking(move || store.put(&key, &v))
            .await
            .map_err(GateError::Task)?
    }

    /// [`Gate::store`] with the image's inventory ([`crate::store::ImageInventory`]).
    async fn store_with_inventory(
        &self,
        ctx: &PullCtx,
        key: &VerdictKey,
        v: &Verdict,
        report: Option<crate::report::ScanReport>,
        vex: Option<Vec<crate::vex::VexSource>>,
    ) -> Result<(), GateError> {
        let store = self.verdicts.clone();
        let (key, v) = (key.clone(), v.clone());
        let (policy, reference) = (ctx.policy.clone(), ctx.reference.clone());
        tokio::task::spawn_blocking(move || {
            let inventory = ImageInventory::of_pull(&v, &policy, &reference, report, vex);
            store.put_with_inventory(&key, &v, &inventory)
        })
        .await
        .map_err(GateError::Task)?
    }

    /// History event plus one JSON-friendly audit log line per decision.
    fn record(&self, ctx: &PullCtx, v: &Verdict, how: How) {
        self.metrics.record_pull(
            &v.policy,
            v.mode.as_str(),
            v.decision.as_str(),
            how != How::Evaluated,
        );
        if v.decision == Decision::Allow {
            self.allowed_names.put(
                ctx.reference.containerd_name(),
                &ctx.fingerprint,
                v.digest.clone(),
            );
        }
        crate::gate::audit_decision(&ctx.requested, v, how);
        self.verdicts.record(&DecisionEvent {
            at: evaluate::rfc3339((self.clock)()),
            reference: ctx.reference.to_string(),
            digest: Some(v.digest.clone()),
            policy: v.policy.clone(),
            mode: v.mode,
            decision: Some(v.decision),
            how,
            reasons: v.reasons.clone(),
        });
    }
}

enum PostPull {
    Moved(Digest),
    Failed(GateError),
}
use PostPull::{Failed, Moved};

/// Whether a failed evaluation lets the pull through: always under `audit` (which never
/// blocks), and under `on_error = "allow"` for outages only ([`GateError::is_outage`]).
fn fails_open(policy: &Policy, e: &GateError) -> bool {
    policy.mode == Mode::Audit || (policy.on_error == OnError::Allow && e.is_outage())
}
