//! Which image endpoint the running kubelet really uses, read from `/proc`.
//!
//! The kubelet's effective settings come from three places, each overriding the one
//! before (as the kubelet itself merges them, k8s ≥ 1.28):
//! 1. the `--config` file, a `KubeletConfiguration` (kubelet.config.k8s.io/v1beta1) in
//!    YAML or JSON;
//! 2. the drop-ins of `--config-dir`: every `*.conf` file of the directory tree, in
//!    the order of Go's `filepath.WalkDir` (lexical, subdirectories walked where they
//!    sort), each applied as a JSON merge patch: later ones win field by field, and a
//!    field set to `""` (or null) empties it;
//! 3. command-line flags (`--image-service-endpoint`, `--container-runtime-endpoint`).
//!
//! The image endpoint is `imageServiceEndpoint` when non-empty, else `containerRuntimeEndpoint`,
//! else the kubelet's built-in default `unix:///run/containerd/containerd.sock`. Files
//! are read as the kubelet sees them: absolute paths under `/proc/PID/root`, relative
//! ones under `/proc/PID/cwd`. Following those links needs ptrace read access to the
//! kubelet, which the hardened daemon (no CAP_SYS_PTRACE) lacks: an absolute path is
//! then read from the caller's own root, the kubelet's too on a normal node.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The kubelet's default `--container-runtime-endpoint` (k8s ≥ 1.27).
pub const KUBELET_DEFAULT_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

/// Largest kubelet config file or drop-in read (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Most drop-ins read from one `--config-dir`.
const MAX_DROP_INS: usize = 1000;

/// Why a kubelet's configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeletConfigError {
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{} is larger than {MAX_CONFIG_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{} is not a KubeletConfiguration (YAML or JSON): {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
}

/// The two endpoint fields of a `KubeletConfiguration` (every other field is ignored).
/// `Some("")` is a field the document sets to `""` or null: in a drop-in (a JSON merge
/// patch) that empties the field, and an empty `imageServiceEndpoint` makes the kubelet
/// pull from `containerRuntimeEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointFields {
    #[serde(default, deserialize_with = "null_is_empty")]
    pub image_service_endpoint: Option<String>,
    #[serde(default, deserialize_with = "null_is_empty")]
    pub container_runtime_endpoint: Option<String>,
}

/// A present field: its string, or `""` for null (a merge patch's null deletes it).
fn null_is_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

