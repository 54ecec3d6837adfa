//! The narrow API transports use: attach a downstream, apply upstream frames.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::codes;
use crate::frame::{self, Downstream, FrameError, Upstream};
use crate::hub::Hub;
use crate::id::SessionId;
use crate::limits::SessionLimits;
use crate::publication::{Encoder, NativeEncoder, Publication};
use crate::registry::Registry;
use crate::session::{Attachment, EndReason, Session};

/// Sessions and rooms of one node.
#[derive(Debug)]
pub struct Core {
    limits: SessionLimits,
    shutting_down: AtomicBool,
    registry: Registry,
    hub: Hub,
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
}

impl AttachError {
    /// The `close` frame telling the client what to do.
    pub fn close_frame(&self) -> Downstream {
        match self {
            AttachError::UnknownSession => EndReason::SessionEnded.close_frame(),
            AttachError::Ended(reason) => reason.close_frame(),
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

/// A freshly attached downstream and what to greet it with.
#[derive(Debug)]
pub struct Attached {
    /// The attachment to read frames from.
    pub attachment: Attachment,
    /// The `welcome` control frame.
    pub welcome: Downstream,
    /// Whether the session was created by this attach.
    pub created: bool,
}

impl Core {
    /// A node's core with these session limits.
    pub fn new(limits: SessionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            shutting_down: AtomicBool::new(false),
            registry: Registry::default(),
            hub: Hub::default(),
        })
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

    /// Starts the one task that ends sessions whose grace period passed.
    pub fn spawn_reaper(self: &Arc<Self>) -> JoinHandle<()> {
        let core = Arc::downgrade(self);
        let every = (self.limits.grace / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(core) = core.upgrade() else { return };
                for (sid, rooms) in core.registry.reap(&core.limits) {
                    tracing::debug!(sid = ?sid, "session ended after grace period");
                    for room in rooms {
                        core.hub.leave(&room, sid);
                    }
                }
            }
        })
    }

    /// Looks up a session by its textual id.
    pub fn session(&self, sid: &str) -> Option<Arc<Session>> {
        SessionId::parse(sid).and_then(|id| self.registry.get(id))
    }

    /// A new session whose room messages are encoded by `encoder` (protocol
    /// adapters pass their own; native sessions are created by
    /// [`Core::attach`]).
    pub fn create_session(&self, encoder: Arc<dyn Encoder>) -> Arc<Session> {
        self.registry.create(&self.limits, encoder)
    }

    /// Adds a session to a room (idempotent).
    pub fn join(&self, session: &Arc<Session>, room: &str) {
        if session.add_room(room) {
            self.hub.join(room, session);
        }
    }

    /// Removes a session from a room (idempotent).
    pub fn leave(&self, session: &Arc<Session>, room: &str) {
        if session.remove_room(room) {
            self.hub.leave(room, session.id());
        }
    }

    /// Publishes to every member of the room; returns how many received it.
    pub fn publish(&self, publication: &Publication) -> usize {
        self.hub.publish(publication)
    }

    /// Attaches a downstream: to the session `sid` (resuming after `last`),
    /// or to a new session when `sid` is `None`.
    pub fn attach(&self, sid: Option<&str>, last: u64) -> Result<Attached, AttachError> {
        if self.is_shutting_down() {
            return Err(AttachError::Ended(EndReason::ShuttingDown));
        }
        let (session, created) = match sid {
            Some(sid) => (self.session(sid).ok_or(AttachError::UnknownSession)?, false),
            None => (self.create_session(Arc::new(NativeEncoder)), true),
        };
        let attachment = session.attach(last).map_err(AttachError::Ended)?;
        let welcome = frame::welcome(
            &session.id().to_string(),
            session.public_id(),
            !created,
            self.limits.heartbeat.as_millis() as u64,
        );
        Ok(Attached { attachment, welcome, created })
    }

    /// Applies upstream frames in order; answers (ack, echo, error) are
    /// queued as sequenced frames of the session.
    pub fn apply(&self, session: &Arc<Session>, frames: Vec<Result<Upstream, FrameError>>) {
        for frame in frames {
            match frame {
                Ok(frame) => self.apply_one(session, frame),
                Err(e) => {
                    session.push(frame::error_body(e.cid.as_deref(), e.code, &e.message));
                }
            }
        }
    }

    fn apply_one(&self, session: &Arc<Session>, frame: Upstream) {
        if let Upstream::Ack { seq } = frame {
            session.ack(seq);
            return;
        }
        let cid = frame.cid().map(str::to_owned);
        if let Some(cid) = &cid {
            if !session.first_time(cid) {
                // Already applied: answer again, apply nothing.
                if let Upstream::Echo { data, .. } = &frame {
                    session.push(frame::echo_body(Some(cid), data));
                } else {
                    session.push(frame::ack_body(cid));
                }
                return;
            }
        }
        let result = match &frame {
            Upstream::Join { room, .. } => {
                self.join(session, room);
                Ok(())
            }
            Upstream::Leave { room, .. } => {
                self.leave(session, room);
                Ok(())
            }
            Upstream::Publish { room, data, .. } => {
                if session.in_room(room) {
                    self.publish(&Publication::new(room.as_str(), session.public_id(), data.clone()));
                    Ok(())
                } else {
                    Err((codes::FORBIDDEN, format!("join room {room:?} before publishing to it")))
                }
            }
            Upstream::Echo { data, .. } => {
                session.push(frame::echo_body(cid.as_deref(), data));
                return;
            }
            Upstream::Ack { .. } => unreachable!("handled above"),
        };
        match (result, cid) {
            (Ok(()), Some(cid)) => {
                session.push(frame::ack_body(&cid));
            }
            (Ok(()), None) => {}
            (Err((code, message)), cid) => {
                if let Some(cid) = &cid {
                    session.forget_cid(cid);
                }
                session.push(frame::error_body(cid.as_deref(), code, &message));
            }
        }
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

    /// Ends a session at once (used by tests and administrative APIs).
    pub fn end_session(&self, id: SessionId) {
        if let Some(session) = self.registry.get(id) {
            self.registry.remove(id);
            for room in session.end_now() {
                self.hub.leave(&room, id);
            }
        }
    }
}
