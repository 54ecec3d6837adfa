//! The HTTP and WebSocket edges of Switchboard.
//!
//! # Layout
//!
//! - [`config`]: [`TransportConfig`], the edge's settings.
//! - [`router`]: [`Switchboard::handle`], which checks the origin and maps a
//!   request onto one transport. Mount it in any hyper (or axum) server.
//! - [`streaming`]: the one streaming body behind SSE, HTTP streaming and
//!   htmlfile (heartbeats, byte budget).
//! - [`poll`]: long polling, short polling and JSONP.
//! - [`send`]: `POST /v1/send`, the upstream of every HTTP transport.
//! - [`ws`]: the WebSocket transport.
//! - [`forward`]: relaying a request to the node where its session lives.
//! - [`cors`], [`query`], [`response`]: origin rules, query parsing and the
//!   shared response shapes.
//! - [`server`]: an accept loop with graceful shutdown.

pub mod config;
pub mod cors;
pub mod forward;
pub mod poll;
pub mod query;
pub mod response;
pub mod router;
pub mod send;
pub mod server;
pub mod streaming;
pub mod ws;

#[cfg(test)]
mod proptests;

pub use config::TransportConfig;
pub use response::Body;
pub use router::Switchboard;
