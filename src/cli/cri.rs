//! `pullwarden cri …`: a small CRI client (crictl is not packaged for Debian), used by
//! operators, the demo and the tests to talk to pullwarden's socket or to containerd's.

use std::path::PathBuf;

use clap::Subcommand;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    AuthConfig, ImageFsInfoRequest, ImageSpec, ImageStatusRequest, ListImagesRequest,
    PodSandboxConfig, PodSandboxMetadata, PullImageRequest, RemoveImageRequest, VersionRequest,
};

#[derive(Debug, clap::Args, Clone)]
pub struct Endpointarg {
    /// CRI socket to talk to (pullwarden's, or containerd's to bypass it).
    #[arg(
        long,
        value_name = "SOCKET",
        default_value = "/run/pullwarden/cri.sock"
    )]
    pub endpoint: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum CriCommand {
    /// Pull an image (PullImage), as the kubelet would for a pod in NAMESPACE.
    Pull {
        #[command(flatten)]
        endpoint: Endpointarg,
        image: String,
        /// Pod namespace sent in the sandbox config (policies can match on it).
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Registry credentials as USER:PASSWORD.
        #[arg(long, value_name = "USER:PASSWORD")]
        creds: Option<String>,
    },
    /// Show an image's status (ImageStatus); exit 1 when absent.
    Status {
        #[command(flatten)]
        endpoint: Endpointarg,
        image: String,
    },
    /// List images (ListImages).
    List {
        #[command(flatten)]
        endpoint: Endpointarg,
    },
    /// Remove an image (RemoveImage).
    Rm {
        #[command(flatten)]
        endpoint: Endpointarg,
        image: String,
    },
    /// Image filesystem usage (ImageFsInfo).
    Fsinfo {
        #[command(flatten)]
        endpoint: Endpointarg,
    },
    /// Runtime name and version (RuntimeService/Version).
    Version {
        #[command(flatten)]
        endpoint: Endpointarg,
    },
}

pub use crate::dial::channel;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

pub fn run(cmd: CriCommand) -> anyhow::Result<i32> {
    super::runtime()?.block_on(run_async(cmd))
}

async fn run_async(cmd: CriCommand) -> anyhow::Result<i32> {
    let socket = match &cmd {
        CriCommand::Pull { endpoint, .. }
        | CriCommand::Status { endpoint, .. }
        | CriCommand::List { endpoint }
        | CriCommand::Rm { endpoint, .. }
        | CriCommand::Fsinfo { endpoint }
        | CriCommand::Version { endpoint } => endpoint.endpoint.clone(),
    };
    let ch = channel(&socket)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", socket.display()))?;
    let mut images = ImageServiceClient::new(ch.clone());
    let report = |s: tonic::Status| -> i32 {
        eprintln!(
            "error: rpc failed: code = {:?} desc = {}",
            s.code(),
            s.message()
        );
        1
    };
    match cmd {
        CriCommand::Pull {
            image,
            namespace,
            creds,
            ..
        } => {
            let auth = creds.map(|c| {
                let (u, p) = c.split_once(':').unwrap_or((c.as_str(), ""));
                AuthConfig {
                    username: u.to_string(),
                    password: p.to_string(),
                    ..Default::default()
                }
            });
            let req = PullImageRequest {
                image: spec(&image),
                auth,
                sandbox_config: Some(PodSandboxConfig {
                    metadata: Some(PodSandboxMetadata {
                        name: "pullwarden-cli".into(),
                        uid: "pullwarden-cli".into(),
                        namespace,
                        attempt: 0,
                    }),
                    ..Default::default()
                }),
            };
            match images.pull_image(req).await {
                Ok(r) => {
                    println!("Image is up to date for {}", r.into_inner().image_ref);
                    Ok(0)
                }
                Err(s) => Ok(report(s)),
            }
        }
        CriCommand::Status { image, .. } => {
            match images
                .image_status(ImageStatusRequest {
                    image: spec(&image),
                    verbose: false,
                })
                .await
            {
                Ok(r) => match r.into_inner().image {
                    Some(img) => {
                        println!("id:          {}", img.id);
                        println!("tags:        {}", img.repo_tags.join(", "));
                        println!("digests:     {}", img.repo_digests.join(", "));
                        println!("size:        {}", img.size);
                        Ok(0)
                    }
                    None => {
                        println!("image {image} is not present");
                        Ok(1)
                    }
                },
                Err(s) => Ok(report(s)),
            }
        }
        CriCommand::List { .. } => {
            match images.list_images(ListImagesRequest { filter: None }).await {
                Ok(r) => {
                    println!("{:<60} {:<20} {:>12}", "IMAGE", "IMAGE ID", "SIZE");
                    for img in r.into_inner().images {
                        let id = img.id.trim_start_matches("sha256:");
                        let short = &id[..id.len().min(13)];
                        let tags = if img.repo_tags.is_empty() {
                            img.repo_digests.clone()
                        } else {
                            img.repo_tags.clone()
                        };
                        for t in tags {
                            println!("{t:<60} {short:<20} {:>12}", img.size);
                        }
                    }
                    Ok(0)
                }
                Err(s) => Ok(report(s)),
            }
        }
        CriCommand::Rm { image, .. } => match images
            .remove_image(RemoveImageRequest {
                image: spec(&image),
            })
            .await
        {
            Ok(_) => {
                println!("Deleted: {image}");
                Ok(0)
            }
            Err(s) => Ok(report(s)),
        },
        CriCommand::Fsinfo { .. } => match images.image_fs_info(ImageFsInfoRequest {}).await {
            Ok(r) => {
                for fs in r.into_inner().image_filesystems {
                    let mount = fs.fs_id.map(|f| f.mountpoint).unwrap_or_default();
                    let used = fs.used_bytes.map(|u| u.value).unwrap_or(0);
                    println!("{mount}\tused {used} bytes");
                }
                Ok(0)
            }
            Err(s) => Ok(report(s)),
        },
        CriCommand::Version { .. } => {
            match RuntimeServiceClient::new(ch)
                .version(VersionRequest {
                    version: "v1".into(),
                })
                .await
            {
                Ok(r) => {
                    let v = r.into_inner();
                    println!("RuntimeName:       {}", v.runtime_name);
                    println!("RuntimeVersion:    {}", v.runtime_version);
                    println!("RuntimeApiVersion: {}", v.runtime_api_version);
                    Ok(0)
                }
                Err(s) => Ok(report(s)),
            }
        }
    }
}
