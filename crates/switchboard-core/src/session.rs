//! One client's logical connection.
//!
//! A [`Session`] owns the outbox, remembers the cids it applied and the rooms
//! it joined, and has at most one downstream [`Attachment`]. Attaching bumps a
//! generation number: the attachment holding the old number sees it changed
//! and ends with `close` 4000, so two downstreams never read the same frames.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::codes;
use crate::frame::{self, Downstream};
use crate::id::{PublicId, SessionId};
use crate::identity::Identity;
use crate::limits::SessionLimits;
use crate::outbox::Outbox;
use crate::publication::Encoder;

/// One client's logical connection; outlives its transports.
#[derive(Debug)]
pub struct Session {
    /// Held while a batch of upstream frames is applied, so a retried batch
    /// that overlaps the first waits for it instead of overtaking it.
    pub(crate) applying: tokio::sync::Mutex<()>,
    id: SessionId,
    public_id: String,
    identity: Identity,
    encoder: Arc<dyn Encoder>,
    state: Mutex<State>,
    /// Woken whenever something an attachment waits for changes.
    wake: Notify,
    /// The node's limits, shared by every session (rates, write window):
    /// one pointer instead of a copy of each in every session.
    limits: Arc<SessionLimits>,
}

#[derive(Debug)]
struct State {
    outbox: Outbox,
    /// Generation of the current attachment; attachments with another one
    /// were superseded.
    generation: u64,
    attached: bool,
    detached_at: Instant,
    ended: bool,
    kicked: bool,
    shutting_down: bool,
    cids: CidWindow,
    /// A list, not a set: a session is in a few rooms (at most
    /// `max_rooms`, 100 by default), and a set's smallest table is about
    /// 100 bytes more per session than a list sized to what it holds.
    rooms: Vec<String>,
    buckets: [TokenBucket; 3],
    /// When the reader last took a batch (`None`: not yet): the write
    /// window's start ([`Attachment::next_batch`]). Kept here, not in the
    /// attachment, so a connection's task keeps no clock of its own.
    last_batch: Option<Instant>,
    /// Whether the previous batch came busy (soon after the one before
    /// it) or was held by the write window: only a reader busy twice in a
    /// row is paced, so one frame that happens to follow another closely
    /// (two publishes a moment apart in a quiet room) is not held.
    was_busy: bool,
    /// Whether the batch being waited for was held by the window.
    window_held: bool,
    /// While the offline replay of a new session is being assembled, live
    /// room publications are held here: (room, message id, body).
    held: Option<Vec<(String, u64, Bytes)>>,
    /// Whether a reader found nothing to read since the last wake-up: only
    /// then does a new frame wake readers ([`Attachment::next_batch`]
    /// registers for the wake-up before it looks, so none is missed).
    reader_waiting: bool,
}

/// What a session may do how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Chat messages (publish).
    Messages = 0,
    /// Typing indicators.
    Typing = 1,
    /// Joins.
    Joins = 2,
}

impl Rate {
    /// Its (rate per second, burst) on this node.
    fn limit(self, limits: &SessionLimits) -> (f64, f64) {
        match self {
            Rate::Messages => limits.rate_messages,
            Rate::Typing => limits.rate_typing,
            Rate::Joins => limits.rate_joins,
        }
    }
}

/// Where a `cid` stands in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidState {
    /// Never seen: apply the frame (it is now marked pending).
    New,
    /// Being applied (a publish waiting for the store): ignore the retry;
    /// the answer will come.
    Pending,
    /// Applied: answer again with this body.
    Done(Bytes),
}

/// Why an attachment has nothing more to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A newer attachment took over.
    Superseded,
    /// The session ended (grace expired).
    SessionEnded,
    /// The server is shutting down.
    ShuttingDown,
    /// The user was disconnected through the HTTP API.
    Kicked,
}

