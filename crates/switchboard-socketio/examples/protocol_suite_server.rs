//! The server the socket.io protocol v5 test suite expects
//! (`tests/compat/socketio-protocol.test.mjs`), built on this crate alone:
//! a core with in-memory history, and the socket.io endpoint set up as the
//! suite's reference server is (socket.io's `docs/socket.io-protocol/
//! v5-test-suite`).
//!
//! - `pingInterval` 300 ms, `pingTimeout` 200 ms, `connectTimeout` 1 s,
//!   `maxPayload` 1,000,000 bytes, no connection state recovery (the suite
//!   checks that a CONNECT answer is `{"sid"}` alone and that events carry
//!   no offset);
//! - the namespaces `/` and `/custom`, each accepting any auth payload (its
//!   own check replaces the server's token authentication, so `{"token":
//!   "123"}` is the application's business), and on each socket:
//!   - on connection: emits `auth` with the CONNECT's auth payload;
//!   - `message`: emits `message-back` with the same arguments;
//!   - `message-with-ack`: acknowledges with the same arguments.
//!
//! Run: `cargo run -p switchboard-socketio --example protocol_suite_server
//! -- 127.0.0.1:3000`. It prints `listening on ADDR` once it accepts
//! connections, and stops on SIGTERM or Ctrl-C.

use std::time::Duration;

use switchboard_core::{Core, SessionLimits};
use switchboard_socketio::{Payload, SocketIo, SocketIoConfig};
use switchboard_transports::server::{serve, ServeLimits};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3000".into());
    let config = SocketIoConfig {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        connect_timeout: Duration::from_millis(1000),
        max_payload: 1_000_000,
        recovery: false,
        namespaces: vec!["/".into(), "/custom".into()],
        builtin_events: false,
        ..SocketIoConfig::default()
    };
    let core = Core::new(SessionLimits::default());
    let io = SocketIo::new(core, config, vec!["*".into()]);
    for name in ["/", "/custom"] {
        let namespace = io.of(name)?;
        namespace.authorize(|_auth| Ok(()));
        namespace.on_connection(|socket| {
            socket.emit("auth", Payload::new(vec![socket.auth().clone()]));
        });
        namespace.on("message", |socket, payload, _ack| {
            socket.emit("message-back", payload);
        });
        namespace.on("message-with-ack", |_socket, payload, ack| {
            if let Some(ack) = ack {
                ack.send(payload);
            }
        });
    }

    let listener = TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let handler = move |request: http::Request<hyper::body::Incoming>| {
        let io = io.clone();
        async move {
            if io.owns(request.uri().path()) {
                io.handle(request).await
            } else {
                switchboard_transports::response::complete(http::StatusCode::NOT_FOUND, "text/plain", "not found")
            }
        }
    };
    let mut terminate = signal(SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    serve(listener, handler, stop, ServeLimits { drain: Duration::from_millis(200), ..ServeLimits::default() }).await;
    Ok(())
}
