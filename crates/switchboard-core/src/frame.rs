//! Frames of the native protocol (`docs/protocol.md`).
//!
//! Upstream frames are parsed into [`Upstream`]. Downstream frames are
//! written as bytes once: a sequenced frame is stored as its *body* (every
//! field after `seq`), shared by all recipients of a broadcast, and the
//! per-session `{"seq":N,` prefix is added only when it is written out.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::codes;
use crate::identity::Identity;
use crate::json::{push_safe, push_string};
use crate::publication::{Kind, Publication};
use crate::store::StoredMessage;

/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 128;
/// Longest client frame id, in characters.
pub const MAX_CID_CHARS: usize = 64;

/// One frame a client sent, validated.
#[derive(Debug)]
pub enum Upstream {
    /// Join a room.
    Join { room: String, cid: Option<String> },
    /// Leave a room.
    Leave { room: String, cid: Option<String> },
    /// Publish `data` (raw JSON) to a room.
    Publish { room: String, data: Box<RawValue>, cid: Option<String> },
    /// Answer with the same data.
    Echo { data: Box<RawValue>, cid: Option<String> },
    /// Every frame up to `seq` is processed.
    Ack { seq: u64 },
    /// The user is typing in `room` (ephemeral, never stored).
    Typing { room: String },
    /// The user has read `room` up to message `id`.
    Read { room: String, id: u64, cid: Option<String> },
    /// A page of the room's history.
    History { room: String, before: Option<u64>, after: Option<u64>, limit: usize, cid: Option<String> },
    /// Who is present in `room`.
    Who { room: String, cid: Option<String> },
    /// The user's rooms with unread counts.
    Rooms { cid: Option<String> },
}

/// Largest history page.
pub const MAX_HISTORY_PAGE: usize = 500;

impl Upstream {
    /// The client id of this frame, if it has one.
    pub fn cid(&self) -> Option<&str> {
        match self {
            Upstream::Join { cid, .. }
            | Upstream::Leave { cid, .. }
            | Upstream::Publish { cid, .. }
            | Upstream::Echo { cid, .. }
            | Upstream::Read { cid, .. }
            | Upstream::History { cid, .. }
            | Upstream::Who { cid, .. }
            | Upstream::Rooms { cid } => cid.as_deref(),
            Upstream::Ack { .. } | Upstream::Typing { .. } => None,
        }
    }
}

/// A frame that parsed as JSON but breaks a protocol rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FrameError {
    /// The frame's `cid`, when it had a readable one.
    pub cid: Option<String>,
    /// A code of [`crate::codes`].
    pub code: u16,
    /// What was wrong, for a person.
    pub message: String,
}

/// The JSON shape of any upstream frame, before validation.
#[derive(Deserialize)]
struct WireFrame {
    #[serde(rename = "type")]
    kind: Option<String>,
    room: Option<String>,
    cid: Option<String>,
    data: Option<Box<RawValue>>,
    seq: Option<u64>,
    id: Option<u64>,
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// Parses a body holding one frame or an array of frames. `Err` means the
/// body as a whole is not that shape (nothing should be applied); each
/// element is then validated on its own so one bad frame does not sink the
/// others.
pub fn parse_batch(
    body: &[u8],
    max_batch: usize,
    max_frame_bytes: usize,
) -> Result<Vec<Result<Upstream, FrameError>>, FrameError> {
    let malformed = |e: serde_json::Error| FrameError {
        cid: None,
        code: codes::BAD_REQUEST,
        message: format!("expected a frame object or an array of frames: {e}"),
    };
    // Not an untagged enum: serde buffers those, and raw `data` cannot be
    // read back from a buffer. The first significant byte decides.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let frames: Vec<WireFrame> = if first == Some(&b'[') {
        serde_json::from_slice(body).map_err(malformed)?
    } else {
        vec![serde_json::from_slice(body).map_err(malformed)?]
    };
    if frames.len() > max_batch {
        return Err(FrameError {
            cid: None,
            code: codes::TOO_LARGE,
            message: format!("{} frames in one batch; the limit is {max_batch}", frames.len()),
        });
    }
    if frames.iter().any(|f| f.kind.is_none()) {
        return Err(FrameError {
            cid: None,
            code: codes::BAD_REQUEST,
            message: "every frame needs a string \"type\"".into(),
        });
    }
    let largest = frames.iter().filter_map(|f| f.data.as_ref()).map(|d| d.get().len()).max();
    if largest.is_some_and(|len| len > max_frame_bytes) {
        return Err(FrameError {
            cid: None,
            code: codes::TOO_LARGE,
            message: format!("a frame's data is over the limit of {max_frame_bytes} bytes"),
        });
    }
    Ok(frames.into_iter().map(validate).collect())
}