impl EndReason {
    /// The `close` frame that tells the client.
    pub fn close_frame(self) -> Downstream {
        match self {
            EndReason::Superseded => {
                frame::close(codes::SUPERSEDED, "a newer connection took over this session", false)
            }
            // Not resumable: `reconnect` means "resume this sid".
            EndReason::SessionEnded => {
                frame::close(codes::SESSION_NOT_FOUND, "session ended; start a new session", false)
            }
            EndReason::ShuttingDown => frame::close(codes::SHUTTING_DOWN, "server shutting down; resume shortly", true),
            EndReason::Kicked => frame::close(codes::KICKED, "disconnected by the server", false),
        }
    }

    /// The close code of [`EndReason::close_frame`].
    pub fn code(self) -> u16 {
        match self {
            EndReason::Superseded => codes::SUPERSEDED,
            EndReason::SessionEnded => codes::SESSION_NOT_FOUND,
            EndReason::ShuttingDown => codes::SHUTTING_DOWN,
            EndReason::Kicked => codes::KICKED,
        }
    }
}

impl Session {
    pub(crate) fn new(limits: &Arc<SessionLimits>, identity: Identity, encoder: Arc<dyn Encoder>) -> Arc<Self> {
        Arc::new(Self {
            applying: tokio::sync::Mutex::new(()),
            id: SessionId::random(),
            public_id: PublicId::random().to_string(),
            identity,
            encoder,
            state: Mutex::new(State {
                outbox: Outbox::new(limits.outbox_max_frames, limits.outbox_max_bytes),
                generation: 0,
                attached: false,
                detached_at: Instant::now(),
                ended: false,
                kicked: false,
                shutting_down: false,
                cids: CidWindow::new(limits.cid_window, limits.grace + CID_RETRY_MARGIN),
                rooms: Vec::new(),
                buckets: [Rate::Messages, Rate::Typing, Rate::Joins].map(|rate| TokenBucket::new(rate.limit(limits).1)),
                last_batch: None,
                was_busy: false,
                window_held: false,
                held: None,
                reader_waiting: false,
            }),
            wake: Notify::new(),
            limits: Arc::clone(limits),
        })
    }

    /// The secret session id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The public id other members see as `from`.
    pub fn public_id(&self) -> &str {
        &self.public_id
    }

    /// The user this session belongs to.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Takes one token of `rate`; false when over the limit.
    pub fn allow(&self, rate: Rate) -> bool {
        self.state.lock().buckets[rate as usize].take(Instant::now(), rate.limit(&self.limits))
    }

    /// How many rooms this session is in.
    pub fn room_count(&self) -> usize {
        self.state.lock().rooms.len()
    }

    /// Rooms this session has joined.
    pub fn rooms(&self) -> Vec<String> {
        self.state.lock().rooms.to_vec()
    }

    /// Whether the session has ended.
    pub(crate) fn is_ended(&self) -> bool {
        self.state.lock().ended
    }

    /// Whether a downstream is attached now.
    pub fn is_attached(&self) -> bool {
        self.state.lock().attached
    }

    /// The wire format room messages are encoded in for this session.
    pub fn encoder(&self) -> &dyn Encoder {
        &*self.encoder
    }

    /// Queues a sequenced frame body; returns its seq, or `None` when the
    /// session has ended.
    pub fn push(&self, body: Bytes) -> Option<u64> {
        let (seq, wake) = {
            let mut state = self.state.lock();
            if state.ended {
                return None;
            }
            state.queue(body, Instant::now())
        };
        if wake {
            self.wake.notify_waiters();
        }
        Some(seq)
    }

    /// Delivers a room publication: queued, or held while the offline
    /// replay is assembled.
    pub(crate) fn deliver(&self, room: &str, id: u64, body: Bytes, now: Instant) -> bool {
        {
            let mut state = self.state.lock();
            if state.ended {
                return false;
            }
            if let Some(held) = state.held.as_mut() {
                held.push((room.to_owned(), id, body));
                return true;
            }
            if !state.queue(body, now).1 {
                return true;
            }
        }
        self.wake.notify_waiters();
        true
    }

