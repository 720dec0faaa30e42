//! The live canary: proof that the gate hides side-loaded images.
//!
//! 1. A tiny image is generated (one uncompressed tar layer holding a random token, an
//!    OCI config for this host's platform, an OCI manifest) and written into
//!    containerd's namespace through the containerd API (content write under a lease,
//!    image create), labelled [`CANARY_LABEL`] — exactly what `ctr images import` does.
//! 2. containerd's own CRI (the upstream socket) must report it present; the image name
//!    is one that an enforcing policy covers.
//! 3. `ImageStatus` through pullwarden's own CRI socket must report it absent (no allow
//!    verdict exists for it), which is what makes the kubelet pull through the gate.
//! 4. The image and its three blobs are deleted and the lease released — on failure
//!    too — and their absence is checked. Canaries a crashed run left behind (found by
//!    the label) are removed before each run.
//!
//! Nothing is pulled and no registry is contacted: the name is only a name.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use k8s_cri::v1::{ImageSpec, ImageStatusRequest, image_service_client::ImageServiceClient};
use serde_json::json;

use super::Check;
use crate::config::{Config, Mode};
use crate::containerd::{CANARY_LABEL, Containerd, Target};
use crate::digest::Digest;

/// The canary's repository when an enforcing policy covers it (`.invalid` is reserved,
/// RFC 2606: it names no real registry).
pub const CANARY_REPOSITORY: &str = "pullwarden.invalid/canary";

/// How long containerd's CRI may take to see a created image (it learns of images
/// through containerd's event stream).
const VISIBLE_WITHIN: Duration = Duration::from_secs(10);

/// Deadline of one CRI call the canary makes.
const CRI_TIMEOUT: Duration = Duration::from_secs(10);

/// A lease that outlives a crash of the daemon mid-canary only this long; a labelled
/// canary older than this is a leftover (younger ones may be another daemon's run in
/// progress, as in a test suite sharing one containerd).
const LEASE_TTL: Duration = Duration::from_secs(600);

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// The generated image: blobs in write order (layer, config, manifest).
pub struct CanaryImage {
    pub blobs: Vec<(Digest, Vec<u8>, HashMap<String, String>)>,
    pub target: Target,
}

/// A fresh random token (hex), for the canary's tag and layer content.
pub fn token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    h.update(&std::process::id().to_le_bytes());
    h.update(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.finalize().to_hex()[..20].to_string()
}

/// Builds the canary image for `token` on this host's platform.
pub fn build_image(token: &str) -> std::io::Result<CanaryImage> {
    let mut tar = tar::Builder::new(Vec::new());
    let content = format!("pullwarden canary {token}\n");
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, "pullwarden-canary", content.as_bytes())?;
    let layer = tar.into_inner()?;
    let layer_digest = Digest::sha256_of(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": crate::verify::host_arch(),
        "os": "linux",
        "config": {"Labels": {CANARY_LABEL: token}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]},
    }))?;
    let config_digest = Digest::sha256_of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest.to_string(), "size": layer.len()}],
        "annotations": {CANARY_LABEL: token},
    }))?;
    let manifest_digest = Digest::sha256_of(&manifest);
    // Every blob carries the canary label (with its creation time), so nothing of a
    // canary can hide in the content store; the manifest also the references
    // containerd's garbage collector follows.
    let label = || (CANARY_LABEL.to_string(), unix_now().to_string());
    let refs = HashMap::from([
        label(),
        (
            "containerd.io/gc.ref.content.config".to_string(),
            config_digest.to_string(),
        ),
        (
            "containerd.io/gc.ref.content.l.0".to_string(),
            layer_digest.to_string(),
        ),
    ]);
    let target = Target {
        digest: manifest_digest.clone(),
        media_type: MANIFEST_MEDIA_TYPE.into(),
        size: manifest.len() as i64,
    };
    Ok(CanaryImage {
        blobs: vec![
            (layer_digest, layer, HashMap::from([label()])),
            (config_digest, config, HashMap::from([label()])),
            (manifest_digest, manifest, refs),
        ],
        target,
    })
}

