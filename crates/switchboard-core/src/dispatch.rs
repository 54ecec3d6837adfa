//! Applying upstream frames: rooms, chat messages, receipts, typing,
//! queries. Every answer (ack, echo, error, query result) is queued as a
//! sequenced frame of the session, so it survives a dropped transport.

use std::sync::Arc;

use bytes::Bytes;

use crate::codes;
use crate::core::{null, Core};
use crate::frame::{self, FrameError, Upstream};
use crate::publication::{Kind, Publication};
use crate::session::{CidState, Rate, Session};
use crate::store::{now_ms, Appended, HistoryQuery, NewMessage, StoreError, StoredMessage};

/// Prefix of direct-message room names: `dm:<user a>:<user b>`, a < b.
pub const DM_PREFIX: &str = "dm:";

/// The canonical direct-message room of two users.
pub fn dm_room(a: &str, b: &str) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{DM_PREFIX}{lo}:{hi}")
}

/// The two users of a direct-message room, if `room` is one (canonical
/// form only).
pub fn dm_members(room: &str) -> Option<(&str, &str)> {
    let (a, b) = room.strip_prefix(DM_PREFIX)?.split_once(':')?;
    (!a.is_empty() && !b.is_empty() && !b.contains(':') && a < b).then_some((a, b))
}

type Refusal = (u16, String);

impl Core {
    /// Applies upstream frames in order; answers (ack, echo, error, query
    /// results) are queued as sequenced frames of the session.
    pub async fn apply(&self, session: &Arc<Session>, frames: Vec<Result<Upstream, FrameError>>) {
        let _in_order = session.applying.lock().await;
        crate::stats::hot().frames_in.increment(frames.len() as u64);
        for frame in frames {
            if let Some((frame, cid)) = self.begin(session, frame) {
                self.apply_one(session, frame, cid).await;
            }
        }
    }

    /// [`Core::apply`] with no future, when none of the frames waits for
    /// the store (acks, typing, echoes, publishes and malformed frames: what
    /// a busy connection sends) and no other apply of the session is under
    /// way; otherwise the frames come back, untouched, for [`Core::apply`].
    pub fn apply_now(
        &self,
        session: &Arc<Session>,
        frames: Vec<Result<Upstream, FrameError>>,
    ) -> Result<(), Vec<Result<Upstream, FrameError>>> {
        if frames.iter().any(|frame| frame.as_ref().is_ok_and(waits)) {
            return Err(frames);
        }
        let Ok(_in_order) = session.applying.try_lock() else {
            return Err(frames);
        };
        crate::stats::hot().frames_in.increment(frames.len() as u64);
        for frame in frames {
            if let Some((frame, cid)) = self.begin(session, frame) {
                self.answer_now(session, frame, cid.as_deref());
            }
        }
        Ok(())
    }

    /// Settles what needs no answer of its own (acks, typing, malformed
    /// frames, a retried cid); returns the rest, with its cid.
    fn begin(&self, session: &Arc<Session>, frame: Result<Upstream, FrameError>) -> Option<(Upstream, Option<String>)> {
        let frame = match frame {
            Ok(Upstream::Ack { seq }) => {
                session.ack(seq);
                return None;
            }
            Ok(Upstream::Typing { room }) => {
                self.typing(session, &room);
                return None;
            }
            Ok(frame) => frame,
            Err(e) => {
                refuse(session, e.cid.as_deref(), (e.code, e.message));
                return None;
            }
        };
        let cid = frame.cid().map(str::to_owned);
        if let Some(cid) = &cid {
            match session.begin_cid(cid) {
                CidState::New => {}
                CidState::Pending => return None,
                CidState::Done(answer) => {
                    session.push(answer);
                    return None;
                }
            }
        }
        Some((frame, cid))
    }

    async fn apply_one(&self, session: &Arc<Session>, frame: Upstream, cid: Option<String>) {
        let cid = cid.as_deref();
        let result: Result<Option<Bytes>, Refusal> = match frame {
            Upstream::Join { room, .. } => self.join_checked(session, &room).await.map(|()| None),
            Upstream::Leave { room, .. } => {
                self.leave(session, &room);
                if let Err(e) = self.store.remove_member(&room, &session.identity().user).await {
                    tracing::warn!(error = %e, "cannot drop membership");
                }
                Ok(None)
            }
            Upstream::Read { room, id, .. } => self.read(session, &room, id).await.map(|()| None),
            Upstream::History { room, mut before, after, limit, .. } => {
                if before.is_none() && after.is_none() {
                    before = Some(u64::MAX); // no bound: the newest page
                }
                match self.may_read(session, &room).await {
                    Err(e) => Err(e),
                    Ok(()) => match self.store.history(&room, HistoryQuery { before, after, limit }).await {
                        Ok(page) => Ok(Some(frame::history_body(cid, &room, &page))),
                        Err(e) => Err(store_refusal(&e)),
                    },
                }
            }
            Upstream::Who { room, .. } => match self.may_read(session, &room).await {
                Ok(()) => Ok(Some(frame::who_body(cid, &room, &self.who(&room).await))),
                Err(e) => Err(e),
            },
            Upstream::Rooms { .. } => match self.room_summaries(&session.identity().user).await {
                Ok(rooms) => Ok(Some(frame::rooms_body(cid, &rooms))),
                Err(e) => Err(store_refusal(&e)),
            },
            frame => return self.answer_now(session, frame, cid),
        };
        conclude(session, cid, result);
    }

