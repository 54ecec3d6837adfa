//! [`ChaosProxy`]: a TCP proxy that cuts every connection at a random
//! moment.
//!
//! It sits between clients and the server on loopback. Each accepted
//! connection is forwarded byte for byte until a random deadline drawn from
//! `cut_every`, then both sides are dropped at once, wherever the bytes in
//! flight happen to be: in the middle of a frame, a response head or a POST
//! body. That is the network the resume and retry rules of the protocol
//! exist for.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A running proxy; dropping it stops it and cuts every connection.
pub struct ChaosProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    cut: AtomicU64,
}

impl ChaosProxy {
    /// Listens on `127.0.0.1:0` and forwards to `target`, cutting each
    /// connection after a random lifetime in `cut_every`.
    pub async fn start(target: SocketAddr, cut_every: Range<Duration>) -> anyhow::Result<Self> {
        anyhow::ensure!(!cut_every.is_empty(), "empty cut range {cut_every:?}");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(listener, target, cut_every, counters.clone()));
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

async fn accept_loop(listener: TcpListener, target: SocketAddr, cut_every: Range<Duration>, counters: Arc<Counters>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                counters.accepted.fetch_add(1, Ordering::Relaxed);
                let lifetime = rand::rng().random_range(cut_every.clone());
                connections.spawn(forward(inbound, target, lifetime, counters.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn forward(mut inbound: TcpStream, target: SocketAddr, lifetime: Duration, counters: Arc<Counters>) {
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = tokio::time::sleep(lifetime) => {
            counters.cut.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Both sockets drop here: a cut, not a graceful half-close.
}
