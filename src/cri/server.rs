//! Unix socket binding (stale-socket handling, group and mode) and the HTTP/2 accept
//! loop with graceful drain.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UnixListener;

use super::Proxy;
use super::io::UnixIo;
use super::relay::{self, RecvBody};

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("socket directory {} does not exist (the systemd unit's RuntimeDirectory= creates /run/pullwarden; create it or change the path)", .0.display())]
    MissingDirectory(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error("{} is in use by a running process (another pullwarden?)", .0.display())]
    InUse(PathBuf),
    #[error("socket group {0:?} does not exist")]
    UnknownGroup(String),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Binds a unix socket at `path`, replacing a stale socket file left by a crashed run
/// (but never a live socket or a non-socket file), then sets group `group` and mode 0660.
pub fn bind_socket(path: &Path, group: &str) -> Result<UnixListener, BindError> {
    let std_listener = bind_socket_std(path, group)?;
    let io = |source| BindError::Io {
        action: "registering",
        path: path.to_path_buf(),
        source,
    };
    std_listener.set_nonblocking(true).map_err(io)?;
    UnixListener::from_std(std_listener).map_err(io)
}

/// [`bind_socket`] without a runtime: a blocking std listener.
pub fn bind_socket_std(
    path: &Path,
    group: &str,
) -> Result<std::os::unix::net::UnixListener, BindError> {
    let io = |action: &'static str| {
        let path = path.to_path_buf();
        move |source| BindError::Io {
            action,
            path,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    if !dir.as_os_str().is_empty() && !dir.is_dir() {
        return Err(BindError::MissingDirectory(dir.to_path_buf()));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(BindError::InUse(path.to_path_buf()));
            }
            std::fs::remove_file(path).map_err(io("removing stale socket"))?;
        }
        Ok(_) => return Err(BindError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspecting")(e)),
    }
    let gid = nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .ok_or_else(|| BindError::UnknownGroup(group.to_string()))?
        .gid;
    // Bound inside a private directory (0700) and given its group and mode there, then
    // renamed into place: the socket never appears at `path` with the umask's mode, so
    // nobody outside the group can connect in between.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let base = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let private = base.join(format!(".pullwarden-bind-{}-{nanos}", std::process::id()));
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(io("creating a private directory beside"))?;
    }
    let staged = private.join("socket");
    let placed = (|| {
        let listener = std::os::unix::net::UnixListener::bind(&staged).map_err(io("binding"))?;
        nix::unistd::chown(&staged, None, Some(gid))
            .map_err(|e| io("setting the group of")(std::io::Error::from(e)))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o660))
            .map_err(io("setting the mode of"))?;
        std::fs::rename(&staged, path).map_err(io("moving the socket into place at"))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    placed
}

/// Serves HTTP/2 (gRPC) on `listener` until `shutdown` resolves, then stops accepting,
/// tells every client to go away (HTTP/2 GOAWAY), lets calls in flight finish for up
/// to `drain`, and returns.
pub async fn serve<S>(listener: UnixListener, proxy: Proxy, shutdown: S, drain: Duration)
where
    S: std::future::Future<Output = ()>,
{
    let proxy = Arc::new(proxy);
    // Every connection holds a receiver: `closed()` resolves when the last one ends.
    let (draining, _) = tokio::sync::watch::channel(false);
    crate::accept::accept_loop(
        &listener,
        MAX_CONNECTIONS,
        "cri",
        shutdown,
        |stream, permit| {
            // Who is connected (the kubelet or not), for `pullwarden doctor`.
            let peer = proxy.peer(stream.peer_cred().ok().and_then(|c| c.pid()));
            let io = match UnixIo::from_tokio(stream) {
                Ok(io) => io,
                Err(e) => {
                    tracing::warn!(error = %e, "registering a CRI client connection failed");
                    return;
                }
            };
            let (proxy, draining) = (proxy.clone(), draining.subscribe());
            tokio::spawn(async move {
                connection(io, proxy, draining).await;
                drop(peer);
                drop(permit);
            });
        },
    )
    .await;
    tracing::info!("draining calls in flight");
    let _ = draining.send(true);
    if tokio::time::timeout(drain, draining.closed())
        .await
        .is_err()
    {
        tracing::warn!(?drain, "drain timeout: closing remaining connections");
    }
}

