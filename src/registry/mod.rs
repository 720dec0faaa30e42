//! OCI distribution client for manifests, referrers and signature blobs, with the pull's own credentials.
