//! One socket: a client's connection to one namespace, backed by one core
//! session (its outbox, its rooms, its recovery).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use switchboard_core::session::Session;

use crate::body::{self, Tag};
use crate::namespace::{Broadcast, Namespace};
use crate::protocol::packet::{self, PacketType, Payload};

/// Most acknowledgements a socket waits for at once; past it the oldest is
/// forgotten (its callback never runs).
pub const MAX_PENDING_ACKS: usize = 1024;

/// Called with the client's answer to an event the server emitted.
pub type AckCallback = Box<dyn FnOnce(Payload) + Send>;

/// A refused room operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The name is empty, too long or has control characters.
    #[error("room names are 1 to 128 characters, none a control character (namespace prefix included)")]
    InvalidName,
}

/// A client's connection to one namespace.
pub struct Socket {
    namespace: Arc<Namespace>,
    session: Arc<Session>,
    auth: Value,
    recovered: bool,
    acks: Mutex<Acks>,
}

#[derive(Default)]
struct Acks {
    next: u64,
    pending: BTreeMap<u64, AckCallback>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id())
            .field("namespace", &self.namespace.name())
            .field("recovered", &self.recovered)
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new(namespace: Arc<Namespace>, session: Arc<Session>, auth: Value, recovered: bool) -> Arc<Self> {
        Arc::new(Self { namespace, session, auth, recovered, acks: Mutex::default() })
    }

    /// The socket id the client sees (`socket.id`): the public id of its
    /// core session, also the `from` its publications carry.
    pub fn id(&self) -> &str {
        self.session.public_id()
    }

    /// The namespace.
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.namespace
    }

    /// The auth payload of the CONNECT (`{}` when none).
    pub fn auth(&self) -> &Value {
        &self.auth
    }

    /// Whether this socket resumed an earlier one (connection state
    /// recovery): same id, same rooms, missed events replayed.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// The core session behind the socket.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Emits an event to this socket.
    pub fn emit(&self, event: &str, payload: Payload) -> bool {
        let array = packet::event_array(event, &payload.args);
        let text = body::open_event(self.namespace.name(), payload.binary.len(), &array);
        self.session.push(body::body(Tag::Event, &text, &payload.binary)).is_some()
    }

    /// Emits an event that asks for an acknowledgement; `callback` gets the
    /// client's answer (never, if the socket ends first).
    pub fn emit_with_ack(
        &self,
        event: &str,
        payload: Payload,
        callback: impl FnOnce(Payload) + Send + 'static,
    ) -> bool {
        let id = {
            let mut acks = self.acks.lock();
            let id = acks.next;
            acks.next += 1;
            acks.pending.insert(id, Box::new(callback));
            if acks.pending.len() > MAX_PENDING_ACKS {
                acks.pending.pop_first();
            }
            id
        };
        let kind = if payload.binary.is_empty() { PacketType::Event } else { PacketType::BinaryEvent };
        let array = packet::event_array(event, &payload.args);
        let text = packet::encode(kind, self.namespace.name(), Some(id), payload.binary.len(), Some(&array));
        self.push(Tag::Plain, &text, &payload.binary)
    }

    /// Joins a room of this socket's namespace.
    pub fn join(&self, room: &str) -> Result<(), RoomError> {
        let core_room = self.core_room(room)?;
        self.namespace.core().join(&self.session, &core_room);
        Ok(())
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) -> Result<(), RoomError> {
        let core_room = self.core_room(room)?;
        self.namespace.core().leave(&self.session, &core_room);
        Ok(())
    }

    /// Whether the socket is in a room.
    pub fn in_room(&self, room: &str) -> bool {
        self.session.in_room(&body::core_room(self.namespace.name(), room))
    }

    /// Emits to a room of this socket's namespace (this socket included, if
    /// it is a member).
    pub fn to(&self, room: &str) -> Broadcast<'_> {
        self.namespace.to(room)
    }

    /// Ends the socket: the client gets DISCONNECT (after everything emitted
    /// before), and the session ends (no recovery).
    pub fn disconnect(&self) {
        let text = packet::encode(PacketType::Disconnect, self.namespace.name(), None, 0, None);
        self.push(Tag::Disconnect, &text, &[]);
    }

    /// The core room of `room`, validated.
    pub fn core_room(&self, room: &str) -> Result<String, RoomError> {
        let core_room = body::core_room(self.namespace.name(), room);
        if room.is_empty() || !switchboard_core::frame::valid_room(&core_room) {
            return Err(RoomError::InvalidName);
        }
        Ok(core_room)
    }

    pub(crate) fn push(&self, tag: Tag, text: &str, binary: &[Bytes]) -> bool {
        self.session.push(body::body(tag, text, binary)).is_some()
    }

    pub(crate) fn take_ack(&self, id: u64) -> Option<AckCallback> {
        self.acks.lock().pending.remove(&id)
    }
}

/// The acknowledgement a client asked for with an event: answer it once.
#[derive(Debug)]
pub struct AckSender {
    socket: Arc<Socket>,
    id: u64,
}

impl AckSender {
    pub(crate) fn new(socket: Arc<Socket>, id: u64) -> Self {
        Self { socket, id }
    }

    /// Sends the acknowledgement with these arguments.
    pub fn send(self, payload: Payload) -> bool {
        let kind = if payload.binary.is_empty() { PacketType::Ack } else { PacketType::BinaryAck };
        let array = Value::Array(payload.args).to_string();
        let text =
            packet::encode(kind, self.socket.namespace.name(), Some(self.id), payload.binary.len(), Some(&array));
        self.socket.push(Tag::Plain, &text, &payload.binary)
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex as TestMutex;
    use serde_json::json;

    use super::*;
    use crate::testing::{next, nothing_more, send, setup_with, until, without_recovery};

    #[tokio::test]
    async fn disconnect_comes_after_what_was_emitted_before_and_ends_the_session() {
        let (io, conn) = setup_with(without_recovery()).await;
        let reasons = Arc::new(TestMutex::new(Vec::new()));
        let log = Arc::clone(&reasons);
        io.of("/")
            .unwrap()
            .on("leave-me", |socket, _, _| {
                socket.emit("last words", Payload::new(vec![json!(1)]));
                socket.disconnect();
                socket.emit("never", Payload::default());
            })
            .on_disconnect(move |_, reason| log.lock().push(reason.to_owned()));
        send(&io, &conn, "0");
        next(&conn, 1).await;
        let socket = conn.socket("/").unwrap();
        let session = socket.session().id().to_string();
        send(&io, &conn, r#"2["leave-me"]"#);
        assert_eq!(next(&conn, 2).await, vec![r#"42["last words",1]"#, "41"]);
        until("the disconnect handler", || reasons.lock().len() == 1).await;
        assert_eq!(*reasons.lock(), ["server namespace disconnect"]);
        assert!(conn.socket("/").is_none());
        assert!(io.core().session(&session).is_none(), "no recovery after a server disconnect");
        nothing_more(&conn).await;
        // The engine.io connection is still there, for other namespaces or
        // a new CONNECT.
        assert_eq!(conn.closed(), None);
        send(&io, &conn, "0");
        assert!(next(&conn, 1).await[0].starts_with("40{"));
    }
}
