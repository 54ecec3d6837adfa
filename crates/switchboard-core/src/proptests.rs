//! Property tests of what the core decodes from clients and what it writes
//! to them: upstream frames ([`crate::frame::parse_batch`]) never panic and
//! only ever yield frames within the protocol's rules; session ids parse
//! only their own form; the one JSON writer's output is safe in every
//! transport and round-trips.

use proptest::prelude::*;
use serde_json::Value;

use crate::frame::{parse_batch, Upstream, MAX_CID_CHARS, MAX_HISTORY_PAGE, MAX_ROOM_CHARS};
use crate::id::SessionId;
use crate::json::push_safe;

/// Any JSON value, small enough to be quick, with strings that like to
/// break things (markup, line terminators, quotes, escapes).
fn json_value() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        any::<String>(),
        "[<>&\"\\\\/\u{2028}\u{2029}\n\r\t a-z0-9]{0,24}",
        Just("</script><!--".to_owned()),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        text.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z<>\u{2028}]{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Something shaped like an upstream frame: every field the protocol knows,
/// each present or not, valid or not.
fn frame_like() -> impl Strategy<Value = Value> {
    let kind = prop_oneof![
        Just(Value::from("join")),
        Just(Value::from("leave")),
        Just(Value::from("publish")),
        Just(Value::from("echo")),
        Just(Value::from("ack")),
        Just(Value::from("typing")),
        Just(Value::from("read")),
        Just(Value::from("history")),
        Just(Value::from("who")),
        Just(Value::from("rooms")),
        json_value(),
    ];
    let room = prop_oneof![".{0,140}".prop_map(Value::String), json_value()];
    let cid = prop_oneof![".{0,70}".prop_map(Value::String), json_value()];
    let number = prop_oneof![any::<u64>().prop_map(Value::from), json_value()];
    (
        prop::option::of(kind),
        prop::option::of(room),
        prop::option::of(cid),
        prop::option::of(json_value()),
        prop::option::of(number.clone()),
        prop::option::of(number.clone()),
        prop::option::of(number),
    )
        .prop_map(|(kind, room, cid, data, seq, id, limit)| {
            let mut frame = serde_json::Map::new();
            for (key, value) in [
                ("type", kind),
                ("room", room),
                ("cid", cid),
                ("data", data),
                ("seq", seq),
                ("id", id.clone()),
                ("before", id),
                ("limit", limit),
            ] {
                if let Some(value) = value {
                    frame.insert(key.to_owned(), value);
                }
            }
            Value::Object(frame)
        })
}

/// The rules every frame that `parse_batch` accepts must keep.
fn check_accepted(frame: &Upstream, max_frame_bytes: usize) -> Result<(), TestCaseError> {
    let room_ok =
        |room: &str| !room.is_empty() && room.chars().count() <= MAX_ROOM_CHARS && !room.chars().any(char::is_control);
    if let Some(cid) = frame.cid() {
        prop_assert!(!cid.is_empty() && cid.chars().count() <= MAX_CID_CHARS, "cid {cid:?}");
    }
    match frame {
        Upstream::Join { room, .. }
        | Upstream::Leave { room, .. }
        | Upstream::Typing { room }
        | Upstream::Read { room, .. }
        | Upstream::Who { room, .. } => prop_assert!(room_ok(room), "room {room:?}"),
        Upstream::Publish { room, data, .. } => {
            prop_assert!(room_ok(room), "room {room:?}");
            prop_assert!(data.get().len() <= max_frame_bytes);
        }
        Upstream::History { room, limit, .. } => {
            prop_assert!(room_ok(room), "room {room:?}");
            prop_assert!((1..=MAX_HISTORY_PAGE).contains(limit), "limit {limit}");
        }
        Upstream::Echo { data, .. } => prop_assert!(data.get().len() <= max_frame_bytes),
        Upstream::Ack { .. } | Upstream::Rooms { .. } => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_batch_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_batch(&body, 8, 64);
    }

    #[test]
    fn parse_batch_never_panics_on_json_like_text(body in "[\\[\\]{}\",:0-9a-z \\\\.eEtrufnl-]{0,200}") {
        let _ = parse_batch(body.as_bytes(), 8, 64);
    }

    #[test]
    fn accepted_frames_keep_the_protocol_rules(
        frames in prop::collection::vec(frame_like(), 0..12),
        as_array in any::<bool>(),
    ) {
        const MAX_BATCH: usize = 8;
        const MAX_FRAME: usize = 256;
        let body = if as_array || frames.len() != 1 {
            Value::Array(frames.clone()).to_string()
        } else {
            frames[0].to_string()
        };
        match parse_batch(body.as_bytes(), MAX_BATCH, MAX_FRAME) {
            Err(e) => prop_assert!(e.code == crate::codes::BAD_REQUEST || e.code == crate::codes::TOO_LARGE, "{e:?}"),
            Ok(parsed) => {
                prop_assert!(parsed.len() <= MAX_BATCH);
                prop_assert_eq!(parsed.len(), frames.len());
                for frame in parsed.iter().flatten() {
                    check_accepted(frame, MAX_FRAME)?;
                }
                for refused in parsed.iter().filter_map(|r| r.as_ref().err()) {
                    prop_assert_eq!(refused.code, crate::codes::BAD_REQUEST);
                    prop_assert!(!refused.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn batches_over_the_limit_are_refused_whole(n in 9usize..40) {
        let frames: Vec<Value> = (0..n).map(|i| serde_json::json!({"type":"echo","data":i})).collect();
        let err = parse_batch(Value::Array(frames).to_string().as_bytes(), 8, 64).unwrap_err();
        prop_assert_eq!(err.code, crate::codes::TOO_LARGE);
    }

    #[test]
    fn session_ids_parse_only_their_own_form(text in ".{0,40}") {
        if let Some(id) = SessionId::parse(&text) {
            prop_assert_eq!(text.len(), 32);
            prop_assert_eq!(id.to_string(), text.to_ascii_lowercase());
        }
    }

    #[test]
    fn the_json_writer_is_safe_everywhere_and_round_trips(value in json_value()) {
        let mut out = Vec::new();
        push_safe(&mut out, &value.to_string());
        let text = String::from_utf8(out).expect("UTF-8 in, UTF-8 out");
        for bad in ['<', '>', '&', '\u{2028}', '\u{2029}', '\n', '\r'] {
            prop_assert!(!text.contains(bad), "raw {bad:?} in {text:?}");
        }
        let back: Value = serde_json::from_str(&text).expect("still JSON");
        prop_assert_eq!(&back, &value);
        // Whitespace between tokens goes; the same bytes come out.
        let mut from_pretty = Vec::new();
        push_safe(&mut from_pretty, &serde_json::to_string_pretty(&value).expect("a Value serialises"));
        prop_assert_eq!(String::from_utf8(from_pretty).expect("UTF-8 in, UTF-8 out"), text);
    }
}
