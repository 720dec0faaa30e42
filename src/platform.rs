//! The host platform as OCI image indexes name it (`GOARCH` spelling, per the OCI image
//! spec's `platform.architecture`): one function for signature lookup and layer scans,
//! and the platform an index entry is chosen for (see `crate::oci::select_manifest`).

/// A platform as OCI image indexes name one (`platform.os`, `.architecture`, `.variant`,
/// Go spelling). Displays as `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// linux on the architecture this binary runs on, in OCI spelling, any variant.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: host_arch().into(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

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
