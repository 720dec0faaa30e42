//! The containerd API client against the real containerd: image targets, the content
//! store root, blob reads, leases.

use pullwarden::containerd::{Containerd, blob_path};
use pullwarden::digest::Digest;

use crate::support::cri::{images, pull_request};
use crate::support::image::{Compression, Entry, Image, Layer};
use crate::support::{it_env, unique_repo};

#[tokio::test(flavor = "multi_thread")]
async fn targets_content_and_leases() {
    let env = it_env();
    let repo = unique_repo("ctrd");
    let img = Image::new(vec![Layer::from_entries(
        &[Entry::file("a", "b")],
        Compression::Gzip,
    )]);
    img.push(&env.registry, &repo, "v1").await;
    let name = format!("{}/{repo}:v1", env.registry);
    let c = Containerd::new(&env.containerd_sock, "k8s.io").unwrap();
    assert_eq!(c.image_target(&name).await.unwrap(), None);

    images(&env.containerd_sock)
        .await
        .pull_image(pull_request(&name, "default"))
        .await
        .unwrap();
    let target = c
        .image_target(&name)
        .await
        .unwrap()
        .expect("present after pull");
    assert_eq!(target.digest.to_string(), img.digest);
    assert_eq!(
        target.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );

    // The list the verdict sweep keeps: every image target of the namespace.
    let present = c.image_digests().await.unwrap();
    assert!(present.contains(&target.digest.to_string()), "{present:?}");
    let other_namespace = Containerd::new(&env.containerd_sock, "pullwarden-empty").unwrap();
    assert!(other_namespace.image_digests().await.unwrap().is_empty());

    let root = c.content_root().await.unwrap();
    assert!(root.starts_with(&env.containerd_root), "{}", root.display());
    let manifest_path = blob_path(&root, &target.digest);
    assert_eq!(std::fs::read(&manifest_path).unwrap(), img.manifest);
    assert_eq!(
        c.read_blob(&target.digest, 1 << 20).await.unwrap(),
        img.manifest
    );
    assert!(
        c.read_blob(&target.digest, 10).await.is_err(),
        "limit not enforced"
    );

    let layer: Digest = img.layers[0].digest.parse().unwrap();
    let lease = c
        .lease(
            &[target.digest.clone(), layer],
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert!(lease.id().starts_with("pullwarden-"));
    lease.release().await;

    // Another namespace does not see k8s.io images.
    let other = Containerd::new(&env.containerd_sock, "default").unwrap();
    assert_eq!(other.image_target(&name).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_containerd_is_a_clear_error() {
    let c = Containerd::new(
        std::path::Path::new("/nonexistent/containerd.sock"),
        "k8s.io",
    )
    .unwrap();
    let e = c
        .image_target("docker.io/library/x:latest")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/containerd.sock"),
        "{e}"
    );
}
