//! The gate's seams implemented with the real parts, one adapter per file: the
//! registry ([`SignatureSource`](super::SignatureSource)), the layer scanner
//! ([`ImageScanner`](super::ImageScanner)), the verdict store
//! ([`VerdictCache`](super::VerdictCache)) and containerd's images API
//! ([`ImageStore`](super::ImageStore)).

pub mod containerd;
pub mod registry;
pub mod scanner;
pub mod store;

pub use registry::RegistrySignatures;
pub use scanner::LayerScanner;