/// A name for the canary that an enforcing policy covers, and that policy's name:
/// [`CANARY_REPOSITORY`] when one covers it, else a repository made from an enforcing
/// policy's own image glob (`registry.example.com/prod/**` →
/// `registry.example.com/prod/pullwarden-canary`), tagged with `token`. None when no
/// enforcing policy covers any such name.
pub fn canary_name(config: &Config, token: &str) -> Option<(String, String)> {
    let enforcing: Vec<_> = config
        .policies
        .iter()
        .filter(|p| p.mode == Mode::Enforce)
        .collect();
    let mut candidates = vec![format!("{CANARY_REPOSITORY}:{token}")];
    for p in &enforcing {
        for glob in &p.images {
            if glob.contains(['?', '[', ']', '{', '}', '@']) {
                continue;
            }
            // The tag (after a ':' in the last path component), if the glob has one.
            let slash = glob.rfind('/').map_or(0, |i| i + 1);
            let (repo, tag) = match glob[slash..].find(':') {
                Some(i) => (&glob[..slash + i], Some(&glob[slash + i + 1..])),
                None => (glob.as_str(), None),
            };
            let repo = repo
                .replace("**", "pullwarden-canary")
                .replace('*', "pullwarden-canary");
            candidates.push(match tag {
                None => format!("{repo}:{token}"),
                // A wildcard in the tag takes the token; a literal tag names a real
                // image, never the canary (dropped below: the name lacks the token).
                Some(tag) => format!(
                    "{repo}:{}",
                    tag.replace("**", "*")
                        .replace('*', &format!("pullwarden-canary-{token}"))
                ),
            });
        }
    }
    for c in candidates {
        let Ok(r) = c.parse::<crate::reference::Reference>() else {
            continue;
        };
        let name = r.to_string();
        // The canary's name must be its own: one carrying this run's random token, so
        // it cannot be an image the node has.
        if !name.contains(token) {
            continue;
        }
        if let Some(p) = enforcing.iter().find(|p| p.matches_image(&name)) {
            return Some((name, p.name.clone()));
        }
    }
    None
}

/// Runs the canary and returns the `canary` check. `upstream` is containerd's socket
/// (its CRI and its API), `listen` pullwarden's CRI socket.
pub async fn run(
    containerd: &Containerd,
    config: &Config,
    listen: &Path,
    metrics: Option<&crate::metrics::Metrics>,
) -> Check {
    let fix_cleanup = "remove it with: ctr -n NAMESPACE images rm NAME (pullwarden also \
                       removes labelled canaries before each run)";
    let swept = sweep(containerd).await;
    let token = token();
    let Some((name, policy)) = canary_name(config, &token) else {
        return Check::fail(
            "canary",
            "no enforcing policy covers a name the canary could use, so nothing shows that \
             side-loaded images are hidden; images outside every enforcing policy's `images` \
             pass ungated",
            "add a last catch-all policy (images = [\"**\"], mode = \"enforce\") or make an \
             enforcing policy's images cover the images this node runs",
        );
    };
    let image = match build_image(&token) {
        Ok(i) => i,
        Err(e) => {
            return Check::fail(
                "canary",
                format!("cannot build the canary image: {e}"),
                "report this as a bug",
            );
        }
    };
    // The name must be absent before the create (the token makes that all but
    // certain); an image already there is never the canary and never deleted.
    match containerd.image_target(&name).await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return Check::fail(
                "canary",
                format!(
                    "an image named {name} already exists in containerd; the canary did not run"
                ),
                "run pullwarden doctor again (the canary's name is random)",
            );
        }
        Err(e) => {
            return Check::fail(
                "canary",
                format!("cannot side-load the canary: {e}"),
                format!(
                    "check that containerd answers on {} (pullwarden status)",
                    config.server.upstream.display()
                ),
            );
        }
    }
    let mut created = false;
    let outcome = prove(
        containerd,
        config,
        listen,
        &name,
        &image,
        metrics,
        &mut created,
    )
    .await;
    let cleanup = remove(containerd, created.then_some(name.as_str()), &image).await;
    let left = match cleanup {
        Ok(()) => leftovers(containerd, created.then_some(name.as_str()), &image).await,
        Err(e) => Some(format!("cleanup failed: {e}")),
    };
    if let Some(left) = left {
        return Check::fail(
            "canary",
            format!("the canary {name} was left in containerd: {left}"),
            fix_cleanup,
        );
    }
    let swept = if swept > 0 {
        format!(" ({swept} leftover canaries of an earlier run removed)")
    } else {
        String::new()
    };
    match outcome {
        Ok(()) => Check::ok(
            "canary",
            format!(
                "side-loaded {name} (covered by policy {policy}): present in containerd, absent \
                 through pullwarden; removed again{swept}"
            ),
        ),
        Err((detail, fix)) => Check::fail("canary", format!("{detail}{swept}"), fix),
    }
}

