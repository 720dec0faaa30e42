//! The verdict store (redb) as the gate's [`VerdictCache`].

use crate::gate::{DecisionEvent, GateError, How, VerdictCache, VerdictKey};
use crate::policy::Verdict;
use crate::store::HistoryEvent;
use crate::store::VerdictStore;

impl VerdictCache for VerdictStore {
    fn get(&self, key: &VerdictKey) -> Result<Option<Verdict>, GateError> {
        VerdictStore::get(self, key).map_err(GateError::Store)
    }

    fn put(&self, key: &VerdictKey, v: &Verdict) -> Result<(), GateError> {
        VerdictStore::put(self, key, v).map_err(GateError::Store)
    }

    fn put_with_inventory(
        &self,
        key: &VerdictKey,
        v: &Verdict,
        inventory: &crate::store::ImageInventory,
    ) -> Result<(), GateError> {
        VerdictStore::put_with_inventory(self, key, v, inventory).map_err(GateError::Store)
    }

    fn record(&self, e: &DecisionEvent) {
        // Failed evaluations are logged and counted, not kept as decisions.
        let (Some(decision), Some(digest)) = (e.decision, &e.digest) else {
            return;
        };
        let event = HistoryEvent {
            at: e.at.clone(),
            digest: digest.to_string(),
            reference: e.reference.clone(),
            policy: e.policy.clone(),
            mode: e.mode.as_str().to_string(),
            decision,
            deny_kind: None,
            cached: e.how != How::Evaluated,
            how: Some(e.how),
        };
        if let Err(err) = VerdictStore::record(self, &event) {
            tracing::warn!(error = %err, "could not append to the decision history");
        }
    }
}
