//! Fleet scale through the registry: a node that scanned an image publishes a signed
//! scan attestation (in-toto Statement v1 in DSSE) as an OCI 1.1 referrer of the image's
//! manifest; a node that trusts the signer uses it instead of reading the layers, and
//! still judges with its own policy and vulnerability database.
//!
//! - [`dsse`]: envelopes and statements, generic (any predicate).
//! - [`attestation`]: the scan predicate, building it and the whole acceptance rule.
//! - [`publish`] / [`consume`]: the registry side.
//! - [`config`]: `[fleet]`; [`node`]: the seam the gate calls.

pub mod attestation;
pub mod config;
pub mod consume;
pub mod dsse;
pub mod keys;
pub mod node;
pub mod publish;

pub use attestation::{ImageBinding, PREDICATE_TYPE, Rejection, Verified};
pub use config::{FleetConfig, FleetKeys, RawFleet};
pub use consume::{
    Attested, ConsumeLimits, IgnoreReason, Ignored, Lookup, Prefetched, ScanSource, Trust, consume,
};
pub use keys::AttestationSigner;
pub use node::{Fleet, FleetCounters, Prefetch};
pub use publish::{ARTIFACT_TYPE, PublishError, Published, publish};
