//! Property tests of what the SockJS adapter decodes from clients (the
//! bodies of `xhr_send` and `jsonp_send`, WebSocket messages, callback
//! names) and of the string literals it writes: decoding never panics and
//! round-trips what a client encodes; output is safe in a `<script>`.

use proptest::prelude::*;

use crate::decode::{jsonp_messages, ws_messages, xhr_messages};
use crate::frame::quoted;
use crate::transport::{valid_callback, MAX_CALLBACK_CHARS};

/// Messages a client may send: any text, markup and line terminators
/// included.
fn messages() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop_oneof![any::<String>(), "[<>&\"\\\\\u{2028}\u{0}a-z]{0,12}"], 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = xhr_messages(&body);
        let _ = jsonp_messages(Some("application/x-www-form-urlencoded"), &body);
        let _ = jsonp_messages(Some("text/plain"), &body);
        let _ = jsonp_messages(None, &body);
        let _ = ws_messages(&String::from_utf8_lossy(&body));
    }

    #[test]
    fn json_like_bodies_never_panic(body in "[\\[\\]{}\",:0-9a-z \\\\%=&d]{0,120}") {
        let _ = xhr_messages(body.as_bytes());
        let _ = jsonp_messages(Some("application/x-www-form-urlencoded"), body.as_bytes());
        let _ = ws_messages(&body);
    }

    #[test]
    fn what_a_client_encodes_decodes_back(sent in messages()) {
        let array = serde_json::to_string(&sent).expect("strings encode");
        prop_assert_eq!(&xhr_messages(array.as_bytes()).expect("an array of strings"), &sent);
        prop_assert_eq!(&ws_messages(&array).expect("an array of strings"), &sent);
        let form = format!("d={}", form_urlencoded::byte_serialize(array.as_bytes()).collect::<String>());
        let decoded = jsonp_messages(Some("application/x-www-form-urlencoded"), form.as_bytes());
        prop_assert_eq!(&decoded.expect("a form with d"), &sent);
    }

    #[test]
    fn quoted_text_is_script_safe_and_round_trips(text in any::<String>()) {
        let out = quoted(&text);
        let literal = std::str::from_utf8(&out).expect("UTF-8");
        for bad in ['<', '>', '&', '\u{2028}', '\u{2029}', '\n', '\r'] {
            prop_assert!(!literal.contains(bad), "raw {bad:?} in {literal:?}");
        }
        let back: String = serde_json::from_str(literal).expect("a JSON string");
        prop_assert_eq!(back, text);
    }

    #[test]
    fn accepted_callbacks_cannot_end_an_expression(name in prop_oneof![".{0,80}", "[A-Za-z0-9_.-]{0,80}"]) {
        if valid_callback(&name) {
            prop_assert!(!name.is_empty() && name.len() <= MAX_CALLBACK_CHARS);
            prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')), "{:?}", name);
        }
    }
}
