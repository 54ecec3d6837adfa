//! Black-box test support for Switchboard.
//!
//! Everything here talks to a real server over real sockets, through the
//! wire protocol of `docs/protocol.md` only; nothing reaches into the
//! server's internals. The integration tests in `crates/switchboard/tests`
//! are built from these pieces.
//!
//! # Layout
//!
//! - [`server`]: [`TestServer`] starts a server on an ephemeral loopback
//!   port with a config the test adjusts.
//! - [`http`]: a raw HTTP/1.1 client, one TCP connection per request, that
//!   shows status, headers and body bytes as they arrive and cuts the
//!   connection when the response is dropped.
//! - [`frame`]: [`Frame`], a parsed frame that keeps its raw text.
//! - [`downstream`]: one client per transport of §4 behind the
//!   [`Downstream`] trait, each checking its transport's framing.
//! - [`upstream`]: [`Upstream`], `POST /v1/send` with `cid`s and retries.
//! - [`room`]: a [`Publisher`] feeding a room and a strict [`Subscriber`]
//!   that fails at the first lost, repeated or reordered frame.
//! - [`resuming`]: [`ResumingClient`], a client that survives broken
//!   transports and records every protocol violation it survives.
//! - [`chaos`]: [`ChaosProxy`], a TCP proxy that cuts connections at random.
//! - [`scenario`]: the flows every transport must pass.
//! - [`sockjs`]: the SockJS protocol test services and a text WebSocket
//!   client.
//! - [`hardening`]: metric snapshots, a bystander client, raw TCP requests,
//!   slow consumers and the server as a child process, for the limit,
//!   security and shutdown tests.

pub mod chaos;
pub mod cluster;
pub mod downstream;
pub mod frame;
pub mod hardening;
pub mod http;
pub mod im;
pub mod resuming;
pub mod room;
pub mod scenario;
pub mod server;
pub mod sockjs;
pub mod upstream;

/// Re-exported so the tests need no JSON dependency of their own.
pub use serde_json::{self, json};

pub use chaos::{ChaosProxy, Cuts};
pub use downstream::{next_documented, next_non_ping, Attach, Downstream, Ended, Refused, Transport};
pub use frame::Frame;
pub use http::{HttpRequest, HttpResponse};
pub use resuming::{DeliveryReport, ResumingClient, SessionClosed};
pub use room::{Publisher, Subscriber};
pub use server::TestServer;
pub use switchboard::Config;
pub use upstream::{Rejected, Upstream};

/// The bound every test puts around its whole body.
pub const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a test body under [`TEST_TIMEOUT`], failing (not hanging) on expiry.
pub async fn bounded<F, T>(body: F) -> T
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    match tokio::time::timeout(TEST_TIMEOUT, body).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test did not finish within {TEST_TIMEOUT:?}"),
    }
}
