//! What a socket.io socket keeps in its core session's outbox, and how
//! room publications become socket.io packets.
//!
//! Every packet the server sends to a socket (except the CONNECT answer) is
//! queued in the socket's core session as one sequenced body, so the order
//! of events, acks and disconnects is the order they were sent in, and
//! events can be replayed after a reconnection. A body is
//!
//! ```text
//! tag (1 byte) | text length (u32 BE) | packet text | { attachment length (u32 BE) | bytes }*
//! ```
//!
//! with tag `e` for an event without ack id (its text lacks the closing `]`:
//! the writer appends `,"<seq>"]`, the connection state recovery offset),
//! `p` for any other packet (written as is, never replayed after a
//! reconnection), and `d` for a server-side DISCONNECT (the socket ends once
//! it is written).
//!
//! Room names: a socket.io room `R` of namespace `/` is the core room `R`
//! (so native and SockJS clients in `R` share its messages); of any other
//! namespace `/ns` it is the core room `/ns#R` (and `R` of `/` starting with
//! `/` is `/#R`). The core room `<ns>#` holds every socket of a namespace.

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use switchboard_core::publication::{Encoder, FormatId, Kind, Publication};

use crate::protocol::engine::{kind, Outgoing};
use crate::protocol::packet::{self, PacketType, RESERVED_EVENTS};

/// This adapter's slot in the per-publication encoding cache.
pub const FORMAT: FormatId = FormatId(1);

/// The event a plain room message arrives as.
pub const MESSAGE_EVENT: &str = "message";

/// How a body is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// An event that carries the recovery offset as its last argument.
    Event,
    /// Any other packet.
    Plain,
    /// A server-side DISCONNECT: the socket ends after it.
    Disconnect,
}

impl Tag {
    fn byte(self) -> u8 {
        match self {
            Tag::Event => b'e',
            Tag::Plain => b'p',
            Tag::Disconnect => b'd',
        }
    }
}

/// Builds a body.
pub fn body(tag: Tag, text: &str, attachments: &[Bytes]) -> Bytes {
    let size = 5 + text.len() + attachments.iter().map(|a| 4 + a.len()).sum::<usize>();
    let mut out = BytesMut::with_capacity(size);
    out.put_u8(tag.byte());
    out.put_u32(text.len() as u32);
    out.put_slice(text.as_bytes());
    for a in attachments {
        out.put_u32(a.len() as u32);
        out.put_slice(a);
    }
    out.freeze()
}

/// Reads a body back into engine.io packets, appended to `out` in order;
/// `offset` (the body's seq) is appended to events when recovery is on.
/// Returns the body's tag, or `None` (with `out` as it was) for a body
/// this adapter did not write (never expected). One allocation for a body
/// without attachments: a fan-out decodes one body per recipient.
pub fn decode_into(body: &Bytes, offset: Option<u64>, out: &mut Vec<Outgoing>) -> Option<Tag> {
    let tag = match body.first()? {
        b'e' => Tag::Event,
        b'p' => Tag::Plain,
        b'd' => Tag::Disconnect,
        _ => return None,
    };
    let text_len = read_u32(body, 1)?;
    let text = body.get(5..5 + text_len)?;
    let mut offset_digits = itoa::Buffer::new();
    let suffix: &[u8] = match (tag, offset) {
        (Tag::Event, Some(seq)) => offset_digits.format(seq).as_bytes(),
        _ => b"",
    };
    let mut message = Vec::with_capacity(1 + text.len() + suffix.len() + 4);
    message.push(kind::MESSAGE);
    message.extend_from_slice(text);
    if tag == Tag::Event {
        if offset.is_some() {
            message.extend_from_slice(b",\"");
            message.extend_from_slice(suffix);
            message.push(b'"');
        }
        message.push(b']');
    }
    let before = out.len();
    out.push(Outgoing::Text(Bytes::from(message)));
    let mut at = 5 + text_len;
    while at < body.len() {
        let Some(len) = read_u32(body, at) else {
            out.truncate(before);
            return None;
        };
        out.push(Outgoing::Binary(body.slice(at + 4..(at + 4 + len).min(body.len()))));
        at += 4 + len;
    }
    Some(tag)
}

