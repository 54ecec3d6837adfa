//! [`Frame`]: one protocol frame as the server sent it.
//!
//! Tests compare frames field by field, so a frame stays a plain
//! `serde_json::Value` with accessors for the fields every test reads. The
//! raw text is kept too: escaping rules (§1 of the protocol) are about bytes,
//! not values.

use std::fmt;

use serde_json::Value;

/// The sequenced frame types of `docs/protocol.md` §1.1.
pub const DOCUMENTED_SEQUENCED_TYPES: [&str; 10] =
    ["msg", "ack", "presence", "typing", "read", "history", "who", "rooms", "echo", "error"];
/// Sequenced frames the server sends of its own accord about a room or the
/// user (§1.1, §7), not in answer to a frame of this session: delivery
/// tests step over them (their `seq` is still checked).
pub const ROOM_EVENT_TYPES: [&str; 4] = ["presence", "typing", "read", "rooms"];
/// The control frame types of `docs/protocol.md` §1.2.
pub const DOCUMENTED_CONTROL_TYPES: [&str; 5] = ["welcome", "ping", "gap", "close", "error"];

/// One downstream frame: a JSON object with a `type` field.
#[derive(Clone, PartialEq)]
pub struct Frame {
    value: Value,
    raw: String,
}

impl Frame {
    /// Parses one frame from the exact text the server sent.
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let value: Value =
            serde_json::from_str(raw).map_err(|e| anyhow::anyhow!("frame is not JSON ({e}): {raw:?}"))?;
        Self::from_value_raw(value, raw.to_owned())
    }

    /// Wraps a value that arrived inside a larger document (a poll array),
    /// where no per-frame text exists; `raw` is then the re-serialised value.
    pub fn from_value(value: Value) -> anyhow::Result<Self> {
        let raw = value.to_string();
        Self::from_value_raw(value, raw)
    }

    fn from_value_raw(value: Value, raw: String) -> anyhow::Result<Self> {
        anyhow::ensure!(value.get("type").and_then(Value::as_str).is_some(), "frame has no string `type`: {raw}");
        Ok(Self { value, raw })
    }

    /// The `type` field.
    pub fn typ(&self) -> &str {
        self.value["type"].as_str().unwrap_or_default()
    }

    /// The `seq` field: present on sequenced frames (§1.1) only.
    pub fn seq(&self) -> Option<u64> {
        self.value.get("seq").and_then(Value::as_u64)
    }

    /// The `cid` field of `ack`, `echo` and `error` frames.
    pub fn cid(&self) -> Option<&str> {
        self.str("cid")
    }

    /// The `code` field of `close` and `error` frames.
    pub fn code(&self) -> Option<u64> {
        self.u64("code")
    }

    /// The `data` field of `msg` and `echo` frames.
    pub fn data(&self) -> Option<&Value> {
        self.value.get("data")
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.value.get(key).and_then(Value::as_str)
    }

    /// An unsigned integer field.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.value.get(key).and_then(Value::as_u64)
    }

    /// A boolean field.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.value.get(key).and_then(Value::as_bool)
    }

    /// True for a frame of a type the protocol document does not list.
    /// `frame_vocabulary.rs` reports them; other tests step over them.
    pub fn is_extension(&self) -> bool {
        let documented: &[&str] =
            if self.seq().is_some() { &DOCUMENTED_SEQUENCED_TYPES } else { &DOCUMENTED_CONTROL_TYPES };
        !documented.contains(&self.typ())
    }

    /// True for a sequenced room event ([`ROOM_EVENT_TYPES`]) or an
    /// undocumented frame: what a test of delivery, ordering or answers to
    /// its own upstream frames steps over.
    pub fn is_incidental(&self) -> bool {
        (self.seq().is_some() && ROOM_EVENT_TYPES.contains(&self.typ())) || self.is_extension()
    }

    /// True for a `close` frame with this code.
    pub fn is_close(&self, code: u64) -> bool {
        self.typ() == "close" && self.code() == Some(code)
    }

    /// The whole frame.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The text the server sent for this frame (see [`Frame::from_value`]).
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}
