//! The registry as the gate's [`SignatureSource`]: references resolved and signatures
//! verified with the policy's keys and trust root.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::config::{Policy, PolicyFiles};
use crate::gate::{GateError, PolicyError, ResolvedImage, SignatureSource};
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::SignatureReport;
use crate::verify::{ImageDigests, Verifier};

/// Signatures from the registry, verified with the policy's keys and trust root.
/// Verifiers (parsed keys, trust roots) are built once per policy and dropped on
/// reload, so key rotation takes effect with `pullwarden reload`.
pub struct RegistrySignatures {
    client: RegistryClient,
    /// By policy name, with the file snapshot each was built from: a policy of another
    /// load (a pull that began before a reload) never gets or leaves a verifier of the
    /// wrong keys.
    verifiers: Mutex<HashMap<String, BuiltFrom<Verifier>>>,
}

/// A part built from a policy, with the file snapshot it was built from.
type BuiltFrom<T> = (Arc<PolicyFiles>, Arc<T>);

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
            return Err(GateError::Policy(PolicyError::NoSignatures(
                policy.name.clone(),
            )));
        };
        let mut map = self.verifiers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((files, v)) = map.get(&policy.name)
            && Arc::ptr_eq(files, &policy.files)
        {
            return Ok(v.clone());
        }
        let v = Arc::new(
            Verifier::load_with(sig, &policy.files)
                .map_err(|e| GateError::Policy(PolicyError::Keys(e)))?,
        );
        map.insert(policy.name.clone(), (policy.files.clone(), v.clone()));
        Ok(v)
    }
}

fn creds(auth: Option<&k8s_cri::v1::AuthConfig>) -> Credentials {
    auth.map(Credentials::from).unwrap_or_default()
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
            .map_err(GateError::from)?;
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
            .map_err(GateError::from)
    }
}
