//! Identifiers: the secret session id and the public id shown to others.

use std::fmt;

use rand::RngCore;

/// A session id: 128 random bits from the OS-seeded CSPRNG, written as 32
/// lowercase hex digits. It is a bearer secret: whoever holds it can read
/// the session, so it is never shown to other clients.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(u128);

impl SessionId {
    /// A fresh, unguessable id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(u128::from_le_bytes(bytes))
    }

    /// Parses the 32-hex-digit form; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(Self)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: logs must not leak a usable secret.
        write!(f, "{:08x}…", (self.0 >> 96) as u32)
    }
}

/// The public id of a session (64 random bits, 16 hex digits): what other
/// members of a room see as `from`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PublicId(u64);

impl PublicId {
    /// A fresh random public id.
    pub fn random() -> Self {
        Self(rand::rng().next_u64())
    }
}

impl fmt::Display for PublicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_id_round_trips_and_rejects_garbage() {
        let id = SessionId::random();
        assert_eq!(SessionId::parse(&id.to_string()), Some(id));
        assert_eq!(SessionId::parse("xyz"), None);
        assert_eq!(SessionId::parse(&"g".repeat(32)), None);
        assert_eq!(SessionId::parse("+0000000000000000000000000000001"), None);
    }

    #[test]
    fn session_ids_differ() {
        assert_ne!(SessionId::random(), SessionId::random());
    }
}
