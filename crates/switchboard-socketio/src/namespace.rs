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
use switchboard_core::id::PublicId;
use switchboard_core::identity::Identity;
use switchboard_core::publication::Publication;
use switchboard_core::Core;

use crate::body;
use crate::protocol::packet::Payload;
use crate::socket::{AckSender, Socket};

/// A namespace's own check of a CONNECT's auth payload: the user the
/// socket is (`None`: a guest), or why it is refused. See
/// [`Namespace::authorize`] and [`Namespace::authenticate`].
pub type ConnectGuard = Arc<dyn Fn(&Value) -> Result<Option<Identity>, ConnectError> + Send + Sync>;
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

/// Who decided that a CONNECT may go on, and who the socket is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Admission {
    /// The namespace has no check of its own: the server's authenticator
    /// decides from `auth.token` / `auth.name`, like for a native client.
    ByCore,
    /// The namespace's check accepted it; the socket is this user, or a
    /// guest when `None`. The server's authenticator is not asked.
    ByNamespace(Option<Identity>),
}

/// A guest identity (`guest-<random>`), as the development-mode
/// authenticator gives a client without a nickname.
pub(crate) fn guest() -> Identity {
    let user = format!("guest-{}", PublicId::random());
    Identity { user: user.clone(), name: user, rooms: None }
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

    /// Sets the namespace's own check of every CONNECT's auth payload (it
    /// replaces the previous check, and [`Namespace::authenticate`]).
    ///
    /// The check **replaces** the server's authenticator for this
    /// namespace: `auth.token` and `auth.name` are then the application's
    /// business (no JWT is verified), and an accepted socket's session is a
    /// guest (`guest-<random>` user id, no room claims) to the core. Use
    /// [`Namespace::authenticate`] to say which user it is instead.
    pub fn authorize(&self, guard: impl Fn(&Value) -> Result<(), ConnectError> + Send + Sync + 'static) -> &Self {
        *self.guard.write() = Some(Arc::new(move |auth: &Value| guard(auth).map(|()| None)));
        self
    }

    /// Sets the namespace's own authentication: `check` turns a CONNECT's
    /// auth payload into the user the socket is (its session's identity:
    /// its user id in presence, history and direct messages, its room
    /// claims), or refuses it. Like [`Namespace::authorize`], it replaces
    /// the server's authenticator for this namespace (and the previous
    /// check). A recovering socket keeps its session only when `check`
    /// returns the same user.
    pub fn authenticate(
        &self,
        check: impl Fn(&Value) -> Result<Identity, ConnectError> + Send + Sync + 'static,
    ) -> &Self {
        *self.guard.write() = Some(Arc::new(move |auth: &Value| check(auth).map(Some)));
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

    /// Runs the namespace's check, if it has one, on a CONNECT's auth.
    pub(crate) fn check(&self, auth: &Value) -> Result<Admission, ConnectError> {
        let guard = self.guard.read().clone();
        match guard {
            Some(g) => g(auth).map(Admission::ByNamespace),
            None => Ok(Admission::ByCore),
        }
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

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;
    use serde_json::json;

    use super::*;
    use crate::protocol::engine::{Incoming, Outgoing};
    use crate::testing::{connect_answer, next, nothing_more, open, send, setup, setup_with, until, without_recovery};
    use crate::SocketIoConfig;

    #[tokio::test]
    async fn without_a_check_of_its_own_a_namespace_leaves_the_token_to_the_authenticator() {
        let (io, conn) = setup().await;
        send(&io, &conn, r#"0{"token":"123"}"#);
        let refused: Value = serde_json::from_str(next(&conn, 1).await[0].trim_start_matches("44")).unwrap();
        assert!(refused["message"].as_str().unwrap().contains("development mode"), "{refused}");
        assert_eq!(refused["data"]["code"], 4401);
        send(&io, &conn, r#"0{"name":"alice"}"#);
        next(&conn, 1).await;
        assert_eq!(conn.socket("/").unwrap().session().identity().user, "alice");
    }

    #[tokio::test]
    async fn authorize_replaces_the_token_check_and_admits_guests() {
        let (io, conn) = setup().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        io.of("/").unwrap().authorize(move |auth| {
            log.lock().push(auth.clone());
            match auth.get("key") {
                Some(key) if key == "open sesame" => Ok(()),
                _ => Err(ConnectError { message: "a key is needed".into(), data: Some(json!({ "hint": 1 })) }),
            }
        });

        // The app's own token is not a JWT, and no longer refused as one.
        send(&io, &conn, r#"0{"key":"open sesame","token":"123"}"#);
        let answer = connect_answer(&next(&conn, 1).await[0]);
        let socket = conn.socket("/").unwrap();
        assert_eq!(answer["sid"], socket.id());
        assert!(socket.session().identity().user.starts_with("guest-"));
        assert_eq!(socket.auth(), &json!({ "key": "open sesame", "token": "123" }));

        let other = open(&io).await;
        send(&io, &other, r#"0{"key":"wrong"}"#);
        assert_eq!(next(&other, 1).await, vec![r#"44{"data":{"hint":1},"message":"a key is needed"}"#]);
        assert!(other.socket("/").is_none());
        send(&io, &other, "0");
        assert_eq!(next(&other, 1).await, vec![r#"44{"data":{"hint":1},"message":"a key is needed"}"#]);
        assert_eq!(seen.lock().len(), 3, "the check saw every CONNECT");
        assert_eq!(seen.lock()[2], json!({}), "no payload is an empty object");
    }

    #[tokio::test]
    async fn authenticate_names_the_user_and_keeps_recovery_to_that_user() {
        let (io, conn) = setup().await;
        io.of("/").unwrap().authenticate(|auth| match auth.get("user").and_then(Value::as_str) {
            Some(user) => Ok(Identity { user: user.into(), name: user.to_uppercase(), rooms: None }),
            None => Err(ConnectError::new("who are you?")),
        });
        send(&io, &conn, r#"0{"user":"alice","token":"not-a-jwt"}"#);
        let answer = connect_answer(&next(&conn, 1).await[0]);
        let identity = conn.socket("/").unwrap().session().identity().clone();
        assert_eq!((identity.user.as_str(), identity.name.as_str()), ("alice", "ALICE"));
        conn.close(crate::connection::CloseReason::TransportClose);

        // Recovery with the pid: only as the same user.
        let mallory = open(&io).await;
        let auth = json!({ "user": "mallory", "pid": answer["pid"], "offset": "0" });
        send(&io, &mallory, &format!("0{auth}"));
        assert_ne!(connect_answer(&next(&mallory, 1).await[0])["sid"], answer["sid"]);
        assert!(!mallory.socket("/").unwrap().recovered());

        let alice = open(&io).await;
        let auth = json!({ "user": "alice", "pid": answer["pid"], "offset": "0" });
        send(&io, &alice, &format!("0{auth}"));
        assert_eq!(connect_answer(&next(&alice, 1).await[0])["sid"], answer["sid"]);
        assert!(alice.socket("/").unwrap().recovered());

        let nobody = open(&io).await;
        send(&io, &nobody, "0");
        assert_eq!(next(&nobody, 1).await, vec![r#"44{"message":"who are you?"}"#]);
    }

    #[tokio::test]
    async fn connection_and_disconnect_handlers_see_every_socket_and_why_it_left() {
        let (io, conn) = setup().await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let (on_connect, on_leave) = (Arc::clone(&events), Arc::clone(&events));
        io.of("/")
            .unwrap()
            .on_connection(move |socket| {
                on_connect.lock().push(format!("connected {}", socket.id()));
                socket.emit("welcome", Payload::new(vec![json!(socket.id())]));
            })
            .on_disconnect(move |socket, reason| on_leave.lock().push(format!("left {} {reason}", socket.id())));

        send(&io, &conn, "0");
        let packets = next(&conn, 2).await;
        let first = connect_answer(&packets[0])["sid"].as_str().unwrap().to_owned();
        assert_eq!(packets[1], format!(r#"42["welcome","{first}","1"]"#), "after the CONNECT answer");
        send(&io, &conn, "1");
        until("the disconnect handler", || events.lock().len() == 2).await;
        assert_eq!(events.lock()[1], format!("left {first} client namespace disconnect"));

        send(&io, &conn, "0");
        let second = connect_answer(&next(&conn, 2).await[0])["sid"].as_str().unwrap().to_owned();
        assert_ne!(second, first);
        conn.close(crate::connection::CloseReason::TransportClose);
        until("the disconnect handler", || events.lock().len() == 4).await;
        assert_eq!(
            *events.lock(),
            [
                format!("connected {first}"),
                format!("left {first} client namespace disconnect"),
                format!("connected {second}"),
                format!("left {second} transport close"),
            ]
        );
    }

    #[tokio::test]
    async fn a_client_disconnect_of_the_last_namespace_keeps_the_connection() {
        let (io, conn) =
            setup_with(SocketIoConfig { ping_interval: std::time::Duration::from_millis(50), ..without_recovery() })
                .await;
        send(&io, &conn, "0");
        next(&conn, 1).await;
        let session = conn.socket("/").unwrap().session().id().to_string();
        send(&io, &conn, "1");
        until("the socket's session to end", || io.core().session(&session).is_none()).await;
        assert!(conn.socket("/").is_none());
        // Pings go on (answered here), and the connection can join again.
        for _ in 0..3 {
            until("a ping", || conn.take_queue().iter().any(|p| matches!(p, Outgoing::Text(t) if t.as_ref() == b"2")))
                .await;
            crate::upstream::handle(&io.inner, &conn, Incoming::Pong(String::new())).unwrap();
        }
        assert_eq!(conn.closed(), None);
        send(&io, &conn, "0");
        assert!(next(&conn, 1).await[0].starts_with("40{"));
    }

    #[tokio::test]
    async fn namespace_emit_reaches_every_socket_of_that_namespace_only() {
        let (io, a) = setup_with(without_recovery()).await;
        let chat = io.of("/chat").unwrap();
        let b = open(&io).await;
        let elsewhere = open(&io).await;
        send(&io, &a, "0");
        send(&io, &b, "0");
        send(&io, &elsewhere, "0/chat,");
        for conn in [&a, &b, &elsewhere] {
            next(conn, 1).await;
        }
        let root = io.of("/").unwrap();
        assert_eq!(root.emit("news", Payload::new(vec![json!("hi"), json!({ "n": 1 })])), 2);
        assert_eq!(next(&a, 1).await, vec![r#"42["news","hi",{"n":1}]"#]);
        assert_eq!(next(&b, 1).await, vec![r#"42["news","hi",{"n":1}]"#]);
        nothing_more(&elsewhere).await;

        assert_eq!(chat.emit("bin", Payload::with_binary(vec![Payload::placeholder(0)], vec![vec![1, 2].into()])), 1);
        assert_eq!(
            next(&elsewhere, 2).await,
            vec![r#"451-/chat,["bin",{"_placeholder":true,"num":0}]"#.to_owned(), "<bin:2>".to_owned()]
        );
        nothing_more(&a).await;
    }
}
