//! The Switchboard server: configuration, static files and the accept loop
//! around the transport edge.
//!
//! # Layout
//!
//! - [`config`]: [`Config`], one struct layered from TOML, environment and
//!   command line.
//! - [`Server`]: binds, serves `/healthz`, the demo page and every `/v1/`
//!   transport, and shuts down gracefully.
//! - `static/`: the demo chat served at `/`.
//!
//! An application can also mount [`switchboard_transports::Switchboard`] in
//! its own hyper or axum server; this crate is only the ready-made one.

pub mod config;
mod server;
mod statics;

pub use config::Config;
pub use server::{Server, ServerHandle};
