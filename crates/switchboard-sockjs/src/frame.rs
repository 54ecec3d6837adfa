//! SockJS frames and the protocol's JSON string escaping.
//!
//! The server sends four frames: `o` (open), `h` (heartbeat), `a[...]` (an
//! array of messages, each a JSON string) and `c[code,"reason"]` (close).
//! Every message string is written by [`push_quoted`], which escapes what
//! the SockJS protocol lists (control characters, U+200C–U+200F,
//! U+2028–U+202F, U+2060–U+206F, U+FFF0–U+FFFF: characters browsers or
//! proxies mangle) and, as every writer of this project does, `<`, `>` and
//! `&`, so a frame is safe inside the htmlfile transport's `<script>` and a
//! JSONP call.
//!
//! # Outbox bodies
//!
//! A SockJS session's outbox holds one message per sequenced frame, in one
//! of two shapes, told apart by their first bytes:
//!
//! - a **message literal**: a complete JSON string, `"..."`, pushed by this
//!   adapter (echo, welcome) or encoded once per room publication by
//!   [`crate::encoder::SockJsEncoder`];
//! - a **native body**: `"type":...}`, the native protocol's frame without
//!   its `{"seq":N,` prefix, pushed by `Core::apply` as the answer to an
//!   upstream frame (ack, error, echo, history...). Its message text is `{`
//!   followed by the body.
//!
//! A message literal is one JSON string, so it can never begin with
//! `"type":` (its closing quote would have to be followed by a colon);
//! [`NATIVE_BODY_START`] therefore tells the shapes apart exactly.

use std::borrow::Cow;

use bytes::Bytes;
use switchboard_core::frame::Downstream;

/// The open frame.
pub const OPEN: &[u8] = b"o";
/// The heartbeat frame.
pub const HEARTBEAT: &[u8] = b"h";

/// How every native frame body begins (the core's body writer starts with
/// the `type` field).
pub const NATIVE_BODY_START: &[u8] = b"\"type\":";

/// Close code and reason the protocol fixes for a second receiving
/// connection on one session.
pub const ANOTHER_CONNECTION: (u16, &str) = (2010, "Another connection still open");
/// Close code and reason for a session whose receiving connection broke.
pub const INTERRUPTED: (u16, &str) = (1002, "Connection interrupted");
/// Close code and reason of the `close` example service.
pub const GO_AWAY: (u16, &str) = (3000, "Go away!");
/// Close code and reason when the server shuts down.
pub const SHUTTING_DOWN: (u16, &str) = (1001, "Server shutting down");
/// Close code and reason when the core ended the session (the HTTP API
/// disconnected the user, or the session expired).
pub const SESSION_ENDED: (u16, &str) = (1000, "Session ended");
/// Close code and reason for a new session on a node that holds
/// `max_sessions` already (the native protocol's 4503).
pub const SERVER_FULL: (u16, &str) = (4503, "Server full; retry later");

/// Appends `text` as a JSON string literal, quotes included, escaped for
/// every SockJS transport.
pub fn push_quoted(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut buf = [0u8; 4];
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if must_escape(c) => push_unicode_escape(out, c as u32),
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out.push(b'"');
}

/// Whether the protocol (or this project's script safety) wants `c` as a
/// `\uXXXX` escape.
fn must_escape(c: char) -> bool {
    matches!(
        c as u32,
        0x00..=0x1f
            | 0x3c // <
            | 0x3e // >
            | 0x26 // &
            | 0x200c..=0x200f
            | 0x2028..=0x202f
            | 0x2060..=0x206f
            | 0xfff0..=0xffff
    )
}

fn push_unicode_escape(out: &mut Vec<u8>, code: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((code >> shift) & 0xf) as usize]);
    }
}

/// `text` as a message literal.
pub fn quoted(text: &str) -> Bytes {
    let mut out = Vec::with_capacity(text.len() + 2);
    push_quoted(&mut out, text);
    Bytes::from(out)
}

/// The close frame `c[code,"reason"]`.
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut out = Vec::with_capacity(reason.len() + 12);
    out.extend_from_slice(b"c[");
    out.extend_from_slice(code.to_string().as_bytes());
    out.push(b',');
    push_quoted(&mut out, reason);
    out.push(b']');
    Bytes::from(out)
}

/// The close frame of a (code, reason) pair.
pub fn close_of((code, reason): (u16, &str)) -> Bytes {
    close(code, reason)
}

