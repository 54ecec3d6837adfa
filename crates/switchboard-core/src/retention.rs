//! How much history is kept: a bound for every room, overrides for some
//! rooms, and how often the bounds are applied.
//!
//! The store applies a [`RetentionPolicy`] room by room
//! ([`crate::store::Store::apply_retention`]); the core's reaper task asks
//! it to every [`RetentionPolicy::every`]. An override names one room, or a
//! prefix of room names ending in `*` (`dm:*` for every direct-message
//! conversation). A room takes the override with its exact name, else the
//! one with the longest matching prefix; whatever the override leaves unset
//! comes from the default.

use std::time::Duration;

/// How long and how much history is kept in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most messages kept per room.
    pub max_messages: usize,
    /// Oldest message kept.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self { max_messages: 10_000, max_age: Duration::from_secs(30 * 24 * 3600) }
    }
}

/// Bounds of the rooms a pattern names; unset fields come from the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomRetention {
    /// A room name, or a prefix of room names followed by `*`.
    pub pattern: String,
    /// Most messages kept in each of these rooms.
    pub max_messages: Option<usize>,
    /// Oldest message kept in each of these rooms.
    pub max_age: Option<Duration>,
}

impl RoomRetention {
    /// How well this override fits `room`: `None` when it does not match;
    /// an exact name beats every prefix, a longer prefix a shorter one.
    fn fit(&self, room: &str) -> Option<usize> {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => room.starts_with(prefix).then_some(prefix.len()),
            None => (self.pattern == room).then_some(usize::MAX),
        }
    }
}

/// The retention of every room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Rooms without an override.
    pub default: Retention,
    /// Per-room overrides.
    pub rooms: Vec<RoomRetention>,
    /// How often the bounds are applied (the first time at start).
    pub every: Duration,
}

/// How often retention runs unless configured.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(600);

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self { default: Retention::default(), rooms: Vec::new(), every: DEFAULT_RETENTION_INTERVAL }
    }
}

impl RetentionPolicy {
    /// The bounds of `room`.
    pub fn for_room(&self, room: &str) -> Retention {
        let best = self.rooms.iter().filter_map(|r| Some((r.fit(room)?, r))).max_by_key(|(fit, _)| *fit);
        match best {
            Some((_, r)) => Retention {
                max_messages: r.max_messages.unwrap_or(self.default.max_messages),
                max_age: r.max_age.unwrap_or(self.default.max_age),
            },
            None => self.default,
        }
    }

    /// The largest message count any room may keep: a store that trims on
    /// every append (Redis) trims to this, and the periodic pass to each
    /// room's own bound.
    pub fn most_messages(&self) -> usize {
        self.rooms.iter().filter_map(|r| r.max_messages).fold(self.default.max_messages, usize::max)
    }
}

impl From<Retention> for RetentionPolicy {
    fn from(default: Retention) -> Self {
        Self { default, ..Self::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetentionPolicy {
        RetentionPolicy {
            default: Retention { max_messages: 100, max_age: Duration::from_secs(60) },
            rooms: vec![
                RoomRetention { pattern: "dm:*".into(), max_messages: Some(10), max_age: None },
                RoomRetention { pattern: "dm:alice:*".into(), max_messages: None, max_age: Some(Duration::ZERO) },
                RoomRetention { pattern: "dm:alice:bob".into(), max_messages: Some(1000), max_age: None },
                RoomRetention { pattern: "lobby".into(), max_messages: Some(3), max_age: None },
            ],
            every: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_room_without_an_override_gets_the_default() {
        let p = policy();
        assert_eq!(p.for_room("random"), p.default);
        assert_eq!(p.for_room("lobby2"), p.default, "a name without `*` is matched exactly");
        assert_eq!(p.for_room("dm"), p.default);
    }

    #[test]
    fn the_exact_name_wins_then_the_longest_prefix() {
        let p = policy();
        let minute = Duration::from_secs(60);
        assert_eq!(p.for_room("lobby"), Retention { max_messages: 3, max_age: minute });
        assert_eq!(p.for_room("dm:bob:carol"), Retention { max_messages: 10, max_age: minute });
        assert_eq!(
            p.for_room("dm:alice:carol"),
            Retention { max_messages: 100, max_age: Duration::ZERO },
            "the longer prefix wins, unset fields come from the default, not from the shorter prefix"
        );
        assert_eq!(p.for_room("dm:alice:bob"), Retention { max_messages: 1000, max_age: minute });
    }

    #[test]
    fn most_messages_is_the_largest_bound() {
        assert_eq!(policy().most_messages(), 1000);
        assert_eq!(RetentionPolicy::default().most_messages(), 10_000);
    }
}
