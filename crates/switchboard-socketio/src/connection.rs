//! One engine.io connection: its outgoing packet queue, which transport
//! carries it, and the sockets (one per namespace) multiplexed on it.
//!
//! The connection is transport state only: each socket's messages, rooms
//! and recovery live in the socket's core session. The queue holds engine.io
//! packets the driver ([`crate::driver`]) took from those sessions' outboxes
//! (plus handshake answers and pings) until a long-poll GET or the
//! WebSocket writes them. A packet lost with a transport is still in its
//! session's outbox until a ping/pong round trip proves it arrived, so a
//! recovering client gets it again.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_core::id::SessionId;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::driver::{Command, Driver};
use crate::protocol::engine::Outgoing;
use crate::socket::Socket;

/// Most packets queued for a transport before the driver stops taking more
/// from the outboxes (the outboxes then hold them, within their bounds).
pub const MAX_QUEUED_PACKETS: usize = 1024;

/// Which transport carries the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// HTTP long polling.
    Polling,
    /// A WebSocket probe succeeded; polling answers `noop` until the client
    /// sends `upgrade`.
    Upgrading,
    /// The WebSocket carries everything; polling requests are refused.
    WebSocket,
}

/// Why a connection closed; the disconnect reason handlers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent the `close` packet.
    ClientClose,
    /// No pong within the ping timeout.
    PingTimeout,
    /// The WebSocket closed.
    TransportClose,
    /// The client broke the protocol.
    TransportError,
    /// No namespace joined within the connect timeout, or the server
    /// closed it.
    ServerClose,
    /// The server is shutting down.
    ShuttingDown,
}

impl CloseReason {
    /// The reason as socket.io names it.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client namespace disconnect",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::ServerClose => "server namespace disconnect",
            CloseReason::ShuttingDown => "server shutting down",
        }
    }

    /// What a long-poll GET held during the close answers: `noop` when the
    /// client closed, the `close` packet otherwise.
    pub fn poll_answer(self) -> &'static [u8] {
        match self {
            CloseReason::ClientClose => b"6",
            _ => b"1",
        }
    }
}

/// One engine.io connection.
#[derive(Debug)]
pub struct Connection {
    /// The engine.io id (a core session id's 32 hex digits), inline: no
    /// allocation per connection.
    sid: [u8; 32],
    state: Mutex<State>,
    /// Woken when packets are queued, the mode changes or the connection
    /// closes.
    wake: Notify,
    /// Woken (with a stored permit) when a transport emptied the queue.
    drained: Notify,
    /// Woken (with a stored permit) when a command for the driver is
    /// queued in [`State::commands`].
    commanded: Notify,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Outgoing>,
    mode: Mode,
    closed: Option<CloseReason>,
    poll_held: bool,
    post_running: bool,
    probing: bool,
    /// One per namespace, usually one: a list sized to what it holds (a
    /// map's smallest table is about 150 bytes per idle connection).
    sockets: Vec<Arc<Socket>>,
    /// Boxed: a binary packet waiting for its attachments is rare, and the
    /// state of every idle connection would keep room for it.
    partial: Option<Box<crate::upstream::Partial>>,
    /// Whether a CONNECT came: the first socket.io packet must be one.
    connect_seen: bool,
    /// When the pong to the last ping is due, while it is awaited.
    pong_due: Option<Instant>,
    /// Commands for the driver, in order. Not a channel: commands are few
    /// (a connect, a pong now and then), and a channel's first block of
    /// slots would stay allocated for the connection's whole life (about
    /// 2 KB per idle connection, measured with heaptrack).
    commands: VecDeque<Command>,
    /// Whether the driver stopped: commands sent after it are dropped.
    driver_gone: bool,
    /// The driver the polling task handed over, until the WebSocket's task
    /// takes it.
    handed_over: Option<Box<Driver>>,
}

