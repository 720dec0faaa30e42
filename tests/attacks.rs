//! Attacks on the scan's final-image view (issue 11) and on the gate (issue 10), found
//! by a review that tried to hide packages, secrets and signers from this code. Each
//! failed against the first version of that work; each is now a regression test of the
//! fix (the doc comment on each says what the attack was).

use pullwarden::report::{FileFindingKind, PackageType, ScanReport};

use crate::scan::{DPKG_STATUS, SIX_LIST, go_binary, kinds, names, scan};
use crate::support::image::{Compression, Entry, Layer};

fn layer(entries: &[Entry]) -> Layer {
    Layer::from_entries(entries, Compression::Gzip)
}

fn deb(r: &ScanReport) -> Vec<String> {
    names(r, PackageType::Deb)
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

const LODASH_OLD: &str = r#"{"name":"lodash","version":"4.17.15"}"#;
const URLLIB3_OLD: &str = "Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.4\n";

// ------------------------------------------------------------------ hard-link chains

/// A link that needs no examination at its own path (a noise path: `var/lib/dpkg/` is
/// not searched for secrets, and `status-old` routes nowhere) is recorded with the
/// target's `route` but *no outputs*. A second link to it at a path with that same
/// route is then "covered" and copies those empty outputs. Replacing the original
/// database by the second link (same inode, same bytes) leaves the image's dpkg
/// database fully intact while the scan reports no package at all (checked on containerd
/// 1.6: the imported image's `var/lib/dpkg/status` and `status-old` are one inode with
/// the full database).
#[test]
fn attack_link_chain_through_a_noise_path_hides_the_dpkg_database() {
    let r = scan(&[layer(&[
        Entry::file("var/lib/dpkg/status", DPKG_STATUS),
        Entry::hardlink("var/lib/dpkg/status-old", "var/lib/dpkg/status"),
        // Extraction: remove var/lib/dpkg/status, link it to status-old (the same inode).
        Entry::hardlink("var/lib/dpkg/status", "var/lib/dpkg/status-old"),
    ])]);
    assert_eq!(
        deb(&r),
        ["libc6", "libgcc-s1", "python3-six"],
        "the final image's /var/lib/dpkg/status holds these packages"
    );
}

/// The same flaw the way uv lays out site-packages: the installed package.json is a link
/// to a link to a cache file, and the cache is removed in a later layer.
#[test]
fn attack_link_chain_hides_an_npm_package_when_the_cache_is_removed() {
    let cache = "root/.cache/pkgs/lodash/package.json";
    let r = scan(&[
        layer(&[
            Entry::file(cache, LODASH_OLD),
            // A noise path (`/node_modules/` segment) that routes nowhere.
            Entry::hardlink("srv/node_modules/.staging/lodash.json", cache),
            Entry::hardlink(
                "app/node_modules/lodash/package.json",
                "srv/node_modules/.staging/lodash.json",
            ),
        ]),
        layer(&[Entry::whiteout("root/.cache"), Entry::whiteout("srv")]),
    ]);
    assert_eq!(
        names(&r, PackageType::Npm),
        [("lodash".to_string(), "4.17.15".to_string())],
        "app/node_modules/lodash/package.json is in the final image"
    );
}

/// A Go binary stored first at a path that has an analyzer route (here a file named
/// `package.json`; `.jar`, `.egg`, `.egg-info` … work the same): its `Held.route` is
/// `Some(route)` because the npm analyzer pushed an (empty) inventory file, so the link
/// at `usr/local/bin/server` (route None) is not considered to carry binary packages
/// (`binary_packages` requires `held.route.is_none()`) and copies nothing. Deleting the
/// first path in an upper layer removes the Go modules from the inventory, while the
/// binary ships and runs.
#[test]
fn attack_go_binary_at_a_metadata_path_linked_elsewhere_hides_its_modules() {
    let r = scan(&[
        layer(&[
            Entry::file_mode("build/package.json", go_binary(), 0o755),
            Entry::hardlink("usr/local/bin/server", "build/package.json"),
        ]),
        layer(&[Entry::whiteout("build")]),
    ]);
    let uuid = r
        .packages
        .iter()
        .find(|p| p.name == "github.com/google/uuid");
    assert!(
        uuid.is_some_and(|p| p.path == "/usr/local/bin/server"),
        "the shipped binary's modules: {:?}",
        r.packages
    );
}

/// The same chain for secrets: the secret in the final image at `/app/.env` is not
/// reported there; only the deleted original is (marked `deleted_in_final_image`). It
/// still denies under `secrets = "deny"`, but `explain` tells the operator the secret
/// is gone from the running image when it is not, and under `secrets = "warn"` the
/// warning says the same.
#[test]
fn attack_link_chain_reports_a_shipped_secret_as_deleted() {
    const AWS_ENV: &str = "AWS_ACCESS_KEY_ID=AKIAZ4QW7XKJ2BPLMN3R\nAWS_SECRET_ACCESS_KEY=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\n";
    let r = scan(&[
        layer(&[
            Entry::file("tmp/creds", AWS_ENV),
            Entry::hardlink("usr/share/doc/app/creds", "tmp/creds"),
            Entry::hardlink("app/.env", "usr/share/doc/app/creds"),
        ]),
        layer(&[Entry::whiteout("tmp"), Entry::whiteout("usr/share/doc/app")]),
    ]);
    let in_final: Vec<_> = r
        .secrets
        .iter()
        .filter(|s| s.rule == "aws-access-key-id" && !s.deleted_in_final_image)
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(in_final, ["/app/.env"], "{:?}", r.secrets);
}

// ------------------------------------------------------------------ whiteouts

/// An opaque marker at the layer root (`/.wh..wh..opq`) is taken as hiding every lower
/// layer (`opaque_dirs` gets `""`, and `strictly_under(_, "")` is true for every path).
/// containerd's overlayfs applier turns it into `trusted.overlay.opaque=y` on the
/// snapshot's root directory, and overlayfs ignores opacity on a layer's root
/// (checked on this machine: lowerdir=top:bottom with the xattr on top's root still
/// shows bottom's files; the same xattr on a subdirectory hides them; and end to end on
/// containerd 1.6 with the overlayfs snapshotter, `ctr images import` + `images mount`
/// of such an image shows the lower `var/lib/dpkg/status`). On the default
/// snapshotter, the running image has every lower-layer package; the scan reports none.
/// One empty file hides the whole base image's inventory.
#[test]
fn attack_a_root_opaque_marker_hides_every_lower_layer() {
    let r = scan(&[
        layer(&[
            Entry::file("var/lib/dpkg/status", DPKG_STATUS),
            Entry::file("app/node_modules/lodash/package.json", LODASH_OLD),
        ]),
        layer(&[Entry::file(".wh..wh..opq", "")]),
    ]);
    // Not applied (as overlayfs does not), and the layer denied: other snapshotters
    // empty the root instead, so what the image holds depends on the node.
    assert_eq!(deb(&r), ["libc6", "libgcc-s1", "python3-six"]);
    assert_eq!(kinds(&r), [FileFindingKind::Malformed]);
    assert_eq!(
        names(&r, PackageType::Npm),
        [("lodash".to_string(), "4.17.15".to_string())]
    );
}

/// An upper layer that puts a plain file over a lower directory and then, later in the
/// same layer, a directory at the same path again: the PathSet keeps both keys, and the
/// file key at an ancestor makes every lower path below it "replaced". containerd's
/// overlayfs applier removes the file and creates a plain (not opaque) directory in the
/// snapshot, so the lower layer's files show through again. Checked on containerd 1.6
/// with the overlayfs snapshotter (`ctr images import` + `images mount`): the lower
/// `var/lib/dpkg/status` is in the mounted rootfs. The scan reports no package.
#[test]
fn attack_a_file_then_a_directory_over_a_parent_hides_lower_files() {
    let r = scan(&[
        layer(&[Entry::file("var/lib/dpkg/status", DPKG_STATUS)]),
        layer(&[
            Entry::file("var/lib/dpkg", "x\n"),
            Entry::dir("var/lib/dpkg"),
        ]),
    ]);
    assert_eq!(deb(&r), ["libc6", "libgcc-s1", "python3-six"]);
}

/// A whiteout of a directory followed, in the same layer, by a directory entry at the
/// same path: the scan applies the whiteout to the lower layers (as the OCI spec reads).
/// containerd's overlayfs applier makes the whiteout a 0/0 character device, then the
/// directory entry RemoveAll()s it and creates a plain, not opaque, directory: the lower
/// layer's `var/lib/dpkg/status` shows through (checked on containerd 1.6, overlayfs
/// snapshotter, `ctr images import` + `images mount`). Hidden from the scan.
#[test]
fn attack_a_whiteout_then_a_directory_in_one_layer_hides_lower_files() {
    let r = scan(&[
        layer(&[Entry::file("var/lib/dpkg/status", DPKG_STATUS)]),
        layer(&[
            Entry::whiteout("var"),
            Entry::dir("var"),
            Entry::file("var/new", "n\n"),
        ]),
    ]);
    assert_eq!(deb(&r), ["libc6", "libgcc-s1", "python3-six"]);
}

// ------------------------------------------------------------------ work

/// Composition checks every inventory file (and secret) of every layer against every
/// whiteout and opaque directory of every layer above it (`deleted_above`: a linear scan
/// of the lists) and against every inventory file above (`replaced_above`): work grows
/// with inventory files × whiteouts. One image with 10k `package.json` files below and
/// 100k whiteouts of paths that do not exist above (both far inside the entry limits,
/// 2M per layer; a few MiB compressed) takes the walk milliseconds and the composition
/// about 10^9 comparisons; at the limits it is ~10^12, hours of a gate CPU for one pull.
/// The whiteouts should be a sorted set / trie (as PathSet is), looked up per path.
#[test]
fn attack_whiteouts_times_inventory_files_is_quadratic() {
    let mut lower = Vec::new();
    for i in 0..10_000 {
        lower.push(Entry::file(
            &format!("app/node_modules/p{i}/package.json"),
            format!(r#"{{"name":"p{i}","version":"1.0.{i}"}}"#),
        ));
    }
    let mut upper = Vec::new();
    for i in 0..100_000 {
        upper.push(Entry::whiteout(&format!("srv/x/{i}")));
    }
    let upper = layer(&upper);
    // Baseline: the same two walks, the lower layer's packages under no whiteouts and
    // the whiteouts over a layer with 10 packages.
    let started = std::time::Instant::now();
    scan(&[layer(&lower)]);
    scan(&[layer(&lower[..10]), upper.clone()]);
    let walks = started.elapsed();
    let layers = [layer(&lower), upper];
    let started = std::time::Instant::now();
    let r = scan(&layers);
    let took = started.elapsed();
    assert_eq!(names(&r, PackageType::Npm).len(), 10_000);
    assert!(
        took < walks * 2 + std::time::Duration::from_secs(1),
        "10k packages under 100k whiteouts: {took:?}; the same walks without the product: {walks:?}"
    );
}

/// `LayerIndex::finish` drops replaced outputs by testing every inventory index against
/// every replaced range (`ranges.iter().any(..)` inside `retain`): quadratic in the
/// number of duplicate entries of one layer. 40k copies of one `package.json` (a layer
/// of ~20 MB of headers, a few hundred KiB compressed) cost 40k x 40k range tests; the
/// entry limit (2M) allows 2500 times that.
#[test]
fn attack_duplicate_entries_make_finish_quadratic() {
    let body = r#"{"name":"dup","version":"1.0.0"}"#;
    let distinct: Vec<Entry> = (0..40_000)
        .map(|i| Entry::file(&format!("app/node_modules/d{i}/package.json"), body))
        .collect();
    let same: Vec<Entry> = (0..40_000)
        .map(|_| Entry::file("app/node_modules/dup/package.json", body))
        .collect();
    let (distinct, same) = (layer(&distinct), layer(&same));
    let started = std::time::Instant::now();
    scan(&[distinct]);
    let baseline = started.elapsed();
    let started = std::time::Instant::now();
    let r = scan(&[same]);
    let took = started.elapsed();
    assert_eq!(names(&r, PackageType::Npm).len(), 1);
    assert!(
        took < baseline * 2 + std::time::Duration::from_secs(1),
        "40k duplicates of one path: {took:?}; 40k distinct paths: {baseline:?}"
    );
}

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A zipped `.egg` (or a `.jar`) is opened with `ZipArchive::new`, which parses the
/// whole central directory into memory before any member cap (`MAX_MEMBERS` in java.rs;
/// none at all in `python::parse_egg`) is looked at. Each central-directory record is
/// 46 bytes plus its name on disk and a few hundred bytes parsed, so a file of empty
/// members costs several times its size in memory, on top of the file itself held
/// whole (up to MAX_JAR = 256 MiB). Scaled down here (300k members, ~25 MB); at the
/// cap, ~5M members, a few GiB for one file of one layer: the daemon is OOM-killed and
/// every pull on the node fails until it restarts (and scans the same layer again).
#[test]
fn attack_an_egg_with_millions_of_members_costs_memory_many_times_its_size() {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..300_000u32 {
        w.start_file(format!("{i:x}"), opts).unwrap();
    }
    w.start_file("EGG-INFO/PKG-INFO", opts).unwrap();
    w.write_all(b"Metadata-Version: 1.2\nName: zipped\nVersion: 3.0\n")
        .unwrap();
    let egg = w.finish().unwrap().into_inner();
    let size_kib = egg.len() as u64 / 1024;
    let l = layer(&[Entry::file(
        "usr/local/lib/python3.11/site-packages/zipped-3.0-py3.11.egg",
        egg,
    )]);
    let before = vm_kib("VmRSS:");
    let r = scan(&[l]);
    let peak = vm_kib("VmHWM:");
    assert!(
        peak.saturating_sub(before) < 3 * size_kib + 64 * 1024,
        "scanning one {size_kib} KiB .egg raised the peak RSS by {} KiB ({} packages)",
        peak.saturating_sub(before),
        r.packages.len()
    );
}

// ------------------------------------------------------------------ OS ownership

/// Ownership comes from any `var/lib/dpkg/info/*.list` file, whether or not the package
/// it belongs to is installed (in the final dpkg database) and whether or not the list
/// itself is still in the image. One line in a made-up list silences a pip package.
#[test]
fn attack_a_made_up_dpkg_file_list_hides_a_pip_package() {
    let dist = "usr/local/lib/python3.11/site-packages/urllib3-1.26.4.dist-info";
    let r = scan(&[layer(&[
        Entry::file("var/lib/dpkg/status", DPKG_STATUS),
        Entry::file("var/lib/dpkg/info/python3-six.list", SIX_LIST),
        // No package "zz-owner" in the status database.
        Entry::file("var/lib/dpkg/info/zz-owner.list", format!("/{dist}\n")),
        Entry::file(&format!("{dist}/METADATA"), URLLIB3_OLD),
    ])]);
    assert_eq!(
        names(&r, PackageType::Python),
        [("urllib3".to_string(), "1.26.4".to_string())]
    );
    // The same with a list the image deletes again: it owns nothing in the final image.
    let r = scan(&[
        layer(&[
            Entry::file("var/lib/dpkg/status", DPKG_STATUS),
            Entry::file("var/lib/dpkg/info/zz-owner.list", format!("/{dist}\n")),
            Entry::file(&format!("{dist}/METADATA"), URLLIB3_OLD),
        ]),
        layer(&[Entry::whiteout("var/lib/dpkg/info/zz-owner.list")]),
    ]);
    assert_eq!(
        names(&r, PackageType::Python),
        [("urllib3".to_string(), "1.26.4".to_string())]
    );
}

/// The distroless layout rule ("no file lists: dpkg owns usr/lib/python3/dist-packages")
/// fires whenever *any* deb package was seen in *any* layer, even when the image has
/// dpkg file lists that say who owns what. A pip package placed in
/// `usr/lib/python3/dist-packages` (`pip install --target`, `--prefix=/usr`, or a
/// copied virtualenv) that no list owns is never reported.
#[test]
fn attack_the_dist_packages_layout_rule_hides_an_unowned_pip_package() {
    let r = scan(&[layer(&[
        Entry::file("var/lib/dpkg/status", DPKG_STATUS),
        Entry::file("var/lib/dpkg/info/python3-six.list", SIX_LIST),
        Entry::file(
            "usr/lib/python3/dist-packages/urllib3-1.26.4.dist-info/METADATA",
            URLLIB3_OLD,
        ),
    ])]);
    assert_eq!(
        names(&r, PackageType::Python),
        [("urllib3".to_string(), "1.26.4".to_string())],
        "no dpkg file list owns urllib3"
    );
}

// ------------------------------------------------------------------ replaced parents

/// A symlink over a parent directory *in the same layer* (containerd's applier
/// RemoveAll()s the directory) is only handled across layers (PathSet in compose): in
/// the same layer, the npm package below it is still reported: a package that is not
/// in the image (a false vulnerability that can deny a clean image, the kind issue 11
/// item 2 calls a bug).
#[test]
fn attack_a_same_layer_symlink_over_a_parent_keeps_ghost_packages() {
    let r = scan(&[layer(&[
        Entry::file("app/node_modules/lodash/package.json", LODASH_OLD),
        Entry::symlink("app", "/srv/app"),
    ])]);
    assert!(names(&r, PackageType::Npm).is_empty(), "{:?}", r.packages);
}

// ------------------------------------------------------------------ sizes

/// A package database over the analyzer's size limit at its own path is a NotExamined
/// finding. Reached through a hard link from an unremarkable path, the route is
/// filtered away by size and nothing at all is recorded: the database silently
/// disappears (NotExamined is only a warning either way, so padding the database past
/// 64 MiB hides every package; the link only removes the trace).
#[test]
fn attack_an_oversized_linked_database_leaves_no_trace() {
    let mut big = DPKG_STATUS.to_string();
    big.push('\n');
    let pad = format!(
        "Package: pad\nStatus: install ok installed\nVersion: 1\nDescription: {}\n\n",
        "x".repeat(1000)
    );
    while big.len() <= 64 << 20 {
        big.push_str(&pad);
    }
    let r = scan(&[
        layer(&[
            Entry::file("a/1", big),
            Entry::hardlink("var/lib/dpkg/status", "a/1"),
        ]),
        layer(&[Entry::whiteout("a")]),
    ]);
    assert!(
        r.files
            .iter()
            .any(|f| f.kind == FileFindingKind::NotExamined && f.path == "/var/lib/dpkg/status"),
        "{:?}",
        kinds(&r)
    );
}

// ================================================================== the gate

mod gate {
    use std::sync::atomic::Ordering;

    use crate::gate_flow::{Harness, push};
    use crate::support::cri::{images, pull_request};

    /// The gate flow harness (fake signatures and scanner, real containerd) under
    /// `policies`.
    async fn start(policies: &str) -> Harness {
        Harness::start_policies(policies).await
    }

    /// ImageStatus carries no namespace, so the gate admits an image when *any* matching
    /// non-off policy has an allow (or an audit verdict) for it. An unsigned image pulled
    /// in a namespace whose policy does not require signatures (or only audits) is then
    /// reported present to the kubelet for every namespace: a prod pod with
    /// `imagePullPolicy: IfNotPresent` runs it without ever calling PullImage, so the
    /// prod policy's signature requirement is never applied.
    #[tokio::test(flavor = "multi_thread")]
    async fn attack_image_status_admits_what_only_another_namespaces_policy_allowed() {
        let h = start(
            r#"
[[policy]]
name = "dev"
images = ["{registry}/it/nsleak-*"]
namespaces = ["dev"]

[[policy]]
name = "prod"
images = ["{registry}/it/nsleak-*"]
[policy.signatures]
keys = ["/etc/test.pub"]
"#,
        )
        .await;
        let (image, _) = push("nsleak", "nsleak-1").await; // unsigned
        let mut cri = images(&h.listen).await;
        cri.pull_image(pull_request(&image, "dev"))
            .await
            .expect("dev's policy needs no signature");
        // Sanity: a prod pull is denied.
        let err = cri
            .pull_image(pull_request(&image, "prod"))
            .await
            .unwrap_err();
        assert!(
            err.message().contains("denied by policy prod"),
            "{}",
            err.message()
        );
        // The dev pod pulls again (it is allowed there), and then the kubelet, for a
        // prod pod, asks ImageStatus: the prod policy never allowed this image.
        cri.pull_image(pull_request(&image, "dev")).await.unwrap();
        assert_eq!(h.sigs.verifications.load(Ordering::SeqCst), 1);
        assert!(
            !crate::support::cri::present(&h.listen, &image).await,
            "reported present with no allow under the prod policy: a prod pod runs it unsigned"
        );
    }

    /// `repo:tag@sha256:…` (a tag for humans, pinned by digest: a common pod-spec form).
    /// containerd's CRI stores it as `repo@sha256:…` (the tag is dropped), but the gate
    /// looks it up as `repo:tag@sha256:…`: "image missing right after its pull", a
    /// `GateError::Containerd`, which `is_outage()` calls an outage. Under
    /// `on_error = "deny"` every such pull of a signed, clean image fails; under
    /// `on_error = "allow"` it is let through *without a scan* (the signature was
    /// checked, the layers never are), and nothing is recorded but an error.
    #[tokio::test(flavor = "multi_thread")]
    async fn attack_a_tag_and_digest_reference_is_an_outage() {
        let h = start(
            r#"
[[policy]]
name = "failopen"
images = ["{registry}/it/tagdig-open-*"]
on_error = "allow"
[policy.signatures]
keys = ["/etc/test.pub"]

[[policy]]
name = "prod"
images = ["{registry}/**"]
[policy.signatures]
keys = ["/etc/test.pub"]
"#,
        )
        .await;
        let mut cri = images(&h.listen).await;
        // Fail closed: a signed, clean image cannot be pulled by tag@digest at all.
        let (image, img) = push("tagdig-closed", "tagdig-closed").await;
        h.sigs.signed.lock().unwrap().insert(img.digest.clone());
        let pinned = format!("{image}@{}", img.digest);
        let closed = cri.pull_image(pull_request(&pinned, "default")).await;
        // Fail open: allowed, but the scan never ran.
        let (image, img) = push("tagdig-open", "tagdig-open").await;
        h.sigs.signed.lock().unwrap().insert(img.digest.clone());
        let pinned_open = format!("{image}@{}", img.digest);
        let open = cri.pull_image(pull_request(&pinned_open, "default")).await;
        let scans = h.scanner.scans.load(Ordering::SeqCst);
        let outcome = (
            closed
                .as_ref()
                .map(|_| ())
                .map_err(|e| e.message().to_string()),
            open.as_ref()
                .map(|_| ())
                .map_err(|e| e.message().to_string()),
            scans,
        );
        assert_eq!(
            outcome,
            (Ok(()), Ok(()), 2),
            "(on_error=deny pull, on_error=allow pull, scans): every allowed image is scanned"
        );
    }
}

// ------------------------------------------------------------------ policy matching

/// Registry host names are case-insensitive and `:443` is the https default, so
/// containerd pulls `Registry.Example.COM/prod/app` and `registry.example.com:443/prod/app`
/// from the same registry and repository as `registry.example.com/prod/app`. The
/// reference keeps the host as written and the policy globs match it case-sensitively,
/// so these spellings match no policy: the pull is passed through unjudged, and
/// ImageStatus (`may_hide` → false) reports it present.
#[test]
fn attack_a_registry_host_spelled_differently_escapes_the_policy() {
    let config = pullwarden::config::Config::parse(
        r#"
[[policy]]
name = "prod"
images = ["registry.example.com/prod/**"]
[policy.signatures]
keys = ["/etc/test.pub"]
"#,
    )
    .unwrap();
    for spelled in [
        "Registry.Example.COM/prod/app:v1",
        "registry.example.com:443/prod/app:v1",
    ] {
        let r: pullwarden::reference::Reference = spelled.parse().unwrap();
        let name = r.to_string();
        assert_eq!(
            config.policy_for(&name, "default").map(|p| p.name.as_str()),
            Some("prod"),
            "{spelled} (normalized {name}) escapes the prod policy"
        );
    }
}

// ------------------------------------------------------------------ doctor

/// The kubelet normalizes flag names with `cliflag.WordSepNormalizeFunc` (`_` → `-`,
/// cmd/kubelet/app/server.go), so `--image_service_endpoint=…` is the image endpoint.
/// The doctor does not read it: a kubelet whose config file names pullwarden's socket
/// but whose command line says `--image_service_endpoint=unix:///run/containerd/…`
/// pulls straight from containerd while `doctor` reports the endpoint as pullwarden's.
#[test]
fn attack_doctor_misses_an_underscore_spelled_kubelet_flag() {
    use pullwarden::doctor::kubelet;
    let argv: Vec<String> = [
        "/usr/bin/kubelet",
        "--config=/var/lib/kubelet/config.yaml",
        "--image_service_endpoint=unix:///run/containerd/containerd.sock",
        "--container_runtime_endpoint",
        "unix:///run/containerd/containerd.sock",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let f = kubelet::parse_flags(&argv);
    assert_eq!(
        (
            f.image_service_endpoint.as_deref(),
            f.container_runtime_endpoint.as_deref()
        ),
        (
            Some("unix:///run/containerd/containerd.sock"),
            Some("unix:///run/containerd/containerd.sock")
        )
    );
}
