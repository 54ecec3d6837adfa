//! Every live session of this node, by id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;

use crate::id::SessionId;
use crate::limits::SessionLimits;
use crate::publication::Encoder;
use crate::session::Session;

/// The live sessions.
#[derive(Debug, Default)]
pub struct Registry {
    sessions: RwLock<HashMap<SessionId, Arc<Session>>>,
}

impl Registry {
    /// A new session, registered.
    pub fn create(&self, limits: &SessionLimits, encoder: Arc<dyn Encoder>) -> Arc<Session> {
        let session = Session::new(limits, encoder);
        self.sessions.write().insert(session.id(), Arc::clone(&session));
        session
    }

    /// The live session with this id.
    pub fn get(&self, id: SessionId) -> Option<Arc<Session>> {
        self.sessions.read().get(&id).cloned()
    }

    /// Ends and unregisters the sessions detached for longer than the grace
    /// period; returns each with the rooms it had joined.
    pub fn reap(&self, limits: &SessionLimits) -> Vec<(SessionId, Vec<String>)> {
        let now = Instant::now();
        let candidates: Vec<Arc<Session>> = self.sessions.read().values().cloned().collect();
        let ended: Vec<(SessionId, Vec<String>)> = candidates
            .iter()
            .filter_map(|s| s.end_if_expired(now, limits.grace).map(|rooms| (s.id(), rooms)))
            .collect();
        if !ended.is_empty() {
            let mut sessions = self.sessions.write();
            for (id, _) in &ended {
                sessions.remove(id);
            }
        }
        ended
    }

    /// Every live session (a snapshot).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.read().values().cloned().collect()
    }

    /// Removes one session.
    pub fn remove(&self, id: SessionId) {
        self.sessions.write().remove(&id);
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