/// Steps 1–3; `Err((detail, fix))`.
async fn prove(
    containerd: &Containerd,
    config: &Config,
    listen: &Path,
    name: &str,
    image: &CanaryImage,
    metrics: Option<&crate::metrics::Metrics>,
    created: &mut bool,
) -> Result<(), (String, String)> {
    let containerd_fix = || {
        format!(
            "check that containerd answers on {} (pullwarden status)",
            config.server.upstream.display()
        )
    };
    let lease = containerd.lease(&[], LEASE_TTL).await.map_err(|e| {
        (
            format!("cannot side-load the canary: {e}"),
            containerd_fix(),
        )
    })?;
    let written = async {
        for (digest, data, labels) in &image.blobs {
            containerd
                .write_blob(&lease, digest, data, labels.clone())
                .await?;
        }
        let labels = HashMap::from([(CANARY_LABEL.to_string(), unix_now().to_string())]);
        containerd
            .create_image(&lease, name, &image.target, labels)
            .await?;
        // Only a create that succeeded makes `name` the canary's to delete.
        *created = true;
        Ok::<(), crate::containerd::ContainerdError>(())
    }
    .await;
    lease.release().await;
    written.map_err(|e| {
        (
            format!("cannot side-load the canary: {e}"),
            containerd_fix(),
        )
    })?;

    // containerd's CRI must see it, or "absent" through us would prove nothing.
    let deadline = tokio::time::Instant::now() + VISIBLE_WITHIN;
    loop {
        match image_status(&config.server.upstream, name).await {
            Ok(true) => break,
            Ok(false) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(false) => {
                return Err((
                    format!(
                        "containerd's CRI never reported the side-loaded {name} present (waited \
                         {VISIBLE_WITHIN:?}), so the canary proves nothing"
                    ),
                    format!(
                        "check that containerd's CRI plugin serves the {} namespace \
                         (server.containerd_namespace)",
                        containerd.namespace()
                    ),
                ));
            }
            Err(e) => {
                return Err((
                    format!("containerd's CRI did not answer ImageStatus for the canary: {e}"),
                    containerd_fix(),
                ));
            }
        }
    }
    if let Some(m) = metrics {
        m.announce_own_status_call();
    }
    let through_us = image_status(listen, name).await;
    if let (Err(_), Some(m)) = (&through_us, metrics) {
        m.withdraw_own_status_call();
    }
    match through_us {
        Ok(false) => Ok(()),
        Ok(true) => Err((
            format!(
                "BYPASSED: the side-loaded {name} is reported present through pullwarden's \
                 socket {}, so the kubelet would run side-loaded images without a pull",
                listen.display()
            ),
            "check the daemon log; run pullwarden status and pullwarden reload".into(),
        )),
        Err(e) => Err((
            format!(
                "pullwarden's CRI socket {} did not answer ImageStatus: {e}",
                listen.display()
            ),
            "check that pullwarden serves its listen socket (systemctl status pullwarden)".into(),
        )),
    }
}

