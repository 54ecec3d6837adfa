//! Rooms and fan-out.
//!
//! A publish takes the room's own lock while it queues the frame in every
//! member's outbox, so concurrent publishers to one room are serialised and
//! every member sees the room's messages in the same order. The frame body
//! is encoded once by the caller; members share its `Bytes`.

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
}

impl Hub {
    /// Adds `session` to `room`, creating the room. Joins and leaves take
    /// the map's write lock (they are rare next to publishes), so a room is
    /// never unlinked while a member is being added.
    pub fn join(&self, room: &str, session: &Arc<Session>) {
        let mut rooms = self.rooms.write();
        let entry = rooms.entry(room.to_owned()).or_default();
        entry.lock().members.insert(session.id(), Arc::downgrade(session));
    }

    /// Removes the session from `room`; an empty room is forgotten.
    pub fn leave(&self, room: &str, sid: SessionId) {
        let mut rooms = self.rooms.write();
        if let Some(entry) = rooms.get(room) {
            let mut members = entry.lock();
            members.members.remove(&sid);
            if members.members.is_empty() {
                drop(members);
                rooms.remove(room);
            }
        }
    }

    /// Queues the publication in the outbox of every member, encoded once
    /// per wire format; returns how many members got it.
    pub fn publish(&self, publication: &Publication) -> usize {
        let Some(entry) = self.rooms.read().get(&publication.room).cloned() else {
            return 0;
        };
        let members = entry.lock();
        members
            .members
            .values()
            .filter_map(Weak::upgrade)
            .filter(|session| session.push(publication.encoded_for(session.encoder())).is_some())
            .count()
    }

    /// Number of members of `room`.
    pub fn member_count(&self, room: &str) -> usize {
        self.rooms.read().get(room).map_or(0, |r| r.lock().members.len())
    }

    /// Number of rooms with at least one member.
    pub fn room_count(&self) -> usize {
        self.rooms.read().len()
    }
}