    /// Starts holding live room publications (see [`Session::release`]).
    pub(crate) fn hold(&self) {
        self.state.lock().held = Some(Vec::new());
    }

    /// Queues the held publications, in order, but the chat messages that
    /// `seen(room, id)` says were replayed already.
    pub(crate) fn release(&self, seen: impl Fn(&str, u64) -> bool) {
        {
            let mut state = self.state.lock();
            for (room, id, body) in state.held.take().unwrap_or_default() {
                if id == 0 || !seen(&room, id) {
                    state.outbox.push(body);
                }
            }
        }
        self.wake.notify_waiters();
    }

    /// The client has processed every frame up to `seq`.
    pub fn ack(&self, seq: u64) {
        self.state.lock().outbox.ack(seq);
    }

    /// Takes over the downstream: the previous attachment (if any) is
    /// superseded. `last` acknowledges and positions the reader.
    pub fn attach(self: &Arc<Self>, last: u64) -> Result<Attachment, EndReason> {
        let attachment = {
            let mut state = self.state.lock();
            if state.shutting_down {
                return Err(EndReason::ShuttingDown);
            }
            if state.ended {
                return Err(EndReason::SessionEnded);
            }
            state.outbox.ack(last);
            state.generation += 1;
            state.attached = true;
            Attachment { session: Arc::clone(self), generation: state.generation, next: state.outbox.start_after(last) }
        };
        self.wake.notify_waiters();
        Ok(attachment)
    }

    /// Where `cid` stands; a new one is marked pending.
    pub fn begin_cid(&self, cid: &str) -> CidState {
        self.state.lock().cids.begin(cid, Instant::now())
    }

    /// The frame `cid` was applied; `answer` is sent again on a retry.
    pub fn finish_cid(&self, cid: &str, answer: Bytes) {
        self.state.lock().cids.finish(cid, answer);
    }

    /// Forgets a cid (its frame failed: a retry applies it again).
    pub fn forget_cid(&self, cid: &str) {
        self.state.lock().cids.remove(cid);
    }

    /// Records membership; false when already a member or ended.
    pub(crate) fn add_room(&self, room: &str) -> bool {
        let state = &mut *self.state.lock();
        let rooms = &mut state.rooms;
        if state.ended || rooms.iter().any(|r| r == room) {
            return false;
        }
        rooms.reserve_exact(1);
        rooms.push(room.to_owned());
        true
    }

    /// Drops membership; false when not a member.
    pub(crate) fn remove_room(&self, room: &str) -> bool {
        let rooms = &mut self.state.lock().rooms;
        let Some(i) = rooms.iter().position(|r| r == room) else { return false };
        rooms.swap_remove(i);
        true
    }

    /// Whether the session has joined `room`.
    pub fn in_room(&self, room: &str) -> bool {
        self.state.lock().rooms.iter().any(|r| r == room)
    }

    /// Frames and bytes currently held in the outbox.
    pub fn outbox_size(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.outbox.len(), state.outbox.bytes())
    }

    /// Ends the session when it has been detached for longer than `grace`;
    /// returns its rooms when it did.
    pub(crate) fn end_if_expired(&self, now: Instant, grace: Duration) -> Option<Vec<String>> {
        let mut state = self.state.lock();
        if state.ended || state.attached || now.duration_since(state.detached_at) < grace {
            return None;
        }
        Some(end(&mut state))
    }

    /// Ends the session now, whatever its state; returns its rooms.
    pub(crate) fn end_now(&self) -> Vec<String> {
        let rooms = end(&mut self.state.lock());
        self.wake.notify_waiters();
        rooms
    }

    /// Marks the session as disconnected by the server: its attachment ends
    /// with close 4005.
    pub(crate) fn kick(&self) {
        self.state.lock().kicked = true;
        self.wake.notify_waiters();
    }

    pub(crate) fn begin_shutdown(&self) {
        self.state.lock().shutting_down = true;
        self.wake.notify_waiters();
    }

    fn detach(&self, generation: u64) {
        let mut state = self.state.lock();
        if state.generation == generation {
            state.attached = false;
            state.detached_at = Instant::now();
        }
    }
}