    /// Answers a frame that does not wait (see [`waits`]).
    fn answer_now(&self, session: &Arc<Session>, frame: Upstream, cid: Option<&str>) {
        let result = match frame {
            Upstream::Publish { room, data, .. } => {
                if !session.in_room(&room) {
                    Err((codes::FORBIDDEN, format!("join room {room:?} before publishing to it")))
                } else if !session.allow(Rate::Messages) {
                    Err((codes::RATE_LIMITED, "too many messages; slow down".into()))
                } else {
                    // The answer comes from the store's callback.
                    return self.store_and_publish(session, room, data, cid);
                }
            }
            Upstream::Echo { data, .. } => Ok(Some(frame::echo_body(cid, &data))),
            _ => unreachable!("acks and typing are settled by begin, frames that wait by apply_one"),
        };
        conclude(session, cid, result);
    }

    /// Joins after checking the user may: the token's room claim, DM
    /// participants, private-room membership; and the join rate.
    async fn join_checked(&self, session: &Arc<Session>, room: &str) -> Result<(), Refusal> {
        if session.in_room(room) {
            return Ok(());
        }
        if !session.allow(Rate::Joins) {
            return Err((codes::RATE_LIMITED, "too many joins; slow down".into()));
        }
        if session.room_count() >= self.limits.max_rooms {
            return Err((codes::TOO_LARGE, format!("a session may be in at most {} rooms", self.limits.max_rooms)));
        }
        self.may_join(session, room).await?;
        let user = &session.identity().user;
        self.store.add_member(room, user).await.map_err(|e| store_refusal(&e))?;
        self.join(session, room);
        // A direct conversation has two members from the start: the other
        // user's sessions on this node join now, the others on their next
        // session (with offline delivery and unread counts).
        if let Some((a, b)) = dm_members(room) {
            let other = if a == user.as_str() { b } else { a };
            self.store.add_member(room, other).await.map_err(|e| store_refusal(&e))?;
            for peer in self.registry.of_user(other) {
                self.join(&peer, room);
            }
        }
        Ok(())
    }

    /// Whether the session's user may join `room`.
    pub async fn may_join(&self, session: &Session, room: &str) -> Result<(), Refusal> {
        let identity = session.identity();
        if !identity.claim_allows(room) {
            return Err((codes::FORBIDDEN, format!("your token does not allow room {room:?}")));
        }
        if room.starts_with(DM_PREFIX) {
            return match dm_members(room) {
                Some((a, b)) if a == identity.user || b == identity.user => Ok(()),
                Some(_) => Err((codes::FORBIDDEN, "a direct-message room is only for its two users".into())),
                None => {
                    Err((codes::BAD_REQUEST, "a direct-message room is named dm:<user a>:<user b> with a < b".into()))
                }
            };
        }
        let info = self.store.room(room).await.map_err(|e| store_refusal(&e))?;
        if info.is_some_and(|r| r.private) {
            let listed = identity.rooms.as_ref().is_some_and(|r| r.iter().any(|x| x == room));
            let member = self.store.is_member(room, &identity.user).await.map_err(|e| store_refusal(&e))?;
            if !listed && !member {
                return Err((codes::FORBIDDEN, format!("room {room:?} is private; you are not a member")));
            }
        }
        Ok(())
    }

    /// Reading a room's history or presence: members, or whoever may join.
    async fn may_read(&self, session: &Session, room: &str) -> Result<(), Refusal> {
        if session.in_room(room) {
            return Ok(());
        }
        self.may_join(session, room).await
    }

    fn typing(&self, session: &Arc<Session>, room: &str) {
        if !session.in_room(room) {
            return refuse(session, None, (codes::FORBIDDEN, format!("join room {room:?} before typing in it")));
        }
        if !session.allow(Rate::Typing) {
            return refuse(session, None, (codes::RATE_LIMITED, "too many typing events".into()));
        }
        let id = session.identity();
        let mut event = Publication::event(Kind::Typing, room, session.public_id(), &id.user, &id.name, 0, null());
        event.except_user = Some(id.user.clone());
        self.broker.publish(event);
    }

    /// A read mark belongs to a room the session is in: unread counts are
    /// kept for the user's rooms only, and the `read` event goes to the
    /// room's members, which the session would otherwise not be one of.
    async fn read(&self, session: &Arc<Session>, room: &str, id: u64) -> Result<(), Refusal> {
        if !session.in_room(room) {
            return Err((codes::FORBIDDEN, format!("join room {room:?} before marking it read")));
        }
        let user = &session.identity().user;
        // A mark past the newest message would hide every later one.
        let last_id = self.store.room(room).await.map_err(|e| store_refusal(&e))?.map_or(0, |r| r.last_id);
        let mark = self.store.set_read(user, room, id.min(last_id)).await.map_err(|e| store_refusal(&e))?;
        let identity = session.identity();
        let event = Publication::event(Kind::Read, room, session.public_id(), user, &identity.name, mark, null());
        self.broker.publish(event);
        Ok(())
    }

