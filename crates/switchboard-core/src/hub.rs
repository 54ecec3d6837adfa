//! Rooms, fan-out and presence.
//!
//! A publish takes the room's own lock while it queues the frame in every
//! member's outbox, so concurrent publishers to one room are serialised and
//! every member sees the room's messages in the same order. A publication
//! is encoded once per wire format; members share its `Bytes`.
//!
//! Presence counts sessions per user per room: a user with three tabs is
//! present once, and leaves when the last of them does.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::id::SessionId;
use crate::publication::Publication;
use crate::session::Session;

/// Every room of this node and its members.
#[derive(Debug, Default)]
pub struct Hub {
    rooms: RwLock<HashMap<String, Arc<Mutex<Room>>>>,
}

#[derive(Debug, Default)]
struct Room {
    members: HashMap<SessionId, Weak<Session>>,
    /// user id → (display name, sessions of that user in the room)
    present: HashMap<String, (String, usize)>,
}

impl Hub {
    /// Adds `session` to `room`, creating the room; true when its user was
    /// not present before. Joins and leaves take the map's write lock (they
    /// are rare next to publishes), so a room is never unlinked while a
    /// member is being added.
    pub fn join(&self, room: &str, session: &Arc<Session>) -> bool {
        self.join_as(room, session, true)
    }

    /// Like [`Hub::join`]; with `presence` false the session receives the
    /// room's publications but its user is not counted present.
    pub fn join_as(&self, room: &str, session: &Arc<Session>, presence: bool) -> bool {
        let mut rooms = self.rooms.write();
        let mut entry = rooms.entry(room.to_owned()).or_default().lock();
        if entry.members.insert(session.id(), Arc::downgrade(session)).is_some() || !presence {
            return false;
        }
        let identity = session.identity();
        let slot = entry.present.entry(identity.user.clone()).or_insert_with(|| (identity.name.clone(), 0));
        slot.1 += 1;
        slot.1 == 1
    }

    /// Removes the session from `room`; true when it was its user's last
    /// session there. An empty room is forgotten.
    pub fn leave(&self, room: &str, sid: SessionId, user: &str) -> bool {
        let mut rooms = self.rooms.write();
        let Some(entry) = rooms.get(room) else { return false };
        let mut members = entry.lock();
        if members.members.remove(&sid).is_none() {
            return false;
        }
        let gone = match members.present.get_mut(user) {
            Some(slot) if slot.1 > 1 => {
                slot.1 -= 1;
                false
            }
            Some(_) => {
                members.present.remove(user);
                true
            }
            None => false,
        };
        if members.members.is_empty() {
            drop(members);
            rooms.remove(room);
        }
        gone
    }

    /// Queues the publication in the outbox of every member of this node
    /// (but those of `publication.except_user`), encoded once per wire
    /// format; returns how many got it. Called by the [`crate::broker::Broker`].
    pub fn publish(&self, publication: &Publication) -> usize {
        let skip_user = publication.except_user.as_deref();
        let Some(entry) = self.rooms.read().get(&publication.room).cloned() else {
            return 0;
        };
        let now = std::time::Instant::now();
        let members = entry.lock();
        members
            .members
            .values()
            .filter_map(Weak::upgrade)
            .filter(|session| skip_user != Some(session.identity().user.as_str()))
            .filter(|session| {
                let body = publication.encoded_for(session.encoder());
                let id = if publication.kind == crate::publication::Kind::Message { publication.id } else { 0 };
                !body.is_empty() && session.deliver(&publication.room, id, body, now)
            })
            .count()
    }

    /// Users present in `room`: (user id, name), sorted by id.
    pub fn who(&self, room: &str) -> Vec<(String, String)> {
        let Some(entry) = self.rooms.read().get(room).cloned() else { return Vec::new() };
        let members = entry.lock();
        let mut users: Vec<(String, String)> =
            members.present.iter().map(|(user, (name, _))| (user.clone(), name.clone())).collect();
        users.sort();
        users
    }

    /// Number of member sessions of `room`.
    pub fn member_count(&self, room: &str) -> usize {
        self.rooms.read().get(room).map_or(0, |r| r.lock().members.len())
    }

    /// Number of rooms with at least one member.
    pub fn room_count(&self) -> usize {
        self.rooms.read().len()
    }
}