fn end(state: &mut State) -> Vec<String> {
    state.ended = true;
    state.outbox = Outbox::new(1, 0);
    std::mem::take(&mut state.rooms)
}

impl State {
    /// Queues a frame body in the outbox; returns its seq and whether the
    /// readers must be woken: only when one found nothing to read since the
    /// last wake-up. A reader that has not caught up reads this frame with
    /// the others (in a busy fan-out, most deliveries skip the wake-up's
    /// lock and atomics).
    fn queue(&mut self, body: Bytes, now: Instant) -> (u64, bool) {
        let seq = self.outbox.push_at(body, now);
        (seq, std::mem::take(&mut self.reader_waiting))
    }
}

/// The right to read a session's frames, held by one downstream transport.
/// Dropping it detaches (the grace period starts).
#[derive(Debug)]
pub struct Attachment {
    session: Arc<Session>,
    generation: u64,
    /// Next seq to hand out.
    next: u64,
}

impl Attachment {
    /// The session this attachment reads.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Waits until there are frames (at most `max`, a `gap` first when some
    /// were dropped) or the attachment must end.
    ///
    /// Paced while busy and behind: when frames come less than a quarter
    /// of the session's write window after the previous batch, which
    /// itself came that soon after the one before it (or was held by the
    /// window: busy twice in a row, so one frame that happens to follow
    /// another closely in a quiet room is not held), the first
    /// of them has waited for this reader at least a sixteenth of the
    /// window (the node is not keeping up), and fewer than `max` wait, the
    /// batch waits until a whole window after the previous one, so the
    /// frames that arrive meanwhile go in the same write. A busy connection
    /// on a loaded node then makes one write per window instead of one per
    /// frame (each write to a socket costs a system call and, on the
    /// receiving side, a wake-up and a read: most of a fan-out's CPU). A
    /// connection receiving fewer frames, a frame after a quiet spell, or
    /// one the reader takes as it comes is not delayed at all. Transports
    /// that answer one request per batch use [`Attachment::next_answer`].
    /// Cancel-safe: nothing is taken before the wait ends.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Downstream>, EndReason> {
        self.next_paced(max, Pace::Stream).await
    }

    /// The next answer to a request for frames (long polling): like
    /// [`Attachment::next_batch`], but an answer is busy for a whole window
    /// after the previous one.
    pub async fn next_answer(&mut self, max: usize) -> Result<Vec<Downstream>, EndReason> {
        self.next_paced(max, Pace::Request).await
    }

    async fn next_paced(&mut self, max: usize, pace: Pace) -> Result<Vec<Downstream>, EndReason> {
        loop {
            // Borrowed, not cloned: a clone per batch is an atomic operation
            // on the count that every fan-out to this session reads too.
            let mut woken = pin!(self.session.wake.notified());
            woken.as_mut().enable();
            // The timer is boxed, and nothing but a pointer to it outlives
            // this statement: an idle connection's wait keeps room for
            // neither the timer (about 100 bytes) nor what `take` returned.
            let paced = match take(&self.session, self.generation, &mut self.next, max, pace) {
                Take::Ready(result) => return result,
                Take::Until(due) => Some(Box::pin(tokio::time::sleep_until(due.into()))),
                Take::Nothing => None,
            };
            match paced {
                Some(sleep) => sleep.await,
                None => woken.await,
            }
        }
    }

    /// What is ready now: `None` when nothing is. Not paced.
    pub fn try_batch(&mut self, max: usize) -> Option<Result<Vec<Downstream>, EndReason>> {
        self.ready_now(max, Pace::Off)
    }

    /// What is ready now and not held by the write window (paced like
    /// [`Attachment::next_batch`]): `None` when nothing is, or when what
    /// waits should gather until the window ends. For a transport that
    /// answers one request per batch (long polling): a busy poller on a
    /// loaded node gets one answer per window instead of one per frame or
    /// two, and each answer it does not make saves a request's parsing,
    /// routing and response on both sides.
    pub fn try_answer(&mut self, max: usize) -> Option<Result<Vec<Downstream>, EndReason>> {
        self.ready_now(max, Pace::Request)
    }

    fn ready_now(&mut self, max: usize, pace: Pace) -> Option<Result<Vec<Downstream>, EndReason>> {
        match take(&self.session, self.generation, &mut self.next, max, pace) {
            Take::Ready(result) => Some(result),
            Take::Until(_) | Take::Nothing => None,
        }
    }
}