fn read_u32(body: &Bytes, at: usize) -> Option<usize> {
    let b = body.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// An event's text with its final `]` left off (the `e` form).
pub fn open_event(namespace: &str, attachments: usize, array: &str) -> String {
    let kind = if attachments > 0 { PacketType::BinaryEvent } else { PacketType::Event };
    let mut text = packet::encode(kind, namespace, None, attachments, Some(array));
    text.pop();
    text
}

/// The core room of socket.io room `room` in `namespace`.
pub fn core_room(namespace: &str, room: &str) -> String {
    if namespace == "/" && !room.starts_with('/') {
        room.to_owned()
    } else {
        format!("{namespace}#{room}")
    }
}

/// The core room every socket of `namespace` is in.
pub fn all_room(namespace: &str) -> String {
    format!("{namespace}#")
}

/// The namespace whose sockets a core room's messages go to.
pub fn namespace_of(core_room: &str) -> &str {
    if core_room.starts_with('/') {
        if let Some((ns, _)) = core_room.split_once('#') {
            return ns;
        }
    }
    "/"
}

/// A publication's data that stands for a socket.io event other than a
/// plain `message`: what `Namespace::to(room).emit(...)` publishes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    event: String,
    #[serde(borrow)]
    args: Vec<&'a RawValue>,
    #[serde(default)]
    attachments: Vec<String>,
}

/// The data published for event `event` with `args` and binary
/// `attachments`: the bare argument for a one-argument `message` without
/// binary, else the envelope `{"event","args","attachments"}`.
pub fn publication_data(event: &str, args: &[serde_json::Value], attachments: &[Bytes]) -> Box<RawValue> {
    let text = if event == MESSAGE_EVENT && args.len() == 1 && attachments.is_empty() {
        args[0].to_string()
    } else {
        let mut envelope = serde_json::json!({ "event": event, "args": args });
        if !attachments.is_empty() {
            let b64 = base64::engine::general_purpose::STANDARD;
            envelope["attachments"] = attachments.iter().map(|a| b64.encode(a)).collect();
        }
        envelope.to_string()
    };
    RawValue::from_string(text).expect("serde_json writes valid JSON")
}

/// Room publications as socket.io events: a chat message with data `D` is
/// the event `message` with the argument `D`; data shaped as the envelope
/// `{"event": E, "args": [...], "attachments": [base64...]}` is the event
/// `E` with those arguments and binary attachments. Presence, typing and
/// read events have no socket.io form (members get nothing).
#[derive(Debug, Default)]
pub struct SocketIoEncoder;

impl Encoder for SocketIoEncoder {
    fn format(&self) -> FormatId {
        FORMAT
    }

    fn encode(&self, p: &Publication) -> Bytes {
        if p.kind != Kind::Message {
            return Bytes::new();
        }
        let namespace = namespace_of(&p.room);
        if let Ok(envelope) = serde_json::from_str::<Envelope>(p.data.get()) {
            let b64 = base64::engine::general_purpose::STANDARD;
            let binary: Result<Vec<Bytes>, _> =
                envelope.attachments.iter().map(|a| b64.decode(a).map(Bytes::from)).collect();
            if let (Ok(binary), false) = (binary, RESERVED_EVENTS.contains(&envelope.event.as_str())) {
                let mut array = String::from("[");
                let mut name = Vec::new();
                switchboard_core::json::push_string(&mut name, &envelope.event);
                array.push_str(&String::from_utf8_lossy(&name));
                for arg in &envelope.args {
                    array.push(',');
                    array.push_str(&minified(arg.get()));
                }
                array.push(']');
                return body(Tag::Event, &open_event(namespace, binary.len(), &array), &binary);
            }
        }
        let array = format!("[\"{MESSAGE_EVENT}\",{}]", minified(p.data.get()));
        body(Tag::Event, &open_event(namespace, 0, &array), &[])
    }
}