/// One kubelet (or crictl) connection: accepts its streams and runs each call as its
/// own task, so a slow PullImage never holds up an ImageStatus behind it.
async fn connection(
    io: UnixIo,
    proxy: Arc<Proxy>,
    mut draining: tokio::sync::watch::Receiver<bool>,
) {
    let mut conn = match h2::server::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(8 << 20)
        .max_concurrent_streams(MAX_CONCURRENT_CALLS)
        // CRI metadata is a few hundred bytes; h2's default would buffer 16 MiB.
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(io)
        .await
    {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(error = %e, "CRI client connection failed its HTTP/2 handshake");
            return;
        }
    };
    let mut going_away = false;
    let mut refused_before = false;
    // After a call arrives, the connection polls for the client's next one for a short
    // while instead of sleeping: a client that paces its calls (Python grpcio spends
    // ~0.3 ms of its own between them) otherwise finds the daemon's vCPU halted and pays
    // its wake-up on every call (the cri_proxy bench with grpcio: +120 µs at p50
    // sleeping). Bounded per call; a connection without calls sleeps.
    let linger = proxy.linger();
    let mut lingering_until: Option<std::time::Instant> = None;
    let mut granted = std::time::Duration::ZERO;
    let mut polling = std::time::Instant::now();
    // Whether the last poll ended in a call the client then waited for.
    let mut caught = false;
    loop {
        // A poll that caught the client's next call was worth it: its time is charged
        // to the larger budget for such polls (and to the idle one only if the client
        // then cancels the call, see `call`). What a poll spent waiting for a call that
        // did not come is charged to the idle budget; the rest of a grant goes back.
        let spent = polling.elapsed().min(granted);
        if caught {
            LINGER_BUDGET.refund(granted);
            CAUGHT_BUDGET.refund(granted.saturating_sub(spent));
        } else {
            LINGER_BUDGET.refund(granted.saturating_sub(spent));
            CAUGHT_BUDGET.refund(granted);
        }
        let left = lingering_until
            .map(|u| u.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_default();
        granted = CAUGHT_BUDGET.take(LINGER_BUDGET.take(left));
        polling = std::time::Instant::now();
        caught = false;
        tokio::select! {
            next = super::wait::busy_wait(conn.accept(), granted) => match next {
                Some(Ok((req, respond))) => {
                    if let Some(refused) = req.extensions().get::<h2::ext::RefusedRequest>() {
                        refuse(&proxy, refused, respond, !refused_before);
                        refused_before = true;
                        continue;
                    }
                    let polled = polling.elapsed();
                    caught = polled < granted;
                    let charge_if_cancelled = if caught { polled } else { Duration::ZERO };
                    lingering_until = Some(std::time::Instant::now() + linger);
                    tokio::spawn(call(proxy.clone(), req, respond, charge_if_cancelled));
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "CRI client connection ended with an error");
                    break;
                }
                None => break,
            },
            _ = draining.changed(), if !going_away => {
                going_away = true;
                conn.graceful_shutdown();
            }
        }
    }
}

/// How long all client connections together may poll, per second, for calls that then
/// did not come (or that the client cancelled at once): a client that calls once and
/// goes quiet, trickles calls just slower than the linger, or opens and resets streams
/// every millisecond cannot keep a core spinning; past it, connections sleep between
/// calls as before.
const LINGER_PER_SECOND: std::time::Duration = std::time::Duration::from_millis(100);

/// How long all client connections together may poll, per second, for calls that did
/// come. Under a steady client the connection polls all the time between its calls (a
/// call takes ~0.45 ms through the hop with Python grpcio, and the poll for the next
/// one starts as each arrives), so the budget is what part of a core such a client may
/// keep busy. Charging those polls to [`LINGER_PER_SECOND`] ran it dry within the first
/// tenth of every second: the cri_proxy bench's grpcio hop went from +55–68 to
/// +110–124 µs at p50 (same runs, same machine), as if the daemon never polled. With
/// 500 ms per second here it measured +95 µs (main +114–120 in the same runs), with
/// 750 ms +47 and +72 µs (main +92 and +100 in the same runs), uncapped +31–49 µs.
const CAUGHT_PER_SECOND: std::time::Duration = std::time::Duration::from_millis(750);

/// A shared linger budget: microseconds spent in the current second.
struct LingerBudget {
    per_second: std::time::Duration,
    second: std::sync::atomic::AtomicU64,
    spent_us: std::sync::atomic::AtomicU64,
}

static LINGER_BUDGET: LingerBudget = LingerBudget::new(LINGER_PER_SECOND);
static CAUGHT_BUDGET: LingerBudget = LingerBudget::new(CAUGHT_PER_SECOND);