    /// Stores a chat message, then (in the store's id order) fans it out and
    /// acks the sender with its id. A store failure answers with an error
    /// and delivers nothing.
    fn store_and_publish(
        &self,
        session: &Arc<Session>,
        room: String,
        data: Box<serde_json::value::RawValue>,
        cid: Option<&str>,
    ) {
        let identity = session.identity();
        let message = NewMessage {
            room,
            user: identity.user.clone(),
            name: identity.name.clone(),
            from: session.public_id().to_owned(),
            data,
            ts: now_ms(),
            cid: cid.map(str::to_owned),
        };
        let session = Arc::clone(session);
        let cid = cid.map(str::to_owned);
        self.append_and_fan_out(message, move |result| match result {
            Ok(Appended { message, .. }) => {
                if let Some(cid) = cid {
                    let ack = frame::ack_body(&cid, Some(message.id));
                    session.finish_cid(&cid, ack.clone());
                    session.push(ack);
                }
            }
            Err(e) => {
                if let Some(cid) = &cid {
                    session.forget_cid(cid);
                }
                refuse(&session, cid.as_deref(), store_refusal(&e));
            }
        });
    }

    /// The one way a chat message enters history and reaches its room, for
    /// every publisher (sessions and the HTTP API): appends it, and once it
    /// is durable (in the store's id order) fans a fresh message out as
    /// sent by `message.from`, then hands the result to `done`. Counts the
    /// store latency and the messages in and out on the way.
    fn append_and_fan_out(
        &self,
        message: NewMessage,
        done: impl FnOnce(Result<Appended, StoreError>) + Send + 'static,
    ) {
        let broker = Arc::clone(&self.broker);
        let from = message.from.clone();
        let started = std::time::Instant::now();
        self.store.append(
            message,
            Box::new(move |result| {
                metrics::histogram!("switchboard_store_append_seconds").record(started.elapsed().as_secs_f64());
                if let Ok(Appended { message, fresh: true }) = &result {
                    let hot = crate::stats::hot();
                    hot.messages_in.increment(1);
                    hot.messages_out.increment(1);
                    broker.publish(Publication::stored(message, &from));
                }
                done(result);
            }),
        );
    }

    /// Stores and publishes a message on behalf of `user` (the HTTP API):
    /// returns once it is durable and delivered.
    pub async fn post_message(
        &self,
        room: &str,
        user: &str,
        name: &str,
        data: Box<serde_json::value::RawValue>,
        cid: Option<String>,
    ) -> Result<Arc<StoredMessage>, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let message = NewMessage {
            room: room.into(),
            user: user.into(),
            name: name.into(),
            from: "system".into(),
            data,
            ts: now_ms(),
            cid,
        };
        self.append_and_fan_out(message, move |result| {
            let _ = tx.send(result.map(|a| a.message));
        });
        rx.await.map_err(|_| StoreError("the store dropped the request".into()))?
    }
}

/// Whether answering `frame` waits for the store.
fn waits(frame: &Upstream) -> bool {
    matches!(
        frame,
        Upstream::Join { .. }
            | Upstream::Leave { .. }
            | Upstream::Read { .. }
            | Upstream::History { .. }
            | Upstream::Who { .. }
            | Upstream::Rooms { .. }
    )
}

/// Queues a frame's answer (an ack when it has a cid and no answer of its
/// own) or its refusal, and settles its cid.
fn conclude(session: &Session, cid: Option<&str>, result: Result<Option<Bytes>, Refusal>) {
    match result {
        Ok(answer) => {
            let answer = answer.or_else(|| cid.map(|c| frame::ack_body(c, None)));
            if let Some(answer) = answer {
                if let Some(cid) = cid {
                    session.finish_cid(cid, answer.clone());
                }
                session.push(answer);
            }
        }
        Err(refusal) => {
            if let Some(cid) = cid {
                session.forget_cid(cid);
            }
            refuse(session, cid, refusal);
        }
    }
}

fn refuse(session: &Session, cid: Option<&str>, (code, message): Refusal) {
    metrics::counter!("switchboard_errors_total", "code" => code.to_string()).increment(1);
    session.push(frame::error_body(cid, code, &message));
}

fn store_refusal(e: &StoreError) -> Refusal {
    (codes::STORE_FAILED, format!("{e}; nothing was stored, try again"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_rooms_are_canonical() {
        assert_eq!(dm_room("bob", "alice"), "dm:alice:bob");
        assert_eq!(dm_members("dm:alice:bob"), Some(("alice", "bob")));
        assert_eq!(dm_members("dm:bob:alice"), None);
        assert_eq!(dm_members("dm:a:b:c"), None);
        assert_eq!(dm_members("lobby"), None);
    }
}
