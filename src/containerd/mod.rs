//! containerd API access: images, leases, content info and paths, delete.
