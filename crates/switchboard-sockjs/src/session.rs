//! SockJS's view of a core session: the client-chosen session id, the
//! protocol's open/closing phases, and its one receiving connection.
//!
//! A SockJS client names its session itself (`/{server}/{session}/...`), so
//! each service keeps a table from that name to a [`SockJsSession`], which
//! wraps the core [`Session`] holding the outbox and rooms. Nothing here
//! queues messages or knows rooms: that is the core's.
//!
//! The protocol's rules live here:
//!
//! - The first receiving request opens the session (`o`).
//! - At most one receiving connection at a time: a second one gets
//!   `c[2010,"Another connection still open"]` and the first keeps going.
//!   (The core would let the newer attachment supersede the older; SockJS
//!   wants the opposite, so [`SockJsSession::register`] checks first.)
//! - A closed session answers every receiving request with its close frame
//!   until it times out.
//! - A receiving connection that breaks (the client went away before the
//!   response was complete) closes the session with
//!   `c[1002,"Connection interrupted"]`: the client cannot know which
//!   messages it lost.
//! - A session with no receiving connection for the disconnect delay ends
//!   ([`Sessions::sweep`]).
//!
//! SockJS has no acknowledgements: a frame counts as delivered (and is
//! acknowledged to the core outbox) once its response or chunk is handed to
//! the HTTP layer, so a response lost on the wire loses its messages, as
//! with every SockJS server. Delivery is at most once per transport.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use switchboard_core::frame::Downstream;
use switchboard_core::id::SessionId;
use switchboard_core::session::{Attachment, EndReason, Session};
use switchboard_core::Core;
use tokio::sync::Notify;

use crate::frame::{self, close_of};

/// Longest accepted client-chosen session (and server) id, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// One SockJS session: a core session plus the protocol's state.
#[derive(Debug)]
pub(crate) struct SockJsSession {
    core: Arc<Session>,
    state: Mutex<State>,
    /// Woken when the session starts closing, so a waiting receiver writes
    /// the close frame at once.
    closing: Notify,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    receiving: bool,
    detached_at: Instant,
}

#[derive(Debug, Clone)]
enum Phase {
    /// Created; the `o` frame is not written yet.
    New,
    /// Open: messages flow.
    Open,
    /// Closed by the server: every receiving request gets this close frame.
    Closing(Bytes),
}

/// What a receiving request gets.
#[derive(Debug)]
pub(crate) enum Registration {
    /// Another receiving connection is open.
    AnotherOpen,
    /// The session is closing: the messages still queued (already counted
    /// as delivered), then its close frame.
    Closing { pending: Vec<Downstream>, close: Bytes },
    /// This request is the session's receiving connection.
    Receiving(Receiver),
}

impl SockJsSession {
    pub(crate) fn new(core: Arc<Session>) -> Arc<Self> {
        Arc::new(Self {
            core,
            state: Mutex::new(State { phase: Phase::New, receiving: false, detached_at: Instant::now() }),
            closing: Notify::new(),
        })
    }

    /// The core session (outbox, rooms).
    pub(crate) fn core(&self) -> &Arc<Session> {
        &self.core
    }

    /// Whether messages from the client are taken (open, not closing).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state.lock().phase, Phase::Open)
    }

    /// The close frame, once the session is closing.
    pub(crate) fn close_frame(&self) -> Option<Bytes> {
        match &self.state.lock().phase {
            Phase::Closing(close) => Some(close.clone()),
            _ => None,
        }
    }

    /// Closes the session from the server side with `close` (a `c` frame);
    /// a second close keeps the first frame.
    pub(crate) fn close(&self, close: Bytes) {
        let mut state = self.state.lock();
        if !matches!(state.phase, Phase::Closing(_)) {
            state.phase = Phase::Closing(close);
            drop(state);
            self.closing.notify_waiters();
        }
    }

    /// A future resolving when the session starts closing (enable it
    /// before checking [`SockJsSession::close_frame`]).
    pub(crate) fn closing_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.closing.notified()
    }

    /// Marks the session open without a receiving request (WebSocket
    /// sessions write `o` themselves).
    pub(crate) fn mark_open(&self) {
        let mut state = self.state.lock();
        if matches!(state.phase, Phase::New) {
            state.phase = Phase::Open;
        }
    }

    /// A receiving request arrived; see [`Registration`].
    pub(crate) fn register(self: &Arc<Self>, core: &Arc<Core>) -> Registration {
        let mut state = self.state.lock();
        if state.receiving {
            return Registration::AnotherOpen;
        }
        if let Phase::Closing(close) = &state.phase {
            let close = close.clone();
            state.detached_at = Instant::now();
            return Registration::Closing { pending: self.drain(), close };
        }
        match self.core.attach(0) {
            Ok(attachment) => {
                let opened = matches!(state.phase, Phase::New);
                state.phase = Phase::Open;
                state.receiving = true;
                Registration::Receiving(Receiver {
                    session: Arc::clone(self),
                    core: Arc::clone(core),
                    attachment: Some(attachment),
                    opened,
                    finished: false,
                })
            }
            Err(reason) => {
                let close = end_frame(reason);
                state.phase = Phase::Closing(close.clone());
                state.detached_at = Instant::now();
                Registration::Closing { pending: Vec::new(), close }
            }
        }
    }

    /// Takes what is still queued, counting it as delivered (no receiving
    /// connection is attached when this runs).
    fn drain(&self) -> Vec<Downstream> {
        let Ok(mut attachment) = self.core.attach(0) else {
            return Vec::new();
        };
        match attachment.try_batch(usize::MAX) {
            Some(Ok(frames)) => {
                ack(&self.core, &frames);
                frames
            }
            _ => Vec::new(),
        }
    }
}

