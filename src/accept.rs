//! The one accept loop of the daemon's three servers (CRI socket, admin socket, metrics
//! port): accept until shutdown, survive accept errors, and hold at most a fixed number
//! of connections open, so a client that opens connections without end runs out of
//! permits, not the daemon out of file descriptors.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Listeners the loop can serve.
pub trait Listener {
    type Io;
    fn accept_one(&self) -> impl std::future::Future<Output = std::io::Result<Self::Io>>;
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_one(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_one(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Accepts connections on `listener` until `shutdown` resolves and hands each to
/// `serve` with its permit (hold it for as long as the connection lives). With `limit`
/// connections open, the next one waits in the listen backlog until one closes.
/// `what` names the server in logs.
pub async fn accept_loop<L, S, F>(
    listener: &L,
    limit: usize,
    what: &'static str,
    shutdown: S,
    mut serve: F,
) where
    L: Listener,
    S: std::future::Future<Output = ()>,
    F: FnMut(L::Io, OwnedSemaphorePermit),
{
    let permits = Arc::new(Semaphore::new(limit));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let io = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept_one() => match accepted {
                Ok(io) => io,
                Err(e) => {
                    // EMFILE and friends: keep serving, back off a little.
                    tracing::warn!(server = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        serve(io, permit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_over_the_limit_wait_for_one_to_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            accept_loop(
                &listener,
                2,
                "test",
                async {
                    let _ = stop_rx.await;
                },
                |io, permit| {
                    let _ = held_tx.send((io, permit));
                },
            )
            .await;
        });
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let first = held_rx.recv().await.unwrap();
        let _second = held_rx.recv().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(200), held_rx.recv()).await;
        assert!(
            third.is_err(),
            "a third connection was served over the limit of 2"
        );
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), held_rx.recv()).await;
        assert!(
            matches!(third, Ok(Some(_))),
            "the waiting connection was not served"
        );
        let _ = stop_tx.send(());
        server.await.unwrap();
    }
}
