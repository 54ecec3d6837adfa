//! The driver of each engine.io connection: a task of its own while a
//! connection is carried by polling, part of the WebSocket's task for a
//! connection opened directly over WebSocket or upgraded to one (the
//! polling task hands its driver over, [`Command::HandOver`]): one task,
//! not two, for what most clients hold, about a kilobyte less per idle
//! connection.
//!
//! It owns the attachments of the connection's sockets (one core session
//! each) and moves their frames, in order, into the connection's queue; it
//! sends the pings and closes the connection when a pong is late or no
//! namespace was joined in time. A pong proves the client received every
//! packet queued before its ping, so then (and only then) those frames are
//! acknowledged in their outboxes: whatever a dropped transport lost is
//! still there for connection state recovery.

use std::future::{pending, Future};
use std::pin::Pin;
use std::sync::Arc;

use switchboard_core::frame::Downstream;
use switchboard_core::session::{Attachment, EndReason};
use tokio::time::{sleep_until, Instant, Sleep};

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
    /// The connection was upgraded to a WebSocket: the driver's task stops
    /// and leaves the driver in the connection for the WebSocket's task
    /// ([`Connection::take_driver`]).
    HandOver,
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
    /// What `forwarded` was when the last ping went out: a pong to it
    /// proves the client has every frame up to there.
    pub proven: u64,
}

/// Runs the connection, opened at `opened`, until it closes or is handed
/// over to a WebSocket: the task of a connection that polling opened (a
/// WebSocket runs its [`Driver`] in its own task instead, see
/// [`crate::websocket`]).
pub async fn run(inner: Arc<Inner>, conn: Arc<Connection>, opened: Instant) {
    let mut driver = Driver::new(&inner, opened);
    // One timer for the connection's life, moved to the earliest deadline
    // when that changes: each armed timer is part of the state an idle
    // connection keeps, and re-arming a timer per event is work.
    let timer = sleep_until(driver.deadline());
    tokio::pin!(timer);
    while conn.closed().is_none() {
        let full = conn.queue_full();
        tokio::select! {
            command = conn.next_command() => {
                if let Command::HandOver = command {
                    conn.hand_over(driver);
                    return;
                }
                if let Some(link) = driver.command(&inner, &conn, command) {
                    end_socket(&inner, &conn, link, "client namespace disconnect").await;
                }
            }
            (index, result) = driver.next_batch(), if !full => {
                if let Some(link) = driver.batch(&inner, &conn, index, result) {
                    end_socket(&inner, &conn, link, "server namespace disconnect").await;
                }
            }
            () = conn.drained(), if full => {}
            () = &mut timer => driver.deadline_reached(&inner, &conn),
        }
        driver.rearm(timer.as_mut());
    }
    driver.finish(&inner, &conn);
}

/// The state of one connection's driver, between its events.
///
/// Its timers count from `opened` (taken before the handshake answer went
/// out, not when the driver first runs), and a pong is due `ping_timeout`
/// after the ping was due: a busy runtime that runs a timer late does not
/// give the client more time than the handshake announced.
#[derive(Debug)]
pub struct Driver {
    /// Room for the usual single namespace, not the four a first push
    /// takes.
    links: Vec<Link>,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
    connect_deadline: Option<Instant>,
}

/// What the earliest deadline stands for.
enum Deadline {
    Ping,
    PingTimeout,
    ConnectTimeout,
}

impl Driver {
    /// A driver for a connection opened at `opened`.
    pub fn new(inner: &Inner, opened: Instant) -> Self {
        let config = &inner.config;
        Self {
            links: Vec::with_capacity(1),
            next_ping: opened + config.ping_interval,
            pong_deadline: None,
            connect_deadline: Some(opened + config.connect_timeout),
        }
    }

    /// The earliest deadline: the pong's when one is awaited, else the next
    /// ping's; the connect timeout's while no namespace was joined, if it
    /// comes first.
    fn earliest(&self) -> (Instant, Deadline) {
        let heartbeat = match self.pong_deadline {
            Some(due) => (due, Deadline::PingTimeout),
            None => (self.next_ping, Deadline::Ping),
        };
        match self.connect_deadline {
            Some(at) if at < heartbeat.0 => (at, Deadline::ConnectTimeout),
            _ => heartbeat,
        }
    }

    /// When the driver must act next if nothing else happens.
    pub fn deadline(&self) -> Instant {
        self.earliest().0
    }

