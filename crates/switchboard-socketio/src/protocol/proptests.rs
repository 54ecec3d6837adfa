//! Property tests of the two socket.io wire decoders: engine.io packets and
//! polling payloads, socket.io packets. Whatever a client sends, decoding
//! ends in a packet or an error, never a panic; what the server encodes
//! decodes back to the same thing.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

use super::engine::{self, Incoming, Outgoing};
use super::packet::{self, PacketType, MAX_ATTACHMENTS, MAX_NAMESPACE_BYTES};

/// Text that looks like socket.io packets: type digits, attachment counts,
/// namespaces, ack ids and JSON, mixed with anything.
fn packet_like() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9]{1,4}-?(/[a-z#,/]{0,10},?)?[0-9]{0,22}(\\[.{0,20}\\]|\\{.{0,20}\\}|\".{0,10}\")?", ".{0,64}",]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn engine_text_packets_never_panic(text in ".{0,64}") {
        let _ = engine::decode_text(&text);
    }

    #[test]
    fn engine_payloads_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = engine::decode_payload(&body);
    }

    #[test]
    fn engine_payload_like_bodies_never_panic(
        packets in prop::collection::vec("(b[A-Za-z0-9+/=]{0,16}|[0-9][a-z0-9 ]{0,8})", 0..6),
    ) {
        let _ = engine::decode_payload(packets.join("\u{1e}").as_bytes());
    }

    #[test]
    fn engine_payloads_round_trip(packets in prop::collection::vec(
        prop_oneof![
            "[^\u{1e}]{0,20}".prop_map(|t| Outgoing::text(b'4', &t)),
            prop::collection::vec(any::<u8>(), 0..20).prop_map(|b| Outgoing::Binary(Bytes::from(b))),
        ],
        1..5,
    )) {
        let decoded = engine::decode_payload(&engine::encode_payload(&packets)).expect("our own payload");
        prop_assert_eq!(decoded.len(), packets.len());
        for (sent, got) in packets.iter().zip(&decoded) {
            match (sent, got) {
                (Outgoing::Text(text), Incoming::Message(m)) => prop_assert_eq!(&text[1..], m.as_bytes()),
                (Outgoing::Binary(b), Incoming::Binary(g)) => prop_assert_eq!(b, g),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }

    #[test]
    fn socketio_packets_never_panic_and_respect_bounds(text in packet_like()) {
        if let Ok(p) = packet::decode(&text) {
            prop_assert!(p.attachments <= MAX_ATTACHMENTS);
            prop_assert!(p.namespace.starts_with('/') && p.namespace.len() <= MAX_NAMESPACE_BYTES);
            prop_assert!(p.kind != PacketType::ConnectError, "clients may not send CONNECT_ERROR");
            if matches!(p.kind, PacketType::Event | PacketType::BinaryEvent) {
                let first = p.data.as_ref().and_then(|d| d.as_array()).and_then(|a| a.first());
                prop_assert!(matches!(first, Some(Value::String(_)) | Some(Value::Number(_))), "{:?}", p);
            }
        }
    }

    #[test]
    fn events_round_trip(
        namespace in prop_oneof![Just("/".to_owned()), "/[a-z]{1,12}"],
        id in prop::option::of(any::<u64>()),
        name in "[a-z]{1,10}",
        args in prop::collection::vec(prop_oneof![
            any::<i64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ], 0..4),
    ) {
        prop_assume!(!packet::RESERVED_EVENTS.contains(&name.as_str()));
        let data = packet::event_array(&name, &args);
        let text = packet::encode(PacketType::Event, &namespace, id, 0, Some(&data));
        let p = packet::decode(&text).expect("our own event");
        prop_assert_eq!(p.kind, PacketType::Event);
        prop_assert_eq!(&p.namespace, &namespace);
        prop_assert_eq!(p.id, id);
        let mut expected = vec![Value::from(name)];
        expected.extend(args);
        prop_assert_eq!(p.data, Some(Value::Array(expected)));
    }
}
