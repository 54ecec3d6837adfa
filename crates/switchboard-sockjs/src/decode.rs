//! Decoding what clients send: the bodies of `xhr_send` and `jsonp_send`,
//! and SockJS WebSocket messages.
//!
//! The client sends a JSON array of strings (its messages). As sockjs-node
//! does, an element that is not a string is taken as its JSON text. A
//! string holding a lone UTF-16 surrogate (`"\ud800"`) cannot be a Rust
//! string and is refused as broken JSON.

use serde_json::Value;

/// Why an upstream payload was refused. The texts are the protocol's: the
/// client and the protocol test suite look for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// No body, or not a JSON array.
    Expected,
    /// Not JSON (or not UTF-8).
    BrokenJson,
}

impl PayloadError {
    /// The message of the 500 answer.
    pub fn message(self) -> &'static str {
        match self {
            PayloadError::Expected => "Payload expected.",
            PayloadError::BrokenJson => "Broken JSON encoding.",
        }
    }
}

/// The messages of an `xhr_send` body: a JSON array of messages.
pub fn xhr_messages(body: &[u8]) -> Result<Vec<String>, PayloadError> {
    if body.is_empty() {
        return Err(PayloadError::Expected);
    }
    match serde_json::from_slice::<Value>(body) {
        Err(_) => Err(PayloadError::BrokenJson),
        Ok(Value::Array(items)) => Ok(items.into_iter().map(message_of).collect()),
        Ok(_) => Err(PayloadError::Expected),
    }
}

/// The messages of a `jsonp_send` body: a form with the JSON array in its
/// `d` field, or (`text/plain`, as some clients send) the array itself.
pub fn jsonp_messages(content_type: Option<&str>, body: &[u8]) -> Result<Vec<String>, PayloadError> {
    let essence = content_type.and_then(|t| t.split(';').next()).map(str::trim).unwrap_or("");
    if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let d = form_urlencoded::parse(body).find(|(key, _)| key == "d").map(|(_, value)| value);
        match d {
            Some(d) if !d.is_empty() => xhr_messages(d.as_bytes()),
            _ => Err(PayloadError::Expected),
        }
    } else {
        xhr_messages(body)
    }
}

/// The messages of one text message on a SockJS WebSocket: a JSON array
/// of messages or a single message; an empty text is nothing.
pub fn ws_messages(text: &str) -> Result<Vec<String>, PayloadError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<Value>(text) {
        Err(_) => Err(PayloadError::BrokenJson),
        Ok(Value::Array(items)) => Ok(items.into_iter().map(message_of).collect()),
        Ok(other) => Ok(vec![message_of(other)]),
    }
}

fn message_of(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngCore};

    use super::*;

    #[test]
    fn xhr_bodies() {
        assert_eq!(xhr_messages(br#"["a","b"]"#).unwrap(), ["a", "b"]);
        assert_eq!(xhr_messages(br#"[1,{"k":true},null]"#).unwrap(), ["1", r#"{"k":true}"#, "null"]);
        assert_eq!(xhr_messages(b"[]").unwrap(), Vec::<String>::new());
        assert_eq!(xhr_messages(b""), Err(PayloadError::Expected));
        assert_eq!(xhr_messages(b"\"a\""), Err(PayloadError::Expected));
        assert_eq!(xhr_messages(br#"["x"#), Err(PayloadError::BrokenJson));
        assert_eq!(xhr_messages(b"[\"\xff\"]"), Err(PayloadError::BrokenJson));
        assert_eq!(xhr_messages(br#"["\ud800"]"#), Err(PayloadError::BrokenJson));
        assert_eq!(xhr_messages(br#"["\u0300\u2028\ud83d\ude00"]"#).unwrap(), ["\u{300}\u{2028}😀"]);
    }

    #[test]
    fn jsonp_bodies() {
        let form = Some("application/x-www-form-urlencoded");
        assert_eq!(jsonp_messages(form, b"d=%5B%22x%22%5D").unwrap(), ["x"]);
        assert_eq!(jsonp_messages(form, b"d=%5B%22x"), Err(PayloadError::BrokenJson));
        for empty in [&b""[..], b"d=", b"p=p"] {
            assert_eq!(jsonp_messages(form, empty), Err(PayloadError::Expected));
        }
        assert_eq!(jsonp_messages(Some("text/plain"), br#"["%61bc"]"#).unwrap(), ["%61bc"]);
        assert_eq!(jsonp_messages(None, br#"["a"]"#).unwrap(), ["a"]);
    }

    #[test]
    fn websocket_messages() {
        assert_eq!(ws_messages("").unwrap(), Vec::<String>::new());
        assert_eq!(ws_messages(r#"["a","b"]"#).unwrap(), ["a", "b"]);
        assert_eq!(ws_messages(r#""a""#).unwrap(), ["a"]);
        assert_eq!(ws_messages("42").unwrap(), ["42"]);
        assert_eq!(ws_messages(r#"["a"#), Err(PayloadError::BrokenJson));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = rand::rng();
        let alphabet = b"[]{}\",:\\u0123456789abcdefn tlrse\xff\xc3";
        for _ in 0..20_000 {
            let len = rng.random_range(0..48);
            let bytes: Vec<u8> = if rng.random_bool(0.5) {
                (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())]).collect()
            } else {
                let mut b = vec![0u8; len];
                rng.fill_bytes(&mut b);
                b
            };
            let _ = xhr_messages(&bytes);
            let _ = jsonp_messages(Some("application/x-www-form-urlencoded"), &bytes);
            let _ = ws_messages(&String::from_utf8_lossy(&bytes));
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert_eq!(xhr_messages(deep.as_bytes()), Err(PayloadError::BrokenJson));
    }
}
