//! [`TestServer`]: a real Switchboard server on an ephemeral loopback port.
//!
//! Every test starts its own server, so tests never share sessions, rooms or
//! limits and can run in parallel. Two defaults are changed for that: the
//! history store is kept in memory (not in a file every test would share),
//! and the per-session rate limits are lifted, because these tests publish
//! far faster than a person types and test the transport guarantees, not
//! the rate limiter.

use std::net::SocketAddr;

use switchboard::config::StoreKind;
use switchboard::{Config, Server, ServerHandle};

/// A rate no test reaches (messages, typing events and joins per second).
const UNLIMITED_RATE: f64 = 1e9;

/// A running server, bound to `127.0.0.1:0`, stopped by [`TestServer::shutdown`]
/// (or, less gracefully, when the test's runtime ends).
pub struct TestServer {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl TestServer {
    /// Starts a server with the production defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `configure` has adjusted the defaults (short
    /// grace, small outbox, ...). The listen address is always forced to an
    /// ephemeral loopback port.
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            store: StoreKind::Memory,
            rate_messages: UNLIMITED_RATE,
            rate_typing: UNLIMITED_RATE,
            rate_joins: UNLIMITED_RATE,
            ..Config::default()
        };
        configure(&mut config);
        config.listen = "127.0.0.1:0".parse().expect("loopback address");
        let server = Server::bind(config).await.expect("bind test server");
        let addr = server.local_addr();
        let handle = server.spawn();
        Self { addr, handle }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`; `path` includes the query.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://ADDR{path}`; `path` includes the query.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Stops the server gracefully (attached clients get `close` 4002).
    pub async fn shutdown(self) {
        self.handle.shutdown().await;
    }
}
