//! Dialling a gRPC server on a unix socket (pullwarden's CRI socket, containerd's):
//! the one helper the CLI, the doctor's canary and the tests use.

use std::path::Path;

use tonic::transport::{Channel, Endpoint};

/// A tonic channel over the unix socket `socket`, connected now (the URI is a
/// placeholder; the connector dials). Errors: the socket cannot be connected.
pub async fn channel(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
}
