//! socket.io v5 packets.
//!
//! A packet travels as the text of one engine.io `message`:
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]
//! ```
//!
//! Types: `0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR,
//! `5` BINARY_EVENT, `6` BINARY_ACK. A binary packet's JSON holds
//! placeholders `{"_placeholder":true,"num":N}`; its attachments follow as
//! that many binary engine.io messages.

use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::Value;

/// Most attachments one binary packet may announce.
pub const MAX_ATTACHMENTS: usize = 256;
/// Longest namespace name, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 128;
/// Event names a client may not emit (they mean something to the library).
pub const RESERVED_EVENTS: [&str; 6] =
    ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"];

/// The seven packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// Connect to a namespace (client) or its acceptance (server).
    Connect,
    /// Leave a namespace.
    Disconnect,
    /// An event.
    Event,
    /// The answer to an event that asked for one.
    Ack,
    /// A refused connection to a namespace (server only).
    ConnectError,
    /// An event with binary attachments.
    BinaryEvent,
    /// An ack with binary attachments.
    BinaryAck,
}

impl PacketType {
    /// The type digit.
    pub fn digit(self) -> u8 {
        b'0' + self as u8
    }

    fn from_digit(b: u8) -> Option<Self> {
        Some(match b {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// A decoded packet; for binary types the attachments are still to come.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// What it is.
    pub kind: PacketType,
    /// Namespace, `/` by default.
    pub namespace: String,
    /// Acknowledgement id.
    pub id: Option<u64>,
    /// The JSON data (placeholders left in place).
    pub data: Option<Value>,
    /// How many binary attachments follow.
    pub attachments: usize,
}

/// A packet that breaks the socket.io encoding; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid socket.io packet: {0}")]
pub struct PacketError(pub &'static str);

/// Decodes one packet from a client.
pub fn decode(text: &str) -> Result<Packet, PacketError> {
    let bytes = text.as_bytes();
    let kind = bytes.first().and_then(|&b| PacketType::from_digit(b)).ok_or(PacketError("unknown packet type"))?;
    let mut i = 1;
    let mut attachments = 0;
    if kind.is_binary() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || bytes.get(i) != Some(&b'-') || i - start > 3 {
            return Err(PacketError("illegal attachments"));
        }
        attachments = text[start..i].parse().map_err(|_| PacketError("illegal attachments"))?;
        if attachments > MAX_ATTACHMENTS {
            return Err(PacketError("too many attachments"));
        }
        i += 1;
    }
    let mut namespace = String::from("/");
    if bytes.get(i) == Some(&b'/') {
        let start = i;
        while i < bytes.len() && bytes[i] != b',' {
            i += 1;
        }
        if i - start > MAX_NAMESPACE_BYTES {
            return Err(PacketError("namespace too long"));
        }
        namespace = text[start..i].to_owned();
        if i < bytes.len() {
            i += 1; // the comma
        }
    }
    let mut id = None;
    let start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    if i > start {
        id = Some(text[start..i].parse::<u64>().map_err(|_| PacketError("ack id out of range"))?);
    }
    let data = if i < bytes.len() {
        Some(serde_json::from_str::<Value>(&text[i..]).map_err(|_| PacketError("invalid payload"))?)
    } else {
        None
    };
    let packet = Packet { kind, namespace, id, data, attachments };
    validate(&packet)?;
    Ok(packet)
}

fn validate(p: &Packet) -> Result<(), PacketError> {
    let event_args = |data: &Option<Value>| match data {
        Some(Value::Array(args)) => match args.first() {
            Some(Value::String(name)) if !RESERVED_EVENTS.contains(&name.as_str()) => Ok(()),
            Some(Value::Number(_)) => Ok(()),
            Some(Value::String(_)) => Err(PacketError("reserved event name")),
            _ => Err(PacketError("an event needs a name")),
        },
        _ => Err(PacketError("an event's data must be an array")),
    };
    match p.kind {
        PacketType::Connect => match &p.data {
            None | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err(PacketError("CONNECT data must be an object")),
        },
        PacketType::Disconnect => match p.data {
            None => Ok(()),
            Some(_) => Err(PacketError("DISCONNECT carries no data")),
        },
        PacketType::Event | PacketType::BinaryEvent => event_args(&p.data),
        PacketType::Ack | PacketType::BinaryAck => match (&p.data, p.id) {
            (Some(Value::Array(_)), Some(_)) => Ok(()),
            _ => Err(PacketError("an ACK needs an id and an array")),
        },
        PacketType::ConnectError => Err(PacketError("CONNECT_ERROR is sent by servers only")),
    }
}

/// Arguments of an event or ack: JSON values, and the binary attachments
/// their placeholders (`{"_placeholder":true,"num":N}`) refer to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    /// The arguments (the event name is not one of them).
    pub args: Vec<Value>,
    /// Binary attachments, by placeholder number.
    pub binary: Vec<Bytes>,
}

impl Payload {
    /// Arguments without binary data.
    pub fn new(args: Vec<Value>) -> Self {
        Self { args, binary: Vec::new() }
    }

    /// Arguments with binary attachments.
    pub fn with_binary(args: Vec<Value>, binary: Vec<Bytes>) -> Self {
        Self { args, binary }
    }

    /// The placeholder standing for attachment `num` inside `args`.
    pub fn placeholder(num: usize) -> Value {
        serde_json::json!({ "_placeholder": true, "num": num })
    }

    /// The attachment a value stands for, if it is a valid placeholder.
    pub fn attachment(&self, value: &Value) -> Option<&Bytes> {
        let obj = value.as_object()?;
        if obj.get("_placeholder") != Some(&Value::Bool(true)) {
            return None;
        }
        self.binary.get(usize::try_from(obj.get("num")?.as_u64()?).ok()?)
    }
}

/// Whether every placeholder in `value` names one of `count` attachments
/// (socket.io refuses the packet otherwise).
pub fn placeholders_valid(value: &Value, count: usize) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|v| placeholders_valid(v, count)),
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
            map.get("num").and_then(Value::as_u64).is_some_and(|n| n < count as u64)
        }
        Value::Object(map) => map.values().all(|v| placeholders_valid(v, count)),
        _ => true,
    }
}

