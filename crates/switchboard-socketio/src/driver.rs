//! The one task of each engine.io connection.
//!
//! It owns the attachments of the connection's sockets (one core session
//! each) and moves their frames, in order, into the connection's queue; it
//! sends the pings and closes the connection when a pong is late or no
//! namespace was joined in time. A pong proves the client received every
//! packet queued before its ping, so then (and only then) those frames are
//! acknowledged in their outboxes: whatever a dropped transport lost is
//! still there for connection state recovery.

use std::future::pending;
use std::sync::Arc;

use switchboard_core::frame::Downstream;
use switchboard_core::session::{Attachment, EndReason, Session};
use tokio::time::{sleep_until, Instant};

use crate::body::{self, Tag};
use crate::connection::{CloseReason, Connection};
use crate::endpoint::Inner;
use crate::protocol::engine::{kind, Outgoing};
use crate::protocol::packet::{self, PacketType};
use crate::socket::Socket;

/// Most frames moved from one outbox per step.
const MAX_FRAMES_PER_STEP: usize = 256;

/// What the transports tell the driver.
#[derive(Debug)]
pub enum Command {
    /// A socket connected: forward its session's frames.
    Add(Link),
    /// The client left a namespace (DISCONNECT).
    Remove(String),
    /// The client answered a ping.
    Pong,
    /// The connection closed; clean up and stop.
    Close,
}

/// A socket and its session's downstream.
#[derive(Debug)]
pub struct Link {
    /// The socket.
    pub socket: Arc<Socket>,
    /// Its session's attachment.
    pub attachment: Attachment,
    /// Highest seq moved to the queue.
    pub forwarded: u64,
}

enum Event {
    Command(Command),
    Batch(usize, Result<Vec<Downstream>, EndReason>),
    Drained,
    Ping,
    PingTimeout,
    ConnectTimeout,
}

/// Runs the connection, opened at `opened`, until it closes.
///
/// Its timers count from `opened` (taken before the handshake answer went
/// out, not when this task first runs), and a pong is due `ping_timeout`
/// after the ping was due: a busy runtime that runs a timer late does not
/// give the client more time than the handshake announced.
pub async fn run(inner: Arc<Inner>, conn: Arc<Connection>, opened: Instant) {
    let config = &inner.config;
    // Room for the usual single namespace, not the four a first push takes.
    let mut links: Vec<Link> = Vec::with_capacity(1);
    let mut next_ping = opened + config.ping_interval;
    let mut pong_deadline: Option<Instant> = None;
    let mut connect_deadline = Some(opened + config.connect_timeout);
    let mut proven: Vec<(Arc<Session>, u64)> = Vec::new();
    while conn.closed().is_none() {
        let full = conn.queue_full();
        // One timer, for the earliest deadline: each armed timer is part
        // of the state an idle connection keeps.
        let timer = earliest(next_ping, pong_deadline, connect_deadline);
        let event = tokio::select! {
            command = conn.next_command() => Event::Command(command),
            (index, result) = next_batch(&mut links), if !full => Event::Batch(index, result),
            () = conn.drained(), if full => Event::Drained,
            () = sleep_until(timer.0) => timer.1,
        };
        match event {
            Event::Command(Command::Add(link)) => {
                connect_deadline = None;
                links.push(link);
            }
            Event::Command(Command::Remove(namespace)) => {
                if let Some(i) = links.iter().position(|l| l.socket.namespace().name() == namespace) {
                    let link = links.swap_remove(i);
                    end_socket(&inner, &conn, link, "client namespace disconnect").await;
                }
                // The connection stays open, even without sockets, as in
                // the reference server: the client may connect again, and
                // the heartbeat still ends it when the client goes away.
            }
            Event::Command(Command::Pong) => {
                if pong_deadline.take().is_some() {
                    conn.set_pong_due(None);
                    for (session, seq) in proven.drain(..) {
                        session.ack(seq);
                    }
                    next_ping = Instant::now() + config.ping_interval;
                }
            }
            Event::Command(Command::Close) | Event::Drained => {}
            Event::Batch(index, Ok(frames)) => {
                if forward(&inner, &conn, &mut links[index], frames) {
                    let link = links.swap_remove(index);
                    end_socket(&inner, &conn, link, "server namespace disconnect").await;
                }
            }
            Event::Batch(index, Err(reason)) => {
                let link = links.swap_remove(index);
                match reason {
                    EndReason::Superseded => {
                        // Recovered on another connection: it lives on there.
                        conn.remove_socket(link.socket.namespace().name(), Some(&link.socket));
                    }
                    EndReason::ShuttingDown => {
                        links.push(link);
                        conn.close(CloseReason::ShuttingDown);
                    }
                    _ => {
                        let name = link.socket.namespace().name().to_owned();
                        let text = packet::encode(PacketType::Disconnect, &name, None, 0, None);
                        conn.send([Outgoing::text(kind::MESSAGE, &text)]);
                        end_socket(&inner, &conn, link, "server namespace disconnect").await;
                    }
                }
            }
            Event::Ping => {
                conn.send([Outgoing::text(kind::PING, "")]);
                proven = links.iter().map(|l| (Arc::clone(l.attachment.session()), l.forwarded)).collect();
                // Due a ping timeout after the ping was due, but never
                // less than half of it after the ping actually went out.
                let due = (next_ping + config.ping_timeout).max(Instant::now() + config.ping_timeout / 2);
                pong_deadline = Some(due);
                conn.set_pong_due(Some(due));
            }
            Event::PingTimeout => conn.close(CloseReason::PingTimeout),
            Event::ConnectTimeout => {
                connect_deadline = None;
                if links.is_empty() && conn.socket_count() == 0 {
                    conn.close(CloseReason::ServerClose);
                }
            }
        }
    }
    let reason = conn.closed().unwrap_or(CloseReason::ServerClose);
    for command in conn.end_commands() {
        if let Command::Add(link) = command {
            links.push(link);
        }
    }
    for socket in conn.remove_all_sockets() {
        socket.namespace().disconnected(&socket, reason.as_str());
    }
    // Dropping the attachments detaches the sessions: they live on for the
    // grace period, so the client can recover them.
    drop(links);
    inner.forget(conn.sid());
}

