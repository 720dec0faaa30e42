//! CRI clients over unix sockets (the same helper the `pullwarden cri` command uses).

use std::path::Path;

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{ImageSpec, PodSandboxConfig, PodSandboxMetadata, PullImageRequest};
use tonic::transport::Channel;

pub async fn images(socket: &Path) -> ImageServiceClient<Channel> {
    ImageServiceClient::new(pullwarden::cli::cri::channel(socket).await.unwrap())
}

pub async fn runtime(socket: &Path) -> RuntimeServiceClient<Channel> {
    RuntimeServiceClient::new(pullwarden::cli::cri::channel(socket).await.unwrap())
}

pub fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

pub fn pull_request(image: &str, namespace: &str) -> PullImageRequest {
    PullImageRequest {
        image: spec(image),
        auth: None,
        sandbox_config: Some(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "pod".into(),
                uid: "uid-1".into(),
                namespace: namespace.into(),
                attempt: 0,
            }),
            ..Default::default()
        }),
    }
}

/// Whether `socket` (containerd's, or pullwarden's) reports `image` present.
pub async fn present(socket: &Path, image: &str) -> bool {
    images(socket)
        .await
        .image_status(k8s_cri::v1::ImageStatusRequest {
            image: spec(image),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .is_some()
}