fn validate(wire: WireFrame) -> Result<Upstream, FrameError> {
    let cid = wire.cid;
    let fail =
        |cid: &Option<String>, message: String| FrameError { cid: cid.clone(), code: codes::BAD_REQUEST, message };
    if let Some(c) = &cid {
        if c.is_empty() || c.chars().count() > MAX_CID_CHARS {
            return Err(fail(&None, format!("cid must be 1 to {MAX_CID_CHARS} characters")));
        }
    }
    let room = |cid: &Option<String>, room: Option<String>| match room {
        Some(r) if valid_room(&r) => Ok(r),
        Some(_) => Err(fail(cid, format!("room must be 1 to {MAX_ROOM_CHARS} characters, none a control character"))),
        None => Err(fail(cid, "this frame type needs a \"room\"".into())),
    };
    let data = |d: Option<Box<RawValue>>| d.unwrap_or_else(null_value);
    match wire.kind.as_deref() {
        Some("join") => Ok(Upstream::Join { room: room(&cid, wire.room)?, cid }),
        Some("leave") => Ok(Upstream::Leave { room: room(&cid, wire.room)?, cid }),
        Some("publish") => Ok(Upstream::Publish { room: room(&cid, wire.room)?, data: data(wire.data), cid }),
        Some("echo") => Ok(Upstream::Echo { data: data(wire.data), cid }),
        Some("ack") => match wire.seq {
            Some(seq) => Ok(Upstream::Ack { seq }),
            None => Err(fail(&cid, "an ack frame needs \"seq\"".into())),
        },
        Some("typing") => Ok(Upstream::Typing { room: room(&cid, wire.room)? }),
        Some("read") => match wire.id {
            Some(id) => Ok(Upstream::Read { room: room(&cid, wire.room)?, id, cid }),
            None => Err(fail(&cid, "a read frame needs the message \"id\"".into())),
        },
        Some("history") => Ok(Upstream::History {
            room: room(&cid, wire.room)?,
            before: wire.before,
            after: wire.after,
            limit: wire.limit.unwrap_or(50).clamp(1, MAX_HISTORY_PAGE),
            cid,
        }),
        Some("who") => Ok(Upstream::Who { room: room(&cid, wire.room)?, cid }),
        Some("rooms") => Ok(Upstream::Rooms { cid }),
        Some(other) => Err(fail(&cid, format!("unknown frame type {other:?}"))),
        None => Err(fail(&cid, "a frame needs a \"type\"".into())),
    }
}

fn null_value() -> Box<RawValue> {
    RawValue::from_string("null".into()).expect("null is valid JSON")
}

/// Whether `room` is an acceptable room name.
pub fn valid_room(room: &str) -> bool {
    !room.is_empty() && room.chars().count() <= MAX_ROOM_CHARS && !room.chars().any(char::is_control)
}

/// One frame on its way down to a client.
#[derive(Debug, Clone)]
pub enum Downstream {
    /// A frame of the outbox: `{"seq":N,` followed by the shared body.
    Sequenced { seq: u64, body: Bytes },
    /// A control frame of one attachment, complete JSON.
    Control(Bytes),
}

/// The longest `{"seq":N,` prefix: 7 bytes, up to 20 digits, a comma.
const SEQ_PREFIX_MAX: usize = 7 + 20 + 1;

impl Downstream {
    /// Appends the frame's JSON text (one line, transport-safe) to `out`.
    pub fn write_json(&self, out: &mut impl bytes::BufMut) {
        match self {
            Downstream::Sequenced { seq, body } => {
                out.put_slice(b"{\"seq\":");
                out.put_slice(itoa::Buffer::new().format(*seq).as_bytes());
                out.put_u8(b',');
                out.put_slice(body);
            }
            Downstream::Control(bytes) => out.put_slice(bytes),
        }
    }

    /// The length of [`Downstream::write_json`]'s output, at most.
    pub fn json_len_hint(&self) -> usize {
        match self {
            Downstream::Sequenced { body, .. } => body.len() + SEQ_PREFIX_MAX,
            Downstream::Control(bytes) => bytes.len(),
        }
    }

    /// The frame's `seq`, for sequenced frames.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Downstream::Sequenced { seq, .. } => Some(*seq),
            Downstream::Control(_) => None,
        }
    }
}

/// Builds a sequenced body: `"type":"<kind>",` + fields + `}`.
struct BodyWriter(Vec<u8>);