/// The close frame for an attachment the core ended.
pub(crate) fn end_frame(reason: EndReason) -> Bytes {
    match reason {
        EndReason::ShuttingDown => close_of(frame::SHUTTING_DOWN),
        EndReason::Superseded => close_of(frame::ANOTHER_CONNECTION),
        _ => close_of(frame::SESSION_ENDED),
    }
}

/// Acknowledges `frames` to the core outbox: they were handed to the HTTP
/// layer.
pub(crate) fn ack(session: &Session, frames: &[Downstream]) {
    if let Some(seq) = frames.iter().rev().find_map(Downstream::seq) {
        session.ack(seq);
    }
}

/// What a receiving connection writes next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Messages (already acknowledged), for one `a` frame.
    Messages(Vec<Downstream>),
    /// The close frame; the connection ends after it.
    Close(Bytes),
    /// Nothing happened for a heartbeat interval.
    Heartbeat,
}

/// The session's one receiving connection. Dropping it before
/// [`Receiver::finish`] means the client went away mid-response.
#[derive(Debug)]
pub(crate) struct Receiver {
    session: Arc<SockJsSession>,
    core: Arc<Core>,
    attachment: Option<Attachment>,
    /// Whether this request opened the session: it writes `o` first.
    pub(crate) opened: bool,
    finished: bool,
}

impl Receiver {
    /// The SockJS session.
    #[cfg(test)]
    pub(crate) fn session(&self) -> &Arc<SockJsSession> {
        &self.session
    }

    /// What is ready now, without waiting.
    pub(crate) fn try_next(&mut self, max: usize) -> Option<Next> {
        let attachment = self.attachment.as_mut()?;
        if let Some(close) = self.session.close_frame() {
            // What was queued before the close goes first.
            return Some(match attachment.try_batch(max) {
                Some(Ok(frames)) if !frames.is_empty() => self.delivered(frames),
                _ => Next::Close(close),
            });
        }
        match attachment.try_batch(max)? {
            Ok(frames) => Some(self.delivered(frames)),
            Err(reason) => {
                self.session.close(end_frame(reason));
                self.session.close_frame().map(Next::Close)
            }
        }
    }

    /// Waits up to `heartbeat` for something to write.
    pub(crate) async fn next(&mut self, max: usize, heartbeat: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + heartbeat;
        loop {
            let session = Arc::clone(&self.session);
            let mut closing = pin!(session.closing_notified());
            closing.as_mut().enable();
            if let Some(next) = self.try_next(max) {
                return next;
            }
            let Some(attachment) = self.attachment.as_mut() else {
                return Next::Heartbeat;
            };
            let woke = tokio::select! {
                result = attachment.next_batch(max) => Some(result),
                () = &mut closing => None,
                () = tokio::time::sleep_until(deadline) => return Next::Heartbeat,
            };
            match woke {
                Some(Ok(frames)) => return self.delivered(frames),
                Some(Err(reason)) => self.session.close(end_frame(reason)),
                // Closing: `try_next` writes what is queued, then the frame.
                None => {}
            }
        }
    }

    fn delivered(&self, frames: Vec<Downstream>) -> Next {
        ack(&self.session.core, &frames);
        Next::Messages(frames)
    }

    /// The response ended as the protocol wants (not broken off).
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.attachment.take());
        let end_core = {
            let mut state = self.session.state.lock();
            state.receiving = false;
            state.detached_at = Instant::now();
            if !self.finished && !matches!(state.phase, Phase::Closing(_)) {
                state.phase = Phase::Closing(close_of(frame::INTERRUPTED));
            }
            matches!(state.phase, Phase::Closing(_))
        };
        if end_core {
            end_core_session(&self.core, self.session.core.id());
        }
    }
}

