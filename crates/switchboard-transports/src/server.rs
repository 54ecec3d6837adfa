//! An accept loop with graceful shutdown and per-IP connection limits, for
//! servers that do not bring their own.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::response::Body;

/// Bounds of the accept loop.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Longest time a client may take to send its request headers
    /// (slowloris); over it the connection is closed.
    pub header_read_timeout: Duration,
    /// Largest request head; over it the request gets 431.
    pub max_header_bytes: usize,
    /// Most open connections from one IP address; over it a new connection
    /// gets 429 and is closed.
    pub max_connections_per_ip: usize,
    /// How long shutdown waits for open connections to finish.
    pub drain: Duration,
    /// Longest a write to a client may make no progress (a peer that stopped
    /// reading: a slow consumer); then the connection is closed and its
    /// session detaches. Zero: never.
    pub write_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_connections_per_ip: 10_000,
            drain: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Open connections per IP address.
#[derive(Debug, Default, Clone)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PerIp {
    fn admit(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.0.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot { ip, table: self.clone() })
    }
}

/// One admitted connection; frees its slot when dropped.
#[derive(Debug)]
struct IpSlot {
    ip: IpAddr,
    table: PerIp,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.table.0.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A TCP stream that holds its IP slot for as long as it lives, also after
/// an upgrade hands it to a WebSocket; and that gives up on a peer that
/// stopped reading. Every transport writes through it, so one timer here
/// bounds them all: a write that makes no progress for `write_timeout`
/// fails, which ends the connection (the session detaches; its outbox, not
/// the socket, holds what the client missed).
#[derive(Debug)]
struct Admitted {
    stream: TcpStream,
    _slot: IpSlot,
    write_timeout: Duration,
    /// The stall timer, allocated at the first stall only (idle connections
    /// stay small) and re-armed at each later one.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the last write was refused for lack of room.
    stalling: bool,
}

impl Admitted {
    fn new(stream: TcpStream, slot: IpSlot, write_timeout: Duration) -> Self {
        Self { stream, _slot: slot, write_timeout, stall: None, stalling: false }
    }

    /// Follows a write's outcome: progress disarms the stall timer; a
    /// refused write arms it (if not running), and once it has run out the
    /// write fails.
    fn watch<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if polled.is_ready() || self.write_timeout.is_zero() {
            self.stalling = false;
            return polled;
        }
        let timeout = self.write_timeout;
        let timer = self.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if !self.stalling {
            self.stalling = true;
            timer.as_mut().reset(tokio::time::Instant::now() + timeout);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        metrics::counter!("switchboard_slow_consumers_total").increment(1);
        tracing::debug!("client took nothing for {timeout:?}; closing the connection");
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")))
    }
}

impl AsyncRead for Admitted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, polled)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves; then stops
/// accepting and waits up to `limits.drain` for open connections to finish.
pub async fn serve<H, F>(listener: TcpListener, handler: H, shutdown: impl Future<Output = ()>, limits: ServeLimits)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    // Every connection task holds a receiver; `closed()` on the sender tells
    // when the last one has finished.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let per_ip = PerIp::default();
    let mut shutdown = std::pin::pin!(shutdown);
    // After the shutdown signal the core refuses every attach with close
    // 4002; for a short while the listener stays open so that clients
    // between two requests (a long poll about to re-poll) still reach the
    // server and are told to reconnect, instead of finding a reset socket.
    let settle = (limits.drain / 4).min(Duration::from_secs(1));
    let mut settle_until: Option<tokio::time::Instant> = None;
    loop {
        let signalled = settle_until.is_some();
        let stop_accepting = async {
            match settle_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown, if !signalled => {
                settle_until = Some(tokio::time::Instant::now() + settle);
                continue;
            }
            () = stop_accepting => break,
        };
        let _ = stream.set_nodelay(true);
        let Some(slot) = per_ip.admit(peer.ip(), limits.max_connections_per_ip) else {
            switchboard_core::codes::count_error(429);
            tokio::spawn(refuse_busy(stream, limits.max_connections_per_ip));
            continue;
        };
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            // Boxed: hyper keeps room for the service future for the whole
            // life of a connection, and routing is large next to an idle
            // stream; the box is freed once the response head is out.
            // A held long poll comes back as a placeholder whose rest is
            // awaited here, after the routing futures are gone.
            async move {
                let response = Box::pin(handler(request)).await;
                Ok::<_, Infallible>(crate::response::resolve(response).await)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .serve_connection(TokioIo::new(Admitted::new(stream, slot, limits.write_timeout)), service)
            .with_upgrades();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = async { stopped.wait_for(|stop| *stop).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                if e.is_parse_too_large() {
                    switchboard_core::codes::count_error(431);
                } else if e.is_timeout() {
                    switchboard_core::codes::count_error(408);
                }
                tracing::trace!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(stopped);
    let _ = stop.send(true);
    if tokio::time::timeout(limits.drain, stop.closed()).await.is_err() {
        tracing::warn!("connections still open after {:?}; exiting anyway", limits.drain);
    }
}

/// Answers a connection over the per-IP limit with 429 and closes it.
async fn refuse_busy(mut stream: TcpStream, max: usize) {
    let body = format!(
        "{{\"code\":4429,\"message\":\"more than {max} connections from your address; close some and retry\"}}"
    );
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}
