//! The narrow API transports use: attach a downstream, apply upstream
//! frames; and the session lifecycle around it (auto-join of a user's rooms,
//! offline delivery, presence, the grace-period reaper).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::broker::{Broker, BrokerError, LocalBroker, NodeCommand};
use crate::codes;
use crate::frame::{self, Downstream, RoomSummary};
use crate::hub::Hub;
use crate::id::{PublicId, SessionId};
use crate::identity::{AuthError, Authenticator, Credentials, DevAuthenticator, Identity};
use crate::limits::SessionLimits;
use crate::publication::{Encoder, Kind, NativeEncoder, Publication};
use crate::registry::Registry;
use crate::session::{Attachment, EndReason, Session};
use crate::store::{HistoryQuery, MemoryStore, RetentionPolicy, Store};

/// Most messages replayed per room when a user comes back online.
pub const OFFLINE_REPLAY_PER_ROOM: usize = 500;

/// Sessions, rooms and the durable store of one node.
#[derive(Debug)]
pub struct Core {
    pub(crate) limits: Arc<SessionLimits>,
    shutting_down: AtomicBool,
    pub(crate) registry: Registry,
    pub(crate) hub: Arc<Hub>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) store: Arc<dyn Store>,
    authenticator: Arc<dyn Authenticator>,
    retention: RetentionPolicy,
}

/// What a [`Core`] is built from.
#[derive(Clone)]
pub struct CoreOptions {
    /// Bounds of each session.
    pub limits: SessionLimits,
    /// Where history, rooms and read marks live.
    pub store: Arc<dyn Store>,
    /// Who may connect.
    pub authenticator: Arc<dyn Authenticator>,
    /// How much history each room keeps, and how often that is applied.
    pub retention: RetentionPolicy,
    /// Cross-node fan-out; `None` builds a [`LocalBroker`] on the core's hub.
    pub broker: Option<BrokerFactory>,
}

/// Builds a broker around the node's hub (the hub exists only once the core
/// is being built).
pub type BrokerFactory = Arc<dyn Fn(Arc<Hub>) -> Arc<dyn Broker> + Send + Sync>;

impl Default for CoreOptions {
    fn default() -> Self {
        Self {
            limits: SessionLimits::default(),
            store: Arc::new(MemoryStore::new()),
            authenticator: Arc::new(DevAuthenticator),
            retention: RetentionPolicy::default(),
            broker: None,
        }
    }
}

impl std::fmt::Debug for CoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreOptions")
            .field("limits", &self.limits)
            .field("store", &self.store)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// A downstream could not attach; the `close` frame says why.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No live session has this id (never existed, expired, malformed).
    #[error("unknown or expired session")]
    UnknownSession,
    /// The session exists but cannot take a downstream now.
    #[error("session cannot be attached: {0:?}")]
    Ended(EndReason),
    /// The credentials were refused, or belong to another user.
    #[error("{0}")]
    Unauthorized(AuthError),
    /// The node holds `max_sessions` sessions already.
    #[error("server full")]
    Full,
    /// Whether the session lives cannot be told now (the cluster's Redis
    /// is unreachable); the client resumes after a pause.
    #[error("session directory unavailable")]
    Unavailable,
}

impl AttachError {
    /// The `close` frame telling the client what to do.
    pub fn close_frame(&self) -> Downstream {
        match self {
            AttachError::UnknownSession => EndReason::SessionEnded.close_frame(),
            AttachError::Ended(reason) => reason.close_frame(),
            AttachError::Unauthorized(e) => frame::close(codes::UNAUTHORIZED, &e.0, false),
            AttachError::Full => frame::close(codes::SERVER_FULL, "server full; retry later", true),
            AttachError::Unavailable => frame::close(
                codes::STORE_FAILED,
                "the cluster's shared store is unreachable; resume this session after a short pause",
                true,
            ),
        }
    }

    /// The close code of [`AttachError::close_frame`].
    pub fn code(&self) -> u16 {
        match self {
            AttachError::UnknownSession => codes::SESSION_NOT_FOUND,
            AttachError::Ended(reason) => reason.code(),
            AttachError::Unauthorized(_) => codes::UNAUTHORIZED,
            AttachError::Full => codes::SERVER_FULL,
            AttachError::Unavailable => codes::STORE_FAILED,
        }
    }
}

/// An upstream request that cannot be applied at all.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No live session has this id.
    #[error("unknown or expired session")]
    UnknownSession,
}

