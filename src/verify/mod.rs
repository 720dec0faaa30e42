//! cosign/sigstore signature verification: keys, keyless, bundles. No policy decisions.