    /// Moves `timer` to [`Driver::deadline`] when that changed.
    pub fn rearm(&self, timer: Pin<&mut Sleep>) {
        let deadline = self.deadline();
        if timer.deadline() != deadline {
            timer.reset(deadline);
        }
    }

    /// Acts on the earliest deadline, which has come: a ping, or the
    /// connection closed (pong late, or no namespace joined in time).
    pub fn deadline_reached(&mut self, inner: &Inner, conn: &Connection) {
        let config = &inner.config;
        match self.earliest().1 {
            Deadline::Ping => {
                conn.send([Outgoing::text(kind::PING, "")]);
                for link in &mut self.links {
                    link.proven = link.forwarded;
                }
                // Due a ping timeout after the ping was due, but never
                // less than half of it after the ping actually went out.
                let due = (self.next_ping + config.ping_timeout).max(Instant::now() + config.ping_timeout / 2);
                self.pong_deadline = Some(due);
                conn.set_pong_due(Some(due));
            }
            Deadline::PingTimeout if conn.pong_awaited() => conn.close(CloseReason::PingTimeout),
            // The pong came in time; this driver ran late, before its
            // command.
            Deadline::PingTimeout => self.ponged(inner, conn),
            Deadline::ConnectTimeout => {
                self.connect_deadline = None;
                if self.links.is_empty() && conn.socket_count() == 0 {
                    conn.close(CloseReason::ServerClose);
                }
            }
        }
    }

    /// The pong to the last ping came: the client has every frame sent
    /// before that ping, and the next ping is a ping interval away.
    fn ponged(&mut self, inner: &Inner, conn: &Connection) {
        self.pong_deadline = None;
        conn.set_pong_due(None);
        for link in &self.links {
            link.attachment.session().ack(link.proven);
        }
        self.next_ping = Instant::now() + inner.config.ping_interval;
    }

    /// Acts on every command queued now (a WebSocket's own task applies
    /// them right after reading the messages that sent them).
    pub async fn commands(&mut self, inner: &Inner, conn: &Connection) {
        while let Some(command) = conn.take_command() {
            if let Some(link) = self.command(inner, conn, command) {
                end_socket(inner, conn, link, "client namespace disconnect").await;
            }
        }
    }

    /// Acts on a command; returns the link the client disconnected, which
    /// the caller ends with [`end_socket`].
    pub fn command(&mut self, inner: &Inner, conn: &Connection, command: Command) -> Option<Link> {
        match command {
            Command::Add(link) => {
                self.connect_deadline = None;
                self.links.push(link);
            }
            Command::Remove(namespace) => {
                // The connection stays open, even without sockets, as in
                // the reference server: the client may connect again, and
                // the heartbeat still ends it when the client goes away.
                let i = self.links.iter().position(|l| l.socket.namespace().name() == namespace)?;
                return Some(self.links.swap_remove(i));
            }
            Command::Pong => {
                if self.pong_deadline.is_some() {
                    self.ponged(inner, conn);
                }
            }
            // Only the polling task's loop acts on a hand-over; a driver
            // already in a WebSocket's task has nothing to hand over.
            Command::Close | Command::HandOver => {}
        }
        None
    }

