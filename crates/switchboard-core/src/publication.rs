//! A room message on its way to members that may speak different wire
//! protocols (native, socket.io, SockJS).
//!
//! The message is encoded at most once per wire format: the first member of
//! each format encodes it, the rest share the cached `Bytes`.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::value::RawValue;

/// How many distinct wire formats one node can serve.
pub const MAX_FORMATS: usize = 8;

/// A wire format's slot in the per-publication cache (`0..MAX_FORMATS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatId(pub usize);

/// The native protocol's format.
pub const NATIVE: FormatId = FormatId(0);

/// Turns a publication into the sequenced frame body of one wire format.
pub trait Encoder: Send + Sync + fmt::Debug {
    /// This format's cache slot; equal ids must encode equally.
    fn format(&self) -> FormatId;
    /// The frame body members of this format receive; empty when this
    /// format has no way to show this kind (the member then gets nothing).
    fn encode(&self, publication: &Publication) -> Bytes;
}

/// What a publication is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A chat message (stored, with an id).
    Message,
    /// The user came online in the room.
    PresenceJoin,
    /// The user's last session left the room.
    PresenceLeave,
    /// The user is typing (ephemeral).
    Typing,
    /// The user has read the room up to `id`.
    Read,
}

/// One message or event published to a room.
#[derive(Debug)]
pub struct Publication {
    /// What it is.
    pub kind: Kind,
    /// The room.
    pub room: String,
    /// The public id of the publishing session (`system` from the API).
    pub from: String,
    /// The user id of the publisher.
    pub user: String,
    /// The publisher's display name.
    pub name: String,
    /// Message id within the room (0 for events other than messages; the
    /// read mark for [`Kind::Read`]).
    pub id: u64,
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    /// The message, raw JSON (`null` for events).
    pub data: Box<RawValue>,
    /// Sessions of this user do not receive it (typing indicators).
    pub except_user: Option<String>,
    encoded: [OnceLock<Bytes>; MAX_FORMATS],
}

impl Publication {
    /// A plain message not from any stored history (protocol adapters,
    /// tests): user and name are `from`, id 0.
    pub fn new(room: impl Into<String>, from: impl Into<String>, data: Box<RawValue>) -> Self {
        let from = from.into();
        Self::event(Kind::Message, room, from.clone(), from.clone(), from, 0, data)
    }

    /// Any publication, fields given.
    pub fn event(
        kind: Kind,
        room: impl Into<String>,
        from: impl Into<String>,
        user: impl Into<String>,
        name: impl Into<String>,
        id: u64,
        data: Box<RawValue>,
    ) -> Self {
        Self {
            kind,
            room: room.into(),
            from: from.into(),
            user: user.into(),
            name: name.into(),
            id,
            ts: crate::store::now_ms(),
            data,
            except_user: None,
            encoded: Default::default(),
        }
    }

    /// A stored chat message, published by the session with public id `from`.
    pub fn stored(message: &crate::store::StoredMessage, from: &str) -> Self {
        let mut p = Self::event(
            Kind::Message,
            message.room.as_str(),
            from,
            message.user.as_str(),
            message.name.as_str(),
            message.id,
            message.data.clone(),
        );
        p.ts = message.ts;
        p
    }

    /// The frame body for `encoder`'s format, encoded on first use.
    pub fn encoded_for(&self, encoder: &dyn Encoder) -> Bytes {
        let FormatId(slot) = encoder.format();
        match self.encoded.get(slot) {
            Some(cell) => cell.get_or_init(|| encoder.encode(self)).clone(),
            None => encoder.encode(self),
        }
    }
}

/// The native protocol's `msg` frame.
#[derive(Debug, Default)]
pub struct NativeEncoder;

impl Encoder for NativeEncoder {
    fn format(&self) -> FormatId {
        NATIVE
    }

    fn encode(&self, p: &Publication) -> Bytes {
        crate::frame::publication_body(p)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    impl Encoder for Counting {
        fn format(&self) -> FormatId {
            FormatId(3)
        }
        fn encode(&self, _: &Publication) -> Bytes {
            self.0.fetch_add(1, Ordering::SeqCst);
            Bytes::from_static(b"x")
        }
    }

    #[test]
    fn encodes_once_per_format_and_shares_bytes() {
        let p = Publication::new("r", "u", RawValue::from_string("1".into()).unwrap());
        let counting = Counting::default();
        let a = p.encoded_for(&counting);
        let b = p.encoded_for(&counting);
        assert_eq!(counting.0.load(Ordering::SeqCst), 1);
        assert_eq!(a.as_ptr(), b.as_ptr());
        let native = p.encoded_for(&NativeEncoder);
        assert!(std::str::from_utf8(&native).unwrap().contains("\"type\":\"msg\""));
    }
}