impl LingerBudget {
    const fn new(per_second: std::time::Duration) -> LingerBudget {
        LingerBudget {
            per_second,
            second: std::sync::atomic::AtomicU64::new(0),
            spent_us: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now_second() -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs()
    }

    /// Up to `want` of polling, as far as this second's budget allows (approximate
    /// under races, never more than a few grants over).
    fn take(&self, want: std::time::Duration) -> std::time::Duration {
        use std::sync::atomic::Ordering::Relaxed;
        if want.is_zero() {
            return want;
        }
        let now = Self::now_second();
        if self.second.swap(now, Relaxed) != now {
            self.spent_us.store(0, Relaxed);
        }
        let budget = micros(self.per_second);
        let spent = self.spent_us.load(Relaxed);
        let grant = micros(want).min(budget.saturating_sub(spent));
        self.spent_us.fetch_add(grant, Relaxed);
        std::time::Duration::from_micros(grant)
    }

    /// Charges `spent` after the fact (a poll's call the client then cancelled).
    fn charge(&self, spent: std::time::Duration) {
        self.spent_us
            .fetch_add(micros(spent), std::sync::atomic::Ordering::Relaxed);
    }

    fn refund(&self, unused: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let us = micros(unused);
        if us > 0 {
            let _ = self
                .spent_us
                .fetch_update(Relaxed, Relaxed, |s| Some(s.saturating_sub(us)));
        }
    }
}

/// The most CRI connections open at once (the kubelet holds one or two; crictl one per
/// command).
const MAX_CONNECTIONS: usize = 256;

/// Largest header block a client may send (HPACK-decoded size).
pub const MAX_HEADER_LIST: u32 = 64 << 10;

/// The most calls one client may have open at once (the kubelet pulls a few images in
/// parallel and polls status; this only stops a runaway client).
const MAX_CONCURRENT_CALLS: u32 = 1024;

/// A request whose head the HTTP/2 layer could not read as a request (no `:path`, a
/// malformed `:path` or `:scheme`, `:status` on a request; see the h2 patch's
/// `RefusedRequest`). containerd resets such streams with `PROTOCOL_ERROR`, and so do
/// we; the call is counted (as the `INTERNAL` clients report) and logged, once per
/// connection so a looping client cannot flood the journal.
fn refuse(
    proxy: &Proxy,
    refused: &h2::ext::RefusedRequest,
    mut respond: h2::server::SendResponse<Bytes>,
    log: bool,
) {
    let path = refused.path().unwrap_or("");
    if log {
        tracing::warn!(
            reason = refused.reason(),
            path,
            "CRI client sent a request head that cannot be served; stream reset with PROTOCOL_ERROR (logged once per connection)"
        );
    }
    respond.send_reset(h2::Reason::PROTOCOL_ERROR);
    proxy.record_call(
        if path.is_empty() { "_refused" } else { path },
        Some(relay::reset_code(h2::Reason::PROTOCOL_ERROR)),
        Duration::ZERO,
    );
}

/// One client call. `charge_if_cancelled`: the linger poll that caught it, charged to
/// the idle budget if the client cancels the call (a stream opened and reset is no call
/// worth polling for).
async fn call(
    proxy: Arc<Proxy>,
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    charge_if_cancelled: Duration,
) {
    let started = std::time::Instant::now();
    let path = req.uri().path().to_string();
    let req = req.map(RecvBody::boxed);
    // A client that resets the stream (the kubelet's call deadline, a crictl ^C) drops
    // the forwarded call, which resets it upstream. PullImage evaluations run on their
    // own task in the gate and are not cancelled by this.
    let resp = tokio::select! {
        resp = proxy.handle(req) => resp,
        reason = std::future::poll_fn(|cx| respond.poll_reset(cx)) => {
            tracing::debug!(?reason, "CRI client cancelled a call");
            LINGER_BUDGET.charge(charge_if_cancelled);
            proxy.record_call(&path, None, started.elapsed());
            return;
        }
    };
    let code = relay::respond(respond, resp).await;
    proxy.record_call(&path, code, started.elapsed());
}

/// Whole microseconds of `d`, saturating (the budgets here are milliseconds).
fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_appears_with_its_mode_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cri.sock");
        let _listener = bind_socket_std(&path, "root").unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o660);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("cri.sock")]);
        // The bound socket is the one at the path: a client reaches it.
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        // A second bind of a live socket is refused, as before.
        assert!(matches!(
            bind_socket_std(&path, "root"),
            Err(BindError::InUse(_))
        ));
    }
}
