//! CRI gRPC server on the unix socket: byte-level forwarding of every method, and the two intercepted calls (PullImage, ImageStatus).