    /// The next batch of any link's session; never completes without links.
    pub fn next_batch(&mut self) -> impl Future<Output = (usize, Result<Vec<Downstream>, EndReason>)> + '_ {
        next_batch(&mut self.links)
    }

    /// Moves a batch of link `index` into the queue; returns the link when
    /// the server ended its socket, which the caller ends with
    /// [`end_socket`].
    pub fn batch(
        &mut self,
        inner: &Inner,
        conn: &Connection,
        index: usize,
        result: Result<Vec<Downstream>, EndReason>,
    ) -> Option<Link> {
        match result {
            Ok(frames) => {
                if forward(inner, conn, &mut self.links[index], frames) {
                    return Some(self.links.swap_remove(index));
                }
            }
            Err(EndReason::Superseded) => {
                // Recovered on another connection: it lives on there.
                let link = self.links.swap_remove(index);
                conn.remove_socket(link.socket.namespace().name(), Some(&link.socket));
            }
            Err(EndReason::ShuttingDown) => conn.close(CloseReason::ShuttingDown),
            Err(_) => {
                let link = self.links.swap_remove(index);
                let name = link.socket.namespace().name();
                let text = packet::encode(PacketType::Disconnect, name, None, 0, None);
                conn.send([Outgoing::text(kind::MESSAGE, &text)]);
                return Some(link);
            }
        }
        None
    }

    /// Cleans up after the connection closed: handlers told, sessions
    /// detached, the connection forgotten.
    pub fn finish(self, inner: &Inner, conn: &Connection) {
        let mut links = self.links;
        let reason = conn.closed().unwrap_or(CloseReason::ServerClose);
        for command in conn.end_commands() {
            if let Command::Add(link) = command {
                links.push(link);
            }
        }
        for socket in conn.remove_all_sockets() {
            socket.namespace().disconnected(&socket, reason.as_str());
        }
        // Dropping the attachments detaches the sessions: they live on for
        // the grace period, so the client can recover them.
        drop(links);
        inner.forget(conn.sid());
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

/// Moves frames into the queue, all at once; true when a server DISCONNECT
/// was among them (the socket ends).
fn forward(inner: &Inner, conn: &Connection, link: &mut Link, frames: Vec<Downstream>) -> bool {
    let mut packets = Vec::with_capacity(frames.len());
    let mut disconnect = false;
    for frame in frames {
        match frame {
            Downstream::Sequenced { seq, body } => {
                link.forwarded = seq;
                let tag = body::decode_into(&body, inner.config.recovery.then_some(seq), &mut packets);
                if tag == Some(Tag::Disconnect) {
                    disconnect = true;
                    break;
                }
            }
            Downstream::Control(_) => {
                // A gap: the outbox overflowed before these packets could
                // be sent. socket.io has no way to say so; closing makes the
                // client reconnect, and its recovery then fails honestly
                // (`socket.recovered === false`).
                tracing::debug!(sid = %conn.sid(), "socket.io outbox overflowed; closing");
                conn.send_batch(packets);
                conn.close(CloseReason::TransportError);
                return false;
            }
        }
    }
    conn.send_batch(packets);
    disconnect
}

/// Ends a socket for good: unregistered, session ended, handlers told.
/// Boxed: it is rare, and its future would otherwise make the state every
/// idle connection keeps larger.
pub fn end_socket<'a>(
    inner: &'a Inner,
    conn: &'a Connection,
    link: Link,
    reason: &'a str,
) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        let Link { socket, attachment, .. } = link;
        drop(attachment);
        conn.remove_socket(socket.namespace().name(), Some(&socket));
        inner.core.end_session(socket.session().id()).await;
        socket.namespace().disconnected(&socket, reason);
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::SocketIoConfig;
    use crate::protocol::engine::Incoming;
    use crate::testing::setup_with;
    use crate::upstream;

    /// A connection whose pong is due 50 ms after its ping (the next ping
    /// of its own driver is the default interval away).
    async fn setup() -> (crate::SocketIo, Arc<Connection>) {
        setup_with(SocketIoConfig { ping_timeout: Duration::from_millis(50), ..SocketIoConfig::default() }).await
    }

    /// A driver whose ping went out just now, the pong due `ping_timeout`
    /// later.
    fn pinged(inner: &Inner, conn: &Connection) -> Driver {
        let mut driver = Driver::new(inner, Instant::now() - inner.config.ping_interval);
        driver.deadline_reached(inner, conn);
        assert!(conn.pong_awaited(), "the ping went out");
        driver
    }

    #[tokio::test]
    async fn a_pong_that_came_in_time_is_not_a_timeout_when_the_driver_runs_late() {
        let (io, conn) = setup().await;
        let mut driver = pinged(&io.inner, &conn);
        // The pong comes, but this driver is busy until after the deadline:
        // it has not seen the pong's command yet.
        upstream::handle(&io.inner, &conn, Incoming::Pong(String::new())).unwrap();
        tokio::time::sleep(io.inner.config.ping_timeout + Duration::from_millis(10)).await;
        assert!(!conn.heartbeat_lapsed(), "a request now is served: the pong came");
        driver.deadline_reached(&io.inner, &conn);
        assert_eq!(conn.closed(), None);
        assert!(driver.deadline() > Instant::now(), "the next ping is an interval away");
    }

    #[tokio::test]
    async fn no_pong_is_a_timeout() {
        let (io, conn) = setup().await;
        let mut driver = pinged(&io.inner, &conn);
        tokio::time::sleep(io.inner.config.ping_timeout + Duration::from_millis(10)).await;
        driver.deadline_reached(&io.inner, &conn);
        assert_eq!(conn.closed(), Some(CloseReason::PingTimeout));
    }
}
