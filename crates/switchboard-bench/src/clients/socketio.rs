//! socket.io v5 over engine.io v4, WebSocket only
//! (`/socket.io/?EIO=4&transport=websocket`): the open packet, a CONNECT
//! to `/`, then events. Answers the server's pings. Echo clients emit
//! `echo` without an ack (the server emits `echo` back); publishers emit
//! `publish({room, data})` with an ack; subscribers measure `message`.
//! The handlers are the same on every server (bench/peers/, and the
//! built-in events of Switchboard's socket.io endpoint, docs/socketio.md §4).

use std::rc::Rc;

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_websockets::Message;

use super::{measure, Client, Running, Schedule, Shared, MAX_BURST};
use crate::net::{Net, Ws};
use crate::plan::Role;

const PATH: &str = "/socket.io/?EIO=4&transport=websocket";

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        let message = ws.next().await.ok_or_else(|| anyhow!("connection closed"))??;
        if let Some(text) = message.as_text() {
            if text == "2" {
                ws.send(Message::text("3")).await?;
                continue;
            }
            return Ok(text.to_owned());
        }
        if message.is_close() {
            bail!("closed by the server");
        }
    }
}

/// Open packet, CONNECT to `/`, its answer.
async fn connect(net: &Net) -> anyhow::Result<Ws> {
    let mut ws = net.ws(PATH).await?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        bail!("expected the engine.io open packet, got {open}");
    }
    ws.send(Message::text("40")).await?;
    let connected = next_text(&mut ws).await?;
    if !connected.starts_with("40") {
        bail!("expected CONNECT, got {connected}");
    }
    Ok(ws)
}

/// Connects to the namespace, closes.
pub async fn handshake(shared: &Rc<Shared>) -> anyhow::Result<()> {
    let mut ws = connect(&shared.net).await?;
    let _ = ws.send(Message::close(None, "")).await;
    Ok(())
}

/// Opens a client: connected to `/`, in the room for publishers and
/// subscribers.
pub async fn open(client: Client) -> anyhow::Result<Running> {
    let shared = &client.shared;
    let mut ws = connect(client.net()).await?;
    if matches!(client.role, Role::Publisher | Role::Subscriber) {
        join(&mut ws, &shared.room).await?;
    }
    Ok(Box::pin(run(client, ws)))
}

/// Joins `room`, asking again when no answer came within 2 s: a server may
/// install its handlers after it answered the CONNECT (socketioxide runs
/// its connect handler asynchronously), and then drops an early event.
async fn join(ws: &mut Ws, room: &str) -> anyhow::Result<()> {
    let room = serde_json::to_string(room)?;
    for ack_id in 0..5 {
        ws.send(Message::text(format!("42{ack_id}[\"join\",{room}]"))).await?;
        let answer = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            loop {
                let packet = next_text(ws).await?;
                if let Some(rest) = packet.strip_prefix("43") {
                    let id_end = rest.find('[').unwrap_or(0);
                    if rest[..id_end].parse::<u32>().is_ok() {
                        return anyhow::Ok(packet);
                    }
                }
            }
        })
        .await;
        match answer {
            Ok(Ok(packet)) if packet.contains("\"ok\":true") => return Ok(()),
            Ok(Ok(packet)) => bail!("join refused: {packet}"),
            Ok(Err(e)) => return Err(e),
            Err(_) => continue,
        }
    }
    bail!("no answer to join after 5 tries")
}

async fn run(client: Client, ws: Ws) {
    let (mut sink, mut stream) = ws.split();
    let (control, mut controls) = mpsc::unbounded_channel::<&'static str>();
    let shared = Rc::clone(&client.shared);
    let measures = matches!(client.role, Role::Echo | Role::Subscriber);
    let reader = tokio::task::spawn_local(async move {
        while let Some(Ok(message)) = stream.next().await {
            let Some(text) = message.as_text() else {
                continue;
            };
            if text == "2" {
                let _ = control.send("3");
            } else if text.starts_with("42") {
                if measures {
                    measure(&shared, text);
                }
            } else if text.starts_with("41") || text.starts_with('1') {
                break;
            }
        }
        shared.recorder.disconnected();
    });
    let sends = matches!(client.role, Role::Echo | Role::Publisher);
    let mut schedule = Schedule::new(&client);
    let shared = &client.shared;
    let room = serde_json::to_string(&shared.room).unwrap_or_default();
    let mut ack_id: u64 = 0;
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
                    let packet = if client.role == Role::Echo {
                        format!("42[\"echo\",{data}]")
                    } else {
                        ack_id += 1;
                        format!("42{ack_id}[\"publish\",{{\"room\":{room},\"data\":{data}}}]")
                    };
                    if sink.feed(Message::text(packet)).await.is_err() {
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
