//! The native protocol on `GET /v1/ws`: a `welcome` first, frames as text
//! messages both ways. Echo clients send `echo` frames (no `cid`: the
//! answer is the `echo` frame itself); publishers send `publish` frames
//! with a `cid` (answered by `ack` once stored); every client acknowledges
//! what it received with an `ack` frame every 256 sequenced frames, as
//! docs/protocol.md §2 asks.

use std::rc::Rc;

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_websockets::Message;

use super::{measure, Client, Running, Schedule, Shared, MAX_BURST};
use crate::clock::native_seq;
use crate::net::{Net, Ws};
use crate::plan::Role;

/// Frames between two `ack` frames.
const ACK_EVERY: u64 = 256;

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        let message = ws.next().await.ok_or_else(|| anyhow!("connection closed"))??;
        if let Some(text) = message.as_text() {
            return Ok(text.to_owned());
        }
        if message.is_close() {
            bail!("closed by the server");
        }
    }
}

async fn connect(net: &Net) -> anyhow::Result<Ws> {
    let mut ws = net.ws("/v1/ws").await?;
    let welcome = next_text(&mut ws).await?;
    if !welcome.contains("\"type\":\"welcome\"") {
        bail!("expected a welcome, got {welcome}");
    }
    Ok(ws)
}

/// Connects, reads the welcome, closes.
pub async fn handshake(shared: &Rc<Shared>) -> anyhow::Result<()> {
    let mut ws = connect(&shared.net).await?;
    let _ = ws.send(Message::close(None, "")).await;
    Ok(())
}

/// Opens a client: welcome, and the room joined for publishers and
/// subscribers.
pub async fn open(client: Client) -> anyhow::Result<Running> {
    let shared = &client.shared;
    let mut ws = connect(client.net()).await?;
    if matches!(client.role, Role::Publisher | Role::Subscriber) {
        let join = format!("{{\"type\":\"join\",\"room\":{},\"cid\":\"join\"}}", serde_json::to_string(&shared.room)?);
        ws.send(Message::text(join)).await?;
        loop {
            let frame = next_text(&mut ws).await?;
            if frame.contains("\"cid\":\"join\"") {
                if !frame.contains("\"type\":\"ack\"") {
                    bail!("join refused: {frame}");
                }
                break;
            }
        }
    }
    Ok(Box::pin(run(client, ws)))
}

async fn run(client: Client, ws: Ws) {
    let (mut sink, mut stream) = ws.split();
    let (control, mut controls) = mpsc::unbounded_channel::<String>();
    let shared = Rc::clone(&client.shared);
    let measures = matches!(client.role, Role::Echo | Role::Subscriber);
    let reader = tokio::task::spawn_local(async move {
        let mut acked = 0;
        while let Some(Ok(message)) = stream.next().await {
            let Some(text) = message.as_text() else {
                continue;
            };
            if let Some(seq) = native_seq(text) {
                if seq >= acked + ACK_EVERY {
                    acked = seq;
                    let _ = control.send(format!("{{\"type\":\"ack\",\"seq\":{seq}}}"));
                }
            }
            if measures {
                measure(&shared, text);
            }
        }
        shared.recorder.disconnected();
    });
    let sends = matches!(client.role, Role::Echo | Role::Publisher);
    let mut schedule = Schedule::new(&client);
    let shared = &client.shared;
    let room = serde_json::to_string(&shared.room).unwrap_or_default();
    let mut cid: u64 = 0;
    loop {
        tokio::select! {
            control = controls.recv() => match control {
                Some(text) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            stamp = schedule.next(), if sends => {
                let mut burst = Some(stamp);
                let mut n = 0;
                while let Some(stamp) = burst.take() {
                    let data = stamp.json(shared.padding);
                    let frame = if client.role == Role::Echo {
                        format!("{{\"type\":\"echo\",\"data\":{data}}}")
                    } else {
                        cid += 1;
                        format!("{{\"type\":\"publish\",\"room\":{room},\"data\":{data},\"cid\":\"{cid}\"}}")
                    };
                    if sink.feed(Message::text(frame)).await.is_err() {
                        shared.recorder.error();
                        break;
                    }
                    shared.recorder.sent(stamp.gen);
                    n += 1;
                    if n < MAX_BURST {
                        burst = schedule.due_now();
                    }
                }
                if sink.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    reader.abort();
}