/// Parses one `KubeletConfiguration` document (YAML, of which JSON is a subset).
/// An empty document sets nothing. `path` only names the file in errors.
pub fn parse_config(text: &str, path: &Path) -> Result<EndpointFields, KubeletConfigError> {
    if text.trim().is_empty() {
        return Ok(EndpointFields::default());
    }
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| KubeletConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if value.is_null() {
        return Ok(EndpointFields::default());
    }
    if !value.is_mapping() {
        return Err(KubeletConfigError::Parse {
            path: path.to_path_buf(),
            reason: "the document is not a mapping".into(),
        });
    }
    // The kubelet converts YAML to JSON with sigs.k8s.io/yaml (go-yaml), which applies
    // merge keys (`<<`).
    let mut value = value;
    value.apply_merge().map_err(|e| KubeletConfigError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_yaml_ng::from_value(value).map_err(|e| KubeletConfigError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The endpoint flags of a kubelet command line (pflag syntax: `--name=value` or
/// `--name value`; the last occurrence wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeletFlags {
    pub image_service_endpoint: Option<String>,
    pub container_runtime_endpoint: Option<String>,
    pub config: Option<String>,
    pub config_dir: Option<String>,
}

/// Reads the flags pullwarden cares about from `argv` (argv[0] included); others are
/// skipped. Names are normalized as the kubelet does (`_` → `-`); a repeated flag
/// resolves to its last occurrence (pflag sets a string flag each time). A flag given
/// without its value (at the end) is ignored.
pub fn parse_flags(argv: &[String]) -> KubeletFlags {
    let mut flags = KubeletFlags::default();
    let mut i = 1;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // The kubelet's flag set normalizes names with `cliflag.WordSepNormalizeFunc`
        // (`_` → `-`), so `--image_service_endpoint` is `--image-service-endpoint`.
        // Names only: values are kept as written.
        let name = name.replace('_', "-");
        let slot = match name.as_str() {
            "image-service-endpoint" => &mut flags.image_service_endpoint,
            "container-runtime-endpoint" => &mut flags.container_runtime_endpoint,
            "config" => &mut flags.config,
            "config-dir" => &mut flags.config_dir,
            _ => continue,
        };
        let value = match inline {
            Some(v) => Some(v),
            None if i < argv.len() => {
                i += 1;
                Some(argv[i - 1].clone())
            }
            None => None,
        };
        if let Some(v) = value {
            *slot = Some(v);
        }
    }
    flags
}

/// Where one setting of the effective endpoint came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Effective {
    /// The endpoint the kubelet pulls from (`unix:///…` as written).
    pub endpoint: String,
    /// `--image-service-endpoint flag`, `imageServiceEndpoint in FILE`, `default`, …
    pub source: String,
}

/// Resolves a path the kubelet named against its root and working directory.
fn as_seen_by(proc_dir: &Path, path: &str) -> PathBuf {
    match path.strip_prefix('/') {
        Some(rest) => proc_dir.join("root").join(rest),
        None => proc_dir.join("cwd").join(path),
    }
}

/// Whether following `/proc/PID/{root,cwd}` was refused (no ptrace access).
fn refused(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
}

/// Reads `named` (as the kubelet wrote it) through the kubelet's root or cwd, or from
/// our own root when those links are refused and the path is absolute.
fn read_as_seen(proc_dir: &Path, named: &str) -> Result<String, KubeletConfigError> {
    let link = if named.starts_with('/') {
        "root"
    } else {
        "cwd"
    };
    let path = match std::fs::metadata(proc_dir.join(link)) {
        Err(e) if refused(&e) && named.starts_with('/') => PathBuf::from(named),
        _ => as_seen_by(proc_dir, named),
    };
    read_limited(&path).map_err(|e| match e {
        KubeletConfigError::Read { reason, .. } => KubeletConfigError::Read {
            path: PathBuf::from(named),
            reason,
        },
        KubeletConfigError::TooLarge { .. } => KubeletConfigError::TooLarge {
            path: PathBuf::from(named),
        },
        other => other,
    })
}

fn read_limited(path: &Path) -> Result<String, KubeletConfigError> {
    use std::io::Read as _;
    let read = |e: std::io::Error| KubeletConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    // Only regular files: opening a FIFO would wait for a writer forever.
    if !std::fs::metadata(path).map_err(read)?.is_file() {
        return Err(KubeletConfigError::Read {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(KubeletConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    String::from_utf8(bytes).map_err(|_| KubeletConfigError::Parse {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

/// The effective image endpoint of the kubelet whose `/proc/PID` is `proc_dir`, given
/// its parsed `flags`. File errors are returned: a kubelet whose configuration cannot
/// be read cannot be shown to use pullwarden.
pub fn effective_endpoint(
    proc_dir: &Path,
    flags: &KubeletFlags,
) -> Result<Effective, KubeletConfigError> {
    // (value, source) per field, overridden in the kubelet's order.
    let mut image: Option<(String, String)> = None;
    let mut runtime: Option<(String, String)> = None;
    // A field present in a later document replaces the earlier value, `""` included.
    let mut apply = |fields: EndpointFields, source: &str| {
        if let Some(v) = fields.image_service_endpoint {
            image = Some((v, format!("imageServiceEndpoint in {source}")));
        }
        if let Some(v) = fields.container_runtime_endpoint {
            runtime = Some((v, format!("containerRuntimeEndpoint in {source}")));
        }
    };
    if let Some(config) = &flags.config {
        let fields = parse_config(&read_as_seen(proc_dir, config)?, Path::new(config))?;
        apply(fields, config);
    }
    if let Some(dir) = &flags.config_dir {
        let mut path = as_seen_by(proc_dir, dir);
        let mut entries = std::fs::read_dir(&path);
        if let Err(e) = &entries
            && refused(e)
            && dir.starts_with('/')
        {
            path = PathBuf::from(dir);
            entries = std::fs::read_dir(&path);
        }
        let entries = entries.map_err(|e| KubeletConfigError::Read {
            path: PathBuf::from(dir),
            reason: e.to_string(),
        })?;
        let mut names = Vec::new();
        walk_drop_ins(
            &path,
            PathBuf::new(),
            Some(entries),
            Path::new(dir),
            0,
            &mut names,
        )?;
        for name in names {
            let shown = Path::new(dir).join(&name);
            let named = |e| match e {
                KubeletConfigError::Read { reason, .. } => KubeletConfigError::Read {
                    path: shown.clone(),
                    reason,
                },
                KubeletConfigError::TooLarge { .. } => KubeletConfigError::TooLarge {
                    path: shown.clone(),
                },
                other => other,
            };
            let text = read_limited(&path.join(&name)).map_err(named)?;
            let fields = parse_config(&text, &shown)?;
            apply(fields, &shown.display().to_string());
        }
    }
    // A flag on the command line is set, even to "" (`--image-service-endpoint=`).
    if let Some(v) = flags.image_service_endpoint.clone() {
        image = Some((v, "--image-service-endpoint flag".into()));
    }
    if let Some(v) = flags.container_runtime_endpoint.clone() {
        runtime = Some((v, "--container-runtime-endpoint flag".into()));
    }
    // An empty imageServiceEndpoint means "the runtime's", an empty runtime endpoint
    // the default.
    let emptied = image
        .as_ref()
        .filter(|(v, _)| v.is_empty())
        .map(|(_, s)| format!(" ({s} is empty)"))
        .unwrap_or_default();
    let image = image.filter(|(v, _)| !v.is_empty());
    let runtime = runtime
        .filter(|(v, _)| !v.is_empty())
        .map(|(v, s)| (v, format!("{s}{emptied}")));
    let (endpoint, source) = image.or(runtime).unwrap_or_else(|| {
        (
            KUBELET_DEFAULT_ENDPOINT.to_string(),
            format!("the kubelet's default (no endpoint configured){emptied}"),
        )
    });
    Ok(Effective { endpoint, source })
}

/// Deepest `--config-dir` subdirectory walked.
const MAX_DROP_IN_DEPTH: usize = 16;

/// The `*.conf` files under `base` (paths relative to it, starting at `rel`), in the
/// order of Go's `filepath.WalkDir` as the kubelet walks `--config-dir`: the entries of
/// each directory sorted by name, a subdirectory walked where it sorts. Symlinks are
/// not followed into directories (a symlink named `*.conf` is read as a file). `shown`
/// names the directory in errors. At most [`MAX_DROP_INS`] files.
fn walk_drop_ins(
    base: &Path,
    rel: PathBuf,
    entries: Option<std::fs::ReadDir>,
    shown: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), KubeletConfigError> {
    let unreadable = |e: std::io::Error| KubeletConfigError::Read {
        path: shown.join(&rel),
        reason: e.to_string(),
    };
    let entries = match entries {
        Some(e) => e,
        None => std::fs::read_dir(base.join(&rel)).map_err(unreadable)?,
    };
    let mut list = Vec::new();
    for e in entries {
        let e = e.map_err(unreadable)?;
        let is_dir = e.file_type().map_err(unreadable)?.is_dir();
        list.push((e.file_name(), is_dir));
    }
    list.sort();
    for (name, is_dir) in list {
        if out.len() >= MAX_DROP_INS {
            break;
        }
        let path = rel.join(&name);
        if is_dir {
            if depth >= MAX_DROP_IN_DEPTH {
                return Err(KubeletConfigError::Read {
                    path: shown.join(&path),
                    reason: format!("nested more than {MAX_DROP_IN_DEPTH} directories deep"),
                });
            }
            walk_drop_ins(base, path, None, shown, depth + 1, out)?;
        } else if name.as_encoded_bytes().ends_with(b".conf") {
            out.push(path);
        }
    }
    Ok(())
}

/// The socket path the kubelet dials for a CRI endpoint, parsed as its
/// `parseEndpoint` does with Go's `url.Parse`: the URL's path, so `unix:///path` is
/// `/path` and `unix://host/path` is `/path` too (`host` is the URL's host); an
/// endpoint without a scheme (the deprecated bare path) is read as `unix://` + it.
/// `None` for other schemes (tcp, npipe) and for an empty path.
pub fn endpoint_path(endpoint: &str) -> Option<PathBuf> {
    let endpoint = endpoint.trim();
    // Go: the fragment goes first, then a scheme (letters, digits, + - .; starting
    // with a letter) before ':', then the query.
    let endpoint = endpoint.split_once('#').map_or(endpoint, |(a, _)| a);
    let scheme_end = endpoint.find(':').filter(|&i| {
        let s = &endpoint[..i];
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    let (scheme, rest) = match scheme_end {
        Some(i) => (endpoint[..i].to_ascii_lowercase(), &endpoint[i + 1..]),
        None => return endpoint_path(&format!("unix://{endpoint}")),
    };
    if scheme != "unix" {
        return None;
    }
    let rest = rest.split_once('?').map_or(rest, |(a, _)| a);
    let path = match rest.strip_prefix("//") {
        // The authority runs to the next '/'; the path is the rest.
        Some(auth) => auth.find('/').map_or("", |i| &auth[i..]),
        // `unix:/path` has a path; `unix:path` is opaque (no path at all).
        None if rest.starts_with('/') => rest,
        None => "",
    };
    // Go's path unescaping: a malformed escape is an error.
    let path = crate::percent::decode(path)?;
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// Whether the kubelet (`/proc/PID` = `proc_dir`) reaches `listen` through `endpoint`:
/// the file the kernel finds at the endpoint's path in the kubelet's mount namespace
/// (`stat` through `/proc/PID/root`, symlinks followed) is the listen socket (same
/// device and inode); compared as paths when either does not exist.
pub fn reaches(proc_dir: &Path, endpoint: &str, listen: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(path) = endpoint_path(endpoint) else {
        return false;
    };
    let theirs = std::fs::metadata(as_seen_by(proc_dir, &path.to_string_lossy()));
    let theirs = match theirs {
        Err(e) if refused(&e) && path.is_absolute() => std::fs::metadata(&path),
        other => other,
    };
    match (theirs, std::fs::metadata(listen)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => normalize(&path) == normalize(listen),
    }
}

/// Lexical clean-up: `.` and repeated separators dropped, `..` applied.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A process named `kubelet`.
#[derive(Debug, Clone)]
pub struct KubeletProcess {
    pub pid: u32,
    pub argv: Vec<String>,
}

/// Every process whose `comm` or argv[0] base name is `kubelet`, read from `proc_root`
/// (normally `/proc`). Processes that vanish while being read, zombies and kernel
/// threads (no command line) are skipped.
pub fn find_kubelets(proc_root: &Path) -> Vec<KubeletProcess> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let dir = e.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let mut argv = argv;
        if argv.last().is_some_and(|a| a.is_empty()) {
            argv.pop();
        }
        // Zombies and kernel threads have no command line: nothing that pulls images.
        if argv.is_empty() {
            continue;
        }
        let arg0 = argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
            .unwrap_or_default();
        if comm.trim_end() == "kubelet" || arg0 == "kubelet" {
            found.push(KubeletProcess { pid, argv });
        }
    }
    found.sort_by_key(|k| k.pid);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn flags_in_both_forms_last_wins() {
        let f = parse_flags(&args(&[
            "/usr/bin/kubelet",
            "--config",
            "/var/lib/kubelet/config.yaml",
            "--image-service-endpoint=unix:///a.sock",
            "-v=2",
            "--container-runtime-endpoint",
            "unix:///c.sock",
            "--image-service-endpoint=unix:///b.sock",
            "--config-dir=/etc/kubernetes/kubelet.conf.d",
            "--config",
        ]));
        assert_eq!(f.image_service_endpoint.as_deref(), Some("unix:///b.sock"));
        assert_eq!(
            f.container_runtime_endpoint.as_deref(),
            Some("unix:///c.sock")
        );
        assert_eq!(f.config.as_deref(), Some("/var/lib/kubelet/config.yaml"));
        assert_eq!(
            f.config_dir.as_deref(),
            Some("/etc/kubernetes/kubelet.conf.d")
        );
    }

    #[test]
    fn flag_names_are_normalized_like_the_kubelets() {
        let f = parse_flags(&args(&[
            "/usr/bin/kubelet",
            "--image-service-endpoint=unix:///run/pullwarden/cri.sock",
            // Later, underscore-spelled: the same flag, and it wins.
            "--image_service_endpoint=unix:///run/containerd/containerd_x.sock",
            "--container_runtime-endpoint",
            "unix:///run/my_runtime.sock",
            "--config_dir",
            "/etc/kubernetes/kubelet_conf.d",
            "--config=/var/lib/kubelet/config_a.yaml",
            "--config_=/ignored",
        ]));
        assert_eq!(
            f,
            KubeletFlags {
                // Values keep their underscores.
                image_service_endpoint: Some("unix:///run/containerd/containerd_x.sock".into()),
                container_runtime_endpoint: Some("unix:///run/my_runtime.sock".into()),
                config: Some("/var/lib/kubelet/config_a.yaml".into()),
                config_dir: Some("/etc/kubernetes/kubelet_conf.d".into()),
            }
        );
        // And the other way round: the dashed spelling last.
        let f = parse_flags(&args(&[
            "kubelet",
            "--image_service_endpoint",
            "unix:///a.sock",
            "--image-service-endpoint",
            "unix:///b.sock",
        ]));
        assert_eq!(f.image_service_endpoint.as_deref(), Some("unix:///b.sock"));
    }

    #[test]
    fn config_yaml_and_json() {
        let p = Path::new("c");
        let y = parse_config(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nimageServiceEndpoint: unix:///run/pullwarden/cri.sock\ncgroupDriver: systemd\n",
            p,
        )
        .unwrap();
        assert_eq!(
            y.image_service_endpoint.as_deref(),
            Some("unix:///run/pullwarden/cri.sock")
        );
        let j = parse_config(
            r#"{"containerRuntimeEndpoint": "unix:///x.sock", "a": [1]}"#,
            p,
        )
        .unwrap();
        assert_eq!(
            j.container_runtime_endpoint.as_deref(),
            Some("unix:///x.sock")
        );
        assert_eq!(parse_config("", p).unwrap(), EndpointFields::default());
        assert_eq!(
            parse_config("# only a comment\n", p).unwrap(),
            EndpointFields::default()
        );
        for bad in [
            "- a\n- b\n",
            "imageServiceEndpoint: [1, 2]\n",
            "a: b: c\n",
            "\"x",
        ] {
            let e = parse_config(bad, p).unwrap_err();
            assert!(matches!(e, KubeletConfigError::Parse { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn endpoint_paths() {
        assert_eq!(
            endpoint_path("unix:///run/x.sock"),
            Some(PathBuf::from("/run/x.sock"))
        );
        assert_eq!(
            endpoint_path("/run/x.sock"),
            Some(PathBuf::from("/run/x.sock"))
        );
        assert_eq!(
            endpoint_path("unix:/run/x.sock"),
            Some(PathBuf::from("/run/x.sock"))
        );
        assert_eq!(endpoint_path("tcp://127.0.0.1:1"), None);
        assert_eq!(endpoint_path("unix://"), None);
        assert_eq!(endpoint_path(""), None);
        // As Go's url.Parse: `run` is the host, the path is what is dialled.
        assert_eq!(
            endpoint_path("unix://run/pullwarden/cri.sock"),
            Some(PathBuf::from("/pullwarden/cri.sock"))
        );
        assert_eq!(endpoint_path("unix://run"), None);
        assert_eq!(endpoint_path("unix:run/x.sock"), None);
        assert_eq!(
            endpoint_path("UNIX:///a%20b.sock?x#y"),
            Some(PathBuf::from("/a b.sock"))
        );
        assert_eq!(endpoint_path("unix:///a%zz"), None);
        // A bare relative path is `unix://` + it.
        assert_eq!(endpoint_path("run/x.sock"), Some(PathBuf::from("/x.sock")));
    }

    /// A fake `/proc/PID` whose root is `/` and cwd a temp dir.
    fn fake_proc(cwd: &Path) -> tempfile::TempDir {
        let p = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", p.path().join("root")).unwrap();
        std::os::unix::fs::symlink(cwd, p.path().join("cwd")).unwrap();
        p
    }

    #[test]
    fn flags_override_drop_ins_override_config() {
        let d = tempfile::tempdir().unwrap();
        let proc_dir = fake_proc(d.path());
        std::fs::write(
            d.path().join("config.yaml"),
            "kind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///containerd.sock\nimageServiceEndpoint: unix:///from-config.sock\n",
        )
        .unwrap();
        std::fs::create_dir(d.path().join("conf.d")).unwrap();
        std::fs::write(
            d.path().join("conf.d/10-a.conf"),
            "imageServiceEndpoint: unix:///from-10.sock\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("conf.d/50-pullwarden.conf"),
            "imageServiceEndpoint: unix:///from-50.sock\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("conf.d/90-ignored.yaml"),
            "imageServiceEndpoint: unix:///not-a-conf.sock\n",
        )
        .unwrap();
        // relative --config (cwd), absolute --config-dir (root)
        let mut flags = KubeletFlags {
            config: Some("config.yaml".into()),
            ..Default::default()
        };
        let e = effective_endpoint(proc_dir.path(), &flags).unwrap();
        assert_eq!(e.endpoint, "unix:///from-config.sock");
        flags.config_dir = Some(d.path().join("conf.d").display().to_string());
        let e = effective_endpoint(proc_dir.path(), &flags).unwrap();
        assert_eq!(e.endpoint, "unix:///from-50.sock");
        assert!(e.source.contains("50-pullwarden.conf"), "{}", e.source);
        flags.image_service_endpoint = Some("unix:///from-flag.sock".into());
        let e = effective_endpoint(proc_dir.path(), &flags).unwrap();
        assert_eq!(e.endpoint, "unix:///from-flag.sock");
        // Only a runtime endpoint: the image service follows it.
        let flags = KubeletFlags {
            container_runtime_endpoint: Some("unix:///rt.sock".into()),
            ..Default::default()
        };
        assert_eq!(
            effective_endpoint(proc_dir.path(), &flags)
                .unwrap()
                .endpoint,
            "unix:///rt.sock"
        );
        let none = effective_endpoint(proc_dir.path(), &KubeletFlags::default()).unwrap();
        assert_eq!(none.endpoint, KUBELET_DEFAULT_ENDPOINT);
        // An unreadable or broken config is an error, never a guess.
        let flags = KubeletFlags {
            config: Some("missing.yaml".into()),
            ..Default::default()
        };
        assert!(matches!(
            effective_endpoint(proc_dir.path(), &flags),
            Err(KubeletConfigError::Read { .. })
        ));
        std::fs::write(d.path().join("broken.yaml"), "imageServiceEndpoint: [").unwrap();
        let flags = KubeletFlags {
            config: Some("broken.yaml".into()),
            ..Default::default()
        };
        assert!(matches!(
            effective_endpoint(proc_dir.path(), &flags),
            Err(KubeletConfigError::Parse { .. })
        ));
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let d = tempfile::tempdir().unwrap();
        let proc_dir = fake_proc(d.path());
        nix::unistd::mkfifo(&d.path().join("fifo.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        std::fs::write(
            d.path().join("big.yaml"),
            vec![b'#'; MAX_CONFIG_BYTES as usize + 1],
        )
        .unwrap();
        for (name, want) in [
            ("fifo.yaml", "not a regular file"),
            ("big.yaml", "larger than"),
        ] {
            let flags = KubeletFlags {
                config: Some(name.into()),
                ..Default::default()
            };
            let e = effective_endpoint(proc_dir.path(), &flags)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains(name), "{e}");
        }
    }

    #[test]
    fn symlinked_socket_paths_compare_equal() {
        let d = tempfile::tempdir().unwrap();
        let proc_dir = fake_proc(d.path());
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let _l = std::os::unix::net::UnixListener::bind(real.join("cri.sock")).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        let via_link = format!("unix://{}", d.path().join("link/cri.sock").display());
        assert!(reaches(proc_dir.path(), &via_link, &real.join("cri.sock")));
        assert!(!reaches(
            proc_dir.path(),
            "unix:///elsewhere.sock",
            &real.join("cri.sock")
        ));
        assert!(!reaches(
            proc_dir.path(),
            "tcp://x:1",
            &real.join("cri.sock")
        ));
        // Not existing: compared as cleaned-up paths.
        assert!(reaches(
            proc_dir.path(),
            "unix:///run//pw/./cri.sock",
            Path::new("/run/pw/cri.sock")
        ));
    }
}
