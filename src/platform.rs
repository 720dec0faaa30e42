//! The host platform as OCI image indexes name it (`GOARCH` spelling, per the OCI image
//! spec's `platform.architecture`): one function for signature lookup and layer scans.

/// The architecture this binary runs on, in OCI/Go spelling: `x86_64` → `amd64`,
/// `aarch64` → `arm64`, `x86` (i686) → `386`, `powerpc64` → `ppc64le`; `arm`, `s390x`,
/// `riscv64` and others keep Rust's name, which matches Go's.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_arch_uses_oci_names() {
        let arch = super::host_arch();
        assert!(
            !["x86_64", "aarch64", "x86", "i686"].contains(&arch),
            "{arch}"
        );
    }
}