impl Connection {
    /// A new connection with id `id`; its driver takes its commands with
    /// [`Connection::next_command`].
    pub fn new(id: SessionId, mode: Mode) -> Arc<Self> {
        let mut sid = [0u8; 32];
        sid.copy_from_slice(id.to_string().as_bytes());
        Arc::new(Self {
            sid,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                mode,
                closed: None,
                poll_held: false,
                post_running: false,
                probing: false,
                sockets: Vec::new(),
                partial: None,
                connect_seen: false,
                pong_due: None,
                commands: VecDeque::new(),
                driver_gone: false,
                handed_over: None,
            }),
            wake: Notify::new(),
            drained: Notify::new(),
            commanded: Notify::new(),
        })
    }

    /// The engine.io session id.
    pub fn sid(&self) -> &str {
        // Hex digits only, so always UTF-8.
        std::str::from_utf8(&self.sid).unwrap_or_default()
    }

    /// Queues packets for the transport.
    pub fn send(&self, packets: impl IntoIterator<Item = Outgoing>) {
        self.send_batch(packets.into_iter().collect());
    }

    /// Queues a list of packets; an empty queue takes the list as it is
    /// (no copy, no growth step by step: a fan-out moves a batch per step).
    pub fn send_batch(&self, packets: Vec<Outgoing>) {
        if packets.is_empty() {
            return;
        }
        {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return;
            }
            if state.queue.is_empty() {
                state.queue = packets.into();
            } else {
                state.queue.extend(packets);
            }
        }
        self.wake.notify_waiters();
    }

    /// Whether the queue is at its bound.
    pub fn queue_full(&self) -> bool {
        self.state.lock().queue.len() >= MAX_QUEUED_PACKETS
    }

    /// Takes every queued packet.
    pub fn take_queue(&self) -> Vec<Outgoing> {
        // Taken whole, room included: an idle connection keeps none.
        let taken: Vec<Outgoing> = std::mem::take(&mut self.state.lock().queue).into();
        if !taken.is_empty() {
            self.drained.notify_one();
        }
        taken
    }

    /// Waits until a transport empties the queue.
    pub async fn drained(&self) {
        self.drained.notified().await;
    }

    /// Waits until `ready` gives a value, checked at every wake-up (a
    /// mode change, queued packets, a hand-over, the close).
    pub async fn wait_for<T>(&self, ready: impl Fn(&Self) -> Option<T>) -> T {
        loop {
            let woken = self.woken();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(value) = ready(self) {
                return value;
            }
            woken.await;
        }
    }

    /// A future that completes at the next wake-up; create it before
    /// checking the state so no wake-up is missed.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    /// Closes the connection (once): transports end, the driver cleans up.
    pub fn close(&self, reason: CloseReason) {
        {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(reason);
        }
        tracing::debug!(sid = %self.sid(), reason = reason.as_str(), "socket.io connection closed");
        self.wake.notify_waiters();
        self.command(Command::Close);
    }

    /// Why it closed, if it did.
    pub fn closed(&self) -> Option<CloseReason> {
        self.state.lock().closed
    }

    /// Records when the pong to the ping just sent is due (`None`: it
    /// came). The driver's timer closes the connection at that time; see
    /// [`Connection::heartbeat_lapsed`] for requests that come first.
    pub fn set_pong_due(&self, due: Option<Instant>) {
        self.state.lock().pong_due = due;
    }

    /// A pong came: from now on it is not overdue, whenever the driver
    /// gets to act on it (the command queued for it). A driver running
    /// late on a busy node must not close, and a poll must not be refused
    /// for, a pong that came in time.
    pub fn pong_received(&self) {
        self.state.lock().pong_due = None;
        self.command(Command::Pong);
    }

    /// Whether the pong to the last ping is still awaited (none came).
    pub fn pong_awaited(&self) -> bool {
        self.state.lock().pong_due.is_some()
    }

    /// Whether the pong is overdue; if so the connection is closed (ping
    /// timeout) now. A polling request that arrives after the deadline is
    /// refused even when the driver's timer has not fired yet (a timer
    /// fires a little late, a request may not be served late).
    pub fn heartbeat_lapsed(&self) -> bool {
        let due = self.state.lock().pong_due;
        if due.is_some_and(|due| Instant::now() >= due) {
            self.close(CloseReason::PingTimeout);
            return true;
        }
        false
    }

    /// The transport mode.
    pub fn mode(&self) -> Mode {
        self.state.lock().mode
    }

    /// Sets the transport mode and wakes whoever waits.
    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().mode = mode;
        self.wake.notify_waiters();
    }

    /// Sends a command to the driver (dropped when the driver is gone).
    pub fn command(&self, command: Command) {
        {
            let mut state = self.state.lock();
            if state.driver_gone {
                return;
            }
            state.commands.push_back(command);
        }
        self.commanded.notify_one();
    }

    /// The driver's next command, in the order they were sent.
    pub async fn next_command(&self) -> Command {
        loop {
            if let Some(command) = self.take_command() {
                return command;
            }
            self.commanded.notified().await;
        }
    }

    /// The next command, if one is queued.
    pub fn take_command(&self) -> Option<Command> {
        let mut state = self.state.lock();
        let command = state.commands.pop_front();
        if state.commands.is_empty() && state.commands.capacity() > 0 {
            // An idle connection keeps no room for commands.
            state.commands = VecDeque::new();
        }
        command
    }

    /// Leaves the driver for the WebSocket's task (the polling task stops)
    /// and wakes that task.
    pub fn hand_over(&self, driver: Driver) {
        self.state.lock().handed_over = Some(Box::new(driver));
        self.wake.notify_waiters();
    }

    /// The driver the polling task handed over, once it has.
    pub fn take_driver(&self) -> Option<Driver> {
        self.state.lock().handed_over.take().map(|driver| *driver)
    }

    /// The driver stopped: later commands are dropped; returns those not
    /// yet taken.
    pub fn end_commands(&self) -> Vec<Command> {
        let mut state = self.state.lock();
        state.driver_gone = true;
        std::mem::take(&mut state.commands).into()
    }

    /// Marks a long-poll GET as held; false when one already is.
    pub fn begin_poll(&self) -> bool {
        !std::mem::replace(&mut self.state.lock().poll_held, true)
    }

    /// The held GET answered.
    pub fn end_poll(&self) {
        self.state.lock().poll_held = false;
    }

    /// Marks a POST as running; false when one already is.
    pub fn begin_post(&self) -> bool {
        !std::mem::replace(&mut self.state.lock().post_running, true)
    }

    /// The POST finished.
    pub fn end_post(&self) {
        self.state.lock().post_running = false;
    }

    /// Marks a WebSocket probe as connected; false when the connection
    /// cannot be upgraded (not polling, or another probe is there).
    pub fn begin_probe(&self) -> bool {
        let mut state = self.state.lock();
        if state.mode != Mode::Polling || state.probing || state.closed.is_some() {
            return false;
        }
        state.probing = true;
        true
    }

    /// The probe WebSocket went away before the upgrade completed.
    pub fn abort_probe(&self) {
        {
            let mut state = self.state.lock();
            state.probing = false;
            if state.mode == Mode::Upgrading {
                state.mode = Mode::Polling;
            }
        }
        self.wake.notify_waiters();
    }

    /// The socket connected to `namespace`, if any.
    pub fn socket(&self, namespace: &str) -> Option<Arc<Socket>> {
        self.state.lock().sockets.iter().find(|s| s.namespace().name() == namespace).cloned()
    }

    /// Registers a socket; false when the namespace already has one.
    pub fn add_socket(&self, namespace: &str, socket: Arc<Socket>) -> bool {
        let mut state = self.state.lock();
        if state.closed.is_some() || state.sockets.iter().any(|s| s.namespace().name() == namespace) {
            return false;
        }
        state.sockets.reserve_exact(1);
        state.sockets.push(socket);
        true
    }

    /// Unregisters the socket of `namespace` when it is `socket` (or any
    /// socket when `socket` is `None`); returns it.
    pub fn remove_socket(&self, namespace: &str, socket: Option<&Arc<Socket>>) -> Option<Arc<Socket>> {
        let mut state = self.state.lock();
        let index = state.sockets.iter().position(|s| s.namespace().name() == namespace)?;
        if socket.is_some_and(|expected| !Arc::ptr_eq(&state.sockets[index], expected)) {
            return None;
        }
        Some(state.sockets.swap_remove(index))
    }

    /// Unregisters every socket; returns them.
    pub fn remove_all_sockets(&self) -> Vec<Arc<Socket>> {
        std::mem::take(&mut self.state.lock().sockets)
    }

    /// How many sockets are connected.
    pub fn socket_count(&self) -> usize {
        self.state.lock().sockets.len()
    }

    /// Records a socket.io packet; false when it is not a CONNECT and none
    /// came before (the protocol then closes the connection).
    pub fn allows_packet(&self, is_connect: bool) -> bool {
        let mut state = self.state.lock();
        state.connect_seen |= is_connect;
        state.connect_seen
    }

    /// Runs `f` on the binary packet being assembled.
    pub fn with_partial<R>(&self, f: impl FnOnce(&mut Option<Box<crate::upstream::Partial>>) -> R) -> R {
        f(&mut self.state.lock().partial)
    }
}