/// Encodes a packet's text: header, then `data` when given. `tail_open`
/// leaves the final `]` of an array off, so an offset can be appended.
pub fn encode(kind: PacketType, namespace: &str, id: Option<u64>, attachments: usize, data: Option<&str>) -> String {
    let mut out = String::with_capacity(16 + namespace.len() + data.map_or(0, str::len));
    out.push(kind.digit() as char);
    if kind.is_binary() {
        let _ = write!(out, "{attachments}-");
    }
    if namespace != "/" {
        out.push_str(namespace);
        out.push(',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
    if let Some(data) = data {
        out.push_str(data);
    }
    out
}

/// The JSON array text of an event: `[name, args...]`.
pub fn event_array(event: &str, args: &[Value]) -> String {
    let mut all = Vec::with_capacity(args.len() + 1);
    all.push(Value::String(event.to_owned()));
    all.extend(args.iter().cloned());
    Value::Array(all).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_protocol_examples() {
        let p = decode("0").unwrap();
        assert_eq!((p.kind, p.namespace.as_str(), p.data), (PacketType::Connect, "/", None));
        let p = decode("0/admin,{\"token\":\"123\"}").unwrap();
        assert_eq!(p.namespace, "/admin");
        assert_eq!(p.data.unwrap()["token"], "123");
        assert!(decode("4/custom,{}").is_err());
        let p = decode("0/custom,").unwrap();
        assert_eq!(p.namespace, "/custom");
        let p = decode("0/random").unwrap();
        assert_eq!(p.namespace, "/random");
        let p = decode("1/admin,").unwrap();
        assert_eq!(p.kind, PacketType::Disconnect);
        let p = decode("2[\"foo\",\"bar\"]").unwrap();
        assert_eq!(p.data.unwrap()[1], "bar");
        let p = decode("2/admin,12[\"foo\"]").unwrap();
        assert_eq!((p.namespace.as_str(), p.id), ("/admin", Some(12)));
        let p = decode("3/admin,13[\"bar\"]").unwrap();
        assert_eq!((p.kind, p.id), (PacketType::Ack, Some(13)));
        let p = decode("51-[\"baz\",{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!((p.kind, p.attachments), (PacketType::BinaryEvent, 1));
        let p = decode("61-/admin,15[{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!((p.kind, p.attachments, p.id), (PacketType::BinaryAck, 1, Some(15)));
    }

    #[test]
    fn refuses_invalid_packets() {
        for bad in [
            "",
            "abc",
            "7",
            "4{}",
            "2",
            "2{}",
            "2[]",
            "2[1",
            "2[\"connect\"]",
            "2[null]",
            "3[1]",
            "31",
            "5[\"a\"]",
            "5-[\"a\"]",
            "5x-[\"a\"]",
            "5999-[\"a\"]",
            "0[1]",
            "0\"x\"",
            "1{}",
            "299999999999999999999[\"a\"]",
        ] {
            assert!(decode(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn encodes_headers() {
        assert_eq!(encode(PacketType::Connect, "/", None, 0, Some("{\"sid\":\"x\"}")), "0{\"sid\":\"x\"}");
        assert_eq!(encode(PacketType::Event, "/chat", Some(4), 0, Some("[\"a\"]")), "2/chat,4[\"a\"]");
        assert_eq!(encode(PacketType::BinaryAck, "/", Some(1), 2, Some("[]")), "62-1[]");
        assert_eq!(encode(PacketType::Disconnect, "/chat", None, 0, None), "1/chat,");
        assert_eq!(event_array("m", &[Value::from(1)]), "[\"m\",1]");
    }

    #[test]
    fn placeholders_must_name_an_attachment() {
        let ok = serde_json::json!(["a", { "x": [Payload::placeholder(1)] }]);
        assert!(placeholders_valid(&ok, 2));
        assert!(!placeholders_valid(&ok, 1));
        assert!(!placeholders_valid(&serde_json::json!([{ "_placeholder": true }]), 1));
    }

    #[test]
    fn placeholders_find_their_attachment() {
        let p = Payload::with_binary(vec![Payload::placeholder(0)], vec![Bytes::from_static(b"x")]);
        assert_eq!(p.attachment(&p.args[0]).unwrap().as_ref(), b"x");
        assert!(p.attachment(&Payload::placeholder(1)).is_none());
        assert!(p.attachment(&Value::from(1)).is_none());
    }

    #[test]
    fn garbage_never_panics() {
        let alphabet = ["0", "2", "5", "6", "-", "/", ",", "[", "]", "\"", "1", "{", "}", "é", "9"];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20000 {
            let mut text = String::new();
            for _ in 0..(seed % 16) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let _ = decode(&text);
        }
    }
}
