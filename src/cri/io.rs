//! The unix-socket transport under both HTTP/2 connections (kubelet side and
//! containerd side), registered with epoll for readability only.
//!
//! Hand-written because tokio's `UnixStream` always registers both directions,
//! edge-triggered, and on a unix socket every read by the peer signals `EPOLLOUT` to
//! the writer (the kernel's `unix_write_space`). For a proxy that writes a small
//! request and then waits, that is one wasted wake-up of the daemon per socket per
//! call, a context switch that cost more than the forwarding itself on the benchmark
//! VM. Here writes go straight to the socket; only when the send buffer is full is a
//! duplicate of the descriptor registered for writability, for as long as the socket
//! stays full.
//!
//! Writes are also gathered until the writing task has nothing left to add: h2 flushes
//! after every DATA frame over 256 bytes, so a unary answer would leave as HEADERS+DATA
//! and then the trailers in a second write, waking the kubelet twice. Here the first
//! flush of a batch only re-queues the connection's task; when it runs again and has
//! written nothing new, the batch goes out in one `write`. That first flush reports
//! success early, which is sound only for a writer that flushes on every poll, as h2's
//! connections do: this type is for those connections and nothing else.

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

pub struct UnixIo {
    read: AsyncFd<UnixStream>,
    /// Registered only while a write waits for buffer space.
    write_wait: Option<AsyncFd<UnixStream>>,
    /// Bytes written but not yet sent.
    out: bytes::BytesMut,
    /// A flush already re-queued the task once for what is in `out`.
    deferred: bool,
}

/// Most bytes gathered before they are sent regardless (bigger writes go straight out).
const GATHER_MAX: usize = 64 << 10;

impl UnixIo {
    pub fn new(stream: UnixStream) -> io::Result<UnixIo> {
        stream.set_nonblocking(true)?;
        Ok(UnixIo {
            read: register(stream, Interest::READABLE)?,
            write_wait: None,
            out: bytes::BytesMut::new(),
            deferred: false,
        })
    }

    pub fn from_tokio(stream: tokio::net::UnixStream) -> io::Result<UnixIo> {
        UnixIo::new(stream.into_std()?)
    }

    pub async fn connect(path: &std::path::Path) -> io::Result<UnixIo> {
        UnixIo::from_tokio(tokio::net::UnixStream::connect(path).await?)
    }

    /// Sends everything gathered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            let sent = self.poll_write_with(cx, |s| (&*s).write(&out));
            self.out = out;
            match ready!(sent) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    let _ = self.out.split_to(n);
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.deferred = false;
        Poll::Ready(Ok(()))
    }

    fn poll_gather(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.out.len() + total > GATHER_MAX {
            ready!(self.poll_drain(cx))?;
            if total > GATHER_MAX {
                return self.poll_write_with(cx, |s| (&*s).write_vectored(bufs));
            }
        }
        for b in bufs {
            self.out.extend_from_slice(b);
        }
        self.deferred = false;
        Poll::Ready(Ok(total))
    }

    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&UnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if self.write_wait.is_none() {
            match retry_interrupted(|| write(self.read.get_ref())) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let dup = self.read.get_ref().try_clone()?;
                    // Registering reports the current state, so space freed between the
                    // failed write and this call is not missed.
                    self.write_wait = Some(register(dup, Interest::WRITABLE)?);
                }
                done => return Poll::Ready(done),
            }
        }
        let Some(wait) = self.write_wait.as_ref() else {
            return Poll::Ready(Err(io::Error::other("write wait vanished")));
        };
        loop {
            let mut guard = ready!(wait.poll_write_ready(cx))?;
            match guard.try_io(|fd| retry_interrupted(|| write(fd.get_ref()))) {
                Ok(done) => {
                    if done.is_ok() {
                        // Room again: back to read-only interest.
                        self.write_wait = None;
                    }
                    return Poll::Ready(done);
                }
                Err(_would_block) => continue,
            }
        }
    }
}

/// Registers `stream` with the runtime's reactor for `interest` only.
#[allow(unsafe_code)]
fn register(stream: UnixStream, interest: Interest) -> io::Result<AsyncFd<UnixStream>> {
    // SAFETY: a `UnixStream` owns its descriptor: `as_raw_fd` returns the same open
    // descriptor for as long as the `AsyncFd` owns the stream, and nothing else closes it.
    unsafe { AsyncFd::register_with_interest(stream, interest) }.map_err(|e| e.into())
}

impl Drop for UnixIo {
    fn drop(&mut self) {
        // Best effort for bytes still gathered when the connection is dropped without a
        // shutdown (an error path): one non-blocking write.
        if !self.out.is_empty() {
            let _ = self.read.get_ref().write(&self.out);
        }
    }
}

fn retry_interrupted(mut f: impl FnMut() -> io::Result<usize>) -> io::Result<usize> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl AsyncRead for UnixIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut guard = ready!(this.read.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let want = unfilled.len();
            match guard.try_io(|fd| retry_interrupted(|| fd.get_ref().read(unfilled))) {
                Ok(Ok(n)) => {
                    // A short read drained the socket (as tokio's own streams assume):
                    // skip the read that would only say EAGAIN.
                    if n > 0 && n < want {
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for UnixIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_gather(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_gather(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if !this.deferred {
            // Let the task finish what it is writing: it is polled again right away,
            // flushes again, and then the batch goes out.
            this.deferred = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        this.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Poll::Ready(this.read.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_full_send_buffer_waits_for_room_and_loses_nothing() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut a = UnixIo::new(a).unwrap();
        let mut b = UnixIo::new(b).unwrap();
        // Far more than a unix socket buffers, so the writer must wait for the reader.
        let data: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&data).await.unwrap();
            a.shutdown().await.unwrap();
            a
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        let a = writer.await.unwrap();
        assert!(got == expect, "bytes differ");
        assert!(
            a.write_wait.is_none(),
            "write interest kept after the buffer drained"
        );
    }

    #[tokio::test]
    async fn a_closed_peer_reads_as_eof_and_writes_fail() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut a = UnixIo::new(a).unwrap();
        drop(b);
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).await.unwrap(), 0);
        a.write_all(b"x").await.unwrap();
        a.flush().await.unwrap(); // deferred
        assert!(a.flush().await.is_err());
    }

    #[tokio::test]
    async fn writes_of_one_batch_leave_together_on_the_second_flush() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut a = UnixIo::new(a).unwrap();
        b.set_nonblocking(true).unwrap();
        a.write_all(b"HEADERS+DATA").await.unwrap();
        a.flush().await.unwrap();
        a.write_all(b"|trailers").await.unwrap();
        a.flush().await.unwrap();
        let mut buf = [0u8; 64];
        assert!(
            (&b).read(&mut buf).is_err(),
            "sent before the batch was complete"
        );
        a.flush().await.unwrap();
        let n = (&b).read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"HEADERS+DATA|trailers");
    }
}
