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
use std::sync::Arc;

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
    members: Members,
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
        if !entry.members.insert(session.id(), Arc::clone(session)) || !presence {
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
        if !members.members.remove(sid) {
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
            .iter()
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

/// Most members a room keeps in a list; a larger room keeps a map.
const FEW_MEMBERS: usize = 8;

/// The members of a room. Most rooms are small (a socket.io socket's own
/// room has one member): a list sized to what it holds costs about 100
/// bytes less per room than a map's smallest table, and a lookup among a
/// few ids is as fast. A room that grows past [`FEW_MEMBERS`] switches to
/// a map for good.
///
/// Members are held strongly: a publish then reads each member with no
/// atomic operation on its reference count (upgrading a weak reference and
/// dropping it again was most of the loop's time in a 1,000-member
/// fan-out: the count shares a cache line with what the member's
/// connection touches on another core). A session leaves its rooms when it
/// ends (`Core::after_end`), which is what frees it.
#[derive(Debug)]
enum Members {
    Few(Vec<(SessionId, Arc<Session>)>),
    Many(HashMap<SessionId, Arc<Session>>),
}

impl Default for Members {
    fn default() -> Self {
        Members::Few(Vec::new())
    }
}

impl Members {
    /// Adds a member; false when it already was one.
    fn insert(&mut self, id: SessionId, session: Arc<Session>) -> bool {
        match self {
            Members::Few(list) if list.iter().any(|(member, _)| *member == id) => false,
            Members::Few(list) if list.len() < FEW_MEMBERS => {
                list.reserve_exact(1);
                list.push((id, session));
                true
            }
            Members::Few(list) => {
                let mut map: HashMap<SessionId, Arc<Session>> = std::mem::take(list).into_iter().collect();
                map.insert(id, session);
                *self = Members::Many(map);
                true
            }
            Members::Many(map) => map.insert(id, session).is_none(),
        }
    }

    /// Removes a member; false when it was not one.
    fn remove(&mut self, id: SessionId) -> bool {
        match self {
            Members::Few(list) => match list.iter().position(|(member, _)| *member == id) {
                Some(i) => {
                    list.swap_remove(i);
                    true
                }
                None => false,
            },
            Members::Many(map) => map.remove(&id).is_some(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Members::Few(list) => list.len(),
            Members::Many(map) => map.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<Session>> {
        let (few, many) = match self {
            Members::Few(list) => (Some(list.iter().map(|(_, session)| session)), None),
            Members::Many(map) => (None, Some(map.values())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::limits::SessionLimits;
    use crate::publication::NativeEncoder;

    fn session(user: &str) -> Arc<Session> {
        let identity = Identity { user: user.into(), name: user.into(), rooms: None };
        Session::new(&Arc::new(SessionLimits::default()), identity, Arc::new(NativeEncoder))
    }

    fn publish(hub: &Hub, room: &str) -> usize {
        hub.publish(&Publication::new(room, "system", serde_json::value::to_raw_value(&1).unwrap()))
    }

    #[test]
    fn a_room_keeps_every_member_as_it_grows_past_a_list_and_shrinks_again() {
        let hub = Hub::default();
        let sessions: Vec<Arc<Session>> = (0..3 * FEW_MEMBERS).map(|i| session(&format!("u{i}"))).collect();
        for (i, s) in sessions.iter().enumerate() {
            assert!(hub.join("r", s), "member {i} is new");
            assert!(!hub.join("r", s), "member {i} joins once");
            assert_eq!(hub.member_count("r"), i + 1);
            assert_eq!(publish(&hub, "r"), i + 1, "every member gets the publication");
        }
        for (i, s) in sessions.iter().enumerate() {
            assert!(hub.leave("r", s.id(), &s.identity().user));
            assert!(!hub.leave("r", s.id(), &s.identity().user), "a member leaves once");
            assert_eq!(hub.member_count("r"), sessions.len() - i - 1);
        }
        assert_eq!(hub.room_count(), 0, "an empty room is forgotten");
    }

    #[test]
    fn leaving_a_small_room_keeps_the_others() {
        let hub = Hub::default();
        let (a, b, c) = (session("a"), session("b"), session("c"));
        for s in [&a, &b, &c] {
            hub.join("r", s);
        }
        assert_eq!(publish(&hub, "r"), 3);
        assert!(hub.leave("r", b.id(), "b"));
        assert_eq!(publish(&hub, "r"), 2);
        assert_eq!(a.outbox_size().0, 2);
        assert_eq!(b.outbox_size().0, 1, "b got the publication before it left, not the one after");
        assert_eq!(c.outbox_size().0, 2);
    }
}
