//! engine.io v4 packets and the long-polling payload.
//!
//! A packet is one type digit followed by its data: `0` open, `1` close,
//! `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop. Over WebSocket a
//! packet is one message; a binary WebSocket message is a binary `message`
//! packet with no type byte. Over long polling several packets travel in
//! one body separated by the record separator `\x1e`, and a binary packet is
//! written as `b` followed by its base64 text.

use base64::Engine as _;
use bytes::Bytes;

/// The separator between packets of a long-polling payload.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// A packet a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `1`: the client closes the session.
    Close,
    /// `2`: a ping (with `probe` during an upgrade).
    Ping(String),
    /// `3`: the answer to the server's ping.
    Pong(String),
    /// `4`: a text message (a socket.io packet).
    Message(String),
    /// A binary message (a socket.io attachment).
    Binary(Bytes),
    /// `5`: the client completes a transport upgrade.
    Upgrade,
    /// `6`: nothing.
    Noop,
}

/// A packet the server sends, already encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A text packet: type digit and data.
    Text(Bytes),
    /// A binary `message` packet (raw bytes, no type byte).
    Binary(Bytes),
}

impl Outgoing {
    /// A text packet from a type digit and data.
    pub fn text(kind: u8, data: &str) -> Self {
        let mut out = Vec::with_capacity(data.len() + 1);
        out.push(kind);
        out.extend_from_slice(data.as_bytes());
        Outgoing::Text(Bytes::from(out))
    }

    /// Bytes this packet takes in a queue (for bounds).
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Text(b) | Outgoing::Binary(b) => b.len(),
        }
    }

    /// Whether the packet has no bytes at all (never true for a valid one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Packet type digits.
pub mod kind {
    /// Open (server → client, the handshake).
    pub const OPEN: u8 = b'0';
    /// Close.
    pub const CLOSE: u8 = b'1';
    /// Ping.
    pub const PING: u8 = b'2';
    /// Pong.
    pub const PONG: u8 = b'3';
    /// Message.
    pub const MESSAGE: u8 = b'4';
    /// Upgrade.
    pub const UPGRADE: u8 = b'5';
    /// Noop.
    pub const NOOP: u8 = b'6';
}

/// A packet or payload that breaks the engine.io encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// An empty packet.
    #[error("empty packet")]
    Empty,
    /// A type digit that is not 1 to 6 (0 is server-only).
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// `b` followed by text that is not base64.
    #[error("binary packet is not valid base64")]
    Base64,
    /// A payload that is not UTF-8 text.
    #[error("payload is not UTF-8")]
    Utf8,
}

/// Decodes one text packet (a WebSocket text message, or one packet of a
/// polling payload without the `b` form).
pub fn decode_text(text: &str) -> Result<Incoming, DecodeError> {
    let mut chars = text.chars();
    let first = chars.next().ok_or(DecodeError::Empty)?;
    let rest = chars.as_str();
    Ok(match first as u32 as u8 {
        _ if !first.is_ascii() => return Err(DecodeError::UnknownType(first)),
        kind::CLOSE => Incoming::Close,
        kind::PING => Incoming::Ping(rest.to_owned()),
        kind::PONG => Incoming::Pong(rest.to_owned()),
        kind::MESSAGE => Incoming::Message(rest.to_owned()),
        kind::UPGRADE => Incoming::Upgrade,
        kind::NOOP => Incoming::Noop,
        _ => return Err(DecodeError::UnknownType(first)),
    })
}

/// Decodes the body of a polling POST: packets separated by `\x1e`, binary
/// ones as `b<base64>`.
pub fn decode_payload(body: &[u8]) -> Result<Vec<Incoming>, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::Utf8)?;
    text.split(RECORD_SEPARATOR as char)
        .map(|packet| match packet.strip_prefix('b') {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(|bytes| Incoming::Binary(Bytes::from(bytes)))
                .map_err(|_| DecodeError::Base64),
            None => decode_text(packet),
        })
        .collect()
}

/// Encodes packets as one polling payload.
pub fn encode_payload(packets: &[Outgoing]) -> Vec<u8> {
    let size: usize = packets.iter().map(|p| p.len() * 4 / 3 + 4).sum();
    let mut out = Vec::with_capacity(size);
    for (i, packet) in packets.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        match packet {
            Outgoing::Text(text) => out.extend_from_slice(text),
            Outgoing::Binary(bytes) => {
                out.push(b'b');
                let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                out.extend_from_slice(encoded.as_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_packets() {
        assert_eq!(decode_text("2probe"), Ok(Incoming::Ping("probe".into())));
        assert_eq!(decode_text("3"), Ok(Incoming::Pong(String::new())));
        assert_eq!(decode_text("4hello"), Ok(Incoming::Message("hello".into())));
        assert_eq!(decode_text("1"), Ok(Incoming::Close));
        assert_eq!(decode_text("5"), Ok(Incoming::Upgrade));
        assert_eq!(decode_text("6"), Ok(Incoming::Noop));
        assert_eq!(decode_text(""), Err(DecodeError::Empty));
        assert_eq!(decode_text("0{}"), Err(DecodeError::UnknownType('0')));
        assert_eq!(decode_text("abc"), Err(DecodeError::UnknownType('a')));
        assert_eq!(decode_text("é"), Err(DecodeError::UnknownType('é')));
    }

    #[test]
    fn payload_round_trip() {
        let body = b"4hello\x1ebAQIDBA==\x1e3";
        let packets = decode_payload(body).unwrap();
        assert_eq!(
            packets,
            vec![
                Incoming::Message("hello".into()),
                Incoming::Binary(Bytes::from_static(&[1, 2, 3, 4])),
                Incoming::Pong(String::new()),
            ]
        );
        let out = encode_payload(&[
            Outgoing::text(kind::MESSAGE, "hello"),
            Outgoing::Binary(Bytes::from_static(&[1, 2, 3, 4])),
        ]);
        assert_eq!(out, b"4hello\x1ebAQIDBA==");
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert_eq!(decode_payload(b"abc"), Err(DecodeError::UnknownType('a')));
        assert_eq!(decode_payload(b"4a\x1e"), Err(DecodeError::Empty));
        assert_eq!(decode_payload(b"b!!!"), Err(DecodeError::Base64));
        assert_eq!(decode_payload(&[0xff, 0xfe]), Err(DecodeError::Utf8));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..5000 {
            let len = (seed % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    [b'0', b'1', b'2', b'4', b'b', 0x1e, b'/', b'=', 0xc3, b'A'][(seed % 10) as usize]
                })
                .collect();
            let _ = decode_payload(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = decode_text(text);
            }
        }
    }
}
