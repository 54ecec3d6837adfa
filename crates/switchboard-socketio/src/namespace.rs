//! Namespaces and the handlers an application registers on them.
//!
//! Handlers are plain closures called on the task that read the packet
//! (the polling POST or the WebSocket reader), outside every lock; one that
//! needs to wait for something spawns a task. A namespace broadcasts through
//! core rooms, so a broadcast is encoded once per wire format and reaches
//! native and SockJS members of the same room too.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use switchboard_core::publication::Publication;
use switchboard_core::Core;

use crate::body;
use crate::protocol::packet::Payload;
use crate::socket::{AckSender, Socket};

/// Decides whether a CONNECT with this auth payload is accepted.
pub type ConnectGuard = Arc<dyn Fn(&Value) -> Result<(), ConnectError> + Send + Sync>;
/// Called when a socket connected (or recovered: see [`Socket::recovered`]).
pub type ConnectionHandler = Arc<dyn Fn(&Arc<Socket>) + Send + Sync>;
/// Called with the socket and the reason when a socket disconnected.
pub type DisconnectHandler = Arc<dyn Fn(&Arc<Socket>, &str) + Send + Sync>;
/// Called for an event: the socket, the arguments (event name removed), and
/// the acknowledgement to answer when the client asked for one.
pub type EventHandler = Arc<dyn Fn(&Arc<Socket>, Payload, Option<AckSender>) + Send + Sync>;

/// A refused CONNECT: the client's `connect_error` gets `message` (and
/// `data` as `err.data`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// For a person.
    pub message: String,
    /// Extra details for the client.
    pub data: Option<Value>,
}

impl ConnectError {
    /// An error with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), data: None }
    }

    /// The JSON of the CONNECT_ERROR packet.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::json!({ "message": self.message });
        if let Some(data) = &self.data {
            v["data"] = data.clone();
        }
        v.to_string()
    }
}

/// A socket.io namespace (`/`, `/chat`, ...).
pub struct Namespace {
    name: String,
    core: Arc<Core>,
    recovery: bool,
    guard: RwLock<Option<ConnectGuard>>,
    on_connection: RwLock<Vec<ConnectionHandler>>,
    on_disconnect: RwLock<Vec<DisconnectHandler>>,
    events: RwLock<HashMap<String, EventHandler>>,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Namespace {
    pub(crate) fn new(name: String, core: Arc<Core>, recovery: bool) -> Arc<Self> {
        Arc::new(Self {
            name,
            core,
            recovery,
            guard: RwLock::default(),
            on_connection: RwLock::default(),
            on_disconnect: RwLock::default(),
            events: RwLock::default(),
        })
    }

    /// The namespace's name, `/` or `/something`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The core this namespace publishes through.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    pub(crate) fn recovery(&self) -> bool {
        self.recovery
    }

    /// Sets the check every CONNECT's auth payload must pass (it replaces
    /// the previous one).
    pub fn authorize(&self, guard: impl Fn(&Value) -> Result<(), ConnectError> + Send + Sync + 'static) -> &Self {
        *self.guard.write() = Some(Arc::new(guard));
        self
    }

    /// Adds a handler called for every connected socket.
    pub fn on_connection(&self, handler: impl Fn(&Arc<Socket>) + Send + Sync + 'static) -> &Self {
        self.on_connection.write().push(Arc::new(handler));
        self
    }

    /// Adds a handler called when a socket disconnects.
    pub fn on_disconnect(&self, handler: impl Fn(&Arc<Socket>, &str) + Send + Sync + 'static) -> &Self {
        self.on_disconnect.write().push(Arc::new(handler));
        self
    }

    /// Sets the handler of `event` (it replaces the previous one).
    pub fn on(
        &self,
        event: &str,
        handler: impl Fn(&Arc<Socket>, Payload, Option<AckSender>) + Send + Sync + 'static,
    ) -> &Self {
        self.events.write().insert(event.to_owned(), Arc::new(handler));
        self
    }

    /// Emits to every socket of the namespace; returns how many this node
    /// has.
    pub fn emit(&self, event: &str, payload: Payload) -> usize {
        self.broadcast(&body::all_room(&self.name), event, payload)
    }

    /// Emits to every member of room `room` of this namespace: socket.io
    /// sockets, and the native and SockJS sessions in the same core room
    /// (see `docs/socketio.md` for the mapping).
    pub fn to(&self, room: &str) -> Broadcast<'_> {
        Broadcast { namespace: self, core_room: body::core_room(&self.name, room) }
    }

    fn broadcast(&self, core_room: &str, event: &str, payload: Payload) -> usize {
        let data = body::publication_data(event, &payload.args, &payload.binary);
        // Delivery is asynchronous across nodes: report the local members.
        let local = self.core.hub().member_count(core_room);
        self.core.publish(Publication::new(core_room, "server", data));
        local
    }

    pub(crate) fn check(&self, auth: &Value) -> Result<(), ConnectError> {
        let guard = self.guard.read().clone();
        guard.map_or(Ok(()), |g| g(auth))
    }

    pub(crate) fn connected(&self, socket: &Arc<Socket>) {
        let handlers = self.on_connection.read().clone();
        for h in handlers {
            h(socket);
        }
    }

    pub(crate) fn disconnected(&self, socket: &Arc<Socket>, reason: &str) {
        let handlers = self.on_disconnect.read().clone();
        for h in handlers {
            h(socket, reason);
        }
    }

    pub(crate) fn dispatch(&self, socket: &Arc<Socket>, event: &str, payload: Payload, ack: Option<AckSender>) {
        let handler = self.events.read().get(event).cloned();
        match handler {
            Some(h) => h(socket, payload, ack),
            None => tracing::trace!(namespace = %self.name, event, "no handler for event"),
        }
    }
}

/// Emitting to one room; see [`Namespace::to`].
#[derive(Debug)]
pub struct Broadcast<'a> {
    namespace: &'a Namespace,
    core_room: String,
}

impl Broadcast<'_> {
    /// Emits `event` to every member of the room, on every node; returns
    /// how many member sessions this node has. The sender, if it is a
    /// member, gets it too.
    pub fn emit(&self, event: &str, payload: Payload) -> usize {
        self.namespace.broadcast(&self.core_room, event, payload)
    }
}
