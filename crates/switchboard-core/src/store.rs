//! The durable side of chat: history, rooms, memberships, read marks.
//!
//! [`Store`] is a narrow trait with an in-memory implementation here (for
//! tests and ephemeral deployments) and an embedded SQLite one in
//! `switchboard-store-sqlite`. Appends take a completion callback instead of
//! returning a future: the store calls the callbacks of one room **in
//! message-id order**, after the message is durable, so the caller can fan
//! the message out from there and every member sees the room in id order,
//! whatever order concurrent publishers' tasks happen to be woken in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::value::RawValue;

/// A boxed future, for the store's async methods.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Called once a message is durable (or failed).
pub type AppendDone = Box<dyn FnOnce(Result<Appended, StoreError>) + Send>;

/// The outcome of an append.
#[derive(Debug, Clone)]
pub struct Appended {
    /// The stored message.
    pub message: Arc<StoredMessage>,
    /// False when this was a retry of a message stored before (same room,
    /// user and cid): it must not be delivered again.
    pub fresh: bool,
}

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("history store: {0}")]
pub struct StoreError(pub String);

/// A message to store; the store assigns its id.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The room.
    pub room: String,
    /// The sender's user id (`system` for the server API).
    pub user: String,
    /// The sender's display name.
    pub name: String,
    /// Public id of the publishing session (`system` from the API): shown
    /// as `from` when the message is delivered.
    pub from: String,
    /// The message, raw JSON.
    pub data: Box<RawValue>,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    /// The client id of the send: a retried send with the same user and cid
    /// in the same room is stored once.
    pub cid: Option<String>,
}

/// A stored message.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The room.
    pub room: String,
    /// Increasing within the room.
    pub id: u64,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    /// Sender's user id.
    pub user: String,
    /// Sender's display name.
    pub name: String,
    /// The message, raw JSON.
    pub data: Box<RawValue>,
}

/// A page of history: ids strictly between `after` and `before`, oldest
/// first, at most `limit`. With `before` only, the newest messages before it.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryQuery {
    /// Only ids below this.
    pub before: Option<u64>,
    /// Only ids above this.
    pub after: Option<u64>,
    /// At most this many.
    pub limit: usize,
}

/// What the store knows of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// Room name.
    pub name: String,
    /// Only members (or claims) may join.
    pub private: bool,
    /// Highest message id (0: none).
    pub last_id: u64,
}

pub use crate::retention::{Retention, RetentionPolicy, RoomRetention};

