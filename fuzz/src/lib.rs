//! What each fuzz target checks, as plain functions of the input bytes, so
//! libFuzzer (`fuzz_targets/`) and the libFuzzer-less smoke loop
//! (`src/bin/smoke.rs`) run exactly the same checks. A check fails by
//! panicking; the decoders under test must never panic themselves.

use switchboard_core::frame::{self, Upstream};
use switchboard_core::identity::{Authenticator, Credentials};

/// Every target: its name (the corpus folder) and its check.
pub const TARGETS: [(&str, fn(&[u8])); 6] = [
    ("native_frames", native_frames),
    ("query", query),
    ("engineio", engineio),
    ("socketio_packet", socketio_packet),
    ("sockjs_payload", sockjs_payload),
    ("jwt", jwt),
];

/// Native upstream frames (`POST /v1/send` bodies, WebSocket messages):
/// never a panic, and whatever is accepted keeps the protocol's rules.
pub fn native_frames(data: &[u8]) {
    let Ok(frames) = frame::parse_batch(data, 16, 1024) else {
        return;
    };
    assert!(frames.len() <= 16);
    for frame in frames.iter().flatten() {
        if let Some(cid) = frame.cid() {
            assert!(!cid.is_empty() && cid.chars().count() <= frame::MAX_CID_CHARS);
        }
        match frame {
            Upstream::Join { room, .. }
            | Upstream::Leave { room, .. }
            | Upstream::Typing { room }
            | Upstream::Read { room, .. }
            | Upstream::Who { room, .. } => assert!(frame::valid_room(room)),
            Upstream::Publish { room, data, .. } => {
                assert!(frame::valid_room(room) && data.get().len() <= 1024);
            }
            Upstream::History { room, limit, .. } => {
                assert!(frame::valid_room(room) && (1..=frame::MAX_HISTORY_PAGE).contains(limit));
            }
            Upstream::Echo { data, .. } => assert!(data.get().len() <= 1024),
            Upstream::Ack { .. } | Upstream::Rooms { .. } => {}
        }
    }
}

/// Query strings of the transport endpoints; an accepted callback is a
/// dotted identifier path, nothing that could end a script expression.
pub fn query(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(params) = switchboard_transports::query::parse(Some(&text)) {
        if let Some(callback) = params.callback {
            assert!(switchboard_transports::query::valid_callback(&callback));
            assert!(callback
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.')));
        }
    }
    let _ = switchboard_transports::query::valid_callback(&text);
}

/// engine.io polling payloads and text packets.
pub fn engineio(data: &[u8]) {
    use switchboard_socketio::protocol::engine;
    let _ = engine::decode_payload(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = engine::decode_text(text);
    }
}

/// socket.io packets; accepted ones respect the bounds.
pub fn socketio_packet(data: &[u8]) {
    use switchboard_socketio::protocol::packet;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = packet::decode(text) {
        assert!(p.attachments <= packet::MAX_ATTACHMENTS);
        assert!(p.namespace.starts_with('/') && p.namespace.len() <= packet::MAX_NAMESPACE_BYTES);
        assert!(p.kind != packet::PacketType::ConnectError);
    }
}

/// SockJS `xhr_send` / `jsonp_send` bodies and WebSocket messages.
pub fn sockjs_payload(data: &[u8]) {
    use switchboard_sockjs::decode;
    let _ = decode::xhr_messages(data);
    let _ = decode::jsonp_messages(Some("application/x-www-form-urlencoded"), data);
    let _ = decode::jsonp_messages(Some("text/plain"), data);
    let _ = decode::ws_messages(&String::from_utf8_lossy(data));
}

/// Tokens for the HS256 authenticator: garbage is refused with a message.
pub fn jwt(data: &[u8]) {
    let token = String::from_utf8_lossy(data).into_owned();
    let authenticator = switchboard::auth::JwtAuthenticator::hs256(b"the fuzz secret");
    let credentials = Credentials {
        token: Some(token),
        name: None,
    };
    if let Err(e) = authenticator.authenticate(&credentials) {
        assert!(!e.0.is_empty());
    }
}