/// Takes the next batch of `session` for the reader of `generation` at
/// `next` (moved past what it takes), or says why not (see
/// [`Attachment::next_batch`] for `paced`).
fn take(session: &Session, generation: u64, next: &mut u64, max: usize, pace: Pace) -> Take {
    let mut state = session.state.lock();
    if state.kicked {
        return Take::Ready(Err(EndReason::Kicked));
    }
    if state.generation != generation {
        return Take::Ready(Err(EndReason::Superseded));
    }
    if state.shutting_down {
        return Take::Ready(Err(EndReason::ShuttingDown));
    }
    if state.ended {
        return Take::Ready(Err(EndReason::SessionEnded));
    }
    if !state.outbox.has_from(*next) {
        // The reader may wait now: the next frame must wake it (set
        // under the lock the pushes take, so none slips in between).
        state.reader_waiting = true;
        return Take::Nothing;
    }
    let now = Instant::now();
    let window = session.limits.write_window;
    let busy =
        state.last_batch.is_some_and(|last| now < last + if pace == Pace::Request { window } else { window / 4 });
    if let Some(last) = state.last_batch.filter(|_| busy && state.was_busy && pace != Pace::Off) {
        let waiting = state.outbox.next_seq().saturating_sub(*next);
        let behind = || state.outbox.queued_at(*next).is_some_and(|queued| now >= queued + window / 16);
        if waiting < max as u64 && behind() {
            state.window_held = true;
            return Take::Until(last + window);
        }
    }
    state.was_busy = busy || std::mem::take(&mut state.window_held);
    state.last_batch = Some(now);
    let batch = state.outbox.read_from(*next, max, now);
    drop(state);
    let mut frames = Vec::with_capacity(batch.frames.len() + 1);
    if let Some((from, to)) = batch.gap {
        metrics::counter!("switchboard_gaps_total").increment(1);
        frames.push(frame::gap(from, to));
        *next = to + 1;
    }
    if let Some(last) = batch.frames.last().and_then(Downstream::seq) {
        *next = last + 1;
    }
    frames.extend(batch.frames);
    Take::Ready(Ok(frames))
}

/// How the write window paces a reader (see [`Attachment::next_batch`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pace {
    Off,
    /// A write per batch: busy for a quarter window after the previous one.
    Stream,
    /// A request per batch: busy for a whole window after the previous
    /// answer (an answer costs both sides a request's parsing, routing and
    /// response, ten times a write's system call).
    Request,
}

/// What [`take`] found.
enum Take {
    Ready(Result<Vec<Downstream>, EndReason>),
    /// Frames wait, but the write window is still open until then.
    Until(Instant),
    Nothing,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.session.detach(self.generation);
    }
}

/// How long past the grace period a remembered cid is kept. A retry comes
/// from a client that is attached or reattaches within the grace period,
/// so a cid older than both can no longer be retried.
const CID_RETRY_MARGIN: Duration = Duration::from_secs(60);

/// The last N cids seen, with their answers, for de-duplicating retries;
/// answered ones are forgotten after `ttl` too, so a chatty session does not
/// hold a thousand answers (about 250 bytes each) for its whole life.
#[derive(Debug)]
struct CidWindow {
    order: VecDeque<(String, Instant)>,
    seen: HashMap<String, Option<Bytes>>,
    capacity: usize,
    ttl: Duration,
}

