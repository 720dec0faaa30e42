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

// ------------------------------------------------------------------ signatures

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::config::Policy;
use crate::gate::{ResolvedImage, SignatureSource};
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::SignatureReport;
use crate::verify::{ImageDigests, Verifier, VerifyError};

/// Signatures from the registry, verified with the policy's keys and trust root.
/// Verifiers (parsed keys, trust roots) are built once per policy and dropped on
/// reload, so key rotation takes effect with `pullwarden reload`.
pub struct RegistrySignatures {
    client: RegistryClient,
    verifiers: Mutex<HashMap<String, Arc<Verifier>>>,
}

impl RegistrySignatures {
    pub fn new(client: RegistryClient) -> RegistrySignatures {
        RegistrySignatures {
            client,
            verifiers: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// Forgets loaded keys and trust roots (config reload).
    pub fn reset(&self) {
        self.verifiers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn verifier(&self, policy: &Policy) -> Result<Arc<Verifier>, GateError> {
        let Some(sig) = &policy.signatures else {
            return Err(GateError::Policy(format!(
                "policy {} has no signatures section",
                policy.name
            )));
        };
        let mut map = self.verifiers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = map.get(&policy.name) {
            return Ok(v.clone());
        }
        let v = Arc::new(Verifier::load(sig).map_err(|e| GateError::Policy(e.to_string()))?);
        map.insert(policy.name.clone(), v.clone());
        Ok(v)
    }
}

fn creds(auth: Option<&k8s_cri::v1::AuthConfig>) -> Credentials {
    auth.map(Credentials::from).unwrap_or_default()
}

/// The one mapping from verification failures that are not verdicts to gate errors.
fn verify_error(e: VerifyError) -> GateError {
    match e {
        VerifyError::Registry(r) => GateError::Registry(r.to_string()),
        VerifyError::NoPlatform { .. } | VerifyError::BadIndex { .. } => {
            GateError::Registry(e.to_string())
        }
        VerifyError::Key { .. } | VerifyError::TrustRoot { .. } => GateError::Policy(e.to_string()),
    }
}

#[async_trait]
impl SignatureSource for RegistrySignatures {
    async fn resolve(
        &self,
        reference: &Reference,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<ResolvedImage, GateError> {
        let digests = crate::verify::resolve_image(&self.client, reference, &creds(auth))
            .await
            .map_err(verify_error)?;
        Ok(match digests.index {
            Some(index) => ResolvedImage {
                digest: index,
                platform_digest: Some(digests.manifest),
            },
            None => ResolvedImage {
                digest: digests.manifest,
                platform_digest: None,
            },
        })
    }

    async fn verify(
        &self,
        policy: &Policy,
        reference: &Reference,
        image: &ResolvedImage,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<SignatureReport, GateError> {
        let verifier = self.verifier(policy)?;
        let subject = match &image.platform_digest {
            Some(platform) => ImageDigests {
                index: Some(image.digest.clone()),
                manifest: platform.clone(),
            },
            None => ImageDigests {
                index: None,
                manifest: image.digest.clone(),
            },
        };
        verifier
            .verify(&self.client, reference, &subject, &creds(auth))
            .await
            .map_err(verify_error)
    }
}