/// The earliest deadline of the connection, and the event it stands for:
/// the pong's when one is awaited, else the next ping's; the connect
/// timeout's while no namespace was joined, if it comes first.
fn earliest(next_ping: Instant, pong_deadline: Option<Instant>, connect_deadline: Option<Instant>) -> (Instant, Event) {
    let heartbeat = match pong_deadline {
        Some(due) => (due, Event::PingTimeout),
        None => (next_ping, Event::Ping),
    };
    match connect_deadline {
        Some(at) if at < heartbeat.0 => (at, Event::ConnectTimeout),
        _ => heartbeat,
    }
}

/// The next batch of any link; never completes without links.
async fn next_batch(links: &mut [Link]) -> (usize, Result<Vec<Downstream>, EndReason>) {
    match links {
        [] => return pending().await,
        // The usual case, one namespace: no boxed futures to keep while
        // the connection waits.
        [link] => return (0, link.attachment.next_batch(MAX_FRAMES_PER_STEP).await),
        _ => {}
    }
    let futures = links
        .iter_mut()
        .enumerate()
        .map(|(i, link)| Box::pin(async move { (i, link.attachment.next_batch(MAX_FRAMES_PER_STEP).await) }));
    futures_util::future::select_all(futures).await.0
}

/// Moves frames into the queue; true when a server DISCONNECT was among
/// them (the socket ends).
fn forward(inner: &Inner, conn: &Connection, link: &mut Link, frames: Vec<Downstream>) -> bool {
    for frame in frames {
        match frame {
            Downstream::Sequenced { seq, body } => {
                link.forwarded = seq;
                let Some(decoded) = body::decode(&body, inner.config.recovery.then_some(seq)) else {
                    continue;
                };
                conn.send(decoded.packets);
                if decoded.tag == Tag::Disconnect {
                    return true;
                }
            }
            Downstream::Control(_) => {
                // A gap: the outbox overflowed before these packets could
                // be sent. socket.io has no way to say so; closing makes the
                // client reconnect, and its recovery then fails honestly
                // (`socket.recovered === false`).
                tracing::debug!(sid = %conn.sid(), "socket.io outbox overflowed; closing");
                conn.close(CloseReason::TransportError);
                return false;
            }
        }
    }
    false
}

/// Ends a socket for good: unregistered, session ended, handlers told.
async fn end_socket(inner: &Inner, conn: &Connection, link: Link, reason: &str) {
    let Link { socket, attachment, .. } = link;
    drop(attachment);
    conn.remove_socket(socket.namespace().name(), Some(&socket));
    inner.core.end_session(socket.session().id()).await;
    socket.namespace().disconnected(&socket, reason);
}