impl CidWindow {
    fn new(capacity: usize, ttl: Duration) -> Self {
        Self { order: VecDeque::new(), seen: HashMap::new(), capacity: capacity.max(1), ttl }
    }

    fn begin(&mut self, cid: &str, now: Instant) -> CidState {
        match self.seen.get(cid) {
            Some(Some(answer)) => return CidState::Done(answer.clone()),
            Some(None) => return CidState::Pending,
            None => {}
        }
        self.expire(now);
        if self.order.len() == self.capacity {
            if let Some((old, _)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back((cid.to_owned(), now));
        self.seen.insert(cid.to_owned(), None);
        CidState::New
    }

    /// Forgets answered cids older than the ttl (a pending one, still being
    /// applied, stops the sweep).
    fn expire(&mut self, now: Instant) {
        while let Some((cid, at)) = self.order.front() {
            let answered = matches!(self.seen.get(cid), Some(Some(_)));
            if now.saturating_duration_since(*at) < self.ttl || !answered {
                break;
            }
            if let Some((cid, _)) = self.order.pop_front() {
                self.seen.remove(&cid);
            }
        }
    }

    fn finish(&mut self, cid: &str, answer: Bytes) {
        if let Some(slot) = self.seen.get_mut(cid) {
            *slot = Some(answer);
        }
    }

    fn remove(&mut self, cid: &str) {
        if self.seen.remove(cid).is_some() {
            self.order.retain(|(c, _)| c != cid);
        }
    }
}

#[cfg(test)]
mod cid_window_tests {
    use super::*;

    fn answered(window: &mut CidWindow, cid: &str, at: Instant) {
        assert!(matches!(window.begin(cid, at), CidState::New));
        window.finish(cid, Bytes::from(format!("answer {cid}")));
    }

    #[test]
    fn a_retry_within_the_ttl_gets_the_same_answer() {
        let t0 = Instant::now();
        let mut window = CidWindow::new(1024, Duration::from_secs(90));
        answered(&mut window, "a", t0);
        answered(&mut window, "b", t0 + Duration::from_secs(89));
        match window.begin("a", t0 + Duration::from_secs(89)) {
            CidState::Done(answer) => assert_eq!(answer, Bytes::from("answer a")),
            other => panic!("a retry within the ttl must be answered again, got {other:?}"),
        }
    }

    #[test]
    fn answered_cids_older_than_the_ttl_are_forgotten() {
        let t0 = Instant::now();
        let mut window = CidWindow::new(1024, Duration::from_secs(90));
        for i in 0..100 {
            answered(&mut window, &format!("old{i}"), t0);
        }
        answered(&mut window, "new", t0 + Duration::from_secs(91));
        assert_eq!(window.order.len(), 1, "only the new cid is left");
        assert_eq!(window.seen.len(), 1);
        assert!(matches!(window.begin("new", t0 + Duration::from_secs(91)), CidState::Done(_)));
    }

    #[test]
    fn a_pending_cid_is_kept_past_the_ttl() {
        let t0 = Instant::now();
        let mut window = CidWindow::new(1024, Duration::from_secs(90));
        assert!(matches!(window.begin("slow", t0), CidState::New));
        answered(&mut window, "later", t0 + Duration::from_secs(200));
        assert!(matches!(window.begin("slow", t0 + Duration::from_secs(200)), CidState::Pending));
    }

    #[test]
    fn the_window_is_still_bounded_by_its_capacity() {
        let t0 = Instant::now();
        let mut window = CidWindow::new(3, Duration::from_secs(90));
        for cid in ["a", "b", "c", "d"] {
            answered(&mut window, cid, t0);
        }
        assert!(matches!(window.begin("a", t0), CidState::New), "the oldest fell out");
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up. The
/// rate and burst are the node's ([`SessionLimits`]), passed in.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(burst: f64) -> Self {
        Self { tokens: burst, at: Instant::now() }
    }

    fn take(&mut self, now: Instant, (rate, burst): (f64, f64)) -> bool {
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