impl BodyWriter {
    fn new(kind: &str) -> Self {
        Self::sized(kind, 48)
    }
    /// With room for `more` bytes after the type (a body that outgrows
    /// its room is copied into a larger one).
    fn sized(kind: &str, more: usize) -> Self {
        let mut out = Vec::with_capacity(kind.len() + 10 + more);
        out.extend_from_slice(b"\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.push(b'"');
        Self(out)
    }
    fn key(&mut self, key: &str) -> &mut Self {
        self.0.extend_from_slice(b",\"");
        self.0.extend_from_slice(key.as_bytes());
        self.0.extend_from_slice(b"\":");
        self
    }
    fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_string(&mut self.0, value);
        self
    }
    fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        push_safe(&mut self.0, json);
        self
    }
    fn number(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        self.0.extend_from_slice(value.to_string().as_bytes());
        self
    }
    fn boolean(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.0.extend_from_slice(if value { b"true" } else { b"false" });
        self
    }
    fn body(&mut self) -> Bytes {
        self.0.push(b'}');
        Bytes::from(std::mem::take(&mut self.0))
    }
    fn control(&mut self) -> Bytes {
        let mut out = Vec::with_capacity(self.0.len() + 2);
        out.push(b'{');
        out.extend_from_slice(&self.0);
        out.push(b'}');
        Bytes::from(out)
    }
}

/// Body of a `msg` frame with no stored id (tests, adapters).
pub fn msg_body(room: &str, from: &str, data: &RawValue) -> Bytes {
    publication_body(&Publication::new(room, from, data.to_owned()))
}

/// The native frame body of a room publication: encoded once per publish,
/// shared by every native member.
pub fn publication_body(p: &Publication) -> Bytes {
    let mut w = match p.kind {
        Kind::Message => {
            let mut w = BodyWriter::new("msg");
            w.string("room", &p.room);
            if p.id > 0 {
                w.number("id", p.id);
            }
            w.number("ts", p.ts).string("from", &p.from).string("user", &p.user).string("name", &p.name);
            w.raw("data", p.data.get());
            return w.body();
        }
        Kind::PresenceJoin | Kind::PresenceLeave => {
            let mut w = BodyWriter::new("presence");
            w.string("room", &p.room)
                .string("user", &p.user)
                .string("name", &p.name)
                .string("state", if p.kind == Kind::PresenceJoin { "join" } else { "leave" });
            w
        }
        Kind::Typing => {
            let mut w = BodyWriter::new("typing");
            w.string("room", &p.room).string("user", &p.user).string("name", &p.name);
            w
        }
        Kind::Read => {
            let mut w = BodyWriter::new("read");
            w.string("room", &p.room).string("user", &p.user).number("id", p.id);
            w
        }
    };
    w.body()
}

/// Body of an `ack` frame; `id` is the stored message id of a publish.
pub fn ack_body(cid: &str, id: Option<u64>) -> Bytes {
    let mut w = BodyWriter::new("ack");
    w.string("cid", cid);
    if let Some(id) = id {
        w.number("id", id);
    }
    w.body()
}

/// Body of a `history` answer.
pub fn history_body(cid: Option<&str>, room: &str, messages: &[StoredMessage]) -> Bytes {
    let mut w = BodyWriter::new("history");
    if let Some(cid) = cid {
        w.string("cid", cid);
    }
    w.string("room", room).key("messages");
    w.0.push(b'[');
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            w.0.push(b',');
        }
        w.0.push(b'{');
        let mut item = BodyWriter(Vec::new());
        item.0.extend_from_slice(b"\"id\":");
        item.0.extend_from_slice(m.id.to_string().as_bytes());
        item.number("ts", m.ts).string("user", &m.user).string("name", &m.name).raw("data", m.data.get());
        w.0.extend_from_slice(&item.0);
        w.0.push(b'}');
    }
    w.0.push(b']');
    w.body()
}

/// Body of a `who` answer: the users present in a room.
pub fn who_body(cid: Option<&str>, room: &str, users: &[(String, String)]) -> Bytes {
    let mut w = BodyWriter::new("who");
    if let Some(cid) = cid {
        w.string("cid", cid);
    }
    w.string("room", room).key("users");
    w.0.push(b'[');
    for (i, (user, name)) in users.iter().enumerate() {
        if i > 0 {
            w.0.push(b',');
        }
        w.0.extend_from_slice(b"{\"user\":");
        push_string(&mut w.0, user);
        w.0.extend_from_slice(b",\"name\":");
        push_string(&mut w.0, name);
        w.0.push(b'}');
    }
    w.0.push(b']');
    w.body()
}

/// One room in a `rooms` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// Room name.
    pub room: String,
    /// Highest message id.
    pub last_id: u64,
    /// The user's read mark.
    pub read: u64,
    /// Messages above the read mark.
    pub unread: u64,
}

/// Body of a `rooms` frame: the user's rooms with unread counts.
pub fn rooms_body(cid: Option<&str>, rooms: &[RoomSummary]) -> Bytes {
    let mut w = BodyWriter::new("rooms");
    if let Some(cid) = cid {
        w.string("cid", cid);
    }
    w.key("rooms");
    w.0.push(b'[');
    for (i, r) in rooms.iter().enumerate() {
        if i > 0 {
            w.0.push(b',');
        }
        w.0.extend_from_slice(b"{\"room\":");
        push_string(&mut w.0, &r.room);
        let mut item = BodyWriter(Vec::new());
        item.number("last_id", r.last_id).number("read", r.read).number("unread", r.unread);
        w.0.extend_from_slice(&item.0);
        w.0.push(b'}');
    }
    w.0.push(b']');
    w.body()
}

