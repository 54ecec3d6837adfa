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
    /// The frame body members of this format receive.
    fn encode(&self, publication: &Publication) -> Bytes;
}

/// One message published to a room.
#[derive(Debug)]
pub struct Publication {
    /// The room.
    pub room: String,
    /// Who published it, as shown to members.
    pub from: String,
    /// The message, raw JSON.
    pub data: Box<RawValue>,
    encoded: [OnceLock<Bytes>; MAX_FORMATS],
}

impl Publication {
    /// A publication not yet encoded for anyone.
    pub fn new(room: impl Into<String>, from: impl Into<String>, data: Box<RawValue>) -> Self {
        Self { room: room.into(), from: from.into(), data, encoded: Default::default() }
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
        crate::frame::msg_body(&p.room, &p.from, &p.data)
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