/// Durable chat state.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Stores a message; `done` is called once it is durable, in id order
    /// within the room. A retry (same room, user and cid) gets the message
    /// stored the first time. The sender's read mark moves to the message
    /// in the same step: your own messages never count as unread.
    fn append(&self, message: NewMessage, done: AppendDone);
    /// A page of a room's history, oldest first.
    fn history(&self, room: &str, query: HistoryQuery) -> StoreFuture<'_, Vec<StoredMessage>>;
    /// Records that `user` has read `room` up to `id` (never moves back);
    /// returns the stored mark.
    fn set_read(&self, user: &str, room: &str, id: u64) -> StoreFuture<'_, u64>;
    /// The user's read marks by room.
    fn read_marks(&self, user: &str) -> StoreFuture<'_, HashMap<String, u64>>;
    /// Number of messages in `room` with an id above `after`.
    fn count_after(&self, room: &str, after: u64) -> StoreFuture<'_, u64>;
    /// A room, if the store knows it.
    fn room(&self, room: &str) -> StoreFuture<'_, Option<RoomInfo>>;
    /// Every room the store knows.
    fn rooms(&self) -> StoreFuture<'_, Vec<RoomInfo>>;
    /// Creates a room or changes its privacy.
    fn put_room(&self, room: &str, private: bool) -> StoreFuture<'_, ()>;
    /// Adds a member (persistent membership; offline delivery follows it).
    fn add_member(&self, room: &str, user: &str) -> StoreFuture<'_, ()>;
    /// Removes a member.
    fn remove_member(&self, room: &str, user: &str) -> StoreFuture<'_, ()>;
    /// Whether `user` is a member of `room`.
    fn is_member(&self, room: &str, user: &str) -> StoreFuture<'_, bool>;
    /// Rooms `user` is a member of.
    fn user_rooms(&self, user: &str) -> StoreFuture<'_, Vec<String>>;
    /// Remembers, for each of the user's rooms, the last message id as of
    /// now: the user went offline.
    fn mark_offline(&self, user: &str) -> StoreFuture<'_, ()>;
    /// The marks left by [`Store::mark_offline`], consumed.
    fn take_offline_marks(&self, user: &str) -> StoreFuture<'_, HashMap<String, u64>>;
    /// Drops history beyond the retention bounds, each room by its own
    /// ([`RetentionPolicy::for_room`]); returns how many messages went.
    fn apply_retention(&self, policy: &RetentionPolicy) -> StoreFuture<'_, u64>;
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Everything in memory; lost on restart. For tests and throwaway servers.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
    /// When set, appends fail (to test that a failed store gives no ack).
    failing: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct MemoryState {
    messages: HashMap<String, BTreeMap<u64, Arc<StoredMessage>>>,
    last_id: HashMap<String, u64>,
    cids: HashMap<(String, String, String), u64>,
    private: HashMap<String, bool>,
    members: HashMap<String, HashSet<String>>,
    reads: HashMap<(String, String), u64>,
    offline: HashMap<String, HashMap<String, u64>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later append fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

fn ready<T: Send + 'static>(value: T) -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Store for MemoryStore {
    fn append(&self, m: NewMessage, done: AppendDone) {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            done(Err(StoreError("store is failing (test switch)".into())));
            return;
        }
        // The callback runs under the lock so callbacks of one room run in
        // id order.
        let mut s = self.state.lock();
        if let Some(cid) = &m.cid {
            let key = (m.room.clone(), m.user.clone(), cid.clone());
            if let Some(id) = s.cids.get(&key) {
                let stored = s.messages.get(&m.room).and_then(|r| r.get(id)).cloned();
                if let Some(message) = stored {
                    done(Ok(Appended { message, fresh: false }));
                    return;
                }
            }
        }
        let id = {
            let last = s.last_id.entry(m.room.clone()).or_insert(0);
            *last += 1;
            *last
        };
        if let Some(cid) = &m.cid {
            s.cids.insert((m.room.clone(), m.user.clone(), cid.clone()), id);
        }
        let stored =
            Arc::new(StoredMessage { room: m.room.clone(), id, ts: m.ts, user: m.user, name: m.name, data: m.data });
        let mark = s.reads.entry((stored.user.clone(), m.room.clone())).or_insert(0);
        *mark = (*mark).max(id);
        s.messages.entry(m.room).or_default().insert(id, Arc::clone(&stored));
        done(Ok(Appended { message: stored, fresh: true }));
    }

    fn history(&self, room: &str, q: HistoryQuery) -> StoreFuture<'_, Vec<StoredMessage>> {
        let s = self.state.lock();
        let Some(messages) = s.messages.get(room) else { return ready(Vec::new()) };
        let lo = q.after.map_or(0, |a| a.saturating_add(1));
        let hi = q.before.unwrap_or(u64::MAX);
        let range = messages.range(lo..hi);
        let page: Vec<StoredMessage> = if q.after.is_none() && q.before.is_some() {
            let mut newest: Vec<_> = range.rev().take(q.limit).map(|(_, m)| (**m).clone()).collect();
            newest.reverse();
            newest
        } else {
            range.take(q.limit).map(|(_, m)| (**m).clone()).collect()
        };
        ready(page)
    }

    fn set_read(&self, user: &str, room: &str, id: u64) -> StoreFuture<'_, u64> {
        let mut s = self.state.lock();
        let mark = s.reads.entry((user.into(), room.into())).or_insert(0);
        *mark = (*mark).max(id);
        ready(*mark)
    }

    fn read_marks(&self, user: &str) -> StoreFuture<'_, HashMap<String, u64>> {
        let s = self.state.lock();
        let marks = s.reads.iter().filter(|((u, _), _)| u == user).map(|((_, r), id)| (r.clone(), *id)).collect();
        ready(marks)
    }

    fn count_after(&self, room: &str, after: u64) -> StoreFuture<'_, u64> {
        let s = self.state.lock();
        let n = s.messages.get(room).map_or(0, |m| m.range(after.saturating_add(1)..).count() as u64);
        ready(n)
    }

    fn room(&self, room: &str) -> StoreFuture<'_, Option<RoomInfo>> {
        let s = self.state.lock();
        let known = s.private.contains_key(room) || s.last_id.contains_key(room);
        ready(known.then(|| room_info(&s, room)))
    }

    fn rooms(&self) -> StoreFuture<'_, Vec<RoomInfo>> {
        let s = self.state.lock();
        let mut names: Vec<&String> = s.private.keys().chain(s.last_id.keys()).collect();
        names.sort();
        names.dedup();
        ready(names.into_iter().map(|n| room_info(&s, n)).collect())
    }

    fn put_room(&self, room: &str, private: bool) -> StoreFuture<'_, ()> {
        self.state.lock().private.insert(room.into(), private);
        ready(())
    }

    fn add_member(&self, room: &str, user: &str) -> StoreFuture<'_, ()> {
        self.state.lock().members.entry(room.into()).or_default().insert(user.into());
        ready(())
    }

    fn remove_member(&self, room: &str, user: &str) -> StoreFuture<'_, ()> {
        if let Some(m) = self.state.lock().members.get_mut(room) {
            m.remove(user);
        }
        ready(())
    }

    fn is_member(&self, room: &str, user: &str) -> StoreFuture<'_, bool> {
        ready(self.state.lock().members.get(room).is_some_and(|m| m.contains(user)))
    }

    fn user_rooms(&self, user: &str) -> StoreFuture<'_, Vec<String>> {
        let s = self.state.lock();
        let mut rooms: Vec<String> =
            s.members.iter().filter(|(_, m)| m.contains(user)).map(|(r, _)| r.clone()).collect();
        rooms.sort();
        ready(rooms)
    }

    fn mark_offline(&self, user: &str) -> StoreFuture<'_, ()> {
        let mut s = self.state.lock();
        let marks: HashMap<String, u64> = s
            .members
            .iter()
            .filter(|(_, m)| m.contains(user))
            .map(|(r, _)| (r.clone(), s.last_id.get(r).copied().unwrap_or(0)))
            .collect();
        s.offline.insert(user.into(), marks);
        ready(())
    }

    fn take_offline_marks(&self, user: &str) -> StoreFuture<'_, HashMap<String, u64>> {
        ready(self.state.lock().offline.remove(user).unwrap_or_default())
    }

    fn apply_retention(&self, policy: &RetentionPolicy) -> StoreFuture<'_, u64> {
        let now = now_ms();
        let mut s = self.state.lock();
        let mut dropped = 0;
        for (room, messages) in s.messages.iter_mut() {
            let retention = policy.for_room(room);
            let oldest = now.saturating_sub(retention.max_age.as_millis() as u64);
            let before = messages.len();
            messages.retain(|_, m| m.ts >= oldest);
            while messages.len() > retention.max_messages {
                messages.pop_first();
            }
            dropped += (before - messages.len()) as u64;
        }
        ready(dropped)
    }
}

fn room_info(s: &MemoryState, room: &str) -> RoomInfo {
    RoomInfo {
        name: room.into(),
        private: s.private.get(room).copied().unwrap_or(false),
        last_id: s.last_id.get(room).copied().unwrap_or(0),
    }
}