/// Appends the message literal of one downstream frame of the outbox.
pub fn push_literal(out: &mut Vec<u8>, frame: &Downstream) {
    match frame {
        Downstream::Sequenced { body, .. } if !body.starts_with(NATIVE_BODY_START) => {
            out.extend_from_slice(body);
        }
        Downstream::Sequenced { body, .. } => {
            let mut text = Vec::with_capacity(body.len() + 1);
            text.push(b'{');
            text.extend_from_slice(body);
            push_quoted(out, &String::from_utf8_lossy(&text));
        }
        // A control frame (the core's `gap`) is complete JSON.
        Downstream::Control(json) => push_quoted(out, &String::from_utf8_lossy(json)),
    }
}

/// The array frame `a[...]` of these outbox frames; `None` when empty.
pub fn messages(frames: &[Downstream]) -> Option<Bytes> {
    if frames.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(64 * frames.len());
    out.extend_from_slice(b"a[");
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_literal(&mut out, frame);
    }
    out.push(b']');
    Some(Bytes::from(out))
}

/// The plain text of one outbox frame, for the raw WebSocket endpoint that
/// has no SockJS framing.
pub fn message_text(frame: &Downstream) -> Cow<'_, [u8]> {
    match frame {
        Downstream::Sequenced { body, .. } if body.starts_with(NATIVE_BODY_START) => {
            let mut text = Vec::with_capacity(body.len() + 1);
            text.push(b'{');
            text.extend_from_slice(body);
            Cow::Owned(text)
        }
        Downstream::Sequenced { body, .. } => match serde_json::from_slice::<String>(body) {
            Ok(text) => Cow::Owned(text.into_bytes()),
            Err(_) => Cow::Borrowed(&body[..]),
        },
        Downstream::Control(json) => Cow::Borrowed(&json[..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> String {
        String::from_utf8(quoted(text).to_vec()).unwrap()
    }

    #[test]
    fn quotes_like_json_stringify_with_short_escapes() {
        assert_eq!(q("x"), r#""x""#);
        assert_eq!(q("  \u{0}\n\r "), r#""  \u0000\n\r ""#);
        assert_eq!(q("a\"b\\c\u{8}\u{c}\t\u{1f}"), r#""a\"b\\c\b\f\t\u001f""#);
    }

    #[test]
    fn escapes_the_ranges_sockjs_lists() {
        let mut expected = String::from("\"");
        let mut raw = String::new();
        for code in 255u32..65536 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let listed = matches!(code, 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff);
            if listed {
                raw.push(c);
                expected.push_str(&format!("\\u{code:04x}"));
            }
        }
        expected.push('"');
        assert_eq!(q(&raw), expected);
        // Everything else above 0xff is sent verbatim.
        assert_eq!(q("é€😀"), "\"é€😀\"");
    }

    #[test]
    fn escapes_script_breakers() {
        let out = q("</script><!--&");
        assert_eq!(out, r#""\u003c/script\u003e\u003c!--\u0026""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "</script><!--&");
    }

    #[test]
    fn round_trips_every_scalar_value() {
        let all: String = (0u32..0x11000).filter_map(char::from_u32).collect();
        let back: String = serde_json::from_slice(&quoted(&all)).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn close_frames() {
        assert_eq!(&close_of(GO_AWAY)[..], br#"c[3000,"Go away!"]"#);
        assert_eq!(&close_of(ANOTHER_CONNECTION)[..], br#"c[2010,"Another connection still open"]"#);
    }

    #[test]
    fn message_literals_of_both_body_shapes() {
        let literal = Downstream::Sequenced { seq: 1, body: quoted("type\":") };
        let native = Downstream::Sequenced { seq: 2, body: Bytes::from_static(br#""type":"ack","cid":"1"}"#) };
        let gap = Downstream::Control(Bytes::from_static(br#"{"type":"gap","from":1,"to":2}"#));
        let frame = messages(&[literal.clone(), native.clone(), gap.clone()]).unwrap();
        let text = std::str::from_utf8(&frame).unwrap();
        let array: Vec<String> = serde_json::from_str(&text[1..]).unwrap();
        assert_eq!(array, ["type\":", r#"{"type":"ack","cid":"1"}"#, r#"{"type":"gap","from":1,"to":2}"#]);
        assert_eq!(&*message_text(&literal), b"type\":");
        assert_eq!(&*message_text(&native), br#"{"type":"ack","cid":"1"}"#);
        assert!(messages(&[]).is_none());
    }
}
