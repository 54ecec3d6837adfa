//! [`MessageLog`]: one room's messages as a client holds them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::frame::Frame;

/// One room's messages as a client holds them.
///
/// Live `msg` frames must come in increasing `id` order within a session
/// (so never twice); `history` pages must be in increasing `id` order; a
/// message held from both paths must be the same message. Overlap between
/// a new session's live messages and its history recovery is normal (the
/// client drops one copy by `id`) and only counted.
#[derive(Debug, Default)]
pub struct MessageLog {
    room: String,
    held: BTreeMap<u64, Value>,
    session_last: u64,
    live: usize,
    recovered: usize,
    overlaps: usize,
    problems: Vec<String>,
}

impl MessageLog {
    /// An empty log of `room`.
    pub fn new(room: &str) -> Self {
        Self { room: room.to_owned(), ..Self::default() }
    }

    /// The comparable part of a message: what history stores.
    fn essence(message: &Value) -> Value {
        json!({
            "ts": message["ts"],
            "user": message["user"],
            "name": message["name"],
            "data": message["data"],
        })
    }

    fn hold(&mut self, id: u64, message: &Value, how: &str) {
        let essence = Self::essence(message);
        match self.held.get(&id) {
            Some(held) if *held != essence => {
                self.problems.push(format!("message {id} {how} differs from the one held: {essence} vs {held}"))
            }
            Some(_) => self.overlaps += 1,
            None => {
                self.held.insert(id, essence);
            }
        }
    }

    /// A frame delivered live; ignored unless it is a `msg` of the room.
    /// Returns the message id when it was one.
    pub fn live(&mut self, frame: &Frame) -> Option<u64> {
        if frame.typ() != "msg" || frame.str("room") != Some(self.room.as_str()) {
            return None;
        }
        let Some(id) = frame.u64("id") else {
            self.problems.push(format!("msg without id: {frame}"));
            return None;
        };
        if id <= self.session_last {
            self.problems.push(format!(
                "live msg {id} after {} in one session (repeated or out of order): {frame}",
                self.session_last
            ));
        }
        self.session_last = self.session_last.max(id);
        self.live += 1;
        self.hold(id, frame.value(), "delivered live");
        Some(id)
    }

    /// Messages recovered by `history` (one or more pages, oldest first).
    pub fn recovered(&mut self, messages: &[Value]) {
        let mut previous = 0;
        for message in messages {
            let Some(id) = message["id"].as_u64() else {
                self.problems.push(format!("history message without id: {message}"));
                continue;
            };
            if id <= previous {
                self.problems.push(format!("history message {id} after {previous} (repeated or out of order)"));
            }
            previous = id;
            self.recovered += 1;
            self.hold(id, message, "recovered from history");
        }
    }

    /// A new session starts: its live messages start over.
    pub fn new_session(&mut self) {
        self.session_last = 0;
    }

    /// The highest message id held (0 when none).
    pub fn last_id(&self) -> u64 {
        self.held.keys().next_back().copied().unwrap_or(0)
    }

    /// Every id held, increasing.
    pub fn ids(&self) -> Vec<u64> {
        self.held.keys().copied().collect()
    }

    /// A held message (`ts`, `user`, `name`, `data`).
    pub fn get(&self, id: u64) -> Option<&Value> {
        self.held.get(&id)
    }

    /// Whether some held message has this `data`.
    pub fn holds_data(&self, data: &Value) -> bool {
        self.held.values().any(|m| m["data"] == *data)
    }

    /// Messages delivered live, recovered from history, and held twice.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.live, self.recovered, self.overlaps)
    }

    /// What was wrong (empty when all was well).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Checks the log holds exactly `history` (the room's whole history
    /// from the store), message for message.
    pub fn matches_history(&self, history: &[Value]) -> anyhow::Result<()> {
        let expected: BTreeMap<u64, Value> =
            history.iter().filter_map(|m| Some((m["id"].as_u64()?, Self::essence(m)))).collect();
        let missing: Vec<u64> = expected.keys().filter(|id| !self.held.contains_key(id)).copied().collect();
        let extra: Vec<u64> = self.held.keys().filter(|id| !expected.contains_key(id)).copied().collect();
        anyhow::ensure!(
            missing.is_empty() && extra.is_empty(),
            "room {}: missing {missing:?}, not in history {extra:?}",
            self.room
        );
        for (id, message) in &expected {
            anyhow::ensure!(
                self.held.get(id) == Some(message),
                "room {} message {id}: held {:?}, history has {message}",
                self.room,
                self.held.get(id)
            );
        }
        Ok(())
    }
}
