//! The gate's seams implemented with the real parts: the verdict store (redb), and
//! (below) the registry verifier and the layer scanner.

use crate::gate::{DecisionEvent, GateError, VerdictCache, VerdictKey};
use crate::policy::{Decision, Verdict};
use crate::store::HistoryEvent;
use crate::store::VerdictStore;

impl VerdictCache for VerdictStore {
    fn get(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError> {
        VerdictStore::get(self, key).map_err(|e| GateError::Store(e.to_string()))
    }

    fn put(&self, key: &VerdictKey, v: &Verdict) -> Result<(), GateError> {
        VerdictStore::put(self, key, v).map_err(|e| GateError::Store(e.to_string()))
    }

    fn record(&self, e: &DecisionEvent) {
        let decision = match e.decision.as_str() {
            "allow" => Decision::Allow,
            "deny" => Decision::Deny,
            // Failed evaluations are logged and counted, not kept as decisions.
            _ => return,
        };
        let event = HistoryEvent {
            at: e.at.clone(),
            digest: e.digest.clone(),
            reference: e.reference.clone(),
            policy: e.policy.clone(),
            mode: e.mode.clone(),
            decision,
            deny_kind: None,
            cached: e.how != "evaluated",
        };
        if let Err(err) = VerdictStore::record(self, &event) {
            tracing::warn!(error = %err, "could not append to the decision history");
        }
    }
}
