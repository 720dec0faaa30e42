//! Admin API on the second unix socket, and the metrics endpoint.
