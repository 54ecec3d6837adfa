//! socketioxide on axum with the benchmark's handlers:
//! - `echo`: emits `echo` back to the sender with the same data (and acks
//!   it too when the client asked for an ack; the benchmark never does);
//! - `join(room)`: joins, acks `{"ok":true}`;
//! - `publish({room, data})`: emits `message(data)` to every member of the
//!   room, the sender included, acks `{"ok":true}`.
//!
//! Listens on the address given as the first argument (default
//! 127.0.0.1:7081).

use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;

async fn on_connect(socket: SocketRef) {
    socket.on("echo", |socket: SocketRef, Data::<Value>(data), ack: AckSender| async move {
        let _ = socket.emit("echo", &data);
        let _ = ack.send(&data);
    });
    socket.on("join", |socket: SocketRef, Data::<String>(room), ack: AckSender| async move {
        socket.join(room);
        let _ = ack.send(&json!({ "ok": true }));
    });
    socket.on("publish", |io: SocketIo, Data::<Value>(msg), ack: AckSender| async move {
        let room = msg.get("room").and_then(Value::as_str).unwrap_or_default().to_owned();
        let data = msg.get("data").cloned().unwrap_or(Value::Null);
        let _ = io.to(room).emit("message", &data).await;
        let _ = ack.send(&json!({ "ok": true }));
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7081".into());
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", on_connect);
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("socketioxide peer listening on {listen}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
