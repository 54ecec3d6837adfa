//! Every live session of this node, by id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use crate::id::SessionId;
use crate::identity::Identity;
use crate::limits::SessionLimits;
use crate::publication::Encoder;
use crate::session::Session;

/// The live sessions.
#[derive(Debug, Default)]
pub struct Registry {
    sessions: RwLock<HashMap<SessionId, Arc<Session>>>,
    /// Live sessions per user id.
    users: parking_lot::Mutex<HashMap<String, usize>>,
}

impl Registry {
    /// A new session, registered.
    pub fn create(&self, limits: &Arc<SessionLimits>, identity: Identity, encoder: Arc<dyn Encoder>) -> Arc<Session> {
        let session = Session::new(limits, identity, encoder);
        self.sessions.write().insert(session.id(), Arc::clone(&session));
        *self.users.lock().entry(session.identity().user.clone()).or_insert(0) += 1;
        session
    }

    /// The live session with this id.
    pub fn get(&self, id: SessionId) -> Option<Arc<Session>> {
        self.sessions.read().get(&id).cloned()
    }

    /// Ends and unregisters the sessions detached for longer than the grace
    /// period; returns each with the rooms it had joined.
    pub fn reap(&self, limits: &SessionLimits) -> Vec<(Arc<Session>, Vec<String>)> {
        let now = Instant::now();
        let candidates: Vec<Arc<Session>> = self.sessions.read().values().cloned().collect();
        let ended: Vec<(Arc<Session>, Vec<String>)> = candidates
            .into_iter()
            .filter_map(|s| s.end_if_expired(now, limits.grace).map(|rooms| (s, rooms)))
            .collect();
        for (session, _) in &ended {
            self.remove(session.id());
        }
        ended
    }

    /// Every live session (a snapshot).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.read().values().cloned().collect()
    }

    /// Live sessions of one user.
    pub fn of_user(&self, user: &str) -> Vec<Arc<Session>> {
        self.sessions.read().values().filter(|s| s.identity().user == user).cloned().collect()
    }

    /// Removes one session.
    pub fn remove(&self, id: SessionId) {
        let Some(session) = self.sessions.write().remove(&id) else { return };
        let mut users = self.users.lock();
        let user = &session.identity().user;
        if let Some(n) = users.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                users.remove(user);
            }
        }
    }

    /// How many live sessions `user` has.
    pub fn user_sessions(&self, user: &str) -> usize {
        self.users.lock().get(user).copied().unwrap_or(0)
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.read().len()
    }

    /// Whether no session lives.
    pub fn is_empty(&self) -> bool {
        self.sessions.read().is_empty()
    }
}
