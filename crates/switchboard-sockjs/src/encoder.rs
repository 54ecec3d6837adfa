//! Room publications as SockJS messages, encoded once for every SockJS
//! member of a room.

use bytes::Bytes;
use switchboard_core::frame::publication_body;
use switchboard_core::publication::{Encoder, FormatId, Publication};

use crate::frame::push_quoted;

/// The SockJS wire format's slot in the per-publication cache.
pub const SOCKJS: FormatId = FormatId(2);

/// Encodes a publication as the message literal a SockJS member receives:
/// the JSON text of the native frame without `seq` (for a chat message
/// `{"type":"msg","room":...,"from":...,"data":...}`), as a JSON string.
/// The core calls it once per publication; every SockJS member shares the
/// bytes.
#[derive(Debug, Default)]
pub struct SockJsEncoder;

impl Encoder for SockJsEncoder {
    fn format(&self) -> FormatId {
        SOCKJS
    }

    fn encode(&self, publication: &Publication) -> Bytes {
        let body = publication_body(publication);
        let mut text = String::with_capacity(body.len() + 1);
        text.push('{');
        text.push_str(&String::from_utf8_lossy(&body));
        let mut out = Vec::with_capacity(text.len() + text.len() / 8 + 2);
        push_quoted(&mut out, &text);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    #[test]
    fn a_publication_is_the_native_frame_as_a_json_string() {
        let data = RawValue::from_string(r#"{"text":"</script> hi"}"#.into()).unwrap();
        let p = Publication::new("lobby", "ab12", data);
        let literal = p.encoded_for(&SockJsEncoder);
        assert_eq!(literal[0], b'"');
        let text: String = serde_json::from_slice(&literal).unwrap();
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(frame["type"], "msg");
        assert_eq!(frame["room"], "lobby");
        assert_eq!(frame["from"], "ab12");
        assert_eq!(frame["data"]["text"], "</script> hi");
        assert!(frame.get("seq").is_none());
        // Encoded once, shared.
        assert_eq!(p.encoded_for(&SockJsEncoder).as_ptr(), literal.as_ptr());
    }
}
