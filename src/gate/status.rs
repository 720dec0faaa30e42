//! The ImageStatus flow: an image containerd has is reported present only when no
//! enforcing policy covers it or a current verdict admits it; otherwise "absent", so
//! the kubelet pulls it through the gate. A re-judged deny (`how = "rescored"`) hides
//! the image only under `[server] rescore = "enforce"`.

use std::sync::Arc;

use k8s_cri::v1::ImageStatusRequest;

use super::{Gate, GateError, PolicyState, VerdictKey, verdict_scope};
use crate::config::{Mode, Policy, Rescore};
use crate::cri::{ImageService, InterceptedCall, Reply};
use crate::policy::Decision;
use crate::reference::Reference;

impl Gate {
    pub(super) async fn status(
        self: Arc<Self>,
        call: InterceptedCall,
        images: Arc<dyn ImageService>,
    ) -> Reply {
        let req = match call.decode::<ImageStatusRequest>("ImageStatus") {
            Ok(r) => r,
            Err(e) => return Reply::Status(e.to_status()),
        };
        let requested = req.image.map(|i| i.image).unwrap_or_default();
        if !self.may_hide(&requested) {
            // No enforcing policy can cover this image: containerd's answer as it streams.
            return Reply::Relay(call);
        }
        let resp = match images.forward(&call).await.map_err(GateError::from) {
            Ok(r) => r,
            Err(GateError::Reset(reason)) => return Reply::Reset(reason),
            Err(e) => {
                let (code, msg) = e.status("");
                return Reply::Status(tonic::Status::new(code, msg));
            }
        };
        if resp.code() != tonic::Code::Ok {
            return Reply::Answer(resp);
        }
        let Some(image) = resp.status_image() else {
            return Reply::Answer(resp);
        };
        if self.admitted(&requested, &image).await {
            Reply::Answer(resp)
        } else {
            tracing::info!(image = %requested, "present in containerd without an allow verdict: reported absent");
            Reply::Answer(images.image_absent(&resp))
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
                && (v.decision == Decision::Allow
                    || policy.mode == Mode::Audit
                    || reported_only(&v, state.config.server.rescore))
            {
                return true;
            }
        }
        false
    }
}

/// A deny reached by re-judging a present image (`how = "rescored"`) under
/// `[server] rescore = "report"`: recorded, but the image stays present. Under
/// `"enforce"` it is reported absent like any deny, so no new container starts from it.
fn reported_only(v: &crate::policy::Verdict, rescore: Rescore) -> bool {
    v.how == Some(crate::gate::How::Rescored) && rescore == Rescore::Report
}

/// `sha256:<hex>` or bare hex, which containerd may resolve as an image id (or an id
/// prefix): ImageStatus by id rather than by name, judged by the names containerd's
/// answer gives the image.
fn is_image_id(s: &str) -> bool {
    s.starts_with("sha256:")
        || (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}