/// Ends a core session (it leaves its rooms) from synchronous code.
pub(crate) fn end_core_session(core: &Arc<Core>, id: SessionId) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let core = Arc::clone(core);
        runtime.spawn(async move { core.end_session(id).await });
    }
}

/// The SockJS sessions of one service, by client-chosen id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Arc<SockJsSession>>>,
}

impl Sessions {
    /// The session named `id`, if it lives.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<SockJsSession>> {
        self.map.lock().get(id).cloned()
    }

    /// The session named `id`, created with `create` when new.
    pub(crate) fn get_or_create(&self, id: &str, create: impl FnOnce() -> Arc<Session>) -> Arc<SockJsSession> {
        let mut map = self.map.lock();
        if let Some(session) = map.get(id) {
            return Arc::clone(session);
        }
        let session = SockJsSession::new(create());
        map.insert(id.to_owned(), Arc::clone(&session));
        session
    }

    /// Forgets the sessions without a receiving connection for `delay`;
    /// returns their core session ids, to be ended.
    pub(crate) fn sweep(&self, now: Instant, delay: Duration) -> Vec<SessionId> {
        let mut ended = Vec::new();
        self.map.lock().retain(|_, session| {
            let state = session.state.lock();
            let expired = !state.receiving && now.duration_since(state.detached_at) >= delay;
            if expired {
                ended.push(session.core.id());
            }
            !expired
        });
        ended
    }

    /// Number of live sessions.
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::SessionLimits;

    use super::*;
    use crate::encoder::SockJsEncoder;

    fn setup() -> (Arc<Core>, Sessions) {
        (Core::new(SessionLimits::default()), Sessions::default())
    }

    fn open(core: &Arc<Core>, sessions: &Sessions, id: &str) -> Registration {
        let s = sessions.get_or_create(id, || core.create_session(Arc::new(SockJsEncoder)));
        s.register(core)
    }

    #[tokio::test]
    async fn first_receiver_opens_second_is_refused() {
        let (core, sessions) = setup();
        let Registration::Receiving(first) = open(&core, &sessions, "a") else { panic!() };
        assert!(first.opened);
        assert!(matches!(open(&core, &sessions, "a"), Registration::AnotherOpen));
        first.finish();
        let Registration::Receiving(again) = open(&core, &sessions, "a") else { panic!() };
        assert!(!again.opened);
    }

    #[tokio::test]
    async fn close_is_repeated_until_timeout() {
        let (core, sessions) = setup();
        let Registration::Receiving(r) = open(&core, &sessions, "a") else { panic!() };
        r.session().close(close_of(frame::GO_AWAY));
        r.finish();
        for _ in 0..2 {
            let Registration::Closing { close, .. } = open(&core, &sessions, "a") else { panic!() };
            assert_eq!(&close[..], br#"c[3000,"Go away!"]"#);
        }
        assert_eq!(sessions.sweep(Instant::now() + Duration::from_secs(6), Duration::from_secs(5)).len(), 1);
        assert_eq!(sessions.len(), 0);
    }

    #[tokio::test]
    async fn broken_receiver_interrupts_the_session() {
        let (core, sessions) = setup();
        let Registration::Receiving(r) = open(&core, &sessions, "a") else { panic!() };
        drop(r);
        let Registration::Closing { close, .. } = open(&core, &sessions, "a") else { panic!() };
        assert_eq!(&close[..], br#"c[1002,"Connection interrupted"]"#);
    }

    #[tokio::test]
    async fn waiting_receiver_gets_messages_then_heartbeat() {
        let (core, sessions) = setup();
        let Registration::Receiving(mut r) = open(&core, &sessions, "a") else { panic!() };
        let session = Arc::clone(r.session());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            session.core().push(crate::frame::quoted("hi"));
        });
        let Next::Messages(frames) = r.next(16, Duration::from_secs(5)).await else { panic!() };
        assert_eq!(frames.len(), 1);
        assert!(matches!(r.next(16, Duration::from_millis(30)).await, Next::Heartbeat));
        // Delivered frames were acknowledged: the outbox is empty.
        assert_eq!(r.session().core().outbox_size().0, 0);
        r.finish();
    }

    #[tokio::test]
    async fn closing_wakes_a_waiting_receiver() {
        let (core, sessions) = setup();
        let Registration::Receiving(mut r) = open(&core, &sessions, "a") else { panic!() };
        let session = Arc::clone(r.session());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            session.close(close_of(frame::GO_AWAY));
        });
        let Next::Close(close) = r.next(16, Duration::from_secs(5)).await else { panic!() };
        assert_eq!(&close[..], br#"c[3000,"Go away!"]"#);
        r.finish();
    }
}
