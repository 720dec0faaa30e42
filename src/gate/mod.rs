//! The gate: the PullImage and ImageStatus flows of DESIGN.md. Resolve → cached
//! verdict → verify signatures before any layer is pulled → pull → bind by digest →
//! scan → verdict, one evaluation per digest at a time, denied images removed again.
//!
//! An orchestrator only: every outside part is a seam ([`seams`]; containerd's CRI is
//! [`crate::cri::ImageService`]), the adapters to the real parts live in [`adapters`],
//! and no wire format is built here. `pull.rs` and `status.rs` are the two flows,
//! `error.rs` the failures and the one mapping of them to answers.

pub mod adapters;
pub mod error;
pub mod flight;
pub mod messages;
pub mod policies;
mod pull;
pub mod seams;
mod status;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures::future::BoxFuture;
use time::OffsetDateTime;

use crate::cri::{ImageGate, ImageService, InterceptedCall, Reply};
use crate::digest::Digest;
use crate::metrics::Metrics;

pub use crate::cri::BufferedResponse;
/// The policies in force, as the gate holds them: one load's snapshot.
pub use crate::snapshot::PolicySnapshot as PolicyState;
pub use error::{GateError, PolicyError};
pub use policies::verdict_scope;
pub use seams::{
    DecisionEvent, How, ImageScanner, ImageStore, ResolvedImage, SignatureSource, VerdictCache,
    VerdictKey,
};

/// What an evaluation ends in, shared by every caller that joined it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Pass containerd's answer on (allowed, audited, or containerd's own error).
    Forward(BufferedResponse),
    /// Answer with this status.
    Refuse(tonic::Code, String),
}

impl Outcome {
    fn reply(self) -> Reply {
        match self {
            Outcome::Forward(resp) => Reply::Answer(resp),
            Outcome::Refuse(code, msg) => Reply::Status(tonic::Status::new(code, msg)),
        }
    }
}

pub struct Gate {
    policies: RwLock<Arc<PolicyState>>,
    signatures: Arc<dyn SignatureSource>,
    scanner: Arc<dyn ImageScanner>,
    verdicts: Arc<dyn VerdictCache>,
    images: Arc<dyn ImageStore>,
    flights: flight::Group<VerdictKey, Result<Outcome, Arc<GateError>>>,
    clock: fn() -> OffsetDateTime,
    metrics: Arc<Metrics>,
    allowed_names: AllowedNames,
}

/// Image name → the digest it had when last allowed (under a policy fingerprint).
/// Only a hint for finding the stored verdict: every answer from it is bound to what
/// containerd actually stored. Bounded: cleared whole when full.
#[derive(Default)]
struct AllowedNames(std::sync::Mutex<HashMap<(String, String), Digest>>);

const ALLOWED_NAMES_MAX: usize = 10_000;

impl AllowedNames {
    fn get(&self, name: &str, fingerprint: &str) -> Option<Digest> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(name.to_string(), fingerprint.to_string()))
            .cloned()
    }

    fn put(&self, name: String, fingerprint: &str, digest: Digest) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= ALLOWED_NAMES_MAX {
            map.clear();
        }
        map.insert((name, fingerprint.to_string()), digest);
    }
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

    /// Reads the time from `clock` (tests: a fixed or stepped clock).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Gate {
        self.clock = clock;
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
}

impl ImageGate for Gate {
    fn pull_image(
        self: Arc<Self>,
        call: InterceptedCall,
        images: Arc<dyn ImageService>,
    ) -> BoxFuture<'static, Reply> {
        Box::pin(self.pull(call, images))
    }

    fn image_status(
        self: Arc<Self>,
        call: InterceptedCall,
        images: Arc<dyn ImageService>,
    ) -> BoxFuture<'static, Reply> {
        Box::pin(self.status(call, images))
    }
}

/// The audit log line of one decision (`target: "pullwarden::audit"`): `pull decision`
/// for a pull (`how` evaluated, cached or shared), `rescore decision` for a verdict made
/// again from the stored inventory. `reference` is the name as the client asked for it.
pub fn audit_decision(reference: &str, v: &crate::policy::Verdict, how: How) {
    let what = if how == How::Rescored {
        "rescore"
    } else {
        "pull"
    };
    tracing::info!(
        target: "pullwarden::audit",
        reference = %reference,
        digest = %v.digest,
        policy = %v.policy,
        mode = %v.mode,
        decision = v.decision.as_str(),
        enforced = v.enforced,
        how = how.as_str(),
        reasons = %crate::audit::JsonList(&v.reasons),
        "{what} decision"
    );
}
