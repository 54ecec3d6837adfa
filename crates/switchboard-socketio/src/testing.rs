//! Test support for the crate's unit tests: an endpoint over an in-memory
//! core, engine.io connections driven without a transport (packets handed
//! to [`crate::upstream::handle`], the queue read back as text).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_core::{Core, SessionLimits};

use crate::connection::{Connection, Mode};
use crate::protocol::engine::{Incoming, Outgoing};
use crate::{upstream, SocketIo, SocketIoConfig};

/// An endpoint with `config`, and one polling connection to it.
pub async fn setup_with(config: SocketIoConfig) -> (SocketIo, Arc<Connection>) {
    let core = Core::new(SessionLimits::default());
    let io = SocketIo::new(core, config, vec!["*".into()]);
    let conn = io.inner.open(Mode::Polling).await;
    (io, conn)
}

/// [`setup_with`] the default settings (recovery on).
pub async fn setup() -> (SocketIo, Arc<Connection>) {
    setup_with(SocketIoConfig::default()).await
}

/// Settings without connection state recovery: events carry no offset.
pub fn without_recovery() -> SocketIoConfig {
    SocketIoConfig { recovery: false, ..SocketIoConfig::default() }
}

/// Another connection to the same endpoint.
pub async fn open(io: &SocketIo) -> Arc<Connection> {
    io.inner.open(Mode::Polling).await
}

/// The client sends the socket.io packet `text`; it must be valid.
pub fn send(io: &SocketIo, conn: &Arc<Connection>, text: &str) {
    upstream::handle(&io.inner, conn, Incoming::Message(text.into())).unwrap();
}

/// The next `n` packets queued for the transport, as text (binary as
/// `<bin:LEN>`), pings skipped; panics after about two seconds.
pub async fn next(conn: &Connection, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..400 {
        out.extend(take(conn));
        if out.len() >= n {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("expected {n} packets, got {out:?}");
}

/// What is queued now, as [`next`] shows it.
pub fn take(conn: &Connection) -> Vec<String> {
    let mut out = Vec::new();
    for packet in conn.take_queue() {
        match packet {
            Outgoing::Text(t) if t.as_ref() == b"2" => {}
            Outgoing::Text(t) => out.push(String::from_utf8(t.to_vec()).unwrap()),
            Outgoing::Binary(b) => out.push(format!("<bin:{}>", b.len())),
        }
    }
    out
}

/// Nothing more arrives within 100 ms.
pub async fn nothing_more(conn: &Connection) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(take(conn), Vec::<String>::new());
}

/// The JSON of a CONNECT answer (`40{...}` of namespace `/`).
pub fn connect_answer(text: &str) -> Value {
    serde_json::from_str(text.trim_start_matches("40")).unwrap()
}

/// Waits (up to about two seconds) until `done()` holds.
pub async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}