/// A freshly attached downstream; [`Attached::welcome`] greets it.
#[derive(Debug)]
pub struct Attached {
    /// The attachment to read frames from.
    pub attachment: Attachment,
    /// Whether the session was created by this attach.
    pub created: bool,
    heartbeat_ms: u64,
}

impl Attached {
    /// The `welcome` control frame. Built on demand: a long poll that
    /// resumes its session (every poll but the first) sends none.
    pub fn welcome(&self) -> Downstream {
        let session = self.attachment.session();
        frame::welcome(
            &session.id().to_string(),
            session.public_id(),
            session.identity(),
            !self.created,
            self.heartbeat_ms,
        )
    }
}

impl Core {
    /// A node's core with these session limits, an in-memory store and
    /// development-mode authentication.
    pub fn new(limits: SessionLimits) -> Arc<Self> {
        Self::with_options(CoreOptions { limits, ..CoreOptions::default() })
    }

    /// A node's core built from `options`.
    pub fn with_options(options: CoreOptions) -> Arc<Self> {
        let hub = Arc::new(Hub::default());
        let broker = match &options.broker {
            Some(factory) => factory(Arc::clone(&hub)),
            None => Arc::new(LocalBroker::new(Arc::clone(&hub))),
        };
        let core = Arc::new(Self {
            limits: Arc::new(options.limits),
            shutting_down: AtomicBool::new(false),
            registry: Registry::default(),
            hub,
            broker,
            store: options.store,
            authenticator: options.authenticator,
            retention: options.retention,
        });
        core.broker.bind_core(Arc::downgrade(&core));
        core
    }