fn minified(json: &str) -> String {
    let mut out = Vec::with_capacity(json.len());
    switchboard_core::json::push_safe(&mut out, json);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Decoded {
        packets: Vec<Outgoing>,
    }

    fn decode(body: &Bytes, offset: Option<u64>) -> Option<Decoded> {
        let mut packets = vec![Outgoing::text(b'9', "before")];
        let decoded = decode_into(body, offset, &mut packets);
        let earlier = packets.remove(0);
        assert_eq!(earlier, Outgoing::text(b'9', "before"), "what was in the list stays first");
        if decoded.is_none() {
            assert!(packets.is_empty(), "a refused body adds nothing: {packets:?}");
        }
        decoded.map(|_| Decoded { packets })
    }

    fn text(decoded: &Decoded) -> String {
        match &decoded.packets[0] {
            Outgoing::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
            Outgoing::Binary(_) => panic!("text first"),
        }
    }

    #[test]
    fn events_get_their_offset() {
        let b = body(Tag::Event, &open_event("/chat", 0, "[\"a\",1]"), &[]);
        let d = decode(&b, Some(7)).unwrap();
        assert_eq!(text(&d), "42/chat,[\"a\",1,\"7\"]");
        assert_eq!(text(&decode(&b, None).unwrap()), "42/chat,[\"a\",1]");
        let plain = body(Tag::Plain, "3/chat,4[]", &[]);
        assert_eq!(text(&decode(&plain, Some(9)).unwrap()), "43/chat,4[]");
    }

    #[test]
    fn attachments_follow_the_text() {
        let b = body(Tag::Event, &open_event("/", 2, "[\"b\",{},{}]"), &[Bytes::from_static(b"12"), Bytes::new()]);
        let d = decode(&b, Some(1)).unwrap();
        assert_eq!(text(&d), "452-[\"b\",{},{},\"1\"]");
        assert_eq!(d.packets[1], Outgoing::Binary(Bytes::from_static(b"12")));
        assert_eq!(d.packets[2], Outgoing::Binary(Bytes::new()));
    }

    #[test]
    fn truncated_bodies_are_refused() {
        assert!(decode(&Bytes::from_static(b""), None).is_none());
        assert!(decode(&Bytes::from_static(b"x\0\0\0\0"), None).is_none());
        assert!(decode(&Bytes::from_static(b"p\0\0\0\x09abc"), None).is_none());
        // The text is whole, the attachment's length is cut short.
        assert!(decode(&Bytes::from_static(b"e\0\0\0\x0242\0\0"), Some(1)).is_none());
    }

    #[test]
    fn rooms_map_to_core_rooms_and_back() {
        assert_eq!(core_room("/", "lobby"), "lobby");
        assert_eq!(core_room("/chat", "lobby"), "/chat#lobby");
        assert_eq!(core_room("/", "/x"), "/#/x");
        assert_eq!(namespace_of("lobby"), "/");
        assert_eq!(namespace_of("/chat#lobby"), "/chat");
        assert_eq!(namespace_of("/#/x"), "/");
        assert_eq!(namespace_of(&all_room("/chat")), "/chat");
    }

    #[test]
    fn publications_become_events() {
        let data = RawValue::from_string("{ \"t\": \"hi\" }".into()).unwrap();
        let p = Publication::new("/chat#lobby", "x", data);
        let d = decode(&SocketIoEncoder.encode(&p), Some(3)).unwrap();
        assert_eq!(text(&d), "42/chat,[\"message\",{\"t\":\"hi\"},\"3\"]");

        let data = publication_data("news", &[serde_json::json!(1), serde_json::json!("a")], &[]);
        let p = Publication::new("lobby", "x", data);
        assert_eq!(text(&decode(&SocketIoEncoder.encode(&p), None).unwrap()), "42[\"news\",1,\"a\"]");

        let data = publication_data("message", &[serde_json::json!(5)], &[]);
        assert_eq!(data.get(), "5");

        let data = publication_data("bin", &[Payload::placeholder(0)], &[Bytes::from_static(&[1, 2])]);
        let p = Publication::new("lobby", "x", data);
        let d = decode(&SocketIoEncoder.encode(&p), None).unwrap();
        assert_eq!(text(&d), "451-[\"bin\",{\"_placeholder\":true,\"num\":0}]");
        assert_eq!(d.packets[1], Outgoing::Binary(Bytes::from_static(&[1, 2])));
    }

    use crate::protocol::packet::Payload;
}