/// Body of an `echo` answer.
pub fn echo_body(cid: Option<&str>, data: &RawValue) -> Bytes {
    // `,"cid":"…"`, `,"data":…` and the closing brace.
    let mut w = BodyWriter::sized("echo", cid.map_or(0, |c| c.len() + 10) + data.get().len() + 9);
    if let Some(cid) = cid {
        w.string("cid", cid);
    }
    w.raw("data", data.get()).body()
}

/// Body of a sequenced `error` frame answering the upstream frame `cid`.
pub fn error_body(cid: Option<&str>, code: u16, message: &str) -> Bytes {
    let mut w = BodyWriter::new("error");
    if let Some(cid) = cid {
        w.string("cid", cid);
    }
    w.number("code", code.into()).string("message", message).body()
}

/// The `welcome` control frame.
pub fn welcome(sid: &str, public_id: &str, identity: &Identity, resumed: bool, heartbeat_ms: u64) -> Downstream {
    Downstream::Control(
        BodyWriter::new("welcome")
            .string("sid", sid)
            .string("id", public_id)
            .string("user", &identity.user)
            .string("name", &identity.name)
            .boolean("resumed", resumed)
            .number("heartbeat", heartbeat_ms)
            .number("version", 1)
            .control(),
    )
}

/// The `ping` heartbeat frame.
pub fn ping() -> Downstream {
    Downstream::Control(Bytes::from_static(b"{\"type\":\"ping\"}"))
}

/// The `gap` frame: seqs `from..=to` are lost for good.
pub fn gap(from: u64, to: u64) -> Downstream {
    Downstream::Control(BodyWriter::new("gap").number("from", from).number("to", to).control())
}

/// The `close` frame that ends an attachment.
pub fn close(code: u16, reason: &str, reconnect: bool) -> Downstream {
    Downstream::Control(
        BodyWriter::new("close")
            .number("code", code.into())
            .string("reason", reason)
            .boolean("reconnect", reconnect)
            .control(),
    )
}

/// An unsequenced `error` frame about the attachment itself.
pub fn attachment_error(code: u16, message: &str) -> Downstream {
    Downstream::Control(BodyWriter::new("error").number("code", code.into()).string("message", message).control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(frame: &Downstream) -> serde_json::Value {
        let mut out = Vec::new();
        frame.write_json(&mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn sequenced_frame_is_prefix_plus_shared_body() {
        let data = RawValue::from_string(r#"{ "t": "</script>" }"#.into()).unwrap();
        let body = msg_body("lobby", "ab", &data);
        let frame = Downstream::Sequenced { seq: 7, body };
        let v = text(&frame);
        assert_eq!(v["seq"], 7);
        assert_eq!(v["type"], "msg");
        assert_eq!(v["data"]["t"], "</script>");
    }

    #[test]
    fn batch_of_one_or_many() {
        let one = parse_batch(br#"{"type":"join","room":"a","cid":"1"}"#, 10, 100).unwrap();
        assert!(matches!(one[0], Ok(Upstream::Join { .. })));
        let many = parse_batch(br#"[{"type":"ack","seq":3},{"type":"nope","cid":"x"}]"#, 10, 100).unwrap();
        assert!(matches!(many[0], Ok(Upstream::Ack { seq: 3 })));
        let err = many[1].as_ref().unwrap_err();
        assert_eq!(err.cid.as_deref(), Some("x"));
        assert_eq!(err.code, codes::BAD_REQUEST);
    }

    #[test]
    fn whole_body_errors() {
        assert!(parse_batch(b"not json", 10, 100).is_err());
        assert!(parse_batch(b"42", 10, 100).is_err());
        let too_many = format!("[{}]", [r#"{"type":"ack","seq":1}"#; 11].join(","));
        assert_eq!(parse_batch(too_many.as_bytes(), 10, 100).unwrap_err().code, codes::TOO_LARGE);
    }

    #[test]
    fn oversized_data_is_refused_whole() {
        let big = format!(r#"{{"type":"publish","room":"r","data":"{}"}}"#, "x".repeat(200));
        assert_eq!(parse_batch(big.as_bytes(), 10, 100).unwrap_err().code, codes::TOO_LARGE);
    }

    #[test]
    fn rooms_are_validated() {
        assert!(valid_room("lobby"));
        assert!(!valid_room(""));
        assert!(!valid_room("a\nb"));
        assert!(!valid_room(&"x".repeat(129)));
    }
}
