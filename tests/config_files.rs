//! The shipped config and unit files stay valid.

#[test]
fn shipped_config_is_valid_and_equals_the_defaults() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pullwarden.toml");
    let cfg = pullwarden::config::Config::load(&path, true).unwrap();
    let defaults = pullwarden::config::Config::default();
    assert_eq!(cfg.server, defaults.server);
    assert_eq!(cfg.registry, defaults.registry);
    assert_eq!(cfg.scan, defaults.scan);
}

#[test]
fn systemd_unit_has_the_contract() {
    let unit = include_str!("../systemd/pullwarden.service");
    for want in [
        "Type=notify",
        "After=containerd.service",
        "Requires=containerd.service",
        "Before=kubelet.service",
        "Restart=always",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(want), "unit lacks {want}");
    }
    // Every hardening directive carries a comment above it (house rule).
    let dropin = include_str!("../systemd/kubelet-pullwarden.conf");
    assert!(dropin.contains("--image-service-endpoint=unix:///run/pullwarden/cri.sock"));
}