    /// The limits sessions are held to.
    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// Rooms of this node.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Live sessions of this node.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The durable store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Starts the one task that ends sessions whose grace period passed and
    /// applies history retention at start and every `retention.every`.
    pub fn spawn_reaper(self: &Arc<Self>) -> JoinHandle<()> {
        let core = Arc::downgrade(self);
        let every = (self.limits.grace / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let retention_every = self.retention.every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut reap = tokio::time::interval(every);
            reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut retain = tokio::time::interval(retention_every);
            retain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = reap.tick() => {
                        let Some(core) = core.upgrade() else { return };
                        for (session, rooms) in core.registry.reap(&core.limits) {
                            tracing::debug!(sid = ?session.id(), "session ended after grace period");
                            core.after_end(&session, rooms).await;
                        }
                    }
                    _ = retain.tick() => {
                        let Some(core) = core.upgrade() else { return };
                        match core.store.apply_retention(&core.retention).await {
                            Ok(0) => {}
                            Ok(dropped) => tracing::debug!(dropped, "retention dropped old history"),
                            Err(e) => tracing::warn!(error = %e, "retention failed"),
                        }
                    }
                }
            }
        })
    }

    /// Why session `sid` is not on this node, as the answer to give: gone
    /// ([`AttachError::UnknownSession`]), or, when the broker cannot read
    /// its directory now (Redis unreachable) or says the session lives on
    /// a node this request was not relayed to, not known for sure
    /// ([`AttachError::Unavailable`]: try again, the session may live).
    pub async fn missing_session(&self, sid: &str) -> AttachError {
        match self.broker.locate(sid).await {
            Ok(None) => AttachError::UnknownSession,
            // It lives on another node, but this request did not get there
            // (the directory could not be read a moment ago): try again.
            Ok(Some(_)) => AttachError::Unavailable,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether a session lives; answering try again");
                codes::count_error(codes::STORE_FAILED);
                AttachError::Unavailable
            }
        }
    }

    /// Looks up a session by its textual id.
    pub fn session(&self, sid: &str) -> Option<Arc<Session>> {
        SessionId::parse(sid).and_then(|id| self.registry.get(id))
    }

    /// A new session whose room messages are encoded by `encoder`, for an
    /// anonymous user (protocol adapters without their own auth).
    pub fn create_session(&self, encoder: Arc<dyn Encoder>) -> Arc<Session> {
        let user = format!("anon-{}", PublicId::random());
        self.create_session_for(Identity { name: user.clone(), user, rooms: None }, encoder)
    }

    /// A new session of `identity` whose room messages are encoded by
    /// `encoder`.
    pub fn create_session_for(&self, identity: Identity, encoder: Arc<dyn Encoder>) -> Arc<Session> {
        metrics::counter!("switchboard_sessions_created_total").increment(1);
        self.registry.create(&self.limits, identity, encoder)
    }

    /// Checks credentials.
    pub fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
        let result = self.authenticator.authenticate(credentials);
        if result.is_err() {
            codes::count_error(codes::UNAUTHORIZED);
        }
        result
    }

    /// Refuses a new session when this node holds `max_sessions` already
    /// (counted under 4503). [`Core::open_session`] checks it; protocol
    /// adapters that create sessions themselves call it first.
    pub fn check_capacity(&self) -> Result<(), AttachError> {
        if self.registry.len() >= self.limits.max_sessions {
            codes::count_error(codes::SERVER_FULL);
            return Err(AttachError::Full);
        }
        Ok(())
    }

    /// Attaches a downstream: to the session `sid` (resuming after `last`),
    /// or to a new session when `sid` is `None`. A resume carries either no
    /// credentials (the session id is the secret) or the same user's.
    pub async fn attach(
        &self,
        sid: Option<&str>,
        last: u64,
        credentials: &Credentials,
    ) -> Result<Attached, AttachError> {
        if self.is_shutting_down() {
            return Err(AttachError::Ended(EndReason::ShuttingDown));
        }
        let (session, created) = match sid {
            Some(sid) => {
                let session = match self.session(sid) {
                    Some(session) => session,
                    None => return Err(self.missing_session(sid).await),
                };
                if credentials.token.is_some() || credentials.name.is_some() {
                    let identity = self.authenticate(credentials).map_err(AttachError::Unauthorized)?;
                    if identity.user != session.identity().user {
                        codes::count_error(codes::UNAUTHORIZED);
                        return Err(AttachError::Unauthorized(AuthError(
                            "this session belongs to another user".into(),
                        )));
                    }
                }
                metrics::counter!("switchboard_resumes_total").increment(1);
                (session, false)
            }
            None => {
                let identity = self.authenticate(credentials).map_err(AttachError::Unauthorized)?;
                (self.open_session(identity, Arc::new(NativeEncoder)).await?, true)
            }
        };
        let attachment = session.attach(last).map_err(AttachError::Ended)?;
        Ok(Attached { attachment, created, heartbeat_ms: self.limits.heartbeat.as_millis() as u64 })
    }

    /// A new session of `identity`, with everything a user's new session
    /// gets: the node's session limit, registration with the broker (so
    /// other nodes forward to it), the user's rooms joined, offline replay
    /// and unread counts. Protocol adapters call this too.
    pub async fn open_session(
        &self,
        identity: Identity,
        encoder: Arc<dyn Encoder>,
    ) -> Result<Arc<Session>, AttachError> {
        self.check_capacity()?;
        let session = self.create_session_for(identity, encoder);
        self.broker.session_created(session.id()).await;
        self.on_new_session(&session).await;
        Ok(session)
    }

    /// A user's new session: join the rooms the user is a member of, replay
    /// what was posted there while the user was offline, and tell the
    /// unread counts.
    async fn on_new_session(&self, session: &Arc<Session>) {
        let user = session.identity().user.clone();
        let rooms = match self.store.user_rooms(&user).await {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the user's rooms");
                return;
            }
        };
        // Rooms the user may still join (a narrower token loses the others).
        let mut allowed = Vec::with_capacity(rooms.len());
        for room in rooms {
            if self.may_join(session, &room).await.is_ok() {
                allowed.push(room);
            }
        }
        if allowed.is_empty() {
            return;
        }
        // Join first (so nothing posted from now on is missed) but hold live
        // messages until the replay is queued, then drop the ones the
        // replay already had: every message once, in id order.
        session.hold();
        for room in &allowed {
            self.join(session, room);
        }
        let marks = self.offline_marks(session, &allowed).await;
        let mut replayed: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
        for room in &allowed {
            let Some(&after) = marks.get(room) else { continue };
            // The newest messages since the mark; older ones by `history`.
            let query = HistoryQuery { after: None, before: Some(u64::MAX), limit: OFFLINE_REPLAY_PER_ROOM };
            match self.store.history(room, query).await {
                Ok(messages) => {
                    for m in messages.iter().filter(|m| m.id > after) {
                        session.push(Publication::stored(m, "").encoded_for(session.encoder()));
                        replayed.insert(room.clone(), m.id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, room, "offline replay failed"),
            }
        }
        if let Ok(summary) = self.room_summaries(&user).await {
            let summary: Vec<RoomSummary> = summary.into_iter().filter(|r| allowed.contains(&r.room)).collect();
            session.push(frame::rooms_body(None, &summary));
        }
        session.release(|room, id| replayed.get(room).is_some_and(|&last| id <= last));
    }

    /// Where the replay of each of `rooms` starts for a user's new session.
    ///
    /// A room the user's last session left behind has an offline mark (its
    /// newest message id then). A room without one became the user's
    /// while no session of the user was in it: a direct-message room the
    /// other user opened, a membership added through the HTTP API, or any
    /// room after the node restarted under a connected user (no session
    /// ended cleanly, so no mark was written). Those replay from the user's
    /// read mark (0 when the user never read the room), bounded like the
    /// rest by [`OFFLINE_REPLAY_PER_ROOM`]. A room another session of the
    /// user on this node is in replays nothing: that session has been
    /// receiving it live.
    async fn offline_marks(&self, session: &Arc<Session>, rooms: &[String]) -> std::collections::HashMap<String, u64> {
        let user = &session.identity().user;
        let mut marks = self.store.take_offline_marks(user).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the user's offline marks");
            Default::default()
        });
        let others: Vec<Arc<Session>> =
            self.registry.of_user(user).into_iter().filter(|s| s.id() != session.id()).collect();
        let unmarked: Vec<&String> =
            rooms.iter().filter(|room| !marks.contains_key(*room) && !others.iter().any(|s| s.in_room(room))).collect();
        if unmarked.is_empty() {
            return marks;
        }
        match self.store.read_marks(user).await {
            Ok(read) => {
                for room in unmarked {
                    marks.insert(room.clone(), read.get(room).copied().unwrap_or(0));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the user's read marks; no replay for unmarked rooms"),
        }
        marks
    }

    /// The user's rooms with their unread counts.
    pub async fn room_summaries(&self, user: &str) -> Result<Vec<RoomSummary>, crate::store::StoreError> {
        let rooms = self.store.user_rooms(user).await?;
        let marks = self.store.read_marks(user).await?;
        let mut out = Vec::with_capacity(rooms.len());
        for room in rooms {
            let read = marks.get(&room).copied().unwrap_or(0);
            let last_id = self.store.room(&room).await?.map_or(0, |r| r.last_id);
            let unread = self.store.count_after(&room, read).await?;
            out.push(RoomSummary { room, last_id, read, unread });
        }
        Ok(out)
    }

    /// Adds a session to a room (idempotent); announces the user when this
    /// is the user's first session there. No permission check: callers
    /// check first.
    pub fn join(&self, session: &Arc<Session>, room: &str) {
        if !session.add_room(room) {
            return;
        }
        let arrived = self.hub.join(room, session);
        if self.left_if_ended(session, room) {
            return;
        }
        if arrived {
            let identity = session.identity();
            self.broker.presence_changed(room, &identity.user, &identity.name, true);
            self.announce(session, room, Kind::PresenceJoin);
        }
    }

    /// A session that ended while it was joining `room` (after it noted the
    /// room, before the hub had it, so the end's leaving missed it) leaves
    /// the hub again: rooms hold their members strongly.
    fn left_if_ended(&self, session: &Arc<Session>, room: &str) -> bool {
        if !session.is_ended() {
            return false;
        }
        self.hub.leave(room, session.id(), &session.identity().user);
        true
    }

    /// Adds a session to a room without presence announcements: for a
    /// protocol adapter's internal rooms (a socket's own room, a namespace's
    /// every-socket room) that no person would call a room.
    pub fn join_quiet(&self, session: &Arc<Session>, room: &str) {
        if session.add_room(room) {
            self.hub.join_as(room, session, false);
            self.left_if_ended(session, room);
        }
    }

    /// Removes a session from a room (idempotent); announces the user's
    /// leaving when it was the user's last session there.
    pub fn leave(&self, session: &Arc<Session>, room: &str) {
        if session.remove_room(room) && self.hub.leave(room, session.id(), &session.identity().user) {
            let identity = session.identity();
            self.broker.presence_changed(room, &identity.user, &identity.name, false);
            self.announce(session, room, Kind::PresenceLeave);
        }
    }

    /// Ends `user`'s membership of `room` (the HTTP API): the store forgets
    /// it, and the user's sessions on every node leave the room at once
    /// (this node's before the answer, the others' through the broker), so
    /// a private room stops reaching them, and each gets a `rooms` frame
    /// without it. Returns how many sessions of this node left.
    pub async fn remove_member(&self, room: &str, user: &str) -> Result<usize, crate::store::StoreError> {
        self.store.remove_member(room, user).await?;
        let here = self.leave_as_removed(room, user).await;
        let command = NodeCommand::RemoveMember { room: room.to_owned(), user: user.to_owned() };
        self.broker.tell_other_nodes(command).await.map_err(|e| {
            crate::store::StoreError(format!("the membership ended, but the other nodes could not be told: {e}"))
        })?;
        Ok(here)
    }

    /// The sessions of `user` on this node leave `room`, which is no longer
    /// theirs, and are told their rooms; returns how many.
    async fn leave_as_removed(&self, room: &str, user: &str) -> usize {
        let sessions: Vec<Arc<Session>> = self.registry.of_user(user).into_iter().filter(|s| s.in_room(room)).collect();
        if sessions.is_empty() {
            return 0;
        }
        for session in &sessions {
            self.leave(session, room);
        }
        match self.room_summaries(user).await {
            Ok(summary) => {
                let frame = frame::rooms_body(None, &summary);
                for session in &sessions {
                    session.push(frame.clone());
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot tell the removed member's sessions their rooms"),
        }
        sessions.len()
    }

    fn announce(&self, session: &Session, room: &str, kind: Kind) {
        // The room's size with the user in it (a leave is announced after
        // the session left), so a join and its leave are judged alike.
        let members = self.hub.member_count(room) + usize::from(matches!(kind, Kind::PresenceLeave));
        if members > self.limits.presence_events_max_members {
            metrics::counter!("switchboard_presence_events_skipped_total").increment(1);
            return;
        }
        let identity = session.identity();
        let event = Publication::event(kind, room, session.public_id(), &identity.user, &identity.name, 0, null());
        self.broker.publish(event);
    }

    /// Publishes to every member of the room, on every node.
    pub fn publish(&self, publication: Publication) {
        crate::stats::hot().messages_out.increment(1);
        self.broker.publish(publication);
    }

    /// Users present in `room` on every node: (user id, name), sorted.
    pub async fn who(&self, room: &str) -> Vec<(String, String)> {
        self.broker.who(room).await
    }

    /// The broker (cross-node fan-out and session directory).
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// Tells every attachment to close with 4002 and refuses new ones.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for session in self.registry.all() {
            session.begin_shutdown();
        }
    }

    /// Whether [`Core::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Ends a session at once: its attachment closes with `reason`.
    pub async fn end_session(&self, id: SessionId) {
        if let Some(session) = self.registry.get(id) {
            self.registry.remove(id);
            let rooms = session.end_now();
            self.after_end(&session, rooms).await;
        }
    }

    /// Ends every session of `user` on every node (their attachments close
    /// with 4005): this node's at once, the others' through the broker.
    /// Returns how many ended here; `Err` when the other nodes could not be
    /// told (this node's sessions are ended all the same).
    pub async fn disconnect_user(&self, user: &str) -> Result<usize, BrokerError> {
        let here = self.disconnect_local(user).await;
        self.broker.tell_other_nodes(NodeCommand::DisconnectUser { user: user.to_owned() }).await?;
        Ok(here)
    }

    /// Does what another node asked of this one (the broker calls it).
    pub async fn apply_node_command(&self, command: NodeCommand) -> usize {
        match command {
            NodeCommand::DisconnectUser { user } => self.disconnect_local(&user).await,
            NodeCommand::RemoveMember { room, user } => self.leave_as_removed(&room, &user).await,
        }
    }

    /// Ends every session of `user` on this node (their attachments close
    /// with 4005); returns how many. The broker calls it when another node
    /// was asked to disconnect the user.
    pub async fn disconnect_local(&self, user: &str) -> usize {
        let sessions = self.registry.of_user(user);
        for session in &sessions {
            session.kick();
            self.end_session(session.id()).await;
        }
        sessions.len()
    }

    /// A session ended: leave its rooms (presence), and when it was the
    /// user's last, remember where the user's rooms stood (offline
    /// delivery).
    async fn after_end(&self, session: &Arc<Session>, rooms: Vec<String>) {
        let user = &session.identity().user;
        self.broker.session_ended(session.id());
        for room in rooms {
            if self.hub.leave(&room, session.id(), user) {
                self.broker.presence_changed(&room, user, &session.identity().name, false);
                self.announce(session, &room, Kind::PresenceLeave);
            }
        }
        if self.registry.user_sessions(user) == 0 {
            if let Err(e) = self.store.mark_offline(user).await {
                tracing::warn!(error = %e, "cannot record the user's offline marks");
            }
        }
    }
}

pub(crate) fn null() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
}
