//! socket.io (protocol v5 over engine.io v4) for Switchboard.
//!
//! The official socket.io clients connect to `/socket.io/` over HTTP long
//! polling, WebSocket, or polling upgraded to WebSocket. Each socket (one
//! client connection to one namespace) is a core session: its rooms are core
//! rooms shared with native and SockJS clients, its outbox orders and keeps
//! what it is sent, and connection state recovery replays from that outbox.
//! What is supported and how rooms and messages map is in `docs/socketio.md`.
//!
//! ```no_run
//! # async fn demo(core: std::sync::Arc<switchboard_core::Core>) {
//! use switchboard_socketio::{Payload, SocketIo, SocketIoConfig};
//! let io = SocketIo::new(core, SocketIoConfig::default(), vec!["*".into()]);
//! let chat = io.of("/chat").unwrap();
//! chat.on("message", |socket, payload, ack| {
//!     socket.to("lobby").emit("message", payload.clone());
//!     if let Some(ack) = ack {
//!         ack.send(Payload::new(vec![serde_json::json!("got it")]));
//!     }
//! });
//! // In the HTTP server: if io.owns(path) { return io.handle(request).await }
//! # }
//! ```
//!
//! # Layout
//!
//! - [`protocol`]: the codecs, with no I/O: engine.io packets and polling
//!   payloads ([`protocol::engine`]), socket.io packets
//!   ([`protocol::packet`]).
//! - [`endpoint`]: [`SocketIo`], the endpoint: origin and query checks,
//!   engine.io errors, the handshake, and the registries of connections and
//!   namespaces.
//! - [`polling`] and [`websocket`]: the two transports and the upgrade
//!   between them.
//! - [`connection`]: one engine.io connection: the queue of packets for its
//!   transport, its mode, its sockets.
//! - [`driver`]: what drives each connection: moves its sockets' outbox
//!   frames to the queue, pings, and acknowledges frames a pong proved
//!   received. A task of its own for a connection polling opened; part of
//!   the WebSocket's one task for a connection opened over WebSocket.
//! - [`upstream`]: what the client's packets do: connect (and recover),
//!   disconnect, events, acknowledgements.
//! - [`body`]: the outbox body of a socket.io packet, the room mapping, and
//!   the [`body::SocketIoEncoder`] that turns room publications into events.
//! - [`namespace`] and [`socket`]: the application API: handlers per
//!   namespace, emitting to a socket, a room or a whole namespace,
//!   acknowledgements both ways.
//! - [`builtin`]: the events a client can use with no server code (`join`,
//!   `leave`, `publish`, `broadcast`, `echo`, `ask`) and the token rule.
//! - [`config`]: the settings ([`SocketIoConfig`]).

pub mod body;
pub mod builtin;
pub mod config;
pub mod connection;
pub mod driver;
pub mod endpoint;
pub mod namespace;
pub mod polling;
pub mod protocol;
pub mod socket;
#[cfg(test)]
mod testing;
pub mod upstream;
pub mod websocket;

pub use config::SocketIoConfig;
pub use endpoint::{InvalidNamespace, SocketIo};
pub use namespace::{Broadcast, ConnectError, Namespace};
pub use protocol::packet::Payload;
pub use socket::{AckSender, Socket};
