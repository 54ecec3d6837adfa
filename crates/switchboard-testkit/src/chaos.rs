//! [`ChaosProxy`]: a TCP proxy that cuts every connection at a random
//! moment.
//!
//! It sits between clients and the server on loopback. Each accepted
//! connection is forwarded byte for byte until a random deadline drawn from
//! [`Cuts::lifetime`] or a random number of bytes drawn from
//! [`Cuts::bytes`] (both directions counted), whichever comes first; then
//! both sides are dropped at once, wherever the bytes in flight happen to
//! be: in the middle of a frame, a response head or a POST body. That is the
//! network the resume and retry rules of the protocol exist for.
//!
//! The byte budget keeps the chaos proportional to the traffic: on a fast
//! machine a whole exchange can fit in a few of the time-based lifetimes,
//! but never in a few byte budgets.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running proxy; dropping it stops it and cuts every connection.
pub struct ChaosProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

/// When the proxy cuts a connection: after a random lifetime or a random
/// number of bytes, whichever comes first.
#[derive(Clone, Debug)]
pub struct Cuts {
    pub lifetime: Range<Duration>,
    pub bytes: Range<u64>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    cut: AtomicU64,
}

impl ChaosProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target`, cutting each
    /// connection as `cuts` says.
    pub async fn start(target: SocketAddr, cuts: Cuts) -> anyhow::Result<Self> {
        anyhow::ensure!(!cuts.lifetime.is_empty() && !cuts.bytes.is_empty(), "empty cut range {cuts:?}");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(listener, target, cuts, counters.clone()));
        Ok(Self { addr, counters, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Connections the proxy cut (rather than seeing them end by themselves).
    pub fn cuts(&self) -> u64 {
        self.counters.cut.load(Ordering::Relaxed)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        // The accept loop owns the JoinSet of connections: aborting it
        // drops (and so aborts) every forwarding task too.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, cuts: Cuts, counters: Arc<Counters>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let lifetime = rand::rng().random_range(cuts.lifetime.clone());
                let budget = rand::rng().random_range(cuts.bytes.clone());
                connections.spawn(forward(inbound, target, lifetime, budget, counters.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Why a forwarding ended early.
enum Ended {
    Cut,
    Broken,
}

async fn forward(inbound: TcpStream, target: SocketAddr, lifetime: Duration, budget: u64, counters: Arc<Counters>) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (client_read, client_write) = inbound.into_split();
    let (server_read, server_write) = outbound.into_split();
    let budget = AtomicI64::new(budget as i64);
    let both_ways =
        async { tokio::try_join!(pipe(client_read, server_write, &budget), pipe(server_read, client_write, &budget)) };
    let cut = tokio::select! {
        ended = both_ways => matches!(ended, Err(Ended::Cut)),
        _ = tokio::time::sleep(lifetime) => true,
    };
    if cut {
        counters.cut.fetch_add(1, Ordering::Relaxed);
    }
    // Every half drops here: a cut, not a graceful close.
}

/// Copies one direction until end of stream (then half-closes `to`) or
/// until the shared byte budget runs out: the bytes within it go through,
/// the rest never does.
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    budget: &AtomicI64,
) -> Result<(), Ended> {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = from.read(&mut buf).await.map_err(|_| Ended::Broken)?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        // What was left before this read; below zero once spent.
        let left = budget.fetch_sub(n as i64, Ordering::Relaxed);
        let allowed = left.clamp(0, n as i64) as usize;
        to.write_all(&buf[..allowed]).await.map_err(|_| Ended::Broken)?;
        if allowed < n {
            return Err(Ended::Cut);
        }
    }
}
