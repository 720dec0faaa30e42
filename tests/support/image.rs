//! Builds OCI images in memory (layers as tar, gzip/zstd/none), writes them as OCI
//! layouts or pushes them to a registry over the distribution API.

use std::io::Write;

use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Debug)]
pub enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
}

impl Entry {
    pub fn file(path: &str, data: impl Into<Vec<u8>>) -> Entry {
        Entry::File {
            path: path.into(),
            data: data.into(),
            mode: 0o644,
        }
    }
    pub fn file_mode(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> Entry {
        Entry::File {
            path: path.into(),
            data: data.into(),
            mode,
        }
    }
    pub fn dir(path: &str) -> Entry {
        Entry::Dir {
            path: path.into(),
            mode: 0o755,
        }
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry::Symlink {
            path: path.into(),
            target: target.into(),
        }
    }
    /// A tar hard link at `path` to the archive path `target`.
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry::Hardlink {
            path: path.into(),
            target: target.into(),
        }
    }
    /// An OCI whiteout deleting `path` in lower layers.
    pub fn whiteout(path: &str) -> Entry {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let p = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        Entry::file(&p, Vec::new())
    }
}

/// Serializes entries as a tar stream (GNU/ustar headers via the `tar` crate).
pub fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Entry::File { path, data, mode } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, data.as_slice()).unwrap();
            }
            Entry::Dir { path, mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, path, std::io::empty()).unwrap();
            }
            Entry::Symlink { path, target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
            Entry::Hardlink { path, target } => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, path, target).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

pub fn compress(raw: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => raw.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::encode_all(raw, 3).unwrap(),
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    pullwarden::digest::Digest::sha256_of(bytes).to_string()
}

/// One layer: its blob (compressed) and its diffID (sha256 of the tar).
#[derive(Clone, Debug)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
    pub media_type: String,
}

impl Layer {
    pub fn from_entries(entries: &[Entry], c: Compression) -> Layer {
        Layer::from_tar(tar_of(entries), c)
    }
    pub fn from_tar(tar: Vec<u8>, c: Compression) -> Layer {
        let blob = compress(&tar, c);
        let media_type = match c {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        };
        Layer {
            digest: sha256(&blob),
            diff_id: sha256(&tar),
            blob,
            media_type: media_type.into(),
        }
    }
}

/// A single-platform image: config + manifest + layers.
#[derive(Clone, Debug)]
pub struct Image {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub digest: String,
}

impl Image {
    pub fn new(layers: Vec<Layer>) -> Image {
        Image::with_platform(layers, "amd64", "")
    }

    /// `salt` goes into the config so two otherwise equal images get distinct digests.
    pub fn with_platform(layers: Vec<Layer>, arch: &str, salt: &str) -> Image {
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": { "Env": ["PATH=/usr/bin:/bin"], "Labels": { "pullwarden.test/salt": salt } },
            "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>() },
            "history": layers.iter().map(|_| json!({"created_by": "pullwarden test"})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let config_digest = sha256(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
            "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.blob.len()})).collect::<Vec<_>>(),
        }))
        .unwrap();
        Image {
            digest: sha256(&manifest),
            layers,
            config,
            config_digest,
            manifest,
        }
    }

    /// Writes an OCI image layout at `dir` with `tag` in index.json (`org.opencontainers.image.ref.name`).
    pub fn write_oci_layout(&self, dir: &std::path::Path, tag: &str) {
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let put = |digest: &str, bytes: &[u8]| {
            std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        };
        for l in &self.layers {
            put(&l.digest, &l.blob);
        }
        put(&self.config_digest, &self.config);
        put(&self.digest, &self.manifest);
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": self.digest, "size": self.manifest.len(),
                "annotations": { "org.opencontainers.image.ref.name": tag }
            }]
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    }

    /// Pushes blobs and the manifest to `registry` (`127.0.0.1:PORT`) as `repo:tag`.
    pub async fn push(&self, registry: &str, repo: &str, tag: &str) {
        for l in &self.layers {
            push_blob(registry, repo, &l.blob).await;
        }
        push_blob(registry, repo, &self.config).await;
        push_manifest(
            registry,
            repo,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &self.manifest,
        )
        .await;
    }
}

/// A multi-platform index over images; `digest` is the index digest.
pub struct Index {
    pub images: Vec<Image>,
    pub index: Vec<u8>,
    pub digest: String,
}

impl Index {
    pub fn new(images: Vec<Image>) -> Index {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": images.iter().map(|i| {
                let cfg: serde_json::Value = serde_json::from_slice(&i.config).unwrap();
                json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": i.digest, "size": i.manifest.len(),
                    "platform": { "architecture": cfg["architecture"], "os": "linux" }
                })
            }).collect::<Vec<_>>(),
        }))
        .unwrap();
        Index {
            digest: sha256(&index),
            images,
            index,
        }
    }

    pub async fn push(&self, registry: &str, repo: &str, tag: &str) {
        for i in &self.images {
            for l in &i.layers {
                push_blob(registry, repo, &l.blob).await;
            }
            push_blob(registry, repo, &i.config).await;
            push_manifest(
                registry,
                repo,
                &i.digest,
                "application/vnd.oci.image.manifest.v1+json",
                &i.manifest,
            )
            .await;
        }
        push_manifest(
            registry,
            repo,
            tag,
            "application/vnd.oci.image.index.v1+json",
            &self.index,
        )
        .await;
    }
}

/// Monolithic blob upload (POST then PUT with the digest).
pub async fn push_blob(registry: &str, repo: &str, blob: &[u8]) -> String {
    let digest = sha256(blob);
    let http = reqwest::Client::new();
    let head = http
        .head(format!("http://{registry}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    if head.status().is_success() {
        return digest;
    }
    let r = http
        .post(format!("http://{registry}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        202,
        "upload start: {:?}",
        r.text().await
    );
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let url = if loc.starts_with("http") {
        loc
    } else {
        format!("http://{registry}{loc}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = http
        .put(format!("{url}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        201,
        "upload finish: {:?}",
        r.text().await
    );
    digest
}

/// PUT a manifest (or index) under a tag or digest reference.
pub async fn push_manifest(
    registry: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) {
    let r = reqwest::Client::new()
        .put(format!("http://{registry}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        201,
        "manifest put: {:?}",
        r.text().await
    );
}
