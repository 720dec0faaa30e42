//! The registry as the gate's [`SignatureSource`]: references resolved and signatures
//! verified with the policy's keys and trust root.

use async_trait::async_trait;

use crate::gate::{GateError, ResolvedImage, SignatureSource};
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::report::SignatureReport;
use crate::snapshot::LoadedPolicy;
use crate::verify::ImageDigests;

/// Signatures from the registry, verified with the verifier of the policy's snapshot
/// (its keys and trust root as read at the last load or reload).
pub struct RegistrySignatures {
    client: RegistryClient,
}

impl RegistrySignatures {
    pub fn new(client: RegistryClient) -> RegistrySignatures {
        RegistrySignatures { client }
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
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
        policy: &LoadedPolicy,
        reference: &Reference,
        image: &ResolvedImage,
        auth: Option<&k8s_cri::v1::AuthConfig>,
    ) -> Result<SignatureReport, GateError> {
        let verifier = policy.verifier()?;
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