/// Whether the CRI on `socket` reports `name` present.
async fn image_status(socket: &Path, name: &str) -> Result<bool, String> {
    let call = async {
        let channel = crate::dial::channel(socket)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        let resp = ImageServiceClient::new(channel)
            .image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: name.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
        Ok(resp.into_inner().image.is_some())
    };
    tokio::time::timeout(CRI_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {CRI_TIMEOUT:?}")))
}

/// Deletes the image (`name`: only when the canary's create succeeded) and its blobs
/// (each step attempted even when one fails).
async fn remove(
    containerd: &Containerd,
    name: Option<&str>,
    image: &CanaryImage,
) -> Result<(), String> {
    let mut errors = Vec::new();
    if let Some(name) = name
        && let Err(e) = containerd.delete_image(name).await
    {
        errors.push(e.to_string());
    }
    for (digest, _, _) in image.blobs.iter().rev() {
        if let Err(e) = containerd.delete_blob(digest).await {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// What of the canary is still in containerd, if anything.
async fn leftovers(
    containerd: &Containerd,
    name: Option<&str>,
    image: &CanaryImage,
) -> Option<String> {
    let mut left = Vec::new();
    if let Some(name) = name {
        match containerd.image_target(name).await {
            Ok(None) => {}
            Ok(Some(_)) => left.push(format!("image {name}")),
            Err(e) => left.push(format!("image {name} unknown: {e}")),
        }
    }
    for (digest, _, _) in &image.blobs {
        match containerd.blob_exists(digest).await {
            Ok(false) => {}
            Ok(true) => left.push(format!("blob {digest}")),
            Err(e) => left.push(format!("blob {digest} unknown: {e}")),
        }
    }
    (!left.is_empty()).then(|| left.join(", "))
}

/// Removes canaries an interrupted run left (by label): the image, then the blobs its
/// manifest names. Returns how many images were removed.
async fn sweep(containerd: &Containerd) -> usize {
    let found = match containerd.images_labelled(CANARY_LABEL).await {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(error = %e, "listing leftover canaries failed");
            return 0;
        }
    };
    let mut removed = 0;
    let cutoff = unix_now().saturating_sub(LEASE_TTL.as_secs());
    for (name, target, created) in found {
        // An unreadable creation time is a leftover of no run in progress.
        if created.parse::<u64>().is_ok_and(|t| t > cutoff) {
            continue;
        }
        let mut blobs: Vec<Digest> = Vec::new();
        if let Some(t) = &target {
            if let Ok(bytes) = containerd.read_blob(&t.digest, 1 << 20).await {
                blobs.extend(manifest_blobs(&bytes));
            }
            blobs.push(t.digest.clone());
        }
        if containerd.delete_image(&name).await.is_ok() {
            removed += 1;
        }
        for d in blobs {
            let _ = containerd.delete_blob(&d).await;
        }
    }
    removed
}

/// The config and layer digests a manifest names (nothing for anything else).
fn manifest_blobs(manifest: &[u8]) -> Vec<Digest> {
    let Ok(m) = crate::oci::parse_manifest(manifest) else {
        return Vec::new();
    };
    std::iter::once(m.config())
        .chain(m.layers())
        .filter_map(|d| crate::oci::descriptor_digest("descriptor", d).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(policies: &str) -> Config {
        Config::parse(policies).unwrap()
    }

    #[test]
    fn the_image_is_well_formed_and_unique() {
        let a = build_image(&token()).unwrap();
        let b = build_image(&token()).unwrap();
        assert_eq!(a.blobs.len(), 3);
        for (d, data, _) in &a.blobs {
            assert_eq!(&Digest::sha256_of(data), d);
        }
        assert_eq!(a.target.digest, a.blobs[2].0);
        assert_eq!(
            manifest_blobs(&a.blobs[2].1),
            vec![a.blobs[1].0.clone(), a.blobs[0].0.clone()]
        );
        for (x, y) in a.blobs.iter().zip(&b.blobs) {
            assert_ne!(x.0, y.0, "two canaries share a blob");
        }
        assert!(manifest_blobs(b"not json").is_empty());
    }

    #[test]
    fn names_an_enforcing_policy_covers() {
        let c = config("[[policy]]\nname = \"all\"\nimages = [\"**\"]\n");
        let (name, p) = canary_name(&c, "t1").unwrap();
        assert_eq!(name, "pullwarden.invalid/canary:t1");
        assert_eq!(p, "all");
        let c = config(
            "[[policy]]\nname = \"audit\"\nimages = [\"**\"]\nmode = \"audit\"\n\
             [[policy]]\nname = \"prod\"\nimages = [\"registry.example.com/prod/**\"]\n",
        );
        let (name, p) = canary_name(&c, "t2").unwrap();
        assert_eq!(name, "registry.example.com/prod/pullwarden-canary:t2");
        assert_eq!(p, "prod");
        let c = config("[[policy]]\nname = \"a\"\nimages = [\"**\"]\nmode = \"audit\"\n");
        assert!(canary_name(&c, "t3").is_none());
        // A glob naming one exact tag names a real image: never the canary's.
        let c = config("[[policy]]\nname = \"pinned\"\nimages = [\"reg.example/app:v1\"]\n");
        assert!(canary_name(&c, "t5").is_none());
        let c = config("[[policy]]\nname = \"tags\"\nimages = [\"reg.example/app:v*\"]\n");
        let (name, _) = canary_name(&c, "t6").unwrap();
        assert_eq!(name, "reg.example/app:vpullwarden-canary-t6");
        assert!(canary_name(&config(""), "t4").is_none());
    }
}
