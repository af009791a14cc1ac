//! Serving HTTP on a TCP listener with every resource bounded (mini-redis' `server.rs` is the
//! model): hostile or broken peers can neither exhaust the process nor keep a legitimate one
//! out.
//!
//! - **Handshakes** (TLS, for the amphora agent) run at most `handshakes` at once and each
//!   within `handshake_timeout`. A connection arriving when all slots are taken evicts the
//!   *oldest* one still in its handshake instead of being refused: an unauthenticated peer
//!   holding idle or slow connections cannot keep the controller out, since the controller's
//!   own handshake takes milliseconds and the attacker's oldest connection goes first.
//! - **Established connections** are at most `connections`; the accept loop waits for a free
//!   slot (back-pressure through the kernel's backlog, as mini-redis), and a connection with no
//!   byte read or written for `idle_timeout` is closed, so slots always come back.
//! - **Accept errors** (out of descriptors, out of memory) back off exponentially up to one
//!   second instead of spinning.
//!
//! `serve` takes an already-bound listener, so tests inject one on `127.0.0.1:0`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections in their handshake at once; one more evicts the oldest.
    pub handshakes: usize,
    /// A handshake not done by then is dropped.
    pub handshake_timeout: Duration,
    /// Established connections at once; beyond, accepting waits for a free slot.
    pub connections: usize,
    /// A connection without a byte read or written for this long is closed. Also bounds how
    /// long a request's headers may take to arrive (slow-loris).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshakes: 256,
            handshake_timeout: Duration::from_secs(10),
            connections: 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What happened to connections, for tests and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Handshakes dropped to make room for a newer connection.
    pub evicted: AtomicU64,
    /// Handshakes that failed or took longer than `handshake_timeout`.
    pub failed_handshakes: AtomicU64,
    /// Accept errors (each followed by a back-off).
    pub accept_errors: AtomicU64,
}

/// The connections in their handshake, oldest first, each with the token that drops it.
#[derive(Default)]
struct Pending {
    next: u64,
    live: BTreeMap<u64, CancellationToken>,
}

impl Pending {
    /// Admits a new handshake, evicting the oldest when `max` are running.
    fn admit(&mut self, max: usize, counters: &Counters) -> (u64, CancellationToken) {
        while self.live.len() >= max.max(1) {
            if let Some((_, oldest)) = self.live.pop_first() {
                oldest.cancel();
                counters.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = self.next;
        self.next += 1;
        let token = CancellationToken::new();
        self.live.insert(id, token.clone());
        (id, token)
    }
}

/// Serves `app` on `listener` until `shutdown`, each accepted connection first going through
/// `handshake` (TLS, or none). At shutdown it stops accepting, lets requests in progress
/// finish (idle keep-alive connections are closed at once) and returns when every connection
/// has ended; the caller bounds that wait with its grace period.
pub async fn serve<H, F, Io>(
    listener: TcpListener,
    limits: Limits,
    handshake: H,
    app: axum::Router,
    counters: Arc<Counters>,
    shutdown: CancellationToken,
) where
    H: Fn(TcpStream) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = std::io::Result<Io>> + Send + 'static,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = TaskTracker::new();
    accept_loop(
        listener, limits, handshake, app, counters, &tracker, &shutdown,
    )
    .await;
    tracker.close();
    tracker.wait().await;
}

async fn accept_loop<H, F, Io>(
    listener: TcpListener,
    limits: Limits,
    handshake: H,
    app: axum::Router,
    counters: Arc<Counters>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) where
    H: Fn(TcpStream) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = std::io::Result<Io>> + Send + 'static,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.connections.max(1)));
    let pending = Arc::new(Mutex::new(Pending::default()));
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (tcp, peer): (TcpStream, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => {
                    backoff = Duration::from_millis(10);
                    x
                }
                Err(e) => {
                    counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (id, evict) = match pending.lock() {
            Ok(mut p) => p.admit(limits.handshakes, &counters),
            Err(_) => return,
        };
        let (handshake, app, pending, counters, shutdown) = (
            handshake.clone(),
            app.clone(),
            pending.clone(),
            counters.clone(),
            shutdown.clone(),
        );
        tracker.spawn(async move {
            let done = tokio::select! {
                _ = evict.cancelled() => None,
                _ = shutdown.cancelled() => None,
                r = tokio::time::timeout(limits.handshake_timeout, handshake(tcp)) => match r {
                    Ok(Ok(io)) => Some(io),
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "handshake refused");
                        None
                    }
                    Err(_) => {
                        tracing::info!(%peer, "handshake timed out");
                        None
                    }
                },
            };
            if let Ok(mut p) = pending.lock() {
                p.live.remove(&id);
            }
            let Some(io) = done else {
                counters.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut io = tokio_io_timeout::TimeoutStream::new(io);
            io.set_read_timeout(Some(limits.idle_timeout));
            io.set_write_timeout(Some(limits.idle_timeout));
            let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            http.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.idle_timeout);
            let svc = TowerToHyperService::new(app);
            let conn = http.serve_connection(TokioIo::new(Box::pin(io)), svc);
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_handshake_table_evicts_the_oldest() {
        let counters = Counters::default();
        let mut p = Pending::default();
        let (a, ta) = p.admit(2, &counters);
        let (_, tb) = p.admit(2, &counters);
        assert_eq!(a, 0);
        let (_, tc) = p.admit(2, &counters);
        assert!(ta.is_cancelled() && !tb.is_cancelled() && !tc.is_cancelled());
        assert_eq!(counters.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(p.live.len(), 2);
    }
}
