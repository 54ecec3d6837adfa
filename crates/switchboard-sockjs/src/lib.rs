#![doc = include_str!("../README.md")]
//!
//! # Layout
//!
//! - [`config`]: [`SockJsConfig`], the services and the protocol's timers,
//!   nested in the server's configuration.
//! - `router`: [`SockJs::handle`], which maps the protocol's URL layout
//!   (`/info`, `/iframe.html`, `/{server}/{session}/{transport}`,
//!   `/websocket`) onto the handlers. Mount it in any hyper server.
//! - `session`: SockJS's view of a core session: the client-chosen id, the
//!   open/closing phases, the one receiving connection, the disconnect
//!   delay.
//! - `service`: what the `echo`, `close` and `rooms` services do with
//!   messages; `rooms` hands native frames to the core.
//! - `receiving`: polling and streaming responses (heartbeats, response
//!   limit); `transport`: how each HTTP transport wraps a frame.
//! - `websocket`: the framed and the raw WebSocket endpoints.
//! - `frame` and `encoder`: the `o`/`h`/`a`/`c` frames, the protocol's JSON
//!   string escaping, and room publications encoded once for every SockJS
//!   member.
//! - [`decode`]: what clients send (`xhr_send`, `jsonp_send`, WebSocket
//!   messages); public so the fuzz targets (`fuzz/`) reach it.
//! - `responses` and `pages`: caching, CORS and cookie headers, the plain
//!   answers; the greeting, `/info` and the iframe page.
//!
//! The adapter keeps no messages and no rooms of its own: every session is
//! a core session (outbox, rooms), created with the SockJS encoder.

pub mod config;
pub mod decode;

mod encoder;
mod frame;
mod pages;
#[cfg(test)]
mod proptests;
mod receiving;
mod responses;
mod router;
mod service;
mod session;
mod transport;
mod websocket;

pub use config::{ConfigError, ServiceConfig, ServiceKind, SockJsConfig};
pub use encoder::{SockJsEncoder, SOCKJS};
pub use router::SockJs;
